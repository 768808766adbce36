// SPDX-License-Identifier: MIT
/*
 * The rdma transport without hardware: a fake verbs table stands in for
 * libibverbs and librdmacm (transport/rdma/verbs_ops.h), so failures can be
 * injected where real devices rarely produce them, and the send queue,
 * credits and MR tables can be checked WR by WR.
 *
 * The fake QP completes signaled WRs one per ibv_poll_cq() call (lazily, so
 * the send queue really fills up), and plays a peer that returns one credit
 * per SEND, in batches.
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

static struct fake {
	/* send queue */
	struct fk_wr log[FK_LOG];
	unsigned int nlog;
	uint64_t posted, completed;
	uint64_t max_outstanding;
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
} fk;

static struct ibv_device fk_dev;
static struct ibv_context fk_ctx = {.device = &fk_dev};
static struct ibv_pd fk_pd;
static struct ibv_qp fk_qp;
static struct ibv_cq fk_cq;
static struct ibv_comp_channel fk_cc;

static void fk_reset(void)
{
	memset(&fk, 0, sizeof(fk));
	fk.window = RD_RECV_BUFS;
	fk.credit_batch = 4;
	fk.fail_status = IBV_WC_SUCCESS;
}

static void fk_push_wc(const struct ibv_wc *wc)
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
	if (!(wc->wr_id & RD_WRID_RECV) && wc->status == IBV_WC_SUCCESS && wc->wr_id > fk.completed)
		fk.completed = wc->wr_id;
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
static struct rmig_verbs_ops fake_ops;

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

#define NB 2
static uint8_t *mem[NB];
static const uint64_t mem_len[NB] = {1u << 20, 40960};
static struct rmig_block blocks[NB];
static struct rd_xport fx;
static struct rdma_cm_id fk_id;

static int setup(void **state)
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

static int teardown(void **state)
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

/* An established conn on the fake QP, with @depth/@sig/@max_msg. */
static struct rd_conn *conn_new(unsigned int depth, unsigned int sig, uint64_t max_msg)
{
	struct rd_conn *c;

	/* a new QP: empty queues, same injected behaviour */
	fk.nlog = 0;
	fk.posted = fk.completed = fk.max_outstanding = 0;
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

static void conn_free(struct rd_conn *c)
{
	c->established = false; /* nothing to drain or disconnect on the fake */
	rmig_rd_conn_close(c);
}

/* Source-side tables: local MRs of @lslice, remote table of @rslice slices. */
static void tables(uint64_t lslice, uint64_t rslice)
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
	assert_int_equal(rmig_rd_mrt_encode(&dst, buf, &len, &err), 0);
	assert_int_equal(rmig_rd_mrt_decode(buf, len, blocks, NB, &fx.remote, &err), 0);
	fx.have_remote = true;
	rmig_rd_mrs_release(&dst, &fake_ops);
}

/* ------------------------------------------------------ registration */

static void test_reg_enomem_names_memlock(void **state)
{
	struct rd_mrs t;
	struct rmig_msgbuf err = {""};
	uint64_t ns = 0;
	int ret;

	fk.reg_fail_at = 3; /* two slices registered, the third fails */
	fk.reg_ret = -ENOMEM;
	ret = rmig_rd_mrs_register(&t, &fake_ops, &fk_pd, blocks, NB, 256 << 10,
				   IBV_ACCESS_LOCAL_WRITE, &ns, &err);
	assert_int_equal(ret, -ENOMEM);
	assert_non_null(strstr(err.msg, "RLIMIT_MEMLOCK"));
	assert_non_null(strstr(err.msg, "ibv_reg_mr"));
	assert_int_equal(fk.deregs, 2); /* what was registered is undone */

	fk.regs = fk.deregs = 0;
	fk.reg_ret = -EPERM; /* also a pinning limit: same kind of message */
	ret = rmig_rd_mrs_register(&t, &fake_ops, &fk_pd, blocks, NB, 256 << 10,
				   IBV_ACCESS_LOCAL_WRITE, &ns, &err);
	assert_int_equal(ret, -ENOMEM);
	assert_non_null(strstr(err.msg, "RLIMIT_MEMLOCK"));

	fk.regs = fk.deregs = 0;
	fk.reg_ret = -EFAULT;
	ret = rmig_rd_mrs_register(&t, &fake_ops, &fk_pd, blocks, NB, 256 << 10,
				   IBV_ACCESS_LOCAL_WRITE, &ns, &err);
	assert_int_equal(ret, -EFAULT);
	assert_null(strstr(err.msg, "RLIMIT_MEMLOCK"));
}

