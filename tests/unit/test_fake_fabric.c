// SPDX-License-Identifier: MIT
/*
 * The fake fabric's own alarms, driven through its verbs table by hand:
 * test_rdma_loop relies on them (an RNR is counted and fails the QP, a bad
 * rkey is refused, a zero-length WRITE is not checked, a CQ raises an event
 * only when armed, rdma_cm events wake poll()), so each is shown to fire
 * here, where nothing of rmig is in the way.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "fake_fabric.h"

static const struct rmig_verbs_ops *v = &ff_verbs;

/* One side of a connection. */
struct end {
	struct rdma_event_channel *ech;
	struct rdma_cm_id *id;
	struct ibv_pd *pd;
	struct ibv_comp_channel *cc;
	struct ibv_cq *cq;
	uint8_t buf[4096];
	struct ibv_mr *mr;
};

static bool readable(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};

	return poll(&p, 1, 0) == 1;
}

/* The next rdma_cm event on @ch must be @type; its channel's fd said so first. */
static struct rdma_cm_event *expect_ev(struct rdma_event_channel *ch,
				       enum rdma_cm_event_type type)
{
	struct rdma_cm_event *ev;

	assert_true(readable(ch->fd));
	assert_int_equal(v->get_cm_event(ch, &ev), 0);
	assert_int_equal(ev->event, type);
	return ev;
}

static void end_qp(struct end *e, int access)
{
	struct ibv_qp_init_attr qa = {.qp_type = IBV_QPT_RC};

	assert_int_equal(v->alloc_pd(e->id->verbs, &e->pd), 0);
	assert_int_equal(v->create_comp_channel(e->id->verbs, &e->cc), 0);
	assert_int_equal(v->create_cq(e->id->verbs, 16, e, e->cc, &e->cq), 0);
	qa.send_cq = qa.recv_cq = e->cq;
	qa.cap.max_send_wr = 8;
	qa.cap.max_recv_wr = 4;
	qa.cap.max_send_sge = qa.cap.max_recv_sge = 1;
	assert_int_equal(v->create_qp(e->id, e->pd, &qa), 0);
	assert_int_equal(v->reg_mr(e->pd, e->buf, sizeof(e->buf), access, &e->mr), 0);
}

/* Listener, active end @a, passive end @p, connected; @p has no receive posted. */
static void pair_up(struct end *a, struct end *p)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	struct rdma_event_channel *lech;
	struct rdma_cm_id *lid;
	struct rdma_conn_param cp = {.private_data = "hello", .private_data_len = 6};
	struct rdma_cm_event *ev;

	memset(a, 0, sizeof(*a));
	memset(p, 0, sizeof(*p));
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(v->create_event_channel(&lech), 0);
	assert_int_equal(v->create_id(lech, &lid, NULL, RDMA_PS_TCP), 0);
	assert_int_equal(v->bind_addr(lid, (struct sockaddr *)&sin), 0);
	assert_int_equal(v->listen(lid, 4), 0);
	sin.sin_port = htons(v->get_src_port(lid));
	assert_true(v->get_src_port(lid) != 0);

	assert_int_equal(v->create_event_channel(&a->ech), 0);
	assert_int_equal(v->create_id(a->ech, &a->id, NULL, RDMA_PS_TCP), 0);
	assert_false(readable(a->ech->fd));
	assert_int_equal(v->resolve_addr(a->id, NULL, (struct sockaddr *)&sin, 1000), 0);
	v->ack_cm_event(expect_ev(a->ech, RDMA_CM_EVENT_ADDR_RESOLVED));
	assert_int_equal(v->resolve_route(a->id, 1000), 0);
	v->ack_cm_event(expect_ev(a->ech, RDMA_CM_EVENT_ROUTE_RESOLVED));
	assert_false(readable(a->ech->fd));
	end_qp(a, IBV_ACCESS_LOCAL_WRITE);
	assert_int_equal(v->connect(a->id, &cp), 0);

	ev = expect_ev(lech, RDMA_CM_EVENT_CONNECT_REQUEST);
	assert_int_equal(ev->param.conn.private_data_len, 6);
	assert_string_equal(ev->param.conn.private_data, "hello");
	p->id = ev->id;
	v->ack_cm_event(ev);
	assert_int_equal(v->create_event_channel(&p->ech), 0);
	assert_int_equal(v->migrate_id(p->id, p->ech), 0);
	end_qp(p, IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE);
	assert_int_equal(v->accept(p->id, NULL), 0);
	v->ack_cm_event(expect_ev(a->ech, RDMA_CM_EVENT_ESTABLISHED));
	v->ack_cm_event(expect_ev(p->ech, RDMA_CM_EVENT_ESTABLISHED));
	/* the listener is not needed once the connection is up */
	assert_int_equal(v->destroy_id(lid), 0);
	v->destroy_event_channel(lech);
}

