// SPDX-License-Identifier: MIT
/*
 * The fake fabric's queue pairs and RC data path (fake_fabric.h says what
 * is emulated).
 *
 * Work requests execute when they are posted, under the fabric's mutex, in
 * order: a WRITE has landed in the peer's memory, and a SEND in the peer's
 * receive buffer, before ibv_post_send() returns. That is the fastest
 * network there is; what it cannot hide is a SEND for which the receiver
 * posted no buffer, and that is what the credit tests are after.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_fabric_priv.h"

#define ff_of(type, p) ((struct type *)(void *)(p))

/* ----------------------------------------------------------------- QPs */

int ff_create_qp(struct rdma_cm_id *id, struct ibv_pd *pd, struct ibv_qp_init_attr *a)
{
	struct ff_id *fid = ff_of(ff_id, id);
	struct ff_qp *qp;

	if (!id->verbs || id->qp || !a->send_cq || !a->recv_cq || a->qp_type != IBV_QPT_RC ||
	    !a->cap.max_send_wr || a->cap.max_send_wr > 16384 || !a->cap.max_recv_wr ||
	    a->cap.max_recv_wr > 16384 || a->cap.max_send_sge > FF_MAX_SGE ||
	    a->cap.max_recv_sge > FF_MAX_SGE || a->srq)
		return -EINVAL;
	qp = calloc(1, sizeof(*qp));
	if (!qp)
		return -ENOMEM;
	qp->rq = calloc(a->cap.max_recv_wr, sizeof(*qp->rq));
	if (!qp->rq) {
		free(qp);
		return -ENOMEM;
	}
	pthread_mutex_lock(&ff.mu);
	if (ff.st.nqps == FF_MAX_QPS) {
		pthread_mutex_unlock(&ff.mu);
		free(qp->rq);
		free(qp);
		return -ENOSPC;
	}
	qp->st = &ff.st.qp[ff.st.nqps++];
	qp->st->used = true;
	qp->st->active = fid->active;
	qp->st->nth = ff.nth[fid->active]++;
	qp->st->first_error = IBV_WC_SUCCESS;
	qp->qp.context = id->verbs;
	qp->qp.pd = pd;
	qp->qp.send_cq = a->send_cq;
	qp->qp.recv_cq = a->recv_cq;
	qp->qp.qp_num = ++ff.next_qpn;
	qp->qp.state = IBV_QPS_INIT;
	qp->qp.qp_type = IBV_QPT_RC;
	qp->pd = ff_of(ff_pd, pd);
	qp->scq = ff_of(ff_cq, a->send_cq);
	qp->rcq = ff_of(ff_cq, a->recv_cq);
	qp->id = fid;
	qp->sig_all = a->sq_sig_all;
	qp->max_send_wr = a->cap.max_send_wr;
	qp->max_recv_wr = a->cap.max_recv_wr;
	qp->max_send_sge = a->cap.max_send_sge;
	qp->max_recv_sge = a->cap.max_recv_sge;
	qp->pd->nqps++;
	qp->scq->nqps++;
	qp->rcq->nqps++;
	ff.live++;
	id->qp = &qp->qp;
	pthread_mutex_unlock(&ff.mu);
	return 0;
}

void ff_destroy_qp(struct rdma_cm_id *id)
{
	struct ff_qp *qp = ff_of(ff_qp, id->qp);

	if (!qp)
		return;
	pthread_mutex_lock(&ff.mu);
	if (qp->peer)
		qp->peer->peer = NULL; /* its later requests find nobody: retry exceeded */
	/* completions left in the CQs must not point at it */
	for (unsigned int i = qp->scq->tail; i != qp->scq->head; i++)
		if (qp->scq->ring[i % qp->scq->size].sq_qp == qp)
			qp->scq->ring[i % qp->scq->size].sq_qp = NULL;
	qp->pd->nqps--;
	qp->scq->nqps--;
	qp->rcq->nqps--;
	ff.live--;
	id->qp = NULL;
	pthread_mutex_unlock(&ff.mu);
	free(qp->rq);
	free(qp);
}

