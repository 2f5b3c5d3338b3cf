/* SPDX-License-Identifier: MIT */
/*
 * tcp-server-stats: HTTP connections on the ring loop, routing, the report
 * endpoint, Server-Sent Events for the dashboard and the periodic tick.
 *
 * One loop, one thread.  Per-connection state lives in a flat array indexed
 * by slot, allocated sparsely by the kernel (calloc of a large table is
 * mmap'd zero pages), so 10,000 idle connections cost only the pages they
 * touch.  Every open connection sits on exactly one of a few lists, each
 * with one timeout, so each list is ordered by deadline and the tick only
 * looks at its heads.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "http.h"
#include "log.h"
#include "outbuf.h"
#include "render.h"
#include "service.h"
#include "shard.h"
#include "store.h"

extern const char stats_dashboard_html[];
extern const size_t stats_dashboard_html_len;

#define LISTEN_TAG		1
#define TIMER_TICK		0
#define POLL_SIGNALS		0
#define TICK_MS			1000
#define LINGER_MS		1000
/* A response that cannot be sent because the client does not read is not
 * allowed to pile up beyond this; nor the events for a slow dashboard. */
#define OUT_PENDING_MAX		(8u << 20)
#define OUT_KEEP		(64u << 10)
#define SSE_RETRY_MS		2000
#define NO_SLOT			UINT32_MAX

enum conn_list {
	LIST_NONE,
	LIST_IDLE,	/* waiting for the next request */
	LIST_REQUEST,	/* a request has started */
	LIST_LINGER,	/* error answered; draining input before closing */
	LIST_SSE,	/* an event stream: no timeout */
	NR_LISTS,
};

enum conn_state {
	CONN_FREE,
	CONN_HTTP,
	CONN_SSE,
	CONN_LINGER,
	CONN_CLOSING,	/* loop_close() called, waiting for LOOP_EV_CLOSED */
};

struct conn {
	struct http_parser http;
	/* out[0] is in flight (while sending), out[1] collects what comes
	 * next: the kernel may read out[0] until LOOP_EV_SEND, so it is never
	 * appended to (a realloc could move it) while a send is pending. */
	struct outbuf out[2];
	size_t out_sent;
	uint64_t since_ms;	/* when it joined its list */
	uint32_t prev, next;
	uint8_t list;
	uint8_t state;
	bool sending;
	bool close_after_flush;
	bool eof;		/* the client closed its side */
	bool linger;		/* rejected mid-stream: drain before closing */
};

struct list_head {
	uint32_t first, last;
	uint64_t timeout_ms;	/* 0: never */
};

struct service {
	const struct stats_config *cfg;
	struct loop *loop;
	struct conn *conns;
	unsigned capacity;
	struct list_head lists[NR_LISTS];
	struct http_limits limits;
	struct store store;
	struct render_self self;
	struct outbuf scratch;	/* rendering, reused */
	struct log_ratelimit accept_rl;
	int signal_fd;
	int listen_fd;
	int error;
};

/* ---- lists ------------------------------------------------------------- */

static void list_remove(struct service *svc, uint32_t slot)
{
	struct conn *c = &svc->conns[slot];
	struct list_head *l = &svc->lists[c->list];

	if (c->list == LIST_NONE)
		return;
	if (c->prev != NO_SLOT)
		svc->conns[c->prev].next = c->next;
	else
		l->first = c->next;
	if (c->next != NO_SLOT)
		svc->conns[c->next].prev = c->prev;
	else
		l->last = c->prev;
	c->list = LIST_NONE;
	c->prev = c->next = NO_SLOT;
}

/* Appends slot to list, restarting its clock. */
static void list_move(struct service *svc, uint32_t slot, enum conn_list list)
{
	struct conn *c = &svc->conns[slot];
	struct list_head *l = &svc->lists[list];

	list_remove(svc, slot);
	c->list = (uint8_t)list;
	c->since_ms = loop_now_ms();
	c->prev = l->last;
	c->next = NO_SLOT;
	if (l->last != NO_SLOT)
		svc->conns[l->last].next = slot;
	else
		l->first = slot;
	l->last = slot;
}

