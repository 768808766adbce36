/* SPDX-License-Identifier: MIT */
/*
 * Per-channel totals, and their sum into struct rmig_stats: one place for
 * both rmig_src_get_stats() and rmig_dst_get_stats().
 */
#ifndef RMIG_CORE_STATS_H
#define RMIG_CORE_STATS_H

#include <stdatomic.h>
#include <stdint.h>

#include "rmig/rmig.h"

struct rmig_conn;

/* Per-channel totals; written by the channel's thread, read by anyone for stats. */
struct rmig_totals {
	_Atomic uint64_t packets;
	_Atomic uint64_t normal_pages;
	_Atomic uint64_t zero_pages;
	_Atomic uint64_t data_bytes;
	_Atomic uint64_t dev_chunks;
	_Atomic uint64_t dev_bytes;
	_Atomic uint64_t syncs;
	_Atomic uint64_t zero_written;
};

/*
 * Add one channel's totals, and the bytes its conn @c (NULL: none yet) put
 * on the wire, to @s. Any thread: relaxed loads of counters still moving.
 */
void rmig_totals_add(struct rmig_stats *s, const struct rmig_totals *t,
		     const struct rmig_conn *c);

#endif
