/* SPDX-License-Identifier: MIT */
/*
 * The fake fabric's objects, shared by its verbs half (fake_fabric.c) and
 * its rdma_cm half (fake_fabric_cm.c). Each wraps the rdma-core struct the
 * transport sees as its first member, so a pointer converts both ways.
 * Everything here is guarded by ff.mu.
 */
#ifndef RMIG_TESTS_FAKE_FABRIC_PRIV_H
#define RMIG_TESTS_FAKE_FABRIC_PRIV_H

#include <pthread.h>

#include "fake_fabric.h"

#define FF_MAX_SGE  16
#define FF_MAX_MSG  (8u << 20) /* as rxe */
#define FF_PRIV_MAX 196	       /* rdma_cm private data, as IB CM's REP */

struct ff_pd {
	struct ibv_pd pd;
	struct ff_mr *mrs;
	struct ff_mw *mws;
	unsigned int nqps;
};

/* A type 2 memory window (ff_mw_set): bound by a BIND_MW on one QP, usable on it alone. */
struct ff_mw {
	struct ibv_mw mw;
	struct ff_pd *pd;
	struct ff_qp *qp; /* bound to; NULL while unbound */
	uint32_t key;	  /* the rkey of its bind */
	uint64_t addr, len;
	int access;
	struct ff_mw *next;
};

struct ff_mr {
	struct ibv_mr mr;
	struct ff_pd *pd;
	int access;
	bool revoked; /* ff_revoke_remote_mrs(): the rkey no longer answers */
	struct ff_mr *next;
};

struct ff_cq;

struct ff_cc {
	struct ibv_comp_channel cc; /* .fd: an eventfd, readable while events are pending */
	unsigned int pending;	    /* events raised and not yet taken by get_cq_event */
	struct ff_cq *cq;	    /* rmig gives each channel one CQ */
	unsigned int ncqs;
};

struct ff_qp;

struct ff_cqe {
	struct ibv_wc wc;
	struct ff_qp *sq_qp; /* a send queue entry: the QP whose slots it frees */
	uint64_t sq_seq;
};

struct ff_cq {
	struct ibv_cq cq;
	struct ff_cc *ch;
	struct ff_cqe *ring;
	unsigned int size; /* ring slots (more than cq.cqe, to report overruns) */
	unsigned int head, tail;
	bool armed;
	uint64_t delivered, acked; /* events taken from the channel, and acked */
	unsigned int nqps;
};

struct ff_rwr {
	uint64_t wr_id;
	unsigned int nsge;
	struct ibv_sge sge[FF_MAX_SGE];
};

struct ff_id;

struct ff_qp {
	struct ibv_qp qp;
	struct ff_pd *pd;
	struct ff_cq *scq, *rcq;
	struct ff_qp *peer;
	struct ff_id *id;
	bool sig_all;
	unsigned int max_send_wr, max_recv_wr, max_send_sge, max_recv_sge;
	uint64_t sq_posted, sq_freed; /* WRs posted; WRs whose slots a polled completion freed */
	struct ff_rwr *rq;	      /* ring of max_recv_wr */
	unsigned int rq_head, rq_tail;
	struct ff_qp_stats *st;
};

enum ff_id_state {
	FF_ID_IDLE,
	FF_ID_BOUND,
	FF_ID_LISTEN,
	FF_ID_ADDR,	   /* address resolved (active) */
	FF_ID_ROUTE,	   /* route resolved (active) */
	FF_ID_CONNECTING,  /* active, REQ sent */
	FF_ID_REQ,	   /* passive, REQ received, not accepted yet */
	FF_ID_CONNECTED,
	FF_ID_DISCONNECTED,
};

struct ff_ech {
	struct rdma_event_channel ch; /* .fd: an eventfd, readable while events are queued */
	struct ff_ev *head, *tail;
	unsigned int nids;
};

struct ff_ev {
	struct rdma_cm_event ev;
	uint8_t priv[FF_PRIV_MAX];
	struct ff_id *owner; /* the id whose unacked count it holds, or NULL */
	struct ff_ev *next;
};

struct ff_id {
	struct rdma_cm_id id;
	struct ff_ech *ech;
	enum ff_id_state state;
	bool active;
	struct ff_id *peer;	/* the other end of a connection (or request) */
	struct ff_id *listener; /* passive: the listen id it came from */
	unsigned int unacked;	/* events handed out and not acked */
	struct ff_id *next;	/* in ff.ids */
};

