/* SPDX-License-Identifier: MIT */
/*
 * The epoll backend must behave like the io_uring one.  Both are driven
 * through the same scenario (listen, connect, recv, send, close, timers,
 * polls, wake-ups, slot reuse) with plain blocking sockets as the peer, and
 * the events they report are compared with each other and with the
 * expected text.
 *
 * Slot numbers differ between backends (table indices against descriptor
 * numbers), so every connection gets a letter when it is handed out and the
 * log is kept per letter: "A: ACCEPT t7, RECV 5 hello, SEND 5, ...".  Events
 * that are not about a connection go to the "loop:" line.  An event for a
 * slot that has no live letter (a stale generation got through) is logged
 * as "STALE" and fails the comparison.
 *
 * Exit 0 pass, 1 fail, 77 skip (neither backend can be created).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "loop.h"

#define MAX_LABELS	16
#define LOG_SIZE	1024
#define GUARD_TIMER	7
#define LISTEN_TAG	7

struct recorder {
	struct loop *loop;
	uint32_t slot_of[MAX_LABELS];
	bool live[MAX_LABELS];
	unsigned nr_labels;
	char lines[MAX_LABELS][LOG_SIZE];
	char loop_line[LOG_SIZE];
	unsigned events, want;
	bool auto_recv;		/* recv_start on every new connection */
	bool auto_close;	/* loop_close on EOF */
	int send_close_label;	/* on its first data: send, then close */
	int bulk_label;		/* its sends are summed, not logged */
	size_t bulk_sent;
	bool bulk_done;
};

static void append(char *line, const char *fmt, ...)
{
	size_t len = strlen(line);
	va_list ap;

	if (len)
		len += (size_t)snprintf(line + len, LOG_SIZE - len, ", ");
	va_start(ap, fmt);
	vsnprintf(line + len, LOG_SIZE - len, fmt, ap);
	va_end(ap);
}

static int label_of(struct recorder *r, uint32_t slot)
{
	for (unsigned i = 0; i < r->nr_labels; i++)
		if (r->live[i] && r->slot_of[i] == slot)
			return (int)i;
	return -1;
}

static int new_label(struct recorder *r, uint32_t slot)
{
	unsigned i = r->nr_labels++;

	CHECK(i < MAX_LABELS);
	CHECK_EQ(label_of(r, slot), -1);	/* no live letter may hold it */
	r->slot_of[i] = slot;
	r->live[i] = true;
	return (int)i;
}

