/* SPDX-License-Identifier: MIT */
/* Threads that each run one shard (one loop). */
#ifndef RINGHOLD_SHARD_H
#define RINGHOLD_SHARD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

/* Starts fn(arg) on a thread with a small stack and SIGINT/SIGTERM blocked
 * (the main thread takes them through a signalfd).  0 or -errno. */
int shard_thread_start(pthread_t *thread, void *(*fn)(void *), void *arg);

/* Blocks SIGINT, SIGTERM and SIGPIPE in the calling thread and returns a
 * signalfd for SIGINT/SIGTERM, or -errno. */
int shard_signals_block(void);

struct loop;
struct shard_set;

/*
 * One shard: a thread running one loop.  Programs embed it first in their
 * own shard struct; shard_set walks them with the struct's size as stride.
 */
struct shard {
	struct shard_set *set;
	unsigned id;
	pthread_t thread;
	bool running;		/* the thread was created */
	/* Held while the main thread wakes the loop and while the shard
	 * frees it, so a wake never reaches a freed loop. */
	pthread_mutex_t loop_lock;
	struct loop *loop;
	int start_err;		/* from shard_ready() */
	const char *start_why;
};

struct shard_set {
	void *shards;		/* n structs of stride bytes, struct shard first */
	size_t stride;
	unsigned n;
	_Atomic int stopping;
	_Atomic int failed;	/* a shard's loop returned an error */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned ready;
};

/* Sets up n shards at shards (zeroed by the caller) and the set. */
void shard_set_init(struct shard_set *set, void *shards, size_t stride,
		    unsigned n);
struct shard *shard_at(const struct shard_set *set, unsigned i);

/* Starts fn(shard) on every shard and waits until each has called
 * shard_ready().  Returns 0, or the first error with *failed set to that
 * shard (whose start_why says what failed). */
int shard_set_start(struct shard_set *set, void *(*fn)(void *),
		    struct shard **failed);

/* From a shard thread: its loop is set up (err 0) or could not be. */
void shard_ready(struct shard *sh, int err, const char *why);
/* From a shard thread: frees its loop (closing what it holds). */
void shard_free_loop(struct shard *sh);

/* Tells every running shard to stop, wakes it, and joins the threads. */
void shard_set_stop(struct shard_set *set);
bool shard_set_stopping(const struct shard_set *set);

/* The number of online CPUs, at least 1. */
unsigned shard_cpu_count(void);

#endif
