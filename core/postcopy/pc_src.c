// SPDX-License-Identifier: MIT
/*
 * Postcopy, the source's half (postcopy.h): announce the pages still dirty
 * (PC_DISCARD), offer pulls by the transport (PC_PULL_INFO), start
 * (PC_START), then serve PAGE_REQ with PAGE_DATA and take PC_PULLED until
 * PC_DONE, checking that every announced page was pulled.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/barrier.h"
#include "core/core.h"
#include "core/postcopy/postcopy.h"
#include "core/src/src_live.h"
#include "core/zero.h"

struct pc_src_block {
	uint64_t *need; /* announced, not pulled yet */
	uint64_t nwords;
};

static uint64_t pc_unpulled(struct pc_src_block *pb, unsigned int nblocks, char *list, size_t len,
			    const struct rmig_block *blocks)
{
	uint64_t n = 0;
	size_t at = 0;
	unsigned int shown = 0;

	list[0] = '\0';
	for (unsigned int i = 0; i < nblocks; i++)
		for (uint64_t w = 0; w < pb[i].nwords; w++)
			for (uint64_t bits = pb[i].need[w]; bits; bits &= bits - 1) {
				uint64_t page = w * 64 + (uint64_t)__builtin_ctzll(bits);

				if (shown < 4 && at < len) {
					at += (size_t)snprintf(
					    list + at, len - at, "%s'%s'+0x%llx", shown ? ", " : "",
					    blocks[i].name,
					    (unsigned long long)(page << blocks[i].page_shift));
					shown++;
				}
				n++;
			}
	if (n > shown && at < len)
		snprintf(list + at, len - at, ", ...");
	return n;
}

/* PC_PULLED: the destination read these pages itself. */
static int pc_pulled(const struct rmig_block *blocks, unsigned int nblocks,
		     struct pc_src_block *pb, const uint8_t *body, uint32_t len, uint64_t *pulled,
		     char *why, size_t whylen)
{
	uint32_t bi, n;
	uint64_t first;

	if (rmig_pc_words_parse(body, len, blocks, nblocks, &bi, &first, &n)) {
		snprintf(why, whylen, "destination sent a malformed PC_PULLED (%u bytes)", len);
		return -EPROTO;
	}
	for (uint32_t k = 0; k < n; k++) {
		uint64_t bits = rmig_pc_word(body, k);

		*pulled += (uint64_t)__builtin_popcountll(bits);
		pb[bi].need[first + k] &= ~bits;
	}
	return 0;
}

/* PAGE_REQ: send the run's final content, zero pages as flags only. */
static int pc_answer(struct rmig_src *src, const struct rmig_block *blocks, unsigned int nblocks,
		     struct pc_src_block *pb, uint8_t *out, const uint8_t *req, uint32_t len,
		     uint64_t *pulled, char *why, size_t whylen)
{
	const struct rmig_block *b;
	uint32_t block, n, data = 0;
	struct rmig_pc_run run;
	uint64_t off, page;
	size_t at;
	int ret;

	ret = rmig_pc_req_parse(req, len, blocks, nblocks, &run, why, whylen);
	if (ret)
		return ret;
	block = run.block;
	n = run.n;
	off = run.off;
	b = &blocks[block];
	page = off >> b->page_shift;
	rmig_put_be32(out + RMIG_OFF(rmig_wire_page, block), block);
	rmig_put_be32(out + RMIG_OFF(rmig_wire_page, npages), n);
	rmig_put_be64(out + RMIG_OFF(rmig_wire_page, offset), off);
	memset(out + sizeof(struct rmig_wire_page), 0, rmig_pad8(n));
	at = sizeof(struct rmig_wire_page) + rmig_pad8(n);
	for (uint32_t k = 0; k < n; k++) {
		const uint8_t *p = b->host + off + ((uint64_t)k << b->page_shift);

		if (rmig_is_zero(p, b->page_size)) {
			out[sizeof(struct rmig_wire_page) + k] = RMIG_PC_ZERO;
			continue;
		}
		memcpy(out + at, p, b->page_size);
		at += b->page_size;
		data++;
	}
	ret = rmig_src_ctl_send(src, RMIG_MSG_PAGE_DATA, out,
				rmig_pc_data_len(n, data, b->page_size));
	if (ret) {
		snprintf(why, whylen, "%s", rmig_src_error(src));
		return ret;
	}
	for (uint64_t p = page; p < page + n; p++)
		pb[block].need[p / 64] &= ~(1ull << (p % 64));
	*pulled += n;
	return 0;
}

static int pc_serve(struct rmig_src *src, const struct rmig_block *blocks, unsigned int nblocks,
		    struct pc_src_block *pb, uint8_t *out, uint64_t *pulled, char *why,
		    size_t whylen)
{
	for (;;) {
		uint16_t type;
		uint32_t len;
		void *body;
		int ret;

		ret = rmig_src_ctl_recv(src, -1, RMIG_WIRE_BODY_MAX, &type, &body, &len);
		if (ret) {
			snprintf(why, whylen, "%s", rmig_src_error(src));
			return ret;
		}
		if (type == RMIG_MSG_SWITCHOVER_ACK) { /* late: nothing waits for it any more */
			free(body);
			continue;
		}
		if (type == RMIG_MSG_PC_PULLED) {
			ret = pc_pulled(blocks, nblocks, pb, body, len, pulled, why, whylen);
			free(body);
			if (ret)
				return ret;
			continue;
		}
		if (type == RMIG_MSG_PC_DONE) {
			char list[160];
			uint64_t left = pc_unpulled(pb, nblocks, list, sizeof(list), blocks);

			free(body);
			if (left) {
				snprintf(why, whylen,
					 "destination ended postcopy without pulling %llu announced "
					 "pages (%s)",
					 (unsigned long long)left, list);
				return -EPROTO;
			}
			return 0;
		}
		if (type != RMIG_MSG_PAGE_REQ) {
			free(body);
			snprintf(why, whylen, "destination sent %s (%u bytes) during postcopy",
				 rmig_msg_name(type), len);
			return -EPROTO;
		}
		ret = pc_answer(src, blocks, nblocks, pb, out, body, len, pulled, why, whylen);
		free(body);
		if (ret)
			return ret;
	}
}

