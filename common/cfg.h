/* SPDX-License-Identifier: MIT */
/*
 * Checked parsing of option and environment values.  Each function returns 0
 * or -EINVAL/-ERANGE and, on error, writes a one-line message naming the
 * option ("--rate: 'abc' is not a whole number") into err.
 */
#ifndef RINGHOLD_CFG_H
#define RINGHOLD_CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "loop.h"

struct cfg_error {
	char msg[256];
};

int cfg_parse_u64(const char *name, const char *val, uint64_t min,
		  uint64_t max, uint64_t *out, struct cfg_error *err);
int cfg_parse_uint(const char *name, const char *val, unsigned min,
		   unsigned max, unsigned *out, struct cfg_error *err);
int cfg_parse_bool(const char *name, const char *val, bool *out,
		   struct cfg_error *err);
int cfg_error_set(struct cfg_error *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* getenv() that treats an empty value as unset. */
const char *cfg_env(const char *name);


int cfg_set_string(char *dst, size_t size, const char *name, const char *val,
		   struct cfg_error *err);
/* http:// or https:// URL into dst. */
int cfg_set_url(char *dst, size_t size, const char *name, const char *val,
		struct cfg_error *err);

/*
 * One program's options.  Environment variables are applied first, then the
 * command line, so a flag always wins; the first flag of a list option
 * (reset_list) replaces what the environment gave it.
 */
struct option;

struct cfg_env_var {
	const char *env;
	int opt;
};

struct cfg_spec {
	const char *program;
	const char *usage;
	const char *shortopts;
	const struct option *long_opts;
	const struct cfg_env_var *env;
	size_t nr_env;
	int check_config_opt;	/* the getopt value of --check-config */
	int (*apply)(void *cfg, int opt, const char *name, const char *val,
		     struct cfg_error *err);
	void (*reset_list)(void *cfg, int opt);
};

/* 0: run; 1: --help/--version printed, exit 0; -EINVAL: err says why,
 * exit 2. */
int cfg_parse_args(const struct cfg_spec *spec, void *cfg, int argc,
		   char **argv, bool *check_config, struct cfg_error *err);

/* "auto", "uring" (or "io_uring") and "epoll". */
int cfg_parse_backend(const char *name, const char *val,
		      enum loop_backend *out, struct cfg_error *err);

#endif
