/* SPDX-License-Identifier: MIT */
/*
 * tcp-server options.  Environment variables are those of the original tool
 * (INTERVAL is the idle timeout there, PORT the listening port), so its
 * manifests work unchanged; a flag always wins over its variable.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "config.h"
#include "proc.h"
#include "server.h"

static const char usage[] =
"Usage: tcp-server [OPTIONS]\n"
"Accepts and holds idle TCP connections, drops dead or silent ones, reports\n"
"its count.\n"
"\n"
"  -l, --listen HOST:PORT       listen address, repeatable (env LISTEN, a comma\n"
"                               list, or PORT for 0.0.0.0:PORT; default\n"
"                               0.0.0.0:10000)\n"
"  -t, --idle-timeout SECONDS   close a connection silent this long (env\n"
"                               INTERVAL; default 45; 0 never)\n"
"  -m, --max-connections N      accept at most N, refuse the rest (env\n"
"                               MAXCONNECTIONS; default 1000000)\n"
"  -s, --shards N               event loops (threads); 0 sizes them from\n"
"                               --max-connections and the descriptor limit\n"
"                               (env SHARDS; default 0)\n"
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
	OPT_CHECK_CONFIG = 256,
};

static const struct option long_opts[] = {
	{ "listen", required_argument, NULL, 'l' },
	{ "idle-timeout", required_argument, NULL, 't' },
	{ "max-connections", required_argument, NULL, 'm' },
	{ "shards", required_argument, NULL, 's' },
	{ "backend", required_argument, NULL, 'b' },
	{ "name", required_argument, NULL, 'n' },
	{ "report-url", required_argument, NULL, 'r' },
	{ "report-interval", required_argument, NULL, 'i' },
	{ "check-config", no_argument, NULL, OPT_CHECK_CONFIG },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

static int add_listen(struct server_config *cfg, const char *opt,
		      const char *val, struct cfg_error *err)
{
	if (cfg->nr_listen == SERVER_MAX_LISTEN)
		return cfg_error_set(err, "%s: at most %d listen addresses", opt,
				     SERVER_MAX_LISTEN);
	if (net_parse_hostport(opt, val, SERVER_DEFAULT_PORT,
			       &cfg->listen[cfg->nr_listen], err) < 0)
		return -EINVAL;
	cfg->nr_listen++;
	return 0;
}

static int add_listen_list(struct server_config *cfg, const char *opt,
			   const char *list, struct cfg_error *err)
{
	char buf[1024], *save = NULL, *tok;

	if (strlen(list) >= sizeof(buf))
		return cfg_error_set(err, "%s: value too long", opt);
	strcpy(buf, list);
	for (tok = strtok_r(buf, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save))
		if (add_listen(cfg, opt, tok, err) < 0)
			return -EINVAL;
	return 0;
}

static int set_string(char *dst, size_t size, const char *opt, const char *val,
		      struct cfg_error *err)
{
	if (strlen(val) >= size)
		return cfg_error_set(err, "%s: value longer than %zu bytes", opt,
				     size - 1);
	strcpy(dst, val);
	return 0;
}

/* One option, from the command line (opt "--x") or the environment (opt "X"). */
static int apply(struct server_config *cfg, int c, const char *opt,
		 const char *val, struct cfg_error *err)
{
	switch (c) {
	case 'l':
		return add_listen_list(cfg, opt, val, err);
	case 't':
		return cfg_parse_uint(opt, val, 0, 32767, &cfg->idle_timeout_s, err);
	case 'm':
		return cfg_parse_u64(opt, val, 1, 1ull << 32, &cfg->max_connections,
				     err);
	case 's':
		return cfg_parse_uint(opt, val, 0, 4096, &cfg->shards, err);
	case 'b':
		return cfg_parse_backend(opt, val, &cfg->backend, err);
	case 'n':
		if (!*val)
			return cfg_error_set(err, "%s: empty name", opt);
		return set_string(cfg->name, sizeof(cfg->name), opt, val, err);
	case 'r':
		if (strncmp(val, "http://", 7) && strncmp(val, "https://", 8))
			return cfg_error_set(err, "%s: '%s' is not an http:// or https:// URL",
					     opt, val);
		return set_string(cfg->report_url, sizeof(cfg->report_url), opt,
				  val, err);
	case 'i':
		return cfg_parse_uint(opt, val, 1, 86400, &cfg->report_interval_s,
				      err);
	}
	return cfg_error_set(err, "internal: unhandled option %d", c);
}

