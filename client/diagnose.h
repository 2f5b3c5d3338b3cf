/* SPDX-License-Identifier: MIT */
#ifndef RINGHOLD_DIAGNOSE_H
#define RINGHOLD_DIAGNOSE_H

/*
 * Explains what the client sees, from the counters it already keeps: fed
 * once a second, it says when the pattern matches something known in the
 * path (issue 6):
 *
 *  - connects time out in bulk while the established count stays flat below
 *    the target: NAT port or conntrack exhaustion (a SNAT address has 64,512
 *    ports per destination, a full conntrack table drops SYNs);
 *  - kept connections die, over many seconds, but none younger than some
 *    age: an idle timeout in the path, when that age is below the keepalive
 *    interval.
 *
 * Pure: no I/O, no logging, no allocation, no clock of its own.
 */
#include <stddef.h>
#include <stdint.h>

/* Drops by the age of the connection when it dropped (time since it
 * was established): bucket 0 is under 1 s, then 8 buckets per doubling
 * (12.5% wide) up to 8192 s, and the last bucket is everything older. */
#define DIAG_AGE_BUCKETS	106
#define DIAG_HISTORY		16	/* seconds of samples kept */
#define DIAG_TEXT_MAX		320

struct diag_sample {
	uint64_t now_ms;		/* any monotonic clock, in ms */
	uint64_t established;
	uint64_t connecting;
	/* Cumulative counts indexed by errno, nr_errno entries each.
	 * dropped[0] counts EOF (closed by the peer). */
	const uint64_t *failed;		/* connect failures */
	const uint64_t *dropped;	/* established connections lost */
	size_t nr_errno;
	/* Cumulative drops by diag_age_bucket(age), DIAG_AGE_BUCKETS entries;
	 * NULL if not kept (then drops are not explained). */
	const uint64_t *drop_age;
};

struct diag_point {
	uint64_t now_ms;
	uint64_t established;
	uint64_t failed, timed_out, refused, no_addr;
	uint64_t drops;
};

struct diag {
	uint64_t target;
	unsigned interval_s;
	struct diag_point hist[DIAG_HISTORY];
	unsigned nr_points, next;
	unsigned drop_ticks;		/* samples in which drops grew */
	uint64_t first_drop_ms, last_drop_ms;
	uint64_t plateau_level;		/* established when it was seen */
	char plateau[DIAG_TEXT_MAX];	/* current, or "" */
	char idle[DIAG_TEXT_MAX];	/* sticky once seen */
	char text[2 * DIAG_TEXT_MAX + 2];	/* plateau "; " idle */
};

/* target: connections requested; interval_s: the keepalive interval. */
void diag_init(struct diag *d, uint64_t target, unsigned interval_s);

/* Takes this second's counters; returns the diagnosis (valid until the next
 * call) or NULL when nothing is recognised. */
const char *diag_update(struct diag *d, const struct diag_sample *s);

/* The last diagnosis, or NULL: for the summary at exit. */
const char *diag_text(const struct diag *d);

/* The bucket of a connection age, and the lowest age in a bucket. */
unsigned diag_age_bucket(uint64_t age_ms);
uint64_t diag_age_bucket_floor_ms(unsigned bucket);

#endif
