/* SPDX-License-Identifier: MIT */
/*
 * io_uring backend.
 *
 * Connections are direct descriptors: slots of the ring's fixed-file table,
 * which cost no ordinary fd, so one process can hold far more connections
 * than RLIMIT_NOFILE by running several rings.  Accepted connections get a
 * slot picked by the kernel (IORING_FILE_INDEX_ALLOC); outgoing ones get a
 * slot from a user-space free list, so socket, setsockopt, bind and connect
 * can be linked into one chain before the socket exists.
 *
 * user_data: op (8 bits) | generation (16 bits) | slot or id (32 bits).
 * Every slot has a generation that is bumped when the slot is released, so a
 * late completion for an earlier connection in the same slot is recognised
 * and dropped (after returning its receive buffer).
 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <liburing.h>

#include "loop_internal.h"

/* Newer than liburing 2.3's headers; probed at run time. */
#ifndef IORING_OP_BIND
#define IORING_OP_BIND 56
#endif
#define URING_CMD_SETSOCKOPT 3	/* SOCKET_URING_OP_SETSOCKOPT */
#ifndef IORING_ACCEPT_DONTWAIT
#define IORING_ACCEPT_DONTWAIT (1U << 1)	/* 6.10 */
#endif
#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define SQ_ENTRIES	512
#define CQ_ENTRIES	4096
#define CQE_BATCH	1024
#define MAX_LISTENERS	16
#define BUF_GROUP	0

enum uop {
	UOP_IGNORE = 0,		/* cancels, removals: nothing to do */
	UOP_ACCEPT,
	UOP_LISTEN_POLL,	/* a listener has connections waiting */
	UOP_RECV,
	UOP_SEND,
	UOP_CONN_PREP,		/* socket/setsockopt/bind: CQE only on failure */
	UOP_CONNECT,
	UOP_CLOSE,
	UOP_TIMER,
	UOP_POLL,
	UOP_WAKE,
	UOP_DRAIN,		/* loop_free(): the cancel-everything request */
};

/* Per-slot state: 4 bytes. */
struct uslot {
	uint16_t gen;
	uint8_t inflight;	/* CQEs still owed for this slot */
	uint8_t flags;
};

enum {
	S_OPEN		= 1 << 0,
	S_RECV		= 1 << 1,	/* multishot recv armed */
	S_CLOSING	= 1 << 2,	/* loop_close() called */
	S_CLOSE_SENT	= 1 << 3,	/* close_direct submitted */
	S_CONNECTING	= 1 << 4,
	S_CONN_OK	= 1 << 5,
	S_TIMED_OUT	= 1 << 6,
	S_SILENT	= 1 << 7,	/* failed connect: release without an event */
};

struct conn_deadline {
	uint64_t at_ms;
	uint32_t slot;
	uint16_t gen;
};

struct utimer {
	struct __kernel_timespec ts;
	uint16_t gen;
	bool pending;
};

struct upoll {
	int fd;
	unsigned events;
	uint16_t gen;
	bool active;
};

struct uring_loop {
	struct loop base;
	struct io_uring ring;
	struct uslot *slots;

	/* Outgoing connections (LOOP_F_CONNECT only). */
	uint32_t *free_slots;
	uint32_t nr_free;
	uint32_t *conn_tag;
	int16_t *conn_err;
	struct vec deadlines;	/* struct conn_deadline, see expire_connects() */
	bool async_bind;	/* IORING_OP_BIND + setsockopt uring_cmd */

	/* Provided buffer ring for receives. */
	struct io_uring_buf_ring *br;
	size_t br_size;
	char *bufs;
	unsigned buf_count, buf_size, buf_mask;

	struct {
		int fd;
		uint32_t tag;
		bool accepting;	/* a draining accept is in flight */
		bool again;	/* ...and the listener polled ready since */
	} listeners[MAX_LISTENERS];
	unsigned nr_listeners;
	/* Accepts are driven by a poll on each listener (see arm_listener()),
	 * or, on kernels without IORING_ACCEPT_DONTWAIT, by a plain multishot
	 * accept. */
	bool lazy_accept;
	bool dontwait_known;	/* an accept with it did not fail -EINVAL */

	/* An ended multishot accept was re-armed: its next completion may be
	 * due at once (a full table refuses one connection per arm), so the
	 * next wait must not sleep for a batch. */
	bool rearmed;
	/* A submission failed for good: loop_run() returns it, since some
	 * multishot request or close could not be queued. */
	int fatal;

	struct utimer timers[LOOP_MAX_TIMERS];
	struct upoll polls[LOOP_MAX_POLLS];
	uint16_t wake_gen;
	uint64_t wake_buf;
};

static const int one = 1;

static inline struct uring_loop *to_uring(struct loop *loop)
{
	return (struct uring_loop *)loop;
}

static inline uint64_t ud_make(enum uop op, uint16_t gen, uint32_t idx)
{
	return (uint64_t)op << 56 | (uint64_t)gen << 32 | idx;
}

static inline enum uop ud_op(uint64_t ud)
{
	return (enum uop)(ud >> 56);
}

