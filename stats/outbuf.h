/* SPDX-License-Identifier: MIT */
/*
 * A growable byte buffer for responses.  Appends never fail on the spot:
 * an allocation failure marks the buffer failed and later appends do
 * nothing, so a renderer checks once at the end instead of after each line.
 */
#ifndef RINGHOLD_STATS_OUTBUF_H
#define RINGHOLD_STATS_OUTBUF_H

#include <stdbool.h>
#include <stddef.h>

struct outbuf {
	char *data;
	size_t len, cap;
	bool failed;
};

void outbuf_add(struct outbuf *o, const void *data, size_t len);
void outbuf_str(struct outbuf *o, const char *s);
void outbuf_printf(struct outbuf *o, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* s as a JSON string literal, quotes included. */
void outbuf_json_str(struct outbuf *o, const char *s);
/* s escaped for a Prometheus label value (no quotes). */
void outbuf_label(struct outbuf *o, const char *s);
/* Empties the buffer, keeping at most keep bytes of capacity. */
void outbuf_reset(struct outbuf *o, size_t keep);
void outbuf_free(struct outbuf *o);

#endif