static void end_free(struct end *e)
{
	v->destroy_qp(e->id);
	assert_int_equal(v->dereg_mr(e->mr), 0);
	assert_int_equal(v->destroy_cq(e->cq), 0);
	assert_int_equal(v->destroy_comp_channel(e->cc), 0);
	assert_int_equal(v->dealloc_pd(e->pd), 0);
	assert_int_equal(v->destroy_id(e->id), 0);
	v->destroy_event_channel(e->ech);
}

/* Disconnect from @a: both ends hear it once; everything is released. */
static void pair_down(struct end *a, struct end *p)
{
	struct ff_stats s;

	assert_int_equal(v->disconnect(a->id), 0);
	v->ack_cm_event(expect_ev(a->ech, RDMA_CM_EVENT_DISCONNECTED));
	v->ack_cm_event(expect_ev(p->ech, RDMA_CM_EVENT_DISCONNECTED));
	end_free(a);
	end_free(p);
	ff_stats_get(&s);
	if (s.misuse)
		fail_msg("misuse: %s", s.misuse_msg);
	assert_int_equal(ff_live_objects(), 0);
}

static void post(struct end *e, enum ibv_wr_opcode op, uint32_t len, uint64_t raddr,
		 uint32_t rkey)
{
	struct ibv_sge sge = {(uintptr_t)e->buf, len, e->mr->lkey};
	struct ibv_send_wr wr = {.wr_id = 7, .sg_list = &sge, .num_sge = 1, .opcode = op,
				 .send_flags = IBV_SEND_SIGNALED}, *bad;

	wr.wr.rdma.remote_addr = raddr;
	wr.wr.rdma.rkey = rkey;
	wr.imm_data = htobe32(0x01000003);
	assert_int_equal(v->post_send(e->id->qp, &wr, &bad), 0);
}

static void post_recv(struct end *e)
{
	struct ibv_sge sge = {(uintptr_t)e->buf, sizeof(e->buf), e->mr->lkey};
	struct ibv_recv_wr wr = {.wr_id = 99, .sg_list = &sge, .num_sge = 1}, *bad;

	assert_int_equal(v->post_recv(e->id->qp, &wr, &bad), 0);
}

static struct ibv_wc poll1(struct end *e)
{
	struct ibv_wc wc;

	assert_int_equal(v->poll_cq(e->cq, 1, &wc), 1);
	return wc;
}

