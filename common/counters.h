/* SPDX-License-Identifier: MIT */
/*
 * Counters written by one shard thread and read by the main thread.  A
 * single writer needs no atomic read-modify-write: a relaxed load and store
 * (a plain mov on x86) keeps the reader's view tear-free.
 */
#ifndef RINGHOLD_COUNTERS_H
#define RINGHOLD_COUNTERS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define COUNTER_ADD(p, n) atomic_store_explicit((p), \
	atomic_load_explicit((p), memory_order_relaxed) + (n), memory_order_relaxed)
#define COUNTER_INC(p)	COUNTER_ADD(p, 1)
#define COUNTER_DEC(p)	COUNTER_ADD(p, -1)
#define COUNTER_GET(p)	atomic_load_explicit((p), memory_order_relaxed)

/* Sums the counter at byte offset within each of n structs of size stride. */
static inline uint64_t counter_sum(const void *base, size_t stride, unsigned n,
				   size_t offset)
{
	uint64_t total = 0;

	for (unsigned i = 0; i < n; i++)
		total += atomic_load_explicit((const _Atomic uint64_t *)
			((const char *)base + i * stride + offset),
			memory_order_relaxed);
	return total;
}

#endif
