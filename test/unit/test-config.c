/* SPDX-License-Identifier: MIT */
/* Options and environment of tcp-server and tcp-client: good and bad values,
 * and flags winning over variables. */
#include <errno.h>
#include <stdlib.h>

#include "../../client/client.h"
#include "../../server/server.h"
#include "check.h"

#define ARGV(...) ((char *[]){ "prog", __VA_ARGS__, NULL })
#define ARGC(...) ((int)(sizeof((char *[]){ "prog", __VA_ARGS__ }) / sizeof(char *)))
#define SERVER_PARSE(cfg, err, ...) \
	server_config_parse(cfg, ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), err)
#define CLIENT_PARSE(cfg, err, ...) \
	client_config_parse(cfg, ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), err)

static const char *const all_env[] = {
	"LISTEN", "PORT", "INTERVAL", "MAXCONNECTIONS", "SHARDS", "BACKEND",
	"NAME", "REPORTURI", "REPORTINTERVAL", "SERVER", "CLIENTCOUNT", "RATE",
	"MAXINFLIGHT", "SOURCES", "CONNECTTIMEOUT", "DURATION", "RECVLOWAT",
};

static void clear_env(void)
{
	for (size_t i = 0; i < sizeof(all_env) / sizeof(all_env[0]); i++)
		unsetenv(all_env[i]);
}

static const char *addr(const struct net_addr *a)
{
	static char buf[NET_ADDRSTRLEN];

	return net_addr_str(a, 1, buf, sizeof(buf));
}

static void test_server(void)
{
	struct server_config cfg;
	struct cfg_error err;

	clear_env();
	CHECK_EQ(SERVER_PARSE(&cfg, &err, "--shards", "0"), 0);
	CHECK_EQ(cfg.nr_listen, 1);
	CHECK_STR(addr(&cfg.listen[0]), "0.0.0.0:10000");
	CHECK_EQ(cfg.idle_timeout_s, 45);
	CHECK_EQ(cfg.recv_lowat, 1);
	CHECK_EQ(cfg.report_interval_s, 10);
	CHECK_EQ(cfg.backend, LOOP_BACKEND_AUTO);

	/* The original's variables. */
	setenv("PORT", "5000", 1);
	setenv("INTERVAL", "30", 1);
	setenv("REPORTURI", "http://stats:8080/api/ServerStatistics", 1);
	setenv("BACKEND", "epoll", 1);
	setenv("RECVLOWAT", "3", 1);
	CHECK_EQ(SERVER_PARSE(&cfg, &err, "--name", "a"), 0);
	CHECK_EQ(cfg.recv_lowat, 3);
	CHECK_STR(addr(&cfg.listen[0]), "0.0.0.0:5000");
	CHECK_EQ(cfg.idle_timeout_s, 30);
	CHECK_STR(cfg.report_url, "http://stats:8080/api/ServerStatistics");
	CHECK_EQ(cfg.backend, LOOP_BACKEND_EPOLL);

	/* Flags win; the first --listen replaces PORT/LISTEN. */
	setenv("LISTEN", "127.0.0.1:1,127.0.0.1:2", 1);
	CHECK_EQ(SERVER_PARSE(&cfg, &err, "-t", "5", "--backend", "uring"), 0);
	CHECK_EQ(cfg.nr_listen, 2);
	CHECK_EQ(cfg.idle_timeout_s, 5);
	CHECK_EQ(cfg.backend, LOOP_BACKEND_URING);
	CHECK_EQ(SERVER_PARSE(&cfg, &err, "--listen", "127.0.0.1:7",
			      "--listen", "127.0.0.1:8"), 0);
	CHECK_EQ(cfg.nr_listen, 2);
	CHECK_STR(addr(&cfg.listen[1]), "127.0.0.1:8");
	clear_env();

	/* Bad values name the option. */
	CHECK_EQ(SERVER_PARSE(&cfg, &err, "--idle-timeout", "ten"), -EINVAL);
	CHECK_CONTAINS(err.msg, "--idle-timeout");
	CHECK_EQ(SERVER_PARSE(&cfg, &err, "--idle-timeout", "-1"), -EINVAL);
	CHECK_EQ(SERVER_PARSE(&cfg, &err, "--max-connections", "0"), -EINVAL);
	CHECK_CONTAINS(err.msg, "out of range");
	CHECK_EQ(SERVER_PARSE(&cfg, &err, "--recv-lowat", "0"), -EINVAL);
	CHECK_CONTAINS(err.msg, "--recv-lowat");
	CHECK_EQ(SERVER_PARSE(&cfg, &err, "--backend", "kqueue"), -EINVAL);
	CHECK_CONTAINS(err.msg, "kqueue");
	CHECK_EQ(SERVER_PARSE(&cfg, &err, "--report-url", "stats:8080"), -EINVAL);
	CHECK_CONTAINS(err.msg, "--report-url");
	CHECK_EQ(SERVER_PARSE(&cfg, &err, "--frobnicate"), -EINVAL);
	CHECK_CONTAINS(err.msg, "unknown option '--frobnicate'");
	CHECK_EQ(SERVER_PARSE(&cfg, &err, "--listen"), -EINVAL);
	CHECK_CONTAINS(err.msg, "needs a value");
	CHECK_EQ(SERVER_PARSE(&cfg, &err, "stray"), -EINVAL);
	CHECK_CONTAINS(err.msg, "unexpected argument 'stray'");
	setenv("INTERVAL", "soon", 1);
	CHECK_EQ(SERVER_PARSE(&cfg, &err, "--name", "x"), -EINVAL);
	CHECK_CONTAINS(err.msg, "INTERVAL");
	clear_env();
	CHECK_EQ(SERVER_PARSE(&cfg, &err, "--check-config"), 0);
	CHECK(cfg.check_config);
}

