/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the request path: bytes are split into receive-sized
 * pieces at points the input itself picks and fed to the parser as the
 * service does, answering each request before the next.  Checks that the
 * parser always makes progress, never reports more than it was given and
 * that a request's target is always NUL-terminated within bounds.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct http_limits limits = { .max_head = 8192, .max_body = 65536 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct http_parser p = { 0 };
	size_t pos = 1, step;

	if (size < 1)
		return 0;
	/* The first byte picks the piece size: 1 (worst case) to 256. */
	step = (size_t)data[0] + 1;
	http_parser_init(&p, &limits);
	while (pos < size) {
		size_t n = size - pos < step ? size - pos : step;
		const char *piece = (const char *)data + pos;
		bool stop = false;

		while (n && !stop) {
			size_t used = 0;
			enum http_result r = http_feed(&p, piece, n, &used);
			const char *path, *query;
			size_t qlen;

			if (used > n)
				abort();
			switch (r) {
			case HTTP_FEED_AGAIN:
				if (used != n)
					abort();
				break;
			case HTTP_FEED_CONTINUE:
				break;
			case HTTP_FEED_REQUEST:
				if (p.target_len >= HTTP_TARGET_MAX ||
				    p.target[p.target_len] != '\0' ||
				    p.body_len > limits.max_body)
					abort();
				if (http_path(&p, &path) > p.target_len)
					abort();
				query = http_query(&p, &qlen);
				if (query && query + qlen != p.target + p.target_len)
					abort();
				(void)http_method_name(&p);
				if (!p.keep_alive)
					stop = true;
				http_next(&p);
				break;
			case HTTP_FEED_ERROR:
				if (p.status < 400 || p.status > 599 || !p.error)
					abort();
				stop = true;
				break;
			}
			/* No progress without a request to answer would spin
			 * the service: that is a bug. */
			if (!used && r != HTTP_FEED_REQUEST && r != HTTP_FEED_CONTINUE && !stop)
				abort();
			piece += used;
			n -= used;
		}
		if (stop)
			break;
		pos += step;
	}
	http_parser_free(&p);
	return 0;
}
