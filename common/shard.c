/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "shard.h"

/* Shard threads spend their life in io_uring_enter or epoll_wait. */
#define SHARD_STACK_SIZE (256 * 1024)

int shard_thread_start(pthread_t *thread, void *(*fn)(void *), void *arg)
{
	pthread_attr_t attr;
	int ret;

	ret = pthread_attr_init(&attr);
	if (ret)
		return -ret;
	pthread_attr_setstacksize(&attr, SHARD_STACK_SIZE);
	ret = pthread_create(thread, &attr, fn, arg);
	pthread_attr_destroy(&attr);
	return -ret;
}

int shard_signals_block(void)
{
	sigset_t set;
	int fd;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGPIPE);
	if (pthread_sigmask(SIG_BLOCK, &set, NULL))
		return -EINVAL;
	sigdelset(&set, SIGPIPE);
	fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

void shard_barrier_init(struct shard_barrier *b)
{
	pthread_mutex_init(&b->lock, NULL);
	pthread_cond_init(&b->cond, NULL);
	b->arrived = 0;
}

void shard_barrier_arrive(struct shard_barrier *b)
{
	pthread_mutex_lock(&b->lock);
	b->arrived++;
	pthread_cond_signal(&b->cond);
	pthread_mutex_unlock(&b->lock);
}

void shard_barrier_wait(struct shard_barrier *b, unsigned n)
{
	pthread_mutex_lock(&b->lock);
	while (b->arrived < n)
		pthread_cond_wait(&b->cond, &b->lock);
	pthread_mutex_unlock(&b->lock);
}

unsigned shard_cpu_count(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n > 0 ? (unsigned)n : 1;
}
