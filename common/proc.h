/* SPDX-License-Identifier: MIT */
/* Facts about this process and host, for logs and reports. */
#ifndef RINGHOLD_PROC_H
#define RINGHOLD_PROC_H

#include <stddef.h>
#include <stdint.h>

/* Resident set size in bytes, 0 if unknown. */
uint64_t proc_rss_bytes(void);
/* user+system CPU time of this process in milliseconds. */
uint64_t proc_cpu_ms(void);
/* The host name (the pod name in Kubernetes), or "unknown". */
const char *proc_hostname(char *buf, size_t len);

#endif
