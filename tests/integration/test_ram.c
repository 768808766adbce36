// SPDX-License-Identifier: MIT
/*
 * RAM migration over loopback TCP: 1, 2, 4 and 8 channels with a 64 MiB
 * region, zero pages (cleared on the destination only where needed, carried
 * as offsets), several blocks queued in random order, large batches of
 * scattered pages, and zero copy.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <cmocka.h>

#include "harness.h"

#define MiB (1ull << 20)
#define PAGE 4096u

/* Bytes a channel carries besides RAM messages: its CHAN hello and its FIN. */
#define CHAN_OVERHEAD (24 + 24 + 24 + 56)
/* A RAM message without its offsets and data: header and fixed body. */
#define RAM_MSG_FIXED (24 + 16)

static void expect_same(const void *src, const void *dst, size_t len)
{
	long at = h_first_diff(src, dst, len);

	if (at >= 0)
		fail_msg("destination differs from the source at byte %ld (page %ld)", at,
			 at / (long)PAGE);
}

/*
 * End of the run: settle the source (destroyed on failure), join the
 * destination, and require both to have succeeded.
 */
static void expect_done(struct h_dst *d, int src_ret, struct rmig_src **src)
{
	char err[512];

	h_end(src, src_ret, err, sizeof(err), d);
	if (src_ret)
		fail_msg("source: %d (%s); destination: accept %d finish %d (%s)", src_ret, err,
			 d->accept_ret, d->finish_ret, d->error);
	if (d->accept_ret || d->finish_ret)
		fail_msg("destination: accept %d finish %d (%s)", d->accept_ret, d->finish_ret,
			 d->error);
	assert_string_equal(err, "");
	assert_string_equal(d->error, "");
}

/* ---- 1, 2, 4, 8 channels ------------------------------------------------------ */

static void test_channels(void **state)
{
	unsigned int channels = *(unsigned int *)*state;
	const size_t len = 64 * MiB;
	uint8_t *src_mem = h_map(len), *dst_mem = h_map(len);
	struct rmig_stats ss;
	struct rmig_opts o;
	struct h_dst d;
	struct rmig_src *src;
	int ret;

	h_fill_random(src_mem, len, 1000 + channels);
	h_fill_byte(dst_mem, len, 0x5a);
	h_dst_init(&d);
	h_dst_add(&d, "pc.ram", src_mem, len, PAGE);
	h_opts(&o, channels);
	src = h_src_new(&o, &d);
	d.blocks[0].host = dst_mem; /* same table, the destination's own memory */
	h_dst_start(&d);

	h_watchdog_arm(120, "test_channels");
	ret = h_src_connect_port(src, d.port);
	if (!ret)
		ret = h_src_queue_all(src, 0, len, PAGE);
	if (!ret)
		ret = rmig_src_finish(src);
	expect_done(&d, ret, &src);
	expect_same(src_mem, dst_mem, len);

	ss = h_src_stats(src);
	assert_int_equal(ss.normal_pages, len / PAGE);
	assert_int_equal(ss.zero_pages, 0);
	assert_int_equal(ss.data_bytes, len);
	assert_int_equal(ss.sync_rounds, 0);
	assert_int_equal(ss.packets, len / PAGE / o.pages_per_packet);
	h_check_stats_match(&ss, &d.stats);
	assert_int_equal(d.stats.zero_pages_written, 0);
	rmig_src_destroy(src);
	h_unmap(src_mem, len);
	h_unmap(dst_mem, len);
}

/* ---- zero pages --------------------------------------------------------------- */

enum dst_start { DST_GARBAGE, DST_ZERO };

/*
 * 16 MiB where about a third of the pages are zero. The destination starts
 * either with garbage everywhere (so it must clear the zero pages) or all
 * zero (so it must not write them).
 */
