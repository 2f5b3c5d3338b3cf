/* SPDX-License-Identifier: MIT */
/*
 * tcp-client: opens N connections at a controlled rate and holds them.
 *
 * The plan splits the connections over (source, server) tuples and each
 * tuple's share over the shards.  A shard keeps, per tuple, how many
 * connections it wants and has, and when it may try again: drops and
 * failures back off per tuple (exponential, with jitter), a connection
 * closed within SHORT_LIFE_MS counts as a failure, and a tuple whose
 * connects fail sends one probe connect at a time until one succeeds, so a
 * server that is down or full sees a trickle of attempts, not a storm.
 *
 * Keepalives: slot s of a shard belongs to bucket s mod B, and one bucket is
 * served every 100 ms, so each connection writes one byte per interval and
 * the writes are spread evenly over it.  Per connection the client keeps a
 * state byte, its tuple and one time stamp.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "client.h"
#include "control.h"
#include "counters.h"
#include "diagnose.h"
#include "hist.h"
#include "log.h"
#include "loop.h"
#include "net.h"
#include "proc.h"
#include "report.h"
#include "shard.h"

#define RAMP_TICK_MS		10
#define IDLE_TICK_MS		100
#define KA_BUCKET_MS		100
#define BACKOFF_MIN_MS		100
#define BACKOFF_MAX_MS		10000
/* A connection closed sooner than this after it was established counts as a
 * failure (a server at its limit accepts and closes at once). */
#define SHORT_LIFE_MS		2000
#define ERRNO_MAX		256
#define REPORT_REASONS_MAX	12
#define BATCH_NR		64
#define TIMER_DURATION		CONTROL_TIMER_USER

enum slot_state {
	SLOT_FREE = 0,
	SLOT_CONNECTING,
	SLOT_ESTABLISHED,
	SLOT_SENDING,		/* established, keepalive write in flight */
	SLOT_CLOSING,
};

struct tuple_state {
	uint64_t target;
	uint64_t active;	/* connecting + established */
	uint64_t next_ms;	/* no new attempt before this */
	uint32_t backoff_ms;	/* grows with each failure, 0 after a long life */
	uint32_t connecting;
	bool probing;		/* connects fail: one at a time until one works */
};

struct shard_stats {
	_Atomic uint64_t established;
	_Atomic uint64_t connecting;
	_Atomic uint64_t connects_ok;
	_Atomic uint64_t connects_failed;
	_Atomic uint64_t keepalives;
	_Atomic uint64_t drops;
	_Atomic uint64_t reached_ms;	/* when this shard first held its share */
	_Atomic uint64_t failed[ERRNO_MAX];	/* connect failures by errno */
	_Atomic uint64_t dropped[ERRNO_MAX];	/* drops by errno, 0 = EOF */
	_Atomic uint64_t drop_age[DIAG_AGE_BUCKETS];	/* drops by connection age */
};

struct client;

struct client_shard {
	struct shard base;	/* first: the shard set walks these */
	struct client *cl;
	unsigned capacity;
	uint8_t *state;
	uint32_t *tuple_of;
	/* Connecting: when the connect started, in us since epoch_us (for the
	 * latency).  Established: when it was, in ms since epoch_us / 1000
	 * (for its age at a drop; wraps after 49 days, not 71 minutes). */
	uint32_t *stamp;
	struct tuple_state *tuples;
	size_t rr;		/* next tuple to try */
	double tokens;
	double rate;		/* connects/s for this shard, 0 unlimited */
	unsigned inflight_max;
	uint64_t last_tick_ms;
	uint64_t target;	/* this shard's share of the connections */
	uint64_t ka_next_ms;
	unsigned ka_bucket, ka_buckets;
	bool ramping;
	uint64_t epoch_us;
	unsigned rand_state;
	struct shard_stats stats;
	pthread_mutex_t hist_lock;
	struct hist latency;
};

struct client {
	struct client_config cfg;
	struct plan plan;
	enum loop_backend backend;
	unsigned nr_shards;
	unsigned capacity;
	struct client_shard *shards;
	struct shard_set set;
	time_t start_time;
	uint64_t start_ms;
	uint64_t target_reached_ms;

	struct control ctl;
	int sig_fd;
	struct log_ratelimit report_rl;
	uint64_t last_report_ms, reported_established;
	uint64_t last_connects_ok, last_tick_ms;
	double connect_rate;	/* over the last second */
	struct diag diag;
	char diagnosis[sizeof(((struct diag *)0)->text)];	/* last logged */
	uint64_t diagnosis_ms;
	bool tty;
	bool line_open;

};