/* ---- sending ----------------------------------------------------------- */

static void conn_close(struct service *svc, uint32_t slot)
{
	struct conn *c = &svc->conns[slot];
	int ret;

	if (c->state == CONN_CLOSING || c->state == CONN_FREE)
		return;
	if (c->state == CONN_SSE)
		svc->self.sse_clients--;
	c->state = CONN_CLOSING;
	list_remove(svc, slot);
	ret = loop_close(svc->loop, slot);
	if (ret < 0 && ret != -EALREADY)
		log_warn("closing connection %u: %s", slot, strerror(-ret));
}

/* What to do once everything queued went out and the connection is meant
 * to end: linger a moment so that our answer is not lost to a reset. */
static void conn_finish(struct service *svc, uint32_t slot)
{
	struct conn *c = &svc->conns[slot];

	if (c->eof || !c->linger ||
	    (c->state != CONN_HTTP && c->state != CONN_LINGER)) {
		conn_close(svc, slot);
		return;
	}
	c->state = CONN_LINGER;
	list_move(svc, slot, LIST_LINGER);
}

static void conn_flush(struct service *svc, uint32_t slot)
{
	struct conn *c = &svc->conns[slot];
	struct outbuf tmp;
	int ret;

	if (c->sending || c->state == CONN_CLOSING)
		return;
	if (!c->out[1].len) {
		if (c->close_after_flush)
			conn_finish(svc, slot);
		return;
	}
	tmp = c->out[0];
	c->out[0] = c->out[1];
	c->out[1] = tmp;
	outbuf_reset(&c->out[1], OUT_KEEP);
	c->out_sent = 0;
	ret = loop_send(svc->loop, slot, c->out[0].data, c->out[0].len);
	if (ret < 0) {
		conn_close(svc, slot);
		return;
	}
	c->sending = true;
}

static void on_sent(struct service *svc, uint32_t slot, int32_t res)
{
	struct conn *c = &svc->conns[slot];
	int ret;

	c->sending = false;
	if (res <= 0) {
		conn_close(svc, slot);
		return;
	}
	c->out_sent += (size_t)res;
	if (c->out_sent < c->out[0].len) {
		/* A short send: the rest goes out before anything newer. */
		ret = loop_send(svc->loop, slot, c->out[0].data + c->out_sent,
				c->out[0].len - c->out_sent);
		if (ret < 0)
			conn_close(svc, slot);
		else
			c->sending = true;
		return;
	}
	outbuf_reset(&c->out[0], OUT_KEEP);
	conn_flush(svc, slot);
}

/* Queues bytes behind whatever is pending; false when the client does not
 * keep up (or memory ran out) and the connection was closed. */
static bool conn_queue(struct service *svc, uint32_t slot, const void *data,
		       size_t len)
{
	struct outbuf *o = &svc->conns[slot].out[1];

	if (o->len + len > OUT_PENDING_MAX) {
		conn_close(svc, slot);
		return false;
	}
	outbuf_add(o, data, len);
	if (o->failed) {
		conn_close(svc, slot);
		return false;
	}
	return true;
}

static void respond(struct service *svc, uint32_t slot, unsigned status,
		    const char *type, const void *body, size_t len,
		    const char *extra)
{
	struct conn *c = &svc->conns[slot];
	bool keep = c->http.keep_alive && c->http.phase == HTTP_PHASE_DONE &&
		    !c->close_after_flush;
	char head[512];
	int n;

	n = http_format_head(head, sizeof(head), status, type, len,
			     keep ? HTTP_F_KEEP_ALIVE : 0, extra);
	if (n < 0) {
		conn_close(svc, slot);
		return;
	}
	if (!keep) {
		c->close_after_flush = true;
		/* Refused mid-stream, the client may still be sending:
		 * closing on unread input would reset the connection and
		 * lose our answer with it. */
		c->linger = status == 408 || status == 413 || status == 414 ||
			    status == 431;
	}
	svc->self.requests++;
	if (!conn_queue(svc, slot, head, (size_t)n))
		return;
	if (c->http.method != HTTP_HEAD && len)
		conn_queue(svc, slot, body, len);
}