static void test_memlock_verdict(void **state)
{
	struct rmig_msgbuf err = {""};

	assert_int_equal(rmig_rd_memlock_verdict(1u << 30, 8u << 20, false, &err), -ENOMEM);
	assert_non_null(strstr(err.msg, "RLIMIT_MEMLOCK is 8388608 bytes"));
	assert_non_null(strstr(err.msg, "1073741824"));
	assert_int_equal(rmig_rd_memlock_verdict(1u << 30, 8u << 20, true, &err), 0);
	assert_int_equal(rmig_rd_memlock_verdict(1u << 30, (uint64_t)RLIM_INFINITY, false, &err),
			 0);
	assert_int_equal(rmig_rd_memlock_verdict(4096, 8192, false, &err), 0);
}

static void test_slices_and_lookup(void **state)
{
	const struct rd_lslice *ls;
	const struct rd_rslice *rs;

	tables(300 << 10, 256 << 10);
	/* 1 MiB in 300 KiB slices: 4; 40 KiB: 1 */
	assert_int_equal(fx.local.nslices, 5);
	assert_int_equal(fx.remote.nslices, 4 + 1);
	ls = rmig_rd_mrs_find(&fx.local, mem[0] + (300 << 10));
	assert_ptr_equal(ls->addr, mem[0] + (300 << 10));
	ls = rmig_rd_mrs_find(&fx.local, mem[0] + (300 << 10) - 1);
	assert_ptr_equal(ls->addr, mem[0]);
	assert_non_null(rmig_rd_mrs_find(&fx.local, mem[1] + 40959));
	assert_null(rmig_rd_mrs_find(&fx.local, mem[1] + 40960));
	rs = rmig_rd_remote_find(&fx.remote, 0, (512 << 10) + 5);
	assert_int_equal(rs->off, 512 << 10);
	assert_int_equal(rs->len, 256 << 10);
	assert_null(rmig_rd_remote_find(&fx.remote, 0, 1u << 20));
	assert_null(rmig_rd_remote_find(&fx.remote, 2, 0));
}

/* ---------------------------------------------------------- MR table */

static size_t good_table(uint8_t *buf, size_t cap)
{
	struct rd_mrs t;
	struct rmig_msgbuf err;
	uint64_t ns = 0;
	size_t len = cap;

	assert_int_equal(rmig_rd_mrs_register(&t, &fake_ops, &fk_pd, blocks, NB, 512 << 10,
					      IBV_ACCESS_REMOTE_WRITE, &ns, &err),
			 0);
	assert_int_equal(rmig_rd_mrt_encode(&t, buf, &len, &err), 0);
	rmig_rd_mrs_release(&t, &fake_ops);
	return len;
}

static void expect_reject(const uint8_t *buf, size_t len, const char *words)
{
	struct rd_remote r;
	struct rmig_msgbuf err = {""};

	assert_int_equal(rmig_rd_mrt_decode(buf, len, blocks, NB, &r, &err), -EPROTO);
	if (!strstr(err.msg, words))
		fail_msg("expected '%s' in: %s", words, err.msg);
	assert_null(r.slices);
}

