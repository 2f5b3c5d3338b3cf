/* SPDX-License-Identifier: MIT */
/*
 * The main thread's loop in tcp-server and tcp-client: SIGINT/SIGTERM
 * through a signalfd, a one-second tick, the reporter, and a check that no
 * shard has failed.  What to log and when to report stay with the program,
 * behind the callbacks.
 */
#ifndef RINGHOLD_CONTROL_H
#define RINGHOLD_CONTROL_H

#include <stdbool.h>

#include "loop.h"
#include "report.h"

struct shard_set;

/* Timer ids from here on are the program's (control_timer()). */
#define CONTROL_TIMER_USER	2

struct control_ops {
	void (*tick)(void *arg);			/* every second */
	/* A signal came (why: its name), or a shard failed: the loop stops
	 * after this returns. */
	void (*stop)(void *arg, const char *why);
	void (*timer)(void *arg, unsigned id);		/* a control_timer() fired */
	report_done_cb report_done;			/* a report finished */
};

struct control {
	struct loop *loop;
	struct reporter *reporter;	/* NULL without a report URL */
	const struct control_ops *ops;
	void *arg;
	const struct shard_set *shards;
	int sig_fd;
	bool shard_failed;		/* why the loop stopped, if it did */
};

/*
 * Creates the loop on backend, watches sig_fd and ticks; with report_url
 * also a reporter.  Returns 0, or -errno with *why naming the step.
 */
int control_init(struct control *c, enum loop_backend backend, int sig_fd,
		 const char *report_url, const struct shard_set *shards,
		 const struct control_ops *ops, void *arg, const char **why);
void control_fini(struct control *c);

int control_timer(struct control *c, unsigned id, uint64_t ms);

#endif
