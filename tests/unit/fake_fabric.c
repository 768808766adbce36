// SPDX-License-Identifier: MIT
/*
 * The fake fabric's verbs half: device, PD, MRs, CQs with completion
 * channels, QPs and the RC data path (fake_fabric.h says what is emulated).
 *
 * Work requests execute when they are posted, under the fabric's mutex, in
 * order: a WRITE has landed in the peer's memory, and a SEND in the peer's
 * receive buffer, before ibv_post_send() returns. That is the fastest
 * network there is; what it cannot hide is a SEND for which the receiver
 * posted no buffer, and that is what the credit tests are after.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "fake_fabric_priv.h"

struct ff_fabric ff = {.mu = PTHREAD_MUTEX_INITIALIZER};

#define ff_of(type, p) ((struct type *)(void *)(p))

void ff_misuse(const char *fmt, ...)
{
	va_list ap;

	if (!ff.st.misuse++) {
		va_start(ap, fmt);
		vsnprintf(ff.st.misuse_msg, sizeof(ff.st.misuse_msg), fmt, ap);
		va_end(ap);
	}
	fprintf(stderr, "fake fabric: verbs misuse (%u so far): %s\n", ff.st.misuse,
		ff.st.misuse_msg);
}

void ff_efd_set(int fd, bool ready)
{
	uint64_t v = 1;

	/* non-blocking: a write to a readable eventfd or a read of an empty one does nothing */
	if (ready) {
		if (write(fd, &v, sizeof(v)) < 0) {
		}
	} else if (read(fd, &v, sizeof(v)) < 0) {
	}
}

/* ------------------------------------------------------------ devices */

static int ff_get_device_list(struct ibv_device ***list, int *num)
{
	/* allocated, as rdma-core does, so a missing free shows up under ASan */
	struct ibv_device **l = calloc(2, sizeof(*l));

	if (!l)
		return -ENOMEM;
	l[0] = &ff.dev;
	*list = l;
	*num = 1;
	return 0;
}

static void ff_free_device_list(struct ibv_device **list)
{
	free(list);
}

static int ff_cm_get_devices(struct ibv_context ***list, int *num)
{
	struct ibv_context **l = calloc(2, sizeof(*l));

	if (!l)
		return -ENOMEM;
	l[0] = &ff.ctx;
	*list = l;
	*num = 1;
	return 0;
}

static void ff_cm_free_devices(struct ibv_context **list)
{
	free(list);
}

static int ff_query_device(struct ibv_context *ctx, struct ibv_device_attr *a)
{
	memset(a, 0, sizeof(*a));
	snprintf(a->fw_ver, sizeof(a->fw_ver), "fake");
	a->max_mr_size = ~0ull;
	a->max_qp = 1024;
	a->max_qp_wr = 16384;
	a->max_sge = FF_MAX_SGE;
	a->max_cq = 1024;
	a->max_cqe = 65536;
	a->max_mr = 65536;
	a->max_pd = 64;
	a->max_qp_rd_atom = 16;
	a->max_qp_init_rd_atom = 16;
	a->phys_port_cnt = 1;
	return 0;
}

static int ff_query_port(struct ibv_context *ctx, uint8_t port, struct ibv_port_attr *a)
{
	if (port != 1)
		return -EINVAL;
	memset(a, 0, sizeof(*a));
	a->state = IBV_PORT_ACTIVE;
	a->max_mtu = IBV_MTU_4096;
	a->active_mtu = IBV_MTU_1024;
	a->gid_tbl_len = 2;
	a->max_msg_sz = FF_MAX_MSG;
	a->link_layer = IBV_LINK_LAYER_ETHERNET;
	return 0;
}

/* Index 0: a link-local GID; index 1: ::ffff:127.0.0.1, as rxe shows IPv4. */
static int ff_query_gid(struct ibv_context *ctx, uint8_t port, int index, union ibv_gid *gid)
{
	if (port != 1 || index < 0 || index > 1)
		return -EINVAL;
	memset(gid, 0, sizeof(*gid));
	if (index == 0) {
		gid->raw[0] = 0xfe;
		gid->raw[1] = 0x80;
		gid->raw[15] = 1;
	} else {
		gid->raw[10] = gid->raw[11] = 0xff;
		gid->raw[12] = 127;
		gid->raw[15] = 1;
	}
	return 0;
}

