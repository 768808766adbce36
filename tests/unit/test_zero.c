// SPDX-License-Identifier: MIT
/*
 * Unit tests of zero-page detection (core/zero.c): rmig_is_zero() on pages
 * with a single non-zero byte anywhere, and rmig_zero_detect()'s partition
 * of a batch into data pages (in queue order) and zero pages.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "helpers.h"

#include "core/util.h"
#include "core/zero.h"

static const size_t page_sizes[] = { 512, 1024, 4096, 16384, 65536, 2u << 20 };

static void *zalloc_aligned(size_t len)
{
	void *p = aligned_alloc(64, len);

	assert_non_null(p);
	memset(p, 0, len);
	return p;
}

/* Set one byte at @pos, check it is seen, clear it, check the page is zero again. */
static void poke(uint8_t *page, size_t len, size_t pos, uint8_t val)
{
	page[pos] = val;
	if (rmig_is_zero(page, len))
		fail_msg("page of %zu bytes with 0x%02x at %zu taken for zero", len, val, pos);
	page[pos] = 0;
	if (!rmig_is_zero(page, len))
		fail_msg("page of %zu bytes is zero again after clearing %zu", len, pos);
}

static void test_zero_pages(void **state)
{
	for (unsigned int i = 0; i < RMIG_ARRAY_SIZE(page_sizes); i++) {
		size_t len = page_sizes[i];
		uint8_t *page = zalloc_aligned(len);

		assert_true(rmig_is_zero(page, len));
		/* Only @len bytes are looked at: data right behind them is not their business. */
		page[len / 2] = 0x42;
		assert_true(rmig_is_zero(page, len / 2));
		assert_false(rmig_is_zero(page, len));
		free(page);
	}
}

static void test_one_byte_classes(void **state)
{
	static const uint8_t vals[] = { 0x01, 0x80, 0xff, 0x10 };

	for (unsigned int i = 0; i < RMIG_ARRAY_SIZE(page_sizes); i++) {
		size_t len = page_sizes[i];
		uint8_t *page = zalloc_aligned(len);
		const size_t pos[] = {
			0,	       /* first byte */
			7,	       /* last byte of the first word */
			8,	       /* first byte of the second word */
			63,	       /* end of the first 64-byte stride */
			64,	       /* start of the second stride */
			len / 2 - 1, /* middle */
			len / 2,
			len / 2 + 3,
			len - 64, /* start of the last stride */
			len - 8,  /* last word */
			len - 1,  /* last byte */
		};

		for (unsigned int p = 0; p < RMIG_ARRAY_SIZE(pos); p++)
			for (unsigned int v = 0; v < RMIG_ARRAY_SIZE(vals); v++)
				poke(page, len, pos[p], vals[v]);
		free(page);
	}
}

/* Every position of the smaller pages, and a random sample of the large ones. */
static void test_one_byte_everywhere(void **state)
{
	uint64_t rng = 0xfeedface;

	for (unsigned int i = 0; i < RMIG_ARRAY_SIZE(page_sizes); i++) {
		size_t len = page_sizes[i];
		uint8_t *page = zalloc_aligned(len);

		if (len <= 16384) {
			for (size_t pos = 0; pos < len; pos++)
				poke(page, len, pos, (uint8_t)(1u << (pos % 8)));
		} else {
			for (int n = 0; n < 4000; n++)
				poke(page, len, h_xorshift(&rng) % len, (uint8_t)(rng | 1));
		}
		free(page);
	}
}

/* Shorter lengths (multiples of 64) only look at their own bytes. */
static void test_partial_lengths(void **state)
{
	uint8_t *page = zalloc_aligned(4096);

	assert_true(rmig_is_zero(page, 0));
	page[64] = 1;
	assert_true(rmig_is_zero(page, 64));
	assert_false(rmig_is_zero(page, 128));
	page[64] = 0;
	page[4095] = 1;
	for (size_t len = 64; len < 4096; len += 64)
		assert_true(rmig_is_zero(page, len));
	assert_false(rmig_is_zero(page, 4096));
	free(page);
}

/* ---- rmig_zero_detect ------------------------------------------------------ */

/* The obvious byte loop, as the reference the detector is compared with. */
static bool ref_is_zero(const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i])
			return false;
	return true;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * Check that @b, detected over @host, holds the same offsets as @orig: the
 * data pages first in their original order, then the zero pages.
 */
static void check_partition(const struct rmig_ram_batch *b, const uint64_t *orig,
			    const uint8_t *host, size_t page)
{
	uint64_t *want_zero = calloc(b->num + 1, sizeof(uint64_t));
	uint64_t *got_zero = calloc(b->num + 1, sizeof(uint64_t));
	uint32_t n_normal = 0, n_zero = 0;

	assert_non_null(want_zero);
	assert_non_null(got_zero);
	for (uint32_t i = 0; i < b->num; i++) {
		if (ref_is_zero(host + orig[i], page)) {
			want_zero[n_zero++] = orig[i];
		} else {
			if (n_normal >= b->normal || b->offsets[n_normal] != orig[i])
				fail_msg("data page %u should be offset 0x%llx", n_normal,
					 (unsigned long long)orig[i]);
			n_normal++;
		}
	}
	assert_int_equal(b->normal, n_normal);
	assert_int_equal(b->zero, n_zero);
	assert_int_equal(b->normal + b->zero, b->num);
	memcpy(got_zero, b->offsets + b->normal, (size_t)b->zero * sizeof(uint64_t));
	qsort(want_zero, n_zero, sizeof(uint64_t), cmp_u64);
	qsort(got_zero, n_zero, sizeof(uint64_t), cmp_u64);
	if (n_zero)
		assert_memory_equal(want_zero, got_zero, (size_t)n_zero * sizeof(uint64_t));
	for (uint32_t i = b->normal; i < b->num; i++)
		assert_true(ref_is_zero(host + b->offsets[i], page));
	free(want_zero);
	free(got_zero);
}

