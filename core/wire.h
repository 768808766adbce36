/* SPDX-License-Identifier: MIT */
/*
 * rmig's wire format. Every message on every stream starts with a 24-byte
 * header; all integers are big-endian; bodies are padded to 8 bytes where a
 * string would leave them unaligned. docs/design.md describes each message.
 *
 * Control stream:  with a pre-shared key first AUTH_HELLO (src->dst),
 *                  AUTH_CHALLENGE (dst->src), AUTH_PROOF (src->dst); then
 *                  HELLO (src->dst), WELCOME (dst->src), DONE (src->dst),
 *                  RESULT (dst->src), ABORT (either way),
 *                  SWITCHOVER_ACK (dst->src, any number, before RESULT).
 * Channel stream:  CHAN first, then RAM / DEV / SYNC in any order, FIN last.
 *                  Back from dst to src, only with placed data (rdma):
 *                  RELEASE for each SYNC once the destination's caller
 *                  let the round go.
 *
 * The header's seq numbers the messages of one stream from 0; the receiver
 * checks every one, so a lost, repeated or reordered message is caught.
 */
#ifndef RMIG_CORE_WIRE_H
#define RMIG_CORE_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "byteorder.h"
#include "rmig/rmig.h"

#define RMIG_WIRE_MAGIC 0x524d4947u /* "RMIG" */
/* 2: postcopy runs, PC_PULL_INFO/PC_PULLED, WELCOME POSTCOPY; 3: AUTH_*, CHAN's proof */
#define RMIG_WIRE_VERSION 3u
#define RMIG_UUID_LEN 16
#define RMIG_MAX_PAGES_PER_PACKET 4096u
/* Largest body of any message (a DEV chunk with its id). */
#define RMIG_WIRE_BODY_MAX (RMIG_DEV_CHUNK_MAX + 8192u)

enum rmig_msg_type {
	RMIG_MSG_HELLO = 1,
	RMIG_MSG_WELCOME = 2,
	RMIG_MSG_CHAN = 3,
	RMIG_MSG_RAM = 4,
	RMIG_MSG_DEV = 5,
	RMIG_MSG_SYNC = 6,
	RMIG_MSG_FIN = 7,
	RMIG_MSG_DONE = 8,
	RMIG_MSG_RESULT = 9,
	RMIG_MSG_ABORT = 10,
	RMIG_MSG_SWITCHOVER_ACK = 11, /* control, dst->src: a device's initial data is loaded */
	RMIG_MSG_RELEASE = 12,	      /* channel, dst->src: placed data may go past SYNC round */
	/* postcopy, all on the control connection (core/postcopy/postcopy.h) */
	RMIG_MSG_PC_DISCARD = 13, /* src->dst: pages stale on the destination (dirty bitmap words) */
	RMIG_MSG_PC_START = 14,	  /* src->dst: vCPUs stopped, last SYNC round; pull from now on */
	RMIG_MSG_PAGE_REQ = 15,	  /* dst->src: send this page */
	RMIG_MSG_PAGE_DATA = 16,  /* src->dst: a page's final content (or "zero") */
	RMIG_MSG_PC_DONE = 17,	  /* dst->src: every page is present, postcopy over */
	/* src->dst, before PC_START: the transport's pull info (rdma: MR table for RDMA READ) */
	RMIG_MSG_PC_PULL_INFO = 18,
	/* dst->src: pages pulled by the transport since the last report (PC_DISCARD's body) */
	RMIG_MSG_PC_PULLED = 19,
	/* mutual authentication with a pre-shared key (core/auth.h), control connection */
	RMIG_MSG_AUTH_HELLO = 20,     /* src->dst, first: session id, the source's nonce */
	RMIG_MSG_AUTH_CHALLENGE = 21, /* dst->src: the destination's nonce and proof */
	RMIG_MSG_AUTH_PROOF = 22,     /* src->dst: the source's proof */
	RMIG_MSG_MAX_TYPE = RMIG_MSG_AUTH_PROOF,
};

/* Header flags, each meaningful on one message type */
#define RMIG_WF_PLACED (1u << 0)   /* RAM: page data already written remotely, not in the stream */
#define RMIG_WF_POSTCOPY (1u << 1) /* WELCOME: the destination accepts a postcopy switchover */

/* The flags a message of @type may carry. */
static inline uint32_t rmig_wf_allowed(unsigned int type)
{
	return type == RMIG_MSG_RAM ? RMIG_WF_PLACED : type == RMIG_MSG_WELCOME ? RMIG_WF_POSTCOPY : 0;
}

