/* SPDX-License-Identifier: MIT */
/*
 * Mutual authentication with a pre-shared key (docs/security.md), at the
 * protocol level, over whatever stream the transport gives (inside TLS
 * when TLS is on).
 *
 * Control connection, before HELLO:
 *   src -> dst  AUTH_HELLO      session id S, source nonce Ns
 *   dst -> src  AUTH_CHALLENGE  destination nonce Nd, MACd
 *   src -> dst  AUTH_PROOF      MACs
 * with T = "rmig-auth-v1" || S || Ns || Nd,
 *   MACd = HMAC-SHA256(K, T || "dst"), MACs = HMAC-SHA256(K, T || "src").
 * The source checks MACd before it sends MACs or anything of its RAM
 * table; the destination checks MACs before it reads HELLO. Each channel
 * then proves it belongs to this session: CHAN carries its own fresh nonce
 * Nc and HMAC-SHA256(Kc, "rmig-chan-v1" || S || channel (be32) || Nc),
 * Kc = HMAC-SHA256(K, T || "chan"), a key only the two authenticated ends
 * know. All compares are constant time (CRYPTO_memcmp).
 */
#ifndef RMIG_CORE_AUTH_H
#define RMIG_CORE_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

#define RMIG_PSK_MIN 32u
#define RMIG_PSK_MAX 4096u
/* How long an unauthenticated connection may take over each step. */
#define RMIG_AUTH_DEADLINE_MS 3000

/* A handle's key: copied at create, the file read at listen/connect. */
struct rmig_key {
	char *file;	/* copy of opts->psk_file, or NULL */
	uint8_t *bytes; /* the key once loaded (or copied from opts->psk) */
	size_t len;
};

/*
 * Take the key of @o (psk_file or psk/psk_len) into @k and point @o's
 * fields at @k's copies, so the caller's memory may go. 0, -EINVAL (psk
 * with psk_len 0 or over RMIG_PSK_MAX), -ENOMEM.
 */
int rmig_key_copy(struct rmig_key *k, struct rmig_opts *o);
/* A key was given. */
static inline bool rmig_key_set(const struct rmig_key *k)
{
	return k->file || k->bytes;
}
/*
 * Read the key file (once) and check the key: the file must exist, be a
 * regular file with no access for group or others, and hold
 * RMIG_PSK_MIN..RMIG_PSK_MAX bytes. Afterwards @o->psk / @o->psk_len are
 * the key's bytes (a transport doing TLS with the key finds them there).
 * 0, or a negative errno with a sentence naming the file and the problem
 * (never the key) in @mb.
 */
int rmig_key_load(struct rmig_key *k, struct rmig_opts *o, struct rmig_msgbuf *mb);
/* Wipe and free. */
void rmig_key_free(struct rmig_key *k);

/* One authenticated session's secrets. */
struct rmig_auth {
	bool on;
	uint8_t session[RMIG_UUID_LEN];
	uint8_t chan_key[RMIG_AUTH_MAC_LEN];
};

/*
 * Source, on the control connection @c before HELLO: prove the key and
 * check the destination's proof. @seq is the control stream's next
 * sequence number. 0 and @a set up; -EACCES ("authentication failed ...")
 * when the destination's proof is wrong (ABORT sent); the destination's
 * status when it refused; another negative errno. The reason is in @why.
 */
int rmig_auth_src(struct rmig_conn *c, const struct rmig_key *k, const uint8_t *session,
		  uint64_t *seq, int timeout_ms, struct rmig_auth *a, char *why, size_t whylen);

/*
 * Destination, given the source's first control message (@h, @body,
 * already read and checked to be AUTH_HELLO number 0): answer with the
 * challenge and check the source's proof within @timeout_ms. 0 and @a set
 * up; -EACCES ("authentication failed ...", the peer told so) or another
 * negative errno, with the reason in @why.
 */
int rmig_auth_dst(struct rmig_conn *c, const struct rmig_key *k, const struct rmig_hdr *h,
		  const void *body, uint64_t *seq_in, uint64_t *seq_out, int timeout_ms,
		  struct rmig_auth *a, char *why, size_t whylen);

/* Source: channel @ch's proof (fresh nonce and MAC) into @out. 0 or -EIO (no random bytes). */
int rmig_auth_chan_prove(const struct rmig_auth *a, uint32_t ch,
			 uint8_t out[sizeof(struct rmig_wire_chan_auth)]);
/* Destination: true when @in proves channel @ch of the session @a. */
bool rmig_auth_chan_check(const struct rmig_auth *a, uint32_t ch,
			  const uint8_t in[sizeof(struct rmig_wire_chan_auth)]);

#endif