static inline uint16_t ud_gen(uint64_t ud)
{
	return (uint16_t)(ud >> 32);
}

static inline uint32_t ud_idx(uint64_t ud)
{
	return (uint32_t)ud;
}

/* A full submission queue is normal: submit what is queued and retry. */
static struct io_uring_sqe *get_sqe(struct uring_loop *u)
{
	struct io_uring_sqe *sqe;

	while (!(sqe = io_uring_get_sqe(&u->ring))) {
		int ret = io_uring_submit(&u->ring);

		if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY) {
			if (!u->fatal)
				u->fatal = ret;
			return NULL;
		}
	}
	return sqe;
}

/* Makes room for a chain of n linked SQEs: a link must not span submits. */
static int reserve_sqes(struct uring_loop *u, unsigned n)
{
	while (io_uring_sq_space_left(&u->ring) < n) {
		int ret = io_uring_submit(&u->ring);

		if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY)
			return ret;
	}
	return 0;
}

static void buf_recycle(struct uring_loop *u, unsigned bid)
{
	io_uring_buf_ring_add(u->br, u->bufs + (size_t)bid * u->buf_size,
			      u->buf_size, (unsigned short)bid, u->buf_mask, 0);
	io_uring_buf_ring_advance(u->br, 1);
}

/*
 * Accepting.  A multishot accept waits on the listener exclusively, and the
 * kernel wakes the ring's thread for every connection it accepts: at tens of
 * thousands of connections a second, one context switch (and an IPI) per
 * connection.  A multishot poll on the listener instead queues its task work
 * lazily, so it is run with the rest of the batch loop_set_batch() asked
 * for; each time it fires, one accept with IORING_ACCEPT_DONTWAIT takes every
 * connection waiting and ends with -EAGAIN.  The listen backlog holds the
 * connections in between.
 */
static int arm_accept(struct uring_loop *u, unsigned idx)
{
	struct io_uring_sqe *sqe = get_sqe(u);

	if (!sqe)
		return -EBUSY;
	io_uring_prep_multishot_accept_direct(sqe, u->listeners[idx].fd, NULL,
					      NULL, 0);
	if (u->lazy_accept)
		sqe->ioprio |= IORING_ACCEPT_DONTWAIT;
	u->listeners[idx].accepting = true;
	u->listeners[idx].again = false;
	io_uring_sqe_set_data64(sqe, ud_make(UOP_ACCEPT, 0, idx));
	return 0;
}

static int arm_listen_poll(struct uring_loop *u, unsigned idx)
{
	struct io_uring_sqe *sqe = get_sqe(u);

	if (!sqe)
		return -EBUSY;
	io_uring_prep_poll_multishot(sqe, u->listeners[idx].fd, POLLIN);
	io_uring_sqe_set_data64(sqe, ud_make(UOP_LISTEN_POLL, 0, idx));
	return 0;
}

static int arm_recv(struct uring_loop *u, uint32_t slot)
{
	struct uslot *s = &u->slots[slot];
	struct io_uring_sqe *sqe = get_sqe(u);

	if (!sqe)
		return -EBUSY;
	io_uring_prep_recv_multishot(sqe, (int)slot, NULL, 0, 0);
	sqe->flags |= IOSQE_FIXED_FILE | IOSQE_BUFFER_SELECT;
	sqe->buf_group = BUF_GROUP;
	io_uring_sqe_set_data64(sqe, ud_make(UOP_RECV, s->gen, slot));
	s->flags |= S_RECV;
	s->inflight++;
	return 0;
}

static int arm_wake(struct uring_loop *u)
{
	struct io_uring_sqe *sqe = get_sqe(u);

	if (!sqe)
		return -EBUSY;
	io_uring_prep_poll_multishot(sqe, u->base.wake_fd, POLLIN);
	io_uring_sqe_set_data64(sqe, ud_make(UOP_WAKE, u->wake_gen, 0));
	return 0;
}

static int arm_poll(struct uring_loop *u, unsigned id)
{
	struct upoll *p = &u->polls[id];
	struct io_uring_sqe *sqe = get_sqe(u);

	if (!sqe)
		return -EBUSY;
	io_uring_prep_poll_multishot(sqe, p->fd, p->events);
	io_uring_sqe_set_data64(sqe, ud_make(UOP_POLL, p->gen, id));
	return 0;
}

static void release_slot(struct uring_loop *u, uint32_t slot)
{
	struct uslot *s = &u->slots[slot];

	s->gen++;
	s->flags = 0;
	s->inflight = 0;
	if (u->free_slots)
		u->free_slots[u->nr_free++] = slot;
}

static void submit_close(struct uring_loop *u, uint32_t slot)
{
	struct uslot *s = &u->slots[slot];
	struct io_uring_sqe *sqe = get_sqe(u);

	if (!sqe)
		return;
	io_uring_prep_close_direct(sqe, slot);
	io_uring_sqe_set_data64(sqe, ud_make(UOP_CLOSE, s->gen, slot));
	s->flags |= S_CLOSE_SENT;
	s->inflight++;
}

