/* SPDX-License-Identifier: MIT */
/*
 * client/diagnose.c fed with the counter series the SNAT lab produces: a
 * plateau with bulk timeouts, an idle timeout, and the look-alikes that must
 * stay unexplained (a server restart, young connections dying, a stall
 * without failures).  Exit 0 pass, 1 fail.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "diagnose.h"

#define NR_ERRNO 256

static int failures;

#define CHECK_EQ(got, want) do {					\
	uint64_t g_ = (uint64_t)(got), w_ = (uint64_t)(want);		\
	if (g_ != w_) {							\
		fprintf(stderr, "%s:%d: %s = %" PRIu64 ", want %" PRIu64 "\n", \
			__FILE__, __LINE__, #got, g_, w_);		\
		failures++;						\
	}								\
} while (0)

#define CHECK_NULL(text) do {						\
	const char *t_ = (text);					\
	if (t_) {							\
		fprintf(stderr, "%s:%d: %s = \"%s\", want NULL\n",	\
			__FILE__, __LINE__, #text, t_);			\
		failures++;						\
	}								\
} while (0)

#define CHECK_HAS(text, part) do {					\
	const char *t_ = (text);					\
	if (!t_ || !strstr(t_, (part))) {				\
		fprintf(stderr, "%s:%d: %s = %s%s%s, want it to contain \"%s\"\n", \
			__FILE__, __LINE__, #text, t_ ? "\"" : "",	\
			t_ ? t_ : "NULL", t_ ? "\"" : "", (part));	\
		failures++;						\
	}								\
} while (0)

struct feed {
	struct diag d;
	uint64_t failed[NR_ERRNO];
	uint64_t dropped[NR_ERRNO];
	uint64_t drop_age[DIAG_AGE_BUCKETS];
	uint64_t now_ms;
	uint64_t established;
};

static void feed_init(struct feed *f, uint64_t target, unsigned interval_s)
{
	memset(f, 0, sizeof(*f));
	diag_init(&f->d, target, interval_s);
	f->now_ms = 1000000;
}

static const char *tick(struct feed *f)
{
	struct diag_sample s = {
		.now_ms = f->now_ms,
		.established = f->established,
		.failed = f->failed,
		.dropped = f->dropped,
		.nr_errno = NR_ERRNO,
		.drop_age = f->drop_age,
	};
	const char *text = diag_update(&f->d, &s);

	f->now_ms += 1000;
	return text;
}

static void drop(struct feed *f, int err, uint64_t age_ms)
{
	f->dropped[err]++;
	f->drop_age[diag_age_bucket(age_ms)]++;
}

static void test_buckets(void)
{
	CHECK_EQ(diag_age_bucket(0), 0);
	CHECK_EQ(diag_age_bucket(999), 0);
	CHECK_EQ(diag_age_bucket(1000), 1);
	CHECK_EQ(diag_age_bucket_floor_ms(diag_age_bucket(3000)), 3000);
	CHECK_EQ(diag_age_bucket_floor_ms(diag_age_bucket(240000)), 240000);
	CHECK_EQ(diag_age_bucket(UINT64_MAX / 2), DIAG_AGE_BUCKETS - 1);
	/* Every age falls in the bucket whose floor is at or below it and
	 * whose successor's floor is above it. */
	for (uint64_t ms = 0; ms < 9000000; ms += ms / 50 + 7) {
		unsigned b = diag_age_bucket(ms);

		if (diag_age_bucket_floor_ms(b) > ms ||
		    (b + 1 < DIAG_AGE_BUCKETS &&
		     diag_age_bucket_floor_ms(b + 1) <= ms)) {
			fprintf(stderr, "age %" PRIu64 " ms: bucket %u [%" PRIu64
				", %" PRIu64 ")\n", ms, b,
				diag_age_bucket_floor_ms(b),
				diag_age_bucket_floor_ms(b + 1));
			failures++;
			break;
		}
	}
}

/* 80,000 requested through one SNAT address: 64,512 in 8 s, then flat
 * while the rest time out. */
