/* SPDX-License-Identifier: MIT */
/*
 * A fixed-size log-bucket histogram (HDR style): 16 linear sub-buckets per
 * power of two, so any recorded value is known to within 1/16 (6.25%).
 * Values are plain integers (ringhold records microseconds).
 */
#ifndef RINGHOLD_HIST_H
#define RINGHOLD_HIST_H

#include <stdint.h>

#define HIST_SUB_BITS	4
#define HIST_SUB	(1u << HIST_SUB_BITS)
#define HIST_BUCKETS	((64 - HIST_SUB_BITS + 1) * HIST_SUB)

struct hist {
	uint64_t count;
	uint64_t max;
	uint32_t buckets[HIST_BUCKETS];
};

void hist_add(struct hist *h, uint64_t v);
void hist_merge(struct hist *dst, const struct hist *src);
/* The value at or below which p percent (0-100) of the recorded values lie,
 * rounded up to its bucket's upper edge and capped at the maximum; 0 when
 * empty. */
uint64_t hist_percentile(const struct hist *h, double p);
unsigned hist_bucket(uint64_t v);
uint64_t hist_bucket_upper(unsigned b);

#endif