static void test_mrt_rejects_malformed(void **state)
{
	uint8_t good[1024], b[1024];
	size_t len = good_table(good, sizeof(good));
	struct rd_remote r;
	struct rmig_msgbuf err;
	size_t slice0 = RD_MRT_HDR + RD_MRT_BLOCK;

	/* 2 blocks, 2 + 1 slices */
	assert_int_equal(len, RD_MRT_HDR + 2 * RD_MRT_BLOCK + 3 * RD_MRT_SLICE);
	assert_int_equal(rmig_rd_mrt_decode(good, len, blocks, NB, &r, &err), 0);
	rmig_rd_remote_release(&r);

	/* every truncation */
	for (size_t n = 0; n < len; n++) {
		assert_int_equal(rmig_rd_mrt_decode(good, n, blocks, NB, &r, &err), -EPROTO);
		assert_null(r.slices);
	}
	expect_reject(NULL, 0, "truncated");
	memcpy(b, good, len);
	b[len] = 0;
	expect_reject(b, len + 1, "counts say");
	memcpy(b, good, len);
	b[0] ^= 1;
	expect_reject(b, len, "magic");
	memcpy(b, good, len);
	rmig_put_be16(b + 4, 2);
	expect_reject(b, len, "version 2");
	memcpy(b, good, len);
	rmig_put_be16(b + 6, 1);
	expect_reject(b, len, "flags");
	memcpy(b, good, len);
	rmig_put_be32(b + 8, 3);
	expect_reject(b, len, "3 blocks, the source has 2");
	memcpy(b, good, len);
	rmig_put_be32(b + 12, 0xffffffff);
	expect_reject(b, len, "slices cannot fit");
	/* a block length that differs from ours */
	memcpy(b, good, len);
	rmig_put_be64(b + RD_MRT_HDR, mem_len[0] + 4096);
	expect_reject(b, len, "block 0 (ram0) is");
	/* a slice count of zero, or past the total */
	memcpy(b, good, len);
	rmig_put_be32(b + RD_MRT_HDR + 8, 0);
	expect_reject(b, len, "bad slice count");
	memcpy(b, good, len);
	rmig_put_be32(b + RD_MRT_HDR + 8, 4);
	expect_reject(b, len, "bad slice count");
	/* a slice running past its block, a zero-length one, one short of covering */
	memcpy(b, good, len);
	rmig_put_be64(b + slice0 + 8, mem_len[0] + 1);
	expect_reject(b, len, "overruns the block");
	memcpy(b, good, len);
	rmig_put_be64(b + slice0 + 8, 0);
	expect_reject(b, len, "overruns the block");
	memcpy(b, good, len);
	rmig_put_be64(b + slice0 + 8, (512 << 10) - 4096);
	expect_reject(b, len, "slices cover");
	/* an address that wraps, non-zero padding */
	memcpy(b, good, len);
	rmig_put_be64(b + slice0, UINT64_MAX - 10);
	expect_reject(b, len, "wraps");
	memcpy(b, good, len);
	rmig_put_be32(b + slice0 + 20, 1);
	expect_reject(b, len, "padding");
	memcpy(b, good, len);
	rmig_put_be32(b + RD_MRT_HDR + 12, 1);
	expect_reject(b, len, "padding");
}

static void test_mrt_encode_no_room(void **state)
{
	struct rd_mrs t;
	struct rmig_msgbuf err;
	uint8_t buf[32];
	size_t len = sizeof(buf);
	uint64_t ns = 0;

	assert_int_equal(rmig_rd_mrs_register(&t, &fake_ops, &fk_pd, blocks, NB, 0,
					      IBV_ACCESS_REMOTE_WRITE, &ns, &err),
			 0);
	assert_int_equal(rmig_rd_mrt_encode(&t, buf, &len, &err), -ENOSPC);
	rmig_rd_mrs_release(&t, &fake_ops);
}

/* ------------------------------------------------------- data path */

