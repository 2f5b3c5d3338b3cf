/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

/* A body buffer larger than this is not kept for the next request. */
#define HTTP_BODY_KEEP 16384

static const char expect_name[] = "expect";
static const char expect_value[] = "100-continue";

static inline struct http_parser *to_parser(llhttp_t *ll)
{
	return ll->data;
}

/* Fails the request from inside a callback: llhttp stops with a callback
 * error and http_feed() answers with our status instead of a 400. */
static int fail(struct http_parser *p, unsigned status, const char *why)
{
	p->status = (uint16_t)status;
	p->error = why;
	return HPE_USER;
}

/* Advances an incremental case-insensitive match of a split token. */
static uint8_t match_more(uint8_t pos, const char *want, size_t want_len,
			  const char *at, size_t len)
{
	if (pos == UINT8_MAX)
		return pos;
	if (pos + len > want_len)
		return UINT8_MAX;
	for (size_t i = 0; i < len; i++) {
		char c = at[i];

		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (c != want[pos + i])
			return UINT8_MAX;
	}
	return (uint8_t)(pos + len);
}

static int on_message_begin(llhttp_t *ll)
{
	struct http_parser *p = to_parser(ll);

	p->phase = HTTP_PHASE_HEAD;
	p->target_len = 0;
	p->body_len = 0;
	p->expect_continue = false;
	p->expect_name_pos = 0;
	p->in_expect_value = false;
	p->field_seen = false;
	return 0;
}

static int on_url(llhttp_t *ll, const char *at, size_t len)
{
	struct http_parser *p = to_parser(ll);

	if (len >= sizeof(p->target) - p->target_len)
		return fail(p, 414, "request target too long");
	memcpy(p->target + p->target_len, at, len);
	p->target_len = (uint16_t)(p->target_len + len);
	p->target[p->target_len] = '\0';
	return 0;
}

static int on_header_field(llhttp_t *ll, const char *at, size_t len)
{
	struct http_parser *p = to_parser(ll);

	p->expect_name_pos = match_more(p->expect_name_pos, expect_name,
					sizeof(expect_name) - 1, at, len);
	p->field_seen = p->field_seen || len;
	return 0;
}

static int on_header_field_complete(llhttp_t *ll)
{
	struct http_parser *p = to_parser(ll);

	/* llhttp 8 lets ": value" through even in strict mode. */
	if (!p->field_seen)
		return fail(p, 400, "empty header name");
	p->field_seen = false;
	p->in_expect_value = p->expect_name_pos == sizeof(expect_name) - 1;
	p->expect_value_pos = 0;
	return 0;
}

static int on_header_value(llhttp_t *ll, const char *at, size_t len)
{
	struct http_parser *p = to_parser(ll);

	if (p->in_expect_value)
		p->expect_value_pos = match_more(p->expect_value_pos,
						 expect_value,
						 sizeof(expect_value) - 1,
						 at, len);
	return 0;
}

static int on_header_value_complete(llhttp_t *ll)
{
	struct http_parser *p = to_parser(ll);

	if (p->in_expect_value &&
	    p->expect_value_pos == sizeof(expect_value) - 1)
		p->expect_continue = true;
	p->in_expect_value = false;
	p->expect_name_pos = 0;
	return 0;
}

static int body_reserve(struct http_parser *p, uint64_t need)
{
	uint64_t cap;
	char *grown;

	if (need <= p->body_cap)
		return 0;
	/* Chunked bodies grow by doubling; a Content-Length body is sized
	 * once.  Either way never beyond the limit, checked by the caller. */
	cap = p->body_cap ? (uint64_t)p->body_cap * 2 : 1024;
	if (cap < need)
		cap = need;
	if (cap > p->limits->max_body)
		cap = p->limits->max_body;
	grown = realloc(p->body, cap);
	if (!grown)
		return -ENOMEM;
	p->body = grown;
	p->body_cap = (uint32_t)cap;
	return 0;
}