static void on_event(struct loop *loop, const struct loop_event *ev, void *arg)
{
	struct recorder *r = arg;
	int label = -1;
	char *line;

	if (ev->type == LOOP_EV_TIMER && ev->id == GUARD_TIMER) {
		loop_stop(loop);
		return;
	}
	switch (ev->type) {
	case LOOP_EV_ACCEPT:
		if (ev->res >= 0) {
			label = new_label(r, ev->slot);
			append(r->lines[label], "ACCEPT t%u", ev->id);
			if (r->auto_recv)
				CHECK_EQ(loop_recv_start(loop, ev->slot), 0);
		} else {
			append(r->loop_line, "ACCEPT t%u %d", ev->id, ev->res);
		}
		break;
	case LOOP_EV_CONNECT:
		/* The test named the slot when loop_connect() returned it. */
		label = label_of(r, ev->slot);
		if (label < 0) {
			append(r->loop_line, "STALE CONNECT");
			break;
		}
		append(r->lines[label], "CONNECT t%u %d", ev->id, ev->res);
		if (ev->res < 0)
			r->live[label] = false;	/* released by itself */
		else if (r->auto_recv)
			CHECK_EQ(loop_recv_start(loop, ev->slot), 0);
		break;
	case LOOP_EV_RECV:
	case LOOP_EV_SEND:
	case LOOP_EV_CLOSED:
		label = label_of(r, ev->slot);
		if (label < 0) {
			append(r->loop_line, "STALE %d", (int)ev->type);
			break;
		}
		line = r->lines[label];
		if (ev->type == LOOP_EV_SEND && label == r->bulk_label) {
			CHECK(ev->res > 0);
			r->bulk_sent += (size_t)ev->res;
			r->bulk_done = true;
		} else if (ev->type == LOOP_EV_SEND) {
			append(line, "SEND %d", ev->res);
		} else if (ev->type == LOOP_EV_CLOSED) {
			append(line, "CLOSED");
			r->live[label] = false;
		} else if (ev->res > 0) {
			append(line, "RECV %d %.*s", ev->res, ev->res,
			       (const char *)ev->data);
			if (label == r->send_close_label) {
				r->send_close_label = -1;
				CHECK_EQ(loop_send(loop, ev->slot, "y", 1), 0);
				CHECK_EQ(loop_close(loop, ev->slot), 0);
				CHECK_EQ(loop_close(loop, ev->slot), -EALREADY);
				CHECK_EQ(loop_send(loop, ev->slot, "y", 1), -EBADF);
			}
		} else {
			append(line, "RECV %d", ev->res);
			if (r->auto_close)
				CHECK_EQ(loop_close(loop, ev->slot), 0);
		}
		break;
	case LOOP_EV_TIMER:
		append(r->loop_line, "TIMER %u", ev->id);
		break;
	case LOOP_EV_POLL:
		append(r->loop_line, "POLL %u %d", ev->id, ev->res);
		break;
	case LOOP_EV_WAKE:
		append(r->loop_line, "WAKE");
		break;
	}
	if (++r->events >= r->want)
		loop_stop(loop);
}

/* Runs the loop until n more events came in or ms passed. */
static void settle_until(struct recorder *r, unsigned n, unsigned ms)
{
	r->events = 0;
	r->want = n ? n : UINT32_MAX;
	CHECK_EQ(loop_timer(r->loop, GUARD_TIMER, ms), 0);
	CHECK_EQ(loop_run(r->loop), 0);
	CHECK_EQ(loop_timer_cancel(r->loop, GUARD_TIMER), 0);
}

/* The same, for events that are due: a miss is worth a line. */
static void run_for(struct recorder *r, unsigned n, unsigned ms)
{
	settle_until(r, n, ms);
	if (r->events < n)
		fprintf(stderr, "waited %u ms for %u events, got %u\n", ms, n,
			r->events);
}

/* Lets the loop run for ms; whatever arrives is logged. */
static void settle(struct recorder *r, unsigned ms)
{
	settle_until(r, 0, ms);
}

static int tcp_listener(const char *addr, int backlog, struct sockaddr_in *out)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	CHECK(fd >= 0);
	CHECK_EQ(inet_pton(AF_INET, addr, &sin.sin_addr), 1);
	CHECK_EQ(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	CHECK_EQ(listen(fd, backlog), 0);
	CHECK_EQ(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	*out = sin;
	return fd;
}

static int peer_connect(const struct sockaddr_in *to)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	CHECK(fd >= 0);
	CHECK_EQ(connect(fd, (const struct sockaddr *)to, sizeof(*to)), 0);
	return fd;
}

static void peer_expect(int fd, const char *want)
{
	char buf[64] = "";
	size_t len = strlen(want);

	CHECK_EQ(recv(fd, buf, len, MSG_WAITALL), (long long)len);
	CHECK_STR(buf, want);
}

static struct loop *new_loop(enum loop_backend backend, unsigned flags,
			     struct recorder *r)
{
	struct loop_config cfg = {
		.backend = backend, .buf_count = 16, .buf_size = 64,
		.flags = flags,
	};
	const char *why = NULL;
	int err = 0;

	memset(r, 0, sizeof(*r));
	r->send_close_label = -1;
	r->bulk_label = -1;
	r->loop = loop_new(&cfg, on_event, r, &err, &why);
	if (r->loop)
		CHECK_EQ(loop_backend(r->loop), backend);
	return r->loop;
}