/* Every posted receive completes flushed, in order. */
static void rq_flush(struct ff_qp *qp)
{
	while (qp->rq_tail != qp->rq_head) {
		struct ff_rwr *r = &qp->rq[qp->rq_tail++ % qp->max_recv_wr];
		struct ibv_wc wc = {.wr_id = r->wr_id,
				    .status = IBV_WC_WR_FLUSH_ERR,
				    .opcode = IBV_WC_RECV,
				    .qp_num = qp->qp.qp_num};

		ff_cq_push(qp->rcq, &wc, NULL, 0);
	}
}

void ff_qp_error(struct ff_qp *qp)
{
	if (qp->qp.state == IBV_QPS_ERR)
		return;
	qp->qp.state = IBV_QPS_ERR;
	ff.st.qps_errored++;
	rq_flush(qp);
}

int ff_modify_qp(struct ibv_qp *qp, struct ibv_qp_attr *attr, int mask)
{
	struct ff_qp *q = ff_of(ff_qp, qp);

	/* rmig only ever moves a QP to error (rdma_cm does the rest) */
	if (mask != IBV_QP_STATE || attr->qp_state != IBV_QPS_ERR)
		return -EINVAL;
	pthread_mutex_lock(&ff.mu);
	ff_qp_error(q);
	pthread_mutex_unlock(&ff.mu);
	return 0;
}

int ff_post_recv(struct ibv_qp *qp, struct ibv_recv_wr *wr, struct ibv_recv_wr **bad)
{
	struct ff_qp *q = ff_of(ff_qp, qp);
	int ret = 0;

	pthread_mutex_lock(&ff.mu);
	for (; wr; wr = wr->next) {
		struct ff_rwr *r;
		unsigned int depth;

		if (wr->num_sge < 0 || (unsigned int)wr->num_sge > q->max_recv_sge) {
			ret = -EINVAL;
			break;
		}
		if (q->rq_head - q->rq_tail == q->max_recv_wr) {
			ff_misuse("ibv_post_recv on a full receive queue (%u)", q->max_recv_wr);
			ret = -ENOMEM;
			break;
		}
		r = &q->rq[q->rq_head++ % q->max_recv_wr];
		r->wr_id = wr->wr_id;
		r->nsge = (unsigned int)wr->num_sge;
		memcpy(r->sge, wr->sg_list, r->nsge * sizeof(*r->sge));
		depth = q->rq_head - q->rq_tail;
		if (depth > q->st->rq_cap)
			q->st->rq_cap = depth;
		if (qp->state == IBV_QPS_ERR)
			rq_flush(q); /* flushed at once, as a QP in error does */
	}
	pthread_mutex_unlock(&ff.mu);
	if (ret)
		*bad = wr;
	return ret;
}

/* ----------------------------------------------------------- data path */

/* Copy from the SGE list @src to the SGE list @dst, up to the shorter of the two. */
static void sge_copy(const struct ibv_sge *dst, unsigned int ndst, const struct ibv_sge *src,
		     unsigned int nsrc)
{
	unsigned int di = 0, si = 0;
	uint32_t doff = 0, soff = 0;

	while (si < nsrc && di < ndst) {
		uint32_t n = src[si].length - soff;

		if (n > dst[di].length - doff)
			n = dst[di].length - doff;
		memmove((void *)(uintptr_t)(dst[di].addr + doff),
			(const void *)(uintptr_t)(src[si].addr + soff), n);
		soff += n;
		doff += n;
		if (soff == src[si].length) {
			si++;
			soff = 0;
		}
		if (doff == dst[di].length) {
			di++;
			doff = 0;
		}
	}
}