static int apply_env(struct server_config *cfg, struct cfg_error *err)
{
	static const struct {
		const char *env;
		int c;
	} vars[] = {
		{ "INTERVAL", 't' }, { "MAXCONNECTIONS", 'm' }, { "SHARDS", 's' },
		{ "BACKEND", 'b' }, { "NAME", 'n' }, { "REPORTURI", 'r' },
		{ "REPORTINTERVAL", 'i' },
	};
	const char *v;

	if ((v = cfg_env("LISTEN"))) {
		if (add_listen_list(cfg, "LISTEN", v, err) < 0)
			return -EINVAL;
	} else if ((v = cfg_env("PORT"))) {
		char addr[64];
		unsigned port;

		if (cfg_parse_uint("PORT", v, 1, 65535, &port, err) < 0)
			return -EINVAL;
		snprintf(addr, sizeof(addr), "0.0.0.0:%u", port);
		if (add_listen(cfg, "PORT", addr, err) < 0)
			return -EINVAL;
	}
	for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
		if ((v = cfg_env(vars[i].env)) &&
		    apply(cfg, vars[i].c, vars[i].env, v, err) < 0)
			return -EINVAL;
	return 0;
}

int server_config_parse(struct server_config *cfg, int argc, char **argv,
			struct cfg_error *err)
{
	bool listen_from_flags = false;
	char opt[64];
	int c, idx;

	memset(cfg, 0, sizeof(*cfg));
	cfg->idle_timeout_s = 45;
	cfg->max_connections = 1000000;
	cfg->report_interval_s = 10;
	cfg->backend = LOOP_BACKEND_AUTO;
	proc_hostname(cfg->name, sizeof(cfg->name));

	if (apply_env(cfg, err) < 0)
		return -EINVAL;

	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":l:t:m:s:b:n:r:i:hV", long_opts,
				&idx)) != -1) {
		switch (c) {
		case 'h':
			fputs(usage, stdout);
			return 1;
		case 'V':
			printf("tcp-server %s\n", RINGHOLD_VERSION);
			return 1;
		case OPT_CHECK_CONFIG:
			cfg->check_config = true;
			continue;
		case '?':
			if (optopt)
				return cfg_error_set(err, "unknown option '-%c' (see --help)",
						     optopt);
			return cfg_error_set(err, "unknown option '%s' (see --help)",
					     argv[optind - 1]);
		case ':':
			return cfg_error_set(err, "option '%s' needs a value",
					     argv[optind - 1]);
		}
		if (c == 'l' && !listen_from_flags) {
			cfg->nr_listen = 0;	/* flags replace LISTEN/PORT */
			listen_from_flags = true;
		}
		snprintf(opt, sizeof(opt), "--%s", long_opts[0].name);
		for (const struct option *o = long_opts; o->name; o++)
			if (o->val == c)
				snprintf(opt, sizeof(opt), "--%s", o->name);
		if (apply(cfg, c, opt, optarg, err) < 0)
			return -EINVAL;
	}
	if (optind < argc)
		return cfg_error_set(err, "unexpected argument '%s' (see --help)",
				     argv[optind]);
	if (!cfg->nr_listen) {
		char addr[32];

		snprintf(addr, sizeof(addr), "0.0.0.0:%d", SERVER_DEFAULT_PORT);
		if (add_listen(cfg, "--listen", addr, err) < 0)
			return -EINVAL;
	}
	return 0;
}

char *server_config_json(const struct server_config *cfg)
{
	json_t *doc = json_object(), *listen = json_array();
	char buf[NET_ADDRSTRLEN];
	char *s;

	for (unsigned i = 0; i < cfg->nr_listen; i++)
		json_array_append_new(listen, json_string(
			net_addr_str(&cfg->listen[i], 1, buf, sizeof(buf))));
	json_object_set_new(doc, "program", json_string("tcp-server"));
	json_object_set_new(doc, "listen", listen);
	json_object_set_new(doc, "idle_timeout_s", json_integer(cfg->idle_timeout_s));
	json_object_set_new(doc, "max_connections",
			    json_integer((json_int_t)cfg->max_connections));
	json_object_set_new(doc, "shards", json_integer(cfg->shards));
	json_object_set_new(doc, "backend",
			    json_string(loop_backend_name(cfg->backend)));
	json_object_set_new(doc, "name", json_string(cfg->name));
	json_object_set_new(doc, "report_url",
			    cfg->report_url[0] ? json_string(cfg->report_url)
					       : json_null());
	json_object_set_new(doc, "report_interval_s",
			    json_integer(cfg->report_interval_s));
	s = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(doc);
	return s;
}
