/* SPDX-License-Identifier: MIT */
/*
 * The source's wait for streamed registration (regwait.c): before a send's
 * WRITEs are posted, every slice they touch must be registered on both
 * sides. Above mr.c and progress.c, below datapath.c.
 */
#ifndef RMIG_TRANSPORT_RDMA_REGWAIT_H
#define RMIG_TRANSPORT_RDMA_REGWAIT_H

#include "transport/rdma/types.h"

/*
 * Call without the conn's lock. 0 once every local and remote slice under
 * @segs is registered; else the conn has failed with the reason (the
 * background failure naming block and slice, or a shutdown).
 */
int rmig_rd_wait_registered(struct rd_conn *c, const struct rmig_seg *segs, unsigned int nsegs);

#endif /* RMIG_TRANSPORT_RDMA_REGWAIT_H */