static void respond_error(struct service *svc, uint32_t slot, unsigned status,
			  const char *why, const char *extra)
{
	struct outbuf *o = &svc->scratch;

	outbuf_reset(o, OUT_KEEP);
	outbuf_str(o, "{\"error\":");
	outbuf_json_str(o, why);
	outbuf_str(o, "}\n");
	if (o->failed) {
		conn_close(svc, slot);
		return;
	}
	respond(svc, slot, status, "application/json", o->data, o->len, extra);
}

static void respond_scratch(struct service *svc, uint32_t slot,
			    const char *type)
{
	if (svc->scratch.failed) {
		respond_error(svc, slot, 503, "out of memory", NULL);
		return;
	}
	respond(svc, slot, 200, type, svc->scratch.data, svc->scratch.len,
		"Cache-Control: no-store\r\n");
}

/* ---- routes ------------------------------------------------------------ */

static uint64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void post_report(struct service *svc, uint32_t slot)
{
	struct conn *c = &svc->conns[slot];
	struct report r;
	char why[256];
	int ret;

	ret = store_decode_report(c->http.body ? c->http.body : "",
				  c->http.body_len, &r, why,
				  sizeof(why));
	if (ret < 0) {
		svc->self.reports_rejected++;
		respond_error(svc, slot, 400, why, NULL);
		return;
	}
	ret = store_apply(&svc->store, &r, wall_ms(), loop_now_ms());
	if (ret < 0) {
		svc->self.reports_rejected++;
		respond_error(svc, slot, 503, ret == -ENOSPC ?
			      "too many reporters (see --max-reporters)" :
			      "out of memory", NULL);
		return;
	}
	svc->self.reports_ok++;
	respond(svc, slot, 200, "application/json", "{\"ok\":true}\n", 12,
		NULL);
}

static void sse_event(struct service *svc, uint32_t slot, const char *event,
		      const struct outbuf *data)
{
	char head[64];
	int n = snprintf(head, sizeof(head), "event: %s\ndata: ", event);

	if (!conn_queue(svc, slot, head, (size_t)n) ||
	    !conn_queue(svc, slot, data->data, data->len))
		return;
	conn_queue(svc, slot, "\n\n", 2);
}

static void sse_start(struct service *svc, uint32_t slot)
{
	struct conn *c = &svc->conns[slot];
	char head[512];
	char retry[32];
	int n;

	n = http_format_head(head, sizeof(head), 200, "text/event-stream", 0,
			     HTTP_F_KEEP_ALIVE | HTTP_F_NO_LENGTH,
			     "Cache-Control: no-store\r\n"
			     "X-Accel-Buffering: no\r\n");
	svc->self.requests++;
	if (n < 0 || !conn_queue(svc, slot, head, (size_t)n))
		return;
	c->state = CONN_SSE;
	svc->self.sse_clients++;
	list_move(svc, slot, LIST_SSE);
	n = snprintf(retry, sizeof(retry), "retry: %u\n\n", SSE_RETRY_MS);
	if (!conn_queue(svc, slot, retry, (size_t)n))
		return;
	outbuf_reset(&svc->scratch, OUT_KEEP);
	render_history(&svc->scratch, &svc->store);
	sse_event(svc, slot, "history", &svc->scratch);
	if (c->state != CONN_SSE)
		return;
	outbuf_reset(&svc->scratch, OUT_KEEP);
	render_state(&svc->scratch, &svc->store, &svc->self, wall_ms(),
		     loop_now_ms());
	sse_event(svc, slot, "state", &svc->scratch);
}

static bool path_is(const char *path, size_t len, const char *want)
{
	return len == strlen(want) && !memcmp(path, want, len);
}