static int on_headers_complete(llhttp_t *ll)
{
	struct http_parser *p = to_parser(ll);

	p->method = ll->method;
	p->keep_alive = llhttp_should_keep_alive(ll) && !ll->upgrade;
	if (ll->content_length > p->limits->max_body)
		return fail(p, 413, "request body too large");
	if (!(ll->flags & F_CHUNKED) && ll->content_length &&
	    body_reserve(p, ll->content_length) < 0)
		return fail(p, 503, "out of memory for the request body");
	p->phase = HTTP_PHASE_BODY;
	/* Pause so that http_feed() learns exactly where the head ended. */
	return HPE_PAUSED;
}

static int on_body(llhttp_t *ll, const char *at, size_t len)
{
	struct http_parser *p = to_parser(ll);
	uint64_t need = (uint64_t)p->body_len + len;

	if (need > p->limits->max_body)
		return fail(p, 413, "request body too large");
	if (body_reserve(p, need) < 0)
		return fail(p, 503, "out of memory for the request body");
	memcpy(p->body + p->body_len, at, len);
	p->body_len = (uint32_t)need;
	return 0;
}

static int on_message_complete(llhttp_t *ll)
{
	struct http_parser *p = to_parser(ll);

	p->phase = HTTP_PHASE_DONE;
	return HPE_PAUSED;
}

static const llhttp_settings_t http_settings = {
	.on_message_begin = on_message_begin,
	.on_url = on_url,
	.on_header_field = on_header_field,
	.on_header_field_complete = on_header_field_complete,
	.on_header_value = on_header_value,
	.on_header_value_complete = on_header_value_complete,
	.on_headers_complete = on_headers_complete,
	.on_body = on_body,
	.on_message_complete = on_message_complete,
};

void http_parser_init(struct http_parser *p, const struct http_limits *limits)
{
	char *body = p->body;
	uint32_t cap = p->body_cap;

	memset(p, 0, offsetof(struct http_parser, target));
	p->target[0] = '\0';
	p->body = body;
	p->body_cap = cap;
	p->body_len = 0;
	p->limits = limits;
	llhttp_init(&p->ll, HTTP_REQUEST, &http_settings);
	p->ll.data = p;
}

void http_parser_free(struct http_parser *p)
{
	free(p->body);
	p->body = NULL;
	p->body_cap = 0;
	p->body_len = 0;
}

static enum http_result set_error(struct http_parser *p, unsigned status,
				  const char *why)
{
	p->phase = HTTP_PHASE_ERROR;
	p->status = (uint16_t)status;
	p->error = why;
	p->keep_alive = false;
	return HTTP_FEED_ERROR;
}