static void test_sq_depth_never_exceeded(void **state)
{
	struct rd_conn *c;
	struct rmig_seg seg[3];
	uint8_t hdr[100] = {1, 2, 3};
	uint64_t total = 0;

	tables(1u << 20, 1u << 20);
	/* 16 entries, a completion every 4, 4 KiB messages: hundreds of WRs per send() */
	c = conn_new(16, 4, 4096);
	seg[0] = (struct rmig_seg){mem[0], 0, 1u << 20, 0, 0};
	seg[1] = (struct rmig_seg){mem[1], 0, 40960, 1, 0};
	seg[2] = (struct rmig_seg){mem[0] + 8192, 8192, 4096, 0, 0};
	for (int round = 0; round < 3; round++) {
		assert_int_equal(rmig_rd_send(&c->base, hdr, sizeof(hdr), seg, 3), 0);
		assert_true(fk.max_outstanding <= 16);
	}
	assert_int_equal(rmig_rd_flush(&c->base), 0);
	assert_int_equal(fk.completed, fk.posted);
	assert_true(fk.max_outstanding <= 16);
	assert_true(fk.max_outstanding >= 12); /* it did fill up */
	/* WRITEs cover the segments exactly; the SEND of each round comes after them */
	for (unsigned int i = 0; i < fk.nlog; i++) {
		if (fk.log[i].opcode == IBV_WR_RDMA_WRITE) {
			assert_true(fk.log[i].len <= 4096);
			total += fk.log[i].len;
		}
	}
	assert_int_equal(total, 3 * ((1u << 20) + 40960 + 4096));
	assert_int_equal(c->base.rdma_writes, 3 * (256 + 10 + 1));
	conn_free(c);
}

/* WRITEs are cut where a slice ends on either side, and gather pieces whose remote range continues.
 */
static void test_write_cuts_and_gathers(void **state)
{
	struct rd_conn *c;
	struct rmig_seg seg[3];
	uint64_t lslice = 5 * 4096, rslice = 3 * 4096, expect_off = 0;
	unsigned int i, writes = 0;

	tables(lslice, rslice);
	c = conn_new(64, 8, 1u << 20);
	seg[0] = (struct rmig_seg){mem[0], 0, 16 * 4096, 0, 0};
	assert_int_equal(rmig_rd_send(&c->base, "h", 1, seg, 1), 0);
	for (i = 0; i < fk.nlog && fk.log[i].opcode == IBV_WR_RDMA_WRITE; i++) {
		const struct fk_wr *w = &fk.log[i];
		const struct rd_rslice *rs = rmig_rd_remote_find(&fx.remote, 0, expect_off);
		uint64_t a = 0;

		/* inside one remote slice */
		assert_int_equal(w->raddr, rs->addr + (expect_off - rs->off));
		assert_int_equal(w->rkey, rs->rkey);
		assert_true(expect_off + w->len <= rs->off + rs->len);
		/* each SGE inside one local slice, with its lkey */
		for (unsigned int k = 0; k < w->nsge; k++) {
			const struct rd_lslice *ls =
			    rmig_rd_mrs_find(&fx.local, mem[0] + expect_off + a);

			assert_int_equal(w->sge[k].addr, (uintptr_t)(mem[0] + expect_off + a));
			assert_int_equal(w->sge[k].lkey, ls->mr->lkey);
			assert_true(expect_off + a + w->sge[k].length <=
				    (uint64_t)(ls->addr - mem[0]) + ls->len);
			a += w->sge[k].length;
		}
		expect_off += w->len;
		writes++;
	}
	assert_int_equal(expect_off, 16 * 4096);
	/* remote slices of 3 pages: 16 pages need 6 WRITEs, some with 2 SGEs (local cut at 5) */
	assert_int_equal(writes, 6);
	assert_int_equal(fk.log[i].opcode, IBV_WR_SEND_WITH_IMM);

	/* two local runs landing back to back remotely: one WRITE, two SGEs */
	fk.nlog = 0;
	seg[0] = (struct rmig_seg){mem[0] + 4096, 0, 4096, 0, 0};
	seg[1] = (struct rmig_seg){mem[1], 4096, 4096, 0, 0};
	assert_int_equal(rmig_rd_send(&c->base, "h", 1, seg, 2), 0);
	assert_int_equal(fk.log[0].opcode, IBV_WR_RDMA_WRITE);
	assert_int_equal(fk.log[0].nsge, 2);
	assert_int_equal(fk.log[0].len, 8192);
	assert_int_equal(rmig_rd_flush(&c->base), 0);
	conn_free(c);
}