static bool method_is_get(const struct conn *c)
{
	return c->http.method == HTTP_GET || c->http.method == HTTP_HEAD;
}

static void handle_request(struct service *svc, uint32_t slot)
{
	struct conn *c = &svc->conns[slot];
	const char *path;
	size_t len = http_path(&c->http, &path);
	uint64_t now = wall_ms(), mono = loop_now_ms();
	struct outbuf *o = &svc->scratch;

	outbuf_reset(o, OUT_KEEP);
	/* ASP.NET routed without regard to case; so do we for its path. */
	if (len == strlen("/api/ServerStatistics") &&
	    !strncasecmp(path, "/api/ServerStatistics", len)) {
		if (c->http.method == HTTP_POST) {
			post_report(svc, slot);
		} else if (method_is_get(c)) {
			render_list(o, &svc->store, now, mono);
			respond_scratch(svc, slot, "application/json");
		} else {
			respond_error(svc, slot, 405, "method not allowed",
				      "Allow: GET, HEAD, POST\r\n");
		}
		return;
	}
	if (path_is(path, len, "/") || path_is(path, len, "/index.html")) {
		if (!method_is_get(c))
			goto not_allowed;
		respond(svc, slot, 200, "text/html; charset=utf-8",
			stats_dashboard_html, stats_dashboard_html_len,
			"Cache-Control: no-cache\r\n");
		return;
	}
	if (path_is(path, len, "/api/events")) {
		if (c->http.method == HTTP_HEAD) {
			respond(svc, slot, 200, "text/event-stream", NULL, 0,
				NULL);
			return;
		}
		if (c->http.method != HTTP_GET)
			goto not_allowed;
		sse_start(svc, slot);
		return;
	}
	if (path_is(path, len, "/api/state")) {
		if (!method_is_get(c))
			goto not_allowed;
		render_state(o, &svc->store, &svc->self, now, mono);
		outbuf_add(o, "\n", 1);
		respond_scratch(svc, slot, "application/json");
		return;
	}
	if (path_is(path, len, "/metrics")) {
		if (!method_is_get(c))
			goto not_allowed;
		render_metrics(o, &svc->store, &svc->self, now, mono);
		respond_scratch(svc, slot, "text/plain; version=0.0.4; charset=utf-8");
		return;
	}
	if (path_is(path, len, "/healthz") || path_is(path, len, "/readyz")) {
		if (!method_is_get(c))
			goto not_allowed;
		/* Ready as soon as the loop runs: the listener exists before
		 * the first request can arrive, and there is nothing to warm. */
		respond(svc, slot, 200, "text/plain", "ok\n", 3,
			"Cache-Control: no-store\r\n");
		return;
	}
	respond_error(svc, slot, 404, "no such path", NULL);
	return;
not_allowed:
	respond_error(svc, slot, 405, "method not allowed",
		      "Allow: GET, HEAD\r\n");
}

/* ---- receiving --------------------------------------------------------- */

static void on_data(struct service *svc, uint32_t slot, const char *data,
		    size_t len)
{
	struct conn *c = &svc->conns[slot];
	bool finished = false;	/* a request completed in this read */

	while (len && c->state == CONN_HTTP && !c->close_after_flush) {
		size_t used;
		enum http_result r = http_feed(&c->http, data, len, &used);

		data += used;
		len -= used;
		switch (r) {
		case HTTP_FEED_AGAIN:
			break;
		case HTTP_FEED_CONTINUE:
			conn_queue(svc, slot, "HTTP/1.1 100 Continue\r\n\r\n", 25);
			continue;
		case HTTP_FEED_REQUEST:
			handle_request(svc, slot);
			finished = true;
			if (c->state != CONN_HTTP)
				break;
			http_next(&c->http);
			continue;
		case HTTP_FEED_ERROR:
			respond_error(svc, slot, c->http.status, c->http.error,
				      NULL);
			break;
		}
		break;
	}
	if (c->state == CONN_HTTP && !c->close_after_flush) {
		if (http_in_request(&c->http)) {
			/* A new request's clock starts with its first byte,
			 * also when it came right behind the last one. */
			if (c->list != LIST_REQUEST || finished)
				list_move(svc, slot, LIST_REQUEST);
		} else {
			list_move(svc, slot, LIST_IDLE);
		}
	}
	conn_flush(svc, slot);
}