static void dump(struct recorder *r, char *out, size_t size)
{
	size_t len = 0;

	for (unsigned i = 0; i < r->nr_labels; i++)
		len += (size_t)snprintf(out + len, size - len, "%c: %s\n",
					'A' + i, r->lines[i]);
	snprintf(out + len, size - len, "loop: %s\n", r->loop_line);
}

#define BULK_SIZE (4u << 20)

/*
 * Sends more than the socket buffers hold to a peer that reads only between
 * loop runs: short sends are reported as such, a send that meets a full
 * buffer waits (nothing reported meanwhile) and the bytes arrive in order.
 */
static void bulk_transfer(struct recorder *r, uint32_t slot, int label,
			  int peer)
{
	static unsigned char out[BULK_SIZE], in[BULK_SIZE];
	size_t got = 0, quiet = 0, round = 0;

	for (size_t i = 0; i < BULK_SIZE; i++)
		out[i] = (unsigned char)(i * 7 + i / 251);
	CHECK_EQ(fcntl(peer, F_SETFL, O_NONBLOCK), 0);
	r->bulk_label = label;
	while (got < BULK_SIZE) {
		if (r->bulk_sent < BULK_SIZE && r->bulk_done) {
			r->bulk_done = false;
			CHECK_EQ(loop_send(r->loop, slot, out + r->bulk_sent,
					   BULK_SIZE - r->bulk_sent), 0);
		}
		settle_until(r, 1, 20);
		if (!r->events)
			quiet++;
		/* The peer reads every third round only. */
		if (++round % 3)
			continue;
		for (;;) {
			ssize_t n = recv(peer, in + got, BULK_SIZE - got, 0);

			if (n <= 0)
				break;
			got += (size_t)n;
		}
	}
	CHECK_EQ(r->bulk_sent, BULK_SIZE);
	CHECK(quiet > 0);	/* some sends had to wait */
	CHECK(!memcmp(in, out, BULK_SIZE));
	append(r->lines[label], "BULK %zu", r->bulk_sent);
	r->bulk_label = -1;
}

