/* SPDX-License-Identifier: MIT */
/*
 * The rdma transport's files, in layers: each file calls only files below
 * it, and reaches them through their own headers. Receive completions, the
 * one event that must travel up (progress -> stream), go through the
 * c->on_recv handler the stream sets at conn set-up.
 *
 *   rdma.c       the rmig_xport_ops table, xport life (create, revoke, destroy)
 *   conn.c       rdma_cm set-up (active, passive), QP and CQ, tear-down,
 *                the rmig_conn_ops table
 *   datapath.c   page data: RDMA WRITEs, the header behind them, flush
 *   pull.c       postcopy RDMA READs of the source's RAM
 *   mw.c         memory windows: each channel's rkeys, bound to its QP
 *   stream.c     the byte stream: SEND_WITH_IMM, receive ring, credits
 *   progress.c   send queue, CQ polling and dispatch, waiting and waking,
 *                the conn's first failure (rmig_rd_conn_fail, _check)
 *   device.c     device and port choice, GID check, block registration
 *   mr.c         MRs of the local blocks, MR tables for the peer
 *   verbs_ops.c  the verbs edge: every libibverbs/librdmacm call, 0/-errno
 *
 * types.h holds the types every layer shares (struct rd_xport,
 * struct rd_conn, the constants). This header includes every layer's header
 * and is for rdma.c and the unit tests (tests/unit/test_rdma_*.c) only: a
 * file inside a layer includes just the headers of the layers it uses.
 */
#ifndef RMIG_TRANSPORT_RDMA_RDMA_H
#define RMIG_TRANSPORT_RDMA_RDMA_H

#include "transport/rdma/conn.h"
#include "transport/rdma/datapath.h"
#include "transport/rdma/device.h"
#include "transport/rdma/mr.h"
#include "transport/rdma/mw.h"
#include "transport/rdma/progress.h"
#include "transport/rdma/pull.h"
#include "transport/rdma/stream.h"
#include "transport/rdma/types.h"
#include "transport/rdma/verbs_ops.h"

#endif /* RMIG_TRANSPORT_RDMA_RDMA_H */
