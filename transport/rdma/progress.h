/* SPDX-License-Identifier: MIT */
/*
 * Progress of a conn (progress.c): the send queue, completion polling and
 * dispatch, waiting and waking, and the conn's first failure. The layer
 * every other conn file stands on; it calls nothing above it.
 */
#ifndef RMIG_TRANSPORT_RDMA_PROGRESS_H
#define RMIG_TRANSPORT_RDMA_PROGRESS_H

#include "transport/rdma/types.h"

/* The role the calling thread uses a conn as; set by rd_enter(). */
extern __thread enum rd_role rmig_rd_role;

/* Entry and exit of every conn op: take the conn for @role. */
static inline struct rd_conn *rd_enter(struct rmig_conn *bc, enum rd_role role)
{
	struct rd_conn *c = rd_conn_of(bc);

	pthread_mutex_lock(&c->mu);
	rmig_rd_role = role;
	return c;
}

static inline int rd_leave(struct rd_conn *c, int ret)
{
	if (ret && ret == c->failed) {
		struct rmig_msgbuf *mb =
		    rmig_rd_role == RD_ROLE_RECV ? &c->base.recv_err : &c->base.err;

		snprintf(mb->msg, sizeof(mb->msg), "%s", c->fail_msg);
	}
	pthread_mutex_unlock(&c->mu);
	return ret;
}

/* Failure and wake-ups (each function is described where it is defined). */
int rmig_rd_conn_fail(struct rd_conn *c, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int rmig_rd_check(struct rd_conn *c);
void rmig_rd_kick(struct rd_conn *c, enum rd_role role);

/* Completions and waiting. */
int rmig_rd_poll(struct rd_conn *c);
int rmig_rd_conn_wait(struct rd_conn *c, uint64_t deadline_ns);

/* The send queue. */
int rmig_rd_add_wr(struct rd_conn *c, enum rd_op op, const struct ibv_sge *sge, unsigned int nsge,
		   uint64_t raddr, uint32_t rkey, bool force_signal, uint64_t *seq);
int rmig_rd_add_bind(struct rd_conn *c, struct ibv_mw *mw, uint32_t rkey,
		     const struct ibv_mw_bind_info *bi, uint64_t *seq);
int rmig_rd_post_batch(struct rd_conn *c);
int rmig_rd_wait_done(struct rd_conn *c, uint64_t seq, uint64_t deadline_ns);
int rmig_rd_probe(struct rd_conn *c);

#endif /* RMIG_TRANSPORT_RDMA_PROGRESS_H */
