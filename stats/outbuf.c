/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "outbuf.h"

static bool reserve(struct outbuf *o, size_t more)
{
	size_t cap;
	char *grown;

	if (o->failed)
		return false;
	if (o->len + more <= o->cap)
		return true;
	cap = o->cap ? o->cap : 512;
	while (cap < o->len + more)
		cap *= 2;
	grown = realloc(o->data, cap);
	if (!grown) {
		o->failed = true;
		return false;
	}
	o->data = grown;
	o->cap = cap;
	return true;
}

void outbuf_add(struct outbuf *o, const void *data, size_t len)
{
	if (!len || !reserve(o, len))
		return;
	memcpy(o->data + o->len, data, len);
	o->len += len;
}

void outbuf_str(struct outbuf *o, const char *s)
{
	outbuf_add(o, s, strlen(s));
}

void outbuf_printf(struct outbuf *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!reserve(o, 128))
		return;
	va_start(ap, fmt);
	n = vsnprintf(o->data + o->len, o->cap - o->len, fmt, ap);
	va_end(ap);
	if (n < 0) {
		o->failed = true;
		return;
	}
	if ((size_t)n >= o->cap - o->len) {
		if (!reserve(o, (size_t)n + 1))
			return;
		va_start(ap, fmt);
		vsnprintf(o->data + o->len, o->cap - o->len, fmt, ap);
		va_end(ap);
	}
	o->len += (size_t)n;
}

void outbuf_json_str(struct outbuf *o, const char *s)
{
	static const char hex[] = "0123456789abcdef";

	outbuf_add(o, "\"", 1);
	for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
		const unsigned char *run = c;

		/* Copy runs of plain bytes in one go. */
		while (*c >= 0x20 && *c != '"' && *c != '\\' && *c != '<')
			c++;
		outbuf_add(o, run, (size_t)(c - run));
		if (!*c)
			break;
		if (*c == '"' || *c == '\\') {
			char esc[2] = { '\\', (char)*c };

			outbuf_add(o, esc, 2);
		} else {
			/* Control characters, and '<' so that JSON inlined
			 * into a page can never close a script element. */
			char esc[6] = { '\\', 'u', '0', '0', hex[*c >> 4],
					hex[*c & 15] };

			outbuf_add(o, esc, 6);
		}
	}
	outbuf_add(o, "\"", 1);
}

void outbuf_label(struct outbuf *o, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\')
			outbuf_add(o, "\\\\", 2);
		else if (*s == '"')
			outbuf_add(o, "\\\"", 2);
		else if (*s == '\n')
			outbuf_add(o, "\\n", 2);
		else
			outbuf_add(o, s, 1);
	}
}

void outbuf_reset(struct outbuf *o, size_t keep)
{
	o->len = 0;
	o->failed = false;
	if (o->cap > keep) {
		free(o->data);
		o->data = NULL;
		o->cap = 0;
	}
}

void outbuf_free(struct outbuf *o)
{
	free(o->data);
	o->data = NULL;
	o->len = o->cap = 0;
	o->failed = false;
}