static const char keepalive_byte = '.';


static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static unsigned errno_index(int err)
{
	return err > 0 && err < ERRNO_MAX ? (unsigned)err : 0;
}

/* Full jitter: a uniform pick in [ms/2, ms]. */
static uint64_t jitter(struct client_shard *sh, uint32_t ms)
{
	return ms / 2 + (uint64_t)rand_r(&sh->rand_state) % (ms / 2 + 1);
}

static void tuple_backoff(struct client_shard *sh, struct tuple_state *t,
			  uint64_t now)
{
	t->backoff_ms = t->backoff_ms ? t->backoff_ms * 2 : BACKOFF_MIN_MS;
	if (t->backoff_ms > BACKOFF_MAX_MS)
		t->backoff_ms = BACKOFF_MAX_MS;
	t->next_ms = now + jitter(sh, t->backoff_ms);
}

static void start_connects(struct client_shard *sh, uint64_t now)
{
	struct client *cl = sh->cl;
	size_t n = cl->plan.nr_tuples, idle = 0;
	unsigned timeout_ms = cl->cfg.connect_timeout_s * 1000;
	uint64_t connecting;

	sh->ramping = false;
	while (idle < n) {
		const struct plan_tuple *pt = &cl->plan.tuples[sh->rr];
		struct tuple_state *t = &sh->tuples[sh->rr];
		int slot;

		if (t->active >= t->target || now < t->next_ms ||
		    (t->probing && t->connecting)) {
			if (t->active < t->target)
				sh->ramping = true;
			sh->rr = (sh->rr + 1) % n;
			idle++;
			continue;
		}
		sh->ramping = true;
		connecting = atomic_load_explicit(&sh->stats.connecting,
						  memory_order_relaxed);
		if (connecting >= sh->inflight_max || (sh->rate && sh->tokens < 1.0))
			return;
		slot = loop_connect(sh->base.loop,
				    pt->src ? (const struct sockaddr *)&pt->src->ss : NULL,
				    (const struct sockaddr *)&pt->dst->ss, pt->dst->len,
				    timeout_ms, (uint32_t)sh->rr);
		if (slot < 0) {
			/* No slot free or the kernel said no right away:
			 * count it like a failed connect and back off. */
			COUNTER_INC(&sh->stats.connects_failed);
			COUNTER_INC(&sh->stats.failed[errno_index(-slot)]);
			tuple_backoff(sh, t, now);
			continue;
		}
		sh->state[slot] = SLOT_CONNECTING;
		sh->tuple_of[slot] = (uint32_t)sh->rr;
		sh->stamp[slot] = (uint32_t)(now_us() - sh->epoch_us);
		t->active++;
		t->connecting++;
		COUNTER_INC(&sh->stats.connecting);
		if (sh->rate)
			sh->tokens -= 1.0;
		idle = 0;
		/* Round-robin one connect per tuple: sources and servers fill
		 * together. */
		sh->rr = (sh->rr + 1) % n;
	}
}

static void send_keepalives(struct client_shard *sh, uint64_t now)
{
	unsigned rounds = 0;

	while (now >= sh->ka_next_ms && rounds++ < sh->ka_buckets) {
		for (unsigned slot = sh->ka_bucket; slot < sh->capacity;
		     slot += sh->ka_buckets) {
			if (sh->state[slot] != SLOT_ESTABLISHED)
				continue;
			if (loop_send(sh->base.loop, slot, &keepalive_byte, 1) == 0)
				sh->state[slot] = SLOT_SENDING;
		}
		sh->ka_bucket = (sh->ka_bucket + 1) % sh->ka_buckets;
		sh->ka_next_ms += KA_BUCKET_MS;
	}
	if (now >= sh->ka_next_ms)	/* far behind: skip, do not burst */
		sh->ka_next_ms = now + KA_BUCKET_MS;
}

static void client_drop(struct client_shard *sh, uint32_t slot, int err)
{
	COUNTER_INC(&sh->stats.drops);
	COUNTER_INC(&sh->stats.dropped[errno_index(err)]);
	sh->state[slot] = SLOT_CLOSING;
	loop_close(sh->base.loop, slot);
}

