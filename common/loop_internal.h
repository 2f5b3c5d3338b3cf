/* SPDX-License-Identifier: MIT */
/* What loop.c shares with its backends; programs never include this. */
#ifndef RINGHOLD_LOOP_INTERNAL_H
#define RINGHOLD_LOOP_INTERNAL_H

#include <stddef.h>

#include "loop.h"

struct loop_ops {
	int (*listen)(struct loop *loop, int fd, uint32_t tag);
	int (*connect)(struct loop *loop, const struct sockaddr *src,
		       const struct sockaddr *dst, socklen_t len,
		       unsigned timeout_ms, uint32_t tag);
	int (*recv_start)(struct loop *loop, uint32_t slot);
	int (*send)(struct loop *loop, uint32_t slot, const void *buf, size_t len);
	int (*close)(struct loop *loop, uint32_t slot);
	int (*timer)(struct loop *loop, unsigned id, uint64_t ms);
	int (*timer_cancel)(struct loop *loop, unsigned id);
	int (*poll)(struct loop *loop, unsigned id, int fd, unsigned events);
	int (*poll_cancel)(struct loop *loop, unsigned id);
	int (*run)(struct loop *loop);
	void (*free)(struct loop *loop);
};

/* Embedded first in each backend's own struct. */
struct loop {
	const struct loop_ops *ops;
	loop_cb cb;
	void *arg;
	enum loop_backend backend;
	unsigned capacity;
	volatile int stop;
	int wake_fd;			/* eventfd, written by loop_wake() */
	unsigned batch_nr;		/* loop_set_batch() */
	unsigned batch_ms;
	char features[160];
};

static inline void loop_emit(struct loop *loop, enum loop_ev_type type,
			     uint32_t slot, uint32_t id, int32_t res,
			     const void *data)
{
	struct loop_event ev = {
		.type = type, .slot = slot, .id = id, .res = res, .data = data,
	};

	loop->cb(loop, &ev, loop->arg);
}

/* A growable FIFO or list of fixed-size items (set size before use). */
struct vec {
	void *items;
	size_t head, len, cap, size;
};

static inline void *vec_at(struct vec *v, size_t i)
{
	return (char *)v->items + ((v->head + i) % v->cap) * v->size;
}

/* 0, or -ENOMEM. */
int vec_push(struct vec *v, const void *item);
/* Takes the oldest item; v must not be empty. */
void vec_pop(struct vec *v, void *item);

/* Both return NULL and set *err / *why on failure. */
struct loop *loop_uring_new(const struct loop_config *cfg, int *err,
			    const char **why);
struct loop *loop_epoll_new(const struct loop_config *cfg, int *err,
			    const char **why);


#endif
