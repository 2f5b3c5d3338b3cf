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
"      --recv-lowat BYTES       read a connection only once this many bytes\n"
"                               wait (SO_RCVLOWAT; env RECVLOWAT; default 1).\n"
"                               With 1-byte keepalives every K seconds a live\n"
"                               connection is seen every BYTES x K seconds:\n"
"                               keep that below --idle-timeout\n"
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
	OPT_RECV_LOWAT,
};

static const struct option long_opts[] = {
	{ "listen", required_argument, NULL, 'l' },
	{ "idle-timeout", required_argument, NULL, 't' },
	{ "max-connections", required_argument, NULL, 'm' },
	{ "recv-lowat", required_argument, NULL, OPT_RECV_LOWAT },
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

/* One option, from the command line (opt "--x") or the environment (opt "X"). */
static int apply(void *arg, int c, const char *opt, const char *val,
		 struct cfg_error *err)
{
	struct server_config *cfg = arg;

	switch (c) {
	case 'l':
		return add_listen_list(cfg, opt, val, err);
	case 't':
		return cfg_parse_uint(opt, val, 0, 32767, &cfg->idle_timeout_s, err);
	case 'm':
		cfg->max_connections_set = true;
		return cfg_parse_u64(opt, val, 1, 1ull << 32, &cfg->max_connections,
				     err);
	case OPT_RECV_LOWAT:
		return cfg_parse_uint(opt, val, 1, 65536, &cfg->recv_lowat, err);
	case 's':
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

/* PORT is a shortcut for LISTEN=0.0.0.0:PORT, as in the original. */
static int apply_port(void *arg, int c, const char *opt, const char *val,
		      struct cfg_error *err)
{
	struct server_config *cfg = arg;
	char addr[64];
	unsigned port;

	if (c != 'P')
		return apply(arg, c, opt, val, err);
	if (cfg->nr_listen)
		return 0;	/* LISTEN wins */
	if (cfg_parse_uint(opt, val, 1, 65535, &port, err) < 0)
		return -EINVAL;
	snprintf(addr, sizeof(addr), "0.0.0.0:%u", port);
	return add_listen(cfg, opt, addr, err);
}

static void reset_list(void *arg, int c)
{
	struct server_config *cfg = arg;

	if (c == 'l')
		cfg->nr_listen = 0;	/* --listen replaces LISTEN/PORT */
}

static const struct cfg_env_var env_vars[] = {
	{ "LISTEN", 'l' }, { "PORT", 'P' }, { "INTERVAL", 't' },
	{ "MAXCONNECTIONS", 'm' }, { "RECVLOWAT", OPT_RECV_LOWAT },
	{ "SHARDS", 's' }, { "BACKEND", 'b' }, { "NAME", 'n' },
	{ "REPORTURI", 'r' }, { "REPORTINTERVAL", 'i' },
};

static const struct cfg_spec spec = {
	.program = "tcp-server",
	.usage = usage,
	.shortopts = ":l:t:m:s:b:n:r:i:hV",
	.long_opts = long_opts,
	.env = env_vars,
	.nr_env = sizeof(env_vars) / sizeof(env_vars[0]),
	.check_config_opt = OPT_CHECK_CONFIG,
	.apply = apply_port,
	.reset_list = reset_list,
};

int server_config_parse(struct server_config *cfg, int argc, char **argv,
			struct cfg_error *err)
{
	int ret;

	memset(cfg, 0, sizeof(*cfg));
	cfg->idle_timeout_s = 45;
	cfg->recv_lowat = 1;
	cfg->max_connections = 1000000;
	cfg->report_interval_s = 10;
	cfg->backend = LOOP_BACKEND_AUTO;
	proc_hostname(cfg->name, sizeof(cfg->name));

	ret = cfg_parse_args(&spec, cfg, argc, argv, &cfg->check_config, err);
	if (ret)
		return ret;
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
	json_object_set_new(doc, "recv_lowat", json_integer(cfg->recv_lowat));
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
