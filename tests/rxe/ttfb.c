// SPDX-License-Identifier: MIT
/*
 * Time to first byte over rdma, end to end, and the migration verified:
 *
 *   ttfb ADDR MiB [channels]
 *
 * Both sides in one process through the public API (rmig_src_* and
 * rmig_dst_*, the destination on its own thread), one block of MiB of
 * RAM. A watcher thread on the destination side looks at the first page
 * of destination RAM; the first byte is there when it changes. The clock
 * starts just before rmig_src_connect(), with the destination listening,
 * so it counts the handshake, both sides' registration (or what of it is
 * still in the way) and the first WRITE. Then every page goes, in address
 * order, and destination RAM must equal source RAM.
 *
 * RMIG_RDMA_REG=upfront (registration before the first byte, as before)
 * and RMIG_RDMA_MW=off (MR rkeys instead of memory windows, so that the
 * destination streams too) are read by the library itself.
 *
 * Prints one line: "ttfb: mib=M reg=... mw_channels=N connect_s=...
 * first_byte_s=... total_s=... src_reg_ms=... dst_reg_ms=... dst_streamed=D
 * verified=1". dst_streamed=1: the first byte landed before the
 * destination had registered all of its RAM, which only a destination that
 * streams its registration can do (its registration starts after the
 * clock, and dst_reg_ms runs from that start to its last slice); 0 says
 * nothing either way (a small RAM may be registered before the first page
 * goes). With mw_channels=N > 0 the N channels wrote only through memory
 * windows bound to their own QPs.
 * Exit: 0 verified, 1 not, 77 no RDMA device.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <rmig/rmig.h>

#define PAGE 4096u

struct dst_side {
	struct rmig_dst *dst;
	int ret;
	char err[512];
};

struct watch {
	volatile const uint64_t *first; /* destination RAM's first word */
	uint64_t want;
	atomic_bool stop;
	double seen; /* seconds, monotonic */
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A page's words: never zero, so no page travels as a zero page. */
static uint64_t word(uint64_t page, unsigned int i)
{
	uint64_t x = (page << 16 | i) * 0x9e3779b97f4a7c15ull;

	return (x ^ x >> 29) | 1;
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
	snprintf(d->err, sizeof(d->err), "%s", rmig_dst_error(d->dst));
	return NULL;
}

/* Polls rather than sleeps long: the first byte is what is timed. */
static void *watch_main(void *arg)
{
	struct watch *w = arg;

	while (!atomic_load(&w->stop)) {
		if (*w->first == w->want) {
			w->seen = now_s();
			return NULL;
		}
		usleep(50);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	const char *addr = argc > 1 ? argv[1] : getenv("RXE_ADDR");
	uint64_t mib = argc > 2 ? strtoull(argv[2], NULL, 0) : 64;
	unsigned int channels = argc > 3 ? (unsigned int)strtoul(argv[3], NULL, 0) : 2;
	uint64_t len = mib << 20, npages = len / PAGE;
	const char *reg = getenv("RMIG_RDMA_REG");
	struct rmig_stats ss = {.size = sizeof(ss)}, ds = {.size = sizeof(ds)};
	struct dst_side d = {0};
	struct watch w = {0};
	struct rmig_opts o;
	struct rmig_src *src = NULL;
	pthread_t dt, wt;
	uint8_t *sram, *dram;
	double t0, t_conn, t_end;
	char uri[300];
	uint8_t key[32];
	int ret;

	setvbuf(stdout, NULL, _IONBF, 0);
	if (!addr || !mib) {
		fprintf(stderr, "usage: %s ADDR MiB [channels]\n", argv[0]);
		return 2;
	}
	sram = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	/* the destination's RAM is not touched: a new guest's RAM is not populated either */
	dram = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (sram == MAP_FAILED || dram == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	for (unsigned int i = 0; i < sizeof(key); i++)
		key[i] = (uint8_t)(word(~0ull, i) >> 8);
	for (uint64_t p = 0; p < npages; p++)
		for (unsigned int i = 0; i < PAGE / 8; i++)
			((uint64_t *)(sram + p * PAGE))[i] = word(p, i);

	rmig_opts_init(&o);
	o.channels = channels;
	o.timeout_ms = 60000;
	/* authenticated, as a real migration is: the key's round trips are in the figure */
	o.psk = key;
	o.psk_len = sizeof(key);
	if (rmig_dst_create(&o, &d.dst) ||
	    rmig_dst_add_block(d.dst, &(struct rmig_block_desc){"pc.ram", dram, len, PAGE}) < 0) {
		fprintf(stderr, "destination set-up failed\n");
		return 1;
	}
	snprintf(uri, sizeof(uri), "rdma:%s:0", addr);
	if (rmig_dst_listen(d.dst, uri)) {
		fprintf(stderr, "listen: %s\n", rmig_dst_error(d.dst));
		return strstr(rmig_dst_error(d.dst), "no RDMA device") ? 77 : 1;
	}
	snprintf(uri, sizeof(uri), "rdma:%s:%d", addr, rmig_dst_port(d.dst));
	if (rmig_src_create(&o, &src) ||
	    rmig_src_add_block(src, &(struct rmig_block_desc){"pc.ram", sram, len, PAGE}) < 0) {
		fprintf(stderr, "source set-up failed\n");
		return 1;
	}
	w.first = (volatile const uint64_t *)dram;
	w.want = word(0, 0);
	atomic_init(&w.stop, false);
	pthread_create(&dt, NULL, dst_main, &d);
	pthread_create(&wt, NULL, watch_main, &w);

	t0 = now_s();
	ret = rmig_src_connect(src, uri);
	t_conn = now_s();
	/* address order, as a first round goes */
	for (uint64_t p = 0; !ret && p < npages; p++)
		ret = rmig_src_queue_page(src, 0, p * PAGE);
	if (!ret)
		ret = rmig_src_sync(src, RMIG_SYNC_ALL);
	if (!ret)
		ret = rmig_src_finish(src);
	t_end = now_s();
	if (ret) {
		fprintf(stderr, "source: %s\n", rmig_src_error(src));
		rmig_dst_cancel(d.dst);
	}
	rmig_src_get_stats(src, &ss);
	pthread_join(dt, NULL);
	atomic_store(&w.stop, true);
	pthread_join(wt, NULL);
	rmig_dst_get_stats(d.dst, &ds);
	if (d.ret)
		fprintf(stderr, "destination: %s\n", d.err);
	ret = ret || d.ret || memcmp(sram, dram, len) || !w.seen;
	printf("ttfb: mib=%" PRIu64 " channels=%u reg=%s mw_channels=%" PRIu64
	       " connect_s=%.3f first_byte_s=%.3f total_s=%.3f src_reg_ms=%.1f dst_reg_ms=%.1f "
	       "dst_streamed=%d verified=%d\n",
	       mib, channels, reg && !strcmp(reg, "upfront") ? "upfront" : "streamed",
	       ds.mw_channels, t_conn - t0, w.seen ? w.seen - t0 : -1.0, t_end - t0,
	       ss.reg_ns / 1e6, ds.reg_ns / 1e6, w.seen && w.seen - t0 < ds.reg_ns / 1e9, !ret);
	rmig_src_destroy(src);
	rmig_dst_destroy(d.dst);
	munmap(sram, len);
	munmap(dram, len);
	return ret ? 1 : 0;
}