static void test_client(void)
{
	struct client_config cfg;
	struct cfg_error err;

	clear_env();
	CHECK_EQ(CLIENT_PARSE(&cfg, &err, "--server", "127.0.0.1:9"), 0);
	CHECK_EQ(cfg.connections, 10000);
	CHECK_EQ(cfg.interval_s, 15);
	CHECK_EQ(cfg.per_tuple, 30000);
	client_config_free(&cfg);

	/* SERVER may omit the port: PORT supplies it. */
	setenv("SERVER", "127.0.0.1,127.0.0.2:7", 1);
	setenv("PORT", "5000", 1);
	setenv("CLIENTCOUNT", "123", 1);
	setenv("INTERVAL", "4", 1);
	setenv("SOURCES", "127.0.0.10-127.0.0.12", 1);
	CHECK_EQ(CLIENT_PARSE(&cfg, &err, "--json"), 0);
	CHECK_EQ(cfg.nr_servers, 2);
	CHECK_STR(addr(&cfg.servers[0]), "127.0.0.1:5000");
	CHECK_STR(addr(&cfg.servers[1]), "127.0.0.2:7");
	CHECK_EQ(cfg.connections, 123);
	CHECK_EQ(cfg.interval_s, 4);
	CHECK_EQ(cfg.nr_sources, 3);
	CHECK(cfg.json);
	client_config_free(&cfg);

	CHECK_EQ(CLIENT_PARSE(&cfg, &err, "-c", "7", "--server", "127.0.0.3:1",
			      "--source", "127.0.0.20"), 0);
	CHECK_EQ(cfg.connections, 7);
	CHECK_EQ(cfg.nr_servers, 1);
	CHECK_EQ(cfg.nr_sources, 1);
	client_config_free(&cfg);
	clear_env();

	CHECK_EQ(CLIENT_PARSE(&cfg, &err, "--connections", "10"), -EINVAL);
	CHECK_CONTAINS(err.msg, "no server");
	client_config_free(&cfg);
	CHECK_EQ(CLIENT_PARSE(&cfg, &err, "-s", "127.0.0.1:1", "--rate", "fast"),
		 -EINVAL);
	CHECK_CONTAINS(err.msg, "--rate");
	client_config_free(&cfg);
	CHECK_EQ(CLIENT_PARSE(&cfg, &err, "-s", "127.0.0.1:1", "--per-tuple", "70000"),
		 -EINVAL);
	CHECK_CONTAINS(err.msg, "64512");
	client_config_free(&cfg);
	CHECK_EQ(CLIENT_PARSE(&cfg, &err, "-s", "127.0.0.1:1", "--source", "1.2.3"),
		 -EINVAL);
	CHECK_CONTAINS(err.msg, "--source");
	client_config_free(&cfg);
	CHECK_EQ(CLIENT_PARSE(&cfg, &err, "-s", "127.0.0.1:1", "--interval", "0"),
		 -EINVAL);
	client_config_free(&cfg);
	setenv("CLIENTCOUNT", "many", 1);
	CHECK_EQ(CLIENT_PARSE(&cfg, &err, "-s", "127.0.0.1:1"), -EINVAL);
	CHECK_CONTAINS(err.msg, "CLIENTCOUNT");
	client_config_free(&cfg);
	clear_env();
}

