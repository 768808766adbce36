// SPDX-License-Identifier: MIT
/*
 * The fake fabric's verbs half: device, PD, MRs, CQs with completion
 * channels, the control functions and the table (fake_fabric.h says what is
 * emulated). QPs and the data path are in fake_fabric_qp.c, rdma_cm in
 * fake_fabric_cm.c.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <stdatomic.h>
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
	pthread_mutex_lock(&ff.mu);
	if (ff.mw_on) {
		a->max_mw = 65536;
		a->device_cap_flags |= IBV_DEVICE_MEM_WINDOW_TYPE_2B;
	}
	pthread_mutex_unlock(&ff.mu);
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
	if (p->mrs || p->mws || p->nqps) {
		ff_misuse("ibv_dealloc_pd with %s still in it",
			  p->mrs ? "MRs" : p->mws ? "memory windows" : "QPs");
		pthread_mutex_unlock(&ff.mu);
		return -EBUSY;
	}
	ff.live--;
	pthread_mutex_unlock(&ff.mu);
	free(p);
	return 0;
}

/* Registration faults and pace (ff_reg_set): read by registration threads, hence atomics. */
static _Atomic(const void *) reg_fail_addr;
static atomic_int reg_fail_err;
static atomic_uint reg_delay_us;

void ff_reg_set(const void *fail_addr, int err, unsigned int delay_us)
{
	atomic_store(&reg_fail_addr, fail_addr);
	atomic_store(&reg_fail_err, err);
	atomic_store(&reg_delay_us, delay_us);
}

static int ff_reg_mr(struct ibv_pd *pd, void *addr, size_t len, int access, struct ibv_mr **mr)
{
	struct ff_pd *p = ff_of(ff_pd, pd);
	struct ff_mr *m;
	unsigned int delay = atomic_load(&reg_delay_us);

	if (!len || !addr)
		return -EINVAL;
	if (delay)
		usleep(delay); /* pinning takes time: streamed registration must overlap it */
	if (addr == atomic_load(&reg_fail_addr))
		return atomic_load(&reg_fail_err);
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
	for (struct ff_mw *w = m->pd->mws; w; w = w->next)
		if (w->qp && w->addr >= (uintptr_t)m->mr.addr &&
		    w->addr + w->len <= (uintptr_t)m->mr.addr + m->mr.length) {
			/* what a provider refuses: the window would outlive its MR */
			ff_misuse("ibv_dereg_mr of an MR with a memory window bound");
			break;
		}
	*pp = m->next;
	ff.live--;
	pthread_mutex_unlock(&ff.mu);
	free(m);
	return 0;
}

struct ff_mr *ff_mr_check(struct ff_pd *pd, uint32_t key, bool remote, uint64_t addr,
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

void ff_cq_push(struct ff_cq *q, const struct ibv_wc *wc, struct ff_qp *sq_qp, uint64_t seq)
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
	ff.ndown = 0;
	ff_reg_set(NULL, 0, 0);
	ff.mw_on = false;
	ff.bind_fail_at = ff.binds = 0;
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

/* ------------------------------------------------------ memory windows */

void ff_mw_set(bool on, unsigned int bind_fail_at)
{
	pthread_mutex_lock(&ff.mu);
	ff.mw_on = on;
	ff.bind_fail_at = bind_fail_at;
	ff.binds = 0;
	pthread_mutex_unlock(&ff.mu);
}

static int ff_alloc_mw(struct ibv_pd *pd, enum ibv_mw_type type, struct ibv_mw **mw)
{
	struct ff_pd *p = ff_of(ff_pd, pd);
	struct ff_mw *w;

	pthread_mutex_lock(&ff.mu);
	if (!ff.mw_on || type != IBV_MW_TYPE_2) {
		ff_misuse("ibv_alloc_mw(type %d) on a device without type 2 windows", (int)type);
		pthread_mutex_unlock(&ff.mu);
		return -EOPNOTSUPP;
	}
	w = calloc(1, sizeof(*w));
	if (!w) {
		pthread_mutex_unlock(&ff.mu);
		return -ENOMEM;
	}
	ff.next_key++;
	w->mw.context = pd->context;
	w->mw.pd = pd;
	w->mw.rkey = 0x30000000u | (ff.next_key << 8);
	w->mw.type = type;
	w->pd = p;
	w->next = p->mws;
	p->mws = w;
	ff.live++;
	pthread_mutex_unlock(&ff.mu);
	*mw = &w->mw;
	return 0;
}

static int ff_dealloc_mw(struct ibv_mw *mw)
{
	struct ff_mw *w = ff_of(ff_mw, mw), **pp;

	pthread_mutex_lock(&ff.mu);
	for (pp = &w->pd->mws; *pp && *pp != w; pp = &(*pp)->next)
		;
	if (!*pp) {
		ff_misuse("ibv_dealloc_mw of an unknown window");
		pthread_mutex_unlock(&ff.mu);
		return -EINVAL;
	}
	*pp = w->next;
	ff.live--;
	pthread_mutex_unlock(&ff.mu);
	free(w);
	return 0;
}

enum ibv_wc_status ff_mw_bind(struct ff_qp *qp, const struct ibv_send_wr *wr)
{
	struct ff_mw *w = ff_of(ff_mw, wr->bind_mw.mw);
	const struct ibv_mw_bind_info *bi = &wr->bind_mw.bind_info;
	struct ff_mw *k;
	struct ff_mr *m;

	for (k = qp->pd->mws; k && k != w; k = k->next)
		;
	if (!k || (wr->bind_mw.rkey & ~0xffu) != (w->mw.rkey & ~0xffu))
		return IBV_WC_MW_BIND_ERR;
	if (ff.bind_fail_at && ++ff.binds == ff.bind_fail_at)
		return IBV_WC_MW_BIND_ERR;
	for (m = qp->pd->mrs; m && &m->mr != bi->mr; m = m->next)
		;
	if (!m || !(m->access & IBV_ACCESS_MW_BIND) || bi->addr < (uintptr_t)m->mr.addr ||
	    bi->addr + bi->length > (uintptr_t)m->mr.addr + m->mr.length)
		return IBV_WC_MW_BIND_ERR;
	w->qp = qp;
	w->key = wr->bind_mw.rkey;
	w->addr = bi->addr;
	w->len = bi->length;
	w->access = (int)bi->mw_access_flags;
	return IBV_WC_SUCCESS;
}

bool ff_mw_check(struct ff_qp *qp, uint32_t key, uint64_t addr, uint64_t len, int access)
{
	for (struct ff_mw *w = qp->pd->mws; w; w = w->next) {
		if (!w->qp || w->key != key)
			continue;
		/* type 2: on the QP it was bound to, and nowhere else */
		return w->qp == qp && addr >= w->addr && addr + len >= addr &&
		       addr + len <= w->addr + w->len && (w->access & access) == access;
	}
	return false;
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
	.alloc_mw = ff_alloc_mw,
	.dealloc_mw = ff_dealloc_mw,
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