static void test_write_send_and_events(void **state)
{
	struct end a, p;
	struct ibv_cq *cq;
	struct ibv_wc wc;
	void *ctx;

	ff_init();
	pair_up(&a, &p);
	memset(a.buf, 0x3c, 100);
	post(&a, IBV_WR_RDMA_WRITE, 100, (uintptr_t)p.buf + 8, p.mr->rkey);
	assert_int_equal(poll1(&a).status, IBV_WC_SUCCESS);
	assert_int_equal(p.buf[8], 0x3c);
	assert_int_equal(p.buf[107], 0x3c);
	/* C9-88: a zero-length WRITE checks no rkey */
	post(&a, IBV_WR_RDMA_WRITE, 0, 0, 0xdead);
	assert_int_equal(poll1(&a).status, IBV_WC_SUCCESS);

	/* a completion raises an event only on an armed CQ */
	post_recv(&p);
	memcpy(a.buf, "payload", 8);
	post(&a, IBV_WR_SEND_WITH_IMM, 8, 0, 0);
	assert_false(readable(p.cc->fd));
	assert_int_equal(v->get_cq_event(p.cc, &cq, &ctx), -EAGAIN);
	wc = poll1(&p);
	assert_int_equal(wc.status, IBV_WC_SUCCESS);
	assert_int_equal(wc.opcode, IBV_WC_RECV);
	assert_int_equal(wc.byte_len, 8);
	assert_true(wc.wc_flags & IBV_WC_WITH_IMM);
	assert_int_equal(be32toh(wc.imm_data), 0x01000003);
	assert_string_equal((char *)p.buf, "payload");
	assert_int_equal(v->req_notify_cq(p.cq, 0), 0);
	post_recv(&p);
	post(&a, IBV_WR_SEND_WITH_IMM, 8, 0, 0);
	assert_true(readable(p.cc->fd));
	assert_int_equal(v->get_cq_event(p.cc, &cq, &ctx), 0);
	assert_ptr_equal(cq, p.cq);
	assert_ptr_equal(ctx, &p);
	assert_false(readable(p.cc->fd));
	v->ack_cq_events(p.cq, 1);
	assert_int_equal(poll1(&p).status, IBV_WC_SUCCESS);
	/* the two sends were signaled too */
	assert_int_equal(poll1(&a).status, IBV_WC_SUCCESS);
	assert_int_equal(poll1(&a).status, IBV_WC_SUCCESS);
	pair_down(&a, &p);
}

/* The alarm the credit tests rely on: a SEND with no receive posted. */
static void test_rnr(void **state)
{
	struct ff_stats s;
	struct end a, p;

	ff_init();
	pair_up(&a, &p);
	post(&a, IBV_WR_SEND_WITH_IMM, 8, 0, 0);
	assert_int_equal(poll1(&a).status, IBV_WC_RNR_RETRY_EXC_ERR);
	ff_stats_get(&s);
	assert_int_equal(s.rnr, 1);
	assert_int_equal(s.first_error, IBV_WC_RNR_RETRY_EXC_ERR);
	/* the requester's QP is in error: what follows is flushed */
	post(&a, IBV_WR_RDMA_WRITE, 0, 0, 0);
	assert_int_equal(poll1(&a).status, IBV_WC_WR_FLUSH_ERR);
	pair_down(&a, &p);
}

/* A wrong rkey: refused, and the responder's QP goes to error too (its receive is flushed). */
static void test_bad_rkey(void **state)
{
	struct ff_stats s;
	struct end a, p;

	ff_init();
	pair_up(&a, &p);
	post_recv(&p);
	post(&a, IBV_WR_RDMA_WRITE, 16, (uintptr_t)p.buf, p.mr->rkey ^ 0x100);
	assert_int_equal(poll1(&a).status, IBV_WC_REM_ACCESS_ERR);
	assert_int_equal(poll1(&p).status, IBV_WC_WR_FLUSH_ERR);
	ff_stats_get(&s);
	assert_int_equal(s.access_err, 1);
	assert_int_equal(s.rnr, 0);
	pair_down(&a, &p);
}

/* In range of a real MR but past its end: refused as well. */
static void test_out_of_range(void **state)
{
	struct end a, p;

	ff_init();
	pair_up(&a, &p);
	post(&a, IBV_WR_RDMA_WRITE, 16, (uintptr_t)p.buf + sizeof(p.buf) - 8, p.mr->rkey);
	assert_int_equal(poll1(&a).status, IBV_WC_REM_ACCESS_ERR);
	pair_down(&a, &p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_write_send_and_events),
		cmocka_unit_test(test_rnr),
		cmocka_unit_test(test_bad_rkey),
		cmocka_unit_test(test_out_of_range),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
