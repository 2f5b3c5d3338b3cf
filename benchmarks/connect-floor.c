/* SPDX-License-Identifier: MIT */
/*
 * connect-floor: how fast this machine's kernel sets up loopback TCP
 * connections through io_uring with nothing else going on, to compare with
 * tcp-client and tcp-server (see CAPACITY.md).
 *
 * One process: T client threads, each a ring that links socket_direct and
 * connect for up to INFLIGHT/T connections at a time, and L server threads,
 * each a ring with a multishot accept on its own listener (127.0.0.1, ports
 * 10100 and up).  Options add what the real programs do, one at a time:
 *
 *   -b N   bind each socket to one of N sources (127.0.0.2..) first, with
 *          IP_BIND_ADDRESS_NO_PORT (setsockopt uring_cmd + IORING_OP_BIND)
 *   -r     arm a poll on every accepted socket (the server's recv)
 *   -c     arm a poll on every connected socket (the client's recv)
 *   -t     link a 10 s timeout to every connect
 *
 * Run it in a private network namespace, as root, on a quiet machine, with
 * some seconds between runs (the previous namespace's sockets are torn down
 * in the background):
 *
 *   unshare -n sh -c 'ip link set lo up;
 *     sysctl -qw net.core.somaxconn=65535 net.ipv4.tcp_max_syn_backlog=65535 \
 *       net.ipv4.ip_local_port_range="1024 65535";
 *     build/benchmarks/connect-floor -n 200000 -T 10 -L 10'
 *
 * Connections are never closed: the process exits and the kernel frees them.
 * Each ring's table holds 20,000, so N/T and N/L must stay within that.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <liburing.h>

#ifndef IORING_OP_BIND
#define IORING_OP_BIND 56
#endif
#define URING_CMD_SETSOCKOPT 3
#define IP_NO_PORT 24		/* IP_BIND_ADDRESS_NO_PORT */
#define TABLE 20000
#define FIRST_PORT 10100
#define MAX_THREADS 64

enum { UD_SOCK = 1, UD_CONN, UD_TIMEOUT, UD_POLL, UD_ACCEPT };

static unsigned nconn = 100000, nclient = 8, nlisten = 8, inflight = 1024;
static unsigned nbind;
static int srv_poll, cli_poll, timeouts;
static int listen_fds[MAX_THREADS];
static const int one = 1;

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void die(const char *what, int err)
{
	fprintf(stderr, "connect-floor: %s: %s\n", what, strerror(err));
	exit(1);
}

static void ring_setup(struct io_uring *ring, unsigned sq)
{
	struct io_uring_params p = {
		.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
			 IORING_SETUP_CQSIZE,
		.cq_entries = 8192,
	};
	int ret = io_uring_queue_init_params(sq, ring, &p);

	if (ret < 0)
		die("io_uring_queue_init", -ret);
	ret = io_uring_register_files_sparse(ring, TABLE);
	if (ret < 0)
		die("registering the file table", -ret);
}

static struct io_uring_sqe *sqe_get(struct io_uring *ring)
{
	struct io_uring_sqe *sqe;

	while (!(sqe = io_uring_get_sqe(ring)))
		io_uring_submit(ring);
	return sqe;
}

static void arm_poll(struct io_uring *ring, int slot)
{
	struct io_uring_sqe *sqe = sqe_get(ring);

	io_uring_prep_poll_multishot(sqe, slot, POLLIN);
	sqe->flags |= IOSQE_FIXED_FILE;
	sqe->user_data = UD_POLL;
}

