/* SPDX-License-Identifier: MIT */
/*
 * The connection plan.  Each (source address, destination) tuple carries an
 * equal share of the connections, because connect()'s port search slows
 * down as one tuple fills (FACTS.md: ~600 connects/s past 37k on one tuple,
 * versus 100k/s+ spread over several).
 */
#include <errno.h>
#include <stdlib.h>

#include "client.h"

int plan_build(const struct client_config *cfg, struct plan *plan,
	       struct cfg_error *err)
{
	size_t nsrc = cfg->nr_sources ? cfg->nr_sources : 1;
	size_t n = nsrc * cfg->nr_servers;
	uint64_t base, extra;

	plan->tuples = NULL;
	plan->nr_tuples = 0;
	plan->capacity = (uint64_t)n * cfg->per_tuple;
	if (!cfg->nr_servers)
		return cfg_error_set(err, "no server to connect to (--server)");
	if (cfg->connections > plan->capacity) {
		cfg_error_set(err,
			"%llu connections do not fit: %zu source address%s x %u "
			"server%s x %u per (source, server) pair = %llu; add "
			"--source ranges (e.g. --source 127.0.0.2-127.0.0.%zu on "
			"loopback) or more --server ports, or raise --per-tuple "
			"(at most %u)",
			(unsigned long long)cfg->connections, nsrc,
			nsrc == 1 ? "" : "es", cfg->nr_servers,
			cfg->nr_servers == 1 ? "" : "s", cfg->per_tuple,
			(unsigned long long)plan->capacity,
			(size_t)((cfg->connections + (uint64_t)cfg->per_tuple *
				  cfg->nr_servers - 1) /
				 ((uint64_t)cfg->per_tuple * cfg->nr_servers)) + 1,
			CLIENT_MAX_PER_TUPLE);
		return -ERANGE;
	}
	plan->tuples = calloc(n, sizeof(*plan->tuples));
	if (!plan->tuples)
		return cfg_error_set(err, "out of memory");
	base = cfg->connections / n;
	extra = cfg->connections % n;
	/* Destinations vary fastest, so a small count still reaches every
	 * server. */
	for (size_t i = 0; i < n; i++) {
		struct plan_tuple *t = &plan->tuples[i];

		t->src = cfg->nr_sources ? &cfg->sources[i / cfg->nr_servers] : NULL;
		t->dst = &cfg->servers[i % cfg->nr_servers];
		t->target = base + (i < extra ? 1 : 0);
	}
	plan->nr_tuples = n;
	return 0;
}

void plan_free(struct plan *plan)
{
	free(plan->tuples);
	plan->tuples = NULL;
	plan->nr_tuples = 0;
}

uint64_t plan_share(const struct plan *plan, size_t t, unsigned s,
		    unsigned nr_shards)
{
	uint64_t target = plan->tuples[t].target;

	/* Rotate the remainder by tuple so the shards come out even. */
	return target / nr_shards +
	       (((s + nr_shards - t % nr_shards) % nr_shards) < target % nr_shards);
}
