// SPDX-License-Identifier: MIT
/*
 * Rail failover, the takeover itself (rails_conn.c has the virtual conn and
 * what may have landed): the source connects a takeover connection for a
 * channel, or for the control connection, on a live rail; the destination
 * accepts it on whichever rail it comes and hands it to the conn it names.
 *
 * On the new conn (marked RD_CM_F_RAIL_RESUME with the conn's vid in the
 * rdma_cm private data; the control connection's vid is RL_CTL_VID) the
 * source sends "RMRS" | u32 vid | u64 bytes received | u8 token[16] (the
 * destination's, from the rail hello answers: a connection without it takes
 * nothing over); the destination answers "RMRS" | i32 status | u64 bytes
 * received | 16 zero bytes. A destination conn that died waits for its
 * takeover: the first waiting thread accepts on every rail and hands each
 * takeover connection to the conn it names, so the control connection's
 * own thread accepts it when no channel is waiting.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rmig-config.h"
#include "core/byteorder.h"
#include "core/xport_util.h"
#include "transport/rdma/conn.h"
#include "transport/rdma/rails_priv.h"

#define RS_MAGIC   0x524d5253u /* "RMRS" */
#define RS_WAIT_MS 60000

void rmig_rl_put_rs(uint8_t b[RL_RS_LEN], uint32_t word, uint64_t off, const uint8_t *token)
{
	rmig_put_be32(b, RS_MAGIC);
	rmig_put_be32(b + 4, word);
	rmig_put_be64(b + 8, off);
	if (token)
		memcpy(b + 16, token, RL_TOKEN_LEN);
	else
		memset(b + 16, 0, RL_TOKEN_LEN);
}

/* Whether @b carries this destination's token (in constant time). */
static bool token_ok(const struct rl_xport *r, const uint8_t *b)
{
	uint8_t diff = 0;

	for (unsigned int i = 0; i < RL_TOKEN_LEN; i++)
		diff |= (uint8_t)(b[16 + i] ^ r->token[i]);
	return !diff;
}

/* Source: connect a takeover conn on a live rail and learn what the peer has. */
int rmig_rl_takeover_connect(struct rl_vconn *v, uint64_t *peer_rx, struct rmig_msgbuf *err)
{
	struct rl_xport *r = v->r;
	char why[RMIG_ERRMSG_MAX] = "no rail left (the others died before)";
	uint8_t b[RL_RS_LEN];
	int ret = -ENETDOWN;

	/*
	 * The other rails, those not seen dying first, then those that were:
	 * a rail is marked dead when one conn on it died, which may have been
	 * that QP alone (its peer's error), not the link.
	 */
	for (unsigned int i = 1; i < 2 * r->nrails; i++) {
		unsigned int k = (v->rail + i % r->nrails) % r->nrails;
		bool dead_pass = i >= r->nrails;
		struct rd_xport *x = rd_xport_of(r->rail[k].xp);
		struct rl_numa_saved ns;
		struct rmig_msgbuf mb;
		struct rd_conn *c;
		char label[200], name[32];

		if (k == v->rail || rmig_load_relaxed(&r->rail[k].dead) != dead_pass)
			continue;
		if (rmig_load_relaxed(&v->down))
			return rmig_msg(err, -ECANCELED, "shut down while moving %s",
					rmig_rl_vname(v, name, sizeof(name)));
		snprintf(label, sizeof(label), "%s takeover conn to %s (rail %u)",
			 rmig_rl_vname(v, name, sizeof(name)), r->rail[k].addr, k);
		pthread_mutex_lock(&r->cm_mu);
		x->next_cm_flags = RD_CM_F_RAIL_RESUME;
		x->next_vid = v->vid;
		rmig_rl_numa_enter(r, k, &ns);
		ret = rmig_rd_connect(x, label, &c, &mb);
		rmig_rl_numa_leave(&ns);
		x->next_cm_flags = 0;
		x->next_vid = 0;
		pthread_mutex_unlock(&r->cm_mu);
		if (ret) {
			snprintf(why, sizeof(why), "rail %u (%.100s): %.300s", k, r->rail[k].addr,
				 mb.msg);
			continue;
		}
		rmig_rl_put_rs(b, v->vid, v->rx, r->token);
		ret = c->base.ops->send(&c->base, b, sizeof(b), NULL, 0);
		if (!ret)
			ret = c->base.ops->recv(&c->base, b, sizeof(b), r->timeout_ms);
		if (!ret && (rmig_get_be32(b) != RS_MAGIC || rmig_get_be32(b + 4)))
			ret = -EPROTO;
		if (ret) {
			snprintf(why, sizeof(why), "rail %u (%s): the destination did not take "
				 "%s over (%d)", k, r->rail[k].addr, name, ret);
			rmig_rd_conn_close(c);
			continue;
		}
		*peer_rx = rmig_get_be64(b + 8);
		rmig_rl_set_in(v, &c->base);
		v->new_rail = k;
		return 0;
	}
	return rmig_msg(err, ret, "%s", why);
}