/* Called whenever a CQE for a closing slot came in. */
static inline void maybe_close(struct uring_loop *u, uint32_t slot)
{
	struct uslot *s = &u->slots[slot];

	if ((s->flags & (S_CLOSING | S_CLOSE_SENT)) == S_CLOSING &&
	    !s->inflight)
		submit_close(u, slot);
}

static int uring_listen(struct loop *loop, int fd, uint32_t tag)
{
	struct uring_loop *u = to_uring(loop);
	unsigned idx = u->nr_listeners;

	if (u->free_slots)
		return -EINVAL;	/* slots are managed in user space */
	if (idx == MAX_LISTENERS)
		return -ENOSPC;
	u->listeners[idx].fd = fd;
	u->listeners[idx].tag = tag;
	u->nr_listeners++;
	if (u->lazy_accept) {
		int ret = arm_listen_poll(u, idx);

		if (ret < 0)
			return ret;
	}
	/* Takes what is already queued; under lazy_accept it is also the
	 * probe for IORING_ACCEPT_DONTWAIT (-EINVAL without it). */
	return arm_accept(u, idx);
}

/*
 * Without IORING_OP_BIND (kernels before 6.11) the source address is bound
 * on an ordinary socket, which then moves into the fixed table.
 */
static int sync_bound_socket(struct uring_loop *u, uint32_t slot,
			     const struct sockaddr *src, socklen_t len)
{
	int fd, ret;

	fd = socket(src->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	ret = 0;
	if (setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one,
		       sizeof(one)) < 0 || bind(fd, src, len) < 0)
		ret = -errno;
	if (!ret) {
		ret = io_uring_register_files_update(&u->ring, slot, &fd, 1);
		ret = ret == 1 ? 0 : (ret < 0 ? ret : -EIO);
	}
	close(fd);
	return ret;
}

/*
 * Connect timeouts.  A linked timeout per connect costs an hrtimer armed and
 * cancelled for every connection (about a tenth of the CPU a loopback
 * connect takes).  Every connect of a loop gets the same timeout, so their
 * deadlines come in order: a FIFO, checked before each wait, and the wait
 * bounded by its head.  A connect still in progress at its deadline is
 * cancelled and reported as -ETIMEDOUT.
 */
static int cancel_connect(struct uring_loop *u, uint32_t slot);

/* Returns ms until the next deadline, or -1 if none is pending. */
static int64_t expire_connects(struct uring_loop *u)
{
	uint64_t now = loop_now_ms();

	while (u->deadlines.len) {
		struct conn_deadline *d = vec_at(&u->deadlines, 0);
		struct conn_deadline cur;
		struct uslot *s = &u->slots[d->slot];

		if (d->at_ms > now)
			return (int64_t)(d->at_ms - now);
		vec_pop(&u->deadlines, &cur);
		if (s->gen == cur.gen &&
		    (s->flags & (S_CONNECTING | S_CLOSING)) == S_CONNECTING) {
			s->flags |= S_TIMED_OUT;
			cancel_connect(u, cur.slot);
		}
	}
	return -1;
}

static int uring_connect(struct loop *loop, const struct sockaddr *src,
			 const struct sockaddr *dst, socklen_t len,
			 unsigned timeout_ms, uint32_t tag)
{
	struct uring_loop *u = to_uring(loop);
	struct io_uring_sqe *sqe;
	struct uslot *s;
	uint32_t slot;
	uint16_t gen;
	int ret;

	if (!u->free_slots)
		return -EINVAL;
	if (!u->nr_free)
		return -ENFILE;
	ret = reserve_sqes(u, 4);
	if (ret < 0)
		return ret;
	slot = u->free_slots[--u->nr_free];
	s = &u->slots[slot];
	gen = s->gen;
	s->flags = S_OPEN | S_CONNECTING;
	s->inflight = 0;
	u->conn_tag[slot] = tag;
	u->conn_err[slot] = 0;
	if (timeout_ms) {
		struct conn_deadline d = {
			.at_ms = loop_now_ms() + timeout_ms, .slot = slot, .gen = gen,
		};

		if (vec_push(&u->deadlines, &d) < 0) {
			release_slot(u, slot);
			return -ENOMEM;
		}
	}

	if (src && !u->async_bind) {
		ret = sync_bound_socket(u, slot, src, len);
		if (ret < 0) {
			release_slot(u, slot);
			return ret;
		}
	} else {
		sqe = io_uring_get_sqe(&u->ring);
		io_uring_prep_socket_direct(sqe, dst->sa_family, SOCK_STREAM, 0,
					    slot, 0);
		sqe->flags |= IOSQE_IO_LINK | IOSQE_CQE_SKIP_SUCCESS;
		io_uring_sqe_set_data64(sqe, ud_make(UOP_CONN_PREP, gen, slot));
	}
	if (src && u->async_bind) {
		uint32_t *level_name;

		sqe = io_uring_get_sqe(&u->ring);
		io_uring_prep_rw(IORING_OP_URING_CMD, sqe, (int)slot, NULL, 0, 0);
		sqe->flags = IOSQE_FIXED_FILE | IOSQE_IO_LINK |
			     IOSQE_CQE_SKIP_SUCCESS;
		sqe->cmd_op = URING_CMD_SETSOCKOPT;
		level_name = (uint32_t *)&sqe->addr;
		level_name[0] = IPPROTO_IP;
		level_name[1] = IP_BIND_ADDRESS_NO_PORT;
		sqe->addr3 = (uint64_t)(uintptr_t)&one;
		sqe->file_index = sizeof(one);	/* optlen */
		io_uring_sqe_set_data64(sqe, ud_make(UOP_CONN_PREP, gen, slot));

		sqe = io_uring_get_sqe(&u->ring);
		io_uring_prep_rw(IORING_OP_BIND, sqe, (int)slot, src, 0, len);
		sqe->flags = IOSQE_FIXED_FILE | IOSQE_IO_LINK |
			     IOSQE_CQE_SKIP_SUCCESS;
		io_uring_sqe_set_data64(sqe, ud_make(UOP_CONN_PREP, gen, slot));
	}

	sqe = io_uring_get_sqe(&u->ring);
	io_uring_prep_connect(sqe, (int)slot, dst, len);
	sqe->flags |= IOSQE_FIXED_FILE;
	io_uring_sqe_set_data64(sqe, ud_make(UOP_CONNECT, gen, slot));
	s->inflight++;
	return (int)slot;
}

