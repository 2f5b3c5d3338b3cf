/* SPDX-License-Identifier: MIT */
/* Addresses, listeners and descriptor limits. */
#ifndef RINGHOLD_NET_H
#define RINGHOLD_NET_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "cfg.h"

struct net_addr {
	struct sockaddr_storage ss;
	socklen_t len;
};

#define NET_ADDRSTRLEN 64	/* "[v6]:port" */

/*
 * "HOST:PORT", "[V6]:PORT" or "HOST" (then default_port; 0 means a port is
 * required).  HOST may be a name, resolved once here (first IPv4 result,
 * else the first result).
 */
int net_parse_hostport(const char *opt, const char *str, uint16_t default_port,
		       struct net_addr *out, struct cfg_error *err);

/*
 * A source address "A" or an inclusive IPv4 range "A-B" (at most 65,536
 * addresses).  Appends to *list (grown with realloc), port 0.
 */
int net_parse_source(const char *opt, const char *str, struct net_addr **list,
		     size_t *n, struct cfg_error *err);

/* "1.2.3.4:80", "[::1]:80", or without the port when with_port is 0. */
const char *net_addr_str(const struct net_addr *a, int with_port, char *buf,
			 size_t len);
uint16_t net_addr_port(const struct net_addr *a);
int net_addr_is_loopback(const struct net_addr *a);

/* A non-blocking listening socket; returns the fd or -errno. */
int net_listen(const struct net_addr *a, int backlog, int reuseport);

/* Raises the soft RLIMIT_NOFILE to the hard one; returns the new soft limit
 * in *soft.  0 or -errno. */
int net_raise_nofile(unsigned long *soft);

#endif