/*
 * Destination: whether the source has closed its rails. Each rail's hello
 * connection stays open, idle, for the whole migration and no thread uses
 * it: an rdma_cm event on one (DISCONNECTED) means the source gave the
 * migration up (its control connection on rail 0 died, say) and no
 * takeover will come. A link that dies sends no such event (nothing
 * crosses it); a source that closes does, on every rail still up.
 * Returns that rail plus one, or 0.
 */
static unsigned int source_gone(struct rl_xport *r)
{
	for (unsigned int k = 0; k < r->nrails; k++) {
		struct pollfd pfd;

		if (!r->rail[k].hello)
			continue;
		pfd = (struct pollfd){.fd = rd_conn_of(r->rail[k].hello)->cm_fd, .events = POLLIN};
		if (pfd.fd >= 0 && poll(&pfd, 1, 0) > 0)
			return k + 1;
	}
	return 0;
}

/*
 * Destination: what to add when the source gave up: whether the control
 * connection (on whichever rail it is now) ended too, a DISCONNECTED
 * waiting on it or the conn failed: the source gave up on its side.
 */
static const char *ctl_gone(struct rl_xport *r)
{
	struct rl_vconn *v = r->ctl;
	bool gone = false;

	if (!v)
		return "";
	pthread_mutex_lock(&v->mu);
	if (v->in) {
		struct rd_conn *c = rd_conn_of(v->in);
		struct pollfd pfd = {.fd = c->cm_fd, .events = POLLIN};
		int failed;

		pthread_mutex_lock(&c->mu);
		failed = c->failed;
		pthread_mutex_unlock(&c->mu);
		gone = failed || rmig_load_relaxed(&c->disconnected) ||
		       (pfd.fd >= 0 && poll(&pfd, 1, 0) > 0);
	}
	pthread_mutex_unlock(&v->mu);
	return gone ? "; so did the control connection" : "";
}

