/* SPDX-License-Identifier: MIT */
/*
 * Postcopy, destination (pc_dst_place.c): what the other two files share:
 * the per-block bitmaps, sending on the control connection, and putting
 * arrived pages in place and counting them.
 */
#ifndef RMIG_CORE_PC_DST_PLACE_H
#define RMIG_CORE_PC_DST_PLACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/dst/dst_engine.h"

static inline uint64_t blk_pages(const struct rmig_block *b)
{
	return b->length / b->page_size;
}

static inline uint64_t blk_words(const struct rmig_block *b)
{
	return (blk_pages(b) + 63) / 64;
}

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
