/* SPDX-License-Identifier: MIT */
/*
 * The event loop every ringhold program runs on: one loop per shard, one
 * shard per thread.
 *
 * The interface is completion based, like io_uring itself: the program asks
 * for an operation and is told, through one callback, when it finished.  The
 * io_uring backend maps each call onto SQEs; the epoll backend performs the
 * same operations when their descriptors become ready and reports them the
 * same way, so program logic is identical on both (redis keeps ae.c apart
 * from ae_epoll.c the same way).
 *
 * Connections are "slots": small integers below loop_capacity().  With
 * io_uring a slot is an index into the ring's fixed-file table (a direct
 * descriptor, which costs no ordinary fd); with epoll it is the fd itself.
 * Programs keep their per-connection state in flat arrays indexed by slot.
 *
 * Rules the backends guarantee:
 * - After LOOP_EV_CLOSED for a slot, no further event mentions that slot
 *   until a new LOOP_EV_ACCEPT or a successful LOOP_EV_CONNECT hands it out
 *   again.  Stale completions are filtered by a per-slot generation.
 * - LOOP_EV_RECV data is valid only during the callback.
 * - Calls made from inside the callback are allowed.
 * - A full submission queue is submitted and retried, never dropped.
 *
 * All functions return 0 (or a slot number) on success and -errno on failure;
 * none of them log or exit.
 */
#ifndef RINGHOLD_LOOP_H
#define RINGHOLD_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

enum loop_backend {
	LOOP_BACKEND_AUTO = 0,
	LOOP_BACKEND_URING,
	LOOP_BACKEND_EPOLL,
};

enum loop_ev_type {
	LOOP_EV_ACCEPT,		/* slot: new connection; id: listener tag; res < 0: accept failed */
	LOOP_EV_CONNECT,	/* slot, id: tag given to loop_connect; res 0 or -errno */
	LOOP_EV_RECV,		/* slot; res > 0 bytes at data, 0 EOF, < 0 -errno */
	LOOP_EV_SEND,		/* slot; res bytes sent or -errno */
	LOOP_EV_CLOSED,		/* slot released; it may be handed out again */
	LOOP_EV_TIMER,		/* id: timer id */
	LOOP_EV_POLL,		/* id: poll id; res: revents (POLLIN...) or -errno */
	LOOP_EV_WAKE,		/* loop_wake() was called from another thread */
};

struct loop_event {
	enum loop_ev_type type;
	uint32_t slot;
	uint32_t id;
	int32_t res;
	const void *data;
};

struct loop;
typedef void (*loop_cb)(struct loop *loop, const struct loop_event *ev, void *arg);

/* Flags for struct loop_config.flags. */
#define LOOP_F_CONNECT	(1u << 0)	/* the loop will call loop_connect() */

struct loop_config {
	enum loop_backend backend;
	/* Connection slots.  0: as many as the backend can hold (fixed table
	 * sized from RLIMIT_NOFILE for io_uring; the fd limit for epoll). */
	unsigned capacity;
	/* Receive buffers shared by all connections of the loop. */
	unsigned buf_count;	/* power of two, default 256 */
	unsigned buf_size;	/* default 2048 */
	unsigned flags;
};

#define LOOP_MAX_TIMERS	8
#define LOOP_MAX_POLLS	64

/*
 * Creates a loop in the calling thread (io_uring's SINGLE_ISSUER and
 * DEFER_TASKRUN tie a ring to the thread that made it).  On failure returns
 * NULL and stores -errno in *err; *why, if not NULL, names the step that
 * failed (a static string).
 */
struct loop *loop_new(const struct loop_config *cfg, loop_cb cb, void *arg,
		      int *err, const char **why);
void loop_free(struct loop *loop);

/*
 * Resolves LOOP_BACKEND_AUTO: io_uring when a ring can be set up here, else
 * epoll, with *err and *why saying what failed.  Other values pass through.
 */
enum loop_backend loop_probe_backend(enum loop_backend want, int *err,
				     const char **why);

enum loop_backend loop_backend(const struct loop *loop);
const char *loop_backend_name(enum loop_backend backend);
unsigned loop_capacity(const struct loop *loop);
/* A short human description of optional features in use, for logs. */
const char *loop_features(const struct loop *loop);

/* Multishot accept on a listening socket (an ordinary fd the caller keeps
 * open until loop_free()).  Every accepted connection arrives as
 * LOOP_EV_ACCEPT with id = tag. */
int loop_listen(struct loop *loop, int listen_fd, uint32_t tag);

/*
 * Opens a TCP connection to dst, from src if not NULL (bound with
 * IP_BIND_ADDRESS_NO_PORT, so the port is picked at connect time per
 * 4-tuple).  Returns the slot it will use; LOOP_EV_CONNECT reports the
 * outcome.  A failed connect releases the slot by itself (no LOOP_EV_CLOSED).
 * timeout_ms 0 leaves it to the kernel.  -ENFILE: no free slot.
 * Both backends check deadlines in the order the connects were made (a
 * FIFO), so a loop's connects should share one timeout: a shorter one
 * behind a longer one fires late.
 */
int loop_connect(struct loop *loop, const struct sockaddr *src,
		 const struct sockaddr *dst, socklen_t len,
		 unsigned timeout_ms, uint32_t tag);

/* Keeps receiving on slot until EOF, an error or loop_close(). */
int loop_recv_start(struct loop *loop, uint32_t slot);

/* Sends len bytes; buf must stay valid until LOOP_EV_SEND.  A short send is
 * reported as such: the caller sends the rest.  Keep one send in flight per
 * slot: with two, the rest of a short first one would land after the second. */
int loop_send(struct loop *loop, uint32_t slot, const void *buf, size_t len);

/* Cancels what is in flight for slot, closes it and reports LOOP_EV_CLOSED. */
int loop_close(struct loop *loop, uint32_t slot);

/* One-shot timer; re-arming a pending timer replaces it. */
int loop_timer(struct loop *loop, unsigned id, uint64_t ms);
int loop_timer_cancel(struct loop *loop, unsigned id);

/* Watches an ordinary fd (poll(2) event bits) until loop_poll_cancel(). */
int loop_poll(struct loop *loop, unsigned id, int fd, unsigned events);
int loop_poll_cancel(struct loop *loop, unsigned id);

/*
 * Lets the loop sleep until nr completions are ready or max_delay_ms has
 * passed, whichever comes first, instead of waking for each one: far fewer
 * wake-ups where latency does not matter (keepalive reads).  Timers may then
 * fire up to max_delay_ms late.  nr <= 1 restores waking for every event.
 * io_uring only (DEFER_TASKRUN wakes a waiter only once enough completions
 * are pending); the epoll backend ignores it.
 */
void loop_set_batch(struct loop *loop, unsigned nr, unsigned max_delay_ms);

/* Runs until loop_stop().  Returns 0 or -errno of a fatal loop error. */
int loop_run(struct loop *loop);
void loop_stop(struct loop *loop);
/* Thread-safe: makes the loop deliver LOOP_EV_WAKE. */
int loop_wake(struct loop *loop);

/* Slots a loop gets with capacity 0: the soft RLIMIT_NOFILE, capped at what
 * one fixed-file table may hold (1 << 20). */
unsigned loop_default_capacity(void);

/* Monotonic milliseconds, shared clock for all programs. */
uint64_t loop_now_ms(void);

#endif