/* Destination: take (or accept) the takeover conn of @v (by its vid). */
int rmig_rl_takeover_wait(struct rl_vconn *v, uint64_t *peer_rx, struct rmig_msgbuf *err)
{
	struct rl_xport *r = v->r;
	uint64_t deadline = rmig_now_ns() + (uint64_t)RS_WAIT_MS * 1000000ull;
	struct rl_resume *got = NULL;
	unsigned int gone;

	pthread_mutex_lock(&r->rs_mu);
	while (!got) {
		struct rl_resume **pp;

		for (pp = &r->rs_list; *pp; pp = &(*pp)->next)
			if ((*pp)->vid == v->vid) {
				got = *pp;
				*pp = got->next;
				break;
			}
		if (got)
			break;
		if (rmig_now_ns() >= deadline || rmig_load_relaxed(&v->down)) {
			char name[32];

			pthread_mutex_unlock(&r->rs_mu);
			return rmig_msg(err, -ETIMEDOUT,
					"no takeover of %s on another rail within %d ms",
					rmig_rl_vname(v, name, sizeof(name)), RS_WAIT_MS);
		}
		if ((gone = source_gone(r))) {
			pthread_mutex_unlock(&r->rs_mu);
			return rmig_msg(err, -ECONNRESET,
					"the source closed its rails (rail %u's hello connection "
					"ended): it gave the migration up%s",
					gone - 1, ctl_gone(r));
		}
		if (!r->rs_accepting) {
			struct rmig_conn *c = NULL;
			struct rl_resume *e;
			unsigned int k;
			uint8_t b[RL_RS_LEN];
			int ret;

			r->rs_accepting = true;
			pthread_mutex_unlock(&r->rs_mu);
			ret = rmig_rl_accept_any(r, 200, &k, &c);
			if (!ret && !rd_conn_of(c)->rail_resume)
				ret = -EPROTO;
			if (!ret)
				ret = c->ops->recv(c, b, sizeof(b), r->timeout_ms);
			/* only the source that said the rails' hellos knows the token */
			if (!ret && (rmig_get_be32(b) != RS_MAGIC || !token_ok(r, b)))
				ret = -EACCES;
			e = ret ? NULL : calloc(1, sizeof(*e));
			if (e) {
				e->vid = rmig_get_be32(b + 4);
				e->rail = k;
				e->peer_rx = rmig_get_be64(b + 8);
				e->conn = c;
			} else if (c) {
				c->ops->close(c);
			}
			/* another conn's takeover: that conn may not know its own died */
			if (e && e->vid != v->vid)
				rmig_rl_taken_over(r, e->vid);
			pthread_mutex_lock(&r->rs_mu);
			if (e) {
				e->next = r->rs_list;
				r->rs_list = e;
			}
			r->rs_accepting = false;
			pthread_cond_broadcast(&r->rs_cv);
		} else {
			struct timespec ts;

			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 200000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&r->rs_cv, &r->rs_mu, &ts);
		}
	}
	pthread_mutex_unlock(&r->rs_mu);
	*peer_rx = got->peer_rx;
	rmig_rl_set_in(v, got->conn);
	v->new_rail = got->rail;
	free(got);
	return 0;
}

int rmig_rl_accept_any(struct rl_xport *r, int timeout_ms, unsigned int *rail,
		       struct rmig_conn **cp)
{
	uint64_t deadline = rd_deadline(timeout_ms);
	struct pollfd pfd[RD_RAILS_MAX + 1];
	struct rl_numa_saved ns;
	unsigned int k;

	for (;;) {
		int ret, ms = -1;

		for (k = 0; k < r->nrails; k++)
			pfd[k] = (struct pollfd){.fd = rd_xport_of(r->rail[k].xp)->lech->fd,
						 .events = POLLIN};
		pfd[k] = (struct pollfd){.fd = rd_xport_of(r->rail[0].xp)->efd, .events = POLLIN};
		if (deadline) {
			uint64_t now = rmig_now_ns();

			if (now >= deadline)
				return rmig_msg(&r->base.err, -ETIMEDOUT,
						"no rdma connection on %s within %d ms", r->list,
						timeout_ms);
			ms = (int)((deadline - now + 999999) / 1000000);
		}
		ret = poll(pfd, r->nrails + 1, ms);
		if (ret < 0 && errno != EINTR)
			return rmig_msg(&r->base.err, -errno, "poll: %s", strerror(errno));
		if (ret > 0 && pfd[r->nrails].revents)
			return rmig_msg(&r->base.err, -ECANCELED,
					"cancelled while waiting for a connection");
		for (k = 0; k < r->nrails; k++) {
			int left = deadline ? (int)((deadline - rmig_now_ns()) / 1000000) : -1;

			if (!(pfd[k].revents & POLLIN))
				continue;
			/* the request is queued: what is left of the budget is for ESTABLISHED */
			rmig_rl_numa_enter(r, k, &ns);
			ret = rmig_rdma_ops.accept(r->rail[k].xp, left < 1000 ? 1000 : left, cp);
			rmig_rl_numa_leave(&ns);
			if (ret)
				return rmig_msg(&r->base.err, ret, "rail %u (%s): %s", k,
						r->rail[k].addr, r->rail[k].xp->err.msg);
			*rail = k;
			return 0;
		}
	}
}

void rmig_rl_resume_free(struct rl_xport *r)
{
	while (r->rs_list) {
		struct rl_resume *e = r->rs_list;

		r->rs_list = e->next;
		e->conn->ops->close(e->conn);
		free(e);
	}
}
