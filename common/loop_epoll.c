/* SPDX-License-Identifier: MIT */
/*
 * epoll backend: the baseline the io_uring backend is measured against, and
 * the fallback where io_uring_setup is not allowed (seccomp, hardened
 * kernels).
 *
 * Slots are the connection descriptors themselves, so capacity is bounded by
 * RLIMIT_NOFILE for the whole process.  Readiness is turned into the same
 * completions the io_uring backend reports:
 * - accept, recv and connect happen when epoll says the descriptor is ready
 *   (level-triggered, interest recomputed from the slot's state);
 * - send writes at once and reports from the loop, never inside loop_send();
 * - close is deferred too: the descriptor stays open until LOOP_EV_CLOSED is
 *   delivered, so its number cannot be handed out again before the program
 *   hears that the old connection is gone.
 *
 * epoll_event.data: kind (8 bits) | generation (24 bits) | fd or id (32 bits).
 * The generation of a slot is bumped when its descriptor is closed, so a
 * ready event, queued send result or connect deadline for an earlier
 * connection on the same number is dropped.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "loop_internal.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define MAX_EVENTS	1024
#define MAX_LISTENERS	16
/* Level-triggered: whatever is left after these comes back next wait, so
 * one busy descriptor cannot starve the others. */
#define ACCEPT_BATCH	256
#define RECV_BATCH	16
#define GEN_MASK	0xffffffu

enum ekind {
	EK_SLOT = 0,
	EK_LISTEN,
	EK_POLL,
	EK_WAKE,
};

/* Per-slot state: 8 bytes. */
struct eslot {
	uint32_t gen;
	uint8_t flags;
	uint8_t interest;	/* EPOLLIN/EPOLLOUT bits registered, see I_* */
};

enum {
	S_OPEN		= 1 << 0,
	S_RECV		= 1 << 1,	/* loop_recv_start() active */
	S_CLOSING	= 1 << 2,	/* loop_close() called */
	S_CONNECTING	= 1 << 3,
	S_SEND_WAIT	= 1 << 4,	/* sends queued behind EAGAIN */
};

enum {
	I_REG	= 1 << 0,	/* in the epoll set */
	I_IN	= 1 << 1,
	I_OUT	= 1 << 2,
};

/* Completions waiting to be delivered from the loop. */
enum deferred_type {
	D_SEND,			/* res: bytes sent or -errno */
	D_CLOSE,		/* close the descriptor, then LOOP_EV_CLOSED */
	D_CONNECT,		/* connect() finished at once: res 0 or -errno */
};

struct deferred {
	uint32_t slot;
	uint32_t gen;
	int32_t res;
	uint8_t type;
};

/* A send that met a full socket buffer, retried on EPOLLOUT. */
struct blocked_send {
	uint32_t slot;
	uint32_t gen;
	const void *buf;
	size_t len;
};

/* Connects all share one timeout, so their deadlines come in order. */
struct conn_deadline {
	uint32_t slot;
	uint32_t gen;
	uint64_t deadline_ms;
};

struct etimer {
	uint64_t deadline_ms;
	bool pending;
};

struct epoll_poll {
	int fd;
	uint32_t gen;
	bool active;
};

struct epoll_loop {
	struct loop base;
	int epfd;
	int spare_fd;		/* given up to accept-and-drop under EMFILE */
	struct eslot *slots;
	uint32_t *conn_tag;	/* LOOP_F_CONNECT only */

	char *buf;
	unsigned buf_size;

	struct vec deferred;	/* struct deferred, FIFO */
	struct vec blocked;	/* struct blocked_send, in send order */
	struct vec deadlines;	/* struct conn_deadline, FIFO */

	struct {
		int fd;
		uint32_t tag;
	} listeners[MAX_LISTENERS];
	unsigned nr_listeners;

	struct etimer timers[LOOP_MAX_TIMERS];
	struct epoll_poll polls[LOOP_MAX_POLLS];
	struct epoll_event events[MAX_EVENTS];
};

