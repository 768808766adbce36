/* SPDX-License-Identifier: MIT */
/*
 * Postcopy pulls by RDMA READ (pull.c): the source's MR table for remote
 * read, the destination's pull area, and the READs. Above progress.c.
 */
#ifndef RMIG_TRANSPORT_RDMA_PULL_H
#define RMIG_TRANSPORT_RDMA_PULL_H

#include "transport/rdma/types.h"

int rmig_rd_pull_info(struct rmig_xport *xp, void *buf, size_t *len);
int rmig_rd_pull_open(struct rmig_xport *xp, const void *info, size_t len, size_t size,
		      void **area);
void rmig_rd_pull_release(struct rd_xport *x);
int rmig_rd_pull(struct rmig_conn *bc, void *local, unsigned int block, uint64_t off, uint64_t len,
		 uint64_t *ticket);
int rmig_rd_pull_wait(struct rmig_conn *bc, uint64_t ticket, int timeout_ms);

#endif /* RMIG_TRANSPORT_RDMA_PULL_H */
