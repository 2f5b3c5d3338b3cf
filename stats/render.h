/* SPDX-License-Identifier: MIT */
/* The store as JSON (API, dashboard events) and Prometheus text. */
#ifndef RINGHOLD_STATS_RENDER_H
#define RINGHOLD_STATS_RENDER_H

#include <stdint.h>

#include "outbuf.h"
#include "store.h"

/* The service's own counters, for /metrics and the dashboard. */
struct render_self {
	uint64_t reports_ok;
	uint64_t reports_rejected;
	uint64_t requests;
	uint64_t conns_open;
	uint64_t conns_accepted;
	uint64_t conns_timed_out;
	uint64_t sse_clients;
	uint64_t start_unix;
	const char *backend;
};

/* GET /api/ServerStatistics: an array, one object per reporter, carrying
 * the original's machineName/clients/lastUpdated and our richer fields. */
void render_list(struct outbuf *o, const struct store *s, uint64_t now_ms,
		 uint64_t mono_ms);
/* Totals, the rows and the latest history sample: GET /api/state and the
 * dashboard's "state" event. */
void render_state(struct outbuf *o, const struct store *s,
		  const struct render_self *self, uint64_t now_ms,
		  uint64_t mono_ms);
/* The whole history: the dashboard's "history" event. */
void render_history(struct outbuf *o, const struct store *s);
void render_metrics(struct outbuf *o, const struct store *s,
		    const struct render_self *self, uint64_t now_ms,
		    uint64_t mono_ms);

#endif