static const int one = 1;

static inline struct epoll_loop *to_epoll(struct loop *loop)
{
	return (struct epoll_loop *)loop;
}

static inline uint64_t data_make(enum ekind kind, uint32_t gen, uint32_t idx)
{
	return (uint64_t)kind << 56 | (uint64_t)(gen & GEN_MASK) << 32 | idx;
}

/* Makes the epoll registration of slot match what its state needs. */
static int update_interest(struct epoll_loop *e, uint32_t slot)
{
	struct eslot *s = &e->slots[slot];
	struct epoll_event ev = { 0 };
	uint8_t want = 0;
	int op;

	if ((s->flags & (S_RECV | S_CLOSING)) == S_RECV)
		want |= I_IN;
	if ((s->flags & (S_CONNECTING | S_SEND_WAIT)) &&
	    !(s->flags & S_CLOSING))
		want |= I_OUT;
	if (want)
		want |= I_REG;
	if (want == s->interest)
		return 0;
	if (!want)
		op = EPOLL_CTL_DEL;
	else if (s->interest & I_REG)
		op = EPOLL_CTL_MOD;
	else
		op = EPOLL_CTL_ADD;
	ev.events = (want & I_IN ? EPOLLIN | EPOLLRDHUP : 0) |
		    (want & I_OUT ? EPOLLOUT : 0);
	ev.data.u64 = data_make(EK_SLOT, s->gen, slot);
	if (epoll_ctl(e->epfd, op, (int)slot, &ev) < 0)
		return -errno;
	s->interest = want;
	return 0;
}

static int defer(struct epoll_loop *e, enum deferred_type type, uint32_t slot,
		 int32_t res)
{
	struct deferred d = {
		.slot = slot, .gen = e->slots[slot].gen, .res = res,
		.type = (uint8_t)type,
	};

	return vec_push(&e->deferred, &d);
}

/* Closes the descriptor; anything still queued for it is now stale. */
static void release_slot(struct epoll_loop *e, uint32_t slot)
{
	struct eslot *s = &e->slots[slot];

	/* close() drops the descriptor from the epoll set by itself. */
	close((int)slot);
	s->gen++;
	s->flags = 0;
	s->interest = 0;
}

/* Takes a new descriptor as a slot; one beyond the capacity is refused. */
static int claim_slot(struct epoll_loop *e, int fd, uint8_t flags)
{
	if ((unsigned)fd >= e->base.capacity) {
		close(fd);
		return -ENFILE;
	}
	e->slots[fd].flags = flags;
	e->slots[fd].interest = 0;
	return fd;
}

