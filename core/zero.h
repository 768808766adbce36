/* SPDX-License-Identifier: MIT */
#ifndef RMIG_CORE_ZERO_H
#define RMIG_CORE_ZERO_H

#include <stdbool.h>
#include <stddef.h>

#include "sched.h"
#include "xport_util.h" /* rmig_is_zero() */

/*
 * Partition @b's offsets in place so the pages with data come first
 * (b->normal of them) and zero pages after (b->zero). Order within each part
 * is kept for the normal pages, so contiguous runs still coalesce.
 */
void rmig_zero_detect(struct rmig_ram_batch *b, const unsigned char *block_host, size_t page_size);

#endif
