/* SPDX-License-Identifier: MIT */
/*
 * tcp-client options.  SERVER, PORT, CLIENTCOUNT and INTERVAL are the
 * original tool's variables, so its manifests work unchanged; a flag always
 * wins over its variable.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "client.h"
#include "config.h"
#include "proc.h"

static const char usage[] =
"Usage: tcp-client [OPTIONS]\n"
"Opens N TCP connections at a controlled rate, keeps each alive with a small\n"
"periodic write, reconnects what drops, and reports its count.\n"
"\n"
"  -s, --server HOST[:PORT]     server to connect to, repeatable (env SERVER, a\n"
"                               comma list; PORT gives the default port, 10000)\n"
"  -c, --connections N          connections to hold (env CLIENTCOUNT; default\n"
"                               10000)\n"
"  -k, --interval SECONDS       one keepalive byte per connection per period,\n"
"                               spread over the period (env INTERVAL; default 15)\n"
"  -R, --rate N                 new connections per second, 0 unlimited (env\n"
"                               RATE; default 5000)\n"
"      --max-inflight N         connects in progress at once (env MAXINFLIGHT;\n"
"                               default 1024)\n"
"  -a, --source ADDR|A-B        source address or IPv4 range, repeatable (env\n"
"                               SOURCES, a comma list); bound with\n"
"                               IP_BIND_ADDRESS_NO_PORT\n"
"      --per-tuple N            connections planned per (source, server) pair\n"
"                               (default 30000: connect() slows past ~32k; at\n"
"                               most 64512, the port range)\n"
"      --connect-timeout SECONDS\n"
"                               give up on a connect after this (env\n"
"                               CONNECTTIMEOUT; default 10)\n"
"  -d, --duration SECONDS       run this long, 0 forever (env DURATION; default 0)\n"
"  -j, --json                   print a JSON summary on stdout at exit\n"
"      --shards N               event loops (threads); 0 sizes them from\n"
"                               --connections (env SHARDS; default 0)\n"
"  -b, --backend auto|uring|epoll\n"
"                               I/O engine (env BACKEND; default auto: io_uring,\n"
"                               else epoll).  epoll uses ordinary descriptors,\n"
"                               so it cannot hold more than RLIMIT_NOFILE\n"
"  -n, --name NAME              name in reports (env NAME; default hostname)\n"
"  -r, --report-url URL         POST reports to the stats service (env REPORTURI)\n"
"  -i, --report-interval SECONDS\n"
"                               report at least this often (env REPORTINTERVAL;\n"
"                               default 10)\n"
"      --check-config           print the effective configuration as JSON, exit\n"
"  -h, --help                   this text\n"
"  -V, --version                the version\n";

enum {
	OPT_MAX_INFLIGHT = 256,
	OPT_PER_TUPLE,
	OPT_CONNECT_TIMEOUT,
	OPT_SHARDS,
	OPT_CHECK_CONFIG,
	OPT_PORT,		/* env PORT only */
};