static void *server(void *arg)
{
	unsigned id = (unsigned)(uintptr_t)arg, got = 0, want = nconn / nlisten;
	struct io_uring ring;
	struct io_uring_sqe *sqe;

	ring_setup(&ring, 512);
	sqe = sqe_get(&ring);
	io_uring_prep_multishot_accept_direct(sqe, listen_fds[id], NULL, NULL, 0);
	sqe->user_data = UD_ACCEPT;
	while (got < want) {
		struct io_uring_cqe *cqe;
		unsigned head, n = 0;

		io_uring_submit_and_wait(&ring, 1);
		io_uring_for_each_cqe(&ring, head, cqe) {
			n++;
			if (cqe->user_data != UD_ACCEPT)
				continue;
			if (cqe->res < 0)
				die("accept", -cqe->res);
			got++;
			if (srv_poll)
				arm_poll(&ring, cqe->res);
			if (!(cqe->flags & IORING_CQE_F_MORE)) {
				sqe = sqe_get(&ring);
				io_uring_prep_multishot_accept_direct(sqe, listen_fds[id],
								      NULL, NULL, 0);
				sqe->user_data = UD_ACCEPT;
			}
		}
		io_uring_cq_advance(&ring, n);
	}
	return NULL;
}

static void *client(void *arg)
{
	unsigned id = (unsigned)(uintptr_t)arg;
	unsigned want = nconn / nclient, started = 0, done = 0, busy = 0;
	unsigned cap = inflight / nclient ? inflight / nclient : 1;
	struct __kernel_timespec ts = { .tv_sec = 10 };
	struct sockaddr_in dst[MAX_THREADS], src[MAX_THREADS];
	struct io_uring ring;

	for (unsigned i = 0; i < nlisten; i++) {
		dst[i] = (struct sockaddr_in){ .sin_family = AF_INET,
					       .sin_port = htons(FIRST_PORT + i),
					       .sin_addr.s_addr = htonl(0x7f000001) };
	}
	for (unsigned i = 0; i < nbind; i++)
		src[i] = (struct sockaddr_in){ .sin_family = AF_INET,
					       .sin_addr.s_addr = htonl(0x7f000002 + i) };
	ring_setup(&ring, 4096);
	while (done < want) {
		struct io_uring_cqe *cqe;
		unsigned head, n = 0;

		for (; started < want && busy < cap; started++, busy++) {
			int slot = (int)started;
			struct io_uring_sqe *sqe;

			if (io_uring_sq_space_left(&ring) < 5)
				io_uring_submit(&ring);
			sqe = io_uring_get_sqe(&ring);
			io_uring_prep_socket_direct(sqe, AF_INET, SOCK_STREAM, 0,
						    (unsigned)slot, 0);
			sqe->flags |= IOSQE_IO_LINK | IOSQE_CQE_SKIP_SUCCESS;
			sqe->user_data = UD_SOCK;
			if (nbind) {
				uint32_t *level_name;

				sqe = io_uring_get_sqe(&ring);
				io_uring_prep_rw(IORING_OP_URING_CMD, sqe, slot, NULL, 0, 0);
				sqe->flags = IOSQE_FIXED_FILE | IOSQE_IO_LINK |
					     IOSQE_CQE_SKIP_SUCCESS;
				sqe->cmd_op = URING_CMD_SETSOCKOPT;
				level_name = (uint32_t *)&sqe->addr;
				level_name[0] = IPPROTO_IP;
				level_name[1] = IP_NO_PORT;
				sqe->addr3 = (uint64_t)(uintptr_t)&one;
				sqe->file_index = sizeof(one);
				sqe->user_data = UD_SOCK;
				sqe = io_uring_get_sqe(&ring);
				io_uring_prep_rw(IORING_OP_BIND, sqe, slot,
						 &src[started % nbind], 0, sizeof(src[0]));
				sqe->flags = IOSQE_FIXED_FILE | IOSQE_IO_LINK |
					     IOSQE_CQE_SKIP_SUCCESS;
				sqe->user_data = UD_SOCK;
			}
			sqe = io_uring_get_sqe(&ring);
			io_uring_prep_connect(sqe, slot,
					      (struct sockaddr *)&dst[(started + id) % nlisten],
					      sizeof(dst[0]));
			sqe->flags |= IOSQE_FIXED_FILE;
			sqe->user_data = UD_CONN | (uint64_t)slot << 8;
			if (timeouts) {
				sqe->flags |= IOSQE_IO_LINK;
				sqe = io_uring_get_sqe(&ring);
				io_uring_prep_link_timeout(sqe, &ts, 0);
				sqe->user_data = UD_TIMEOUT;
			}
		}
		io_uring_submit_and_wait(&ring, 1);
		io_uring_for_each_cqe(&ring, head, cqe) {
			n++;
			switch (cqe->user_data & 0xff) {
			case UD_SOCK:
				die("socket/setsockopt/bind", -cqe->res);
				break;
			case UD_CONN:
				if (cqe->res < 0)
					die("connect", -cqe->res);
				done++;
				busy--;
				if (cli_poll)
					arm_poll(&ring, (int)(cqe->user_data >> 8));
				break;
			default:
				break;
			}
		}
		io_uring_cq_advance(&ring, n);
	}
	return NULL;
}

