// SPDX-License-Identifier: MIT
/*
 * The fake verbs and the one-conn fixture of the rdma fault tests
 * (rdma_faults_fixture.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

#include "rmig-config.h"
#include "core/wire.h"
#include "core/xport.h"
#include "transport/rdma/rdma.h"

#include "rdma_faults_fixture.h"

/* ---------------------------------------------------------- the fake */

struct fake fk;

static struct ibv_device fk_dev;
static struct ibv_context fk_ctx = {.device = &fk_dev};
struct ibv_pd fk_pd;
static struct ibv_qp fk_qp;
static struct ibv_cq fk_cq;
static struct ibv_comp_channel fk_cc;

void fk_reset(void)
{
	memset(&fk, 0, sizeof(fk));
	fk.window = RD_RECV_BUFS;
	fk.credit_batch = 4;
	fk.fail_status = IBV_WC_SUCCESS;
}

void fk_push_wc(const struct ibv_wc *wc)
{
	assert_true(fk.wc_head - fk.wc_tail < FK_WC);
	fk.wc[fk.wc_head++ % FK_WC] = *wc;
}

/* The peer receives a SEND: it returns credits every credit_batch of them. */
static void fk_peer_recv(void)
{
	struct ibv_wc wc = {0};

	if (!fk.credit_batch || ++fk.pending_return < fk.credit_batch)
		return;
	assert_true(fk.rq_head != fk.rq_tail); /* we must have a buffer posted */
	wc.wr_id = fk.rq_id[fk.rq_tail++ % FK_LOG];
	wc.status = IBV_WC_SUCCESS;
	wc.opcode = IBV_WC_RECV;
	wc.wc_flags = IBV_WC_WITH_IMM;
	wc.byte_len = 0;
	wc.imm_data = htobe32(RD_IMM(RD_IMM_CREDIT, fk.pending_return));
	fk.unreturned -= fk.pending_return;
	fk.pending_return = 0;
	fk_push_wc(&wc);
}

static int fk_post_send(struct ibv_qp *qp, struct ibv_send_wr *wr, struct ibv_send_wr **bad)
{
	fk.post_calls++;
	if (fk.post_send_fail_at && fk.post_calls == fk.post_send_fail_at) {
		*bad = wr;
		return fk.post_send_ret;
	}
	for (; wr; wr = wr->next) {
		struct fk_wr *l = &fk.log[fk.nlog++ % FK_LOG];

		memset(l, 0, sizeof(*l));
		l->wr_id = wr->wr_id;
		l->opcode = wr->opcode;
		l->signaled = wr->send_flags & IBV_SEND_SIGNALED;
		l->nsge = (unsigned int)wr->num_sge;
		for (int i = 0; i < wr->num_sge; i++) {
			l->sge[i] = wr->sg_list[i];
			l->len += wr->sg_list[i].length;
		}
		l->raddr = wr->wr.rdma.remote_addr;
		l->rkey = wr->wr.rdma.rkey;
		l->imm = be32toh(wr->imm_data);
		/* the conn numbers WRs 1, 2, 3... in posting order */
		assert_int_equal(wr->wr_id, fk.posted + 1);
		fk.posted++;
		if (fk.posted - fk.completed > fk.max_outstanding)
			fk.max_outstanding = fk.posted - fk.completed;
		if (wr->opcode == IBV_WR_RDMA_WRITE)
			fk.cum_posted += l->len;
		fk.cum[wr->wr_id % FK_LOG] = fk.cum_posted;
		if (fk.cum_posted - fk.cum_done > fk.max_out_bytes)
			fk.max_out_bytes = fk.cum_posted - fk.cum_done;
		if (wr->opcode == IBV_WR_SEND_WITH_IMM) {
			/* a SEND needs a receive buffer at the peer: never more than its window */
			assert_true(fk.unreturned < fk.window);
			if (l->len) {
				/* data never takes the last credit: it is kept for credit returns
				 */
				assert_true(fk.unreturned < fk.window - 1);
				fk.data_sends++;
			} else {
				fk.credit_sends++;
			}
			fk.unreturned++;
			fk_peer_recv();
		}
		if (l->signaled) {
			struct ibv_wc wc = {.wr_id = wr->wr_id, .status = fk.fail_status};

			fk.fail_status = IBV_WC_SUCCESS;
			fk_push_wc(&wc);
		}
	}
	return 0;
}

