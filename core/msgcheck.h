/* SPDX-License-Identifier: MIT */
/*
 * Pure checks of the channel message bodies a destination receives (RAM,
 * DEV): no I/O, no engine state, so that core/dst/dst_chan.c and the fuzz targets
 * (fuzz/) run the very same code. Each returns 0 or -EPROTO with a sentence
 * in @why (the caller adds which channel).
 *
 * The file transport decodes the RAM messages it stores with these too, so
 * this header is one transports may include: it declares only the checks
 * and their results, not the wire layout (core/wire.h), and its API stays
 * as it is while transport/file relies on it.
 */
#ifndef RMIG_CORE_MSGCHECK_H
#define RMIG_CORE_MSGCHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "xport.h"

/* A RAM body's head, checked: its offsets follow it, normal ones first. */
struct rmig_ram_msg {
	uint32_t block;
	uint32_t normal;
	uint32_t zero;
};

/*
 * RAM body of @len bytes with header flags @flags: page counts against
 * @ppp (pages per packet), length against the counts, block against
 * @blocks, and the PLACED flag against the transport (@placed, named
 * @xname in the message). The offsets are not looked at.
 */
int rmig_ram_check_head(const uint8_t *body, uint32_t len, uint32_t flags,
			const struct rmig_block *blocks, unsigned int nblocks, uint32_t ppp,
			bool placed, const char *xname, struct rmig_ram_msg *m, char *why,
			size_t whylen);

/*
 * Every offset of a RAM body that passed rmig_ram_check_head(): inside
 * block @b and page aligned. Copies them, in order, to @offsets (room for
 * normal + zero).
 */
int rmig_ram_check_offsets(const uint8_t *body, const struct rmig_block *b,
			   const struct rmig_ram_msg *m, uint64_t *offsets, char *why,
			   size_t whylen);

/* A DEV body, checked: @data points into the body. */
struct rmig_dev_msg {
	uint64_t seq;
	uint32_t instance;
	uint32_t len;
	const uint8_t *data;
	char id[RMIG_IDSTR_MAX];
};

/* DEV body of @len bytes: id length, data length, total, and an id without NUL. */
int rmig_dev_check(const uint8_t *body, uint32_t len, struct rmig_dev_msg *m, char *why,
		   size_t whylen);

#endif /* RMIG_CORE_MSGCHECK_H */