static void test_snat_plateau(void)
{
	static struct feed f;
	const char *text = NULL;

	feed_init(&f, 80000, 15);
	for (int s = 1; s <= 8; s++) {
		f.established = 64512ull * s / 8;
		CHECK_NULL(tick(&f));
	}
	for (int s = 0; s < 4; s++) {	/* not yet 5 s flat */
		f.failed[ETIMEDOUT] += 300;
		CHECK_NULL(tick(&f));
	}
	for (int s = 0; s < 3; s++) {
		f.failed[ETIMEDOUT] += 300;
		text = tick(&f);
	}
	CHECK_HAS(text, "plateau at 64512 established of 80000");
	CHECK_HAS(text, "NAT port or conntrack exhaustion");
	CHECK_HAS(text, "1 x 64512");
	CHECK_HAS(diag_text(&f.d), "NAT port or conntrack exhaustion");

	/* Two addresses: about 129,024. */
	feed_init(&f, 160000, 15);
	for (int s = 1; s <= 10; s++) {
		f.established = 129020ull * s / 10;
		tick(&f);
	}
	for (int s = 0; s < 8; s++) {
		f.failed[ETIMEDOUT] += 500;
		text = tick(&f);
	}
	CHECK_HAS(text, "plateau at 129020");
	CHECK_HAS(text, "2 x 64512: the ports of 2 SNAT addresses");

	/* Back-off makes the timeouts sparse: the plateau stays explained. */
	for (int s = 0; s < 20; s++) {
		f.failed[ETIMEDOUT] += s % 5 == 0;
		text = tick(&f);
	}
	CHECK_HAS(text, "plateau at 129020");

	/* The plateau ends: the diagnosis goes. */
	f.established += 5000;
	CHECK_NULL(tick(&f));
}

/* A small conntrack table: same pattern, no 64512 multiple. */
static void test_conntrack_plateau(void)
{
	static struct feed f;
	const char *text = NULL;

	feed_init(&f, 1000, 15);
	f.established = 600;
	for (int s = 0; s < 7; s++) {
		f.failed[ETIMEDOUT] += 40;
		text = tick(&f);
	}
	CHECK_HAS(text, "plateau at 600 established of 1000");
	if (text && strstr(text, "x 64512")) {
		fprintf(stderr, "no 64512 hint expected: %s\n", text);
		failures++;
	}
}

static void test_not_plateaus(void)
{
	static struct feed f;

	/* All established: nothing to explain, failures or not. */
	feed_init(&f, 1000, 15);
	f.established = 1000;
	for (int s = 0; s < 10; s++) {
		f.failed[ETIMEDOUT] += 50;
		CHECK_NULL(tick(&f));
	}
	/* Flat below the target without failures (a slow --rate). */
	feed_init(&f, 1000, 15);
	f.established = 500;
	for (int s = 0; s < 10; s++)
		CHECK_NULL(tick(&f));
	/* A few timeouts are not "in bulk". */
	feed_init(&f, 1000, 15);
	f.established = 500;
	for (int s = 0; s < 10; s++) {
		f.failed[ETIMEDOUT] += s == 3;
		CHECK_NULL(tick(&f));
	}
	/* Still growing while some time out. */
	feed_init(&f, 100000, 15);
	for (int s = 0; s < 10; s++) {
		f.established += 3000;
		f.failed[ETIMEDOUT] += 100;
		CHECK_NULL(tick(&f));
	}
}

static void test_other_plateaus(void)
{
	static struct feed f;
	const char *text = NULL;

	feed_init(&f, 1000, 15);
	for (int s = 0; s < 7; s++) {
		f.failed[ETIMEDOUT] += 20;
		text = tick(&f);
	}
	CHECK_HAS(text, "no connection gets through");

	feed_init(&f, 1000, 15);
	f.established = 300;
	for (int s = 0; s < 7; s++) {
		f.failed[ECONNREFUSED] += 20;
		text = tick(&f);
	}
	CHECK_HAS(text, "refused after a plateau at 300");

	feed_init(&f, 100000, 15);
	f.established = 28000;
	for (int s = 0; s < 7; s++) {
		f.failed[EADDRNOTAVAIL] += 20;
		text = tick(&f);
	}
	CHECK_HAS(text, "ran out of local ports at 28000");
}

/* The lab's idle scenario: the NAT forgets after 3 s, keepalives every 6 s.
 * A connection dies at its first write after 3 s of silence: at an age
 * between 3 and 9 s, spread over the seconds after the ramp. */