static void test_segment_checks(void **state)
{
	struct rd_conn *c;
	struct rmig_seg seg;
	uint8_t other[4096];

	c = conn_new(64, 8, 1u << 20);
	seg = (struct rmig_seg){mem[0], 0, 4096, 0, 0};
	/* before the MR table arrived */
	assert_int_equal(rmig_rd_send(&c->base, "h", 1, &seg, 1), -EINVAL);
	assert_non_null(strstr(c->base.err.msg, "MR table"));
	conn_free(c);

	tables(1u << 20, 1u << 20);
	c = conn_new(64, 8, 1u << 20);
	seg = (struct rmig_seg){mem[0], (1u << 20) - 4096, 8192, 0, 0};
	assert_int_equal(rmig_rd_send(&c->base, "h", 1, &seg, 1), -EINVAL);
	assert_non_null(strstr(c->base.err.msg, "outside"));
	conn_free(c);
	c = conn_new(64, 8, 1u << 20);
	seg = (struct rmig_seg){other, 0, 4096, 0, 0};
	assert_int_equal(rmig_rd_send(&c->base, "h", 1, &seg, 1), -EINVAL);
	assert_non_null(strstr(c->base.err.msg, "not in a registered block"));
	conn_free(c);
}

static void check_wc_error(enum ibv_wc_status st, int code, const char *name, const char *prose)
{
	struct rd_conn *c;
	struct rmig_seg seg = {mem[0], 0, 65536, 0, 0};

	fk_reset();
	fx.remote = (struct rd_remote){0};
	tables(1u << 20, 1u << 20);
	c = conn_new(64, 8, 1u << 20);
	fk.fail_status = st;
	assert_int_equal(rmig_rd_send(&c->base, "hdr", 3, &seg, 1), 0);
	assert_int_equal(rmig_rd_flush(&c->base), code);
	if (!strstr(c->base.err.msg, name) || !strstr(c->base.err.msg, prose) ||
	    !strstr(c->base.err.msg, "test conn"))
		fail_msg("status %d: message '%s'", st, c->base.err.msg);
	/* sticky: every later call fails the same way */
	assert_int_equal(rmig_rd_send(&c->base, "x", 1, NULL, 0), code);
	assert_int_equal(rmig_rd_flush(&c->base), code);
	conn_free(c);
	rmig_rd_mrs_release(&fx.local, &fake_ops);
	rmig_rd_remote_release(&fx.remote);
}

static void test_wc_errors(void **state)
{
	check_wc_error(IBV_WC_RETRY_EXC_ERR, -ECONNRESET, "IBV_WC_RETRY_EXC_ERR",
		       ibv_wc_status_str(IBV_WC_RETRY_EXC_ERR));
	check_wc_error(IBV_WC_REM_ACCESS_ERR, -EACCES, "IBV_WC_REM_ACCESS_ERR",
		       ibv_wc_status_str(IBV_WC_REM_ACCESS_ERR));
	check_wc_error(IBV_WC_WR_FLUSH_ERR, -ECONNRESET, "IBV_WC_WR_FLUSH_ERR", "RDMA_WRITE");
	check_wc_error(IBV_WC_RNR_RETRY_EXC_ERR, -EIO, "IBV_WC_RNR_RETRY_EXC_ERR", "RDMA_WRITE");
}

static void test_post_send_failure(void **state)
{
	struct rd_conn *c;
	struct rmig_seg seg = {mem[0], 0, 65536, 0, 0};

	tables(1u << 20, 1u << 20);
	c = conn_new(64, 8, 1u << 20);
	fk.post_send_fail_at = 1;
	fk.post_send_ret = -ENOMEM;
	assert_int_equal(rmig_rd_send(&c->base, "hdr", 3, &seg, 1), -ENOMEM);
	assert_non_null(strstr(c->base.err.msg, "ibv_post_send failed"));
	assert_non_null(strstr(c->base.err.msg, "RDMA_WRITE"));
	assert_int_equal(rmig_rd_flush(&c->base), -ENOMEM);
	assert_int_equal(fk.posted, 0);
	conn_free(c);
}

/* ---------------------------------------------------------- stream */