static int epoll_listen(struct loop *loop, int fd, uint32_t tag)
{
	struct epoll_loop *e = to_epoll(loop);
	unsigned idx = e->nr_listeners;
	struct epoll_event ev = { .events = EPOLLIN };
	int flags;

	if (idx == MAX_LISTENERS)
		return -ENOSPC;
	/* Accepting until EAGAIN needs a non-blocking listener. */
	flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
		return -errno;
	if (e->spare_fd < 0) {
		e->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (e->spare_fd < 0)
			return -errno;
	}
	ev.data.u64 = data_make(EK_LISTEN, 0, idx);
	if (epoll_ctl(e->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return -errno;
	e->listeners[idx].fd = fd;
	e->listeners[idx].tag = tag;
	e->nr_listeners++;
	return 0;
}

/*
 * Out of descriptors, a pending connection keeps the listener readable and
 * a level-triggered loop would spin on it.  Give up the spare descriptor,
 * accept the connection, close it (the peer sees a reset or EOF) and take
 * the spare back.
 */
static bool accept_and_drop(struct epoll_loop *e, int listen_fd)
{
	int fd;

	if (e->spare_fd < 0)
		return false;
	close(e->spare_fd);
	/* accept4 takes a descriptor before it looks at the queue, so the
	 * EMFILE may have come with nothing pending: then this one finds
	 * EAGAIN. */
	fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
	if (fd >= 0)
		close(fd);
	e->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	return fd >= 0;
}

static void handle_accept(struct epoll_loop *e, unsigned idx)
{
	int listen_fd = e->listeners[idx].fd;
	uint32_t tag = e->listeners[idx].tag;

	for (unsigned n = 0; n < ACCEPT_BATCH && !e->base.stop; n++) {
		int fd = accept4(listen_fd, NULL, NULL,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);
		int res;

		if (fd < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			if (errno == ECONNABORTED)
				continue;
			res = -errno;
			if (res == -EMFILE || res == -ENFILE) {
				if (!accept_and_drop(e, listen_fd))
					return;
				res = -ENFILE;
			}
			loop_emit(&e->base, LOOP_EV_ACCEPT, UINT32_MAX, tag,
				  res, NULL);
			if (res != -ENFILE)
				return;
			continue;
		}
		res = claim_slot(e, fd, S_OPEN);
		loop_emit(&e->base, LOOP_EV_ACCEPT,
			  res >= 0 ? (uint32_t)res : UINT32_MAX, tag, res, NULL);
	}
}

static int epoll_connect(struct loop *loop, const struct sockaddr *src,
			 const struct sockaddr *dst, socklen_t len,
			 unsigned timeout_ms, uint32_t tag)
{
	struct epoll_loop *e = to_epoll(loop);
	struct eslot *s;
	int fd, ret;

	if (!e->conn_tag)
		return -EINVAL;
	fd = socket(dst->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (src && (setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one,
			       sizeof(one)) < 0 || bind(fd, src, len) < 0)) {
		ret = -errno;
		close(fd);
		return ret;
	}
	ret = claim_slot(e, fd, S_OPEN | S_CONNECTING);
	if (ret < 0)
		return ret;
	s = &e->slots[fd];
	e->conn_tag[fd] = tag;
	ret = connect(fd, dst, len) < 0 ? -errno : 0;
	if (ret != -EINPROGRESS) {
		/* Finished at once (either way): report it from the loop. */
		ret = defer(e, D_CONNECT, (uint32_t)fd, ret);
	} else {
		ret = update_interest(e, (uint32_t)fd);
		if (!ret && timeout_ms) {
			struct conn_deadline d = {
				.slot = (uint32_t)fd, .gen = s->gen,
				.deadline_ms = loop_now_ms() + timeout_ms,
			};

			ret = vec_push(&e->deadlines, &d);
		}
	}
	if (ret < 0) {
		release_slot(e, (uint32_t)fd);
		return ret;
	}
	return fd;
}

/*
 * Reports the outcome of a connect.  A failed one never belonged to the
 * program: its descriptor is closed right after the event, with no
 * LOOP_EV_CLOSED (the io_uring backend does the same).
 */
static void finish_connect(struct epoll_loop *e, uint32_t slot, int res)
{
	struct eslot *s = &e->slots[slot];

	s->flags &= (uint8_t)~S_CONNECTING;
	if (res < 0)
		s->flags &= (uint8_t)~S_OPEN;	/* no calls on it from the callback */
	loop_emit(&e->base, LOOP_EV_CONNECT, slot, e->conn_tag[slot], res, NULL);
	if (res < 0)
		release_slot(e, slot);
	else if (!(s->flags & S_CLOSING))
		update_interest(e, slot);
}

static void expire_connects(struct epoll_loop *e, uint64_t now)
{
	while (e->deadlines.len) {
		struct conn_deadline *d = vec_at(&e->deadlines, 0);
		struct eslot *s = &e->slots[d->slot];
		struct conn_deadline cur;

		if (s->gen == d->gen && (s->flags & S_CONNECTING) &&
		    d->deadline_ms > now)
			return;
		vec_pop(&e->deadlines, &cur);
		if (s->gen == cur.gen &&
		    (s->flags & (S_CONNECTING | S_CLOSING)) == S_CONNECTING)
			finish_connect(e, cur.slot, -ETIMEDOUT);
	}
}

static int epoll_recv_start(struct loop *loop, uint32_t slot)
{
	struct epoll_loop *e = to_epoll(loop);
	struct eslot *s = &e->slots[slot];
	int ret;

	if ((s->flags & (S_OPEN | S_CLOSING | S_CONNECTING)) != S_OPEN)
		return -EBADF;
	if (s->flags & S_RECV)
		return -EALREADY;
	s->flags |= S_RECV;
	ret = update_interest(e, slot);
	if (ret < 0)
		s->flags &= (uint8_t)~S_RECV;
	return ret;
}

static void handle_recv(struct epoll_loop *e, uint32_t slot, uint32_t events)
{
	struct eslot *s = &e->slots[slot];
	uint32_t gen = s->gen;

	for (unsigned n = 0; n < RECV_BATCH; n++) {
		ssize_t ret = recv((int)slot, e->buf, e->buf_size, 0);

		if (ret < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		loop_emit(&e->base, LOOP_EV_RECV, slot, 0,
			  ret < 0 ? -errno : (int32_t)ret, e->buf);
		/* The callback may have closed or replaced the slot. */
		if (s->gen != gen || (s->flags & (S_RECV | S_CLOSING)) != S_RECV)
			return;
		if (ret <= 0) {
			s->flags &= (uint8_t)~S_RECV;
			update_interest(e, slot);
			return;
		}
		/* A short read emptied the socket: skip the EAGAIN round trip
		 * unless the peer also shut down (then read its EOF now). */
		if ((size_t)ret < e->buf_size && !(events & (EPOLLRDHUP | EPOLLHUP |
							     EPOLLERR)))
			return;
	}
}

/* Writes what it can; -EAGAIN means the socket buffer is full. */
static int try_send(uint32_t slot, const void *buf, size_t len)
{
	ssize_t ret = send((int)slot, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);

	if (ret < 0)
		return errno == EINTR ? -EAGAIN : -errno;
	return (int)(ret > INT32_MAX ? INT32_MAX : ret);
}

static int epoll_send(struct loop *loop, uint32_t slot, const void *buf,
		      size_t len)
{
	struct epoll_loop *e = to_epoll(loop);
	struct eslot *s = &e->slots[slot];
	struct blocked_send b;
	int ret;

	if ((s->flags & (S_OPEN | S_CLOSING | S_CONNECTING)) != S_OPEN)
		return -EBADF;
	/* Behind a blocked send, bytes must wait their turn. */
	ret = s->flags & S_SEND_WAIT ? -EAGAIN : try_send(slot, buf, len);
	if (ret != -EAGAIN)
		return defer(e, D_SEND, slot, ret);
	b = (struct blocked_send){ .slot = slot, .gen = s->gen, .buf = buf,
				   .len = len };
	ret = vec_push(&e->blocked, &b);
	if (ret < 0)
		return ret;
	s->flags |= S_SEND_WAIT;
	return update_interest(e, slot);
}

/*
 * Blocked sends are rare, so their list is short and kept as a plain array
 * (never popped, so the ring's head stays 0).  One pass retries the sends of
 * slot (if any) in order and compacts out what was sent and what is stale.
 */
static bool blocked_pass(struct epoll_loop *e, uint32_t slot)
{
	struct vec *v = &e->blocked;
	struct blocked_send *items = v->items;
	size_t keep = 0;
	bool stuck = false;

	for (size_t i = 0; i < v->len; i++) {
		struct blocked_send *b = &items[i];
		struct eslot *bs = &e->slots[b->slot];
		int ret;

		if (bs->gen != b->gen ||
		    (bs->flags & (S_SEND_WAIT | S_CLOSING)) != S_SEND_WAIT)
			continue;
		if (b->slot != slot || stuck) {
			items[keep++] = *b;
			continue;
		}
		ret = try_send(slot, b->buf, b->len);
		if (ret == -EAGAIN) {
			stuck = true;
			items[keep++] = *b;
			continue;
		}
		/* After a short write the caller sends the rest: nothing else
		 * for this slot may go out before it. */
		if (ret >= 0 && (size_t)ret < b->len)
			stuck = true;
		defer(e, D_SEND, slot, ret);
	}
	v->len = keep;
	return stuck;
}

static void blocked_purge(struct epoll_loop *e)
{
	blocked_pass(e, UINT32_MAX);
}

/* EPOLLOUT on a connected slot with blocked sends. */
static void handle_blocked(struct epoll_loop *e, uint32_t slot)
{
	if (!blocked_pass(e, slot)) {
		e->slots[slot].flags &= (uint8_t)~S_SEND_WAIT;
		update_interest(e, slot);
	}
}

static int epoll_close(struct loop *loop, uint32_t slot)
{
	struct epoll_loop *e = to_epoll(loop);
	struct eslot *s = &e->slots[slot];
	int ret;

	if (!(s->flags & S_OPEN))
		return -EBADF;
	if (s->flags & S_CLOSING)
		return -EALREADY;
	ret = defer(e, D_CLOSE, slot, 0);
	if (ret < 0)
		return ret;
	/* Events until the deferred close are dropped by S_CLOSING; close()
	 * takes the descriptor out of the epoll set, saving an epoll_ctl. */
	s->flags |= S_CLOSING;
	if (s->flags & S_SEND_WAIT)
		blocked_purge(e);
	return 0;
}

/* Delivers what was queued before this call; later additions wait a turn. */
static void run_deferred(struct epoll_loop *e)
{
	size_t n = e->deferred.len;

	while (n-- && !e->base.stop) {
		struct deferred d;
		struct eslot *s;

		vec_pop(&e->deferred, &d);
		s = &e->slots[d.slot];
		if (s->gen != d.gen)
			continue;
		switch (d.type) {
		case D_SEND:
			/* A send on a closing slot is not reported. */
			if ((s->flags & (S_OPEN | S_CLOSING)) == S_OPEN)
				loop_emit(&e->base, LOOP_EV_SEND, d.slot, 0,
					  d.res, NULL);
			break;
		case D_CONNECT:
			if (s->flags & S_CLOSING)
				break;	/* its D_CLOSE follows */
			finish_connect(e, d.slot, d.res);
			break;
		case D_CLOSE:
			release_slot(e, d.slot);
			loop_emit(&e->base, LOOP_EV_CLOSED, d.slot, 0, 0, NULL);
			break;
		}
	}
}

static void handle_slot(struct epoll_loop *e, uint32_t slot, uint32_t gen,
			uint32_t events)
{
	struct eslot *s = &e->slots[slot];

	if ((s->gen & GEN_MASK) != gen ||
	    (s->flags & (S_OPEN | S_CLOSING)) != S_OPEN)
		return;
	if (s->flags & S_CONNECTING) {
		int err = 0;
		socklen_t len = sizeof(err);

		if (getsockopt((int)slot, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			err = errno;
		if (!err && !(events & EPOLLOUT))
			return;
		finish_connect(e, slot, -err);
		return;
	}
	if ((s->flags & S_RECV) &&
	    (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
		handle_recv(e, slot, events);
	if ((s->gen & GEN_MASK) == gen && (s->flags & S_SEND_WAIT) &&
	    (events & (EPOLLOUT | EPOLLHUP | EPOLLERR)))
		handle_blocked(e, slot);
}

static int epoll_timer(struct loop *loop, unsigned id, uint64_t ms)
{
	struct epoll_loop *e = to_epoll(loop);

	e->timers[id].deadline_ms = loop_now_ms() + ms;
	e->timers[id].pending = true;
	return 0;
}

static int epoll_timer_cancel(struct loop *loop, unsigned id)
{
	to_epoll(loop)->timers[id].pending = false;
	return 0;
}

static void expire_timers(struct epoll_loop *e, uint64_t now)
{
	for (;;) {
		struct etimer *first = NULL;
		unsigned id = 0;

		/* Earliest first, as io_uring completes them. */
		for (unsigned i = 0; i < LOOP_MAX_TIMERS; i++) {
			struct etimer *t = &e->timers[i];

			if (t->pending && t->deadline_ms <= now &&
			    (!first || t->deadline_ms < first->deadline_ms)) {
				first = t;
				id = i;
			}
		}
		if (!first || e->base.stop)
			return;
		first->pending = false;
		loop_emit(&e->base, LOOP_EV_TIMER, 0, id, 0, NULL);
	}
}

static int epoll_poll_cancel(struct loop *loop, unsigned id)
{
	struct epoll_loop *e = to_epoll(loop);
	struct epoll_poll *p = &e->polls[id];

	if (!p->active)
		return 0;
	/* The fd may be closed already, which removed it by itself. */
	epoll_ctl(e->epfd, EPOLL_CTL_DEL, p->fd, NULL);
	p->active = false;
	p->gen++;
	return 0;
}

static int epoll_poll(struct loop *loop, unsigned id, int fd, unsigned events)
{
	struct epoll_loop *e = to_epoll(loop);
	struct epoll_poll *p = &e->polls[id];
	struct epoll_event ev = { 0 };

	epoll_poll_cancel(loop, id);
	/* poll(2) and epoll share the bit values of POLLIN, POLLOUT... */
	ev.events = events;
	ev.data.u64 = data_make(EK_POLL, p->gen, id);
	if (epoll_ctl(e->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return -errno;
	p->fd = fd;
	p->active = true;
	return 0;
}

static void handle_event(struct epoll_loop *e, const struct epoll_event *ev)
{
	uint64_t data = ev->data.u64;
	uint32_t idx = (uint32_t)data;
	uint32_t gen = (uint32_t)(data >> 32) & GEN_MASK;

	switch ((enum ekind)(data >> 56)) {
	case EK_SLOT:
		if (idx < e->base.capacity)
			handle_slot(e, idx, gen, ev->events);
		return;
	case EK_LISTEN:
		handle_accept(e, idx);
		return;
	case EK_POLL: {
		struct epoll_poll *p = &e->polls[idx];

		if ((p->gen & GEN_MASK) != gen || !p->active)
			return;
		loop_emit(&e->base, LOOP_EV_POLL, 0, idx,
			  (int32_t)(ev->events & (POLLIN | POLLPRI | POLLOUT |
						  POLLERR | POLLHUP)), NULL);
		return;
	}
	case EK_WAKE: {
		uint64_t v;

		if (read(e->base.wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
			return;
		loop_emit(&e->base, LOOP_EV_WAKE, 0, 0, 0, NULL);
		return;
	}
	}
}

/* Milliseconds epoll_wait may sleep: until the next timer or deadline. */
static int wait_timeout(struct epoll_loop *e, uint64_t now)
{
	uint64_t next = UINT64_MAX;

	if (e->deferred.len)
		return 0;
	for (unsigned i = 0; i < LOOP_MAX_TIMERS; i++)
		if (e->timers[i].pending && e->timers[i].deadline_ms < next)
			next = e->timers[i].deadline_ms;
	if (e->deadlines.len) {
		struct conn_deadline *d = vec_at(&e->deadlines, 0);

		if (d->deadline_ms < next)
			next = d->deadline_ms;
	}
	if (next == UINT64_MAX)
		return -1;
	if (next <= now)
		return 0;
	return next - now > INT32_MAX ? INT32_MAX : (int)(next - now);
}

static int epoll_run(struct loop *loop)
{
	struct epoll_loop *e = to_epoll(loop);

	while (!loop->stop) {
		uint64_t now;
		int n;

		run_deferred(e);
		if (loop->stop)
			break;
		n = epoll_wait(e->epfd, e->events, MAX_EVENTS,
			       wait_timeout(e, loop_now_ms()));
		if (n < 0 && errno != EINTR)
			return -errno;
		for (int i = 0; i < n; i++)
			handle_event(e, &e->events[i]);
		now = loop_now_ms();
		expire_connects(e, now);
		expire_timers(e, now);
	}
	return 0;
}

static void epoll_free(struct loop *loop)
{
	struct epoll_loop *e = to_epoll(loop);

	for (uint32_t slot = 0; e->slots && slot < e->base.capacity; slot++)
		if (e->slots[slot].flags & S_OPEN)
			close((int)slot);
	if (e->epfd >= 0)
		close(e->epfd);
	if (e->spare_fd >= 0)
		close(e->spare_fd);
	if (e->base.wake_fd >= 0)
		close(e->base.wake_fd);
	free(e->deferred.items);
	free(e->blocked.items);
	free(e->deadlines.items);
	free(e->buf);
	free(e->slots);
	free(e->conn_tag);
	free(e);
}

static const struct loop_ops epoll_ops = {
	.listen = epoll_listen,
	.connect = epoll_connect,
	.recv_start = epoll_recv_start,
	.send = epoll_send,
	.close = epoll_close,
	.timer = epoll_timer,
	.timer_cancel = epoll_timer_cancel,
	.poll = epoll_poll,
	.poll_cancel = epoll_poll_cancel,
	.run = epoll_run,
	.free = epoll_free,
};

struct loop *loop_epoll_new(const struct loop_config *cfg, int *err,
			    const char **why)
{
	struct epoll_event ev = { .events = EPOLLIN };
	struct epoll_loop *e;
	int ret;

	e = calloc(1, sizeof(*e));
	if (!e) {
		*err = -ENOMEM;
		*why = "allocating the loop";
		return NULL;
	}
	e->base.ops = &epoll_ops;
	e->base.backend = LOOP_BACKEND_EPOLL;
	e->base.wake_fd = -1;
	e->spare_fd = -1;
	e->deferred.size = sizeof(struct deferred);
	e->blocked.size = sizeof(struct blocked_send);
	e->deadlines.size = sizeof(struct conn_deadline);
	e->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (e->epfd < 0) {
		ret = -errno;
		*why = "epoll_create1";
		goto fail;
	}
	e->base.capacity = cfg->capacity ? cfg->capacity
					 : loop_default_capacity();
	e->buf_size = cfg->buf_size ? cfg->buf_size : 2048;
	e->buf = malloc(e->buf_size);
	e->slots = calloc(e->base.capacity, sizeof(*e->slots));
	if (cfg->flags & LOOP_F_CONNECT)
		e->conn_tag = calloc(e->base.capacity, sizeof(*e->conn_tag));
	if (!e->buf || !e->slots ||
	    ((cfg->flags & LOOP_F_CONNECT) && !e->conn_tag)) {
		ret = -ENOMEM;
		*why = "allocating slots";
		goto fail;
	}
	e->base.wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (e->base.wake_fd < 0) {
		ret = -errno;
		*why = "eventfd";
		goto fail;
	}
	ev.data.u64 = data_make(EK_WAKE, 0, 0);
	if (epoll_ctl(e->epfd, EPOLL_CTL_ADD, e->base.wake_fd, &ev) < 0) {
		ret = -errno;
		*why = "watching the wake-up eventfd";
		goto fail;
	}
	snprintf(e->base.features, sizeof(e->base.features),
		 "level-triggered, %u descriptor slots, %u B recv buffer",
		 e->base.capacity, e->buf_size);
	return &e->base;
fail:
	*err = ret;
	epoll_free(&e->base);
	return NULL;
}