static void on_accept(struct service *svc, const struct loop_event *ev)
{
	struct conn *c;
	uint64_t suppressed = 0;

	if (ev->res < 0) {
		if (log_ratelimit_ok(&svc->accept_rl, &suppressed))
			log_warn("accept failed: %s (%" PRIu64 " more suppressed)",
				 strerror(-ev->res), suppressed);
		return;
	}
	if (ev->slot >= svc->capacity) {
		loop_close(svc->loop, ev->slot);
		return;
	}
	c = &svc->conns[ev->slot];
	http_parser_init(&c->http, &svc->limits);
	c->out_sent = 0;
	c->sending = false;
	c->close_after_flush = false;
	c->eof = false;
	c->linger = false;
	c->state = CONN_HTTP;
	c->list = LIST_NONE;
	c->prev = c->next = NO_SLOT;
	svc->self.conns_open++;
	svc->self.conns_accepted++;
	list_move(svc, ev->slot, LIST_IDLE);
	if (loop_recv_start(svc->loop, ev->slot) < 0)
		conn_close(svc, ev->slot);
}

static void on_closed(struct service *svc, uint32_t slot)
{
	struct conn *c = &svc->conns[slot];

	if (c->state == CONN_FREE)
		return;
	if (c->state == CONN_SSE)
		svc->self.sse_clients--;
	list_remove(svc, slot);
	http_parser_free(&c->http);
	outbuf_free(&c->out[0]);
	outbuf_free(&c->out[1]);
	c->state = CONN_FREE;
	svc->self.conns_open--;
}

/* ---- the tick ---------------------------------------------------------- */

static void sweep(struct service *svc, uint64_t mono)
{
	for (int l = LIST_IDLE; l < NR_LISTS; l++) {
		struct list_head *head = &svc->lists[l];

		if (!head->timeout_ms)
			continue;
		while (head->first != NO_SLOT &&
		       mono - svc->conns[head->first].since_ms >= head->timeout_ms) {
			uint32_t slot = head->first;

			if (l != LIST_LINGER)
				svc->self.conns_timed_out++;
			/* A slow request gets a 408 on its way out; an idle
			 * keep-alive connection just goes, as is usual. */
			if (l == LIST_REQUEST && !svc->conns[slot].sending &&
			    !svc->conns[slot].out[1].len) {
				/* Off this list first: the loop must move on
				 * whatever answering it does. */
				list_move(svc, slot, LIST_LINGER);
				respond_error(svc, slot, 408,
					      "request not received in time",
					      NULL);
				conn_flush(svc, slot);
				continue;
			}
			conn_close(svc, slot);
		}
	}
}

static void broadcast(struct service *svc, uint64_t now, uint64_t mono)
{
	uint32_t slot, next;

	if (svc->lists[LIST_SSE].first == NO_SLOT)
		return;
	outbuf_reset(&svc->scratch, OUT_KEEP);
	render_state(&svc->scratch, &svc->store, &svc->self, now, mono);
	if (svc->scratch.failed)
		return;
	for (slot = svc->lists[LIST_SSE].first; slot != NO_SLOT; slot = next) {
		next = svc->conns[slot].next;
		sse_event(svc, slot, "state", &svc->scratch);
		if (svc->conns[slot].state == CONN_SSE)
			conn_flush(svc, slot);
	}
}

static void tick(struct service *svc)
{
	uint64_t now = wall_ms(), mono = loop_now_ms();
	int ret;

	store_expire(&svc->store, mono);
	store_sample(&svc->store, now, mono);
	broadcast(svc, now, mono);
	sweep(svc, mono);
	ret = loop_timer(svc->loop, TIMER_TICK, TICK_MS);
	if (ret < 0) {
		svc->error = ret;
		log_error("arming the tick timer: %s", strerror(-ret));
		loop_stop(svc->loop);
	}
}

