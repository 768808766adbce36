// SPDX-License-Identifier: MIT
/*
 * The real verbs table: thin wrappers that turn rdma-core's conventions into
 * 0 / -errno. Nothing here decides anything.
 */
#include <endian.h>
#include <errno.h>

#include "transport/rdma/verbs_ops.h"

/* -1 + errno (librdmacm), with a fallback for providers that forget errno. */
static int neg_errno(void)
{
	return errno > 0 ? -errno : -EIO;
}

/* libibverbs calls that return an errno value (positive), or -1 + errno. */
static int ret_errno(int ret)
{
	if (ret == 0)
		return 0;
	if (ret > 0)
		return -ret;
	return neg_errno();
}

static int v_get_device_list(struct ibv_device ***list, int *num)
{
	struct ibv_device **l;
	int n = 0;

	errno = 0;
	l = ibv_get_device_list(&n);
	if (!l) {
		/* no uverbs support at all in this kernel is "no device" too */
		if (errno == ENOSYS || errno == ENOENT || errno == 0)
			return -ENODEV;
		return neg_errno();
	}
	*list = l;
	*num = n;
	return 0;
}

static void v_free_device_list(struct ibv_device **list)
{
	ibv_free_device_list(list);
}

static int v_cm_get_devices(struct ibv_context ***list, int *num)
{
	struct ibv_context **l;
	int n = 0;

	errno = 0;
	l = rdma_get_devices(&n);
	if (!l)
		return errno == 0 || errno == ENOSYS ? -ENODEV : neg_errno();
	*list = l;
	*num = n;
	return 0;
}

static void v_cm_free_devices(struct ibv_context **list)
{
	rdma_free_devices(list);
}

static int v_query_device(struct ibv_context *ctx, struct ibv_device_attr *attr)
{
	return ret_errno(ibv_query_device(ctx, attr));
}

static int v_query_port(struct ibv_context *ctx, uint8_t port, struct ibv_port_attr *attr)
{
	return ret_errno(ibv_query_port(ctx, port, attr));
}

static int v_query_gid(struct ibv_context *ctx, uint8_t port, int index, union ibv_gid *gid)
{
	return ret_errno(ibv_query_gid(ctx, port, index, gid));
}

static int v_alloc_pd(struct ibv_context *ctx, struct ibv_pd **pd)
{
	struct ibv_pd *p;

	errno = 0;
	p = ibv_alloc_pd(ctx);
	if (!p)
		return neg_errno();
	*pd = p;
	return 0;
}

static int v_dealloc_pd(struct ibv_pd *pd)
{
	return ret_errno(ibv_dealloc_pd(pd));
}

static int v_reg_mr(struct ibv_pd *pd, void *addr, size_t len, int access, struct ibv_mr **mr)
{
	struct ibv_mr *m;

	errno = 0;
	m = ibv_reg_mr(pd, addr, len, access);
	if (!m)
		return neg_errno();
	*mr = m;
	return 0;
}

static int v_dereg_mr(struct ibv_mr *mr)
{
	return ret_errno(ibv_dereg_mr(mr));
}

static int v_alloc_mw(struct ibv_pd *pd, enum ibv_mw_type type, struct ibv_mw **mw)
{
	struct ibv_mw *w;

	errno = 0;
	w = ibv_alloc_mw(pd, type);
	if (!w)
		return neg_errno();
	*mw = w;
	return 0;
}

static int v_dealloc_mw(struct ibv_mw *mw)
{
	return ret_errno(ibv_dealloc_mw(mw));
}

static int v_create_comp_channel(struct ibv_context *ctx, struct ibv_comp_channel **cc)
{
	struct ibv_comp_channel *c;

	errno = 0;
	c = ibv_create_comp_channel(ctx);
	if (!c)
		return neg_errno();
	*cc = c;
	return 0;
}

static int v_destroy_comp_channel(struct ibv_comp_channel *cc)
{
	return ret_errno(ibv_destroy_comp_channel(cc));
}

static int v_create_cq(struct ibv_context *ctx, int cqe, void *cq_ctx, struct ibv_comp_channel *cc,
		       struct ibv_cq **cq)
{
	struct ibv_cq *c;

	errno = 0;
	c = ibv_create_cq(ctx, cqe, cq_ctx, cc, 0);
	if (!c)
		return neg_errno();
	*cq = c;
	return 0;
}

static int v_destroy_cq(struct ibv_cq *cq)
{
	return ret_errno(ibv_destroy_cq(cq));
}

static int v_req_notify_cq(struct ibv_cq *cq, int solicited_only)
{
	return ret_errno(ibv_req_notify_cq(cq, solicited_only));
}