static int uring_recv_start(struct loop *loop, uint32_t slot)
{
	struct uring_loop *u = to_uring(loop);
	struct uslot *s = &u->slots[slot];

	if ((s->flags & (S_OPEN | S_CLOSING | S_CONNECTING)) != S_OPEN)
		return -EBADF;
	if (s->flags & S_RECV)
		return -EALREADY;
	return arm_recv(u, slot);
}

static int uring_send(struct loop *loop, uint32_t slot, const void *buf,
		      size_t len)
{
	struct uring_loop *u = to_uring(loop);
	struct uslot *s = &u->slots[slot];
	struct io_uring_sqe *sqe;

	if ((s->flags & (S_OPEN | S_CLOSING | S_CONNECTING)) != S_OPEN)
		return -EBADF;
	if (s->inflight == UINT8_MAX)
		return -EAGAIN;
	sqe = get_sqe(u);
	if (!sqe)
		return -EBUSY;
	io_uring_prep_send(sqe, (int)slot, buf, len, MSG_NOSIGNAL);
	sqe->flags |= IOSQE_FIXED_FILE;
	io_uring_sqe_set_data64(sqe, ud_make(UOP_SEND, s->gen, slot));
	s->inflight++;
	return 0;
}

/*
 * Cancels one request by its user_data.  A cancel by descriptor would walk
 * every armed poll of the ring (20,000 recvs per ring when full); a cancel
 * by user_data looks in one bucket of the kernel's cancel hash.
 */
static int cancel_ud(struct uring_loop *u, uint64_t ud, unsigned flags)
{
	struct io_uring_sqe *sqe = get_sqe(u);

	if (!sqe)
		return -EBUSY;
	io_uring_prep_cancel64(sqe, ud, (int)flags);
	sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
	io_uring_sqe_set_data64(sqe, ud_make(UOP_IGNORE, 0, 0));
	return 0;
}

static int cancel_connect(struct uring_loop *u, uint32_t slot)
{
	/* A connect linked behind its socket is only issued when task work
	 * runs (DEFER_TASKRUN: at the next wait); until then a cancel finds
	 * nothing and the connect would go on.  Run it now so the cancel
	 * catches it. */
	io_uring_submit(&u->ring);
	io_uring_get_events(&u->ring);
	return cancel_ud(u, ud_make(UOP_CONNECT, u->slots[slot].gen, slot), 0);
}

static int uring_close(struct loop *loop, uint32_t slot)
{
	struct uring_loop *u = to_uring(loop);
	struct uslot *s = &u->slots[slot];
	unsigned others;
	int ret = 0;

	if (!(s->flags & S_OPEN))
		return -EBADF;
	if (s->flags & S_CLOSING)
		return -EALREADY;
	s->flags |= S_CLOSING;
	/* Everything still pending on this descriptor (the armed recv, a
	 * send, a connect in progress) is cancelled; their CQEs drive the
	 * close. */
	if (s->flags & S_CONNECTING) {
		ret = cancel_connect(u, slot);
	} else if (s->inflight) {
		others = s->inflight - ((s->flags & S_RECV) ? 1 : 0);
		if (s->flags & S_RECV)
			ret = cancel_ud(u, ud_make(UOP_RECV, s->gen, slot), 0);
		if (others && !ret)
			ret = cancel_ud(u, ud_make(UOP_SEND, s->gen, slot),
					IORING_ASYNC_CANCEL_ALL);
	}
	if (ret < 0)
		return ret;
	maybe_close(u, slot);
	return 0;
}

static int timer_remove(struct uring_loop *u, unsigned id)
{
	struct utimer *t = &u->timers[id];
	struct io_uring_sqe *sqe;

	if (!t->pending)
		return 0;
	sqe = get_sqe(u);
	if (!sqe)
		return -EBUSY;
	io_uring_prep_timeout_remove(sqe, ud_make(UOP_TIMER, t->gen, id), 0);
	sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
	io_uring_sqe_set_data64(sqe, ud_make(UOP_IGNORE, 0, 0));
	t->pending = false;
	t->gen++;
	return 0;
}