/*
 * A block of @npages pages, each zero with probability @zero_pct %; the
 * non-zero ones have a single non-zero byte at a random place (the hardest
 * case for a detector that samples).
 */
static uint8_t *make_block(size_t npages, size_t page, unsigned int zero_pct, uint64_t *rng)
{
	uint8_t *host = zalloc_aligned(npages * page);

	for (size_t p = 0; p < npages; p++)
		if (h_xorshift(rng) % 100 >= zero_pct)
			host[p * page + h_xorshift(rng) % page] = (uint8_t)(h_xorshift(rng) | 1);
	return host;
}

static void detect_random(size_t page, unsigned int zero_pct, uint64_t seed)
{
	const size_t npages = 256;
	const uint32_t cap = 128;
	uint64_t rng = seed;
	uint8_t *host = make_block(npages, page, zero_pct, &rng);
	uint64_t *orig = calloc(cap, sizeof(uint64_t));
	struct rmig_ram_batch b = { .block = 0, .offsets = calloc(cap, sizeof(uint64_t)) };

	assert_non_null(orig);
	assert_non_null(b.offsets);
	for (int round = 0; round < 200; round++) {
		b.num = (uint32_t)(h_xorshift(&rng) % (cap + 1));
		for (uint32_t i = 0; i < b.num; i++) {
			/* Runs of neighbours (as a dirty log yields), jumps, and repeats. */
			uint64_t r = h_xorshift(&rng);
			size_t pg = (r & 3) == 0 && i ? (size_t)(orig[i - 1] / page + 1) % npages
						       : (size_t)((r >> 8) % npages);

			orig[i] = (uint64_t)pg * page;
		}
		memcpy(b.offsets, orig, (size_t)b.num * sizeof(uint64_t));
		b.normal = 0xdead;
		b.zero = 0xbeef;
		rmig_zero_detect(&b, host, page);
		check_partition(&b, orig, host, page);
	}
	free(orig);
	free(b.offsets);
	free(host);
}

static void test_detect_random_mixes(void **state)
{
	static const unsigned int pcts[] = { 0, 10, 50, 90, 100 };

	for (unsigned int i = 0; i < 4; i++) /* up to 64 KiB pages: keeps the blocks small */
		for (unsigned int z = 0; z < RMIG_ARRAY_SIZE(pcts); z++)
			detect_random(page_sizes[i], pcts[z], 0x1000 + i * 31 + z);
}

static void test_detect_edges(void **state)
{
	const size_t page = 4096;
	uint8_t *host = zalloc_aligned(8 * page);
	uint64_t offs[8], orig[8];
	struct rmig_ram_batch b = { .offsets = offs };

	/* Empty batch. */
	b.num = 0;
	rmig_zero_detect(&b, host, page);
	assert_int_equal(b.normal, 0);
	assert_int_equal(b.zero, 0);

	/* Pages 1, 4 and 6 carry data in their last byte only; the rest are zero. */
	host[2 * page - 1] = 1;
	host[5 * page - 1] = 2;
	host[7 * page - 1] = 3;
	for (unsigned int i = 0; i < 8; i++)
		orig[i] = (uint64_t)(7 - i) * page; /* queued in reverse */
	memcpy(offs, orig, sizeof(offs));
	b.num = 8;
	rmig_zero_detect(&b, host, page);
	assert_int_equal(b.normal, 3);
	assert_int_equal(b.zero, 5);
	assert_int_equal(offs[0], 6 * page);
	assert_int_equal(offs[1], 4 * page);
	assert_int_equal(offs[2], 1 * page);
	check_partition(&b, orig, host, page);

	/* Detection twice gives the same answer (a batch may be re-examined). */
	memcpy(orig, offs, sizeof(offs));
	rmig_zero_detect(&b, host, page);
	check_partition(&b, orig, host, page);
	assert_memory_equal(offs, orig, 3 * sizeof(uint64_t));

	/* One page, data then zero. */
	b.num = 1;
	offs[0] = 4 * page;
	rmig_zero_detect(&b, host, page);
	assert_int_equal(b.normal, 1);
	offs[0] = 3 * page;
	rmig_zero_detect(&b, host, page);
	assert_int_equal(b.normal, 0);
	assert_int_equal(b.zero, 1);
	assert_int_equal(offs[0], 3 * page);
	free(host);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_zero_pages),
		cmocka_unit_test(test_one_byte_classes),
		cmocka_unit_test(test_one_byte_everywhere),
		cmocka_unit_test(test_partial_lengths),
		cmocka_unit_test(test_detect_random_mixes),
		cmocka_unit_test(test_detect_edges),
	};

	/* unbuffered: a crash must not swallow the report in the test log */
	setvbuf(stdout, NULL, _IONBF, 0);
	return cmocka_run_group_tests_name("zero", tests, NULL, NULL);
}
