/* SPDX-License-Identifier: MIT */
/*
 * Memory windows (mw.c): the destination's RAM opened to one channel's QP
 * only. Above progress.c, stream.c and mr.c; below rdma.c and conn.c's ops
 * table.
 *
 * Once a channel has proved it belongs to the authenticated session, the
 * core calls the conn's chan_open() on both sides. The destination then
 * (with windows) allocates a type 2 window per MR slice registered so far
 * (waiting for the first one), binds each on that channel's QP with
 * REMOTE_WRITE, waits for the binds to complete and sends the channel's
 * table of window rkeys on the channel itself; the source waits for it and
 * writes with those rkeys on that channel only. A type 2 window is bound
 * to its QP: the same rkey on any other QP, of this migration or another,
 * is a remote access error. Without windows the destination sends an
 * empty table and the MR rkeys of the WELCOME stand (scoped by the
 * xport's own protection domain).
 *
 * With streamed registration, slices registered later are bound by the
 * xport's binder thread on every open channel; until then the channel's
 * table marks them pending (version 2) and names the channel's own status
 * table (one u64 per slice, mr.h), readable only through a REMOTE_READ
 * window bound to the same QP, where each window's rkey appears once its
 * bind completed. The source reads it as it reads a WELCOME's (regwait.c).
 *
 * On the channel, before any message of the core:
 *   u32 length (big-endian), then @length bytes: an MR table (mr.h) whose
 *   rkeys are this channel's windows; length 0: no windows.
 */
#ifndef RMIG_TRANSPORT_RDMA_MW_H
#define RMIG_TRANSPORT_RDMA_MW_H

#include "transport/rdma/types.h"

/* The conn op: see core/xport.h. */
int rmig_rd_chan_open(struct rmig_conn *bc, int timeout_ms);
/*
 * Deallocate @c's windows (their rkeys stop working), after taking it from
 * the binder (whose thread ends with the last channel). Must hold
 * c->x->mr_lock.
 */
void rmig_rd_mws_release(struct rd_conn *c);
/* Every conn's windows, before the MRs go. Must hold x->lock and then x->mr_lock. */
void rmig_rd_mws_release_all(struct rd_xport *x);

#endif /* RMIG_TRANSPORT_RDMA_MW_H */