static void on_connect(struct client_shard *sh, const struct loop_event *ev)
{
	struct tuple_state *t = &sh->tuples[ev->id];
	uint64_t now = loop_now_ms();

	COUNTER_DEC(&sh->stats.connecting);
	t->connecting--;
	if (ev->res < 0) {
		sh->state[ev->slot] = SLOT_FREE;
		t->active--;
		COUNTER_INC(&sh->stats.connects_failed);
		COUNTER_INC(&sh->stats.failed[errno_index(-ev->res)]);
		t->probing = true;
		tuple_backoff(sh, t, now);
		return;
	}
	/* A connect slot came free: use it now rather than at the next tick
	 * (the rate's tokens still apply). */
	if (!shard_set_stopping(sh->base.set))
		start_connects(sh, now);
	pthread_mutex_lock(&sh->hist_lock);
	hist_add(&sh->latency, (uint32_t)(now_us() - sh->epoch_us) -
			       sh->stamp[ev->slot]);
	sh->stamp[ev->slot] = (uint32_t)((now_us() - sh->epoch_us) / 1000);
	pthread_mutex_unlock(&sh->hist_lock);
	sh->state[ev->slot] = SLOT_ESTABLISHED;
	t->probing = false;
	COUNTER_INC(&sh->stats.connects_ok);
	COUNTER_INC(&sh->stats.established);
	if (!sh->stats.reached_ms &&
	    atomic_load_explicit(&sh->stats.established, memory_order_relaxed) >=
	    sh->target)
		atomic_store_explicit(&sh->stats.reached_ms, now, memory_order_relaxed);
	/* The server never writes: a recv completes only when the
	 * connection ends, which is how drops are noticed. */
	if (loop_recv_start(sh->base.loop, ev->slot) < 0)
		client_drop(sh, ev->slot, EIO);
}

static void on_closed(struct client_shard *sh, const struct loop_event *ev)
{
	struct tuple_state *t = &sh->tuples[sh->tuple_of[ev->slot]];
	uint64_t now = loop_now_ms();
	uint32_t life_ms = (uint32_t)((now_us() - sh->epoch_us) / 1000) -
			   sh->stamp[ev->slot];

	sh->state[ev->slot] = SLOT_FREE;
	COUNTER_DEC(&sh->stats.established);
	COUNTER_INC(&sh->stats.drop_age[diag_age_bucket(life_ms)]);
	t->active--;
	/* Whatever ended it, check the way is clear with one connect before
	 * sending the rest: its success restores full speed. */
	t->probing = true;
	if (life_ms < SHORT_LIFE_MS) {
		/* Accepted and closed at once: the server is full, or something
		 * in the path cuts connections.  Back off as for a failure. */
		tuple_backoff(sh, t, now);
		return;
	}
	/* A connection that lived dropped: reconnect after a short jittered
	 * pause, so that a server restart is not answered by every client at
	 * the same instant. */
	t->backoff_ms = 0;
	if (t->next_ms < now)
		t->next_ms = now + jitter(sh, BACKOFF_MIN_MS);
}

static void shard_tick(struct client_shard *sh)
{
	uint64_t now = loop_now_ms();

	if (sh->rate) {
		double burst = sh->rate / 20.0 > 1.0 ? sh->rate / 20.0 : 1.0;

		sh->tokens += sh->rate * (double)(now - sh->last_tick_ms) / 1000.0;
		if (sh->tokens > burst)
			sh->tokens = burst;
	}
	sh->last_tick_ms = now;
	if (!shard_set_stopping(sh->base.set))
		start_connects(sh, now);
	send_keepalives(sh, now);
	/* Ramping, connect completions start the next connects: wake for
	 * each.  Holding, wake for batches of keepalive completions. */
	if (sh->ramping)
		loop_set_batch(sh->base.loop, 1, 0);
	else
		loop_set_batch(sh->base.loop, BATCH_NR, IDLE_TICK_MS);
	loop_timer(sh->base.loop, 0, sh->ramping ? RAMP_TICK_MS : IDLE_TICK_MS);
}

static void shard_cb(struct loop *loop, const struct loop_event *ev, void *arg)
{
	struct client_shard *sh = arg;

	switch (ev->type) {
	case LOOP_EV_CONNECT:
		on_connect(sh, ev);
		break;
	case LOOP_EV_RECV:
		if (ev->res <= 0 && (sh->state[ev->slot] == SLOT_ESTABLISHED ||
				     sh->state[ev->slot] == SLOT_SENDING))
			client_drop(sh, ev->slot, -ev->res);
		break;
	case LOOP_EV_SEND:
		if (sh->state[ev->slot] != SLOT_SENDING)
			break;
		if (ev->res < 0) {
			client_drop(sh, ev->slot, -ev->res);
			break;
		}
		sh->state[ev->slot] = SLOT_ESTABLISHED;
		COUNTER_INC(&sh->stats.keepalives);
		break;
	case LOOP_EV_CLOSED:
		on_closed(sh, ev);
		break;
	case LOOP_EV_TIMER:
		shard_tick(sh);
		break;
	case LOOP_EV_WAKE:
		if (shard_set_stopping(sh->base.set))
			loop_stop(loop);
		break;
	default:
		break;
	}
}

