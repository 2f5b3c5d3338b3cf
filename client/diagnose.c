/* SPDX-License-Identifier: MIT */
/*
 * What the client's counters say about the path (issue 6).  Two patterns:
 *
 * A plateau: the established count stays flat below the target for several
 * seconds while connects keep timing out.  A NAT out of ports, or a full
 * conntrack table, drops the SYN silently, so the client sees ETIMEDOUT and
 * nothing else (../shared/FACTS.md).
 *
 * An idle timeout: connections drop one after another over several seconds,
 * and none of them younger than some age T.  A connection that writes every
 * I > T seconds dies at its first write after T of silence, at an age
 * between T and T + I; one younger than T never does.  So the low edge of
 * the drops' ages estimates T, and T < I says the keepalives come too
 * seldom.  A server restart, by contrast, drops everything in one burst.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "diagnose.h"

#define PLATEAU_MIN_MS		5000	/* flat at least this long */
#define PLATEAU_MIN_TIMEOUTS	10	/* "in bulk" */
#define IDLE_MIN_DROPS		10
#define IDLE_MIN_TICKS		3	/* drops seen in this many samples */
#define IDLE_MIN_SPREAD_MS	2000	/* from the first drop to the last */
#define IDLE_LOW_PERMILLE	20	/* the age 2% of the drops are below */
#define SNAT_PORTS		64512	/* ports 1024-65535 of one address */
#define AGE_OCTAVES		13	/* 1 s .. 8192 s */

unsigned diag_age_bucket(uint64_t age_ms)
{
	uint64_t v = age_ms / 125;	/* eighths of a second */
	unsigned octave = 0;

	if (age_ms < 1000)
		return 0;
	while ((v >> octave) >= 16)
		octave++;
	if (octave >= AGE_OCTAVES)
		return DIAG_AGE_BUCKETS - 1;
	return 1 + octave * 8 + (unsigned)((v >> octave) - 8);
}

uint64_t diag_age_bucket_floor_ms(unsigned bucket)
{
	unsigned octave, sub;

	if (bucket == 0)
		return 0;
	if (bucket >= DIAG_AGE_BUCKETS)
		bucket = DIAG_AGE_BUCKETS - 1;
	octave = (bucket - 1) / 8;
	sub = (bucket - 1) % 8;
	return ((uint64_t)(8 + sub) << octave) * 125;
}

void diag_init(struct diag *d, uint64_t target, unsigned interval_s)
{
	memset(d, 0, sizeof(*d));
	d->target = target;
	d->interval_s = interval_s;
}

static uint64_t at(const uint64_t *counts, size_t n, int err)
{
	return counts && err >= 0 && (size_t)err < n ? counts[err] : 0;
}

static uint64_t sum(const uint64_t *counts, size_t n)
{
	uint64_t total = 0;

	for (size_t i = 0; counts && i < n; i++)
		total += counts[i];
	return total;
}

/* The i-th newest point, 0 the newest. */
static const struct diag_point *point(const struct diag *d, unsigned i)
{
	return &d->hist[(d->next + DIAG_HISTORY - 1 - i) % DIAG_HISTORY];
}

static void plateau_verdict(struct diag *d)
{
	const struct diag_point *now = point(d, 0), *p = now;
	uint64_t tol = now->established / 1000 + 2, timed_out, refused, no_addr;
	uint64_t failed, span, k;
	size_t len;

	if (now->established >= d->target)
		return;
	/* The longest recent stretch over which established stayed flat. */
	for (unsigned i = 1; i < d->nr_points; i++) {
		const struct diag_point *q = point(d, i);

		if (q->established + tol < now->established ||
		    q->established > now->established + tol)
			break;
		p = q;
	}
	span = now->now_ms - p->now_ms;
	if (span < PLATEAU_MIN_MS)
		return;
	failed = now->failed - p->failed;
	timed_out = now->timed_out - p->timed_out;
	refused = now->refused - p->refused;
	no_addr = now->no_addr - p->no_addr;
	if (timed_out >= PLATEAU_MIN_TIMEOUTS && timed_out * 2 >= failed) {
		if (!now->established) {
			snprintf(d->plateau, sizeof(d->plateau),
				 "no connection gets through: connects time out "
				 "(%" PRIu64 " in %" PRIu64 " s): the server is "
				 "unreachable or SYNs are dropped on the way",
				 timed_out, span / 1000);
			return;
		}
		len = (size_t)snprintf(d->plateau, sizeof(d->plateau),
			"connects time out in bulk (%" PRIu64 " in %" PRIu64 " s) "
			"after a plateau at %" PRIu64 " established of %" PRIu64
			": this matches NAT port or conntrack exhaustion",
			timed_out, span / 1000, now->established, d->target);
		k = (now->established + SNAT_PORTS / 2) / SNAT_PORTS;
		if (k && len < sizeof(d->plateau) &&
		    now->established + now->established / 100 >= k * SNAT_PORTS &&
		    now->established <= k * SNAT_PORTS)
			snprintf(d->plateau + len, sizeof(d->plateau) - len,
				 " (%" PRIu64 " x %u: the ports of %" PRIu64
				 " SNAT address%s)", k, SNAT_PORTS, k,
				 k == 1 ? "" : "es");
	} else if (refused >= PLATEAU_MIN_TIMEOUTS && refused * 2 >= failed) {
		snprintf(d->plateau, sizeof(d->plateau),
			 "connects are refused after a plateau at %" PRIu64
			 " established of %" PRIu64 ": the server's connection "
			 "limit or listen backlog", now->established, d->target);
	} else if (no_addr >= PLATEAU_MIN_TIMEOUTS && no_addr * 2 >= failed) {
		snprintf(d->plateau, sizeof(d->plateau),
			 "the client ran out of local ports at %" PRIu64
			 " established: add --source addresses or --server ports",
			 now->established);
	}
}

