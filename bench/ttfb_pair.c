// SPDX-License-Identifier: MIT
/*
 * rmig-ttfb-pair: time to first byte over rdma between two hosts whose
 * clocks are not synchronised (two rxe guests, or two machines):
 *
 *   rmig-ttfb-pair dst ADDR MiB [CHANNELS [PORT]]     on the destination
 *   rmig-ttfb-pair src PEER MiB [CHANNELS [PORT]]     on the source
 *
 * The destination listens over rdma on ADDR (any free port) and on TCP
 * ADDR:PORT (default 18630) for a side connection, which carries no RAM,
 * only the measurement. Its RAM (MiB, not populated, as a new guest's) is
 * watched by a thread that notes, on the destination's clock, when the
 * first word changes. The source takes the clock offset between the hosts
 * over the side connection before and after the migration (NTP style: the
 * destination's clock read between a request and its answer, the round
 * trip with the shortest time kept), times rmig_src_connect() and the rest
 * on its own clock, and at the end asks for the destination's moment and
 * turns it into source time with the offset interpolated between the two.
 * The error of that is at most half the shortest round trip (printed as
 * rtt_ms) plus the watcher's poll interval (1 ms); drift_ms says how much
 * the offset moved during the run.
 *
 * Every page goes, in address order, and the destination compares its
 * RAM with the pattern; the source then prints one line:
 * "ttfb-pair: mib=M channels=C reg=... mw=... mw_channels=N connect_s=...
 * first_byte_s=... total_s=... rtt_ms=... drift_ms=... src_reg_ms=...
 * dst_reg_ms=... verified=1". Both sides must be started with the same
 * RMIG_RDMA_REG and RMIG_RDMA_MW (read by the library); the source refuses
 * a destination that was not. Exit: 0 verified, 1 not, 2 usage, 77 no
 * RDMA device.
 */
#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <rmig/rmig.h>

#define PAGE	       4096u
#define SIDE_PORT      18630
#define PINGS	       32
#define WATCH_US       1000 /* resolution of the first byte; every wake-up costs the guest's one vCPU */
#define SIDE_TIMEOUT_S 300

enum { MSG_HELLO = 1, MSG_PING, MSG_PONG, MSG_RESULT, MSG_VERDICT };
enum { ENV_REG_UPFRONT = 1, ENV_MW_OFF = 2 };

/* The side connection's only message, all fields big-endian. */
struct side_msg {
	uint32_t type;
	uint32_t flags;
	uint64_t v[3];
};
_Static_assert(sizeof(struct side_msg) == 32, "side_msg is 32 bytes on the wire");

struct dst_side {
	struct rmig_dst *dst;
	int ret;
};

struct watch {
	volatile const uint64_t *first; /* destination RAM's first word */
	uint64_t want;
	atomic_bool stop;
	uint64_t seen_ns; /* destination's CLOCK_MONOTONIC; 0: not seen */
};

