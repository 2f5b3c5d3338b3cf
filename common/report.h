/* SPDX-License-Identifier: MIT */
/*
 * The reporter POSTs a JSON document to the stats service with libcurl's
 * multi interface, driven by a loop: curl's sockets are polled on the loop
 * and its timer is a loop timer, so a report never blocks.  One request is
 * in flight at a time; a newer document replaces one still waiting.
 */
#ifndef RINGHOLD_REPORT_H
#define RINGHOLD_REPORT_H

#include <stdbool.h>
#include <stdint.h>

#include "loop.h"

struct reporter;

struct report_result {
	bool ok;
	long http_status;	/* 0 when no response */
	const char *error;	/* curl's text, or NULL */
};

typedef void (*report_done_cb)(void *arg, const struct report_result *res);

/*
 * Poll ids [poll_base, poll_base + poll_count) and timer timer_id of the loop
 * are the reporter's.  Returns NULL and sets *err on failure.
 */
struct reporter *reporter_new(struct loop *loop, const char *url,
			      unsigned poll_base, unsigned poll_count,
			      unsigned timer_id, report_done_cb done, void *arg,
			      int *err);
void reporter_free(struct reporter *r);

/* Takes ownership of body (malloc'd, NUL-terminated JSON). */
int reporter_send(struct reporter *r, char *body);

/* Feed every loop event through this first; true when it was the reporter's. */
bool reporter_handle(struct reporter *r, const struct loop_event *ev);

bool reporter_busy(const struct reporter *r);

/*
 * A report document with the fields every reporter sends: role, name (and
 * machineName for the original's API), pod/namespace/node from POD_NAME,
 * POD_NAMESPACE and NODE_NAME, backend, version, rssBytes, startTime.
 * Returns a jansson object (json_t *) or NULL.
 */
struct json_t;
struct json_t *report_doc_new(const char *role, const char *name,
			      const char *backend, int64_t start_time);

#endif