struct ff_fabric {
	pthread_mutex_t mu;
	struct ibv_device dev;
	struct ibv_context ctx;
	struct ff_id *ids;
	struct ff_ev *out; /* events handed out, not acked (to clear owners) */
	uint16_t next_port;
	uint32_t next_key, next_qpn;
	bool mw_on; /* the device has type 2 windows (ff_mw_set) */
	unsigned int bind_fail_at, binds; /* ff_mw_set: the n-th BIND_MW fails */
	unsigned int nth[2]; /* QPs created per side (passive, active) */
	unsigned int live;
	uint64_t writes;
	struct ff_faults faults;
	struct ff_stats st;
	/* addresses whose link a kill took down (ff_faults.kill_downs_link) */
	uint32_t down[8];
	unsigned int ndown;
};

extern struct ff_fabric ff;

/* Under ff.mu: count a misuse of the verbs API (rmig would hang or fail on real hardware). */
void ff_misuse(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Under ff.mu: move @qp to the error state, flushing its receives. */
void ff_qp_error(struct ff_qp *qp);
/* Under ff.mu: the eventfd @fd reads as ready iff @ready (it is kept in step with a queue). */
void ff_efd_set(int fd, bool ready);

/* Under ff.mu: a window bound to @qp answering @key for [addr, addr + len) with @access. */
bool ff_mw_check(struct ff_qp *qp, uint32_t key, uint64_t addr, uint64_t len, int access);
/* Under ff.mu: execute a BIND_MW posted on @qp. */
enum ibv_wc_status ff_mw_bind(struct ff_qp *qp, const struct ibv_send_wr *wr);
/* Under ff.mu: the MR of @pd holding [addr, addr + len) with @access, by lkey or rkey. */
struct ff_mr *ff_mr_check(struct ff_pd *pd, uint32_t key, bool remote, uint64_t addr, uint64_t len,
			  int access);
/* Under ff.mu: queue a completion (of @sq_qp's WR @seq for a send), raising an event if armed. */
void ff_cq_push(struct ff_cq *q, const struct ibv_wc *wc, struct ff_qp *sq_qp, uint64_t seq);

/* QPs (fake_fabric_qp.c) */
int ff_create_qp(struct rdma_cm_id *id, struct ibv_pd *pd, struct ibv_qp_init_attr *a);
void ff_destroy_qp(struct rdma_cm_id *id);
int ff_modify_qp(struct ibv_qp *qp, struct ibv_qp_attr *attr, int mask);
int ff_post_send(struct ibv_qp *qp, struct ibv_send_wr *wr, struct ibv_send_wr **bad);
int ff_post_recv(struct ibv_qp *qp, struct ibv_recv_wr *wr, struct ibv_recv_wr **bad);

/* the rdma_cm half of the table (fake_fabric_cm.c) */
int ff_create_event_channel(struct rdma_event_channel **ch);
void ff_destroy_event_channel(struct rdma_event_channel *ch);
int ff_create_id(struct rdma_event_channel *ch, struct rdma_cm_id **id, void *ctx,
		 enum rdma_port_space ps);
int ff_destroy_id(struct rdma_cm_id *id);
int ff_migrate_id(struct rdma_cm_id *id, struct rdma_event_channel *ch);
int ff_set_option(struct rdma_cm_id *id, int level, int name, void *val, size_t len);
int ff_bind_addr(struct rdma_cm_id *id, struct sockaddr *addr);
int ff_resolve_addr(struct rdma_cm_id *id, struct sockaddr *src, struct sockaddr *dst,
		    int timeout_ms);
int ff_resolve_route(struct rdma_cm_id *id, int timeout_ms);
int ff_listen(struct rdma_cm_id *id, int backlog);
int ff_connect(struct rdma_cm_id *id, struct rdma_conn_param *param);
int ff_accept(struct rdma_cm_id *id, struct rdma_conn_param *param);
int ff_reject(struct rdma_cm_id *id, const void *data, uint8_t len);
int ff_disconnect(struct rdma_cm_id *id);
int ff_get_cm_event(struct rdma_event_channel *ch, struct rdma_cm_event **ev);
int ff_ack_cm_event(struct rdma_cm_event *ev);
uint16_t ff_get_src_port(struct rdma_cm_id *id);

#endif /* RMIG_TESTS_FAKE_FABRIC_PRIV_H */