static void test_credits_bound_sends(void **state)
{
	struct rd_conn *c;
	uint8_t *big = malloc(2u << 20);

	/* a small window that returns credits rarely */
	fk.window = 6;
	fk.credit_batch = 3;
	c = conn_new(64, 8, 1u << 20);
	memset(big, 7, 2u << 20);
	assert_int_equal(rmig_rd_send(&c->base, big, 2u << 20, NULL, 0), 0);
	assert_int_equal(rmig_rd_flush(&c->base), 0);
	/* 2 MiB in 64 KiB SENDs; the fake asserted the window on each */
	assert_int_equal(fk.data_sends, 32);
	assert_int_equal(c->base.wire_bytes, 2u << 20);
	/* the SENDs carried the credits owed for the peer's credit messages */
	conn_free(c);
	free(big);
}

/* Deliver @len bytes as one receive into the next posted buffer. */
static void deliver(struct rd_conn *c, const void *data, uint32_t len, uint32_t imm)
{
	struct ibv_wc wc = {0};

	assert_true(fk.rq_head != fk.rq_tail);
	memcpy((void *)(uintptr_t)fk.rq[fk.rq_tail % FK_LOG].addr, data, len);
	wc.wr_id = fk.rq_id[fk.rq_tail++ % FK_LOG];
	wc.opcode = IBV_WC_RECV;
	wc.wc_flags = IBV_WC_WITH_IMM;
	wc.byte_len = len;
	wc.imm_data = htobe32(imm);
	fk_push_wc(&wc);
}

static void test_recv_reassembles(void **state)
{
	struct rd_conn *c;
	uint8_t src[200000], dst[200000];
	uint32_t cuts[] = {1, 65536, 3, 100000 - 65540, 65536, 200000 - 100000 - 65536};
	uint32_t off = 0;

	for (size_t i = 0; i < sizeof(src); i++)
		src[i] = (uint8_t)(i * 7 + i / 251);
	c = conn_new(64, 8, 1u << 20);
	for (size_t i = 0; i < RMIG_ARRAY_SIZE(cuts); i++) {
		deliver(c, src + off, cuts[i], RD_IMM(RD_IMM_DATA, 0));
		off += cuts[i];
	}
	assert_int_equal(off, sizeof(src));
	/* read in sizes unrelated to the SENDs */
	assert_int_equal(rmig_rd_recv(&c->base, dst, 10, 1000), 0);
	assert_int_equal(rmig_rd_recv(&c->base, dst + 10, 70000, 1000), 0);
	assert_int_equal(rmig_rd_recv(&c->base, dst + 70010, sizeof(dst) - 70010, 1000), 0);
	assert_memory_equal(src, dst, sizeof(src));
	/* every consumed buffer went back to the receive queue */
	assert_int_equal(fk.recv_posts, RD_RECV_BUFS + 6);
	/* nothing more: a timeout, and the stream is still usable */
	assert_int_equal(rmig_rd_recv(&c->base, dst, 1, 50), -ETIMEDOUT);
	assert_int_equal(c->failed, 0);
	conn_free(c);
}

/* Consuming half the window without sending returns the credits in one credit-only SEND. */
static void test_credit_return_message(void **state)
{
	struct rd_conn *c;
	uint8_t b[16] = {0};

	c = conn_new(64, 8, 1u << 20);
	for (unsigned int i = 0; i < RD_RECV_BUFS / 2; i++)
		deliver(c, b, sizeof(b), RD_IMM(RD_IMM_DATA, 0));
	for (unsigned int i = 0; i < RD_RECV_BUFS / 2; i++)
		assert_int_equal(rmig_rd_recv(&c->base, b, sizeof(b), 1000), 0);
	assert_int_equal(fk.credit_sends, 1);
	assert_int_equal(fk.log[0].len, 0);
	assert_int_equal(RD_IMM_TYPE(fk.log[0].imm), RD_IMM_CREDIT);
	assert_int_equal(RD_IMM_CREDITS(fk.log[0].imm), RD_RECV_BUFS / 2);
	assert_int_equal(c->owed, 0);
	conn_free(c);
}