/* The accepting side: what tcp-server does. */
static void scenario_listen(enum loop_backend backend, char *out, size_t size)
{
	struct recorder r;
	struct sockaddr_in addr;
	int lfd, c1, c2, c3, pipefd[2];
	uint32_t slot;
	char byte;

	if (!new_loop(backend, 0, &r))
		return;
	r.auto_recv = true;
	lfd = tcp_listener("127.0.0.1", 64, &addr);
	CHECK_EQ(loop_listen(r.loop, lfd, LISTEN_TAG), 0);

	/* A: accept, receive, send, EOF, close. */
	c1 = peer_connect(&addr);
	run_for(&r, 1, 2000);
	slot = r.slot_of[0];
	CHECK_EQ(loop_recv_start(r.loop, slot), -EALREADY);
	CHECK_EQ(send(c1, "hello", 5, 0), 5);
	run_for(&r, 1, 2000);
	CHECK_EQ(loop_send(r.loop, slot, "world", 5), 0);
	run_for(&r, 1, 2000);
	peer_expect(c1, "world");
	CHECK_EQ(shutdown(c1, SHUT_WR), 0);
	run_for(&r, 1, 2000);
	CHECK_EQ(loop_close(r.loop, slot), 0);
	run_for(&r, 1, 2000);
	CHECK_EQ(loop_close(r.loop, slot), -EBADF);
	peer_expect(c1, "");	/* EOF */
	close(c1);

	/* B: closed from inside its first receive, with a send in flight:
	 * the send is not reported, nothing comes after CLOSED. */
	c2 = peer_connect(&addr);
	r.send_close_label = 1;
	CHECK_EQ(send(c2, "x", 1, 0), 1);
	run_for(&r, 3, 2000);
	send(c2, "more", 4, MSG_NOSIGNAL);
	settle(&r, 100);
	close(c2);

	/* Timers: re-arming replaces, cancel removes, earliest first. */
	CHECK_EQ(loop_timer(r.loop, 1, 60), 0);
	CHECK_EQ(loop_timer(r.loop, 2, 20), 0);
	CHECK_EQ(loop_timer(r.loop, 1, 40), 0);
	CHECK_EQ(loop_timer(r.loop, 3, 30), 0);
	CHECK_EQ(loop_timer_cancel(r.loop, 3), 0);
	run_for(&r, 2, 2000);
	settle(&r, 100);

	/* Poll: reported while readable, quiet once drained and cancelled. */
	CHECK_EQ(pipe2(pipefd, O_CLOEXEC | O_NONBLOCK), 0);
	CHECK_EQ(loop_poll(r.loop, 5, pipefd[0], POLLIN), 0);
	CHECK_EQ(write(pipefd[1], "p", 1), 1);
	run_for(&r, 1, 2000);
	CHECK_EQ(read(pipefd[0], &byte, 1), 1);
	CHECK_EQ(loop_poll_cancel(r.loop, 5), 0);
	CHECK_EQ(write(pipefd[1], "p", 1), 1);
	settle(&r, 50);
	close(pipefd[0]);
	close(pipefd[1]);

	CHECK_EQ(loop_wake(r.loop), 0);
	run_for(&r, 1, 2000);

	/* C: a new connection, likely in a slot used before. */
	c3 = peer_connect(&addr);
	CHECK_EQ(send(c3, "z", 1, 0), 1);
	run_for(&r, 2, 2000);
	close(c3);
	r.auto_close = true;
	run_for(&r, 2, 2000);

	/* D..K: eight at once, each says one byte and leaves. */
	for (int i = 0; i < 8; i++) {
		int c = peer_connect(&addr);

		CHECK_EQ(send(c, "q", 1, 0), 1);
		close(c);
	}
	run_for(&r, 8 * 4, 3000);
	settle(&r, 50);

	/* L: bulk data through full socket buffers. */
	c1 = peer_connect(&addr);
	run_for(&r, 1, 2000);
	r.bulk_done = true;
	bulk_transfer(&r, r.slot_of[11], 11, c1);
	close(c1);
	run_for(&r, 2, 2000);

	dump(&r, out, size);
	loop_free(r.loop);
	close(lfd);
}

static uint32_t connect_as(struct recorder *r, const struct sockaddr_in *src,
			   const struct sockaddr_in *dst, unsigned timeout_ms,
			   uint32_t tag)
{
	int slot = loop_connect(r->loop, (const struct sockaddr *)src,
				(const struct sockaddr *)dst, sizeof(*dst),
				timeout_ms, tag);

	CHECK(slot >= 0);
	new_label(r, (uint32_t)slot);
	return (uint32_t)slot;
}

/* A port nobody listens on. */
static struct sockaddr_in closed_port(void)
{
	struct sockaddr_in sin;
	int fd = tcp_listener("127.0.0.1", 1, &sin);

	close(fd);
	return sin;
}