struct rmig_wire_hdr {
	uint32_t magic;
	uint16_t version;
	uint16_t type;
	uint32_t flags;
	uint32_t len; /* body bytes after the header; page data not included */
	uint64_t seq;
} __attribute__((packed));
_Static_assert(sizeof(struct rmig_wire_hdr) == 24, "wire header is 24 bytes");

/* HELLO body: fixed part, then nblocks x (rmig_wire_block + name padded to 8) */
struct rmig_wire_hello {
	uint8_t uuid[RMIG_UUID_LEN];
	uint32_t channels;
	uint32_t pages_per_packet;
	uint32_t nblocks;
	uint32_t flags;
} __attribute__((packed));
_Static_assert(sizeof(struct rmig_wire_hello) == 32, "hello is 32 bytes");

struct rmig_wire_block {
	uint64_t length;
	uint32_t page_size;
	uint16_t name_len; /* without NUL */
	uint16_t pad;
} __attribute__((packed));
_Static_assert(sizeof(struct rmig_wire_block) == 16, "block entry is 16 bytes");

/* WELCOME / RESULT / ABORT body: status, then msg_len bytes of text, then info_len bytes */
struct rmig_wire_status {
	int32_t status; /* 0 or a negative errno */
	uint32_t msg_len;
	uint32_t info_len;
	uint32_t pad;
} __attribute__((packed));
_Static_assert(sizeof(struct rmig_wire_status) == 16, "status is 16 bytes");

struct rmig_wire_chan {
	uint8_t uuid[RMIG_UUID_LEN];
	uint32_t channel;
	uint32_t pad;
} __attribute__((packed));
_Static_assert(sizeof(struct rmig_wire_chan) == 24, "chan is 24 bytes");

/*
 * Authentication (core/auth.c). HMAC-SHA256 proofs of 32 bytes over fresh
 * 32-byte nonces; an authenticated session's CHAN carries rmig_wire_chan_auth
 * right after rmig_wire_chan.
 */
#define RMIG_AUTH_NONCE_LEN 32
#define RMIG_AUTH_MAC_LEN 32
#define RMIG_AUTH_ALG_HMAC_SHA256 1u

struct rmig_wire_auth_hello {
	uint8_t session[RMIG_UUID_LEN]; /* HELLO's uuid must be the same */
	uint8_t nonce[RMIG_AUTH_NONCE_LEN];
	uint32_t alg; /* RMIG_AUTH_ALG_HMAC_SHA256 */
	uint32_t pad;
} __attribute__((packed));
_Static_assert(sizeof(struct rmig_wire_auth_hello) == 56, "auth hello is 56 bytes");

struct rmig_wire_auth_challenge {
	uint8_t nonce[RMIG_AUTH_NONCE_LEN];
	uint8_t mac[RMIG_AUTH_MAC_LEN]; /* the destination's proof */
} __attribute__((packed));
_Static_assert(sizeof(struct rmig_wire_auth_challenge) == 64, "auth challenge is 64 bytes");

struct rmig_wire_auth_proof {
	uint8_t mac[RMIG_AUTH_MAC_LEN]; /* the source's proof */
} __attribute__((packed));
_Static_assert(sizeof(struct rmig_wire_auth_proof) == 32, "auth proof is 32 bytes");

struct rmig_wire_chan_auth {
	uint8_t nonce[RMIG_AUTH_NONCE_LEN]; /* the channel's own, fresh */
	uint8_t mac[RMIG_AUTH_MAC_LEN];	    /* keyed by the session's channel key */
} __attribute__((packed));
_Static_assert(sizeof(struct rmig_wire_chan_auth) == 64, "chan auth is 64 bytes");

/* RAM body: then (normal + zero) big-endian u64 offsets, normal ones first */
struct rmig_wire_ram {
	uint32_t block;
	uint32_t normal;
	uint32_t zero;
	uint32_t pad;
} __attribute__((packed));
_Static_assert(sizeof(struct rmig_wire_ram) == 16, "ram is 16 bytes");

/* DEV body: then id (idlen bytes, padded to 8), then data (len bytes) */
struct rmig_wire_dev {
	uint64_t seq;
	uint32_t instance;
	uint16_t idlen;
	uint16_t pad;
	uint32_t len;
	uint32_t pad2;
} __attribute__((packed));
_Static_assert(sizeof(struct rmig_wire_dev) == 24, "dev is 24 bytes");

