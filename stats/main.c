/* SPDX-License-Identifier: MIT */
/*
 * tcp-server-stats: options and environment, then the service.
 *
 * Environment first, flags over it.  Every bad value is one line naming the
 * option or variable, and exit status 2.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "config.h"
#include "log.h"
#include "net.h"
#include "service.h"

#define PROG "tcp-server-stats"

enum {
	OPT_LISTEN = 'l',
	OPT_EXPIRE = 'e',
	OPT_HELP = 'h',
	OPT_VERSION = 'V',
	OPT_BACKEND = 256,
	OPT_CHECK,
	OPT_HEADER_TIMEOUT,
	OPT_IDLE_TIMEOUT,
	OPT_MAX_REPORTERS,
	OPT_PORT,		/* env PORT only */
};

static const struct option long_opts[] = {
	{ "listen", required_argument, NULL, OPT_LISTEN },
	{ "expire", required_argument, NULL, OPT_EXPIRE },
	{ "backend", required_argument, NULL, OPT_BACKEND },
	{ "header-timeout", required_argument, NULL, OPT_HEADER_TIMEOUT },
	{ "idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT },
	{ "max-reporters", required_argument, NULL, OPT_MAX_REPORTERS },
	{ "check-config", no_argument, NULL, OPT_CHECK },
	{ "help", no_argument, NULL, OPT_HELP },
	{ "version", no_argument, NULL, OPT_VERSION },
	{ NULL, 0, NULL, 0 },
};

static const char usage[] =
"Usage: " PROG " [OPTION]...\n"
"Collects reports from tcp-server and tcp-client and shows them: a live\n"
"dashboard at /, the list at /api/ServerStatistics, Prometheus text at /metrics.\n"
"\n"
"  -l, --listen HOST:PORT     address to serve on (env LISTEN, or PORT for\n"
"                             0.0.0.0:PORT; default 0.0.0.0:8080)\n"
"  -e, --expire SECONDS       forget a reporter silent this long (env EXPIRE,\n"
"                             default 60); it is shown stale after half of it\n"
"      --backend auto|uring|epoll\n"
"                             event loop (env BACKEND, default auto: io_uring,\n"
"                             else epoll)\n"
"      --header-timeout SECONDS\n"
"                             time a client has from the first byte of a request\n"
"                             to its last (env HEADER_TIMEOUT, default 10)\n"
"      --idle-timeout SECONDS close keep-alive connections idle this long\n"
"                             (env IDLE_TIMEOUT, default 75)\n"
"      --max-reporters N      rows kept at most (env MAX_REPORTERS, default 100000)\n"
"      --check-config         print the effective configuration as JSON, exit\n"
"  -h, --help                 this text\n"
"  -V, --version              the version\n"
"\n"
"Exit status: 0 success, 1 runtime failure, 2 bad usage.\n";

static int apply(void *arg, int opt, const char *name, const char *val,
		 struct cfg_error *err)
{
	struct stats_config *cfg = arg;
	char listen[32];
	unsigned port;

	switch (opt) {
	case OPT_PORT:
		/* PORT, as container platforms set it, is the short form of
		 * LISTEN=0.0.0.0:PORT; LISTEN comes after it and wins. */
		if (cfg_parse_uint(name, val, 1, 65535, &port, err) < 0)
			return -EINVAL;
		snprintf(listen, sizeof(listen), "0.0.0.0:%u", port);
		return apply(cfg, OPT_LISTEN, name, listen, err);
	case OPT_LISTEN:
		if (snprintf(cfg->listen_str, sizeof(cfg->listen_str), "%s",
			     val) >= (int)sizeof(cfg->listen_str))
			return cfg_error_set(err, "%s: '%s' is too long", name,
					     val);
		return net_parse_hostport(name, val, 0, &cfg->listen, err);
	case OPT_EXPIRE:
		return cfg_parse_uint(name, val, 1, 7 * 86400, &cfg->expire_s,
				      err);
	case OPT_BACKEND:
		return cfg_parse_backend(name, val, &cfg->backend, err);
	case OPT_HEADER_TIMEOUT:
		return cfg_parse_uint(name, val, 1, 3600,
				      &cfg->header_timeout_s, err);
	case OPT_IDLE_TIMEOUT:
		return cfg_parse_uint(name, val, 1, 86400,
				      &cfg->idle_timeout_s, err);
	case OPT_MAX_REPORTERS:
		return cfg_parse_uint(name, val, 1, 10000000,
				      &cfg->max_reporters, err);
	}
	return cfg_error_set(err, "%s: unhandled option", name);
}

/* PORT before LISTEN: when both are set, LISTEN wins. */
static const struct cfg_env_var env_vars[] = {
	{ "PORT", OPT_PORT }, { "LISTEN", OPT_LISTEN }, { "EXPIRE", OPT_EXPIRE },
	{ "BACKEND", OPT_BACKEND }, { "HEADER_TIMEOUT", OPT_HEADER_TIMEOUT },
	{ "IDLE_TIMEOUT", OPT_IDLE_TIMEOUT }, { "MAX_REPORTERS", OPT_MAX_REPORTERS },
};

static const struct cfg_spec spec = {
	.program = PROG,
	.usage = usage,
	.shortopts = ":l:e:hV",
	.long_opts = long_opts,
	.env = env_vars,
	.nr_env = sizeof(env_vars) / sizeof(env_vars[0]),
	.check_config_opt = OPT_CHECK,
	.apply = apply,
};

static void print_config(const struct stats_config *cfg)
{
	char addr[NET_ADDRSTRLEN];

	printf("{\"listen\":\"%s\",\"expireSeconds\":%u,\"staleSeconds\":%.1f,"
	       "\"backend\":\"%s\",\"headerTimeoutSeconds\":%u,"
	       "\"idleTimeoutSeconds\":%u,\"maxReporters\":%u,"
	       "\"maxHeadBytes\":%u,\"maxBodyBytes\":%u,\"version\":\"%s\"}\n",
	       net_addr_str(&cfg->listen, 1, addr, sizeof(addr)),
	       cfg->expire_s, (double)cfg->stale_ms / 1000.0,
	       loop_backend_name(cfg->backend), cfg->header_timeout_s,
	       cfg->idle_timeout_s, cfg->max_reporters, cfg->max_head,
	       cfg->max_body, RINGHOLD_VERSION);
}

int main(int argc, char **argv)
{
	struct stats_config cfg = {
		.backend = LOOP_BACKEND_AUTO,
		.expire_s = 60,
		.header_timeout_s = 10,
		.idle_timeout_s = 75,
		.max_reporters = 100000,
		.max_head = 8192,
		.max_body = 65536,
	};
	struct cfg_error err = { "" };
	bool check = false;
	int ret;

	log_init(PROG);
	ret = apply(&cfg, OPT_LISTEN, "--listen", "0.0.0.0:8080", &err);
	if (!ret)
		ret = cfg_parse_args(&spec, &cfg, argc, argv, &check, &err);
	if (ret > 0)
		return 0;
	if (ret < 0) {
		fprintf(stderr, PROG ": %s\n", err.msg);
		return 2;
	}
	/* Stale after half the expiry: with the reporters' default 10 s
	 * interval and the default 60 s expiry, three missed reports. */
	cfg.stale_ms = (uint64_t)cfg.expire_s * 500;

	if (check) {
		print_config(&cfg);
		return 0;
	}
	ret = service_run(&cfg);
	return ret < 0 ? 1 : 0;
}
