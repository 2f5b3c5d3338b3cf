/* SPDX-License-Identifier: MIT */
/* Threads that each run one shard (one loop). */
#ifndef RINGHOLD_SHARD_H
#define RINGHOLD_SHARD_H

#include <pthread.h>

/* Starts fn(arg) on a thread with a small stack and SIGINT/SIGTERM blocked
 * (the main thread takes them through a signalfd).  0 or -errno. */
int shard_thread_start(pthread_t *thread, void *(*fn)(void *), void *arg);

/* Blocks SIGINT, SIGTERM and SIGPIPE in the calling thread and returns a
 * signalfd for SIGINT/SIGTERM, or -errno. */
int shard_signals_block(void);

/* Lets the main thread wait until every shard thread has set itself up
 * (or failed to). */
struct shard_barrier {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned arrived;
};

void shard_barrier_init(struct shard_barrier *b);
void shard_barrier_arrive(struct shard_barrier *b);
void shard_barrier_wait(struct shard_barrier *b, unsigned n);

/* The number of online CPUs, at least 1. */
unsigned shard_cpu_count(void);

#endif