/* A clock offset: destination time minus source time at src_ns (source time). */
struct offset {
	int64_t off_ns;
	uint64_t src_ns;
	uint64_t rtt_ns;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* A page's words: never zero, so no page travels as a zero page. */
static uint64_t word(uint64_t page, unsigned int i)
{
	uint64_t x = (page << 16 | i) * 0x9e3779b97f4a7c15ull;

	return (x ^ x >> 29) | 1;
}

static unsigned int env_flags(void)
{
	const char *reg = getenv("RMIG_RDMA_REG"), *mw = getenv("RMIG_RDMA_MW");

	return (reg && !strcmp(reg, "upfront") ? ENV_REG_UPFRONT : 0) |
	       (mw && !strcmp(mw, "off") ? ENV_MW_OFF : 0);
}

static int send_msg(int fd, uint32_t type, uint32_t flags, uint64_t a, uint64_t b, uint64_t c)
{
	struct side_msg m = {
	    .type = htobe32(type),
	    .flags = htobe32(flags),
	    .v = {htobe64(a), htobe64(b), htobe64(c)},
	};
	ssize_t n = send(fd, &m, sizeof(m), MSG_NOSIGNAL);

	return n == (ssize_t)sizeof(m) ? 0 : n < 0 ? -errno : -EPIPE;
}

/* Receives one message of @type into @m (host order). */
static int recv_msg(int fd, uint32_t type, struct side_msg *m)
{
	ssize_t n = recv(fd, m, sizeof(*m), MSG_WAITALL);

	if (n != (ssize_t)sizeof(*m))
		return n < 0 ? -errno : -ECONNRESET;
	m->type = be32toh(m->type);
	m->flags = be32toh(m->flags);
	for (int i = 0; i < 3; i++)
		m->v[i] = be64toh(m->v[i]);
	return m->type == type ? 0 : -EPROTO;
}

static void side_opts(int fd)
{
	struct timeval tv = {.tv_sec = SIDE_TIMEOUT_S};
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

static int side_addr(const char *host, int port, struct sockaddr_in *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = htons((uint16_t)port);
	return inet_pton(AF_INET, host, &sa->sin_addr) == 1 ? 0 : -EINVAL;
}

static void rmig_key(struct rmig_opts *o, uint8_t key[32])
{
	/* the same on both sides; authenticated as a real migration is, its round trips timed */
	for (unsigned int i = 0; i < 32; i++)
		key[i] = (uint8_t)(word(~0ull, i) >> 8);
	o->psk = key;
	o->psk_len = 32;
}

static void *dst_main(void *arg)
{
	struct dst_side *d = arg;
	uint64_t round;

	d->ret = rmig_dst_accept(d->dst);
	if (!d->ret)
		d->ret = rmig_dst_wait_sync(d->dst, &round);
	if (!d->ret)
		d->ret = rmig_dst_finish(d->dst);
	return NULL;
}

static void *watch_main(void *arg)
{
	struct watch *w = arg;

	while (!atomic_load_explicit(&w->stop, memory_order_relaxed)) {
		if (*w->first == w->want) {
			w->seen_ns = now_ns();
			return NULL;
		}
		usleep(WATCH_US);
	}
	return NULL;
}

static bool dst_ram_ok(const uint8_t *ram, uint64_t npages)
{
	for (uint64_t p = 0; p < npages; p++)
		for (unsigned int i = 0; i < PAGE / 8; i++)
			if (((const uint64_t *)(ram + p * PAGE))[i] != word(p, i)) {
				fprintf(stderr, "destination: page %" PRIu64 " differs\n", p);
				return false;
			}
	return true;
}

/*
 * Answers pings until the source asks for the result; *@src_failed: the
 * source says its side failed (nothing more will come over rdma).
 */
static int dst_pings(int fd, bool *src_failed)
{
	struct side_msg m;
	int ret;

	for (;;) {
		ret = recv_msg(fd, MSG_PING, &m);
		if (ret == -EPROTO && m.type == MSG_RESULT) {
			*src_failed = m.flags != 0;
			return 0;
		}
		if (ret)
			return ret;
		ret = send_msg(fd, MSG_PONG, 0, now_ns(), 0, 0);
		if (ret)
			return ret;
	}
}

static int run_dst(const char *addr, uint64_t mib, unsigned int channels, int port)
{
	uint64_t len = mib << 20;
	struct sockaddr_in sa;
	struct rmig_stats ds = {.size = sizeof(ds)};
	struct dst_side d = {0};
	struct watch w = {0};
	struct rmig_opts o;
	struct pollfd pfd = {.events = POLLIN};
	bool src_failed = false, ok;
	pthread_t dt, wt;
	uint8_t key[32], *ram;
	char uri[300];
	int lfd, fd, one = 1, ret;

	if (side_addr(addr, port, &sa)) {
		fprintf(stderr, "dst: %s is not an IPv4 address\n", addr);
		return 2;
	}
	/* not populated: a new guest's RAM is not either */
	ram = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (ram == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	rmig_opts_init(&o);
	o.channels = channels;
	o.timeout_ms = 60000;
	rmig_key(&o, key);
	if (rmig_dst_create(&o, &d.dst) ||
	    rmig_dst_add_block(d.dst, &(struct rmig_block_desc){"pc.ram", ram, len, PAGE}) < 0) {
		fprintf(stderr, "destination set-up failed\n");
		return 1;
	}
	snprintf(uri, sizeof(uri), "rdma:%s:0", addr);
	if (rmig_dst_listen(d.dst, uri)) {
		fprintf(stderr, "listen: %s\n", rmig_dst_error(d.dst));
		ret = strstr(rmig_dst_error(d.dst), "no RDMA device") ? 77 : 1;
		goto out_destroy;
	}
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) || listen(lfd, 1)) {
		perror("dst: side socket");
		if (lfd >= 0)
			close(lfd);
		ret = 1;
		goto out_destroy;
	}
	w.first = (volatile const uint64_t *)ram;
	w.want = word(0, 0);
	atomic_init(&w.stop, false);
	/* the rdma accept waits before the source can learn the port */
	pthread_create(&dt, NULL, dst_main, &d);
	pthread_create(&wt, NULL, watch_main, &w);
	fprintf(stderr, "ttfb-pair dst: rdma port %d, side %s:%d\n", rmig_dst_port(d.dst), addr,
		port);
	/* one source: the listener closes once it came (or did not, in time) */
	pfd.fd = lfd;
	fd = poll(&pfd, 1, SIDE_TIMEOUT_S * 1000) == 1 ? accept(lfd, NULL, NULL) : -1;
	close(lfd);
	if (fd < 0) {
		fprintf(stderr, "dst: no source on the side connection\n");
		rmig_dst_cancel(d.dst);
		pthread_join(dt, NULL);
		atomic_store_explicit(&w.stop, true, memory_order_relaxed);
		pthread_join(wt, NULL);
		ret = 1;
		goto out_destroy;
	}
	side_opts(fd);
	ret = send_msg(fd, MSG_HELLO, env_flags(), (uint64_t)rmig_dst_port(d.dst), mib, channels);
	if (!ret)
		ret = dst_pings(fd, &src_failed);
	if (ret)
		fprintf(stderr, "dst: side connection: %s\n", strerror(-ret));
	if (ret || src_failed)
		rmig_dst_cancel(d.dst);
	pthread_join(dt, NULL);
	atomic_store_explicit(&w.stop, true, memory_order_relaxed);
	pthread_join(wt, NULL);
	if (d.ret)
		fprintf(stderr, "destination: %s\n", rmig_dst_error(d.dst));
	rmig_dst_get_stats(d.dst, &ds);
	ok = !ret && !d.ret && w.seen_ns && dst_ram_ok(ram, len / PAGE);
	printf("ttfb-pair dst: first word at %" PRIu64 " ns (own clock), reg_ms=%.1f verified=%d\n",
	       w.seen_ns, ds.reg_ns / 1e6, ok);
	if (!ret)
		ret = send_msg(fd, MSG_VERDICT, ok, w.seen_ns, ds.reg_ns, ds.mw_channels);
	if (!ok)
		ret = -EIO;
	close(fd);
	ret = ret ? 1 : 0;
out_destroy:
	rmig_dst_destroy(d.dst);
	munmap(ram, len);
	return ret;
}

/* Connects the side socket, retrying while the destination is not up yet. */
static int side_connect(const char *peer, int port)
{
	uint64_t deadline = now_ns() + 120ull * 1000000000u;
	struct sockaddr_in sa;
	int fd;

	if (side_addr(peer, port, &sa))
		return -EINVAL;
	for (;;) {
		fd = socket(AF_INET, SOCK_STREAM, 0);
		if (fd < 0)
			return -errno;
		if (!connect(fd, (struct sockaddr *)&sa, sizeof(sa)))
			break;
		close(fd);
		if ((errno != ECONNREFUSED && errno != EHOSTUNREACH) || now_ns() > deadline)
			return -errno;
		usleep(100000);
	}
	side_opts(fd);
	return fd;
}

/* PINGS round trips; the one with the shortest is the offset's best estimate. */
static int measure_offset(int fd, struct offset *best)
{
	struct side_msg m;
	int ret;

	best->rtt_ns = UINT64_MAX;
	for (int i = 0; i < PINGS; i++) {
		uint64_t t1 = now_ns(), t3;

		ret = send_msg(fd, MSG_PING, 0, 0, 0, 0);
		if (!ret)
			ret = recv_msg(fd, MSG_PONG, &m);
		if (ret)
			return ret;
		t3 = now_ns();
		if (t3 - t1 < best->rtt_ns) {
			best->rtt_ns = t3 - t1;
			best->src_ns = t1 + (t3 - t1) / 2;
			best->off_ns = (int64_t)(m.v[0] - best->src_ns);
		}
	}
	return 0;
}

/* Destination time @dst_ns in source time, the offset linear between @a and @b. */
static uint64_t to_src(uint64_t dst_ns, const struct offset *a, const struct offset *b)
{
	double est = (double)dst_ns - (double)a->off_ns, slope = 0;

	if (b->src_ns > a->src_ns)
		slope = (double)(b->off_ns - a->off_ns) / (double)(b->src_ns - a->src_ns);
	return (uint64_t)(est - slope * (est - (double)a->src_ns));
}

static int run_src(const char *peer, uint64_t mib, unsigned int channels, int port)
{
	uint64_t len = mib << 20, npages = len / PAGE, t0, t_conn, t_end, first;
	struct rmig_stats ss = {.size = sizeof(ss)};
	struct offset before, after;
	struct rmig_src *src = NULL;
	struct side_msg hello, verdict;
	struct rmig_opts o;
	unsigned int env = env_flags();
	uint8_t key[32], *ram;
	char uri[300];
	int fd, ret;

	ram = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (ram == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	for (uint64_t p = 0; p < npages; p++)
		for (unsigned int i = 0; i < PAGE / 8; i++)
			((uint64_t *)(ram + p * PAGE))[i] = word(p, i);
	fd = side_connect(peer, port);
	if (fd < 0) {
		fprintf(stderr, "src: side connection to %s:%d: %s\n", peer, port, strerror(-fd));
		return 1;
	}
	ret = recv_msg(fd, MSG_HELLO, &hello);
	if (ret) {
		fprintf(stderr, "src: no hello from the destination: %s\n", strerror(-ret));
		goto out_close;
	}
	if (hello.v[1] != mib || hello.v[2] != channels || hello.flags != env) {
		fprintf(stderr,
			"src: the destination runs %" PRIu64 " MiB, %" PRIu64
			" channels, env flags %u; this side %" PRIu64 ", %u, %u "
			"(RMIG_RDMA_REG, RMIG_RDMA_MW must match)\n",
			hello.v[1], hello.v[2], hello.flags, mib, channels, env);
		ret = -EINVAL;
		goto out_close;
	}
	ret = measure_offset(fd, &before);
	if (ret)
		goto out_close;

	rmig_opts_init(&o);
	o.channels = channels;
	o.timeout_ms = 60000;
	rmig_key(&o, key);
	snprintf(uri, sizeof(uri), "rdma:%s:%" PRIu64, peer, hello.v[0]);
	if (rmig_src_create(&o, &src) ||
	    rmig_src_add_block(src, &(struct rmig_block_desc){"pc.ram", ram, len, PAGE}) < 0) {
		fprintf(stderr, "source set-up failed\n");
		ret = -EINVAL;
		goto out_close;
	}
	t0 = now_ns();
	ret = rmig_src_connect(src, uri);
	t_conn = now_ns();
	/* address order, as a first round goes */
	for (uint64_t p = 0; !ret && p < npages; p++)
		ret = rmig_src_queue_page(src, 0, p * PAGE);
	if (!ret)
		ret = rmig_src_sync(src, RMIG_SYNC_ALL);
	if (!ret)
		ret = rmig_src_finish(src);
	t_end = now_ns();
	if (ret)
		fprintf(stderr, "source: %s\n", rmig_src_error(src));
	rmig_src_get_stats(src, &ss);

	/* the offset again, then the destination's moment (after its own check of RAM) */
	if (!ret)
		ret = measure_offset(fd, &after);
	else
		after = before;
	if (send_msg(fd, MSG_RESULT, ret != 0, 0, 0, 0) || recv_msg(fd, MSG_VERDICT, &verdict)) {
		fprintf(stderr, "src: no verdict from the destination\n");
		ret = ret ? ret : -EIO;
		goto out_destroy;
	}
	first = verdict.v[0] ? to_src(verdict.v[0], &before, &after) : 0;
	printf("ttfb-pair: mib=%" PRIu64 " channels=%u reg=%s mw=%s mw_channels=%" PRIu64
	       " connect_s=%.3f first_byte_s=%.3f total_s=%.3f rtt_ms=%.3f drift_ms=%.3f"
	       " src_reg_ms=%.1f dst_reg_ms=%.1f verified=%d\n",
	       mib, channels, env & ENV_REG_UPFRONT ? "upfront" : "streamed",
	       env & ENV_MW_OFF ? "off" : "default", verdict.v[2], (t_conn - t0) / 1e9,
	       first ? ((double)first - (double)t0) / 1e9 : -1.0, (t_end - t0) / 1e9,
	       before.rtt_ns / 1e6, (after.off_ns - before.off_ns) / 1e6, ss.reg_ns / 1e6,
	       verdict.v[1] / 1e6, !ret && verdict.flags == 1);
	if (!ret && verdict.flags != 1)
		ret = -EIO;
out_destroy:
	rmig_src_destroy(src);
out_close:
	close(fd);
	munmap(ram, len);
	return ret ? 1 : 0;
}

int main(int argc, char **argv)
{
	uint64_t mib = argc > 3 ? strtoull(argv[3], NULL, 0) : 0;
	unsigned int channels = argc > 4 ? (unsigned int)strtoul(argv[4], NULL, 0) : 2;
	int port = argc > 5 ? atoi(argv[5]) : SIDE_PORT;

	setvbuf(stdout, NULL, _IONBF, 0);
	if (argc < 4 || !mib || mib > (1u << 20) || !channels || port <= 0 || port > 65535 ||
	    (strcmp(argv[1], "dst") && strcmp(argv[1], "src"))) {
		fprintf(stderr,
			"usage: %s dst ADDR MiB [CHANNELS [PORT]]\n"
			"       %s src PEER MiB [CHANNELS [PORT]]\n",
			argv[0], argv[0]);
		return 2;
	}
	return strcmp(argv[1], "dst") ? run_src(argv[2], mib, channels, port)
				      : run_dst(argv[2], mib, channels, port);
}