/* -------------------------------------------------------- PD and MRs */

static int ff_alloc_pd(struct ibv_context *ctx, struct ibv_pd **pd)
{
	struct ff_pd *p = calloc(1, sizeof(*p));

	if (!p)
		return -ENOMEM;
	p->pd.context = ctx;
	pthread_mutex_lock(&ff.mu);
	ff.live++;
	pthread_mutex_unlock(&ff.mu);
	*pd = &p->pd;
	return 0;
}

static int ff_dealloc_pd(struct ibv_pd *pd)
{
	struct ff_pd *p = ff_of(ff_pd, pd);

	pthread_mutex_lock(&ff.mu);
	if (p->mrs || p->nqps) {
		ff_misuse("ibv_dealloc_pd with %s still in it", p->mrs ? "MRs" : "QPs");
		pthread_mutex_unlock(&ff.mu);
		return -EBUSY;
	}
	ff.live--;
	pthread_mutex_unlock(&ff.mu);
	free(p);
	return 0;
}

static int ff_reg_mr(struct ibv_pd *pd, void *addr, size_t len, int access, struct ibv_mr **mr)
{
	struct ff_pd *p = ff_of(ff_pd, pd);
	struct ff_mr *m;

	if (!len || !addr)
		return -EINVAL;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	pthread_mutex_lock(&ff.mu);
	/* keys are never reused: a stale rkey must not hit a newer MR */
	ff.next_key++;
	m->mr.context = pd->context;
	m->mr.pd = pd;
	m->mr.addr = addr;
	m->mr.length = len;
	m->mr.lkey = 0x10000000u | (ff.next_key << 8);
	m->mr.rkey = 0x20000000u | (ff.next_key << 8) | 0x5a;
	m->pd = p;
	m->access = access;
	m->next = p->mrs;
	p->mrs = m;
	ff.live++;
	pthread_mutex_unlock(&ff.mu);
	*mr = &m->mr;
	return 0;
}

static int ff_dereg_mr(struct ibv_mr *mr)
{
	struct ff_mr *m = ff_of(ff_mr, mr), **pp;

	pthread_mutex_lock(&ff.mu);
	for (pp = &m->pd->mrs; *pp && *pp != m; pp = &(*pp)->next)
		;
	if (!*pp) {
		ff_misuse("ibv_dereg_mr of an unknown MR");
		pthread_mutex_unlock(&ff.mu);
		return -EINVAL;
	}
	*pp = m->next;
	ff.live--;
	pthread_mutex_unlock(&ff.mu);
	free(m);
	return 0;
}

/* The MR of @pd that holds [addr, addr + len) and grants @access, by key. */
static struct ff_mr *mr_check(struct ff_pd *pd, uint32_t key, bool remote, uint64_t addr,
			      uint64_t len, int access)
{
	for (struct ff_mr *m = pd->mrs; m; m = m->next) {
		uint64_t start = (uintptr_t)m->mr.addr;

		if ((remote ? m->mr.rkey : m->mr.lkey) != key)
			continue;
		if (remote && m->revoked)
			return NULL;
		if (addr < start || addr + len < addr || addr + len > start + m->mr.length)
			return NULL;
		if ((m->access & access) != access)
			return NULL;
		return m;
	}
	return NULL;
}

void ff_revoke_remote_mrs(void)
{
	pthread_mutex_lock(&ff.mu);
	for (struct ff_id *i = ff.ids; i; i = i->next) {
		struct ff_qp *qp = ff_of(ff_qp, i->id.qp);

		if (!qp)
			continue;
		for (struct ff_mr *m = qp->pd->mrs; m; m = m->next)
			if (m->access & IBV_ACCESS_REMOTE_WRITE)
				m->revoked = true;
	}
	pthread_mutex_unlock(&ff.mu);
}

/* ----------------------------------------------------------------- CQs */

static int ff_create_comp_channel(struct ibv_context *ctx, struct ibv_comp_channel **cc)
{
	struct ff_cc *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	c->cc.context = ctx;
	c->cc.fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (c->cc.fd < 0) {
		free(c);
		return -errno;
	}
	pthread_mutex_lock(&ff.mu);
	ff.live++;
	pthread_mutex_unlock(&ff.mu);
	*cc = &c->cc;
	return 0;
}