static void *shard_main(void *arg)
{
	struct client_shard *sh = arg;
	struct client *cl = sh->cl;
	struct loop_config lc = {
		.backend = cl->backend,
		.capacity = cl->capacity,
		.buf_count = 64,
		.buf_size = 256,
		.flags = LOOP_F_CONNECT,
	};
	const char *why = NULL;
	int err = 0;

	sh->base.loop = loop_new(&lc, shard_cb, sh, &err, &why);
	if (!sh->base.loop) {
		shard_ready(&sh->base, err, why);
		return NULL;
	}
	sh->capacity = loop_capacity(sh->base.loop);
	sh->state = calloc(sh->capacity, sizeof(*sh->state));
	sh->tuple_of = calloc(sh->capacity, sizeof(*sh->tuple_of));
	sh->stamp = calloc(sh->capacity, sizeof(*sh->stamp));
	if (!sh->state || !sh->tuple_of || !sh->stamp) {
		err = -ENOMEM;
		why = "allocating connection state";
		goto fail;
	}
	sh->ka_buckets = cl->cfg.interval_s * 1000 / KA_BUCKET_MS;
	sh->last_tick_ms = loop_now_ms();
	/* Shards start their keepalive rounds at different points. */
	sh->ka_bucket = sh->base.id % sh->ka_buckets;
	sh->ka_next_ms = sh->last_tick_ms + KA_BUCKET_MS;
	sh->epoch_us = now_us();
	err = loop_timer(sh->base.loop, 0, 0);
	if (err < 0) {
		why = "arming the tick timer";
		goto fail;
	}
	shard_ready(&sh->base, 0, NULL);
	err = loop_run(sh->base.loop);
	if (err < 0) {
		log_error("shard %u: event loop failed: %s", sh->base.id, strerror(-err));
		atomic_store(&sh->base.set->failed, 1);
	}
	shard_free_loop(&sh->base);
	return NULL;
fail:
	shard_free_loop(&sh->base);
	shard_ready(&sh->base, err, why);
	return NULL;
}

static uint64_t sum_at(struct client *cl, size_t offset)
{
	return counter_sum(cl->shards, sizeof(*cl->shards), cl->nr_shards,
			   offsetof(struct client_shard, stats) + offset);
}

#define SUM(cl, field) sum_at(cl, offsetof(struct shard_stats, field))

static const char *errno_name(unsigned e)
{
	const char *name;

	if (e == 0)
		return "EOF";
	name = strerrorname_np((int)e);
	return name ? name : "E?";
}

static void merged_latency(struct client *cl, struct hist *out)
{
	memset(out, 0, sizeof(*out));
	for (unsigned i = 0; i < cl->nr_shards; i++) {
		pthread_mutex_lock(&cl->shards[i].hist_lock);
		hist_merge(out, &cl->shards[i].latency);
		pthread_mutex_unlock(&cl->shards[i].hist_lock);
	}
}

/* {"ECONNREFUSED": n, ...}, with the text when detail is set. */
/*
 * {"ECONNREFUSED": n, ...} for reports: the REPORT_REASONS_MAX largest, the
 * rest summed as "other" (the stats service takes at most 16 reasons).  With
 * detail, for the summary at exit: every errno, with its text.
 */
static json_t *errno_counts(struct client *cl, size_t base, bool detail)
{
	json_t *obj = json_object();
	uint64_t counts[ERRNO_MAX], other = 0;
	unsigned kept = 0;

	for (unsigned e = 0; e < ERRNO_MAX; e++)
		counts[e] = sum_at(cl, base + e * sizeof(_Atomic uint64_t));
	for (;;) {
		unsigned best = 0;

		/* Largest first: a handful of errnos at most, so no sort. */
		for (unsigned e = 1; e < ERRNO_MAX; e++)
			if (counts[e] > counts[best])
				best = e;
		if (!counts[best])
			break;
		if (!detail && kept == REPORT_REASONS_MAX) {
			other += counts[best];
		} else if (detail) {
			json_t *d = json_object();

			json_object_set_new(d, "count", json_integer((json_int_t)counts[best]));
			json_object_set_new(d, "text", json_string(best ?
				strerror((int)best) : "connection closed by the server"));
			json_object_set_new(obj, errno_name(best), d);
		} else {
			json_object_set_new(obj, errno_name(best),
					    json_integer((json_int_t)counts[best]));
			kept++;
		}
		counts[best] = 0;
	}
	if (other)
		json_object_set_new(obj, "other", json_integer((json_int_t)other));
	return obj;
}