static void test_idle_timeout(void)
{
	static struct feed f;
	const char *text = NULL;

	feed_init(&f, 500, 6);
	f.established = 500;
	for (int s = 0; s < 3; s++)
		CHECK_NULL(tick(&f));
	for (int s = 0; s < 12; s++) {
		for (int i = 0; i < 40; i++)
			drop(&f, ECONNRESET, 3000 + (uint64_t)((s * 40 + i) * 6000 / 480));
		text = tick(&f);
	}
	CHECK_HAS(text, "die after ~3 s idle");
	CHECK_HAS(text, "mostly reset");
	CHECK_HAS(text, "idle timeout in the path");
	CHECK_HAS(text, "--interval below it (now 6 s)");
	/* It stays, for the summary at exit. */
	CHECK_HAS(tick(&f), "idle timeout in the path");

	/* Azure's default: 4 minutes, keepalive every 5 minutes. */
	feed_init(&f, 10000, 300);
	for (int s = 0; s < 60; s++) {
		for (int i = 0; i < 20; i++)
			drop(&f, ECONNRESET, 240000 + (uint64_t)(s * 20 + i) * 250);
		text = tick(&f);
	}
	CHECK_HAS(text, "die after ~240 s idle");
}

static void test_not_idle(void)
{
	static struct feed f;

	/* Keepalive below the timeout: no drops, nothing to say. */
	feed_init(&f, 500, 1);
	f.established = 500;
	for (int s = 0; s < 20; s++)
		CHECK_NULL(tick(&f));

	/* A server restart: everything at once, whatever the age. */
	feed_init(&f, 1000, 15);
	f.established = 1000;
	tick(&f);
	for (int i = 0; i < 1000; i++)
		drop(&f, 0, 5000 + (uint64_t)i * 10);
	CHECK_NULL(tick(&f));
	for (int s = 0; s < 10; s++)
		CHECK_NULL(tick(&f));

	/* Drops at every age, young ones too: a flaky path, not a timeout. */
	feed_init(&f, 1000, 15);
	for (int s = 0; s < 10; s++) {
		for (int i = 0; i < 10; i++)
			drop(&f, ECONNRESET, (uint64_t)i * 2000);
		CHECK_NULL(tick(&f));
	}

	/* Without the age histogram, drops are not explained. */
	feed_init(&f, 500, 6);
	for (int s = 0; s < 10; s++) {
		struct diag_sample smp = {
			.now_ms = f.now_ms, .established = 500,
			.failed = f.failed, .dropped = f.dropped,
			.nr_errno = NR_ERRNO,
		};

		f.dropped[ECONNRESET] += 40;
		f.now_ms += 1000;
		CHECK_NULL(diag_update(&f.d, &smp));
	}
}

/* Dying at a fixed age although writing every second: a lifetime limit. */
static void test_lifetime(void)
{
	static struct feed f;
	const char *text = NULL;

	feed_init(&f, 1000, 1);
	for (int s = 0; s < 10; s++) {
		for (int i = 0; i < 10; i++)
			drop(&f, 0, 30000 + (uint64_t)i * 100);
		text = tick(&f);
	}
	CHECK_HAS(text, "age of ~30 s although they write every 1 s");
	CHECK_HAS(text, "mostly closed by the server");
}

static void test_both(void)
{
	static struct feed f;
	const char *text = NULL;

	feed_init(&f, 2000, 6);
	f.established = 1000;
	for (int s = 0; s < 8; s++) {
		f.failed[ETIMEDOUT] += 50;
		for (int i = 0; i < 5; i++)
			drop(&f, ECONNRESET, 4000 + (uint64_t)i * 500);
		text = tick(&f);
	}
	CHECK_HAS(text, "plateau at 1000");
	CHECK_HAS(text, "; kept connections die after ~4 s idle");
}

int main(void)
{
	test_buckets();
	test_snat_plateau();
	test_conntrack_plateau();
	test_not_plateaus();
	test_other_plateaus();
	test_idle_timeout();
	test_not_idle();
	test_lifetime();
	test_both();
	if (failures) {
		fprintf(stderr, "%d check(s) failed\n", failures);
		return 1;
	}
	printf("diagnose: all checks passed\n");
	return 0;
}