enum http_result http_feed(struct http_parser *p, const char *data, size_t len,
			   size_t *consumed)
{
	size_t done = 0;
	/* After the pause at the end of the head llhttp may still owe us
	 * on_message_complete (no body): one more call, even with no bytes
	 * left, lets it get there. */
	bool resumed = false;

	*consumed = 0;
	if (p->phase == HTTP_PHASE_ERROR) {
		*consumed = len;
		return HTTP_FEED_ERROR;
	}
	if (p->phase == HTTP_PHASE_DONE)
		return HTTP_FEED_REQUEST;

	while (done < len || resumed) {
		const char *chunk = data + done;
		size_t n = len - done, used;
		bool in_head = p->phase == HTTP_PHASE_IDLE ||
			       p->phase == HTTP_PHASE_HEAD;
		llhttp_errno_t err;

		/* Never hand llhttp more than one byte past the head limit:
		 * the limit is then exact however the input was split. */
		if (in_head && n > (size_t)p->limits->max_head + 1 - p->head_bytes)
			n = (size_t)p->limits->max_head + 1 - p->head_bytes;
		resumed = false;
		p->status = 0;
		err = llhttp_execute(&p->ll, chunk, n);
		used = err == HPE_OK ? n :
		       (size_t)(llhttp_get_error_pos(&p->ll) - chunk);
		if (used > n)	/* defensive: error_pos outside the chunk */
			used = n;
		done += used;
		if (in_head)
			p->head_bytes += (uint32_t)used;

		switch (err) {
		case HPE_OK:
			if (in_head && p->head_bytes > p->limits->max_head) {
				*consumed = len;
				return set_error(p, 431, "request head too large");
			}
			continue;
		case HPE_PAUSED:
			llhttp_resume(&p->ll);
			if (in_head && p->head_bytes > p->limits->max_head) {
				*consumed = len;
				return set_error(p, 431, "request head too large");
			}
			if (p->phase == HTTP_PHASE_DONE) {
				*consumed = done;
				return HTTP_FEED_REQUEST;
			}
			if (p->phase == HTTP_PHASE_BODY && p->expect_continue &&
			    p->ll.content_length) {
				p->expect_continue = false;
				*consumed = done;
				return HTTP_FEED_CONTINUE;
			}
			resumed = true;
			continue;
		case HPE_PAUSED_UPGRADE:
			/* The request before it was already handed out; the
			 * rest of the stream is another protocol. */
			*consumed = len;
			return set_error(p, 400, "protocol upgrade not supported");
		default:
			*consumed = len;
			if (p->status)
				return set_error(p, p->status, p->error);
			return set_error(p, 400, llhttp_get_error_reason(&p->ll) ?
					 llhttp_get_error_reason(&p->ll) :
					 llhttp_errno_name(err));
		}
	}
	*consumed = done;
	return HTTP_FEED_AGAIN;
}

void http_next(struct http_parser *p)
{
	if (p->phase != HTTP_PHASE_DONE)
		return;
	p->phase = HTTP_PHASE_IDLE;
	p->head_bytes = 0;
	p->target_len = 0;
	p->target[0] = '\0';
	p->body_len = 0;
	p->expect_continue = false;
	if (p->body_cap > HTTP_BODY_KEEP)
		http_parser_free(p);
}

size_t http_path(const struct http_parser *p, const char **path)
{
	const char *q = memchr(p->target, '?', p->target_len);

	*path = p->target;
	return q ? (size_t)(q - p->target) : p->target_len;
}

const char *http_query(const struct http_parser *p, size_t *len)
{
	const char *q = memchr(p->target, '?', p->target_len);

	if (!q) {
		*len = 0;
		return NULL;
	}
	*len = p->target_len - (size_t)(q + 1 - p->target);
	return q + 1;
}

const char *http_method_name(const struct http_parser *p)
{
	return llhttp_method_name((llhttp_method_t)p->method);
}

const char *http_status_reason(unsigned status)
{
	switch (status) {
	case 100: return "Continue";
	case 200: return "OK";
	case 204: return "No Content";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	default: return "Unknown";
	}
}

int http_format_head(char *buf, size_t cap, unsigned status,
		     const char *content_type, size_t content_length,
		     unsigned flags, const char *extra)
{
	char length[48] = "";
	int n;

	if (!(flags & HTTP_F_NO_LENGTH))
		snprintf(length, sizeof(length), "Content-Length: %zu\r\n",
			 content_length);
	n = snprintf(buf, cap,
		     "HTTP/1.1 %u %s\r\n"
		     "%s%s%s"
		     "%s"
		     "Connection: %s\r\n"
		     "%s"
		     "\r\n",
		     status, http_status_reason(status),
		     content_type ? "Content-Type: " : "",
		     content_type ? content_type : "",
		     content_type ? "\r\n" : "",
		     length,
		     (flags & HTTP_F_KEEP_ALIVE) ? "keep-alive" : "close",
		     extra ? extra : "");
	if (n < 0 || (size_t)n >= cap)
		return -ENOSPC;
	return n;
}