int rmig_pc_src_run(struct rmig_src *src, const struct rmig_block *blocks, unsigned int nblocks,
		    _Atomic uint64_t *const *dirty, uint64_t *pulled, char *why, size_t whylen)
{
	struct rmig_stats st = {.size = sizeof(st)};
	uint8_t start[sizeof(struct rmig_wire_pc_start)];
	struct pc_src_block *pb;
	uint64_t discarded = 0;
	uint8_t *out = NULL;
	size_t ilen;
	int ret = 0;

	why[0] = '\0';
	pb = calloc(nblocks, sizeof(*pb));
	if (!pb)
		return -ENOMEM;
	for (unsigned int i = 0; i < nblocks; i++) {
		pb[i].nwords = (blocks[i].length / blocks[i].page_size + 63) / 64;
		pb[i].need = calloc(pb[i].nwords, sizeof(uint64_t));
		if (!pb[i].need) {
			ret = -ENOMEM;
			goto out;
		}
		/* vCPUs stopped: every write is marked; acquire pairs with the marks. */
		for (uint64_t w = 0; w < pb[i].nwords; w++) {
			pb[i].need[w] = rmig_xchg_acquire(&dirty[i][w], 0);
			discarded += (uint64_t)__builtin_popcountll(pb[i].need[w]);
		}
	}
	out = malloc(RMIG_WIRE_BODY_MAX);
	if (!out) {
		ret = -ENOMEM;
		goto out;
	}
	/* the transport may let the destination read our RAM itself (rdma) */
	ilen = RMIG_WIRE_BODY_MAX;
	ret = rmig_src_pull_info(src, out, &ilen);
	if (ret == 0)
		ret = rmig_src_ctl_send(src, RMIG_MSG_PC_PULL_INFO, out, ilen);
	if (ret < 0) {
		snprintf(why, whylen, "offering pulls: %s", rmig_src_error(src));
		goto out;
	}
	/*
	 * Pulled by request, every page must fit one PAGE_DATA: refuse now,
	 * before PC_START lets the destination run, not at its first fault.
	 */
	for (unsigned int i = 0; i < nblocks && ret > 0; i++) {
		if (rmig_pc_page_fits(blocks[i].page_size))
			continue;
		snprintf(why, whylen,
			 "postcopy by request cannot carry block '%s': its %u-byte pages do not "
			 "fit one PAGE_DATA (at most %u bytes)",
			 blocks[i].name, blocks[i].page_size, RMIG_WIRE_BODY_MAX);
		ret = -EMSGSIZE;
		goto out;
	}
	ret = 0;
	for (unsigned int i = 0; i < nblocks && !ret; i++) {
		for (uint64_t w = 0; w < pb[i].nwords && !ret; w += RMIG_PC_DISCARD_WORDS) {
			uint64_t n = pb[i].nwords - w, any = 0;

			if (n > RMIG_PC_DISCARD_WORDS)
				n = RMIG_PC_DISCARD_WORDS;
			for (uint64_t k = 0; k < n; k++) {
				any |= pb[i].need[w + k];
				rmig_put_be64(out + sizeof(struct rmig_wire_pc_discard) + k * 8,
					      pb[i].need[w + k]);
			}
			if (!any)
				continue;
			ret = rmig_src_ctl_send(src, RMIG_MSG_PC_DISCARD, out,
						rmig_pc_words_head(out, i, w, (uint32_t)n));
		}
	}
	if (!ret) {
		rmig_src_get_stats(src, &st);
		rmig_put_be64(start + RMIG_OFF(rmig_wire_pc_start, round), st.sync_rounds);
		rmig_put_be64(start + RMIG_OFF(rmig_wire_pc_start, discarded), discarded);
		ret = rmig_src_ctl_send(src, RMIG_MSG_PC_START, start, sizeof(start));
	}
	if (ret) {
		snprintf(why, whylen, "starting postcopy: %s", rmig_src_error(src));
		goto out;
	}
	ret = pc_serve(src, blocks, nblocks, pb, out, pulled, why, whylen);
	/* pulled or failed: nobody has any business reading our RAM any more */
	rmig_src_revoke(src);
	if (ret) {
		char list[256], first[RMIG_ERRMSG_MAX];
		uint64_t left = pc_unpulled(pb, nblocks, list, sizeof(list), blocks);

		snprintf(first, sizeof(first), "%s", why);
		snprintf(why, whylen,
			 "postcopy failed with %llu of %llu stale pages not yet pulled by the "
			 "destination (%s); source RAM intact: %.300s",
			 (unsigned long long)left, (unsigned long long)discarded,
			 left ? list : "none", first);
	}
out:
	for (unsigned int i = 0; i < nblocks; i++)
		free(pb[i].need);
	free(pb);
	free(out);
	return ret;
}
