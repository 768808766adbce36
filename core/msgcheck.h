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

/*
 * Whole channel messages, for a transport that stores what channels send
 * (file): it sees each message as send() hands it over, header and body in
 * one buffer, and tells them apart with these, without the wire layout.
 */
enum rmig_chan_kind {
	RMIG_CK_OTHER = 0, /* not a channel message: the caller refuses it */
	RMIG_CK_CHAN,	   /* the channel's hello */
	RMIG_CK_RAM,
	RMIG_CK_DEV,
	RMIG_CK_SYNC,
	RMIG_CK_FIN,
};

struct rmig_chan_msg {
	enum rmig_chan_kind kind;
	const char *name; /* the message type's name, for sentences */
	uint32_t flags;
	uint32_t len; /* body bytes */
	uint64_t seq;
	const uint8_t *body;
};

/* Bytes of a DEV body's fixed head (before the id): a file's record keeps it as is. */
#define RMIG_DEV_HEAD_LEN 24u
/* Bytes of a session id (the source's uuid) in a channel hello. */
#define RMIG_SESSION_ID_LEN 16u
/* A FIN body's totals, in order, and their names for sentences. */
#define RMIG_FIN_TOTALS 7u
extern const char *const rmig_fin_total_names[RMIG_FIN_TOTALS];

/* @msg of @len bytes: a header that decodes, and a body of exactly the length it says. */
int rmig_chan_msg_check(const void *msg, size_t len, struct rmig_chan_msg *m, char *why,
			size_t whylen);
/* A channel hello's body: which channel, and the session it belongs to (RMIG_SESSION_ID_LEN bytes). */
int rmig_chan_hello_check(const struct rmig_chan_msg *m, uint32_t *channel,
			  const uint8_t **session, char *why, size_t whylen);
/* A SYNC's body: its round. */
int rmig_sync_check(const struct rmig_chan_msg *m, uint64_t *round, char *why, size_t whylen);
/* A FIN's body: the channel's totals, in rmig_fin_total_names order. */
int rmig_fin_check(const struct rmig_chan_msg *m, uint64_t totals[RMIG_FIN_TOTALS], char *why,
		   size_t whylen);

#endif /* RMIG_CORE_MSGCHECK_H */