static json_t *latency_json(struct client *cl)
{
	json_t *lat = json_object();
	struct hist *h = malloc(sizeof(*h));

	if (!h)
		return lat;
	merged_latency(cl, h);
	json_object_set_new(lat, "p50", json_integer((json_int_t)hist_percentile(h, 50)));
	json_object_set_new(lat, "p90", json_integer((json_int_t)hist_percentile(h, 90)));
	json_object_set_new(lat, "p99", json_integer((json_int_t)hist_percentile(h, 99)));
	json_object_set_new(lat, "max", json_integer((json_int_t)h->max));
	free(h);
	return lat;
}

static void report_done(void *arg, const struct report_result *res)
{
	struct client *cl = arg;

	if (!res->ok)
		log_report_failure(&cl->report_rl, cl->cfg.report_url,
				   res->http_status, res->error);
}

static void send_report(struct client *cl, uint64_t established)
{
	json_t *doc;
	char *body;

	doc = (json_t *)report_doc_new("client", cl->cfg.name,
				       loop_backend_name(cl->backend),
				       cl->start_time);
	if (!doc)
		return;
	json_object_set_new(doc, "connections", json_integer((json_int_t)established));
	json_object_set_new(doc, "target", json_integer((json_int_t)cl->cfg.connections));
	json_object_set_new(doc, "failures",
			    errno_counts(cl, offsetof(struct shard_stats, failed), false));
	json_object_set_new(doc, "drops",
			    errno_counts(cl, offsetof(struct shard_stats, dropped), false));
	json_object_set_new(doc, "connectRate", json_real(cl->connect_rate));
	json_object_set_new(doc, "latencyUs", latency_json(cl));
	json_object_set_new(doc, "keepalives", json_integer((json_int_t)SUM(cl, keepalives)));
	if (diag_text(&cl->diag))
		json_object_set_new(doc, "diagnosis", json_string(diag_text(&cl->diag)));
	body = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	if (body)
		reporter_send(cl->ctl.reporter, body);
}

/* "ECONNREFUSED 12, ETIMEDOUT 3" for the progress line. */
static void failure_summary(struct client *cl, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (unsigned e = 1; e < ERRNO_MAX && off < len; e++) {
		uint64_t n = SUM(cl, failed[e]);

		if (n)
			off += (size_t)snprintf(buf + off, len - off, "%s%s %" PRIu64,
						off ? ", " : "", errno_name(e), n);
	}
}

/* Ends the progress line before a log line. */
static void end_line(struct client *cl)
{
	if (cl->line_open)
		fputc('\n', stderr);
	cl->line_open = false;
}

/* Equal but for the numbers in them. */
static bool same_words(const char *a, const char *b)
{
	for (;;) {
		while (*a >= '0' && *a <= '9')
			a++;
		while (*b >= '0' && *b <= '9')
			b++;
		if (*a != *b)
			return false;
		if (!*a)
			return true;
		a++;
		b++;
	}
}

/* Feeds this second's counters to the diagnosis; logs it when its words
 * change, and every 30 s while it holds. */
static void diagnose(struct client *cl, uint64_t now, uint64_t established,
		     uint64_t connecting)
{
	uint64_t failed[ERRNO_MAX], dropped[ERRNO_MAX], age[DIAG_AGE_BUCKETS];
	struct diag_sample sample = {
		.now_ms = now, .established = established, .connecting = connecting,
		.failed = failed, .dropped = dropped, .nr_errno = ERRNO_MAX,
		.drop_age = age,
	};
	const char *text;

	for (unsigned e = 0; e < ERRNO_MAX; e++) {
		failed[e] = SUM(cl, failed[e]);
		dropped[e] = SUM(cl, dropped[e]);
	}
	for (unsigned b = 0; b < DIAG_AGE_BUCKETS; b++)
		age[b] = SUM(cl, drop_age[b]);
	text = diag_update(&cl->diag, &sample);
	if (!text)
		return;
	if (same_words(text, cl->diagnosis) && now - cl->diagnosis_ms < 30000)
		return;
	snprintf(cl->diagnosis, sizeof(cl->diagnosis), "%s", text);
	cl->diagnosis_ms = now;
	end_line(cl);
	log_warn("diagnosis: %s", text);
}

