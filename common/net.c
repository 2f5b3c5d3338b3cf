/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "net.h"

static int parse_port(const char *opt, const char *str, const char *p,
		      uint16_t *port, struct cfg_error *err)
{
	uint64_t v;
	struct cfg_error tmp;

	if (cfg_parse_u64(opt, p, 1, 65535, &v, &tmp) < 0)
		return cfg_error_set(err, "%s: '%s' has no valid port (1-65535)",
				     opt, str);
	*port = (uint16_t)v;
	return 0;
}

int net_parse_hostport(const char *opt, const char *str, uint16_t default_port,
		       struct net_addr *out, struct cfg_error *err)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM };
	struct addrinfo *res = NULL, *ai, *pick = NULL;
	char host[256];
	const char *colon;
	uint16_t port = default_port;
	size_t hlen;
	int ret;

	if (!str || !*str)
		return cfg_error_set(err, "%s: empty address", opt);
	if (str[0] == '[') {
		const char *close = strchr(str, ']');

		if (!close)
			return cfg_error_set(err, "%s: '%s' lacks ']'", opt, str);
		hlen = (size_t)(close - str - 1);
		if (hlen >= sizeof(host))
			return cfg_error_set(err, "%s: '%s' is too long", opt, str);
		memcpy(host, str + 1, hlen);
		host[hlen] = '\0';
		if (close[1] == ':') {
			if (parse_port(opt, str, close + 2, &port, err) < 0)
				return -EINVAL;
		} else if (close[1]) {
			return cfg_error_set(err, "%s: '%s' is not [HOST]:PORT",
					     opt, str);
		}
	} else {
		colon = strrchr(str, ':');
		if (colon && strchr(str, ':') != colon)
			return cfg_error_set(err, "%s: write IPv6 as [ADDR]:PORT, not '%s'",
					     opt, str);
		hlen = colon ? (size_t)(colon - str) : strlen(str);
		if (hlen >= sizeof(host))
			return cfg_error_set(err, "%s: '%s' is too long", opt, str);
		memcpy(host, str, hlen);
		host[hlen] = '\0';
		if (colon && parse_port(opt, str, colon + 1, &port, err) < 0)
			return -EINVAL;
	}
	if (!port)
		return cfg_error_set(err, "%s: '%s' needs a port (HOST:PORT)",
				     opt, str);
	if (!host[0])
		return cfg_error_set(err, "%s: '%s' has no host", opt, str);

	ret = getaddrinfo(host, NULL, &hints, &res);
	if (ret)
		return cfg_error_set(err, "%s: cannot resolve '%s': %s", opt,
				     host, gai_strerror(ret));
	for (ai = res; ai; ai = ai->ai_next) {
		if (ai->ai_family == AF_INET) {
			pick = ai;
			break;
		}
		if (!pick && ai->ai_family == AF_INET6)
			pick = ai;
	}
	if (!pick) {
		freeaddrinfo(res);
		return cfg_error_set(err, "%s: '%s' has no IPv4 or IPv6 address",
				     opt, host);
	}
	memset(out, 0, sizeof(*out));
	memcpy(&out->ss, pick->ai_addr, pick->ai_addrlen);
	out->len = pick->ai_addrlen;
	if (pick->ai_family == AF_INET)
		((struct sockaddr_in *)&out->ss)->sin_port = htons(port);
	else
		((struct sockaddr_in6 *)&out->ss)->sin6_port = htons(port);
	freeaddrinfo(res);
	return 0;
}

static int append_addr(struct net_addr **list, size_t *n,
		       const struct net_addr *a)
{
	struct net_addr *grown = realloc(*list, (*n + 1) * sizeof(**list));

	if (!grown)
		return -ENOMEM;
	grown[*n] = *a;
	*list = grown;
	(*n)++;
	return 0;
}

