/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the report decoder and everything a decoded report
 * flows into: the table, then every rendering of it.  What we render as
 * JSON must parse back, whatever names and strings the report carried.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "outbuf.h"
#include "render.h"
#include "store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct store store;
static bool store_ready;
static uint64_t fake_mono = 1000000;

static void must_parse(const struct outbuf *o, const char *what)
{
	json_error_t err;
	json_t *j;

	if (o->failed)
		abort();
	j = json_loadb(o->data, o->len, 0, &err);
	if (!j) {
		fprintf(stderr, "%s does not parse: %s\n%.*s\n", what, err.text,
			(int)o->len, o->data);
		abort();
	}
	json_decref(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct render_self self = { .backend = "io_uring" };
	struct outbuf o = { 0 };
	struct report r;
	char err[256];
	int ret;

	if (!store_ready) {
		if (store_init(&store, 2000, 4000, 64) < 0)
			abort();
		store_ready = true;
	}
	err[0] = '\0';
	ret = store_decode_report((const char *)data, size, &r, err, sizeof(err));
	if (ret < 0) {
		if (!err[0] || !memchr(err, '\0', sizeof(err)))
			abort();
		return 0;
	}
	if (!r.name[0])
		abort();
	fake_mono += 700;	/* rows age and expire across inputs */
	ret = store_apply(&store, &r, 1700000000000ull, fake_mono);
	if (ret < 0 && ret != -ENOSPC)
		abort();
	store_expire(&store, fake_mono);
	store_sample(&store, 1700000000000ull, fake_mono);

	render_list(&o, &store, 1700000000000ull, fake_mono);
	must_parse(&o, "the list");
	outbuf_reset(&o, 0);
	render_state(&o, &store, &self, 1700000000000ull, fake_mono);
	must_parse(&o, "the state");
	outbuf_reset(&o, 0);
	render_history(&o, &store);
	must_parse(&o, "the history");
	outbuf_reset(&o, 0);
	render_metrics(&o, &store, &self, 1700000000000ull, fake_mono);
	if (o.failed || memchr(o.data, '\0', o.len))
		abort();
	outbuf_free(&o);
	return 0;
}