static void zero_case(enum dst_start start, uint32_t flags)
{
	const size_t len = 16 * MiB, npages = len / PAGE;
	uint8_t *src_mem = h_map(len), *dst_mem = h_map(len);
	uint64_t rng = 77, nzero = 0, nnormal;
	struct rmig_stats ss;
	struct rmig_opts o;
	struct h_dst d;
	struct rmig_src *src;
	int ret;

	h_fill_random(src_mem, len, 5);
	for (size_t p = 0; p < npages; p++) {
		if (h_rand(&rng) % 3 == 0) {
			memset(src_mem + p * PAGE, 0, PAGE);
			nzero++;
		} else if (h_rand(&rng) % 4 == 0) {
			/* data only in the last byte: not a zero page */
			memset(src_mem + p * PAGE, 0, PAGE);
			src_mem[p * PAGE + PAGE - 1] = 0x01;
		}
	}
	nnormal = npages - nzero;
	if (start == DST_GARBAGE)
		h_fill_random(dst_mem, len, 6);

	h_dst_init(&d);
	h_dst_add(&d, "pc.ram", src_mem, len, PAGE);
	h_opts(&o, 2);
	o.flags = flags;
	src = h_src_new(&o, &d);
	d.blocks[0].host = dst_mem;
	h_dst_start(&d);

	h_watchdog_arm(120, "zero pages");
	ret = h_src_connect_port(src, d.port);
	if (!ret)
		ret = h_src_queue_all(src, 0, len, PAGE);
	if (!ret)
		ret = rmig_src_finish(src);
	expect_done(&d, ret, &src);
	expect_same(src_mem, dst_mem, len);

	ss = h_src_stats(src);
	h_check_stats_match(&ss, &d.stats);
	if (flags & RMIG_F_NO_ZERO_DETECT) {
		assert_int_equal(ss.zero_pages, 0);
		assert_int_equal(ss.normal_pages, npages);
		assert_int_equal(d.stats.zero_pages_written, 0);
	} else {
		assert_int_equal(ss.zero_pages, nzero);
		assert_int_equal(ss.normal_pages, nnormal);
		assert_int_equal(d.stats.zero_pages_written, start == DST_GARBAGE ? nzero : 0);
	}
	assert_int_equal(ss.data_bytes, ss.normal_pages * PAGE);
	/* A zero page costs its 8-byte offset on the wire, a data page its bytes too. */
	assert_int_equal(ss.wire_bytes, 2 * CHAN_OVERHEAD + ss.packets * RAM_MSG_FIXED +
						npages * 8 + ss.data_bytes);
	rmig_src_destroy(src);
	h_unmap(src_mem, len);
	h_unmap(dst_mem, len);
}

static void test_zero_dst_garbage(void **state)
{
	zero_case(DST_GARBAGE, 0);
}

static void test_zero_dst_zero(void **state)
{
	zero_case(DST_ZERO, 0);
}

static void test_zero_detect_off(void **state)
{
	zero_case(DST_GARBAGE, RMIG_F_NO_ZERO_DETECT);
}

/* ---- several blocks, random order ------------------------------------------------ */

struct blk {
	const char *name;
	size_t len;
	uint32_t page;
	uint8_t *src, *dst;
};

static void test_blocks_random_order(void **state)
{
	struct blk b[] = {
		{ "pc.ram", 24 * MiB, 4096 },
		{ "vga.vram", 8 * MiB, 65536 },
		{ "rom", 256 * 1024, 512 },
		{ "hugepage.ram", 8 * MiB, 2 * MiB },
	};
	const unsigned int nb = sizeof(b) / sizeof(b[0]);
	uint64_t rng = 4242, total = 0, n = 0, dup = 0;
	struct { uint32_t block; uint64_t off; } *q;
	struct rmig_opts o;
	struct h_dst d;
	struct rmig_src *src;
	int ret = 0;

	h_dst_init(&d);
	for (unsigned int i = 0; i < nb; i++) {
		b[i].src = h_map(b[i].len);
		b[i].dst = h_map(b[i].len);
		h_fill_random(b[i].src, b[i].len, 300 + i);
		h_fill_random(b[i].dst, b[i].len, 400 + i);
		for (size_t off = 0; off < b[i].len; off += b[i].page)
			if (h_rand(&rng) % 5 == 0)
				memset(b[i].src + off, 0, b[i].page);
		h_dst_add(&d, b[i].name, b[i].src, b[i].len, b[i].page);
		total += b[i].len / b[i].page;
	}
	h_opts(&o, 4);
	o.pages_per_packet = 16;
	src = h_src_new(&o, &d);
	for (unsigned int i = 0; i < nb; i++)
		d.blocks[i].host = b[i].dst;
	h_dst_start(&d);

	/*
	 * Every page once, shuffled across blocks; then, in a second round (as a
	 * dirty log would), some of them again.
	 */
	q = calloc(total + total / 8, sizeof(*q));
	assert_non_null(q);
	for (unsigned int i = 0; i < nb; i++)
		for (size_t off = 0; off < b[i].len; off += b[i].page)
			q[n++] = (typeof(*q)){ i, off };
	for (uint64_t i = n - 1; i > 0; i--) {
		uint64_t j = h_rand(&rng) % (i + 1);
		typeof(*q) t = q[i];

		q[i] = q[j];
		q[j] = t;
	}
	for (dup = 0; dup < total / 8; dup++)
		q[n++] = q[dup * 8]; /* distinct pages: one copy each in the round */

	h_watchdog_arm(120, "blocks in random order");
	ret = h_src_connect_port(src, d.port);
	for (uint64_t i = 0; !ret && i < n; i++) {
		ret = rmig_src_queue_page(src, q[i].block, q[i].off);
		if (!ret && i + 1 == total)
			ret = rmig_src_sync(src, RMIG_SYNC_ALL);
	}
	if (!ret)
		ret = rmig_src_finish(src);
	expect_done(&d, ret, &src);
	for (unsigned int i = 0; i < nb; i++)
		expect_same(b[i].src, b[i].dst, b[i].len);
	{
		struct rmig_stats ss = h_src_stats(src);

		h_check_stats_match(&ss, &d.stats);
		assert_int_equal(ss.normal_pages + ss.zero_pages, n);
	}
	rmig_src_destroy(src);
	for (unsigned int i = 0; i < nb; i++) {
		h_unmap(b[i].src, b[i].len);
		h_unmap(b[i].dst, b[i].len);
	}
	free(q);
}