/* The connecting side: what tcp-client does. */
static void scenario_connect(enum loop_backend backend, char *out, size_t size)
{
	struct sockaddr_in addr, full, src = { .sin_family = AF_INET };
	struct sockaddr_in refused = closed_port(), peer;
	socklen_t plen = sizeof(peer);
	struct recorder r;
	int lfd, lfull, fillers[4], p;
	uint32_t slot;
	char ip[INET_ADDRSTRLEN];

	if (!new_loop(backend, LOOP_F_CONNECT, &r))
		return;
	r.auto_recv = true;
	r.auto_close = true;
	lfd = tcp_listener("127.0.0.1", 64, &addr);
	/* A listener whose accept queue is full drops SYNs: connects to it
	 * hang until their timeout. */
	lfull = tcp_listener("127.0.0.1", 0, &full);
	for (int i = 0; i < 4; i++) {
		fillers[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK |
				    SOCK_CLOEXEC, 0);
		connect(fillers[i], (struct sockaddr *)&full, sizeof(full));
	}
	usleep(50 * 1000);

	/* A: connect, receive, send, EOF from the peer, close. */
	slot = connect_as(&r, NULL, &addr, 1000, 1);
	CHECK_EQ(loop_send(r.loop, slot, "x", 1), -EBADF);	/* not yet */
	run_for(&r, 1, 2000);
	p = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	CHECK(p >= 0);
	CHECK_EQ(send(p, "abc", 3, 0), 3);
	run_for(&r, 1, 2000);
	CHECK_EQ(loop_send(r.loop, slot, "hi", 2), 0);
	run_for(&r, 1, 2000);
	peer_expect(p, "hi");
	close(p);
	run_for(&r, 2, 2000);

	/* B: refused, released without LOOP_EV_CLOSED. */
	connect_as(&r, NULL, &refused, 1000, 2);
	run_for(&r, 1, 2000);
	settle(&r, 50);

	/* C: from a chosen source address. */
	CHECK_EQ(inet_pton(AF_INET, "127.0.0.2", &src.sin_addr), 1);
	slot = connect_as(&r, &src, &addr, 1000, 3);
	run_for(&r, 1, 2000);
	p = accept4(lfd, (struct sockaddr *)&peer, &plen, SOCK_CLOEXEC);
	CHECK(p >= 0);
	inet_ntop(AF_INET, &peer.sin_addr, ip, sizeof(ip));
	CHECK_STR(ip, "127.0.0.2");
	CHECK_EQ(loop_close(r.loop, slot), 0);
	run_for(&r, 1, 2000);
	peer_expect(p, "");
	close(p);

	/* D: the connect times out. */
	connect_as(&r, NULL, &full, 200, 4);
	run_for(&r, 1, 3000);

	/* E, F: a refused connect, then one that likely reuses its slot with
	 * the same timeout.  E's deadline must not touch F. */
	connect_as(&r, NULL, &refused, 300, 5);
	run_for(&r, 1, 2000);
	slot = connect_as(&r, NULL, &addr, 300, 6);
	run_for(&r, 1, 2000);
	settle(&r, 500);
	p = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	CHECK(p >= 0);
	CHECK_EQ(loop_send(r.loop, slot, "k", 1), 0);
	run_for(&r, 1, 2000);
	peer_expect(p, "k");
	CHECK_EQ(loop_close(r.loop, slot), 0);
	run_for(&r, 1, 2000);
	close(p);

	/* G: closed while connecting: LOOP_EV_CLOSED, no LOOP_EV_CONNECT. */
	slot = connect_as(&r, NULL, &full, 0, 7);
	CHECK_EQ(loop_recv_start(r.loop, slot), -EBADF);
	CHECK_EQ(loop_close(r.loop, slot), 0);
	run_for(&r, 1, 2000);
	settle(&r, 50);

	dump(&r, out, size);
	loop_free(r.loop);
	for (int i = 0; i < 4; i++)
		close(fillers[i]);
	close(lfull);
	close(lfd);
}

/*
 * epoll only: out of descriptors, pending connections are accepted and
 * dropped (reported as -ENFILE) instead of leaving the listener readable
 * for a level-triggered loop to spin on.
 */