struct rmig_wire_sync {
	uint64_t round;
} __attribute__((packed));

/* FIN body: the channel's own totals, which the destination checks */
struct rmig_wire_fin {
	uint64_t packets; /* RAM + DEV messages */
	uint64_t normal_pages;
	uint64_t zero_pages;
	uint64_t data_bytes;
	uint64_t dev_chunks;
	uint64_t dev_bytes;
	uint64_t syncs;
} __attribute__((packed));
_Static_assert(sizeof(struct rmig_wire_fin) == 56, "fin is 56 bytes");

/* DONE body: migration totals */
struct rmig_wire_done {
	uint64_t rounds;
	uint64_t dev_chunks;
	uint64_t channels;
} __attribute__((packed));
_Static_assert(sizeof(struct rmig_wire_done) == 24, "done is 24 bytes");

/* SWITCHOVER_ACK body: then the device id (idlen bytes, padded to 8) */
struct rmig_wire_ack {
	uint32_t instance;
	uint16_t idlen; /* 1..RMIG_IDSTR_MAX - 1, without NUL */
	uint16_t pad;
} __attribute__((packed));
_Static_assert(sizeof(struct rmig_wire_ack) == 8, "ack is 8 bytes");

/* PC_DISCARD body: then nwords big-endian u64 bitmap words (bit i of word w: page
 * (first_word + w) * 64 + i of the block) */
struct rmig_wire_pc_discard {
	uint32_t block;
	uint32_t nwords; /* 1..RMIG_PC_DISCARD_WORDS */
	uint64_t first_word;
} __attribute__((packed));
_Static_assert(sizeof(struct rmig_wire_pc_discard) == 16, "pc_discard is 16 bytes");
#define RMIG_PC_DISCARD_WORDS 1024u

struct rmig_wire_pc_start {
	uint64_t round;	    /* the SYNC round every page queued before was loaded by */
	uint64_t discarded; /* pages announced by PC_DISCARD */
} __attribute__((packed));
_Static_assert(sizeof(struct rmig_wire_pc_start) == 16, "pc_start is 16 bytes");

/*
 * PAGE_REQ body: a run of npages pages from offset. PAGE_DATA body: the
 * same, then one flag byte per page (RMIG_PC_ZERO: a zero page, no data)
 * padded to 8, then the data of every other page, in order. npages is
 * 1..rmig_pc_run_max(page size).
 */
struct rmig_wire_page {
	uint32_t block;
	uint32_t npages;
	uint64_t offset;
} __attribute__((packed));
_Static_assert(sizeof(struct rmig_wire_page) == 16, "page is 16 bytes");
#define RMIG_PC_ZERO 1u
#define RMIG_PC_RUN_MAX 64u


struct rmig_wire_pc_done {
	uint64_t pulled; /* pages the destination received by PAGE_DATA */
} __attribute__((packed));

/* Host-order views used by encode/decode */
struct rmig_hdr {
	uint16_t type;
	uint32_t flags;
	uint32_t len;
	uint64_t seq;
};


/* Most pages one PAGE_REQ / PAGE_DATA carries: 64, fewer where they would not fit a body. */
static inline uint32_t rmig_pc_run_max(uint32_t page_size)
{
	uint32_t fit = (RMIG_WIRE_BODY_MAX - (uint32_t)sizeof(struct rmig_wire_page) -
			RMIG_PC_RUN_MAX) / page_size;

	return fit < RMIG_PC_RUN_MAX ? (fit ? fit : 1) : RMIG_PC_RUN_MAX;
}

/* PAGE_DATA's size for @npages pages, @data of them with data. */
static inline size_t rmig_pc_data_len(uint32_t npages, uint32_t data, uint32_t page_size)
{
	return sizeof(struct rmig_wire_page) + rmig_pad8(npages) + (size_t)data * page_size;
}

/* Encode a header into 24 bytes at @out. */
void rmig_hdr_encode(void *out, uint16_t type, uint32_t flags, uint32_t len, uint64_t seq);

/*
 * Decode and validate a header: magic, version, a known type, known flags,
 * and a body length no larger than RMIG_WIRE_BODY_MAX. Returns 0 or
 * -EPROTO, with a message naming the field in @why (at least 128 bytes).
 */
int rmig_hdr_decode(const void *in, struct rmig_hdr *h, char *why, size_t whylen);

const char *rmig_msg_name(unsigned int type);

#endif /* RMIG_CORE_WIRE_H */