static void on_signal(struct service *svc)
{
	struct signalfd_siginfo si;

	if (read(svc->signal_fd, &si, sizeof(si)) != sizeof(si))
		return;
	log_info("%s: stopping", strsignal((int)si.ssi_signo));
	loop_stop(svc->loop);
}

static void on_event(struct loop *loop, const struct loop_event *ev, void *arg)
{
	struct service *svc = arg;

	(void)loop;
	switch (ev->type) {
	case LOOP_EV_ACCEPT:
		on_accept(svc, ev);
		return;
	case LOOP_EV_RECV:
		if (ev->slot >= svc->capacity)
			return;
		if (ev->res > 0) {
			struct conn *c = &svc->conns[ev->slot];

			/* Lingering or streaming: input is not looked at. */
			if (c->state == CONN_HTTP)
				on_data(svc, ev->slot, ev->data, (size_t)ev->res);
			return;
		}
		/* EOF (also mid-body) or an error: what was answered still
		 * goes out, then the connection ends. */
		if (ev->res == 0 && svc->conns[ev->slot].state == CONN_HTTP &&
		    (svc->conns[ev->slot].sending ||
		     svc->conns[ev->slot].out[1].len)) {
			svc->conns[ev->slot].eof = true;
			svc->conns[ev->slot].close_after_flush = true;
			return;
		}
		conn_close(svc, ev->slot);
		return;
	case LOOP_EV_SEND:
		if (ev->slot < svc->capacity)
			on_sent(svc, ev->slot, ev->res);
		return;
	case LOOP_EV_CLOSED:
		if (ev->slot < svc->capacity)
			on_closed(svc, ev->slot);
		return;
	case LOOP_EV_TIMER:
		if (ev->id == TIMER_TICK)
			tick(svc);
		return;
	case LOOP_EV_POLL:
		if (ev->id == POLL_SIGNALS)
			on_signal(svc);
		return;
	case LOOP_EV_CONNECT:
	case LOOP_EV_WAKE:
		return;
	}
}

static enum loop_backend backend_fallback(enum loop_backend b)
{
	return b == LOOP_BACKEND_AUTO ? LOOP_BACKEND_URING : b;
}

