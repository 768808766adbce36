/* SPDX-License-Identifier: MIT */
/*
 * What the live engine (core/live/) and the postcopy source
 * (core/postcopy/pc_src.c) need from the source engine (core/src/, these
 * are in src_live.c) beyond the public API: the block table, and the messages the destination
 * sends back on the control connection while the migration runs.
 */
#ifndef RMIG_CORE_SRC_LIVE_H
#define RMIG_CORE_SRC_LIVE_H

#include <stdbool.h>
#include <stdint.h>

#include "core/xport.h"

/*
 * The blocks of a connected source (owned by it, valid until it is
 * destroyed) and whether a destination is at the other end (false for
 * "file:" and "null:"). Returns 0, or -ENOTCONN before a successful connect
 * or after finish.
 */
int rmig_src_live_info(struct rmig_src *src, const struct rmig_block **blocks,
		       unsigned int *nblocks, bool *has_peer);

/*
 * Main thread: the source's error code, 0 if it has not failed. After a
 * failure, reads the destination's reason once (as the source's own calls
 * do), so rmig_src_error() names it; for failures seen by calls that cannot
 * read it themselves, such as rmig_src_queue_device_state() from a device.
 */
int rmig_src_peer_error(struct rmig_src *src);

/* A SWITCHOVER_ACK the destination sent. */
struct rmig_src_ack {
	uint32_t instance;
	char idstr[RMIG_IDSTR_MAX];
};

/*
 * Main thread: read one control message if one has begun to arrive within
 * @timeout_ms (0: only if already there). Reading starts only once a byte is
 * available; the rest of the message is read with the handle's timeout, so
 * the stream never loses step. Returns 1 with *@ack filled for a
 * SWITCHOVER_ACK; 0 when nothing arrived (or there is no destination); an
 * ABORT fails the source with the destination's reason and returns its code;
 * anything else fails it with -EPROTO.
 */
int rmig_src_poll_ctl(struct rmig_src *src, int timeout_ms, struct rmig_src_ack *ack);

/*
 * Postcopy (core/postcopy/pc_src.c), main thread, with a destination: send one
 * control message; receive one (any type but ABORT, which fails the source
 * with the destination's reason and returns its code), body malloc'd into
 * *@body (NULL when empty), at most @max_body bytes, waiting up to
 * @timeout_ms for it (negative: the handle's timeout). Failures fail the source.
 */
int rmig_src_ctl_send(struct rmig_src *src, uint16_t type, const void *body, size_t len);
int rmig_src_ctl_recv(struct rmig_src *src, int timeout_ms, size_t max_body, uint16_t *type,
		      void **body, uint32_t *len);

/*
 * Postcopy over, done or failed: withdraw the destination's access to local
 * RAM (rdma: deregister it, REMOTE_READ included). Channels may still send
 * stream messages (FIN), never page data.
 */
void rmig_src_revoke(struct rmig_src *src);

/*
 * Main thread: the migration failed here (@code, @msg; NULL: the source's
 * recorded error): tell the destination with ABORT, once, before the
 * connections go, so it reports this reason rather than a closed
 * connection. Nothing when the destination stopped first or after a cancel.
 */
void rmig_src_abort(struct rmig_src *src, int code, const char *msg);

/* Whether the destination accepts postcopy (it said so in WELCOME). */
bool rmig_src_peer_postcopy(struct rmig_src *src);

/*
 * Postcopy: what the destination needs to read this source's RAM itself,
 * into @buf (capacity *@len, size in *@len). Returns 0; 1 when the
 * transport cannot be read from (pulls then go by request on the control
 * connection: tcp; rdma without RMIG_F_POSTCOPY); or a negative errno
 * with the reason in rmig_src_error().
 */
int rmig_src_pull_info(struct rmig_src *src, void *buf, size_t *len);

#endif
