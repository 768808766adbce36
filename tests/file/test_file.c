// SPDX-License-Identifier: MIT
/*
 * The file transport end to end: save with the source API to "file:PATH",
 * load with the destination API, compare RAM and device state: one round
 * or several, pages changing kind between rounds, a refusing device-state
 * callback. Bad files are in test_file_corrupt.c, a refused connect and a
 * full disk in test_file_faults.c; the fixture is file_fixture.c.
 *
 * Run with "direct" as the only argument for the O_DIRECT cases; they exit
 * 77 (skip) when the filesystem of RMIG_TEST_DIR has no O_DIRECT.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "rmig/rmig.h"
#include "transport/file/format.h"

#include "file_fixture.h"
#include "helpers.h"

/* The documented check value, so other readers of the format can test theirs. */
static void test_crc32c(void **state)
{
	assert_int_equal(rmig_crc32c(0, "123456789", 9), 0xe3069283u);
	assert_int_equal(rmig_crc32c(rmig_crc32c(0, "1234", 4), "56789", 5), 0xe3069283u);
}

/* ---- happy paths ------------------------------------------------------------ */

static void round_trip(unsigned int channels, unsigned int threads, uint32_t sflags,
		       uint32_t dflags)
{
	struct ram a, b;
	struct dev_seen seen = {0};
	struct rmig_stats st;
	char path[4200], why[512];

	path_for(path, sizeof(path), "roundtrip");
	ram_pair(&a, &b, std_layout, 4, 42, 30);
	ram_garbage(&b);
	save_std(path, &a, channels, sflags);
	if (load(path, &b, threads, dflags, &seen, &st, why, sizeof(why)))
		fail_msg("load: %s", why);
	ram_equal(&a, &b);
	check_devs(&seen, std_dev, ARRAY_SIZE(std_dev));
	assert_int_equal(st.normal_pages + st.zero_pages, total_pages(&a));
	assert_int_equal(st.data_bytes, st.normal_pages ? st.data_bytes : 0);
	if (sflags & RMIG_F_NO_ZERO_DETECT) {
		assert_int_equal(st.zero_pages, 0); /* zero pages were saved as data */
	} else {
		assert_true(st.zero_pages > 0);
		assert_true(st.zero_pages_written > 0); /* the garbage had to be cleared */
	}
	assert_int_equal(st.dev_chunks, seen.chunks);
	free(seen.data);
	ram_unmap(&a);
	ram_unmap(&b);
	unlink(path);
}

static void test_round_trip(void **state)
{
	round_trip(4, 3, 0, 0);
}

static void test_round_trip_one_channel_one_thread(void **state)
{
	round_trip(1, 1, 0, 0);
}

static void test_round_trip_many_threads(void **state)
{
	round_trip(7, 16, 0, 0);
}

static void test_no_zero_detect(void **state)
{
	round_trip(3, 2, RMIG_F_NO_ZERO_DETECT, 0);
}

/*
 * Several rounds into one file: pages go data->zero, zero->data and
 * data->other data between rounds, and the file must hold the last one.
 */
static void test_rounds(void **state)
{
	struct ram a, b;
	struct rmig_src *src;
	struct dev_seen seen = {0};
	char path[4200], why[512];
	const unsigned int rounds = 4;

	path_for(path, sizeof(path), "rounds");
	ram_pair(&a, &b, std_layout, 4, 1, 40);
	src = src_open(path, &a, 3, 0);
	queue_all(src, &a);
	assert_int_equal(rmig_src_sync(src, RMIG_SYNC_ALL), 0);
	for (unsigned int r = 2; r <= rounds; r++) {
		/* Rewrite about a third of the pages with a new draw (40% of them zero), queue
		 * those. */
		for (unsigned int bl = 0; bl < a.n; bl++) {
			uint32_t ps = a.l[bl].page_size;

			for (uint64_t pg = 0; pg < a.l[bl].length / ps; pg++) {
				if (h_mix64(r * 7919 + pg + bl) % 3)
					continue;
				fill_page(a.host[bl] + pg * ps, ps, 100 + r, bl, pg, 40);
				assert_int_equal(rmig_src_queue_page(src, bl, pg * ps), 0);
			}
		}
		/* Some pages are queued twice in one round: the later copy is the same data. */
		assert_int_equal(rmig_src_queue_page(src, 0, 0), 0);
		assert_int_equal(rmig_src_sync(src, RMIG_SYNC_ALL), 0);
	}
	queue_devs(src, std_dev, 2);
	if (rmig_src_finish(src))
		fail_msg("finish: %s", rmig_src_error(src));
	rmig_src_destroy(src);

	/* Destination starts as round 1's RAM plus garbage in every other page. */
	ram_fill(&b, 1, 40);
	for (unsigned int bl = 0; bl < b.n; bl++)
		for (uint64_t off = 0; off < b.l[bl].length; off += 2 * b.l[bl].page_size)
			memset(b.host[bl] + off, 0x5a, b.l[bl].page_size);
	if (load(path, &b, 2, 0, &seen, NULL, why, sizeof(why)))
		fail_msg("load: %s", why);
	ram_equal(&a, &b);
	check_devs(&seen, std_dev, 2);
	free(seen.data);
	ram_unmap(&a);
	ram_unmap(&b);
	unlink(path);
}