static int uring_timer(struct loop *loop, unsigned id, uint64_t ms)
{
	struct uring_loop *u = to_uring(loop);
	struct utimer *t = &u->timers[id];
	struct io_uring_sqe *sqe;
	int ret;

	ret = timer_remove(u, id);
	if (ret < 0)
		return ret;
	t->gen++;
	t->ts.tv_sec = (long long)(ms / 1000);
	t->ts.tv_nsec = (long long)(ms % 1000) * 1000000;
	sqe = get_sqe(u);
	if (!sqe)
		return -EBUSY;
	io_uring_prep_timeout(sqe, &t->ts, 0, 0);
	io_uring_sqe_set_data64(sqe, ud_make(UOP_TIMER, t->gen, id));
	t->pending = true;
	/* The timespec is read at submission: submit now, so that re-arming
	 * the same timer before the next submit cannot change it underneath. */
	io_uring_submit(&u->ring);
	return 0;
}

static int uring_timer_cancel(struct loop *loop, unsigned id)
{
	return timer_remove(to_uring(loop), id);
}

static int uring_poll(struct loop *loop, unsigned id, int fd, unsigned events)
{
	struct uring_loop *u = to_uring(loop);
	struct upoll *p = &u->polls[id];
	int ret;

	if (p->active) {
		ret = loop->ops->poll_cancel(loop, id);
		if (ret < 0)
			return ret;
	}
	p->fd = fd;
	p->events = events;
	p->active = true;
	return arm_poll(u, id);
}

static int uring_poll_cancel(struct loop *loop, unsigned id)
{
	struct uring_loop *u = to_uring(loop);
	struct upoll *p = &u->polls[id];
	struct io_uring_sqe *sqe;

	if (!p->active)
		return 0;
	sqe = get_sqe(u);
	if (!sqe)
		return -EBUSY;
	io_uring_prep_poll_remove(sqe, ud_make(UOP_POLL, p->gen, id));
	sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
	io_uring_sqe_set_data64(sqe, ud_make(UOP_IGNORE, 0, 0));
	p->active = false;
	p->gen++;
	return 0;
}

static void finish_connect(struct uring_loop *u, uint32_t slot)
{
	struct uslot *s = &u->slots[slot];
	int res;

	s->flags &= (uint8_t)~S_CONNECTING;
	if (s->flags & S_CLOSING) {
		maybe_close(u, slot);
		return;
	}
	if (s->flags & S_CONN_OK) {
		loop_emit(&u->base, LOOP_EV_CONNECT, slot, u->conn_tag[slot], 0,
			  NULL);
		return;
	}
	res = u->conn_err[slot] ? -u->conn_err[slot] :
	      (s->flags & S_TIMED_OUT) ? -ETIMEDOUT : -ECANCELED;
	/* The program never owned this slot: release it quietly, after the
	 * socket (if the chain got that far) is out of the table. */
	s->flags |= S_CLOSING | S_SILENT;
	submit_close(u, slot);
	loop_emit(&u->base, LOOP_EV_CONNECT, slot, u->conn_tag[slot], res, NULL);
}

static void handle_recv(struct uring_loop *u, const struct io_uring_cqe *cqe,
			uint32_t slot, bool stale)
{
	struct uslot *s = &u->slots[slot];
	bool more = cqe->flags & IORING_CQE_F_MORE;
	const void *data = NULL;
	unsigned bid = 0;
	bool has_buf = cqe->flags & IORING_CQE_F_BUFFER;

	if (has_buf) {
		bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
		data = u->bufs + (size_t)bid * u->buf_size;
	}
	if (stale) {
		if (has_buf)
			buf_recycle(u, bid);
		return;
	}
	if (!more) {
		s->flags &= (uint8_t)~S_RECV;
		s->inflight--;
	}
	if (s->flags & S_CLOSING) {
		if (has_buf)
			buf_recycle(u, bid);
		maybe_close(u, slot);
		return;
	}
	if (cqe->res == -ENOBUFS) {
		/* Back-pressure: every buffer is in use.  They come back as
		 * the completions ahead of us are handled; try again. */
		if (!more)
			arm_recv(u, slot);
		return;
	}
	loop_emit(&u->base, LOOP_EV_RECV, slot, 0, cqe->res, data);
	if (has_buf)
		buf_recycle(u, bid);
	/* Re-arm a multishot recv the kernel ended while the stream is fine. */
	if (!more && cqe->res > 0 &&
	    (s->flags & (S_OPEN | S_CLOSING | S_RECV)) == S_OPEN)
		arm_recv(u, slot);
}