static int ff_destroy_comp_channel(struct ibv_comp_channel *cc)
{
	struct ff_cc *c = ff_of(ff_cc, cc);

	pthread_mutex_lock(&ff.mu);
	if (c->ncqs) {
		ff_misuse("ibv_destroy_comp_channel with a CQ still on it");
		pthread_mutex_unlock(&ff.mu);
		return -EBUSY;
	}
	ff.live--;
	pthread_mutex_unlock(&ff.mu);
	close(c->cc.fd);
	free(c);
	return 0;
}

static int ff_create_cq(struct ibv_context *ctx, int cqe, void *cq_ctx,
			struct ibv_comp_channel *cc, struct ibv_cq **cq)
{
	struct ff_cq *q;

	if (cqe < 1 || cqe > 65536)
		return -EINVAL;
	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	/* room beyond cqe, so an overrun is reported rather than lost */
	q->size = (unsigned int)cqe * 2 + 64;
	q->ring = calloc(q->size, sizeof(*q->ring));
	if (!q->ring) {
		free(q);
		return -ENOMEM;
	}
	q->cq.context = ctx;
	q->cq.channel = cc;
	q->cq.cq_context = cq_ctx;
	q->cq.cqe = cqe;
	pthread_mutex_lock(&ff.mu);
	if (cc) {
		q->ch = ff_of(ff_cc, cc);
		q->ch->cq = q;
		q->ch->ncqs++;
	}
	ff.live++;
	pthread_mutex_unlock(&ff.mu);
	*cq = &q->cq;
	return 0;
}

static int ff_destroy_cq(struct ibv_cq *cq)
{
	struct ff_cq *q = ff_of(ff_cq, cq);

	pthread_mutex_lock(&ff.mu);
	if (q->nqps) {
		ff_misuse("ibv_destroy_cq with a QP still using it");
		pthread_mutex_unlock(&ff.mu);
		return -EBUSY;
	}
	/* libibverbs waits in ibv_destroy_cq until every event taken was acked */
	if (q->delivered != q->acked)
		ff_misuse("ibv_destroy_cq with %llu CQ events not acked (would hang)",
			  (unsigned long long)(q->delivered - q->acked));
	if (q->ch) {
		q->ch->ncqs--;
		if (q->ch->cq == q)
			q->ch->cq = NULL;
	}
	ff.live--;
	pthread_mutex_unlock(&ff.mu);
	free(q->ring);
	free(q);
	return 0;
}

static int ff_req_notify_cq(struct ibv_cq *cq, int solicited_only)
{
	pthread_mutex_lock(&ff.mu);
	/* the next completion raises an event; those already queued do not */
	ff_of(ff_cq, cq)->armed = true;
	pthread_mutex_unlock(&ff.mu);
	return 0;
}

static int ff_get_cq_event(struct ibv_comp_channel *cc, struct ibv_cq **cq, void **cq_ctx)
{
	struct ff_cc *c = ff_of(ff_cc, cc);
	int ret = -EAGAIN;

	pthread_mutex_lock(&ff.mu);
	if (c->pending && c->cq) {
		if (!--c->pending)
			ff_efd_set(c->cc.fd, false);
		c->cq->delivered++;
		*cq = &c->cq->cq;
		*cq_ctx = c->cq->cq.cq_context;
		ret = 0;
	}
	pthread_mutex_unlock(&ff.mu);
	return ret;
}

static void ff_ack_cq_events(struct ibv_cq *cq, unsigned int nevents)
{
	struct ff_cq *q = ff_of(ff_cq, cq);

	pthread_mutex_lock(&ff.mu);
	q->acked += nevents;
	if (q->acked > q->delivered)
		ff_misuse("ibv_ack_cq_events acked %llu events, only %llu were taken",
			  (unsigned long long)q->acked, (unsigned long long)q->delivered);
	pthread_mutex_unlock(&ff.mu);
}