static int v_get_cq_event(struct ibv_comp_channel *cc, struct ibv_cq **cq, void **cq_ctx)
{
	if (ibv_get_cq_event(cc, cq, cq_ctx))
		return errno == EWOULDBLOCK ? -EAGAIN : neg_errno();
	return 0;
}

static void v_ack_cq_events(struct ibv_cq *cq, unsigned int nevents)
{
	ibv_ack_cq_events(cq, nevents);
}

static int v_poll_cq(struct ibv_cq *cq, int num, struct ibv_wc *wc)
{
	int n = ibv_poll_cq(cq, num, wc);

	/* providers return a negative value without a meaningful errno */
	return n >= 0 ? n : -EIO;
}

static int v_create_qp(struct rdma_cm_id *id, struct ibv_pd *pd, struct ibv_qp_init_attr *attr)
{
	if (rdma_create_qp(id, pd, attr))
		return neg_errno();
	return 0;
}

static void v_destroy_qp(struct rdma_cm_id *id)
{
	rdma_destroy_qp(id);
}

static int v_modify_qp(struct ibv_qp *qp, struct ibv_qp_attr *attr, int mask)
{
	return ret_errno(ibv_modify_qp(qp, attr, mask));
}

static int v_post_send(struct ibv_qp *qp, struct ibv_send_wr *wr, struct ibv_send_wr **bad)
{
	return ret_errno(ibv_post_send(qp, wr, bad));
}

static int v_post_recv(struct ibv_qp *qp, struct ibv_recv_wr *wr, struct ibv_recv_wr **bad)
{
	return ret_errno(ibv_post_recv(qp, wr, bad));
}

static int v_create_event_channel(struct rdma_event_channel **ch)
{
	struct rdma_event_channel *c;

	errno = 0;
	c = rdma_create_event_channel();
	if (!c)
		return errno == ENOENT || errno == ENOSYS ? -ENODEV : neg_errno();
	*ch = c;
	return 0;
}

static void v_destroy_event_channel(struct rdma_event_channel *ch)
{
	rdma_destroy_event_channel(ch);
}

static int v_create_id(struct rdma_event_channel *ch, struct rdma_cm_id **id, void *ctx,
		       enum rdma_port_space ps)
{
	return rdma_create_id(ch, id, ctx, ps) ? neg_errno() : 0;
}

static int v_destroy_id(struct rdma_cm_id *id)
{
	return rdma_destroy_id(id) ? neg_errno() : 0;
}

static int v_migrate_id(struct rdma_cm_id *id, struct rdma_event_channel *ch)
{
	return rdma_migrate_id(id, ch) ? neg_errno() : 0;
}

static int v_set_option(struct rdma_cm_id *id, int level, int name, void *val, size_t len)
{
	return rdma_set_option(id, level, name, val, len) ? neg_errno() : 0;
}

static int v_bind_addr(struct rdma_cm_id *id, struct sockaddr *addr)
{
	return rdma_bind_addr(id, addr) ? neg_errno() : 0;
}

static int v_resolve_addr(struct rdma_cm_id *id, struct sockaddr *src, struct sockaddr *dst,
			  int timeout_ms)
{
	return rdma_resolve_addr(id, src, dst, timeout_ms) ? neg_errno() : 0;
}

static int v_resolve_route(struct rdma_cm_id *id, int timeout_ms)
{
	return rdma_resolve_route(id, timeout_ms) ? neg_errno() : 0;
}

static int v_listen(struct rdma_cm_id *id, int backlog)
{
	return rdma_listen(id, backlog) ? neg_errno() : 0;
}

static int v_connect(struct rdma_cm_id *id, struct rdma_conn_param *param)
{
	return rdma_connect(id, param) ? neg_errno() : 0;
}

static int v_accept(struct rdma_cm_id *id, struct rdma_conn_param *param)
{
	return rdma_accept(id, param) ? neg_errno() : 0;
}

static int v_reject(struct rdma_cm_id *id, const void *data, uint8_t len)
{
	return rdma_reject(id, data, len) ? neg_errno() : 0;
}

static int v_disconnect(struct rdma_cm_id *id)
{
	return rdma_disconnect(id) ? neg_errno() : 0;
}

static int v_get_cm_event(struct rdma_event_channel *ch, struct rdma_cm_event **ev)
{
	if (rdma_get_cm_event(ch, ev))
		return errno == EWOULDBLOCK ? -EAGAIN : neg_errno();
	return 0;
}

static int v_ack_cm_event(struct rdma_cm_event *ev)
{
	return rdma_ack_cm_event(ev) ? neg_errno() : 0;
}

static uint16_t v_get_src_port(struct rdma_cm_id *id)
{
	return be16toh(rdma_get_src_port(id));
}