static void on_tick(void *arg)
{
	struct client *cl = arg;
	uint64_t now = loop_now_ms();
	uint64_t established = SUM(cl, established);
	uint64_t connecting = SUM(cl, connecting);
	uint64_t ok = SUM(cl, connects_ok);
	uint64_t failed = SUM(cl, connects_failed);
	char failures[256];

	cl->connect_rate = (double)(ok - cl->last_connects_ok) * 1000.0 /
			   (double)(now - cl->last_tick_ms ? now - cl->last_tick_ms : 1);
	cl->last_connects_ok = ok;
	cl->last_tick_ms = now;
	if (!cl->target_reached_ms && established >= cl->cfg.connections) {
		/* The moment the last shard got its share, to the millisecond. */
		cl->target_reached_ms = cl->start_ms;
		for (unsigned i = 0; i < cl->nr_shards; i++) {
			uint64_t r = atomic_load(&cl->shards[i].stats.reached_ms);

			if (r > cl->target_reached_ms)
				cl->target_reached_ms = r;
		}
		end_line(cl);
		log_info("all %" PRIu64 " connections established in %.3f s",
			 cl->cfg.connections,
			 (double)(cl->target_reached_ms - cl->start_ms) / 1000.0);
	}
	diagnose(cl, now, established, connecting);
	failure_summary(cl, failures, sizeof(failures));
	if (cl->tty) {
		fprintf(stderr, "\r\033[Kestablished %" PRIu64 "/%" PRIu64
			", connecting %" PRIu64 ", %.0f connects/s, failed %" PRIu64
			"%s%s%s, keepalives %" PRIu64, established, cl->cfg.connections,
			connecting, cl->connect_rate, failed, failures[0] ? " (" : "",
			failures, failures[0] ? ")" : "", SUM(cl, keepalives));
		cl->line_open = true;
	} else {
		log_info("established %" PRIu64 "/%" PRIu64 ", connecting %" PRIu64
			 ", %.0f connects/s, failed %" PRIu64 "%s%s%s, drops %" PRIu64
			 ", keepalives %" PRIu64, established, cl->cfg.connections,
			 connecting, cl->connect_rate, failed, failures[0] ? " (" : "",
			 failures, failures[0] ? ")" : "", SUM(cl, drops),
			 SUM(cl, keepalives));
	}
	if (cl->ctl.reporter &&
	    (established != cl->reported_established ||
	     now - cl->last_report_ms >= cl->cfg.report_interval_s * 1000ull)) {
		send_report(cl, established);
		cl->reported_established = established;
		cl->last_report_ms = now;
	}
}

static void print_summary(struct client *cl)
{
	uint64_t now = loop_now_ms();
	json_t *doc = json_object();
	double ramp_s = cl->target_reached_ms ?
		(double)(cl->target_reached_ms - cl->start_ms) / 1000.0 : -1.0;
	uint64_t ok = SUM(cl, connects_ok);
	char *s;

	json_object_set_new(doc, "backend", json_string(loop_backend_name(cl->backend)));
	json_object_set_new(doc, "shards", json_integer(cl->nr_shards));
	json_object_set_new(doc, "target", json_integer((json_int_t)cl->cfg.connections));
	json_object_set_new(doc, "established", json_integer((json_int_t)SUM(cl, established)));
	json_object_set_new(doc, "connects_ok", json_integer((json_int_t)ok));
	json_object_set_new(doc, "connects_failed", json_integer((json_int_t)SUM(cl, connects_failed)));
	json_object_set_new(doc, "failed",
			    errno_counts(cl, offsetof(struct shard_stats, failed), true));
	json_object_set_new(doc, "drops",
			    errno_counts(cl, offsetof(struct shard_stats, dropped), true));
	json_object_set_new(doc, "time_to_target_s",
			    ramp_s >= 0 ? json_real(ramp_s) : json_null());
	json_object_set_new(doc, "connect_rate_per_s",
			    ramp_s > 0 ? json_real((double)cl->cfg.connections / ramp_s)
				       : json_real((double)ok * 1000.0 /
						   (double)(now - cl->start_ms + 1)));
	json_object_set_new(doc, "latency_us", latency_json(cl));
	json_object_set_new(doc, "keepalives_sent", json_integer((json_int_t)SUM(cl, keepalives)));
	json_object_set_new(doc, "duration_s", json_real((double)(now - cl->start_ms) / 1000.0));
	json_object_set_new(doc, "rss_bytes", json_integer((json_int_t)proc_rss_bytes()));
	json_object_set_new(doc, "diagnosis", diag_text(&cl->diag) ?
			    json_string(diag_text(&cl->diag)) : json_null());
	s = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(doc);
	if (s) {
		puts(s);
		fflush(stdout);
		free(s);
	}
}