/* One completion per call: the send queue fills up as it would on a slow NIC. */
static int fk_poll_cq(struct ibv_cq *cq, int num, struct ibv_wc *wc)
{
	if (fk.wc_head == fk.wc_tail || num < 1)
		return 0;
	*wc = fk.wc[fk.wc_tail++ % FK_WC];
	if (!(wc->wr_id & RD_WRID_RECV) && wc->status == IBV_WC_SUCCESS && wc->wr_id > fk.completed) {
		fk.completed = wc->wr_id;
		fk.cum_done = fk.cum[wc->wr_id % FK_LOG];
	}
	return 1;
}

static int fk_post_recv(struct ibv_qp *qp, struct ibv_recv_wr *wr, struct ibv_recv_wr **bad)
{
	for (; wr; wr = wr->next) {
		fk.rq[fk.rq_head % FK_LOG] = wr->sg_list[0];
		fk.rq_id[fk.rq_head++ % FK_LOG] = wr->wr_id;
		fk.recv_posts++;
	}
	return 0;
}

static int fk_reg_mr(struct ibv_pd *pd, void *addr, size_t len, int access, struct ibv_mr **mr)
{
	struct ibv_mr *m;

	fk.regs++;
	if (fk.reg_fail_at && fk.regs >= fk.reg_fail_at)
		return fk.reg_ret;
	m = calloc(1, sizeof(*m));
	m->addr = addr;
	m->length = len;
	m->lkey = 0x1000 + fk.regs;
	m->rkey = 0x2000 + fk.regs;
	*mr = m;
	return 0;
}

static int fk_dereg_mr(struct ibv_mr *mr)
{
	fk.deregs++;
	free(mr);
	return 0;
}

static int fk_create_comp_channel(struct ibv_context *ctx, struct ibv_comp_channel **cc)
{
	fk_cc.fd = eventfd(0, EFD_CLOEXEC); /* never readable: completions come from poll_cq */
	*cc = &fk_cc;
	return 0;
}

static int fk_destroy_comp_channel(struct ibv_comp_channel *cc)
{
	close(cc->fd);
	return 0;
}

static int fk_create_cq(struct ibv_context *ctx, int cqe, void *cq_ctx, struct ibv_comp_channel *cc,
			struct ibv_cq **cq)
{
	*cq = &fk_cq;
	return 0;
}

static int fk_ok_cq(struct ibv_cq *cq)
{
	return 0;
}

static int fk_req_notify(struct ibv_cq *cq, int solicited)
{
	return 0;
}

static int fk_get_cq_event(struct ibv_comp_channel *cc, struct ibv_cq **cq, void **ctx)
{
	return -EAGAIN;
}

static void fk_ack_cq_events(struct ibv_cq *cq, unsigned int n)
{
}

static int fk_create_qp(struct rdma_cm_id *id, struct ibv_pd *pd, struct ibv_qp_init_attr *a)
{
	id->qp = &fk_qp;
	return 0;
}

static void fk_destroy_qp(struct rdma_cm_id *id)
{
	id->qp = NULL;
}

static int fk_modify_qp(struct ibv_qp *qp, struct ibv_qp_attr *a, int mask)
{
	return 0;
}

static int fk_destroy_id(struct rdma_cm_id *id)
{
	return 0;
}

static int fk_disconnect(struct rdma_cm_id *id)
{
	return 0;
}

static int fk_nodev_channel(struct rdma_event_channel **ch)
{
	return -ENODEV;
}

static int fk_get_device_list(struct ibv_device ***list, int *num)
{
	static struct ibv_device dev, *l[2];

	if (!fk.devname)
		return -ENODEV;
	snprintf(dev.name, sizeof(dev.name), "%s", fk.devname);
	l[0] = &dev;
	*list = l;
	*num = 1;
	return 0;
}

static void fk_free_device_list(struct ibv_device **list)
{
}

static const struct rmig_verbs_ops *real_verbs;
struct rmig_verbs_ops fake_ops;

static void fake_ops_init(void)
{
	fake_ops = rmig_verbs_real;
	fake_ops.get_device_list = fk_get_device_list;
	fake_ops.free_device_list = fk_free_device_list;
	fake_ops.reg_mr = fk_reg_mr;
	fake_ops.dereg_mr = fk_dereg_mr;
	fake_ops.create_comp_channel = fk_create_comp_channel;
	fake_ops.destroy_comp_channel = fk_destroy_comp_channel;
	fake_ops.create_cq = fk_create_cq;
	fake_ops.destroy_cq = fk_ok_cq;
	fake_ops.req_notify_cq = fk_req_notify;
	fake_ops.get_cq_event = fk_get_cq_event;
	fake_ops.ack_cq_events = fk_ack_cq_events;
	fake_ops.poll_cq = fk_poll_cq;
	fake_ops.create_qp = fk_create_qp;
	fake_ops.destroy_qp = fk_destroy_qp;
	fake_ops.modify_qp = fk_modify_qp;
	fake_ops.post_send = fk_post_send;
	fake_ops.post_recv = fk_post_recv;
	fake_ops.create_event_channel = fk_nodev_channel;
	fake_ops.destroy_id = fk_destroy_id;
	fake_ops.disconnect = fk_disconnect;
}