int service_run(const struct stats_config *cfg)
{
	struct loop_config lc = { 0 };
	struct service *svc;
	unsigned long nofile = 0;
	char addr[NET_ADDRSTRLEN];
	const char *why = NULL;
	int ret, err = 0;

	svc = calloc(1, sizeof(*svc));
	if (!svc) {
		log_error("allocating the service: %s", strerror(ENOMEM));
		return -ENOMEM;
	}
	svc->cfg = cfg;
	svc->signal_fd = -1;
	svc->listen_fd = -1;
	svc->limits.max_head = cfg->max_head;
	svc->limits.max_body = cfg->max_body;
	svc->accept_rl.interval_ms = 5000;
	svc->self.start_unix = wall_ms() / 1000;
	for (int l = 0; l < NR_LISTS; l++)
		svc->lists[l].first = svc->lists[l].last = NO_SLOT;
	svc->lists[LIST_IDLE].timeout_ms = (uint64_t)cfg->idle_timeout_s * 1000;
	svc->lists[LIST_REQUEST].timeout_ms =
		(uint64_t)cfg->header_timeout_s * 1000;
	svc->lists[LIST_LINGER].timeout_ms = LINGER_MS;

	ret = store_init(&svc->store, cfg->stale_ms,
			 (uint64_t)cfg->expire_s * 1000, cfg->max_reporters);
	if (ret < 0) {
		log_error("allocating the reporter table: %s", strerror(-ret));
		goto out;
	}
	ret = shard_signals_block();
	if (ret < 0) {
		log_error("blocking signals: %s", strerror(-ret));
		goto out;
	}
	svc->signal_fd = ret;
	/* Direct descriptors do not count against RLIMIT_NOFILE, but the
	 * fixed table is sized from it: raise it so idle crowds fit. */
	ret = net_raise_nofile(&nofile);
	if (ret < 0)
		log_warn("raising the descriptor limit: %s", strerror(-ret));

	lc.backend = backend_fallback(cfg->backend);
	lc.buf_count = 256;
	lc.buf_size = 4096;
	svc->loop = loop_new(&lc, on_event, svc, &err, &why);
	if (!svc->loop && cfg->backend == LOOP_BACKEND_AUTO) {
		log_warn("io_uring unavailable (%s: %s); falling back to epoll",
			 why ? why : "?", strerror(-err));
		lc.backend = LOOP_BACKEND_EPOLL;
		svc->loop = loop_new(&lc, on_event, svc, &err, &why);
	}
	if (!svc->loop) {
		ret = err;
		log_error("creating the %s loop: %s: %s",
			  loop_backend_name(lc.backend), why ? why : "?",
			  strerror(-err));
		goto out;
	}
	svc->self.backend = loop_backend_name(loop_backend(svc->loop));
	svc->capacity = loop_capacity(svc->loop);
	svc->conns = calloc(svc->capacity, sizeof(*svc->conns));
	if (!svc->conns) {
		ret = -ENOMEM;
		log_error("allocating %u connection slots: %s", svc->capacity,
			  strerror(ENOMEM));
		goto out;
	}
	/* Left untouched: a slot's links are set when it joins a list, and
	 * zero pages cost nothing until a connection lands there. */

	ret = net_listen(&cfg->listen, 4096, 0);
	if (ret < 0) {
		log_error("listening on %s: %s",
			  net_addr_str(&cfg->listen, 1, addr, sizeof(addr)),
			  strerror(-ret));
		goto out;
	}
	svc->listen_fd = ret;
	ret = loop_listen(svc->loop, svc->listen_fd, LISTEN_TAG);
	if (ret < 0) {
		log_error("accepting on the listener: %s", strerror(-ret));
		goto out;
	}
	ret = loop_poll(svc->loop, POLL_SIGNALS, svc->signal_fd, POLLIN);
	if (ret < 0) {
		log_error("watching for signals: %s", strerror(-ret));
		goto out;
	}
	ret = loop_timer(svc->loop, TIMER_TICK, TICK_MS);
	if (ret < 0) {
		log_error("arming the tick timer: %s", strerror(-ret));
		goto out;
	}
	store_sample(&svc->store, wall_ms(), loop_now_ms());
	log_info("ringhold %s: dashboard at http://%s/ (API /api/ServerStatistics, "
		 "/metrics); %s loop: %s; reporters stale after %.1fs, expire "
		 "after %us", RINGHOLD_VERSION,
		 net_addr_str(&cfg->listen, 1, addr, sizeof(addr)),
		 svc->self.backend, loop_features(svc->loop),
		 (double)cfg->stale_ms / 1000.0, cfg->expire_s);

	ret = loop_run(svc->loop);
	if (ret < 0)
		log_error("the loop failed: %s", strerror(-ret));
	else if (svc->error)
		ret = svc->error;
out:
	if (svc->loop)
		loop_free(svc->loop);
	if (svc->conns) {
		for (unsigned i = 0; i < svc->capacity; i++) {
			if (svc->conns[i].state == CONN_FREE)
				continue;
			http_parser_free(&svc->conns[i].http);
			outbuf_free(&svc->conns[i].out[0]);
			outbuf_free(&svc->conns[i].out[1]);
		}
		free(svc->conns);
	}
	if (svc->listen_fd >= 0)
		close(svc->listen_fd);
	if (svc->signal_fd >= 0)
		close(svc->signal_fd);
	outbuf_free(&svc->scratch);
	store_free(&svc->store);
	free(svc);
	return ret;
}
