/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"

int cfg_error_set(struct cfg_error *err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return -EINVAL;
}

int cfg_parse_u64(const char *name, const char *val, uint64_t min,
		  uint64_t max, uint64_t *out, struct cfg_error *err)
{
	unsigned long long v;
	char *end;

	/* strtoull accepts leading blanks and a minus sign; we do not. */
	if (!val || !isdigit((unsigned char)val[0]))
		return cfg_error_set(err, "%s: '%s' is not a whole number",
				     name, val ? val : "");
	errno = 0;
	v = strtoull(val, &end, 10);
	if (*end != '\0')
		return cfg_error_set(err, "%s: '%s' is not a whole number",
				     name, val);
	if (errno == ERANGE || v < min || v > max) {
		cfg_error_set(err, "%s: %s is out of range (%llu to %llu)",
			      name, val, (unsigned long long)min,
			      (unsigned long long)max);
		return -ERANGE;
	}
	*out = v;
	return 0;
}

int cfg_parse_uint(const char *name, const char *val, unsigned min,
		   unsigned max, unsigned *out, struct cfg_error *err)
{
	uint64_t v;
	int ret = cfg_parse_u64(name, val, min, max, &v, err);

	if (!ret)
		*out = (unsigned)v;
	return ret;
}

int cfg_parse_bool(const char *name, const char *val, bool *out,
		   struct cfg_error *err)
{
	static const char *const yes[] = { "1", "true", "yes", "on" };
	static const char *const no[] = { "0", "false", "no", "off" };

	for (size_t i = 0; val && i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (!strcasecmp(val, yes[i])) {
			*out = true;
			return 0;
		}
		if (!strcasecmp(val, no[i])) {
			*out = false;
			return 0;
		}
	}
	return cfg_error_set(err, "%s: '%s' is not a boolean (true/false)",
			     name, val ? val : "");
}

const char *cfg_env(const char *name)
{
	const char *v = getenv(name);

	return v && *v ? v : NULL;
}

int cfg_parse_backend(const char *name, const char *val,
		      enum loop_backend *out, struct cfg_error *err)
{
	if (!val)
		val = "";
	if (!strcmp(val, "auto"))
		*out = LOOP_BACKEND_AUTO;
	else if (!strcmp(val, "uring") || !strcmp(val, "io_uring"))
		*out = LOOP_BACKEND_URING;
	else if (!strcmp(val, "epoll"))
		*out = LOOP_BACKEND_EPOLL;
	else
		return cfg_error_set(err, "%s: '%s' is not auto, uring or epoll",
				     name, val);
	return 0;
}
