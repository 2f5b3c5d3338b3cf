/* SPDX-License-Identifier: MIT */
/*
 * tcp-server: accepts and holds idle TCP connections.
 *
 * Each shard is a thread with its own loop and its own SO_REUSEPORT listener
 * per address, so the kernel spreads new connections over the shards.  With
 * io_uring a shard holds up to one fixed-file table of connections (the soft
 * RLIMIT_NOFILE, 20000 on a default Debian machine) without spending
 * ordinary descriptors; more connections, more shards.
 *
 * Per connection the server keeps three bytes: a state and the second it
 * last heard from the peer.  Silent connections are found by a sweep that
 * looks at a slice of the slots every second, covering all of them once per
 * sweep period, so no tick walks the whole table.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "config.h"
#include "control.h"
#include "counters.h"
#include "log.h"
#include "loop.h"
#include "net.h"
#include "proc.h"
#include "report.h"
#include "server.h"
#include "shard.h"

#define LISTEN_BACKLOG		65535
#define TICK_MS			1000
#define SWEEP_MAX_TICKS		10
#define BATCH_NR		256
#define BATCH_MS		200

enum slot_state {
	SLOT_FREE = 0,
	SLOT_OPEN,
	SLOT_CLOSING,		/* we closed it (idle, peer gone, shutdown) */
	SLOT_REFUSED,		/* accepted over --max-connections, being closed */
};

/* Written by one shard thread, read by the main thread. */
struct shard_stats {
	_Atomic uint64_t conns;
	_Atomic uint64_t accepted;
	_Atomic uint64_t refused_full;
	_Atomic uint64_t refused_max;
	_Atomic uint64_t closed_idle;
	_Atomic uint64_t closed_peer;
	_Atomic uint64_t closed_error;
	_Atomic uint64_t messages;
	_Atomic uint64_t bytes;
	_Atomic uint64_t accept_errors;
	_Atomic int last_accept_error;
};

struct server;

struct server_shard {
	struct shard base;	/* first: the shard set walks these */
	struct server *srv;
	int *listen_fds;
	uint8_t *state;
	uint16_t *last_seen;
	unsigned capacity;
	uint16_t now_s;
	unsigned sweep_pos;
	unsigned sweep_chunk;
	struct shard_stats stats;
};

struct server {
	struct server_config cfg;
	enum loop_backend backend;
	unsigned nr_shards;
	unsigned capacity;	/* slots per shard */
	struct server_shard *shards;
	_Atomic int64_t total;	/* connections held, all shards */
	struct shard_set set;
	time_t start_time;

	struct control ctl;
	int sig_fd;
	struct log_ratelimit report_rl;
	uint64_t last_report_ms;
	uint64_t reported_conns;
	uint64_t logged_conns;
	uint64_t last_accepted, last_closed;
	bool warned_full, warned_max;
	int exit_code;

};


/*
 * Seconds on the monotonic clock, wrapping at 2^16 (18 hours, far beyond the
 * longest idle timeout).  Read per event: it is a vDSO call, ~20 ns.
 */
static inline uint16_t now_s(void)
{
	return (uint16_t)(loop_now_ms() / 1000);
}

static void shard_close(struct server_shard *sh, uint32_t slot)
{
	sh->state[slot] = SLOT_CLOSING;
	loop_close(sh->base.loop, slot);
}

static void on_accept(struct server_shard *sh, const struct loop_event *ev)
{
	struct server *srv = sh->srv;

	if (ev->res < 0) {
		if (shard_set_stopping(&srv->set))
			return;		/* the listeners were shut down */
		if (ev->res == -ENFILE || ev->res == -EMFILE) {
			COUNTER_INC(&sh->stats.refused_full);
		} else {
			COUNTER_INC(&sh->stats.accept_errors);
			atomic_store_explicit(&sh->stats.last_accept_error,
					      -ev->res, memory_order_relaxed);
		}
		return;
	}
	if (atomic_fetch_add_explicit(&srv->total, 1, memory_order_relaxed) >=
	    (int64_t)srv->cfg.max_connections || shard_set_stopping(&srv->set)) {
		atomic_fetch_sub_explicit(&srv->total, 1, memory_order_relaxed);
		COUNTER_INC(&sh->stats.refused_max);
		sh->state[ev->slot] = SLOT_REFUSED;
		loop_close(sh->base.loop, ev->slot);
		return;
	}
	sh->state[ev->slot] = SLOT_OPEN;
	sh->last_seen[ev->slot] = now_s();
	COUNTER_INC(&sh->stats.accepted);
	COUNTER_INC(&sh->stats.conns);
	if (loop_recv_start(sh->base.loop, ev->slot) < 0)
		shard_close(sh, ev->slot);
}