/* The local SGEs of @wr must lie in MRs of the QP's PD granting @access; *@len is their total. */
static enum ibv_wc_status local_sges(struct ff_qp *qp, const struct ibv_send_wr *wr, int access,
				     uint64_t *len)
{
	*len = 0;
	for (int i = 0; i < wr->num_sge; i++) {
		const struct ibv_sge *s = &wr->sg_list[i];

		if (s->length && !(wr->send_flags & IBV_SEND_INLINE) &&
		    !ff_mr_check(qp->pd, s->lkey, false, s->addr, s->length, access))
			return IBV_WC_LOC_PROT_ERR;
		*len += s->length;
	}
	return *len > FF_MAX_MSG ? IBV_WC_LOC_LEN_ERR : IBV_WC_SUCCESS;
}

/*
 * Whether the responder answers at all. A destroyed peer answers nothing:
 * the requester's retries run out. A peer QP in error answers with a
 * remote operation error, which is what rxe does (docs/rdma.md).
 */
static enum ibv_wc_status peer_state(const struct ff_qp *qp)
{
	if (!qp->peer)
		return IBV_WC_RETRY_EXC_ERR;
	if (qp->peer->qp.state == IBV_QPS_ERR)
		return IBV_WC_REM_OP_ERR;
	return IBV_WC_SUCCESS;
}

/* Under ff.mu: the connecting side's QP number @nth and its peer go to error. */
static void kill_conn(unsigned int nth)
{
	for (struct ff_id *i = ff.ids; i; i = i->next) {
		struct ff_qp *k = i->id.qp ? ff_of(ff_qp, i->id.qp) : NULL;

		if (!i->active || !k || k->st->nth != nth)
			continue;
		if (ff.faults.kill_downs_link && ff.ndown < sizeof(ff.down) / sizeof(ff.down[0]))
			ff.down[ff.ndown++] =
			    ((struct sockaddr_in *)&i->id.route.addr.dst_addr)->sin_addr.s_addr;
		ff_qp_error(k);
		if (k->peer)
			ff_qp_error(k->peer);
	}
}

/* Under ff.mu: the faults of the test, counted by data WRITE. */
static uint32_t write_faults(struct ff_qp *qp, uint32_t rkey)
{
	uint64_t n = ++ff.writes;

	if (ff.faults.revoke_at == n)
		for (struct ff_mr *m = qp->peer ? qp->peer->pd->mrs : NULL; m; m = m->next)
			if (m->access & IBV_ACCESS_REMOTE_WRITE)
				m->revoked = true;
	if (ff.faults.peer_error_at == n && qp->peer)
		ff_qp_error(qp->peer);
	if (ff.faults.bad_rkey_at == n)
		rkey ^= 0x00ff0000u;
	if (ff.faults.kill_at == n)
		kill_conn(ff.faults.kill_nth);
	if (ff.faults.kill2_at == n && !ff.faults.kill2_send)
		kill_conn(ff.faults.kill2_nth);
	return rkey;
}

/* A remote access violation: class C at the responder, whose QP goes to error too. */
static enum ibv_wc_status remote_access_error(struct ff_qp *qp)
{
	ff.st.access_err++;
	ff_qp_error(qp->peer);
	return IBV_WC_REM_ACCESS_ERR;
}

static enum ibv_wc_status do_write(struct ff_qp *qp, const struct ibv_send_wr *wr, uint64_t len)
{
	struct ibv_sge dst = {.addr = wr->wr.rdma.remote_addr, .length = (uint32_t)len};
	uint32_t rkey = wr->wr.rdma.rkey;
	enum ibv_wc_status st;

	if (len)
		rkey = write_faults(qp, rkey);
	st = peer_state(qp);
	if (st)
		return st;
	if (!len) {
		/* C9-88: a zero-length RDMA WRITE checks no R_Key */
		qp->st->nops++;
		return IBV_WC_SUCCESS;
	}
	if (!ff_mr_check(qp->peer->pd, rkey, true, dst.addr, len, IBV_ACCESS_REMOTE_WRITE) &&
	    !ff_mw_check(qp->peer, rkey, dst.addr, len, IBV_ACCESS_REMOTE_WRITE))
		return remote_access_error(qp);
	sge_copy(&dst, 1, wr->sg_list, (unsigned int)wr->num_sge);
	qp->st->writes++;
	return IBV_WC_SUCCESS;
}

