// SPDX-License-Identifier: MIT
/*
 * The rdma MR table (transport/rdma/mr.c rmig_rd_mrt_decode): what a
 * destination sends in WELCOME for RDMA WRITE, and a source in
 * PC_PULL_INFO for RDMA READ. An accepted table covers each local block
 * exactly with slices that do not wrap, every lookup lands in the slice
 * that holds the offset, and rmig_rd_mrt_encode() writes the same bytes.
 * Version 2 (streamed registration) adds the status table's address and
 * rkey and marks slices pending: a pending slice has rkey 0.
 */
#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "transport/rdma/rdma.h"

/*
 * A channel's table (memory windows, rmig_rd_mrt_encode_chan) with the
 * decoded rkeys and pending slices is the same table, unless it is
 * version 2 with nothing pending (a channel's table is then version 1).
 */
static void check_encode_chan(const struct rd_mrs *t, const struct rd_remote *r,
			      const uint8_t *data, size_t size, uint8_t *out)
{
	uint32_t *rkeys = calloc(r->nslices, sizeof(*rkeys));
	uint8_t *pending = calloc(r->nslices, 1);
	struct rmig_msgbuf mb;
	bool any = false;
	size_t len = size;

	FUZZ_CHECK(rkeys && pending, "out of memory");
	for (unsigned int k = 0; k < r->nslices; k++) {
		rkeys[k] = r->slices[k].rkey;
		pending[k] = !atomic_load(&r->slices[k].ready);
		any |= pending[k];
	}
	if (r->streamed == any) {
		FUZZ_CHECK(!rmig_rd_mrt_encode_chan(t, rkeys, pending, r->status_addr,
						    r->status_rkey, out, &len, &mb) &&
				   len == size,
			   "encode_chan: %s", mb.msg);
		FUZZ_CHECK(!memcmp(out, data, size), "re-encoded channel table differs");
	}
	free(rkeys);
	free(pending);
}

/* rmig_rd_mrt_encode() from the decoded table, through stand-in MRs. */
static void check_encode(const struct rd_remote *r, const uint8_t *data, size_t size)
{
	struct rd_lblock lb[FUZZ_NBLOCKS] = { { 0 } };
	struct rd_mrs t = { .blocks = lb, .nblocks = r->nblocks, .nslices = r->nslices,
			    .published = r->streamed, .status_addr = r->status_addr,
			    .status_rkey = r->status_rkey };
	struct ibv_mr *mrs;
	struct rmig_msgbuf mb;
	uint8_t *out;
	size_t len = size;

	t.slices = calloc(r->nslices, sizeof(*t.slices));
	mrs = calloc(r->nslices, sizeof(*mrs));
	out = malloc(size);
	FUZZ_CHECK(t.slices && mrs && out, "out of memory");
	for (unsigned int i = 0; i < r->nblocks; i++) {
		lb[i].length = r->blocks[i].length;
		lb[i].first = r->blocks[i].first;
		lb[i].n = r->blocks[i].n;
	}
	for (unsigned int k = 0; k < r->nslices; k++) {
		mrs[k].rkey = r->slices[k].rkey;
		t.slices[k].addr = (uint8_t *)(uintptr_t)r->slices[k].addr;
		t.slices[k].len = r->slices[k].len;
		t.slices[k].mr = &mrs[k];
		/* version 2: a pending slice goes out pending again */
		atomic_init(&t.slices[k].ready, atomic_load(&r->slices[k].ready));
	}
	/* a version 2 table is re-encoded as one, even with nothing left pending */
	atomic_init(&t.all_ready, !r->streamed);
	FUZZ_CHECK(rmig_rd_mrt_size(&t) == size, "table of %zu bytes, the encoder needs %zu",
		   size, rmig_rd_mrt_size(&t));
	FUZZ_CHECK(!rmig_rd_mrt_encode(&t, NULL, out, &len, &mb) && len == size, "encode: %s", mb.msg);
	FUZZ_CHECK(!memcmp(out, data, size), "re-encoded MR table differs");
	check_encode_chan(&t, r, data, size, out);
	free(out);
	free(mrs);
	free(t.slices);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rmig_block blocks[FUZZ_NBLOCKS];
	struct rmig_msgbuf mb;
	struct rd_remote r;
	unsigned int used = 0;
	uint8_t *in = NULL;
	int ret;

	fuzz_blocks(blocks);
	if (size) {
		in = malloc(size);
		FUZZ_CHECK(in, "out of memory");
		memcpy(in, data, size);
	}
	mb.msg[0] = '\0';
	ret = rmig_rd_mrt_decode(in, size, blocks, FUZZ_NBLOCKS, &r, &mb);
	if (ret) {
		FUZZ_CHECK(ret == -EPROTO && mb.msg[0], "refused with %d, '%s'", ret, mb.msg);
		FUZZ_CHECK(!r.blocks && !r.slices, "refused table left allocated");
		goto out;
	}
	FUZZ_CHECK(r.nblocks == FUZZ_NBLOCKS, "%u blocks", r.nblocks);
	for (unsigned int i = 0; i < r.nblocks; i++) {
		const struct rd_rblock *b = &r.blocks[i];
		uint64_t off = 0, probe[4];

		FUZZ_CHECK(b->length == blocks[i].length && b->n >= 1 && b->first == used &&
				   b->n <= r.nslices - used,
			   "block %u: %u slices from %u", i, b->n, b->first);
		for (unsigned int k = b->first; k < b->first + b->n; k++) {
			const struct rd_rslice *s = &r.slices[k];

			FUZZ_CHECK(s->off == off && s->len && s->len <= b->length - off &&
					   s->addr + s->len >= s->addr,
				   "block %u slice %u: [%llu, +%llu)", i, k,
				   (unsigned long long)s->off, (unsigned long long)s->len);
			FUZZ_CHECK(atomic_load(&s->ready) || (r.streamed && !s->rkey),
				   "block %u slice %u pending in a version 1 table or with an rkey",
				   i, k);
			off += s->len;
		}
		FUZZ_CHECK(off == b->length, "block %u covered to %llu", i,
			   (unsigned long long)off);
		used += b->n;
		probe[0] = 0;
		probe[1] = b->length - 1;
		probe[2] = b->length / 2;
		probe[3] = r.slices[b->first + b->n - 1].off;
		for (unsigned int j = 0; j < 4; j++) {
			const struct rd_rslice *s = rmig_rd_remote_find(&r, i, probe[j]);

			FUZZ_CHECK(s && s >= &r.slices[b->first] && s < &r.slices[b->first + b->n] &&
					   probe[j] >= s->off && probe[j] - s->off < s->len,
				   "lookup of block %u offset %llu", i,
				   (unsigned long long)probe[j]);
		}
		FUZZ_CHECK(!rmig_rd_remote_find(&r, i, b->length), "lookup past block %u", i);
	}
	FUZZ_CHECK(used == r.nslices, "%u of %u slices used", used, r.nslices);
	FUZZ_CHECK(!rmig_rd_remote_find(&r, FUZZ_NBLOCKS, 0), "lookup of a block past the table");
	check_encode(&r, in, size);
	rmig_rd_remote_release(&r);
out:
	free(in);
	return 0;
}
