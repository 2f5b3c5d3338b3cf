/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <getopt.h>
#include <string.h>

#include "cfg.h"
#include "config.h"

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

int cfg_set_string(char *dst, size_t size, const char *name, const char *val,
		   struct cfg_error *err)
{
	if (strlen(val) >= size)
		return cfg_error_set(err, "%s: value longer than %zu bytes", name,
				     size - 1);
	strcpy(dst, val);
	return 0;
}

int cfg_set_url(char *dst, size_t size, const char *name, const char *val,
		struct cfg_error *err)
{
	if (strncmp(val, "http://", 7) && strncmp(val, "https://", 8))
		return cfg_error_set(err, "%s: '%s' is not an http:// or https:// URL",
				     name, val);
	return cfg_set_string(dst, size, name, val, err);
}

static const char *long_name(const struct option *opts, int c)
{
	for (; opts->name; opts++)
		if (opts->val == c)
			return opts->name;
	return "?";
}

int cfg_parse_args(const struct cfg_spec *spec, void *cfg, int argc,
		   char **argv, bool *check_config, struct cfg_error *err)
{
	bool seen[512] = { false };	/* options seen on the command line */
	char name[64];
	const char *v;
	int c;

	for (size_t i = 0; i < spec->nr_env; i++)
		if ((v = cfg_env(spec->env[i].env)) &&
		    spec->apply(cfg, spec->env[i].opt, spec->env[i].env, v, err) < 0)
			return -EINVAL;

	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, spec->shortopts, spec->long_opts,
				NULL)) != -1) {
		if (c == 'h') {
			fputs(spec->usage, stdout);
			return 1;
		}
		if (c == 'V') {
			printf("%s %s\n", spec->program, RINGHOLD_VERSION);
			return 1;
		}
		if (c == spec->check_config_opt) {
			*check_config = true;
			continue;
		}
		if (c == '?') {
			if (optopt && optopt < 256)
				return cfg_error_set(err, "unknown option '-%c' (see --help)",
						     optopt);
			return cfg_error_set(err, "unknown option '%s' (see --help)",
					     argv[optind - 1]);
		}
		if (c == ':')
			return cfg_error_set(err, "option '%s' needs a value",
					     argv[optind - 1]);
		if (spec->reset_list && c >= 0 && c < 512 && !seen[c])
			spec->reset_list(cfg, c);
		if (c >= 0 && c < 512)
			seen[c] = true;
		snprintf(name, sizeof(name), "--%s", long_name(spec->long_opts, c));
		if (spec->apply(cfg, c, name, optarg, err) < 0)
			return -EINVAL;
	}
	if (optind < argc)
		return cfg_error_set(err, "unexpected argument '%s' (see --help)",
				     argv[optind]);
	return 0;
}