/* Under ff.mu: queue a completion, and raise an event if the CQ is armed. */
static void cq_push(struct ff_cq *q, const struct ibv_wc *wc, struct ff_qp *sq_qp, uint64_t seq)
{
	struct ff_cqe *e;

	if (q->head - q->tail >= (unsigned int)q->cq.cqe) {
		ff_misuse("CQ overrun: %u completions in a CQ of %d", q->head - q->tail + 1,
			  q->cq.cqe);
		if (q->head - q->tail >= q->size) {
			fprintf(stderr, "fake fabric: CQ ring exhausted\n");
			abort();
		}
	}
	e = &q->ring[q->head++ % q->size];
	e->wc = *wc;
	e->sq_qp = sq_qp;
	e->sq_seq = seq;
	if (q->armed && q->ch) {
		q->armed = false;
		if (!q->ch->pending++)
			ff_efd_set(q->ch->cc.fd, true);
	}
}

static int ff_poll_cq(struct ibv_cq *cq, int num, struct ibv_wc *wc)
{
	struct ff_cq *q = ff_of(ff_cq, cq);
	int n = 0;

	pthread_mutex_lock(&ff.mu);
	while (n < num && q->tail != q->head) {
		struct ff_cqe *e = &q->ring[q->tail++ % q->size];

		/* a send completion frees its WR's slot and every earlier one */
		if (e->sq_qp && e->sq_seq > e->sq_qp->sq_freed)
			e->sq_qp->sq_freed = e->sq_seq;
		wc[n++] = e->wc;
	}
	pthread_mutex_unlock(&ff.mu);
	return n;
}

/* ----------------------------------------------------------------- QPs */

static int ff_create_qp(struct rdma_cm_id *id, struct ibv_pd *pd, struct ibv_qp_init_attr *a)
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

static void ff_destroy_qp(struct rdma_cm_id *id)
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

		cq_push(qp->rcq, &wc, NULL, 0);
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

static int ff_modify_qp(struct ibv_qp *qp, struct ibv_qp_attr *attr, int mask)
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

static int ff_post_recv(struct ibv_qp *qp, struct ibv_recv_wr *wr, struct ibv_recv_wr **bad)
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
		    !mr_check(qp->pd, s->lkey, false, s->addr, s->length, access))
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
	if (!mr_check(qp->peer->pd, rkey, true, dst.addr, len, IBV_ACCESS_REMOTE_WRITE))
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
	if (!mr_check(qp->peer->pd, wr->wr.rdma.rkey, true, src.addr, len,
		      IBV_ACCESS_REMOTE_READ))
		return remote_access_error(qp);
	sge_copy(wr->sg_list, (unsigned int)wr->num_sge, &src, 1);
	return IBV_WC_SUCCESS;
}

/* A SEND takes the responder's oldest receive; without one it is an RNR (rnr_retry 0). */
static enum ibv_wc_status do_send(struct ff_qp *qp, const struct ibv_send_wr *wr, uint64_t len)
{
	struct ff_qp *peer = qp->peer;
	enum ibv_wc_status st = peer_state(qp);
	struct ibv_wc wc = {0};
	unsigned int depth;
	uint64_t room = 0;
	struct ff_rwr *r;

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
		if (r->sge[i].length && !mr_check(peer->pd, r->sge[i].lkey, false, r->sge[i].addr,
						  r->sge[i].length, IBV_ACCESS_LOCAL_WRITE))
			wc.status = IBV_WC_LOC_PROT_ERR;
		room += r->sge[i].length;
	}
	if (!wc.status && len > room)
		wc.status = IBV_WC_LOC_LEN_ERR;
	if (wc.status) {
		/* the responder's fault: its QP goes to error, the requester hears of it */
		cq_push(peer->rcq, &wc, NULL, 0);
		ff_qp_error(peer);
		return wc.status == IBV_WC_LOC_LEN_ERR ? IBV_WC_REM_INV_REQ_ERR : IBV_WC_REM_OP_ERR;
	}
	sge_copy(r->sge, r->nsge, wr->sg_list, (unsigned int)wr->num_sge);
	wc.byte_len = (uint32_t)len;
	if (wr->opcode == IBV_WR_SEND_WITH_IMM) {
		wc.wc_flags = IBV_WC_WITH_IMM;
		wc.imm_data = wr->imm_data;
	}
	cq_push(peer->rcq, &wc, NULL, 0);
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
	default:
		return IBV_WC_SEND;
	}
}

static int ff_post_send(struct ibv_qp *ibqp, struct ibv_send_wr *wr, struct ibv_send_wr **bad)
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

			cq_push(qp->scq, &wc, qp, seq);
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

/* ------------------------------------------------------------- control */

