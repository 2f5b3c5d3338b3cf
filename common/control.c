/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "control.h"
#include "shard.h"

#define CONTROL_TICK_MS		1000

/* Loop ids. */
enum {
	POLL_SIGNAL = 0,
	POLL_REPORTER = 1,	/* .. + REPORTER_POLLS */
	REPORTER_POLLS = 16,
	TIMER_TICK = 0,
	TIMER_REPORTER = 1,
};

static void control_cb(struct loop *loop, const struct loop_event *ev,
		       void *arg)
{
	struct control *c = arg;
	struct signalfd_siginfo si;

	if (reporter_handle(c->reporter, ev))
		return;
	if (ev->type == LOOP_EV_POLL && ev->id == POLL_SIGNAL) {
		if (read(c->sig_fd, &si, sizeof(si)) != sizeof(si))
			return;
		c->ops->stop(c->arg, strsignal((int)si.ssi_signo));
		loop_stop(loop);
	} else if (ev->type == LOOP_EV_TIMER && ev->id == TIMER_TICK) {
		if (c->shards && atomic_load(&c->shards->failed)) {
			c->shard_failed = true;
			c->ops->stop(c->arg, "a shard failed");
			loop_stop(loop);
			return;
		}
		c->ops->tick(c->arg);
		loop_timer(loop, TIMER_TICK, CONTROL_TICK_MS);
	} else if (ev->type == LOOP_EV_TIMER && ev->id >= CONTROL_TIMER_USER) {
		c->ops->timer(c->arg, ev->id);
	}
}

int control_init(struct control *c, enum loop_backend backend, int sig_fd,
		 const char *report_url, const struct shard_set *shards,
		 const struct control_ops *ops, void *arg, const char **why)
{
	struct loop_config lc = { .backend = backend, .capacity = 1,
				  .buf_count = 1, .buf_size = 64 };
	int err = 0;

	memset(c, 0, sizeof(*c));
	c->ops = ops;
	c->arg = arg;
	c->shards = shards;
	c->sig_fd = sig_fd;
	c->loop = loop_new(&lc, control_cb, c, &err, why);
	if (!c->loop)
		return err;
	*why = "watching signals and the tick";
	err = loop_poll(c->loop, POLL_SIGNAL, sig_fd, POLLIN);
	if (!err)
		err = loop_timer(c->loop, TIMER_TICK, CONTROL_TICK_MS);
	if (err < 0)
		return err;
	if (report_url && *report_url) {
		*why = "setting up the reporter";
		c->reporter = reporter_new(c->loop, report_url, POLL_REPORTER,
					   REPORTER_POLLS, TIMER_REPORTER,
					   ops->report_done, arg, &err);
		if (!c->reporter)
			return err;
	}
	*why = NULL;
	return 0;
}

void control_fini(struct control *c)
{
	reporter_free(c->reporter);
	c->reporter = NULL;
	loop_free(c->loop);
	c->loop = NULL;
}

int control_timer(struct control *c, unsigned id, uint64_t ms)
{
	return loop_timer(c->loop, id, ms);
}
