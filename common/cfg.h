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


/* "auto", "uring" (or "io_uring") and "epoll". */
int cfg_parse_backend(const char *name, const char *val,
		      enum loop_backend *out, struct cfg_error *err);

#endif