static void test_plan(void)
{
	struct client_config cfg;
	struct cfg_error err;
	struct plan plan;
	uint64_t sum;

	clear_env();
	/* 30,000 fits one tuple exactly; 30,001 does not. */
	CHECK_EQ(CLIENT_PARSE(&cfg, &err, "-s", "127.0.0.1:1", "-c", "30000"), 0);
	CHECK_EQ(plan_build(&cfg, &plan, &err), 0);
	CHECK_EQ(plan.nr_tuples, 1);
	CHECK_EQ(plan.tuples[0].target, 30000);
	CHECK(plan.tuples[0].src == NULL);
	plan_free(&plan);
	cfg.connections = 30001;
	CHECK_EQ(plan_build(&cfg, &plan, &err), -ERANGE);
	CHECK_CONTAINS(err.msg, "do not fit");
	CHECK_CONTAINS(err.msg, "--source");
	client_config_free(&cfg);

	/* 3 sources x 2 servers, 100,001 connections: even shares. */
	CHECK_EQ(CLIENT_PARSE(&cfg, &err, "-s", "127.0.0.1:1", "-s", "127.0.0.1:2",
			      "-a", "127.0.0.2-127.0.0.4", "-c", "100001"), 0);
	CHECK_EQ(plan_build(&cfg, &plan, &err), 0);
	CHECK_EQ(plan.nr_tuples, 6);
	sum = 0;
	for (size_t i = 0; i < plan.nr_tuples; i++) {
		CHECK(plan.tuples[i].target == 16666 || plan.tuples[i].target == 16667);
		CHECK(plan.tuples[i].src == &cfg.sources[i / 2]);
		CHECK(plan.tuples[i].dst == &cfg.servers[i % 2]);
		sum += plan.tuples[i].target;
	}
	CHECK_EQ(sum, 100001);
	/* Shard shares add up to each tuple's target and differ by at most one. */
	for (size_t t = 0; t < plan.nr_tuples; t++) {
		uint64_t s_sum = 0, lo = UINT64_MAX, hi = 0;

		for (unsigned s = 0; s < 7; s++) {
			uint64_t v = plan_share(&plan, t, s, 7);

			s_sum += v;
			lo = v < lo ? v : lo;
			hi = v > hi ? v : hi;
		}
		CHECK_EQ(s_sum, plan.tuples[t].target);
		CHECK(hi - lo <= 1);
	}
	plan_free(&plan);
	cfg.connections = 6 * 30000 + 1;
	CHECK_EQ(plan_build(&cfg, &plan, &err), -ERANGE);
	CHECK_CONTAINS(err.msg, "180000");
	/* A bigger --per-tuple lets it fit. */
	cfg.per_tuple = 40000;
	CHECK_EQ(plan_build(&cfg, &plan, &err), 0);
	plan_free(&plan);
	client_config_free(&cfg);
}

int main(void)
{
	test_server();
	test_client();
	test_plan();
	return 0;
}
