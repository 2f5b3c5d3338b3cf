/* SPDX-License-Identifier: MIT */
#ifndef RINGHOLD_SERVER_H
#define RINGHOLD_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include "cfg.h"
#include "loop.h"
#include "net.h"

#define SERVER_DEFAULT_PORT		10000
#define SERVER_MAX_LISTEN		16

struct server_config {
	struct net_addr listen[SERVER_MAX_LISTEN];
	unsigned nr_listen;
	unsigned idle_timeout_s;	/* 0: never */
	unsigned recv_lowat;		/* SO_RCVLOWAT of accepted sockets */
	uint64_t max_connections;
	bool max_connections_set;	/* given, not the default */
	unsigned shards;		/* 0: auto */
	enum loop_backend backend;
	char name[256];
	char report_url[1024];
	unsigned report_interval_s;
	bool check_config;
};

/* Parses env, then argv (flags win).  0: run; 1: --help/--version printed,
 * exit 0; -EINVAL: err says why, exit 2. */
int server_config_parse(struct server_config *cfg, int argc, char **argv,
			struct cfg_error *err);
/* The effective configuration as a JSON string (malloc'd). */
char *server_config_json(const struct server_config *cfg);

#endif