static void handle_accept(struct uring_loop *u,
			  const struct io_uring_cqe *cqe, unsigned idx)
{
	bool more = cqe->flags & IORING_CQE_F_MORE;
	int res = cqe->res;

	if (res >= 0) {
		struct uslot *s = &u->slots[res];

		s->flags = S_OPEN;
		s->inflight = 0;
	}
	if (!more) {
		u->listeners[idx].accepting = false;
		if (res == -EINVAL && u->lazy_accept && !u->dontwait_known) {
			/* No IORING_ACCEPT_DONTWAIT (before 6.10): plain
			 * multishot accepts from now on.  Each listener's
			 * first accept fails in turn and lands here. */
			u->lazy_accept = false;
			cancel_ud(u, ud_make(UOP_LISTEN_POLL, 0, idx), 0);
			arm_accept(u, idx);
			return;
		}
		if (u->lazy_accept)
			u->dontwait_known = true;
		if (u->base.stop)
			return;
		/* -EINVAL: the listener no longer listens (shut down). */
		if (res != -EINVAL &&
		    (res != -EAGAIN || u->listeners[idx].again)) {
			/* An error ended it (a full table refuses one
			 * connection per accept) or more came in: go on at
			 * once, without sleeping for a batch. */
			arm_accept(u, idx);
			u->rearmed = true;
		}
		if (res == -EAGAIN)
			return;
	}
	loop_emit(&u->base, LOOP_EV_ACCEPT, res >= 0 ? (uint32_t)res : UINT32_MAX,
		  u->listeners[idx].tag, res, NULL);
}

static void handle_cqe(struct uring_loop *u, const struct io_uring_cqe *cqe)
{
	uint64_t ud = cqe->user_data;
	uint32_t idx = ud_idx(ud);
	bool more = cqe->flags & IORING_CQE_F_MORE;
	struct uslot *s;
	bool stale;

	switch (ud_op(ud)) {
	case UOP_IGNORE:
		return;
	case UOP_ACCEPT:
		handle_accept(u, cqe, idx);
		return;
	case UOP_LISTEN_POLL:
		if (!u->lazy_accept || u->base.stop)
			return;
		if (cqe->res < 0) {
			/* The listener itself failed: say so, once. */
			loop_emit(&u->base, LOOP_EV_ACCEPT, UINT32_MAX,
				  u->listeners[idx].tag, cqe->res, NULL);
			return;
		}
		if (cqe->res & POLLHUP)
			return;		/* shut down: nothing more to accept */
		if (!more)
			arm_listen_poll(u, idx);
		if (u->listeners[idx].accepting)
			u->listeners[idx].again = true;
		else
			arm_accept(u, idx);
		return;
	case UOP_TIMER: {
		struct utimer *t = &u->timers[idx];

		if (ud_gen(ud) != t->gen || !t->pending)
			return;
		t->pending = false;
		if (cqe->res == -ETIME)
			loop_emit(&u->base, LOOP_EV_TIMER, 0, idx, 0, NULL);
		return;
	}
	case UOP_POLL: {
		struct upoll *p = &u->polls[idx];

		if (ud_gen(ud) != p->gen || !p->active)
			return;
		if (!more && cqe->res != -ECANCELED)
			arm_poll(u, idx);
		loop_emit(&u->base, LOOP_EV_POLL, 0, idx, cqe->res, NULL);
		return;
	}
	case UOP_WAKE: {
		uint64_t v;

		/* Nothing to read is fine: wakes are counted, not queued. */
		if (read(u->base.wake_fd, &v, sizeof(v)) < 0)
			v = 0;
		if (!more)
			arm_wake(u);
		loop_emit(&u->base, LOOP_EV_WAKE, 0, 0, 0, NULL);
		return;
	}
	default:
		break;
	}

	/* Everything below belongs to a connection slot. */
	if (idx >= u->base.capacity)
		return;
	s = &u->slots[idx];
	stale = ud_gen(ud) != s->gen || !(s->flags & S_OPEN);

	switch (ud_op(ud)) {
	case UOP_RECV:
		handle_recv(u, cqe, idx, stale);
		return;
	case UOP_SEND:
		if (stale)
			return;
		s->inflight--;
		if (s->flags & S_CLOSING)
			maybe_close(u, idx);
		else
			loop_emit(&u->base, LOOP_EV_SEND, idx, 0, cqe->res, NULL);
		return;
	case UOP_CONN_PREP:
		/* socket, setsockopt or bind failed; connect is cancelled. */
		if (!stale && !u->conn_err[idx])
			u->conn_err[idx] = (int16_t)-cqe->res;
		return;
	case UOP_CONNECT:
		if (stale)
			return;
		s->inflight--;
		if (cqe->res == 0)
			s->flags |= S_CONN_OK;
		else if (cqe->res != -ECANCELED && !u->conn_err[idx])
			u->conn_err[idx] = (int16_t)-cqe->res;
		if (!s->inflight)
			finish_connect(u, idx);
		return;
	case UOP_CLOSE: {
		bool silent;

		if (stale)
			return;
		silent = s->flags & S_SILENT;
		release_slot(u, idx);
		if (!silent)
			loop_emit(&u->base, LOOP_EV_CLOSED, idx, 0, cqe->res, NULL);
		return;
	}
	default:
		return;
	}
}

