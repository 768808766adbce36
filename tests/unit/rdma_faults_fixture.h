/* SPDX-License-Identifier: MIT */
/*
 * The fixture of the rdma fault tests (test_rdma_faults_*.c): a fake verbs
 * table stands in for libibverbs and librdmacm (transport/rdma/verbs_ops.h),
 * so failures can be injected where real devices rarely produce them, and
 * the send queue, credits and MR tables can be checked WR by WR.
 *
 * The fake QP completes signaled WRs one per ibv_poll_cq() call (lazily, so
 * the send queue really fills up), and plays a peer that returns one credit
 * per SEND, in batches.
 *
 * setup() installs the fake table and a transport (fx) over two blocks
 * (mem, blocks); teardown() puts the real table back.
 */
#ifndef RMIG_TESTS_RDMA_FAULTS_FIXTURE_H
#define RMIG_TESTS_RDMA_FAULTS_FIXTURE_H

#include <stdbool.h>
#include <stdint.h>

#include "rmig-config.h"
#include "core/xport.h"
#include "transport/rdma/rdma.h"

/* ---------------------------------------------------------- the fake */

#define FK_LOG 8192
#define FK_WC  8192

struct fk_wr {
	uint64_t wr_id;
	enum ibv_wr_opcode opcode;
	bool signaled;
	unsigned int nsge;
	struct ibv_sge sge[RD_MAX_SGE];
	uint64_t len;
	uint64_t raddr;
	uint32_t rkey;
	uint32_t imm;
};

struct fake {
	/* send queue */
	struct fk_wr log[FK_LOG];
	unsigned int nlog;
	uint64_t posted, completed;
	uint64_t max_outstanding;
	/* WRITE payload: posted and completed totals, and the most outstanding */
	uint64_t cum[FK_LOG];
	uint64_t cum_posted, cum_done, max_out_bytes;
	unsigned int post_calls;
	int post_send_ret; /* returned by post_send call number post_send_fail_at */
	unsigned int post_send_fail_at;
	enum ibv_wc_status fail_status; /* the first signaled completion gets it */
	/* completion queue */
	struct ibv_wc wc[FK_WC];
	unsigned int wc_head, wc_tail;
	/* receive queue: posted buffers in order */
	struct ibv_sge rq[FK_LOG];
	uint64_t rq_id[FK_LOG];
	unsigned int rq_head, rq_tail;
	unsigned int recv_posts;
	/* the peer: window, SENDs not yet returned, credits returned per message */
	unsigned int window, unreturned, credit_batch, pending_return;
	unsigned int data_sends, credit_sends;
	/* memory registration */
	int reg_ret;
	unsigned int reg_fail_at, regs, deregs;
	/* devices */
	const char *devname;
};

extern struct fake fk;
extern struct ibv_pd fk_pd;
/* libibverbs/librdmacm with the fk_* calls in: what setup() installs */
extern struct rmig_verbs_ops fake_ops;

void fk_reset(void);
void fk_push_wc(const struct ibv_wc *wc);

/* ------------------------------------------------- fixture: one conn */

#define NB 2
extern uint8_t *mem[NB];
extern const uint64_t mem_len[NB];
extern struct rmig_block blocks[NB];
extern struct rd_xport fx;

int setup(void **state);
int teardown(void **state);
/* An established conn on the fake QP, with @depth/@sig/@max_msg. */
struct rd_conn *conn_new(unsigned int depth, unsigned int sig, uint64_t max_msg);
void conn_free(struct rd_conn *c);
/* Source-side tables: local MRs of @lslice, remote table of @rslice slices. */
void tables(uint64_t lslice, uint64_t rslice);

/* ---------------------------------------------- the tests, by file */

/* test_rdma_faults_mr.c: registration and MR tables */
void test_reg_enomem_names_memlock(void **state);
void test_memlock_verdict(void **state);
void test_slices_and_lookup(void **state);
void test_mrt_rejects_malformed(void **state);
void test_mrt_encode_no_room(void **state);
void test_mrt_streamed(void **state);

/* test_rdma_faults_sq.c: send queue and WRITEs */
void test_sq_depth_never_exceeded(void **state);
void test_inflight_bytes_bounded(void **state);
void test_inflight_big_write_alone(void **state);
void test_write_cuts_and_gathers(void **state);
void test_segment_checks(void **state);
void test_wc_errors(void **state);
void test_post_send_failure(void **state);

/* test_rdma_faults_stream.c: stream and credits */
void test_credits_bound_sends(void **state);
void test_recv_reassembles(void **state);
void test_credit_return_message(void **state);
void test_recv_protocol_errors(void **state);
void test_recv_after_peer_close(void **state);
void test_shutdown_fails_calls(void **state);
void test_recv_pages_is_enosys(void **state);

/* test_rdma_faults_cm.c: connection manager and devices */
void test_no_device(void **state);
void test_cm_event_errors(void **state);
void test_cm_private_data(void **state);

#endif
