// SPDX-License-Identifier: MIT
/*
 * Postcopy's message bodies, encoded and checked: PC_DISCARD / PC_PULLED
 * (a window of a block's page bitmap), PAGE_REQ and PAGE_DATA (a run of
 * pages). Pure functions of their bytes and the block table, used by both
 * halves and by the fuzz targets (fuzz/fuzz_postcopy.c).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>

#include "core/postcopy/postcopy.h"

size_t rmig_pc_words_head(uint8_t *out, uint32_t block, uint64_t first, uint32_t n)
{
	rmig_put_be32(out + RMIG_OFF(rmig_wire_pc_discard, block), block);
	rmig_put_be32(out + RMIG_OFF(rmig_wire_pc_discard, nwords), n);
	rmig_put_be64(out + RMIG_OFF(rmig_wire_pc_discard, first_word), first);
	return sizeof(struct rmig_wire_pc_discard) + (size_t)n * 8;
}

int rmig_pc_words_parse(const uint8_t *body, size_t len, const struct rmig_block *blocks,
			unsigned int nblocks, uint32_t *block, uint64_t *first, uint32_t *n)
{
	uint64_t np, nw;

	if (len < sizeof(struct rmig_wire_pc_discard))
		return -EPROTO;
	*block = rmig_get_be32(body + RMIG_OFF(rmig_wire_pc_discard, block));
	*n = rmig_get_be32(body + RMIG_OFF(rmig_wire_pc_discard, nwords));
	*first = rmig_get_be64(body + RMIG_OFF(rmig_wire_pc_discard, first_word));
	if (*block >= nblocks || !*n || *n > RMIG_PC_DISCARD_WORDS ||
	    len != sizeof(struct rmig_wire_pc_discard) + (size_t)*n * 8)
		return -EPROTO;
	np = blocks[*block].length >> blocks[*block].page_shift;
	nw = (np + 63) / 64;
	if (*first > nw || *n > nw - *first)
		return -EPROTO;
	/* no page past the block's end */
	if ((np % 64) && *first + *n == nw && (rmig_pc_word(body, *n - 1) >> (np % 64)))
		return -EPROTO;
	return 0;
}

/* The run (@r) names whole pages of one block, as many as one message may carry. */
static const struct rmig_block *pc_run_block(const uint8_t *msg, const struct rmig_block *blocks,
					     unsigned int nblocks, struct rmig_pc_run *r)
{
	const struct rmig_block *b;

	r->block = rmig_get_be32(msg + RMIG_OFF(rmig_wire_page, block));
	r->n = rmig_get_be32(msg + RMIG_OFF(rmig_wire_page, npages));
	r->off = rmig_get_be64(msg + RMIG_OFF(rmig_wire_page, offset));
	b = r->block < nblocks ? &blocks[r->block] : NULL;
	/* a page too large for one PAGE_DATA cannot be asked for (rmig_pc_page_fits) */
	if (!b || (r->off & (b->page_size - 1)) || r->off >= b->length || !r->n ||
	    r->n > rmig_pc_run_max(b->page_size) || r->n > (b->length - r->off) >> b->page_shift ||
	    !rmig_pc_page_fits(b->page_size))
		return NULL;
	return b;
}

int rmig_pc_req_parse(const uint8_t *req, size_t len, const struct rmig_block *blocks,
		      unsigned int nblocks, struct rmig_pc_run *r, char *why, size_t whylen)
{
	if (len != sizeof(struct rmig_wire_page)) {
		snprintf(why, whylen, "destination sent a PAGE_REQ of %zu bytes", len);
		return -EPROTO;
	}
	if (!pc_run_block(req, blocks, nblocks, r)) {
		snprintf(why, whylen,
			 "destination requested %u pages of block %u at offset 0x%llx, which do not "
			 "exist",
			 r->n, r->block, (unsigned long long)r->off);
		return -EPROTO;
	}
	return 0;
}

int rmig_pc_data_parse(const uint8_t *body, size_t len, const struct rmig_block *blocks,
		       unsigned int nblocks, struct rmig_pc_run *r, uint32_t *ndata, char *why,
		       size_t whylen)
{
	const uint8_t *flags = body + sizeof(struct rmig_wire_page);
	const struct rmig_block *b;
	bool ok = true;

	if (len < sizeof(struct rmig_wire_page)) {
		snprintf(why, whylen, "postcopy: PAGE_DATA of %zu bytes", len);
		return -EPROTO;
	}
	b = pc_run_block(body, blocks, nblocks, r);
	if (!b || len < sizeof(struct rmig_wire_page) + rmig_pad8(r->n)) {
		snprintf(why, whylen, "postcopy: PAGE_DATA for %u pages of block %u at 0x%llx",
			 r->n, r->block, (unsigned long long)r->off);
		return -EPROTO;
	}
	*ndata = 0;
	for (uint32_t k = 0; k < rmig_pad8(r->n); k++) {
		if (k < r->n && (flags[k] & ~RMIG_PC_ZERO))
			ok = false;
		if (k >= r->n && flags[k])
			ok = false;
		*ndata += k < r->n && !flags[k];
	}
	if (!ok || len != rmig_pc_data_len(r->n, *ndata, b->page_size)) {
		snprintf(why, whylen,
			 "postcopy: PAGE_DATA for %u pages at 0x%llx of '%s' with %zu bytes "
			 "(bad page flags or length)",
			 r->n, (unsigned long long)r->off, b->name, len);
		return -EPROTO;
	}
	return 0;
}