static enum ibv_wc_status do_read(struct ff_qp *qp, const struct ibv_send_wr *wr, uint64_t len)
{
	struct ibv_sge src = {.addr = wr->wr.rdma.remote_addr, .length = (uint32_t)len};
	enum ibv_wc_status st = peer_state(qp);

	if (st)
		return st;
	qp->st->reads++;
	if (!len)
		return IBV_WC_SUCCESS;
	if (!ff_mr_check(qp->peer->pd, wr->wr.rdma.rkey, true, src.addr, len,
			 IBV_ACCESS_REMOTE_READ) &&
	    !ff_mw_check(qp->peer, wr->wr.rdma.rkey, src.addr, len, IBV_ACCESS_REMOTE_READ))
		return remote_access_error(qp);
	sge_copy(wr->sg_list, (unsigned int)wr->num_sge, &src, 1);
	return IBV_WC_SUCCESS;
}

/* A SEND takes the responder's oldest receive; without one it is an RNR (rnr_retry 0). */
static enum ibv_wc_status do_send(struct ff_qp *qp, const struct ibv_send_wr *wr, uint64_t len)
{
	struct ff_qp *peer = qp->peer;
	enum ibv_wc_status st;
	struct ibv_wc wc = {0};
	unsigned int depth;
	uint64_t room = 0;
	struct ff_rwr *r;

	if (ff.faults.kill2_send && qp->st->active && qp->st->nth == ff.faults.kill2_nth &&
	    qp->st->sends + 1 == ff.faults.kill2_send)
		kill_conn(ff.faults.kill2_nth);
	st = peer_state(qp);
	if (st)
		return st;
	qp->st->sends++;
	depth = peer->rq_head - peer->rq_tail;
	if (!depth) {
		ff.st.rnr++;
		peer->st->rnr++;
		fprintf(stderr, "fake fabric: RNR: a SEND of %llu bytes found no receive posted\n",
			(unsigned long long)len);
		return IBV_WC_RNR_RETRY_EXC_ERR;
	}
	if (depth < peer->st->min_rq_at_send)
		peer->st->min_rq_at_send = depth;
	r = &peer->rq[peer->rq_tail++ % peer->max_recv_wr];
	wc.wr_id = r->wr_id;
	wc.opcode = IBV_WC_RECV;
	wc.qp_num = peer->qp.qp_num;
	wc.src_qp = qp->qp.qp_num;
	for (unsigned int i = 0; i < r->nsge; i++) {
		if (r->sge[i].length && !ff_mr_check(peer->pd, r->sge[i].lkey, false, r->sge[i].addr,
						  r->sge[i].length, IBV_ACCESS_LOCAL_WRITE))
			wc.status = IBV_WC_LOC_PROT_ERR;
		room += r->sge[i].length;
	}
	if (!wc.status && len > room)
		wc.status = IBV_WC_LOC_LEN_ERR;
	if (wc.status) {
		/* the responder's fault: its QP goes to error, the requester hears of it */
		ff_cq_push(peer->rcq, &wc, NULL, 0);
		ff_qp_error(peer);
		return wc.status == IBV_WC_LOC_LEN_ERR ? IBV_WC_REM_INV_REQ_ERR : IBV_WC_REM_OP_ERR;
	}
	sge_copy(r->sge, r->nsge, wr->sg_list, (unsigned int)wr->num_sge);
	wc.byte_len = (uint32_t)len;
	if (wr->opcode == IBV_WR_SEND_WITH_IMM) {
		wc.wc_flags = IBV_WC_WITH_IMM;
		wc.imm_data = wr->imm_data;
	}
	ff_cq_push(peer->rcq, &wc, NULL, 0);
	peer->st->received++;
	/* buffers the receiver holds now: this message and those it has not reposted */
	if (peer->st->rq_cap - (depth - 1) > peer->st->max_unread)
		peer->st->max_unread = peer->st->rq_cap - (depth - 1);
	return IBV_WC_SUCCESS;
}