static int uring_run(struct loop *loop)
{
	struct uring_loop *u = to_uring(loop);

	while (!loop->stop) {
		struct io_uring_cqe *cqe;
		unsigned head, n = 0;
		int64_t wait_ms;
		bool batched;
		int ret;

		if (u->fatal)
			return u->fatal;
		batched = loop->batch_nr > 1 && !u->rearmed;
		wait_ms = batched ? (int64_t)loop->batch_ms : -1;
		if (u->deadlines.len) {
			int64_t until = expire_connects(u);

			if (until >= 0 && (wait_ms < 0 || until < wait_ms))
				wait_ms = until;
		}
		if (wait_ms >= 0) {
			struct __kernel_timespec ts = {
				.tv_sec = wait_ms / 1000,
				.tv_nsec = (wait_ms % 1000) * 1000000,
			};

			ret = io_uring_submit_and_wait_timeout(&u->ring, &cqe,
							       batched ? loop->batch_nr : 1,
							       &ts, NULL);
		} else {
			ret = io_uring_submit_and_wait(&u->ring, 1);
		}
		u->rearmed = false;
		if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY &&
		    ret != -ETIME)
			return ret;
		io_uring_for_each_cqe(&u->ring, head, cqe) {
			handle_cqe(u, cqe);
			if (++n == CQE_BATCH)
				break;
		}
		io_uring_cq_advance(&u->ring, n);
	}
	io_uring_submit(&u->ring);
	return 0;
}

/* Reaps CQEs without handling them; returns how many. */
static unsigned discard_cqes(struct uring_loop *u)
{
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;

	io_uring_for_each_cqe(&u->ring, head, cqe)
		n++;
	io_uring_cq_advance(&u->ring, n);
	return n;
}

/*
 * Closes every connection now, in this thread: cancel each slot's requests
 * (an armed recv holds its socket open), collect the cancellations, then
 * drop the fixed-file table.  Left to io_uring_queue_exit(), the sockets
 * would close whenever the kernel's asynchronous ring teardown gets to them,
 * which on a loaded machine can be seconds after the process is gone.
 *
 * One cancel-everything request would do the same in O(n^2) here: each
 * match restarts its walk of the poll table, past the entries it already
 * cancelled, which are only unhashed when task work runs.  Cancels by
 * user_data, with task work run every few hundred, stay O(n).
 */
static void uring_release_all(struct uring_loop *u)
{
	uint64_t deadline = loop_now_ms() + 2000;
	uint32_t slot;
	unsigned queued = 0;

	for (slot = 0; slot < u->base.capacity; slot++) {
		struct uslot *s = &u->slots[slot];

		/* A closing slot's cancels are already out. */
		if ((s->flags & (S_OPEN | S_CLOSING)) != S_OPEN)
			continue;
		if (uring_close(&u->base, slot) < 0)
			break;
		if (++queued % 256 == 0) {
			io_uring_submit_and_get_events(&u->ring);
			discard_cqes(u);
		}
	}
	/* The cancelled requests complete just after the cancels: reap until
	 * the ring has been quiet for a moment. */
	io_uring_submit(&u->ring);
	while (loop_now_ms() < deadline) {
		struct __kernel_timespec ts = { .tv_nsec = 20000000 };
		struct io_uring_cqe *cqe;

		if (io_uring_wait_cqe_timeout(&u->ring, &cqe, &ts) < 0)
			break;
		discard_cqes(u);
	}
	io_uring_unregister_files(&u->ring);
}

static void uring_free(struct loop *loop)
{
	struct uring_loop *u = to_uring(loop);

	if (u->slots)
		uring_release_all(u);
	io_uring_queue_exit(&u->ring);
	if (u->br)
		munmap(u->br, u->br_size);
	free(u->bufs);
	free(u->slots);
	free(u->free_slots);
	free(u->conn_tag);
	free(u->conn_err);
	free(u->deadlines.items);
	if (u->base.wake_fd >= 0)
		close(u->base.wake_fd);
	free(u);
}

static const struct loop_ops uring_ops = {
	.listen = uring_listen,
	.connect = uring_connect,
	.recv_start = uring_recv_start,
	.send = uring_send,
	.close = uring_close,
	.timer = uring_timer,
	.timer_cancel = uring_timer_cancel,
	.poll = uring_poll,
	.poll_cancel = uring_poll_cancel,
	.run = uring_run,
	.free = uring_free,
};

/* Newest setup flags first; -EINVAL means this kernel lacks one of them. */
static int ring_init(struct io_uring *ring, const char **mode)
{
	static const struct {
		unsigned flags;
		const char *name;
	} tries[] = {
		{ IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
		  "single-issuer,defer-taskrun" },
		{ IORING_SETUP_COOP_TASKRUN, "coop-taskrun" },
		{ 0, "plain" },
	};
	int ret = -EINVAL;
	size_t i;

	for (i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
		struct io_uring_params p = {
			.flags = tries[i].flags | IORING_SETUP_CQSIZE |
				 IORING_SETUP_SUBMIT_ALL,
			.cq_entries = CQ_ENTRIES,
		};

		ret = io_uring_queue_init_params(SQ_ENTRIES, ring, &p);
		if (ret != -EINVAL)
			break;
	}
	if (!ret)
		*mode = tries[i].name;
	return ret;
}