const struct rmig_verbs_ops rmig_verbs_real = {
	.get_device_list = v_get_device_list,
	.free_device_list = v_free_device_list,
	.cm_get_devices = v_cm_get_devices,
	.cm_free_devices = v_cm_free_devices,
	.query_device = v_query_device,
	.query_port = v_query_port,
	.query_gid = v_query_gid,
	.alloc_pd = v_alloc_pd,
	.dealloc_pd = v_dealloc_pd,
	.reg_mr = v_reg_mr,
	.dereg_mr = v_dereg_mr,
	.alloc_mw = v_alloc_mw,
	.dealloc_mw = v_dealloc_mw,
	.create_comp_channel = v_create_comp_channel,
	.destroy_comp_channel = v_destroy_comp_channel,
	.create_cq = v_create_cq,
	.destroy_cq = v_destroy_cq,
	.req_notify_cq = v_req_notify_cq,
	.get_cq_event = v_get_cq_event,
	.ack_cq_events = v_ack_cq_events,
	.poll_cq = v_poll_cq,
	.create_qp = v_create_qp,
	.destroy_qp = v_destroy_qp,
	.modify_qp = v_modify_qp,
	.post_send = v_post_send,
	.post_recv = v_post_recv,
	.create_event_channel = v_create_event_channel,
	.destroy_event_channel = v_destroy_event_channel,
	.create_id = v_create_id,
	.destroy_id = v_destroy_id,
	.migrate_id = v_migrate_id,
	.set_option = v_set_option,
	.bind_addr = v_bind_addr,
	.resolve_addr = v_resolve_addr,
	.resolve_route = v_resolve_route,
	.listen = v_listen,
	.connect = v_connect,
	.accept = v_accept,
	.reject = v_reject,
	.disconnect = v_disconnect,
	.get_cm_event = v_get_cm_event,
	.ack_cm_event = v_ack_cm_event,
	.get_src_port = v_get_src_port,
};

const struct rmig_verbs_ops *rmig_rdma_verbs = &rmig_verbs_real;

const char *rmig_rd_wc_status_name(enum ibv_wc_status status)
{
	static const char *const names[] = {
	    [IBV_WC_SUCCESS] = "IBV_WC_SUCCESS",
	    [IBV_WC_LOC_LEN_ERR] = "IBV_WC_LOC_LEN_ERR",
	    [IBV_WC_LOC_QP_OP_ERR] = "IBV_WC_LOC_QP_OP_ERR",
	    [IBV_WC_LOC_EEC_OP_ERR] = "IBV_WC_LOC_EEC_OP_ERR",
	    [IBV_WC_LOC_PROT_ERR] = "IBV_WC_LOC_PROT_ERR",
	    [IBV_WC_WR_FLUSH_ERR] = "IBV_WC_WR_FLUSH_ERR",
	    [IBV_WC_MW_BIND_ERR] = "IBV_WC_MW_BIND_ERR",
	    [IBV_WC_BAD_RESP_ERR] = "IBV_WC_BAD_RESP_ERR",
	    [IBV_WC_LOC_ACCESS_ERR] = "IBV_WC_LOC_ACCESS_ERR",
	    [IBV_WC_REM_INV_REQ_ERR] = "IBV_WC_REM_INV_REQ_ERR",
	    [IBV_WC_REM_ACCESS_ERR] = "IBV_WC_REM_ACCESS_ERR",
	    [IBV_WC_REM_OP_ERR] = "IBV_WC_REM_OP_ERR",
	    [IBV_WC_RETRY_EXC_ERR] = "IBV_WC_RETRY_EXC_ERR",
	    [IBV_WC_RNR_RETRY_EXC_ERR] = "IBV_WC_RNR_RETRY_EXC_ERR",
	    [IBV_WC_LOC_RDD_VIOL_ERR] = "IBV_WC_LOC_RDD_VIOL_ERR",
	    [IBV_WC_REM_INV_RD_REQ_ERR] = "IBV_WC_REM_INV_RD_REQ_ERR",
	    [IBV_WC_REM_ABORT_ERR] = "IBV_WC_REM_ABORT_ERR",
	    [IBV_WC_INV_EECN_ERR] = "IBV_WC_INV_EECN_ERR",
	    [IBV_WC_INV_EEC_STATE_ERR] = "IBV_WC_INV_EEC_STATE_ERR",
	    [IBV_WC_FATAL_ERR] = "IBV_WC_FATAL_ERR",
	    [IBV_WC_RESP_TIMEOUT_ERR] = "IBV_WC_RESP_TIMEOUT_ERR",
	    [IBV_WC_GENERAL_ERR] = "IBV_WC_GENERAL_ERR",
	};

	if ((unsigned int)status < sizeof(names) / sizeof(names[0]) && names[status])
		return names[status];
	return "IBV_WC_(unknown)";
}