/* ------------------------------------------------- fixture: one conn */

uint8_t *mem[NB];
const uint64_t mem_len[NB] = {1u << 20, 40960};
struct rmig_block blocks[NB];
struct rd_xport fx;
static struct rdma_cm_id fk_id;

int setup(void **state)
{
	fk_reset();
	fake_ops_init();
	real_verbs = rmig_rdma_verbs;
	rmig_rdma_verbs = &fake_ops;
	for (int b = 0; b < NB; b++) {
		mem[b] = aligned_alloc(4096, mem_len[b]);
		memset(mem[b], 0x11 * (b + 1), mem_len[b]);
		snprintf(blocks[b].name, sizeof(blocks[b].name), "ram%d", b);
		blocks[b].host = mem[b];
		blocks[b].length = mem_len[b];
		blocks[b].page_size = 4096;
		blocks[b].page_shift = 12;
	}
	snprintf(fk_dev.name, sizeof(fk_dev.name), "fake0");
	memset(&fx, 0, sizeof(fx));
	fx.v = &fake_ops;
	fx.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	fx.ctx = &fk_ctx;
	fx.pd = &fk_pd;
	fx.sq_depth = 512;
	fx.signal_every = 64;
	fx.max_sge = 4;
	fx.max_msg = 8u << 20;
	fx.blocks = blocks;
	fx.nblocks = NB;
	pthread_mutex_init(&fx.lock, NULL);
	snprintf(fx.addr, sizeof(fx.addr), "10.0.0.1:4444");
	return 0;
}

int teardown(void **state)
{
	rmig_rd_mrs_release(&fx.local, &fake_ops);
	rmig_rd_remote_release(&fx.remote);
	close(fx.efd);
	pthread_mutex_destroy(&fx.lock);
	for (int b = 0; b < NB; b++)
		free(mem[b]);
	rmig_rdma_verbs = real_verbs;
	return 0;
}

struct rd_conn *conn_new(unsigned int depth, unsigned int sig, uint64_t max_msg)
{
	struct rd_conn *c;

	/* a new QP: empty queues, same injected behaviour */
	fk.nlog = 0;
	fk.posted = fk.completed = fk.max_outstanding = 0;
	fk.cum_posted = fk.cum_done = fk.max_out_bytes = 0;
	fk.post_calls = 0;
	fk.wc_head = fk.wc_tail = 0;
	fk.rq_head = fk.rq_tail = fk.recv_posts = 0;
	fk.unreturned = fk.pending_return = fk.data_sends = fk.credit_sends = 0;
	fx.sq_depth = depth;
	fx.signal_every = sig;
	fx.max_msg = max_msg;
	assert_int_equal(rmig_rd_conn_alloc(&fx, "test conn", &c), 0);
	memset(&fk_id, 0, sizeof(fk_id));
	c->id = &fk_id;
	assert_int_equal(rmig_rd_conn_setup_qp(c), 0);
	assert_int_equal(fk.recv_posts, RD_RECV_BUFS);
	c->established = true;
	c->credits = c->peer_nbufs = fk.window;
	c->peer_buf_size = RD_BUF_SIZE;
	return c;
}

void conn_free(struct rd_conn *c)
{
	c->established = false; /* nothing to drain or disconnect on the fake */
	rmig_rd_conn_close(c);
}

void tables(uint64_t lslice, uint64_t rslice)
{
	struct rd_mrs dst;
	uint8_t buf[4096];
	size_t len = sizeof(buf);
	struct rmig_msgbuf err;
	uint64_t ns = 0;

	assert_int_equal(rmig_rd_mrs_register(&fx.local, &fake_ops, &fk_pd, blocks, NB, lslice,
					      IBV_ACCESS_LOCAL_WRITE, &ns, &err),
			 0);
	/* the "destination" registers the same blocks (same addresses: fine for a fake) */
	assert_int_equal(rmig_rd_mrs_register(&dst, &fake_ops, &fk_pd, blocks, NB, rslice,
					      IBV_ACCESS_REMOTE_WRITE, &ns, &err),
			 0);
	assert_int_equal(rmig_rd_mrt_encode(&dst, NULL, buf, &len, &err), 0);
	assert_int_equal(rmig_rd_mrt_decode(buf, len, blocks, NB, &fx.remote, &err), 0);
	fx.have_remote = true;
	rmig_rd_mrs_release(&dst, &fake_ops);
}
