/* SPDX-License-Identifier: MIT */
/*
 * Postcopy, the destination's half (postcopy.h has the protocol): it works
 * on struct rmig_dst (core/dst/dst_priv.h). pc_dst.c is what core/dst/
 * calls: enabling, the control connection's reader thread, the start once
 * every channel passed the announced round (userfaultfd), the finish;
 * pc_dst_pull.c asks for the missing pages (fault, background and
 * pull-by-read threads); pc_dst_place.c puts arrived pages in place and
 * counts them. Calls go pc_dst.c -> pc_dst_pull.c -> pc_dst_place.c, never
 * back.
 */
#ifndef RMIG_CORE_PC_DST_H
#define RMIG_CORE_PC_DST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/dst/dst_priv.h"

static inline uint64_t blk_pages(const struct rmig_block *b)
{
	return b->length / b->page_size;
}

static inline uint64_t blk_words(const struct rmig_block *b)
{
	return (blk_pages(b) + 63) / 64;
}

/* ---- pc_dst.c: for core/dst/ -------------------------------------------- */

/* Under lock: postcopy was announced and every channel has passed its round. */
bool dst_pc_due(struct rmig_dst *d);
/*
 * Main thread, every channel past the announced round and idle: start
 * postcopy. RMIG_DST_POSTCOPY, or a negative errno (d failed).
 */
int dst_pc_start(struct rmig_dst *d);
/* Main thread, every channel finished: postcopy must be over. 0 or the failure. */
int dst_pc_finish(struct rmig_dst *d);
/* Stop and join postcopy's threads, free its state. */
void dst_pc_destroy(struct rmig_dst *d);
/* The control connection's reader once accepted, postcopy enabled (@arg: d). */
void *dst_pc_ctl_thread(void *arg);

/* ---- pc_dst_pull.c: asking for the missing pages ------------------------ */

void *dst_pc_fault_thread(void *arg);
void *dst_pc_bg_thread(void *arg);
void *dst_pc_pull_thread(void *arg);
/* pc_ctl: PC_PULL_INFO, the source lets the transport read its RAM. */
int dst_pc_pull_open(struct rmig_dst *d, const struct rmig_hdr *h, const uint8_t *body);

/* ---- pc_dst_place.c: pages in place ------------------------------------- */

/* One zeroed bitmap per block (uint64_t **), or NULL. */
void *dst_pc_bitmaps(struct rmig_dst *d);
void dst_pc_bitmaps_free(struct rmig_dst *d, void *p);
/* Send one message on the control connection (ctl_send_lock); failures fail d. */
int dst_pc_send(struct rmig_dst *d, uint16_t type, const void *body, size_t len);
/* d failed, postcopy is complete, or it is being torn down. */
bool dst_pc_should_stop(struct rmig_dst *d);
/* Unregister every block from userfaultfd, waking the threads faulting there. */
void dst_pc_unregister(struct rmig_dst *d);
/*
 * Put @len bytes of final content (@src; NULL: zeroes) at @off of block
 * @b. Returns 0 or a negative errno (d failed, or stopping).
 */
int dst_pc_put(struct rmig_dst *d, struct rmig_block *b, uint64_t off, const uint8_t *src,
	       uint64_t len);
/* Pages of block @bi are in place: count them; true when they were the last. */
bool dst_pc_mark_present(struct rmig_dst *d, unsigned int bi, uint64_t page, uint64_t n);
int dst_pc_send_done(struct rmig_dst *d);
/* pc_ctl: PAGE_DATA arrived. Returns 0 or a negative errno (d failed). */
int dst_pc_place(struct rmig_dst *d, const struct rmig_hdr *h, const uint8_t *body);

#endif