/* ---- the largest batches ---------------------------------------------------------- */

/*
 * pages_per_packet may be up to 4096. With every other page queued, each
 * batch is 4096 separate runs of page data: the transport must carry them
 * however many iovecs that takes.
 */
static void big_batch_case(bool scattered)
{
	const size_t len = 64 * MiB, npages = len / PAGE;
	uint8_t *src_mem = h_map(len), *dst_mem = h_map(len);
	struct rmig_opts o;
	struct h_dst d;
	struct rmig_src *src;
	int ret;

	h_fill_random(src_mem, len, 9);
	h_dst_init(&d);
	h_dst_add(&d, "pc.ram", src_mem, len, PAGE);
	h_opts(&o, 2);
	o.pages_per_packet = 4096;
	src = h_src_new(&o, &d);
	d.blocks[0].host = dst_mem;
	h_dst_start(&d);

	h_watchdog_arm(120, "big batches");
	ret = h_src_connect_port(src, d.port);
	if (scattered) {
		/* even pages, then odd ones: no two pages of a batch are adjacent */
		for (size_t first = 0; first < 2; first++)
			for (size_t p = first; p < npages && !ret; p += 2)
				ret = rmig_src_queue_page(src, 0, p * PAGE);
	} else if (!ret) {
		ret = h_src_queue_all(src, 0, len, PAGE);
	}
	if (!ret)
		ret = rmig_src_finish(src);
	expect_done(&d, ret, &src);
	expect_same(src_mem, dst_mem, len);
	rmig_src_destroy(src);
	h_unmap(src_mem, len);
	h_unmap(dst_mem, len);
}

static void test_big_batches_contiguous(void **state)
{
	big_batch_case(false);
}

static void test_big_batches_scattered(void **state)
{
	big_batch_case(true);
}

/* ---- zero copy -------------------------------------------------------------------- */

static void test_zero_copy(void **state)
{
	const size_t len = 32 * MiB;
	uint8_t *src_mem = h_map(len), *dst_mem = h_map(len);
	struct rmig_stats ss;
	struct rmig_opts o;
	struct h_dst d;
	struct rmig_src *src;
	int ret;

	h_fill_random(src_mem, len, 11);
	h_dst_init(&d);
	h_dst_add(&d, "pc.ram", src_mem, len, PAGE);
	h_opts(&o, 2);
	o.flags = RMIG_F_ZERO_COPY;
	src = h_src_new(&o, &d);
	d.blocks[0].host = dst_mem;
	h_dst_start(&d);

	h_watchdog_arm(120, "zero copy");
	ret = h_src_connect_port(src, d.port);
	/*
	 * Not a skip: a test that cannot run has not passed. main() raised
	 * the soft limit as far as the hard limit allows; below that, the
	 * machine must be set up (root, or ulimit -l).
	 */
	if (ret == -ENOMEM && strstr(rmig_src_error(src), "RLIMIT_MEMLOCK"))
		fail_msg("zero copy cannot run here (%s): run as root or raise the hard limit",
			 rmig_src_error(src));
	if (!ret)
		ret = h_src_queue_all(src, 0, len, PAGE);
	if (!ret)
		ret = rmig_src_sync(src, RMIG_SYNC_ALL);
	if (!ret)
		ret = rmig_src_finish(src);
	expect_done(&d, ret, &src);
	expect_same(src_mem, dst_mem, len);
	ss = h_src_stats(src);
	assert_true(ss.zc_sends > 0);
	assert_true(ss.zc_copied <= ss.zc_sends);
	h_check_stats_match(&ss, &d.stats);
	rmig_src_destroy(src);
	h_unmap(src_mem, len);
	h_unmap(dst_mem, len);
}

static unsigned int ch1 = 1, ch2 = 2, ch4 = 4, ch8 = 8;

/* Zero copy pins pages in flight: take all the locked memory we may. */
static int raise_memlock(void **state)
{
	struct rlimit rl;

	(void)state;
	if (getrlimit(RLIMIT_MEMLOCK, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_MEMLOCK, &rl);
	}
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		{ "channels_1", test_channels, NULL, NULL, &ch1 },
		{ "channels_2", test_channels, NULL, NULL, &ch2 },
		{ "channels_4", test_channels, NULL, NULL, &ch4 },
		{ "channels_8", test_channels, NULL, NULL, &ch8 },
		cmocka_unit_test(test_zero_dst_garbage),
		cmocka_unit_test(test_zero_dst_zero),
		cmocka_unit_test(test_zero_detect_off),
		cmocka_unit_test(test_blocks_random_order),
		cmocka_unit_test(test_big_batches_contiguous),
		cmocka_unit_test(test_big_batches_scattered),
		cmocka_unit_test(test_zero_copy),
	};

	/* unbuffered: a crash must not swallow the report in the test log */
	setvbuf(stdout, NULL, _IONBF, 0);
	return cmocka_run_group_tests_name("ram", tests, raise_memlock, NULL);
}