static void on_recv(struct server_shard *sh, const struct loop_event *ev)
{
	if (sh->state[ev->slot] != SLOT_OPEN)
		return;
	if (ev->res > 0) {
		/* Keepalive bytes are counted and thrown away. */
		sh->last_seen[ev->slot] = now_s();
		COUNTER_INC(&sh->stats.messages);
		COUNTER_ADD(&sh->stats.bytes, (uint64_t)ev->res);
		return;
	}
	if (ev->res == 0)
		COUNTER_INC(&sh->stats.closed_peer);
	else
		COUNTER_INC(&sh->stats.closed_error);
	shard_close(sh, ev->slot);
}

static void on_closed(struct server_shard *sh, const struct loop_event *ev)
{
	if (sh->state[ev->slot] != SLOT_REFUSED) {
		COUNTER_DEC(&sh->stats.conns);
		atomic_fetch_sub_explicit(&sh->srv->total, 1, memory_order_relaxed);
	}
	sh->state[ev->slot] = SLOT_FREE;
}

/* Looks at the next slice of slots for connections silent too long. */
static void sweep_idle(struct server_shard *sh)
{
	unsigned timeout = sh->srv->cfg.idle_timeout_s;
	unsigned end;

	if (!timeout)
		return;
	end = sh->sweep_pos + sh->sweep_chunk;
	if (end > sh->capacity)
		end = sh->capacity;
	/* Whole seconds on both sides: "more than timeout" makes sure a
	 * connection has really been silent for the full timeout. */
	for (unsigned slot = sh->sweep_pos; slot < end; slot++) {
		if (sh->state[slot] == SLOT_OPEN &&
		    (uint16_t)(sh->now_s - sh->last_seen[slot]) > timeout) {
			COUNTER_INC(&sh->stats.closed_idle);
			shard_close(sh, slot);
		}
	}
	sh->sweep_pos = end == sh->capacity ? 0 : end;
}

static void shard_cb(struct loop *loop, const struct loop_event *ev, void *arg)
{
	struct server_shard *sh = arg;

	switch (ev->type) {
	case LOOP_EV_ACCEPT:
		on_accept(sh, ev);
		break;
	case LOOP_EV_RECV:
		on_recv(sh, ev);
		break;
	case LOOP_EV_CLOSED:
		on_closed(sh, ev);
		break;
	case LOOP_EV_TIMER:
		sh->now_s = now_s();
		sweep_idle(sh);
		loop_timer(loop, 0, TICK_MS);
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
	struct server_shard *sh = arg;
	struct server *srv = sh->srv;
	struct loop_config lc = {
		.backend = srv->backend,
		.capacity = srv->capacity,
		.buf_count = 256,	/* keepalives are a byte; a few suffice */
		.buf_size = 64,
	};
	const char *why = NULL;
	unsigned sweep_ticks;
	int err = 0;

	sh->base.loop = loop_new(&lc, shard_cb, sh, &err, &why);
	if (!sh->base.loop) {
		shard_ready(&sh->base, err, why);
		return NULL;
	}
	sh->capacity = loop_capacity(sh->base.loop);
	sh->state = calloc(sh->capacity, sizeof(*sh->state));
	sh->last_seen = calloc(sh->capacity, sizeof(*sh->last_seen));
	if (!sh->state || !sh->last_seen) {
		err = -ENOMEM;
		why = "allocating connection state";
		goto fail;
	}
	/* Every slot is looked at once per sweep period: the idle timeout
	 * over four, at most ten seconds; a connection silent for the timeout
	 * is closed within one period after it. */
	sweep_ticks = srv->cfg.idle_timeout_s / 4;
	if (sweep_ticks < 1)
		sweep_ticks = 1;
	if (sweep_ticks > SWEEP_MAX_TICKS)
		sweep_ticks = SWEEP_MAX_TICKS;
	sh->sweep_chunk = (sh->capacity + sweep_ticks - 1) / sweep_ticks;
	sh->now_s = now_s();

	for (unsigned i = 0; i < srv->cfg.nr_listen; i++) {
		err = loop_listen(sh->base.loop, sh->listen_fds[i], i);
		if (err < 0) {
			why = "arming accept";
			goto fail;
		}
	}
	err = loop_timer(sh->base.loop, 0, TICK_MS);
	if (err < 0) {
		why = "arming the tick timer";
		goto fail;
	}
	/* Keepalive reads need no low latency: wake for a batch of
	 * completions, or every BATCH_MS, not for each one.  Accepts wait
	 * as long (see loop_uring.c): the listen backlog holds them, and the
	 * client sees its connection established before that. */
	loop_set_batch(sh->base.loop, BATCH_NR, BATCH_MS);
	shard_ready(&sh->base, 0, NULL);
	err = loop_run(sh->base.loop);
	if (err < 0) {
		log_error("shard %u: event loop failed: %s", sh->base.id, strerror(-err));
		atomic_store(&sh->base.set->failed, 1);
	}
	/* Freeing the loop closes every connection it still holds. */
	shard_free_loop(&sh->base);
	return NULL;
fail:
	shard_free_loop(&sh->base);
	shard_ready(&sh->base, err, why);
	return NULL;
}

#define SUM(srv, field) counter_sum((srv)->shards, sizeof(*(srv)->shards), \
	(srv)->nr_shards, offsetof(struct server_shard, stats) + \
	offsetof(struct shard_stats, field))

