/* SPDX-License-Identifier: MIT */
/*
 * The control protocol shared by source and destination: framing of one
 * message on a conn, the HELLO block table, and status messages
 * (WELCOME / RESULT / ABORT).
 */
#ifndef RMIG_CORE_PROTO_H
#define RMIG_CORE_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "wire.h"
#include "xport.h"

/* Send header + body as one message (body may be NULL when len is 0). */
int rmig_msg_send(struct rmig_conn *c, uint16_t type, uint32_t flags, uint64_t seq,
		  const void *body, size_t len);

/*
 * Receive one message of at most @max_body bytes: header validated, body in a
 * malloc'd buffer (*@body, NULL when empty) the caller frees. On a protocol
 * error the reason is in @why.
 */
int rmig_msg_recv(struct rmig_conn *c, int timeout_ms, size_t max_body, struct rmig_hdr *h,
		  void **body, char *why, size_t whylen);

/* WELCOME / RESULT / ABORT */
int rmig_status_send(struct rmig_conn *c, uint16_t type, uint64_t seq, int status,
		     const char *msg, const void *info, size_t info_len);
/* The same with header @flags (WELCOME: RMIG_WF_POSTCOPY) */
int rmig_status_send_flags(struct rmig_conn *c, uint16_t type, uint32_t flags, uint64_t seq,
			   int status, const char *msg, const void *info, size_t info_len);
/*
 * Parse a status body. *@info points into @body. Returns 0 or -EPROTO with
 * the reason in @msg.
 */
int rmig_status_parse(const void *body, size_t len, int *status, char *msg, size_t msglen,
		      const void **info, size_t *info_len);

struct rmig_hello {
	uint8_t uuid[RMIG_UUID_LEN];
	uint32_t channels;
	uint32_t pages_per_packet;
	uint32_t nblocks;
	uint32_t flags;
};

/* Encode HELLO for @blocks into a malloc'd buffer. */
int rmig_hello_encode(const struct rmig_hello *h, const struct rmig_block *blocks,
		      unsigned int nblocks, void **out, size_t *len);

/*
 * Parse HELLO and check it against the destination's own table and limits.
 * Returns 0, or -EPROTO with a sentence naming the first difference in @why.
 */
int rmig_hello_check(const void *body, size_t len, const struct rmig_block *blocks,
		     unsigned int nblocks, unsigned int max_channels, struct rmig_hello *out,
		     char *why, size_t whylen);

/* Largest HELLO body a destination accepts. */
#define RMIG_HELLO_MAX                                                                   \
	(sizeof(struct rmig_wire_hello) +                                                \
	 (size_t)RMIG_MAX_BLOCKS * (sizeof(struct rmig_wire_block) + RMIG_BLOCK_NAME_MAX))

#endif
