/* SPDX-License-Identifier: MIT */
#ifndef RINGHOLD_CLIENT_H
#define RINGHOLD_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cfg.h"
#include "loop.h"
#include "net.h"

#define CLIENT_DEFAULT_PORT	10000
#define CLIENT_MAX_SERVERS	64
/* connect() slows down sharply past ~32k connections per (source,
 * destination) pair (../shared/FACTS.md): plan below that. */
#define CLIENT_DEFAULT_PER_TUPLE 30000
/* Ports 1024-65535: the most one source can ever open to one destination. */
#define CLIENT_MAX_PER_TUPLE	64512

struct client_config {
	struct net_addr servers[CLIENT_MAX_SERVERS];
	unsigned nr_servers;
	struct net_addr *sources;	/* NULL: let the kernel pick */
	size_t nr_sources;
	uint64_t connections;
	unsigned interval_s;		/* keepalive period */
	unsigned rate;			/* connects per second, 0 = unlimited */
	unsigned max_inflight;
	unsigned per_tuple;
	unsigned connect_timeout_s;
	unsigned duration_s;		/* 0 = forever */
	unsigned shards;		/* 0 = auto */
	enum loop_backend backend;
	bool json;
	bool check_config;
	char name[256];
	char report_url[1024];
	unsigned report_interval_s;
};

int client_config_parse(struct client_config *cfg, int argc, char **argv,
			struct cfg_error *err);
void client_config_free(struct client_config *cfg);
char *client_config_json(const struct client_config *cfg);

/*
 * The plan: which (source, destination) tuples carry how many connections,
 * and how each tuple's share is split over the shards.
 */
struct plan_tuple {
	const struct net_addr *src;	/* NULL: kernel's choice */
	const struct net_addr *dst;
	uint64_t target;
};

struct plan {
	struct plan_tuple *tuples;
	size_t nr_tuples;
	uint64_t capacity;		/* what the tuples could carry */
};

/* Spreads cfg->connections evenly over sources x servers, at most
 * cfg->per_tuple each.  -ERANGE with a message when they do not fit. */
int plan_build(const struct client_config *cfg, struct plan *plan,
	       struct cfg_error *err);
void plan_free(struct plan *plan);
/* Shard s's share of tuple t when a tuple is split over nr_shards. */
uint64_t plan_share(const struct plan *plan, size_t t, unsigned s,
		    unsigned nr_shards);

#endif