static void report_done(void *arg, const struct report_result *res)
{
	struct server *srv = arg;

	if (!res->ok)
		log_report_failure(&srv->report_rl, srv->cfg.report_url,
				   res->http_status, res->error);
}

static void send_report(struct server *srv, uint64_t conns)
{
	json_t *doc, *failures, *drops;
	char *body;

	doc = (json_t *)report_doc_new("server", srv->cfg.name,
				       loop_backend_name(srv->backend),
				       srv->start_time);
	if (!doc)
		return;
	failures = json_object();
	json_object_set_new(failures, "table_full",
			    json_integer((json_int_t)SUM(srv, refused_full)));
	json_object_set_new(failures, "max_connections",
			    json_integer((json_int_t)SUM(srv, refused_max)));
	json_object_set_new(failures, "accept_error",
			    json_integer((json_int_t)SUM(srv, accept_errors)));
	drops = json_object();
	json_object_set_new(drops, "idle", json_integer((json_int_t)SUM(srv, closed_idle)));
	json_object_set_new(drops, "peer_closed", json_integer((json_int_t)SUM(srv, closed_peer)));
	json_object_set_new(drops, "error", json_integer((json_int_t)SUM(srv, closed_error)));
	json_object_set_new(doc, "connections", json_integer((json_int_t)conns));
	json_object_set_new(doc, "clients", json_integer((json_int_t)conns));
	json_object_set_new(doc, "keepalives", json_integer((json_int_t)SUM(srv, messages)));
	json_object_set_new(doc, "failures", failures);
	json_object_set_new(doc, "drops", drops);
	json_object_set_new(doc, "shards", json_integer(srv->nr_shards));
	body = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	if (body)
		reporter_send(srv->ctl.reporter, body);
}

static void on_tick(void *arg)
{
	struct server *srv = arg;
	uint64_t now = loop_now_ms();
	uint64_t conns = SUM(srv, conns);
	uint64_t accepted = SUM(srv, accepted);
	uint64_t closed = SUM(srv, closed_idle) + SUM(srv, closed_peer) +
			  SUM(srv, closed_error);

	if (conns != srv->logged_conns) {
		log_info("connections: %" PRIu64 " (+%" PRIu64 " accepted, -%" PRIu64
			 " closed in the last second)", conns,
			 accepted - srv->last_accepted, closed - srv->last_closed);
		srv->logged_conns = conns;
	}
	srv->last_accepted = accepted;
	srv->last_closed = closed;
	if (!srv->warned_full && SUM(srv, refused_full)) {
		log_warn("a fixed-file table is full (%u slots per shard, %u shards): "
			 "new connections are refused; raise --shards or the "
			 "descriptor limit", srv->capacity, srv->nr_shards);
		srv->warned_full = true;
	}
	if (!srv->warned_max && SUM(srv, refused_max)) {
		log_warn("holding --max-connections %" PRIu64 ": refusing the rest",
			 srv->cfg.max_connections);
		srv->warned_max = true;
	}
	if (srv->ctl.reporter &&
	    ((conns != srv->reported_conns) ||
	     now - srv->last_report_ms >= srv->cfg.report_interval_s * 1000ull)) {
		send_report(srv, conns);
		srv->reported_conns = conns;
		srv->last_report_ms = now;
	}
}

