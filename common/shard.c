/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "loop.h"
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

void shard_set_init(struct shard_set *set, void *shards, size_t stride,
		    unsigned n)
{
	set->shards = shards;
	set->stride = stride;
	set->n = n;
	atomic_init(&set->stopping, 0);
	atomic_init(&set->failed, 0);
	pthread_mutex_init(&set->lock, NULL);
	pthread_cond_init(&set->cond, NULL);
	set->ready = 0;
	for (unsigned i = 0; i < n; i++) {
		struct shard *sh = shard_at(set, i);

		sh->set = set;
		sh->id = i;
		pthread_mutex_init(&sh->loop_lock, NULL);
	}
}

struct shard *shard_at(const struct shard_set *set, unsigned i)
{
	return (struct shard *)((char *)set->shards + i * set->stride);
}

void shard_ready(struct shard *sh, int err, const char *why)
{
	struct shard_set *set = sh->set;

	sh->start_err = err;
	sh->start_why = why;
	pthread_mutex_lock(&set->lock);
	set->ready++;
	pthread_cond_signal(&set->cond);
	pthread_mutex_unlock(&set->lock);
}

int shard_set_start(struct shard_set *set, void *(*fn)(void *),
		    struct shard **failed)
{
	unsigned started = 0;
	int ret = 0;

	*failed = NULL;
	for (; started < set->n; started++) {
		struct shard *sh = shard_at(set, started);

		ret = shard_thread_start(&sh->thread, fn, sh);
		if (ret < 0) {
			sh->start_err = ret;
			sh->start_why = "starting its thread";
			*failed = sh;
			break;
		}
		sh->running = true;
	}
	pthread_mutex_lock(&set->lock);
	while (set->ready < started)
		pthread_cond_wait(&set->cond, &set->lock);
	pthread_mutex_unlock(&set->lock);
	for (unsigned i = 0; !ret && i < started; i++) {
		struct shard *sh = shard_at(set, i);

		if (sh->start_err < 0) {
			*failed = sh;
			ret = sh->start_err;
		}
	}
	return ret;
}

void shard_free_loop(struct shard *sh)
{
	pthread_mutex_lock(&sh->loop_lock);
	loop_free(sh->loop);
	sh->loop = NULL;
	pthread_mutex_unlock(&sh->loop_lock);
}

void shard_set_stop(struct shard_set *set)
{
	atomic_store(&set->stopping, 1);
	for (unsigned i = 0; i < set->n; i++) {
		struct shard *sh = shard_at(set, i);

		pthread_mutex_lock(&sh->loop_lock);
		if (sh->loop)
			loop_wake(sh->loop);
		pthread_mutex_unlock(&sh->loop_lock);
	}
	for (unsigned i = 0; i < set->n; i++) {
		struct shard *sh = shard_at(set, i);

		if (sh->running) {
			pthread_join(sh->thread, NULL);
			sh->running = false;
		}
	}
}

bool shard_set_stopping(const struct shard_set *set)
{
	return atomic_load(&set->stopping);
}

unsigned shard_cpu_count(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n > 0 ? (unsigned)n : 1;
}
