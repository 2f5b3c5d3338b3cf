/* SPDX-License-Identifier: MIT */
/*
 * HTTP/1.1 request parsing on llhttp, for servers on the ring loop.
 *
 * The parser is fed whatever a receive completion delivered and can stop at
 * any byte: llhttp keeps its own state between calls, and the few things we
 * need to keep past the callback (the request target, the body) are copied
 * into the parser.  Headers are not stored at all: the ones that matter
 * (Content-Length, Transfer-Encoding, Connection) are digested by llhttp and
 * Expect is matched incrementally, so nothing is allocated per header.
 *
 * Requests are handed out one at a time.  The parser pauses after each
 * complete request; the caller answers it and calls http_next(), then feeds
 * the rest of its input.  Pipelined requests therefore come out in order,
 * each after the previous one was answered.
 *
 * Limits: the head (request line and headers) may be at most max_head bytes
 * (431 beyond that), the body at most max_body bytes (413), the target at
 * most HTTP_TARGET_MAX - 1 bytes (414).  Anything llhttp rejects is a 400.
 */
#ifndef RINGHOLD_HTTP_H
#define RINGHOLD_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <llhttp.h>

#define HTTP_TARGET_MAX 1024

struct http_limits {
	uint32_t max_head;
	uint32_t max_body;
};

enum http_result {
	HTTP_FEED_AGAIN,	/* all input consumed; the request is not complete */
	HTTP_FEED_CONTINUE,	/* head done, client sent Expect: 100-continue */
	HTTP_FEED_REQUEST,	/* a complete request; answer it, then http_next() */
	HTTP_FEED_ERROR,	/* p->status and p->error say what to answer; then close */
};

enum http_phase {
	HTTP_PHASE_IDLE,	/* between requests */
	HTTP_PHASE_HEAD,
	HTTP_PHASE_BODY,
	HTTP_PHASE_DONE,	/* a request is waiting for http_next() */
	HTTP_PHASE_ERROR,	/* sticky until http_parser_init() */
};

struct http_parser {
	llhttp_t ll;
	const struct http_limits *limits;
	uint8_t phase;
	uint8_t method;		/* enum llhttp_method */
	bool keep_alive;
	bool expect_continue;
	/* Incremental match of the current header name/value against
	 * "expect" / "100-continue": position matched so far, or UINT8_MAX
	 * once it cannot match. */
	uint8_t expect_name_pos;
	uint8_t expect_value_pos;
	bool in_expect_value;
	bool field_seen;	/* the current header name has a byte */
	uint16_t status;	/* HTTP_FEED_ERROR: status to answer */
	const char *error;	/* HTTP_FEED_ERROR: static one-line reason */
	uint32_t head_bytes;
	uint16_t target_len;
	char target[HTTP_TARGET_MAX];
	/* The body buffer is kept between requests (a reporter posts every few
	 * seconds on one keep-alive connection) and freed when it grew large. */
	char *body;
	uint32_t body_len;
	uint32_t body_cap;
};

/* Prepares p for a new connection; limits must outlive the parser. */
void http_parser_init(struct http_parser *p, const struct http_limits *limits);
/* Releases what the parser holds (the body buffer); p may be reused after
 * http_parser_init(). */
void http_parser_free(struct http_parser *p);

/*
 * Parses up to len bytes of data.  *consumed tells how many were used; the
 * caller feeds the rest after acting on the result.  data need not outlive
 * the call.
 */
enum http_result http_feed(struct http_parser *p, const char *data, size_t len,
			   size_t *consumed);

/* Called after a request (HTTP_FEED_REQUEST) was answered: readies the next one. */
void http_next(struct http_parser *p);

/* True while a request has started but is not complete. */
static inline bool http_in_request(const struct http_parser *p)
{
	return p->phase == HTTP_PHASE_HEAD || p->phase == HTTP_PHASE_BODY;
}

/* The target's path (up to '?'), not NUL-terminated. */
size_t http_path(const struct http_parser *p, const char **path);
/* The query (after '?'), or NULL. */
const char *http_query(const struct http_parser *p, size_t *len);

const char *http_method_name(const struct http_parser *p);
const char *http_status_reason(unsigned status);

/* Flags for http_format_head(). */
#define HTTP_F_KEEP_ALIVE	(1u << 0)
#define HTTP_F_NO_LENGTH	(1u << 1)	/* streamed: no Content-Length */

/*
 * Writes a response head into buf: status line, Content-Type (if not NULL),
 * Content-Length, Connection, extra (zero or more complete "Name: value\r\n"
 * lines, or NULL) and the blank line.  Returns its length or -ENOSPC.
 */
int http_format_head(char *buf, size_t cap, unsigned status,
		     const char *content_type, size_t content_length,
		     unsigned flags, const char *extra);

#endif