static enum ibv_wc_status execute(struct ff_qp *qp, const struct ibv_send_wr *wr,
				  uint32_t *byte_len)
{
	bool read = wr->opcode == IBV_WR_RDMA_READ;
	enum ibv_wc_status st;
	uint64_t len;

	if (wr->num_sge < 0 || (unsigned int)wr->num_sge > qp->max_send_sge)
		return IBV_WC_LOC_LEN_ERR;
	if (wr->opcode == IBV_WR_BIND_MW)
		return ff_mw_bind(qp, wr);
	st = local_sges(qp, wr, read ? IBV_ACCESS_LOCAL_WRITE : 0, &len);
	if (st)
		return st;
	switch (wr->opcode) {
	case IBV_WR_RDMA_WRITE:
		return do_write(qp, wr, len);
	case IBV_WR_RDMA_READ:
		*byte_len = (uint32_t)len;
		return do_read(qp, wr, len);
	case IBV_WR_SEND:
	case IBV_WR_SEND_WITH_IMM:
		return do_send(qp, wr, len);
	default:
		return IBV_WC_LOC_QP_OP_ERR;
	}
}

static enum ibv_wc_opcode wc_opcode(enum ibv_wr_opcode op)
{
	switch (op) {
	case IBV_WR_RDMA_WRITE:
	case IBV_WR_RDMA_WRITE_WITH_IMM:
		return IBV_WC_RDMA_WRITE;
	case IBV_WR_RDMA_READ:
		return IBV_WC_RDMA_READ;
	case IBV_WR_BIND_MW:
		return IBV_WC_BIND_MW;
	default:
		return IBV_WC_SEND;
	}
}

int ff_post_send(struct ibv_qp *ibqp, struct ibv_send_wr *wr, struct ibv_send_wr **bad)
{
	struct ff_qp *qp = ff_of(ff_qp, ibqp);
	int ret = 0;

	pthread_mutex_lock(&ff.mu);
	for (; wr; wr = wr->next) {
		enum ibv_wc_status st = IBV_WC_WR_FLUSH_ERR;
		uint32_t byte_len = 0;
		uint64_t seq;

		if (ibqp->state != IBV_QPS_RTS && ibqp->state != IBV_QPS_ERR) {
			ret = -EINVAL;
			break;
		}
		/* a slot is free once a completion of it, or of a later WR, was polled */
		if (qp->sq_posted - qp->sq_freed >= qp->max_send_wr) {
			ff_misuse("ibv_post_send on a full send queue (%u WRs outstanding)",
				  qp->max_send_wr);
			ret = -ENOMEM;
			break;
		}
		seq = ++qp->sq_posted;
		if (seq - qp->sq_freed > qp->st->max_sq)
			qp->st->max_sq = seq - qp->sq_freed;
		if (ibqp->state == IBV_QPS_RTS)
			st = execute(qp, wr, &byte_len);
		if (st || qp->sig_all || (wr->send_flags & IBV_SEND_SIGNALED)) {
			struct ibv_wc wc = {.wr_id = wr->wr_id,
					    .status = st,
					    .opcode = wc_opcode(wr->opcode),
					    .byte_len = byte_len,
					    .qp_num = ibqp->qp_num};

			ff_cq_push(qp->scq, &wc, qp, seq);
		}
		if (st && st != IBV_WC_WR_FLUSH_ERR) {
			if (!qp->st->first_error)
				qp->st->first_error = st;
			if (!ff.st.first_error) {
				ff.st.first_error = st;
				ff.st.first_error_qp = (unsigned int)(qp->st - ff.st.qp);
			}
			ff_qp_error(qp);
		}
	}
	pthread_mutex_unlock(&ff.mu);
	if (ret)
		*bad = wr;
	return ret;
}
