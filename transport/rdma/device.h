/* SPDX-License-Identifier: MIT */
/*
 * The device of an xport (device.c): choosing it and its port, checking the
 * GID, and registering the local blocks. Above mr.c, below conn.c.
 */
#ifndef RMIG_TRANSPORT_RDMA_DEVICE_H
#define RMIG_TRANSPORT_RDMA_DEVICE_H

#include "transport/rdma/types.h"

int rmig_rd_use_device(struct rd_xport *x, struct ibv_context *ctx, uint8_t port,
		       struct rmig_msgbuf *err);
int rmig_rd_check_gid(struct rd_xport *x, struct rdma_cm_id *id, struct rmig_msgbuf *err);
/* @stream: in the background, slice by slice (mr_stream.c); else all of it now */
int rmig_rd_register_blocks(struct rd_xport *x, bool stream, struct rmig_msgbuf *err);
/* The memlock limit allows registering the blocks (checked before any peer comes). */
int rmig_rd_memlock_precheck(struct rd_xport *x, struct rmig_msgbuf *err);
int rmig_rd_no_device(const struct rmig_verbs_ops *v, const char *addr, int code,
		      struct rmig_msgbuf *err);

#endif /* RMIG_TRANSPORT_RDMA_DEVICE_H */