static int setup_buf_ring(struct uring_loop *u)
{
	struct io_uring_buf_reg reg = { 0 };
	int ret;

	u->br_size = u->buf_count * sizeof(struct io_uring_buf);
	u->br = mmap(NULL, u->br_size, PROT_READ | PROT_WRITE,
		     MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
	if (u->br == MAP_FAILED) {
		u->br = NULL;
		return -errno;
	}
	u->bufs = aligned_alloc(64, (size_t)u->buf_count * u->buf_size);
	if (!u->bufs)
		return -ENOMEM;
	/* Touch the buffers now: they are the fixed per-shard cost, not a
	 * per-connection one. */
	memset(u->bufs, 0, (size_t)u->buf_count * u->buf_size);
	reg.ring_addr = (uint64_t)(uintptr_t)u->br;
	reg.ring_entries = u->buf_count;
	reg.bgid = BUF_GROUP;
	ret = io_uring_register_buf_ring(&u->ring, &reg, 0);
	if (ret < 0)
		return ret;
	io_uring_buf_ring_init(u->br);
	u->buf_mask = (unsigned)io_uring_buf_ring_mask(u->buf_count);
	for (unsigned i = 0; i < u->buf_count; i++)
		io_uring_buf_ring_add(u->br, u->bufs + (size_t)i * u->buf_size,
				      u->buf_size, (unsigned short)i, u->buf_mask,
				      (int)i);
	io_uring_buf_ring_advance(u->br, (int)u->buf_count);
	return 0;
}

static bool probe_async_bind(struct io_uring *ring)
{
	struct io_uring_probe *probe = io_uring_get_probe_ring(ring);
	bool ok;

	if (!probe)
		return false;
	ok = probe->last_op >= IORING_OP_BIND &&
	     io_uring_opcode_supported(probe, IORING_OP_BIND) &&
	     io_uring_opcode_supported(probe, IORING_OP_URING_CMD);
	io_uring_free_probe(probe);
	return ok;
}

struct loop *loop_uring_new(const struct loop_config *cfg, int *err,
			    const char **why)
{
	struct uring_loop *u;
	const char *mode = "";
	int ret;

	u = calloc(1, sizeof(*u));
	if (!u) {
		*err = -ENOMEM;
		*why = "allocating the loop";
		return NULL;
	}
	u->base.ops = &uring_ops;
	u->base.backend = LOOP_BACKEND_URING;
	u->base.wake_fd = -1;
	u->lazy_accept = true;
	u->deadlines.size = sizeof(struct conn_deadline);

	ret = ring_init(&u->ring, &mode);
	if (ret < 0) {
		free(u);
		*err = ret;
		*why = "io_uring_setup";
		return NULL;
	}
	u->base.capacity = cfg->capacity ? cfg->capacity
					 : loop_default_capacity();
	u->buf_count = cfg->buf_count ? cfg->buf_count : 256;
	u->buf_size = cfg->buf_size ? cfg->buf_size : 2048;
	if (u->buf_count & (u->buf_count - 1) || u->buf_count > 32768) {
		ret = -EINVAL;
		*why = "buffer count (must be a power of two up to 32768)";
		goto fail;
	}
	ret = io_uring_register_files_sparse(&u->ring, u->base.capacity);
	if (ret < 0) {
		*why = "registering the fixed-file table";
		goto fail;
	}
	u->slots = calloc(u->base.capacity, sizeof(*u->slots));
	if (!u->slots) {
		ret = -ENOMEM;
		*why = "allocating slots";
		goto fail;
	}
	if (cfg->flags & LOOP_F_CONNECT) {
		u->free_slots = malloc(u->base.capacity * sizeof(uint32_t));
		u->conn_tag = malloc(u->base.capacity * sizeof(uint32_t));
		u->conn_err = calloc(u->base.capacity, sizeof(int16_t));
		if (!u->free_slots || !u->conn_tag || !u->conn_err) {
			ret = -ENOMEM;
			*why = "allocating slots";
			goto fail;
		}
		/* Lowest slots on top of the stack, handed out first. */
		for (uint32_t i = 0; i < u->base.capacity; i++)
			u->free_slots[i] = u->base.capacity - 1 - i;
		u->nr_free = u->base.capacity;
		u->async_bind = probe_async_bind(&u->ring);
	}
	ret = setup_buf_ring(u);
	if (ret < 0) {
		*why = "registering the provided buffer ring";
		goto fail;
	}
	u->base.wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (u->base.wake_fd < 0) {
		ret = -errno;
		*why = "eventfd";
		goto fail;
	}
	ret = arm_wake(u);
	if (ret < 0) {
		*why = "arming the wake-up poll";
		goto fail;
	}
	snprintf(u->base.features, sizeof(u->base.features),
		 "%s, %u direct descriptors, %u x %u B recv buffers%s", mode,
		 u->base.capacity, u->buf_count, u->buf_size,
		 (cfg->flags & LOOP_F_CONNECT) ?
		 (u->async_bind ? ", async bind" : ", sync bind") : "");
	return &u->base;
fail:
	*err = ret;
	uring_free(&u->base);
	return NULL;
}
