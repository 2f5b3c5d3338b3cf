/* SPDX-License-Identifier: MIT */
/* Program logging: one line per event on stderr, with a UTC timestamp. */
#ifndef RINGHOLD_LOG_H
#define RINGHOLD_LOG_H

#include <stdbool.h>
#include <stdint.h>

void log_init(const char *program);
void log_msg(const char *level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define log_info(...)	log_msg("info", __VA_ARGS__)
#define log_warn(...)	log_msg("warn", __VA_ARGS__)
#define log_error(...)	log_msg("error", __VA_ARGS__)

/* At most one message per interval; counts what it suppressed. */
struct log_ratelimit {
	uint64_t interval_ms;
	uint64_t last_ms;
	uint64_t suppressed;
};

/* True when a message may be logged now; *suppressed gets the number held
 * back since the last one. */
bool log_ratelimit_ok(struct log_ratelimit *rl, uint64_t *suppressed);

/* One rate-limited line for a report the stats service did not take:
 * http_status 0 means no answer, error then says why. */
void log_report_failure(struct log_ratelimit *rl, const char *url,
			long http_status, const char *error);

#endif
