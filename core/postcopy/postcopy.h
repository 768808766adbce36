/* SPDX-License-Identifier: MIT */
/*
 * Postcopy, the protocol both halves share: pc_src.c (source), pc_dst.c,
 * pc_dst_pull.c, pc_dst_place.c (destination), pc_parse.c (message bodies).
 *
 * Source (live engine, RMIG_LIVE_POSTCOPY): once the vCPUs are stopped and
 * the devices' final state is queued, the engine syncs every channel
 * (flushing the partial RAM slot first: the postcopy-prepare flush), so every page queued
 * before postcopy is loaded on the destination before it runs. Then
 * rmig_pc_src_run() announces the pages still dirty (PC_DISCARD: their copy
 * on the destination is stale or missing), sends PC_START with the last SYNC
 * round, and serves PAGE_REQ with PAGE_DATA (the source's RAM is final,
 * vCPUs stopped, and only read) until the destination sends PC_DONE.
 *
 * Destination (pc_dst.c, pc_dst_pull.c, pc_dst_place.c): a control reader
 * thread takes PC_DISCARD / PC_START / PAGE_DATA; once every channel has
 * passed the announced round, rmig_dst_wait_sync() drops every page not
 * received or discarded (MADV_DONTNEED), registers the blocks with
 * userfaultfd (MISSING mode) and returns RMIG_DST_POSTCOPY. A fault thread requests the pages the caller's
 * vCPUs touch, a background thread requests every other missing page in
 * order; arrived pages are placed with UFFDIO_COPY / UFFDIO_ZEROPAGE (which
 * wake the faulting threads). Without userfaultfd (or on memory it refuses)
 * the destination fetches every missing page before rmig_dst_wait_sync()
 * returns (degraded mode, reported by rmig_dst_postcopy_stats()).
 *
 * Pulls come in two kinds:
 *  - by request (tcp; rdma when the source lacks RMIG_F_POSTCOPY): PAGE_REQ
 *    on the control connection, answered by PAGE_DATA; the source knows
 *    what was pulled from the requests it served;
 *  - by the transport (RMIG_XCAP_PULL, rdma: RDMA READ): the source sends
 *    PC_PULL_INFO (its pull_info(): the MR table of its RAM, registered for
 *    remote read) before PC_START; the destination's pull thread reads runs
 *    of missing pages into a registered area, faulting pages first, places
 *    them with UFFDIO_COPY, and reports them with PC_PULLED every
 *    RMIG_PC_REPORT_MS, so a source whose destination dies can still name
 *    the pages not yet pulled. The source's CPU takes no part.
 * Either way the source checks at PC_DONE that every page it announced was
 * pulled, and the destination revokes the source's access to its RAM at
 * postcopy start (the NIC's pinned pages would go stale under MADV_DONTNEED).
 */
#ifndef RMIG_CORE_POSTCOPY_POSTCOPY_H
#define RMIG_CORE_POSTCOPY_POSTCOPY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/wire.h"
#include "core/xport.h"

/* Most pages the destination's background thread has asked for and not received. */
#define RMIG_PC_BG_WINDOW 512u
/* A fault asks for the page and up to this many in all after it, if missing */
#define RMIG_PC_FAULT_RUN 16u

/*
 * Pulls by the transport (rdma: RDMA READ): reads in flight at once, and
 * the most bytes one read covers (a run of missing pages; at least one
 * page). Faulting pages waiting for the pull thread, at most.
 */
#define RMIG_PC_PULL_SLOTS 32u
#define RMIG_PC_PULL_RUN (128u * 1024u)
#define RMIG_PC_FAULT_QUEUE 64u
/* How often the destination reports pulled pages to the source (PC_PULLED) */
#define RMIG_PC_REPORT_MS 20u

/*
 * Source, main thread, vCPUs stopped, after a SYNC_ALL: take every bit of
 * @dirty (one bitmap per block, as the live engine keeps them), announce
 * those pages, start postcopy and serve requests until PC_DONE.
 * *@pulled counts PAGE_DATA sent. On failure returns a negative errno with
 * a sentence in @why naming how many announced pages were never pulled (and
 * the first few), the source's RAM untouched.
 */
int rmig_pc_src_run(struct rmig_src *src, const struct rmig_block *blocks, unsigned int nblocks,
		    _Atomic uint64_t *const *dirty, uint64_t *pulled, char *why, size_t whylen);

/*
 * PC_DISCARD and PC_PULLED share one body: a window of one block's page
 * bitmap. rmig_pc_words_head() writes its header for @n words from word
 * @first and returns the body's length (the words follow, big-endian).
 * rmig_pc_words_parse() checks a received one against @blocks (whole
 * window inside the block, no bit past its last page) and returns 0 with
 * its fields, or -EPROTO; word k is then rmig_pc_word(body, k).
 */
size_t rmig_pc_words_head(uint8_t *out, uint32_t block, uint64_t first, uint32_t n);
int rmig_pc_words_parse(const uint8_t *body, size_t len, const struct rmig_block *blocks,
			unsigned int nblocks, uint32_t *block, uint64_t *first, uint32_t *n);

/*
 * Whether a page of @page_size fits one PAGE_DATA. Larger pages (1 GiB,
 * or 2 MiB with today's body limit) cannot be pulled by request, only by
 * the transport.
 */
static inline bool rmig_pc_page_fits(uint32_t page_size)
{
	return rmig_pc_data_len(1, 1, page_size) <= RMIG_WIRE_BODY_MAX;
}

/*
 * A run of pages named by PAGE_REQ or PAGE_DATA: @n pages of block @block
 * from byte offset @off.
 */
struct rmig_pc_run {
	uint32_t block;
	uint32_t n;
	uint64_t off;
};

/*
 * Source: a PAGE_REQ body of @len bytes, its run inside one block of
 * @blocks, aligned, 1..rmig_pc_run_max() pages. 0 or -EPROTO with a
 * sentence in @why.
 */
int rmig_pc_req_parse(const uint8_t *req, size_t len, const struct rmig_block *blocks,
		      unsigned int nblocks, struct rmig_pc_run *r, char *why, size_t whylen);

/*
 * Destination: a PAGE_DATA body of @len bytes (at least the run's 16): the
 * run as for PAGE_REQ, then one flag byte per page (only RMIG_PC_ZERO, zero
 * padding), and exactly the data of the *@ndata pages not flagged zero.
 * 0 or -EPROTO with a sentence in @why.
 */
int rmig_pc_data_parse(const uint8_t *body, size_t len, const struct rmig_block *blocks,
		       unsigned int nblocks, struct rmig_pc_run *r, uint32_t *ndata, char *why,
		       size_t whylen);

static inline uint64_t rmig_pc_word(const uint8_t *body, uint32_t k)
{
	return rmig_get_be64(body + sizeof(struct rmig_wire_pc_discard) + (size_t)k * 8);
}

#endif