static unsigned auto_shards(const struct server_config *cfg, unsigned capacity)
{
	/* SO_REUSEPORT spreads connections evenly but not exactly: leave a
	 * quarter of each table free. */
	uint64_t want = cfg->max_connections + cfg->max_connections / 4;
	uint64_t n = (want + capacity - 1) / capacity;
	unsigned cpus = shard_cpu_count();

	if (n < cpus)
		n = cpus;
	return n > 4096 ? 4096 : (unsigned)n;
}

/* The io_uring probe: a tiny ring, just to learn whether setup works here. */
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

static int open_listeners(struct server *srv)
{
	char addr[NET_ADDRSTRLEN];

	for (unsigned s = 0; s < srv->nr_shards; s++) {
		struct server_shard *sh = &srv->shards[s];

		sh->listen_fds = malloc(srv->cfg.nr_listen * sizeof(int));
		if (!sh->listen_fds)
			return -ENOMEM;
		for (unsigned i = 0; i < srv->cfg.nr_listen; i++)
			sh->listen_fds[i] = -1;
		for (unsigned i = 0; i < srv->cfg.nr_listen; i++) {
			int fd = net_listen(&srv->cfg.listen[i], LISTEN_BACKLOG,
					    srv->nr_shards > 1);

			if (fd < 0) {
				log_error("cannot listen on %s: %s",
					  net_addr_str(&srv->cfg.listen[i], 1, addr,
						       sizeof(addr)), strerror(-fd));
				return fd;
			}
			sh->listen_fds[i] = fd;
			/* Accepted sockets inherit it from the listener. */
			if (srv->cfg.recv_lowat > 1 &&
			    setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT,
				       &(int){ (int)srv->cfg.recv_lowat },
				       sizeof(int)) < 0) {
				int err = errno;

				log_error("SO_RCVLOWAT %u: %s", srv->cfg.recv_lowat,
					  strerror(err));
				return -err;
			}
		}
	}
	return 0;
}

static int start_shards(struct server *srv)
{
	struct shard *failed;
	int ret = shard_set_start(&srv->set, shard_main, &failed);

	if (ret < 0)
		log_error("shard %u: %s: %s", failed->id, failed->start_why,
			  strerror(-ret));
	return ret;
}

static void on_stop(void *arg, const char *why)
{
	struct server *srv = arg;

	log_info("%s: closing %" PRIu64 " connections and exiting", why,
		 SUM(srv, conns));
}

static const struct control_ops control_ops = {
	.tick = on_tick,
	.stop = on_stop,
	.report_done = report_done,
};

static int setup_control(struct server *srv)
{
	const char *why = NULL;
	int err;

	srv->report_rl.interval_ms = 30000;
	err = control_init(&srv->ctl, srv->backend, srv->sig_fd,
			   srv->cfg.report_url, &srv->set, &control_ops, srv,
			   &why);
	if (err < 0)
		log_error("control loop: %s: %s", why ? why : "setup",
			  strerror(-err));
	return err;
}

