/* SPDX-License-Identifier: MIT */
/*
 * Page data (datapath.c): RDMA WRITEs into the destination's RAM, the
 * stream header behind them, and flush. Above progress.c and stream.c.
 */
#ifndef RMIG_TRANSPORT_RDMA_DATAPATH_H
#define RMIG_TRANSPORT_RDMA_DATAPATH_H

#include "transport/rdma/types.h"

int rmig_rd_send(struct rmig_conn *bc, const void *hdr, size_t hdr_len, const struct rmig_seg *segs,
		 unsigned int nsegs);
int rmig_rd_flush(struct rmig_conn *bc);

#endif /* RMIG_TRANSPORT_RDMA_DATAPATH_H */