static void test_recv_protocol_errors(void **state)
{
	struct rd_conn *c;
	uint8_t b[16] = {0};

	/* a data message with the credit type */
	c = conn_new(64, 8, 1u << 20);
	deliver(c, b, sizeof(b), RD_IMM(RD_IMM_CREDIT, 0));
	assert_int_equal(rmig_rd_recv(&c->base, b, 1, 1000), -EPROTO);
	assert_non_null(strstr(c->base.recv_err.msg, "malformed"));
	conn_free(c);
	/* more credits back than were lent */
	c = conn_new(64, 8, 1u << 20);
	deliver(c, b, 0, RD_IMM(RD_IMM_CREDIT, 1));
	assert_int_equal(rmig_rd_recv(&c->base, b, 1, 1000), -EPROTO);
	assert_non_null(strstr(c->base.recv_err.msg, "returned 1 credits"));
	conn_free(c);
	/* a receive error names its status */
	c = conn_new(64, 8, 1u << 20);
	{
		struct ibv_wc wc = {.wr_id = RD_WRID_RECV | 0, .status = IBV_WC_LOC_LEN_ERR};

		fk_push_wc(&wc);
	}
	assert_int_equal(rmig_rd_recv(&c->base, b, 1, 1000), -EPROTO);
	assert_non_null(strstr(c->base.recv_err.msg, "IBV_WC_LOC_LEN_ERR"));
	conn_free(c);
}

/* A flushed receive queue (peer gone) ends recv with -ECONNRESET, after the data before it. */
static void test_recv_after_peer_close(void **state)
{
	struct rd_conn *c;
	uint8_t b[8];
	struct ibv_wc wc = {.status = IBV_WC_WR_FLUSH_ERR};

	c = conn_new(64, 8, 1u << 20);
	deliver(c, "last", 4, RD_IMM(RD_IMM_DATA, 0));
	wc.wr_id = fk.rq_id[fk.rq_tail % FK_LOG];
	fk_push_wc(&wc);
	assert_int_equal(rmig_rd_recv(&c->base, b, 4, 1000), 0);
	assert_memory_equal(b, "last", 4);
	assert_int_equal(rmig_rd_recv(&c->base, b, 4, 1000), -ECONNRESET);
	assert_non_null(strstr(c->base.recv_err.msg, "peer closed"));
	conn_free(c);
}

static void test_shutdown_fails_calls(void **state)
{
	struct rd_conn *c;
	uint8_t b[8];

	c = conn_new(64, 8, 1u << 20);
	rmig_rd_conn_shutdown(c);
	assert_int_equal(rmig_rd_recv(&c->base, b, sizeof(b), -1), -ECANCELED);
	assert_int_equal(rmig_rd_send(&c->base, "x", 1, NULL, 0), -ECANCELED);
	assert_int_equal(rmig_rd_flush(&c->base), -ECANCELED);
	conn_free(c);
	/* the xport's shutdown reaches its conns too */
	c = conn_new(64, 8, 1u << 20);
	atomic_store(&fx.down, true);
	assert_int_equal(rmig_rd_recv(&c->base, b, sizeof(b), -1), -ECANCELED);
	atomic_store(&fx.down, false);
	conn_free(c);
}

static void test_recv_pages_is_enosys(void **state)
{
	struct rd_conn *c = conn_new(64, 8, 1u << 20);
	struct iovec iov = {mem[0], 4096};

	assert_int_equal(c->base.ops->recv_pages(&c->base, &iov, 1), -ENOSYS);
	assert_non_null(strstr(c->base.recv_err.msg, "recv_pages"));
	conn_free(c);
}

/* ------------------------------------------------------- setup paths */

static void test_no_device(void **state)
{
	struct rmig_opts o;
	struct rmig_xport_params p = {&o, blocks, NB, 2};
	struct rmig_xport *x = NULL;
	struct rmig_conn *ctl = NULL;
	struct rmig_msgbuf err = {""};

	rmig_opts_init(&o);
	assert_int_equal(rmig_rdma_ops.connect(&p, "10.0.0.1:4444", &x, &ctl, &err), -ENODEV);
	assert_non_null(strstr(err.msg, "no RDMA device for address 10.0.0.1:4444"));
	assert_non_null(strstr(err.msg, "devices found: none"));
	assert_int_equal(rmig_rdma_ops.listen(&p, "10.0.0.1:0", &x, &err), -ENODEV);
	assert_non_null(strstr(err.msg, "devices found: none"));
	/* devices exist, but not for this address */
	fk.devname = "mlx5_0";
	assert_int_equal(rmig_rdma_ops.listen(&p, "10.0.0.1:0", &x, &err), -ENODEV);
	assert_non_null(strstr(err.msg, "devices found: mlx5_0"));
	assert_int_equal(rmig_rdma_ops.connect(&p, "nonsense", &x, &ctl, &err), -EINVAL);
}

