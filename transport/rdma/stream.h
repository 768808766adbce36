/* SPDX-License-Identifier: MIT */
/*
 * The byte stream of a conn (stream.c): SEND_WITH_IMM messages into the
 * peer's pre-posted buffers, with credit flow control. Above progress.c.
 */
#ifndef RMIG_TRANSPORT_RDMA_STREAM_H
#define RMIG_TRANSPORT_RDMA_STREAM_H

#include "transport/rdma/types.h"

/* Post every receive buffer and take the conn's receive completions; before connecting. */
int rmig_rd_stream_init(struct rd_conn *c);
int rmig_rd_post_recv_buf(struct rd_conn *c, unsigned int idx);
int rmig_rd_on_recv(struct rd_conn *c, const struct ibv_wc *wc);
int rmig_rd_stream_write(struct rd_conn *c, const void *buf, size_t len);
int rmig_rd_return_credits(struct rd_conn *c, unsigned int threshold);
int rmig_rd_recv(struct rmig_conn *bc, void *buf, size_t len, int timeout_ms);
/* Bytes that arrived and were not read, even from a failed conn (rails.c); hold c->mu. */
size_t rmig_rd_stream_salvage(struct rd_conn *c, void *buf, size_t len);

static inline unsigned int rd_credit_threshold(const struct rd_conn *c)
{
	return c->nrecv / 2 ? c->nrecv / 2 : 1;
}

#endif /* RMIG_TRANSPORT_RDMA_STREAM_H */