int main(int argc, char **argv)
{
	static struct server server;
	struct server *srv = &server;
	struct cfg_error err;
	unsigned long nofile = 0;
	char addr[NET_ADDRSTRLEN];
	int ret;

	log_init("tcp-server");
	ret = server_config_parse(&srv->cfg, argc, argv, &err);
	if (ret < 0) {
		fprintf(stderr, "tcp-server: %s\n", err.msg);
		return 2;
	}
	if (ret > 0)
		return 0;
	if (srv->cfg.check_config) {
		char *json = server_config_json(&srv->cfg);

		puts(json ? json : "{}");
		free(json);
		return 0;
	}

	srv->start_time = time(NULL);
	srv->sig_fd = shard_signals_block();
	if (srv->sig_fd < 0) {
		log_error("signalfd: %s", strerror(-srv->sig_fd));
		return 1;
	}
	ret = net_raise_nofile(&nofile);
	if (ret < 0)
		log_warn("cannot raise the descriptor limit: %s", strerror(-ret));

	srv->backend = resolve_backend(srv->cfg.backend);
	srv->capacity = loop_default_capacity();
	if (srv->backend == LOOP_BACKEND_EPOLL) {
		/* Ordinary descriptors, one table for the whole process. */
		if (srv->cfg.max_connections + 64 > srv->capacity) {
			/* A limit asked for is refused; the default is capped. */
			if (srv->cfg.backend == LOOP_BACKEND_EPOLL &&
			    srv->cfg.max_connections_set) {
				fprintf(stderr, "tcp-server: --max-connections %" PRIu64
					" needs more than the %u descriptors epoll can "
					"use here (RLIMIT_NOFILE); use --backend uring "
					"or at most --max-connections %u\n",
					srv->cfg.max_connections, srv->capacity,
					srv->capacity > 64 ? srv->capacity - 64 : 0);
				return 2;
			}
			srv->cfg.max_connections = srv->capacity > 64 ? srv->capacity - 64 : 1;
			log_warn("epoll: holding at most %" PRIu64 " connections "
				 "(RLIMIT_NOFILE %u)", srv->cfg.max_connections,
				 srv->capacity);
		}
		srv->nr_shards = srv->cfg.shards ? srv->cfg.shards : shard_cpu_count();
	} else {
		srv->nr_shards = srv->cfg.shards ? srv->cfg.shards
			       : auto_shards(&srv->cfg, srv->capacity);
	}
	srv->shards = calloc(srv->nr_shards, sizeof(*srv->shards));
	if (!srv->shards) {
		log_error("out of memory");
		return 1;
	}
	shard_set_init(&srv->set, srv->shards, sizeof(*srv->shards),
		       srv->nr_shards);
	for (unsigned i = 0; i < srv->nr_shards; i++)
		srv->shards[i].srv = srv;

	ret = open_listeners(srv);
	if (!ret)
		ret = setup_control(srv);
	if (!ret)
		ret = start_shards(srv);
	if (ret < 0) {
		srv->exit_code = 1;
		goto out;
	}
	for (unsigned i = 0; i < srv->cfg.nr_listen; i++)
		log_info("listening on %s",
			 net_addr_str(&srv->cfg.listen[i], 1, addr, sizeof(addr)));
	log_info("%s backend, %u shards x %u connections (%s), idle timeout %us, "
		 "max %" PRIu64 " connections, descriptor limit %lu",
		 loop_backend_name(srv->backend), srv->nr_shards, srv->capacity,
		 srv->shards[0].base.loop ? loop_features(srv->shards[0].base.loop) : "",
		 srv->cfg.idle_timeout_s, srv->cfg.max_connections, nofile);
	if (srv->cfg.recv_lowat > 1)
		log_info("a connection is read once %u bytes wait: with 1-byte "
			 "keepalives, clients must send at least every %u s to "
			 "stay within the idle timeout", srv->cfg.recv_lowat,
			 srv->cfg.idle_timeout_s / srv->cfg.recv_lowat);

	ret = loop_run(srv->ctl.loop);
	if (ret < 0) {
		log_error("control loop failed: %s", strerror(-ret));
		srv->exit_code = 1;
	}
	if (srv->ctl.shard_failed)
		srv->exit_code = 1;
out:
	/* Stop listening first: a client that reconnects while the shards
	 * close their connections is refused at once, not accepted by the
	 * kernel into a backlog nobody will take from. */
	for (unsigned i = 0; i < srv->nr_shards; i++) {
		struct server_shard *sh = &srv->shards[i];

		for (unsigned j = 0; sh->listen_fds && j < srv->cfg.nr_listen; j++)
			if (sh->listen_fds[j] >= 0)
				shutdown(sh->listen_fds[j], SHUT_RD);
	}
	shard_set_stop(&srv->set);
	for (unsigned i = 0; i < srv->nr_shards; i++) {
		struct server_shard *sh = &srv->shards[i];

		for (unsigned j = 0; sh->listen_fds && j < srv->cfg.nr_listen; j++)
			if (sh->listen_fds[j] >= 0)
				close(sh->listen_fds[j]);
		free(sh->listen_fds);
		free(sh->state);
		free(sh->last_seen);
	}
	control_fini(&srv->ctl);
	free(srv->shards);
	close(srv->sig_fd);
	log_info("exited cleanly");
	return srv->exit_code;
}