static void scenario_emfile(void)
{
	struct recorder r;
	struct sockaddr_in addr;
	struct rlimit old, low;
	int lfd, peers[3], probe;
	char expect[LOG_SIZE] = "";

	if (!new_loop(LOOP_BACKEND_EPOLL, 0, &r))
		return;
	lfd = tcp_listener("127.0.0.1", 16, &addr);
	CHECK_EQ(loop_listen(r.loop, lfd, LISTEN_TAG), 0);
	for (int i = 0; i < 3; i++)
		peers[i] = peer_connect(&addr);
	/* The lowest free descriptor is the only one left. */
	probe = dup(0);
	CHECK(probe >= 0);
	close(probe);
	CHECK_EQ(getrlimit(RLIMIT_NOFILE, &old), 0);
	low = old;
	low.rlim_cur = (rlim_t)probe;
	CHECK_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
	settle(&r, 200);
	CHECK_EQ(setrlimit(RLIMIT_NOFILE, &old), 0);
	for (int i = 0; i < 3; i++) {
		char byte;

		/* Each peer was accepted and closed: EOF or reset. */
		CHECK(recv(peers[i], &byte, 1, 0) <= 0);
		append(expect, "ACCEPT t%u %d", LISTEN_TAG, -ENFILE);
		close(peers[i]);
	}
	CHECK_STR(r.loop_line, expect);
	loop_free(r.loop);
	close(lfd);
}

static const char expect_listen[] =
	"A: ACCEPT t7, RECV 5 hello, SEND 5, RECV 0, CLOSED\n"
	"B: ACCEPT t7, RECV 1 x, CLOSED\n"
	"C: ACCEPT t7, RECV 1 z, RECV 0, CLOSED\n"
	"D: ACCEPT t7, RECV 1 q, RECV 0, CLOSED\n"
	"E: ACCEPT t7, RECV 1 q, RECV 0, CLOSED\n"
	"F: ACCEPT t7, RECV 1 q, RECV 0, CLOSED\n"
	"G: ACCEPT t7, RECV 1 q, RECV 0, CLOSED\n"
	"H: ACCEPT t7, RECV 1 q, RECV 0, CLOSED\n"
	"I: ACCEPT t7, RECV 1 q, RECV 0, CLOSED\n"
	"J: ACCEPT t7, RECV 1 q, RECV 0, CLOSED\n"
	"K: ACCEPT t7, RECV 1 q, RECV 0, CLOSED\n"
	"L: ACCEPT t7, BULK 4194304, RECV 0, CLOSED\n"
	"loop: TIMER 2, TIMER 1, POLL 5 1, WAKE\n";

static const char expect_connect[] =
	"A: CONNECT t1 0, RECV 3 abc, SEND 2, RECV 0, CLOSED\n"
	"B: CONNECT t2 -111\n"
	"C: CONNECT t3 0, CLOSED\n"
	"D: CONNECT t4 -110\n"
	"E: CONNECT t5 -111\n"
	"F: CONNECT t6 0, SEND 1, CLOSED\n"
	"G: CLOSED\n"
	"loop: \n";

int main(void)
{
	static const enum loop_backend backends[] = {
		LOOP_BACKEND_URING, LOOP_BACKEND_EPOLL,
	};
	static char got[2][2][4096];
	unsigned ran = 0;

	for (unsigned i = 0; i < 2; i++) {
		const char *name = loop_backend_name(backends[i]);

		scenario_listen(backends[i], got[i][0], sizeof(got[i][0]));
		scenario_connect(backends[i], got[i][1], sizeof(got[i][1]));
		if (!got[i][0][0]) {
			fprintf(stderr, "%s: cannot create a loop, skipped\n", name);
			continue;
		}
		ran++;
		fprintf(stderr, "%s, accepting side:\n%s%s, connecting side:\n%s",
			name, got[i][0], name, got[i][1]);
		CHECK_STR(got[i][0], expect_listen);
		CHECK_STR(got[i][1], expect_connect);
	}
	if (got[0][0][0] && got[1][0][0]) {
		CHECK_STR(got[0][0], got[1][0]);
		CHECK_STR(got[0][1], got[1][1]);
	}
	if (got[1][0][0])
		scenario_emfile();
	return ran ? 0 : 77;
}