int net_parse_source(const char *opt, const char *str, struct net_addr **list,
		     size_t *n, struct cfg_error *err)
{
	struct net_addr a = { 0 };
	struct sockaddr_in *sin = (struct sockaddr_in *)&a.ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&a.ss;
	char first[INET6_ADDRSTRLEN];
	const char *dash = strchr(str, '-');
	struct in_addr lo, hi;
	size_t flen = dash ? (size_t)(dash - str) : strlen(str);

	if (flen == 0 || flen >= sizeof(first))
		return cfg_error_set(err, "%s: '%s' is not an address or A-B range",
				     opt, str);
	memcpy(first, str, flen);
	first[flen] = '\0';

	if (!dash && inet_pton(AF_INET6, first, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		a.len = sizeof(*sin6);
		return append_addr(list, n, &a) ? cfg_error_set(err, "out of memory") : 0;
	}
	if (inet_pton(AF_INET, first, &lo) != 1)
		return cfg_error_set(err, "%s: '%s' is not an IPv4/IPv6 address",
				     opt, first);
	hi = lo;
	if (dash && inet_pton(AF_INET, dash + 1, &hi) != 1)
		return cfg_error_set(err, "%s: '%s' is not an IPv4 address",
				     opt, dash + 1);
	if (ntohl(hi.s_addr) < ntohl(lo.s_addr))
		return cfg_error_set(err, "%s: range '%s' ends before it starts",
				     opt, str);
	if (ntohl(hi.s_addr) - ntohl(lo.s_addr) >= 65536)
		return cfg_error_set(err, "%s: range '%s' has more than 65536 addresses",
				     opt, str);
	sin->sin_family = AF_INET;
	a.len = sizeof(*sin);
	for (uint32_t ip = ntohl(lo.s_addr); ip <= ntohl(hi.s_addr); ip++) {
		sin->sin_addr.s_addr = htonl(ip);
		if (append_addr(list, n, &a))
			return cfg_error_set(err, "out of memory");
		if (ip == UINT32_MAX)
			break;
	}
	return 0;
}

const char *net_addr_str(const struct net_addr *a, int with_port, char *buf,
			 size_t len)
{
	char ip[INET6_ADDRSTRLEN] = "?";

	if (a->ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const void *)&a->ss;

		inet_ntop(AF_INET6, &s->sin6_addr, ip, sizeof(ip));
		if (with_port)
			snprintf(buf, len, "[%s]:%u", ip, ntohs(s->sin6_port));
		else
			snprintf(buf, len, "%s", ip);
	} else {
		const struct sockaddr_in *s = (const void *)&a->ss;

		inet_ntop(AF_INET, &s->sin_addr, ip, sizeof(ip));
		if (with_port)
			snprintf(buf, len, "%s:%u", ip, ntohs(s->sin_port));
		else
			snprintf(buf, len, "%s", ip);
	}
	return buf;
}

uint16_t net_addr_port(const struct net_addr *a)
{
	if (a->ss.ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port);
	return ntohs(((const struct sockaddr_in *)&a->ss)->sin_port);
}

int net_addr_is_loopback(const struct net_addr *a)
{
	if (a->ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const void *)&a->ss;

		return IN6_IS_ADDR_LOOPBACK(&s->sin6_addr);
	}
	return (ntohl(((const struct sockaddr_in *)&a->ss)->sin_addr.s_addr) >> 24) == 127;
}

int net_listen(const struct net_addr *a, int backlog, int reuseport)
{
	int fd, ret = 0;

	fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &(int){ 1 }, sizeof(int)) < 0 ||
	    (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &(int){ 1 },
				     sizeof(int)) < 0) ||
	    bind(fd, (const struct sockaddr *)&a->ss, a->len) < 0 ||
	    listen(fd, backlog) < 0)
		ret = -errno;
	if (ret) {
		close(fd);
		return ret;
	}
	return fd;
}

int net_raise_nofile(unsigned long *soft)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return -errno;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			return -errno;
	}
	*soft = rl.rlim_cur;
	return 0;
}