/* The same page alone, round by round: data, zero, data, other data, zero. */
static void test_page_transitions(void **state)
{
	static const struct layout l[] = {{"ram", 1u << 20, 4096}};
	struct ram a, b;
	struct rmig_src *src;
	char path[4200], why[512];
	/* value of page 5 and page 6 each round (0: zero page) */
	static const uint8_t v5[] = {0x11, 0, 0x22, 0x33, 0};
	static const uint8_t v6[] = {0, 0x44, 0, 0, 0x55};

	path_for(path, sizeof(path), "transitions");
	ram_pair(&a, &b, l, 1, 9, 0);
	src = src_open(path, &a, 2, 0);
	for (unsigned int r = 0; r < sizeof(v5); r++) {
		memset(a.host[0] + 5 * 4096, v5[r], 4096);
		memset(a.host[0] + 6 * 4096, v6[r], 4096);
		if (r == 0)
			queue_all(src, &a);
		assert_int_equal(rmig_src_queue_page(src, 0, 5 * 4096), 0);
		assert_int_equal(rmig_src_queue_page(src, 0, 6 * 4096), 0);
		assert_int_equal(rmig_src_sync(src, RMIG_SYNC_ALL), 0);
	}
	assert_int_equal(rmig_src_finish(src), 0);
	rmig_src_destroy(src);

	ram_garbage(&b);
	if (load(path, &b, 2, 0, NULL, NULL, why, sizeof(why)))
		fail_msg("load: %s", why);
	ram_equal(&a, &b);
	for (unsigned int i = 0; i < 4096; i++) {
		assert_int_equal(b.host[0][5 * 4096 + i], 0);
		assert_int_equal(b.host[0][6 * 4096 + i], 0x55);
	}
	ram_unmap(&a);
	ram_unmap(&b);
	unlink(path);
}

/* A device-state callback that refuses aborts the load. */
static void test_callback_refuses(void **state)
{
	struct ram a, b;
	struct dev_seen seen = {.refuse = true};
	char path[4200], why[512];
	int ret;

	path_for(path, sizeof(path), "refuse");
	ram_pair(&a, &b, std_layout, 2, 3, 10);
	save_std(path, &a, 2, 0);
	ret = load(path, &b, 2, 0, &seen, NULL, why, sizeof(why));
	assert_int_equal(ret, -ECANCELED);
	assert_non_null(strstr(why, "refused"));
	ram_unmap(&a);
	ram_unmap(&b);
	unlink(path);
}

/* ---- O_DIRECT ------------------------------------------------------------------ */

static void test_direct_round_trip(void **state)
{
	round_trip(3, 3, RMIG_F_DIRECT_IO, RMIG_F_DIRECT_IO);
}

static void test_direct_save_buffered_load(void **state)
{
	round_trip(2, 2, RMIG_F_DIRECT_IO, 0);
}

static void test_buffered_save_direct_load(void **state)
{
	round_trip(2, 2, 0, RMIG_F_DIRECT_IO);
}

/* Does the test directory's filesystem take O_DIRECT? */
static int direct_supported(void)
{
	char path[4200];
	int fd;

	path_for(path, sizeof(path), "direct-probe");
	fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_DIRECT, 0600);
	if (fd < 0)
		return errno == EINVAL ? 0 : -errno;
	close(fd);
	unlink(path);
	return 1;
}

int main(int argc, char **argv)
{
	file_fixture_init();
	if (argc > 1 && !strcmp(argv[1], "direct")) {
		const struct CMUnitTest direct[] = {
		    cmocka_unit_test(test_direct_round_trip),
		    cmocka_unit_test(test_direct_save_buffered_load),
		    cmocka_unit_test(test_buffered_save_direct_load),
		};
		int ok = direct_supported();

		if (ok <= 0) {
			printf("SKIP: %s does not support O_DIRECT (%s)\n", dir,
			       ok ? strerror(-ok) : "EINVAL");
			return 77;
		}
		return cmocka_run_group_tests_name("file transport, O_DIRECT", direct, NULL, NULL);
	}

	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_crc32c),
	    cmocka_unit_test(test_round_trip),
	    cmocka_unit_test(test_round_trip_one_channel_one_thread),
	    cmocka_unit_test(test_round_trip_many_threads),
	    cmocka_unit_test(test_no_zero_detect),
	    cmocka_unit_test(test_rounds),
	    cmocka_unit_test(test_page_transitions),
	    cmocka_unit_test(test_callback_refuses),
	};

	return cmocka_run_group_tests_name("file transport: round trips", tests, NULL, NULL);
}