static void test_cm_event_errors(void **state)
{
	struct rdma_cm_event ev = {0};
	struct rmig_msgbuf err = {""};

	ev.event = RDMA_CM_EVENT_REJECTED;
	ev.status = 8;
	assert_int_equal(rmig_rd_cm_event_error(&ev, "connecting", &err), -ECONNREFUSED);
	assert_non_null(strstr(err.msg, "nothing listens"));
	ev.event = RDMA_CM_EVENT_UNREACHABLE;
	ev.status = -ETIMEDOUT;
	assert_int_equal(rmig_rd_cm_event_error(&ev, "connecting", &err), -ETIMEDOUT);
	assert_non_null(strstr(err.msg, "RDMA_CM_EVENT_UNREACHABLE"));
	ev.event = RDMA_CM_EVENT_ADDR_ERROR;
	ev.status = -ENODEV;
	assert_int_equal(rmig_rd_cm_event_error(&ev, "resolving", &err), -ENODEV);
	ev.event = RDMA_CM_EVENT_ROUTE_ERROR;
	ev.status = -ENETUNREACH;
	assert_int_equal(rmig_rd_cm_event_error(&ev, "route", &err), -EHOSTUNREACH);
	ev.event = RDMA_CM_EVENT_DISCONNECTED;
	assert_int_equal(rmig_rd_cm_event_error(&ev, "x", &err), -ECONNRESET);
	ev.event = RDMA_CM_EVENT_CONNECT_ERROR;
	ev.status = -ECONNRESET;
	assert_int_equal(rmig_rd_cm_event_error(&ev, "x", &err), -ECONNABORTED);
}

static void test_cm_private_data(void **state)
{
	struct rd_cm_priv in = {32, 65536}, out;
	uint8_t b[RD_CM_PRIV_LEN + 40] = {0};

	rmig_rd_cm_priv_encode(b, &in);
	/* IB CM pads private data: longer is fine */
	assert_int_equal(rmig_rd_cm_priv_decode(b, sizeof(b), &out), 0);
	assert_int_equal(out.nbufs, 32);
	assert_int_equal(out.buf_size, 65536);
	assert_int_equal(rmig_rd_cm_priv_decode(b, RD_CM_PRIV_LEN - 1, &out), -EPROTO);
	assert_int_equal(rmig_rd_cm_priv_decode(NULL, 0, &out), -EPROTO);
	b[0] ^= 1;
	assert_int_equal(rmig_rd_cm_priv_decode(b, sizeof(b), &out), -EPROTO);
	b[0] ^= 1;
	rmig_put_be16(b + 4, 9);
	assert_int_equal(rmig_rd_cm_priv_decode(b, sizeof(b), &out), -EPROTONOSUPPORT);
	in.nbufs = 2; /* too small a window for a reserved credit */
	rmig_rd_cm_priv_encode(b, &in);
	assert_int_equal(rmig_rd_cm_priv_decode(b, sizeof(b), &out), -EPROTO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_reg_enomem_names_memlock, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_memlock_verdict, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_slices_and_lookup, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_mrt_rejects_malformed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_mrt_encode_no_room, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_sq_depth_never_exceeded, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_write_cuts_and_gathers, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_segment_checks, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_wc_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_post_send_failure, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_credits_bound_sends, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_recv_reassembles, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_credit_return_message, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_recv_protocol_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_recv_after_peer_close, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_shutdown_fails_calls, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_recv_pages_is_enosys, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_no_device, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cm_event_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cm_private_data, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