static void describe_plateau(struct diag *d)
{
	const struct diag_point *now = point(d, 0);
	uint64_t tol = d->plateau_level / 1000 + 2;
	char kept[DIAG_TEXT_MAX] = "";

	/* Once seen, a plateau stays explained while the count stays on it:
	 * with back-off the timeouts get sparse, the cause does not go. */
	if (d->plateau[0] && now->established < d->target &&
	    now->established + tol >= d->plateau_level &&
	    now->established <= d->plateau_level + tol)
		memcpy(kept, d->plateau, sizeof(kept));
	d->plateau[0] = '\0';
	plateau_verdict(d);
	if (d->plateau[0])
		d->plateau_level = now->established;
	else if (kept[0])
		memcpy(d->plateau, kept, sizeof(kept));
}

static const char *drop_reason(const struct diag_sample *s)
{
	size_t top = 0;

	for (size_t e = 1; e < s->nr_errno; e++)
		if (s->dropped[e] > s->dropped[top])
			top = e;
	switch (top) {
	case 0:
		return "closed by the server";
	case ECONNRESET:
		return "reset";
	case ETIMEDOUT:
		return "timed out";
	case EPIPE:
		return "broken pipe";
	default:
		return "errors";
	}
}

static void format_age(char *buf, size_t len, uint64_t ms)
{
	if (ms % 1000 == 0 || ms >= 10000)
		snprintf(buf, len, "%" PRIu64, (ms + 500) / 1000);
	else
		snprintf(buf, len, "%.1f", (double)ms / 1000.0);
}

static void describe_idle(struct diag *d, const struct diag_sample *s,
			  uint64_t drops)
{
	uint64_t aged = sum(s->drop_age, DIAG_AGE_BUCKETS), seen = 0, low_ms;
	uint64_t rank;
	unsigned b;
	char age[32];

	if (!s->drop_age || drops < IDLE_MIN_DROPS || aged < IDLE_MIN_DROPS ||
	    d->drop_ticks < IDLE_MIN_TICKS ||
	    d->last_drop_ms - d->first_drop_ms < IDLE_MIN_SPREAD_MS)
		return;
	rank = (aged * IDLE_LOW_PERMILLE + 999) / 1000;
	for (b = 0; b < DIAG_AGE_BUCKETS - 1; b++) {
		seen += s->drop_age[b];
		if (seen >= rank)
			break;
	}
	low_ms = diag_age_bucket_floor_ms(b);
	/* Young connections die too: not an idle timeout. */
	if (low_ms < 1000)
		return;
	format_age(age, sizeof(age), low_ms);
	if (low_ms < (uint64_t)d->interval_s * 1000)
		snprintf(d->idle, sizeof(d->idle),
			 "kept connections die after ~%s s idle (%" PRIu64
			 " drops, mostly %s): this matches an idle timeout in "
			 "the path (NAT or load balancer); use an --interval "
			 "below it (now %u s)", age, drops, drop_reason(s),
			 d->interval_s);
	else
		snprintf(d->idle, sizeof(d->idle),
			 "kept connections die at an age of ~%s s although "
			 "they write every %u s (%" PRIu64 " drops, mostly %s): "
			 "this matches a connection lifetime limit in the path",
			 age, d->interval_s, drops, drop_reason(s));
}

const char *diag_text(const struct diag *d)
{
	return d->text[0] ? d->text : NULL;
}

const char *diag_update(struct diag *d, const struct diag_sample *s)
{
	struct diag_point *p = &d->hist[d->next];
	uint64_t drops = sum(s->dropped, s->nr_errno);

	if (d->nr_points && drops > point(d, 0)->drops) {
		d->drop_ticks++;
		if (!d->first_drop_ms)
			d->first_drop_ms = s->now_ms ? s->now_ms : 1;
		d->last_drop_ms = s->now_ms;
	}
	p->now_ms = s->now_ms;
	p->established = s->established;
	p->failed = sum(s->failed, s->nr_errno);
	p->timed_out = at(s->failed, s->nr_errno, ETIMEDOUT);
	p->refused = at(s->failed, s->nr_errno, ECONNREFUSED);
	p->no_addr = at(s->failed, s->nr_errno, EADDRNOTAVAIL);
	p->drops = drops;
	d->next = (d->next + 1) % DIAG_HISTORY;
	if (d->nr_points < DIAG_HISTORY)
		d->nr_points++;

	describe_plateau(d);
	describe_idle(d, s, drops);
	snprintf(d->text, sizeof(d->text), "%s%s%s", d->plateau,
		 d->plateau[0] && d->idle[0] ? "; " : "", d->idle);
	return diag_text(d);
}