static const struct option long_opts[] = {
	{ "server", required_argument, NULL, 's' },
	{ "connections", required_argument, NULL, 'c' },
	{ "interval", required_argument, NULL, 'k' },
	{ "rate", required_argument, NULL, 'R' },
	{ "max-inflight", required_argument, NULL, OPT_MAX_INFLIGHT },
	{ "source", required_argument, NULL, 'a' },
	{ "per-tuple", required_argument, NULL, OPT_PER_TUPLE },
	{ "connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT },
	{ "duration", required_argument, NULL, 'd' },
	{ "json", no_argument, NULL, 'j' },
	{ "shards", required_argument, NULL, OPT_SHARDS },
	{ "backend", required_argument, NULL, 'b' },
	{ "name", required_argument, NULL, 'n' },
	{ "report-url", required_argument, NULL, 'r' },
	{ "report-interval", required_argument, NULL, 'i' },
	{ "check-config", no_argument, NULL, OPT_CHECK_CONFIG },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

struct client_parse {
	struct client_config *cfg;
	uint16_t default_port;
};

static int add_servers(struct client_parse *p, const char *opt,
		       const char *list, struct cfg_error *err)
{
	struct client_config *cfg = p->cfg;
	char buf[2048], *save = NULL, *tok;

	if (strlen(list) >= sizeof(buf))
		return cfg_error_set(err, "%s: value too long", opt);
	strcpy(buf, list);
	for (tok = strtok_r(buf, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
		if (cfg->nr_servers == CLIENT_MAX_SERVERS)
			return cfg_error_set(err, "%s: at most %d servers", opt,
					     CLIENT_MAX_SERVERS);
		if (net_parse_hostport(opt, tok, p->default_port,
				       &cfg->servers[cfg->nr_servers], err) < 0)
			return -EINVAL;
		cfg->nr_servers++;
	}
	return 0;
}

static int add_sources(struct client_parse *p, const char *opt,
		       const char *list, struct cfg_error *err)
{
	char buf[2048], *save = NULL, *tok;

	if (strlen(list) >= sizeof(buf))
		return cfg_error_set(err, "%s: value too long", opt);
	strcpy(buf, list);
	for (tok = strtok_r(buf, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save))
		if (net_parse_source(opt, tok, &p->cfg->sources,
				     &p->cfg->nr_sources, err) < 0)
			return -EINVAL;
	return 0;
}

static int apply(void *arg, int c, const char *opt, const char *val,
		 struct cfg_error *err)
{
	struct client_parse *p = arg;
	struct client_config *cfg = p->cfg;
	unsigned port;

	switch (c) {
	case OPT_PORT:
		if (cfg_parse_uint(opt, val, 1, 65535, &port, err) < 0)
			return -EINVAL;
		p->default_port = (uint16_t)port;
		return 0;
	case 's':
		return add_servers(p, opt, val, err);
	case 'c':
		return cfg_parse_u64(opt, val, 1, 100000000, &cfg->connections, err);
	case 'k':
		return cfg_parse_uint(opt, val, 1, 86400, &cfg->interval_s, err);
	case 'R':
		return cfg_parse_uint(opt, val, 0, 100000000, &cfg->rate, err);
	case OPT_MAX_INFLIGHT:
		return cfg_parse_uint(opt, val, 1, 1000000, &cfg->max_inflight, err);
	case 'a':
		return add_sources(p, opt, val, err);
	case OPT_PER_TUPLE:
		return cfg_parse_uint(opt, val, 1, CLIENT_MAX_PER_TUPLE,
				      &cfg->per_tuple, err);
	case OPT_CONNECT_TIMEOUT:
		return cfg_parse_uint(opt, val, 1, 3600, &cfg->connect_timeout_s, err);
	case 'd':
		return cfg_parse_uint(opt, val, 0, 100000000, &cfg->duration_s, err);
	case 'j':
		if (!val) {
			cfg->json = true;
			return 0;
		}
		return cfg_parse_bool(opt, val, &cfg->json, err);
	case OPT_SHARDS:
		return cfg_parse_uint(opt, val, 0, 4096, &cfg->shards, err);
	case 'b':
		return cfg_parse_backend(opt, val, &cfg->backend, err);
	case 'n':
		if (!*val)
			return cfg_error_set(err, "%s: empty name", opt);
		return cfg_set_string(cfg->name, sizeof(cfg->name), opt, val, err);
	case 'r':
		return cfg_set_url(cfg->report_url, sizeof(cfg->report_url), opt,
				   val, err);
	case 'i':
		return cfg_parse_uint(opt, val, 1, 86400, &cfg->report_interval_s,
				      err);
	}
	return cfg_error_set(err, "internal: unhandled option %d", c);
}

static void reset_list(void *arg, int c)
{
	struct client_config *cfg = ((struct client_parse *)arg)->cfg;

	/* The first --server / --source replaces SERVER / SOURCES. */
	if (c == 's')
		cfg->nr_servers = 0;
	if (c == 'a') {
		free(cfg->sources);
		cfg->sources = NULL;
		cfg->nr_sources = 0;
	}
}

/* PORT first: it is the default port of the SERVER entries. */
static const struct cfg_env_var env_vars[] = {
	{ "PORT", OPT_PORT }, { "SERVER", 's' }, { "CLIENTCOUNT", 'c' },
	{ "INTERVAL", 'k' }, { "RATE", 'R' }, { "MAXINFLIGHT", OPT_MAX_INFLIGHT },
	{ "SOURCES", 'a' }, { "CONNECTTIMEOUT", OPT_CONNECT_TIMEOUT },
	{ "DURATION", 'd' }, { "SHARDS", OPT_SHARDS }, { "BACKEND", 'b' },
	{ "NAME", 'n' }, { "REPORTURI", 'r' }, { "REPORTINTERVAL", 'i' },
};

static const struct cfg_spec spec = {
	.program = "tcp-client",
	.usage = usage,
	.shortopts = ":s:c:k:R:a:d:jb:n:r:i:hV",
	.long_opts = long_opts,
	.env = env_vars,
	.nr_env = sizeof(env_vars) / sizeof(env_vars[0]),
	.check_config_opt = OPT_CHECK_CONFIG,
	.apply = apply,
	.reset_list = reset_list,
};

int client_config_parse(struct client_config *cfg, int argc, char **argv,
			struct cfg_error *err)
{
	struct client_parse p = { .cfg = cfg, .default_port = CLIENT_DEFAULT_PORT };
	int ret;

	memset(cfg, 0, sizeof(*cfg));
	cfg->connections = 10000;
	cfg->interval_s = 15;
	cfg->rate = 5000;
	cfg->max_inflight = 1024;
	cfg->per_tuple = CLIENT_DEFAULT_PER_TUPLE;
	cfg->connect_timeout_s = 10;
	cfg->report_interval_s = 10;
	cfg->backend = LOOP_BACKEND_AUTO;
	proc_hostname(cfg->name, sizeof(cfg->name));

	ret = cfg_parse_args(&spec, &p, argc, argv, &cfg->check_config, err);
	if (ret)
		return ret;
	if (!cfg->nr_servers)
		return cfg_error_set(err, "no server given: use --server HOST:PORT "
				     "(or env SERVER)");
	return 0;
}

void client_config_free(struct client_config *cfg)
{
	free(cfg->sources);
	cfg->sources = NULL;
	cfg->nr_sources = 0;
}

char *client_config_json(const struct client_config *cfg)
{
	json_t *doc = json_object(), *servers = json_array(), *sources = json_array();
	char buf[NET_ADDRSTRLEN];
	char *s;

	for (unsigned i = 0; i < cfg->nr_servers; i++)
		json_array_append_new(servers, json_string(
			net_addr_str(&cfg->servers[i], 1, buf, sizeof(buf))));
	for (size_t i = 0; i < cfg->nr_sources; i++)
		json_array_append_new(sources, json_string(
			net_addr_str(&cfg->sources[i], 0, buf, sizeof(buf))));
	json_object_set_new(doc, "program", json_string("tcp-client"));
	json_object_set_new(doc, "servers", servers);
	json_object_set_new(doc, "sources", sources);
	json_object_set_new(doc, "connections", json_integer((json_int_t)cfg->connections));
	json_object_set_new(doc, "interval_s", json_integer(cfg->interval_s));
	json_object_set_new(doc, "rate", json_integer(cfg->rate));
	json_object_set_new(doc, "max_inflight", json_integer(cfg->max_inflight));
	json_object_set_new(doc, "per_tuple", json_integer(cfg->per_tuple));
	json_object_set_new(doc, "connect_timeout_s", json_integer(cfg->connect_timeout_s));
	json_object_set_new(doc, "duration_s", json_integer(cfg->duration_s));
	json_object_set_new(doc, "shards", json_integer(cfg->shards));
	json_object_set_new(doc, "backend", json_string(loop_backend_name(cfg->backend)));
	json_object_set_new(doc, "json", json_boolean(cfg->json));
	json_object_set_new(doc, "name", json_string(cfg->name));
	json_object_set_new(doc, "report_url",
			    cfg->report_url[0] ? json_string(cfg->report_url) : json_null());
	json_object_set_new(doc, "report_interval_s", json_integer(cfg->report_interval_s));
	s = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(doc);
	return s;
}
