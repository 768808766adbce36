/* SPDX-License-Identifier: MIT */
/*
 * Connections (conn.c): rdma_cm set-up, active and passive, the QP and its
 * CQ, tear-down, and the conn ops table. Above every layer but rdma.c, which
 * alone calls it.
 */
#ifndef RMIG_TRANSPORT_RDMA_CONN_H
#define RMIG_TRANSPORT_RDMA_CONN_H

#include "transport/rdma/types.h"

/* Connection private data (rdma_cm REQ and REP), big-endian on the wire */
#define RD_CM_MAGIC    0x524d4452u /* "RMDR" */
#define RD_CM_VERSION  1u
#define RD_CM_PRIV_LEN 16u  /* the least a peer sends */
#define RD_CM_PRIV_WIRE 20u /* what we send: the vid too */
struct rd_cm_priv {
	uint32_t nbufs;	   /* receive buffers posted: the peer's initial credits */
	uint32_t buf_size; /* bytes per receive buffer: the largest SEND accepted */
	uint16_t flags;	   /* RD_CM_F_*; 0 from peers that predate them */
	uint32_t vid;	   /* rails.c: the channel's id across rails (0: none) */
};
/* the connection is a rail's own, for its hello (rails.c), not the core's */
#define RD_CM_F_RAIL_HELLO  0x0001u
/* the connection takes over channel vid from a dead rail (rails.c) */
#define RD_CM_F_RAIL_RESUME 0x0002u
void rmig_rd_cm_priv_encode(uint8_t out[RD_CM_PRIV_WIRE], const struct rd_cm_priv *p);
int rmig_rd_cm_priv_decode(const void *in, size_t len, struct rd_cm_priv *p);

int rmig_rd_conn_alloc(struct rd_xport *x, const char *label, struct rd_conn **cp);
int rmig_rd_conn_setup_qp(struct rd_conn *c);
void rmig_rd_conn_free(struct rd_conn *c);
int rmig_rd_connect(struct rd_xport *x, const char *label, struct rd_conn **cp,
		    struct rmig_msgbuf *err);
int rmig_rd_accept(struct rd_xport *x, int timeout_ms, struct rd_conn **cp,
		   struct rmig_msgbuf *err);
int rmig_rd_listen_setup(struct rd_xport *x, struct rmig_msgbuf *err);
void rmig_rd_conn_close(struct rd_conn *c);
void rmig_rd_conn_shutdown(struct rd_conn *c);
int rmig_rd_cm_event_error(const struct rdma_cm_event *ev, const char *what,
			   struct rmig_msgbuf *err);

/* Every conn's ops (rmig_rd_conn_alloc() sets them). */
extern const struct rmig_conn_ops rmig_rd_conn_ops;

#endif /* RMIG_TRANSPORT_RDMA_CONN_H */
