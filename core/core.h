/* SPDX-License-Identifier: MIT */
/* Pieces shared by the source and destination halves of core/. */
#ifndef RMIG_CORE_CORE_H
#define RMIG_CORE_CORE_H

#include <stdbool.h>

#include "proto.h"
#include "sched.h"
#include "stats.h"
#include "xport.h"

/* Copy and validate caller options (NULL: defaults). */
int rmig_opts_copy(struct rmig_opts *dst, const struct rmig_opts *src, bool is_source);
/* Validate @d and append it; returns the new index or a negative errno. */
int rmig_blocks_add(struct rmig_block **blocks, unsigned int *nblocks,
		    const struct rmig_block_desc *d);

#endif
