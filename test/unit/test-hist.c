/* SPDX-License-Identifier: MIT */
#include <stdint.h>

#include "check.h"
#include "hist.h"

int main(void)
{
	static struct hist h, a, b;

	/* Small values are exact. */
	for (uint64_t v = 0; v < HIST_SUB; v++)
		CHECK_EQ(hist_bucket_upper(hist_bucket(v)), v);
	/* Every value lies in its bucket, and buckets grow by at most 1/16. */
	for (uint64_t v = 1; v < (1ull << 40); v = v * 3 / 2 + 1) {
		unsigned bk = hist_bucket(v);
		uint64_t up = hist_bucket_upper(bk);

		CHECK(bk < HIST_BUCKETS);
		CHECK(v <= up);
		CHECK(bk == 0 || hist_bucket_upper(bk - 1) < v);
		CHECK((double)(up - v) <= (double)v / 16.0 + 1.0);
	}
	CHECK(hist_bucket(UINT64_MAX) < HIST_BUCKETS);

	CHECK_EQ(hist_percentile(&h, 50), 0);
	for (uint64_t v = 1; v <= 1000; v++)
		hist_add(&h, v);
	CHECK_EQ(h.count, 1000);
	CHECK_EQ(h.max, 1000);
	/* Within one bucket (6.25%) of the true percentile, never below it. */
	CHECK(hist_percentile(&h, 50) >= 500 && hist_percentile(&h, 50) <= 532);
	CHECK(hist_percentile(&h, 90) >= 900 && hist_percentile(&h, 90) <= 957);
	CHECK(hist_percentile(&h, 99) >= 990 && hist_percentile(&h, 99) <= 1000);
	CHECK_EQ(hist_percentile(&h, 100), 1000);

	for (uint64_t v = 0; v < 100; v++)
		hist_add(&a, 10);
	hist_add(&b, 1000000);
	hist_merge(&a, &b);
	CHECK_EQ(a.count, 101);
	CHECK_EQ(a.max, 1000000);
	CHECK_EQ(hist_percentile(&a, 50), 10);
	CHECK_EQ(hist_percentile(&a, 100), 1000000);
	return 0;
}
