/* SPDX-License-Identifier: MIT */
/*
 * Backend selection and the thin dispatch layer in front of the backends.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "loop_internal.h"

/* The kernel refuses fixed-file tables larger than this (IORING_MAX_FIXED_FILES). */
#define FIXED_TABLE_MAX (1u << 20)

unsigned loop_default_capacity(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
		return FIXED_TABLE_MAX;
	return rl.rlim_cur > FIXED_TABLE_MAX ? FIXED_TABLE_MAX
					     : (unsigned)rl.rlim_cur;
}

const char *loop_backend_name(enum loop_backend backend)
{
	switch (backend) {
	case LOOP_BACKEND_URING:
		return "io_uring";
	case LOOP_BACKEND_EPOLL:
		return "epoll";
	case LOOP_BACKEND_AUTO:
		break;
	}
	return "auto";
}

struct loop *loop_new(const struct loop_config *cfg, loop_cb cb, void *arg,
		      int *err, const char **why)
{
	struct loop *loop = NULL;
	const char *dummy_why;

	if (!why)
		why = &dummy_why;
	*why = NULL;
	switch (cfg->backend) {
	case LOOP_BACKEND_URING:
		loop = loop_uring_new(cfg, err, why);
		break;
	case LOOP_BACKEND_EPOLL:
		loop = loop_epoll_new(cfg, err, why);
		break;
	case LOOP_BACKEND_AUTO:
		/* Callers that want to log the fallback probe with
		 * LOOP_BACKEND_URING first; AUTO just takes what works. */
		loop = loop_uring_new(cfg, err, why);
		if (!loop)
			loop = loop_epoll_new(cfg, err, why);
		break;
	}
	if (!loop)
		return NULL;
	loop->cb = cb;
	loop->arg = arg;
	return loop;
}

enum loop_backend loop_probe_backend(enum loop_backend want, int *err,
				     const char **why)
{
	struct loop_config lc = { .backend = LOOP_BACKEND_URING, .capacity = 1,
				  .buf_count = 1, .buf_size = 64 };
	struct loop *probe;

	*err = 0;
	*why = NULL;
	if (want != LOOP_BACKEND_AUTO)
		return want;
	probe = loop_uring_new(&lc, err, why);
	if (!probe)
		return LOOP_BACKEND_EPOLL;
	loop_free(probe);
	return LOOP_BACKEND_URING;
}

void loop_free(struct loop *loop)
{
	if (!loop)
		return;
	loop->ops->free(loop);
}

enum loop_backend loop_backend(const struct loop *loop)
{
	return loop->backend;
}

unsigned loop_capacity(const struct loop *loop)
{
	return loop->capacity;
}

const char *loop_features(const struct loop *loop)
{
	return loop->features;
}

int loop_listen(struct loop *loop, int listen_fd, uint32_t tag)
{
	return loop->ops->listen(loop, listen_fd, tag);
}

int loop_connect(struct loop *loop, const struct sockaddr *src,
		 const struct sockaddr *dst, socklen_t len,
		 unsigned timeout_ms, uint32_t tag)
{
	return loop->ops->connect(loop, src, dst, len, timeout_ms, tag);
}

int loop_recv_start(struct loop *loop, uint32_t slot)
{
	if (slot >= loop->capacity)
		return -EBADF;
	return loop->ops->recv_start(loop, slot);
}

int loop_send(struct loop *loop, uint32_t slot, const void *buf, size_t len)
{
	if (slot >= loop->capacity)
		return -EBADF;
	return loop->ops->send(loop, slot, buf, len);
}

int loop_close(struct loop *loop, uint32_t slot)
{
	if (slot >= loop->capacity)
		return -EBADF;
	return loop->ops->close(loop, slot);
}

int loop_timer(struct loop *loop, unsigned id, uint64_t ms)
{
	if (id >= LOOP_MAX_TIMERS)
		return -EINVAL;
	return loop->ops->timer(loop, id, ms);
}

int loop_timer_cancel(struct loop *loop, unsigned id)
{
	if (id >= LOOP_MAX_TIMERS)
		return -EINVAL;
	return loop->ops->timer_cancel(loop, id);
}

int loop_poll(struct loop *loop, unsigned id, int fd, unsigned events)
{
	if (id >= LOOP_MAX_POLLS || fd < 0)
		return -EINVAL;
	return loop->ops->poll(loop, id, fd, events);
}

int loop_poll_cancel(struct loop *loop, unsigned id)
{
	if (id >= LOOP_MAX_POLLS)
		return -EINVAL;
	return loop->ops->poll_cancel(loop, id);
}

void loop_set_batch(struct loop *loop, unsigned nr, unsigned max_delay_ms)
{
	loop->batch_nr = nr;
	loop->batch_ms = max_delay_ms;
}

int loop_run(struct loop *loop)
{
	loop->stop = 0;
	return loop->ops->run(loop);
}

void loop_stop(struct loop *loop)
{
	loop->stop = 1;
}

int loop_wake(struct loop *loop)
{
	uint64_t one = 1;

	if (write(loop->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		return -errno;
	return 0;
}

uint64_t loop_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int vec_push(struct vec *v, const void *item)
{
	if (v->len == v->cap) {
		size_t cap = v->cap ? v->cap * 2 : 64;
		char *items = malloc(cap * v->size);

		if (!items)
			return -ENOMEM;
		/* Unwrap the ring into the new array. */
		for (size_t i = 0; i < v->len; i++)
			memcpy(items + i * v->size, vec_at(v, i), v->size);
		free(v->items);
		v->items = items;
		v->head = 0;
		v->cap = cap;
	}
	memcpy(vec_at(v, v->len), item, v->size);
	v->len++;
	return 0;
}

void vec_pop(struct vec *v, void *item)
{
	memcpy(item, vec_at(v, 0), v->size);
	v->head = (v->head + 1) % v->cap;
	v->len--;
}