static unsigned arg_uint(const char *s, unsigned lo, unsigned hi, const char *opt)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);

	if (*end || v < lo || v > hi) {
		fprintf(stderr, "connect-floor: %s: want %u..%u\n", opt, lo, hi);
		exit(2);
	}
	return (unsigned)v;
}

int main(int argc, char **argv)
{
	pthread_t srv[MAX_THREADS], cli[MAX_THREADS];
	struct rlimit rl;
	double t0, t1;
	int c;

	while ((c = getopt(argc, argv, "n:T:L:i:b:rct")) != -1) {
		switch (c) {
		case 'n': nconn = arg_uint(optarg, 1, 10000000, "-n"); break;
		case 'T': nclient = arg_uint(optarg, 1, MAX_THREADS, "-T"); break;
		case 'L': nlisten = arg_uint(optarg, 1, MAX_THREADS, "-L"); break;
		case 'i': inflight = arg_uint(optarg, 1, 1 << 20, "-i"); break;
		case 'b': nbind = arg_uint(optarg, 1, MAX_THREADS, "-b"); break;
		case 'r': srv_poll = 1; break;
		case 'c': cli_poll = 1; break;
		case 't': timeouts = 1; break;
		default:
			fprintf(stderr, "usage: connect-floor [-n N] [-T client threads] "
				"[-L listeners] [-i inflight] [-b sources] [-r] [-c] [-t]\n");
			return 2;
		}
	}
	if (nconn / nclient > TABLE || nconn / nlisten > TABLE ||
	    nconn % nclient || nconn % nlisten) {
		fprintf(stderr, "connect-floor: N must divide by -T and -L, and "
			"N/T, N/L stay at most %d\n", TABLE);
		return 2;
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	for (unsigned i = 0; i < nlisten; i++) {
		struct sockaddr_in a = { .sin_family = AF_INET,
					 .sin_port = htons(FIRST_PORT + i),
					 .sin_addr.s_addr = htonl(0x7f000001) };
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

		if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one,
					 sizeof(one)) < 0 ||
		    bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
		    listen(fd, 65535) < 0)
			die("listen", errno);
		listen_fds[i] = fd;
	}
	t0 = now();
	for (unsigned i = 0; i < nlisten; i++)
		pthread_create(&srv[i], NULL, server, (void *)(uintptr_t)i);
	for (unsigned i = 0; i < nclient; i++)
		pthread_create(&cli[i], NULL, client, (void *)(uintptr_t)i);
	for (unsigned i = 0; i < nclient; i++)
		pthread_join(cli[i], NULL);
	for (unsigned i = 0; i < nlisten; i++)
		pthread_join(srv[i], NULL);
	t1 = now();
	printf("%u connections in %.3f s: %.0f connects/s (bind %u, server poll %d, "
	       "client poll %d, link timeout %d)\n", nconn, t1 - t0,
	       nconn / (t1 - t0), nbind, srv_poll, cli_poll, timeouts);
	fflush(stdout);
	_exit(0);	/* the kernel frees the connections */
}
