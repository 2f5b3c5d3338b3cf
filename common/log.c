/* SPDX-License-Identifier: MIT */
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include "log.h"
#include "loop.h"

static const char *log_program = "ringhold";
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

void log_init(const char *program)
{
	log_program = program;
}

void log_msg(const char *level, const char *fmt, ...)
{
	struct timespec ts;
	struct tm tm;
	char stamp[32];
	va_list ap;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	pthread_mutex_lock(&log_lock);
	fprintf(stderr, "%s.%03ldZ %s %s: ", stamp, ts.tv_nsec / 1000000,
		log_program, level);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	pthread_mutex_unlock(&log_lock);
}

bool log_ratelimit_ok(struct log_ratelimit *rl, uint64_t *suppressed)
{
	uint64_t now = loop_now_ms();

	if (rl->last_ms && now - rl->last_ms < rl->interval_ms) {
		rl->suppressed++;
		return false;
	}
	rl->last_ms = now;
	if (suppressed)
		*suppressed = rl->suppressed;
	rl->suppressed = 0;
	return true;
}

void log_report_failure(struct log_ratelimit *rl, const char *url,
			long http_status, const char *error)
{
	uint64_t suppressed = 0;

	if (!log_ratelimit_ok(rl, &suppressed))
		return;
	if (http_status)
		log_warn("report to %s answered HTTP %ld (%" PRIu64
			 " more failures not shown)", url, http_status, suppressed);
	else
		log_warn("report to %s failed: %s (%" PRIu64
			 " more failures not shown)", url,
			 error ? error : "unknown error", suppressed);
}