void ff_init(void)
{
	pthread_mutex_lock(&ff.mu);
	if (ff.live)
		fprintf(stderr, "fake fabric: %u objects still live from the last run\n", ff.live);
	ff.ids = NULL;
	ff.out = NULL;
	ff.live = 0;
	ff.writes = 0;
	ff.nth[0] = ff.nth[1] = 0;
	memset(&ff.faults, 0, sizeof(ff.faults));
	memset(&ff.st, 0, sizeof(ff.st));
	for (unsigned int i = 0; i < FF_MAX_QPS; i++)
		ff.st.qp[i].min_rq_at_send = ~0u;
	if (!ff.next_port)
		ff.next_port = 20000;
	memset(&ff.dev, 0, sizeof(ff.dev));
	snprintf(ff.dev.name, sizeof(ff.dev.name), "fake0");
	snprintf(ff.dev.dev_name, sizeof(ff.dev.dev_name), "uverbs0");
	ff.dev.node_type = IBV_NODE_CA;
	ff.dev.transport_type = IBV_TRANSPORT_IB;
	memset(&ff.ctx, 0, sizeof(ff.ctx));
	ff.ctx.device = &ff.dev;
	ff.ctx.cmd_fd = -1;
	ff.ctx.async_fd = -1;
	pthread_mutex_unlock(&ff.mu);
}

unsigned int ff_live_objects(void)
{
	unsigned int n;

	pthread_mutex_lock(&ff.mu);
	n = ff.live;
	pthread_mutex_unlock(&ff.mu);
	return n;
}

void ff_fini(void)
{
	ff_init();
}

void ff_fault_set(const struct ff_faults *f)
{
	pthread_mutex_lock(&ff.mu);
	ff.faults = *f;
	pthread_mutex_unlock(&ff.mu);
}

uint64_t ff_writes(void)
{
	uint64_t n;

	pthread_mutex_lock(&ff.mu);
	n = ff.writes;
	pthread_mutex_unlock(&ff.mu);
	return n;
}

void ff_stats_get(struct ff_stats *s)
{
	pthread_mutex_lock(&ff.mu);
	*s = ff.st;
	pthread_mutex_unlock(&ff.mu);
	for (unsigned int i = 0; i < s->nqps; i++)
		if (s->qp[i].min_rq_at_send == ~0u)
			s->qp[i].min_rq_at_send = s->qp[i].rq_cap;
}

const struct rmig_verbs_ops ff_verbs = {
	.get_device_list = ff_get_device_list,
	.free_device_list = ff_free_device_list,
	.cm_get_devices = ff_cm_get_devices,
	.cm_free_devices = ff_cm_free_devices,
	.query_device = ff_query_device,
	.query_port = ff_query_port,
	.query_gid = ff_query_gid,
	.alloc_pd = ff_alloc_pd,
	.dealloc_pd = ff_dealloc_pd,
	.reg_mr = ff_reg_mr,
	.dereg_mr = ff_dereg_mr,
	.create_comp_channel = ff_create_comp_channel,
	.destroy_comp_channel = ff_destroy_comp_channel,
	.create_cq = ff_create_cq,
	.destroy_cq = ff_destroy_cq,
	.req_notify_cq = ff_req_notify_cq,
	.get_cq_event = ff_get_cq_event,
	.ack_cq_events = ff_ack_cq_events,
	.poll_cq = ff_poll_cq,
	.create_qp = ff_create_qp,
	.destroy_qp = ff_destroy_qp,
	.modify_qp = ff_modify_qp,
	.post_send = ff_post_send,
	.post_recv = ff_post_recv,
	.create_event_channel = ff_create_event_channel,
	.destroy_event_channel = ff_destroy_event_channel,
	.create_id = ff_create_id,
	.destroy_id = ff_destroy_id,
	.migrate_id = ff_migrate_id,
	.set_option = ff_set_option,
	.bind_addr = ff_bind_addr,
	.resolve_addr = ff_resolve_addr,
	.resolve_route = ff_resolve_route,
	.listen = ff_listen,
	.connect = ff_connect,
	.accept = ff_accept,
	.reject = ff_reject,
	.disconnect = ff_disconnect,
	.get_cm_event = ff_get_cm_event,
	.ack_cm_event = ff_ack_cm_event,
	.get_src_port = ff_get_src_port,
};
