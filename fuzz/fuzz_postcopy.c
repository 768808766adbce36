// SPDX-License-Identifier: MIT
/*
 * Postcopy bodies (core/postcopy/pc_parse.c): PC_DISCARD and PC_PULLED (one bitmap
 * window of a block, rmig_pc_words_parse), PAGE_REQ (rmig_pc_req_parse, the
 * source's side) and PAGE_DATA (rmig_pc_data_parse, the destination's).
 *
 * Input: byte 0 picks the message (0: PC_DISCARD / PC_PULLED, 1: PAGE_REQ,
 * 2: PAGE_DATA), the body follows. Each accepted body is then used the way
 * its receiver uses it, on bitmaps and buffers of exactly the right size.
 */
#include <errno.h>
#include <string.h>

#include "core/postcopy/postcopy.h"
#include "fuzz.h"

static uint64_t npages(const struct rmig_block *b)
{
	return b->length >> b->page_shift;
}

static void fuzz_words(const uint8_t *body, size_t len, const struct rmig_block *blocks)
{
	uint8_t head[sizeof(struct rmig_wire_pc_discard)];
	uint64_t first, nw, np, *map, bits = 0;
	uint32_t bi, n;

	if (rmig_pc_words_parse(body, len, blocks, FUZZ_NBLOCKS, &bi, &first, &n))
		return;
	FUZZ_CHECK(bi < FUZZ_NBLOCKS && n >= 1 && n <= RMIG_PC_DISCARD_WORDS, "block %u, %u words",
		   bi, n);
	FUZZ_CHECK(len == sizeof(head) + (size_t)n * 8, "%u words in %zu bytes", n, len);
	np = npages(&blocks[bi]);
	nw = (np + 63) / 64;
	FUZZ_CHECK(first < nw && n <= nw - first, "words %llu+%u of %llu",
		   (unsigned long long)first, n, (unsigned long long)nw);
	FUZZ_CHECK(rmig_pc_words_head(head, bi, first, n) == len, "header writer's length");
	FUZZ_CHECK(!memcmp(head, body, sizeof(head)), "re-encoded window header differs");
	/* as pc_dst.c (PC_DISCARD) and the source (PC_PULLED) apply it */
	map = calloc(nw, sizeof(*map));
	FUZZ_CHECK(map, "out of memory");
	for (uint32_t k = 0; k < n; k++) {
		map[first + k] |= rmig_pc_word(body, k);
		bits += (uint64_t)__builtin_popcountll(rmig_pc_word(body, k));
	}
	for (uint64_t p = np; p < nw * 64; p++)
		FUZZ_CHECK(!(map[p / 64] & (1ull << (p % 64))), "page %llu past the end of '%s'",
			   (unsigned long long)p, blocks[bi].name);
	FUZZ_CHECK(bits <= np, "%llu pages of %llu", (unsigned long long)bits,
		   (unsigned long long)np);
	free(map);
}

/* The run's pages exist: off + n pages inside the block, as many as one message carries. */
static void check_run(const struct rmig_block *blocks, const struct rmig_pc_run *r)
{
	const struct rmig_block *b;

	FUZZ_CHECK(r->block < FUZZ_NBLOCKS, "block %u", r->block);
	b = &blocks[r->block];
	FUZZ_CHECK(r->n >= 1 && r->n <= rmig_pc_run_max(b->page_size), "%u pages", r->n);
	FUZZ_CHECK(!(r->off % b->page_size) && r->off < b->length &&
			   (uint64_t)r->n <= (b->length - r->off) / b->page_size,
		   "%u pages at 0x%llx of '%s'", r->n, (unsigned long long)r->off, b->name);
	FUZZ_CHECK(rmig_pc_data_len(r->n, r->n, b->page_size) <= RMIG_WIRE_BODY_MAX,
		   "an answer of %u pages would not fit a message", r->n);
}

static void fuzz_req(const uint8_t *body, size_t len, const struct rmig_block *blocks)
{
	struct rmig_pc_run r;
	char why[RMIG_ERRMSG_MAX];

	why[0] = '\0';
	if (rmig_pc_req_parse(body, len, blocks, FUZZ_NBLOCKS, &r, why, sizeof(why))) {
		FUZZ_CHECK(why[0], "PAGE_REQ refused without a reason");
		return;
	}
	FUZZ_CHECK(len == sizeof(struct rmig_wire_page), "PAGE_REQ of %zu bytes", len);
	check_run(blocks, &r);
}

static void fuzz_data(const uint8_t *body, size_t len, const struct rmig_block *blocks)
{
	const uint8_t *flags = body + sizeof(struct rmig_wire_page), *p;
	const struct rmig_block *b;
	char why[RMIG_ERRMSG_MAX];
	struct rmig_pc_run r;
	uint32_t ndata, seen = 0, sum = 0;

	why[0] = '\0';
	if (rmig_pc_data_parse(body, len, blocks, FUZZ_NBLOCKS, &r, &ndata, why, sizeof(why))) {
		FUZZ_CHECK(why[0], "PAGE_DATA refused without a reason");
		return;
	}
	check_run(blocks, &r);
	b = &blocks[r.block];
	FUZZ_CHECK(ndata <= r.n && len == rmig_pc_data_len(r.n, ndata, b->page_size),
		   "%u data pages of %u in %zu bytes", ndata, r.n, len);
	/* dst_pc_place's walk: runs of data pages are contiguous after the flags */
	p = flags + rmig_pad8(r.n);
	for (uint32_t k = 0; k < r.n; k++) {
		FUZZ_CHECK(flags[k] <= RMIG_PC_ZERO, "page flag 0x%x", flags[k]);
		if (flags[k])
			continue;
		for (uint32_t i = 0; i < b->page_size; i += 512)
			sum += p[i];
		sum += p[b->page_size - 1];
		p += b->page_size;
		seen++;
	}
	(void)sum;
	FUZZ_CHECK(seen == ndata && p == body + len, "walk ended %td bytes off, %u of %u pages",
		   p - (body + len), seen, ndata);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rmig_block blocks[FUZZ_NBLOCKS];
	uint8_t *body;
	size_t len;

	if (size < 1 || size - 1 > RMIG_WIRE_BODY_MAX)
		return 0;
	fuzz_blocks(blocks);
	len = size - 1;
	body = malloc(len ? len : 1);
	FUZZ_CHECK(body, "out of memory");
	memcpy(body, data + 1, len);
	switch (data[0] % 3) {
	case 0:
		fuzz_words(body, len, blocks);
		break;
	case 1:
		fuzz_req(body, len, blocks);
		break;
	default:
		fuzz_data(body, len, blocks);
		break;
	}
	free(body);
	return 0;
}
