/* SPDX-License-Identifier: MIT */
/*
 * Every libibverbs and librdmacm call the rdma transport makes goes through
 * this table, for two reasons:
 *  - rdma-core mixes error conventions (NULL + errno, -1 + errno, a positive
 *    errno, a negative count); each wrapper converts to 0 / -errno once, so
 *    the rest of transport/rdma sees only the project's convention;
 *  - ibv_post_send(), ibv_poll_cq() and friends are static inline in the
 *    headers, so a linker --wrap cannot intercept them. Unit tests copy the
 *    real table, replace entries and point rmig_rdma_verbs at the copy to
 *    inject failures without hardware.
 *
 * Objects are created through out-parameters; on failure *out is untouched.
 */
#ifndef RMIG_TRANSPORT_RDMA_VERBS_OPS_H
#define RMIG_TRANSPORT_RDMA_VERBS_OPS_H

#include <stdint.h>

#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

struct rmig_verbs_ops {
	/* devices */
	int (*get_device_list)(struct ibv_device ***list, int *num);
	void (*free_device_list)(struct ibv_device **list);
	int (*cm_get_devices)(struct ibv_context ***list, int *num);
	void (*cm_free_devices)(struct ibv_context **list);
	int (*query_device)(struct ibv_context *ctx, struct ibv_device_attr *attr);
	int (*query_port)(struct ibv_context *ctx, uint8_t port, struct ibv_port_attr *attr);
	int (*query_gid)(struct ibv_context *ctx, uint8_t port, int index, union ibv_gid *gid);

	/* protection domain and memory */
	int (*alloc_pd)(struct ibv_context *ctx, struct ibv_pd **pd);
	int (*dealloc_pd)(struct ibv_pd *pd);
	int (*reg_mr)(struct ibv_pd *pd, void *addr, size_t len, int access, struct ibv_mr **mr);
	int (*dereg_mr)(struct ibv_mr *mr);
	/* memory windows (bound with an IBV_WR_BIND_MW through post_send) */
	int (*alloc_mw)(struct ibv_pd *pd, enum ibv_mw_type type, struct ibv_mw **mw);
	int (*dealloc_mw)(struct ibv_mw *mw);

	/* completion queues */
	int (*create_comp_channel)(struct ibv_context *ctx, struct ibv_comp_channel **cc);
	int (*destroy_comp_channel)(struct ibv_comp_channel *cc);
	int (*create_cq)(struct ibv_context *ctx, int cqe, void *cq_ctx,
			 struct ibv_comp_channel *cc, struct ibv_cq **cq);
	int (*destroy_cq)(struct ibv_cq *cq);
	int (*req_notify_cq)(struct ibv_cq *cq, int solicited_only);
	/* -EAGAIN when the (non-blocking) channel has no event */
	int (*get_cq_event)(struct ibv_comp_channel *cc, struct ibv_cq **cq, void **cq_ctx);
	void (*ack_cq_events)(struct ibv_cq *cq, unsigned int nevents);
	/* number of completions (>= 0) or -errno */
	int (*poll_cq)(struct ibv_cq *cq, int num, struct ibv_wc *wc);

	/* queue pairs */
	int (*create_qp)(struct rdma_cm_id *id, struct ibv_pd *pd, struct ibv_qp_init_attr *attr);
	void (*destroy_qp)(struct rdma_cm_id *id);
	int (*modify_qp)(struct ibv_qp *qp, struct ibv_qp_attr *attr, int mask);
	/* on failure *bad names the first WR not posted (all before it were) */
	int (*post_send)(struct ibv_qp *qp, struct ibv_send_wr *wr, struct ibv_send_wr **bad);
	int (*post_recv)(struct ibv_qp *qp, struct ibv_recv_wr *wr, struct ibv_recv_wr **bad);

	/* rdma_cm */
	int (*create_event_channel)(struct rdma_event_channel **ch);
	void (*destroy_event_channel)(struct rdma_event_channel *ch);
	int (*create_id)(struct rdma_event_channel *ch, struct rdma_cm_id **id, void *ctx,
			 enum rdma_port_space ps);
	int (*destroy_id)(struct rdma_cm_id *id);
	int (*migrate_id)(struct rdma_cm_id *id, struct rdma_event_channel *ch);
	int (*set_option)(struct rdma_cm_id *id, int level, int name, void *val, size_t len);
	int (*bind_addr)(struct rdma_cm_id *id, struct sockaddr *addr);
	int (*resolve_addr)(struct rdma_cm_id *id, struct sockaddr *src, struct sockaddr *dst,
			    int timeout_ms);
	int (*resolve_route)(struct rdma_cm_id *id, int timeout_ms);
	int (*listen)(struct rdma_cm_id *id, int backlog);
	int (*connect)(struct rdma_cm_id *id, struct rdma_conn_param *param);
	int (*accept)(struct rdma_cm_id *id, struct rdma_conn_param *param);
	int (*reject)(struct rdma_cm_id *id, const void *data, uint8_t len);
	int (*disconnect)(struct rdma_cm_id *id);
	/* -EAGAIN when the (non-blocking) channel has no event */
	int (*get_cm_event)(struct rdma_event_channel *ch, struct rdma_cm_event **ev);
	int (*ack_cm_event)(struct rdma_cm_event *ev);
	uint16_t (*get_src_port)(struct rdma_cm_id *id); /* host order */
};

/* The real functions. */
extern const struct rmig_verbs_ops rmig_verbs_real;

/*
 * The table new transports pick up (each xport keeps the pointer it was
 * created with). Tests may point it elsewhere while no xport is live.
 */
extern const struct rmig_verbs_ops *rmig_rdma_verbs;

/* "IBV_WC_RETRY_EXC_ERR" for a status, for messages (libibverbs gives prose only). */
const char *rmig_rd_wc_status_name(enum ibv_wc_status status);

#endif /* RMIG_TRANSPORT_RDMA_VERBS_OPS_H */