static enum loop_backend resolve_backend(enum loop_backend want)
{
	enum loop_backend got;
	const char *why;
	int err;

	got = loop_probe_backend(want, &err, &why);
	if (want == LOOP_BACKEND_AUTO && got == LOOP_BACKEND_EPOLL)
		log_warn("io_uring is not available (%s: %s); falling back to epoll",
			 why ? why : "setup", strerror(-err));
	return got;
}

static int start_shards(struct client *cl)
{
	struct shard *failed;
	int ret = shard_set_start(&cl->set, shard_main, &failed);

	if (ret < 0)
		log_error("shard %u: %s: %s", failed->id, failed->start_why,
			  strerror(-ret));
	return ret;
}

static int setup_shards(struct client *cl)
{
	unsigned n = cl->nr_shards;

	cl->shards = calloc(n, sizeof(*cl->shards));
	if (!cl->shards)
		return -ENOMEM;
	shard_set_init(&cl->set, cl->shards, sizeof(*cl->shards), n);
	for (unsigned s = 0; s < n; s++) {
		struct client_shard *sh = &cl->shards[s];

		sh->cl = cl;
		sh->rand_state = (unsigned)time(NULL) ^ (s * 2654435761u);
		sh->rate = cl->cfg.rate ? (double)cl->cfg.rate / n : 0.0;
		sh->tokens = sh->rate ? 1.0 : 0.0;
		sh->inflight_max = cl->cfg.max_inflight / n ? cl->cfg.max_inflight / n : 1;
		pthread_mutex_init(&sh->hist_lock, NULL);
		sh->tuples = calloc(cl->plan.nr_tuples, sizeof(*sh->tuples));
		if (!sh->tuples)
			return -ENOMEM;
		for (size_t t = 0; t < cl->plan.nr_tuples; t++) {
			sh->tuples[t].target = plan_share(&cl->plan, t, s, n);
			sh->target += sh->tuples[t].target;
		}
		sh->rr = s % cl->plan.nr_tuples;
	}
	return 0;
}

static void on_stop(void *arg, const char *why)
{
	struct client *cl = arg;

	end_line(cl);
	log_info("%s: closing %" PRIu64 " connections and exiting", why,
		 SUM(cl, established));
}

/* --duration ran out. */
static void on_timer(void *arg, unsigned id)
{
	struct client *cl = arg;

	on_tick(cl);
	end_line(cl);
	log_info("duration of %us reached: closing %" PRIu64 " connections",
		 cl->cfg.duration_s, SUM(cl, established));
	loop_stop(cl->ctl.loop);
}

static const struct control_ops control_ops = {
	.tick = on_tick,
	.stop = on_stop,
	.timer = on_timer,
	.report_done = report_done,
};

static int setup_control(struct client *cl)
{
	const char *why = NULL;
	int err;

	cl->report_rl.interval_ms = 30000;
	err = control_init(&cl->ctl, cl->backend, cl->sig_fd, cl->cfg.report_url,
			   &cl->set, &control_ops, cl, &why);
	if (!err && cl->cfg.duration_s) {
		why = "arming the --duration timer";
		err = control_timer(&cl->ctl, TIMER_DURATION,
				    cl->cfg.duration_s * 1000ull);
	}
	if (err < 0)
		log_error("control loop: %s: %s", why ? why : "setup",
			  strerror(-err));
	return err;
}

