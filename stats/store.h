/* SPDX-License-Identifier: MIT */
/*
 * What tcp-server-stats knows: one row per reporter, keyed by role and name,
 * plus a short history of the totals for the dashboard's chart.
 *
 * A row is replaced as a whole by every report (reports are snapshots), so
 * a reporter that restarts under the same name simply takes over its row.
 * Rows age: stale after stale_ms without a report, removed after expire_ms.
 */
#ifndef RINGHOLD_STATS_STORE_H
#define RINGHOLD_STATS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STORE_NAME_MAX		256
#define STORE_LABEL_MAX		256	/* DNS subdomain names, as pod and node names are */
#define STORE_TEXT_MAX		256
#define STORE_REASONS_MAX	16
#define STORE_REASON_NAME_MAX	32
#define STORE_HISTORY		600	/* samples, one a second: 10 minutes */

enum store_role {
	STORE_ROLE_SERVER,	/* also every compat report without a role */
	STORE_ROLE_CLIENT,
};

struct store_reason {
	char name[STORE_REASON_NAME_MAX];
	int64_t count;
};

/* Which optional fields a report carried. */
enum {
	REPORT_HAS_TARGET	= 1u << 0,
	REPORT_HAS_RATE		= 1u << 1,
	REPORT_HAS_LATENCY	= 1u << 2,
	REPORT_HAS_KEEPALIVES	= 1u << 3,
	REPORT_HAS_RSS		= 1u << 4,
	REPORT_HAS_START	= 1u << 5,
	REPORT_COMPAT		= 1u << 6,	/* the original's two fields only */
};

/* One decoded report: everything a reporter tells about itself. */
struct report {
	enum store_role role;
	unsigned has;
	char name[STORE_NAME_MAX];
	char pod[STORE_LABEL_MAX];
	char namespace_[STORE_LABEL_MAX];
	char node[STORE_LABEL_MAX];
	char backend[16];
	char version[32];
	char diagnosis[STORE_TEXT_MAX];
	int64_t connections;
	int64_t target;
	double connect_rate;
	int64_t latency_us[4];		/* p50, p90, p99, max */
	int64_t keepalives;
	int64_t rss_bytes;
	int64_t start_time;		/* unix seconds */
	unsigned nr_failures, nr_drops;
	struct store_reason failures[STORE_REASONS_MAX];
	struct store_reason drops[STORE_REASONS_MAX];
};

struct store_row {
	struct report r;
	uint64_t updated_ms;		/* wall clock, for lastUpdated */
	uint64_t seen_mono_ms;		/* monotonic, for staleness */
	uint64_t first_mono_ms;
	uint64_t reports;		/* reports received for this row */
};

struct store_totals {
	unsigned servers, clients, stale;
	int64_t connections;		/* held by fresh servers */
	int64_t client_connections;	/* held by fresh clients */
};

struct store_sample {
	uint64_t t_ms;			/* wall clock */
	int64_t connections;
	int64_t client_connections;
};

struct store {
	uint64_t stale_ms, expire_ms;
	struct store_row *rows;		/* dense; order is not meaningful */
	uint32_t nr_rows, cap_rows;
	uint32_t *index;		/* open addressing: row + 1, 0 free */
	uint32_t index_mask;
	uint32_t max_rows;
	uint64_t version;		/* bumped on every change */
	struct store_sample history[STORE_HISTORY];
	uint32_t history_head, history_len;
};

/* 0 or -ENOMEM. */
int store_init(struct store *s, uint64_t stale_ms, uint64_t expire_ms,
	       uint32_t max_rows);
void store_free(struct store *s);

/*
 * Decodes a report body (JSON).  Keys are matched without regard to case;
 * unknown keys are ignored.  On error returns -EINVAL and writes a one-line
 * message naming the field into err.
 */
int store_decode_report(const char *body, size_t len, struct report *out,
			char *err, size_t err_len);

/* Records a report: 0, or -ENOSPC when max_rows reporters are known. */
int store_apply(struct store *s, const struct report *r, uint64_t now_ms,
		uint64_t mono_ms);

/* Drops expired rows; returns how many. */
unsigned store_expire(struct store *s, uint64_t mono_ms);
bool store_row_stale(const struct store *s, const struct store_row *row,
		     uint64_t mono_ms);
void store_totals(const struct store *s, uint64_t mono_ms,
		  struct store_totals *t);
/* Appends a history sample of the current totals. */
void store_sample(struct store *s, uint64_t now_ms, uint64_t mono_ms);
/* The i-th oldest sample, i < history_len. */
const struct store_sample *store_history_at(const struct store *s, uint32_t i);

const char *store_role_name(enum store_role role);

#endif
