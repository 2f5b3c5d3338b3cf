/* SPDX-License-Identifier: MIT */
/* The tcp-server-stats HTTP service on one ring loop. */
#ifndef RINGHOLD_STATS_SERVICE_H
#define RINGHOLD_STATS_SERVICE_H

#include <stdint.h>

#include "loop.h"
#include "net.h"

struct stats_config {
	struct net_addr listen;
	char listen_str[NET_ADDRSTRLEN + 256];
	enum loop_backend backend;
	unsigned expire_s;
	uint64_t stale_ms;		/* expire / 2 */
	unsigned header_timeout_s;	/* first byte to last byte of a request */
	unsigned idle_timeout_s;	/* keep-alive connection with nothing sent */
	unsigned max_reporters;
	uint32_t max_head;
	uint32_t max_body;
};

/* Runs until SIGINT/SIGTERM; logs its own errors.  Returns 0 or -errno. */
int service_run(const struct stats_config *cfg);

#endif
