/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>

#include "check.h"
#include "net.h"

static const char *fmt(const struct net_addr *a)
{
	static char buf[NET_ADDRSTRLEN];

	return net_addr_str(a, 1, buf, sizeof(buf));
}

int main(void)
{
	struct cfg_error err;
	struct net_addr a, *list = NULL;
	size_t n = 0;

	CHECK_EQ(net_parse_hostport("--server", "127.0.0.1:8080", 0, &a, &err), 0);
	CHECK_STR(fmt(&a), "127.0.0.1:8080");
	CHECK_EQ(net_parse_hostport("--server", "127.0.0.2", 10000, &a, &err), 0);
	CHECK_STR(fmt(&a), "127.0.0.2:10000");
	CHECK_EQ(net_parse_hostport("--server", "[::1]:99", 0, &a, &err), 0);
	CHECK_STR(fmt(&a), "[::1]:99");
	CHECK_EQ(net_parse_hostport("--server", "localhost:7", 0, &a, &err), 0);
	CHECK_EQ(net_addr_port(&a), 7);
	CHECK(net_addr_is_loopback(&a));

	CHECK_EQ(net_parse_hostport("--server", "127.0.0.1", 0, &a, &err), -EINVAL);
	CHECK_CONTAINS(err.msg, "needs a port");
	CHECK_EQ(net_parse_hostport("--server", "127.0.0.1:0", 0, &a, &err), -EINVAL);
	CHECK_CONTAINS(err.msg, "--server");
	CHECK_EQ(net_parse_hostport("--server", "127.0.0.1:65536", 0, &a, &err), -EINVAL);
	CHECK_EQ(net_parse_hostport("--server", "127.0.0.1:x", 0, &a, &err), -EINVAL);
	CHECK_EQ(net_parse_hostport("--server", "::1:80", 0, &a, &err), -EINVAL);
	CHECK_CONTAINS(err.msg, "[ADDR]:PORT");
	CHECK_EQ(net_parse_hostport("--server", "[::1", 0, &a, &err), -EINVAL);
	CHECK_EQ(net_parse_hostport("--server", ":80", 0, &a, &err), -EINVAL);
	CHECK_EQ(net_parse_hostport("--server", "no-such-host.invalid:80", 0, &a, &err),
		 -EINVAL);
	CHECK_CONTAINS(err.msg, "cannot resolve");

	CHECK_EQ(net_parse_source("--source", "127.0.0.2-127.0.0.9", &list, &n, &err), 0);
	CHECK_EQ(n, 8);
	CHECK_STR(net_addr_str(&list[7], 0, (char[64]){ 0 }, 64), "127.0.0.9");
	CHECK_EQ(net_parse_source("--source", "10.0.0.255-10.0.1.1", &list, &n, &err), 0);
	CHECK_EQ(n, 11);
	CHECK_STR(net_addr_str(&list[9], 0, (char[64]){ 0 }, 64), "10.0.1.0");
	CHECK_EQ(net_parse_source("--source", "::1", &list, &n, &err), 0);
	CHECK_EQ(n, 12);
	CHECK_EQ(net_parse_source("--source", "127.0.0.9-127.0.0.2", &list, &n, &err),
		 -EINVAL);
	CHECK_CONTAINS(err.msg, "ends before it starts");
	CHECK_EQ(net_parse_source("--source", "10.0.0.0-10.2.0.0", &list, &n, &err),
		 -EINVAL);
	CHECK_CONTAINS(err.msg, "65536");
	CHECK_EQ(net_parse_source("--source", "300.1.1.1", &list, &n, &err), -EINVAL);
	CHECK_EQ(net_parse_source("--source", "-", &list, &n, &err), -EINVAL);
	CHECK_EQ(n, 12);
	free(list);
	return 0;
}