int main(int argc, char **argv)
{
	static struct client client;
	struct client *cl = &client;
	struct cfg_error err;
	unsigned long nofile = 0;
	char addr[NET_ADDRSTRLEN], sources[64], rate[32];
	int ret, exit_code = 0;

	log_init("tcp-client");
	ret = client_config_parse(&cl->cfg, argc, argv, &err);
	if (ret < 0) {
		fprintf(stderr, "tcp-client: %s\n", err.msg);
		client_config_free(&cl->cfg);
		return 2;
	}
	if (ret > 0)
		return 0;
	if (cl->cfg.check_config) {
		char *json = client_config_json(&cl->cfg);

		puts(json ? json : "{}");
		free(json);
		client_config_free(&cl->cfg);
		return 0;
	}
	ret = plan_build(&cl->cfg, &cl->plan, &err);
	if (ret < 0) {
		fprintf(stderr, "tcp-client: %s\n", err.msg);
		client_config_free(&cl->cfg);
		return 2;
	}

	cl->start_time = time(NULL);
	cl->tty = isatty(STDERR_FILENO);
	diag_init(&cl->diag, cl->cfg.connections, cl->cfg.interval_s);
	cl->sig_fd = shard_signals_block();
	if (cl->sig_fd < 0) {
		log_error("signalfd: %s", strerror(-cl->sig_fd));
		return 1;
	}
	ret = net_raise_nofile(&nofile);
	if (ret < 0)
		log_warn("cannot raise the descriptor limit: %s", strerror(-ret));

	cl->backend = resolve_backend(cl->cfg.backend);
	cl->capacity = loop_default_capacity();
	if (cl->backend == LOOP_BACKEND_EPOLL) {
		if (cl->cfg.connections + 64 > cl->capacity) {
			fprintf(stderr, "tcp-client: %" PRIu64 " connections need more "
				"than the %u descriptors the epoll backend can use "
				"here (RLIMIT_NOFILE); use the io_uring backend or "
				"at most --connections %u\n", cl->cfg.connections,
				cl->capacity, cl->capacity > 64 ? cl->capacity - 64 : 0);
			exit_code = 2;
			goto out;
		}
		cl->nr_shards = cl->cfg.shards ? cl->cfg.shards : 1;
	} else {
		/* Leave a tenth of each table for connections being replaced. */
		uint64_t want = cl->cfg.connections + cl->cfg.connections / 10;

		cl->nr_shards = cl->cfg.shards ? cl->cfg.shards
			      : (unsigned)((want + cl->capacity - 1) / cl->capacity);
		if (cl->nr_shards > 4096)
			cl->nr_shards = 4096;
	}
	if (cl->nr_shards > cl->cfg.connections)
		cl->nr_shards = (unsigned)cl->cfg.connections;

	ret = setup_shards(cl);
	if (!ret)
		ret = setup_control(cl);
	cl->start_ms = loop_now_ms();
	cl->last_tick_ms = cl->start_ms;
	if (!ret)
		ret = start_shards(cl);
	if (ret < 0) {
		exit_code = 1;
		goto out;
	}
	snprintf(sources, sizeof(sources), "%zu source address%s", cl->cfg.nr_sources,
		 cl->cfg.nr_sources == 1 ? "" : "es");
	if (cl->cfg.rate)
		snprintf(rate, sizeof(rate), "%u", cl->cfg.rate);
	else
		snprintf(rate, sizeof(rate), "unlimited");
	log_info("%" PRIu64 " connections to %u server%s (first %s) from %s, "
		 "%zu (source, server) pairs; rate %s/s, %u in flight at most, "
		 "keepalive every %us", cl->cfg.connections, cl->cfg.nr_servers,
		 cl->cfg.nr_servers == 1 ? "" : "s",
		 net_addr_str(&cl->cfg.servers[0], 1, addr, sizeof(addr)),
		 cl->cfg.nr_sources ? sources : "the kernel's source address",
		 cl->plan.nr_tuples, rate, cl->cfg.max_inflight,
		 cl->cfg.interval_s);
	log_info("%s backend, %u shards x %u connections (%s), descriptor limit %lu",
		 loop_backend_name(cl->backend), cl->nr_shards, cl->capacity,
		 cl->shards[0].base.loop ? loop_features(cl->shards[0].base.loop) : "",
		 nofile);

	ret = loop_run(cl->ctl.loop);
	if (ret < 0) {
		log_error("control loop failed: %s", strerror(-ret));
		exit_code = 1;
	}
	if (cl->ctl.shard_failed)
		exit_code = 1;
out:
	if (cl->shards)
		shard_set_stop(&cl->set);
	if (cl->cfg.json && cl->shards && !exit_code)
		print_summary(cl);
	for (unsigned i = 0; cl->shards && i < cl->nr_shards; i++) {
		struct client_shard *sh = &cl->shards[i];

		free(sh->state);
		free(sh->tuple_of);
		free(sh->stamp);
		free(sh->tuples);
	}
	free(cl->shards);
	control_fini(&cl->ctl);
	plan_free(&cl->plan);
	client_config_free(&cl->cfg);
	close(cl->sig_fd);
	return exit_code;
}
