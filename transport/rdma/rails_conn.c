// SPDX-License-Identifier: MIT
/*
 * Rail failover: a channel's connection over several rails (rails.c). The
 * core sees one conn per channel; underneath it is an rdma conn on one rail
 * and, when that rail dies, a new one on a surviving rail that takes the
 * channel over where the dead one stopped. The control connection is not
 * moved: losing rail 0 fails the migration.
 *
 * What may have landed. An RDMA WRITE or SEND whose completion the sender
 * saw has landed (RC acknowledges only what the responder placed), and a
 * landed SEND sits in one of the receiver's buffers, which the receiver can
 * still read after the QP failed (rmig_rd_stream_salvage). Anything else on
 * a dead QP may or may not have landed. So each side keeps every send()
 * whose last WR it has not seen complete: the header bytes and the segment
 * descriptors (the segment memory is the caller's RAM, which stays; a page
 * rewritten since is sent as it is now, which a later round would send
 * anyway). On takeover both sides first take every byte that arrived on the
 * dead conn, then tell each other how many stream bytes they have received
 * in all, and each replays what the other lacks:
 *  - a send() none of whose header arrived: its WRITEs and its header again,
 *    on the new conn (the WRITEs may have landed already; writing them twice
 *    writes the same bytes, or newer ones);
 *  - a send() whose header arrived in part: only the rest of the header (RC
 *    orders WRITEs before the SEND behind them, so its WRITEs had landed).
 * The stream bytes (the core's messages, its SYNC fences among them) thus
 * arrive exactly once and in order, and a round's SYNC comes after its pages
 * on whatever conn carries it: a fence from the dead rail never counts for
 * pages that had not provably landed. The destination disconnects the dead
 * conn (its QP to error) before it answers, so no late WRITE from it lands
 * after the replay.
 *
 * Takeover, on the new conn (marked RD_CM_F_RAIL_RESUME with the channel's
 * vid in the rdma_cm private data): the source sends "RMRS" | u32 vid |
 * u64 bytes received | u8 token[16] (the destination's, from the rail hello
 * answers: a connection without it takes no channel over); the destination
 * answers "RMRS" | i32 status | u64 bytes received | 16 zero bytes. A destination channel whose conn died waits for its
 * takeover: the first waiting thread accepts on every rail and hands each
 * takeover connection to the channel it names.
 *
 * A channel conn is used by one thread at a time (the core's channel
 * thread); shutdown() may come from any thread.
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
#include "transport/rdma/progress.h"
#include "transport/rdma/rails_priv.h"
#include "transport/rdma/stream.h"

#define RS_MAGIC 0x524d5253u /* "RMRS" */
#define RS_LEN	 (16u + RL_TOKEN_LEN)
#define RS_WAIT_MS 60000

/* One send() that may not have arrived yet. */
struct rl_rec {
	struct rl_rec *next;
	uint64_t start, end;   /* its stream bytes, counted from the channel's first */
	struct rd_conn *on;    /* posted on this conn... */
	uint64_t last_seq;     /* ...its last WR */
	unsigned int nsegs;
	struct rmig_seg *segs; /* copies of the descriptors */
	uint8_t hdr[];
};

struct rl_vconn {
	struct rmig_conn base;
	struct rl_xport *r;
	uint32_t vid;
	unsigned int rail;     /* written under r->vc_mu (the figures read it) */
	unsigned int new_rail; /* while moving */
	pthread_mutex_t mu; /* guards in against shutdown() from another thread */
	struct rmig_conn *in;
	atomic_bool down;
	uint64_t tx;		  /* stream bytes sent */
	uint64_t rx;		  /* stream bytes received: handed out or in pend */
	struct rl_rec *log, **tail; /* sends not known to have arrived, oldest first */
	uint8_t *pend;		  /* bytes taken off a dead conn, not read yet */
	size_t pend_len, pend_off;
	uint64_t seen_wire, seen_writes; /* of in's counters, already in base */
	unsigned int moves;
	struct rl_vconn *next; /* in r->vconns */
	bool placed;	       /* the channel thread is bound to its rail's node */
	pthread_t creator;     /* the thread that set the conn up (the core's main one) */
	pthread_t thread;      /* the channel thread, once placed */
	_Atomic int cpu_node;  /* node of the CPU the channel thread last ran on */
	_Atomic int buf_node;  /* node of the stream buffers' memory */
};

static struct rl_vconn *vc_of(struct rmig_conn *c)
{
	return rmig_container_of(c, struct rl_vconn, base);
}

/*
 * Bind the channel's thread to its rail's node at its first operation (and
 * again after a move). The thread that set the conn up (the core's main
 * thread, which also sends a channel's first message and may flush it at
 * the end) is never bound: it serves every rail.
 */
static void place(struct rl_vconn *v)
{
	pthread_t self = pthread_self();

	if (pthread_equal(self, v->creator))
		return;
	if (!v->placed) {
		rmig_rl_numa_thread(v->r, v->rail);
		v->placed = true;
		v->thread = self;
	}
}

/* Add what the inner conn counted since last time to the channel's counters. */
static void count(struct rl_vconn *v)
{
	if (v->placed && pthread_equal(pthread_self(), v->thread))
		rmig_store_relaxed(&v->cpu_node, rmig_rl_cpu_node(v->r));
	uint64_t w = rmig_load_relaxed(&v->in->wire_bytes);
	uint64_t r = rmig_load_relaxed(&v->in->rdma_writes);

	rmig_count(&v->base.wire_bytes, w - v->seen_wire);
	rmig_count(&v->base.rdma_writes, r - v->seen_writes);
	v->seen_wire = w;
	v->seen_writes = r;
}

/* Whether @c died under us (not shut down by the caller). */
static bool dead(struct rl_vconn *v)
{
	struct rd_conn *c = rd_conn_of(v->in);
	int f;

	if (rmig_load_relaxed(&v->down))
		return false;
	pthread_mutex_lock(&c->mu);
	f = c->failed;
	pthread_mutex_unlock(&c->mu);
	return f && f != -ECANCELED && f != -EPROTO;
}

/* Drop the records whose last WR completed (so they arrived). */
static void trim(struct rl_vconn *v)
{
	while (v->log) {
		struct rl_rec *e = v->log;
		struct rd_conn *c = e->on;
		bool done;

		if (!c)
			break;
		pthread_mutex_lock(&c->mu);
		done = c->sq_done >= e->last_seq;
		pthread_mutex_unlock(&c->mu);
		if (!done)
			break;
		v->log = e->next;
		if (!v->log)
			v->tail = &v->log;
		free(e->segs);
		free(e);
	}
}

static void mark_posted(struct rl_vconn *v, struct rl_rec *e)
{
	struct rd_conn *c = rd_conn_of(v->in);

	pthread_mutex_lock(&c->mu);
	e->on = c;
	e->last_seq = c->sq_next - 1;
	pthread_mutex_unlock(&c->mu);
}

/* Every byte that arrived on the dead conn goes to pend. */
static int salvage(struct rl_vconn *v)
{
	struct rd_conn *c = rd_conn_of(v->in);
	size_t room = (size_t)c->nrecv * c->buf_size, n;
	uint8_t *p = realloc(v->pend, v->pend_len + room);

	if (!p)
		return -ENOMEM;
	v->pend = p;
	pthread_mutex_lock(&c->mu);
	n = rmig_rd_stream_salvage(c, p + v->pend_len, room);
	pthread_mutex_unlock(&c->mu);
	v->pend_len += n;
	v->rx += n;
	return 0;
}

/* Replay what the peer lacks (it received @peer_rx bytes) on the new conn. */
static int replay(struct rl_vconn *v, uint64_t peer_rx)
{
	for (struct rl_rec *e = v->log; e; e = e->next) {
		int ret;

		e->on = NULL;
		if (e->end <= peer_rx)
			continue;
		if (e->start >= peer_rx)
			ret = v->in->ops->send(v->in, e->hdr, e->end - e->start, e->segs, e->nsegs);
		else
			ret = v->in->ops->send(v->in, e->hdr + (peer_rx - e->start),
					       e->end - peer_rx, NULL, 0);
		if (ret)
			return ret;
		mark_posted(v, e);
	}
	/* records the peer had in full are done */
	while (v->log && v->log->end <= peer_rx) {
		struct rl_rec *e = v->log;

		v->log = e->next;
		free(e->segs);
		free(e);
	}
	if (!v->log)
		v->tail = &v->log;
	return 0;
}

static void put_rs(uint8_t b[RS_LEN], uint32_t word, uint64_t off, const uint8_t *token)
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


/*
 * Point the channel at @in. Under v->mu: vc_shutdown(), on another thread
 * (a failing destination shutting its channels down), reads v->in under it.
 */
static void set_in(struct rl_vconn *v, struct rmig_conn *in)
{
	pthread_mutex_lock(&v->mu);
	v->in = in;
	pthread_mutex_unlock(&v->mu);
}
/* Source: connect a takeover conn on a live rail and learn what the peer has. */
static int takeover_connect(struct rl_vconn *v, uint64_t *peer_rx, struct rmig_msgbuf *err)
{
	struct rl_xport *r = v->r;
	char why[RMIG_ERRMSG_MAX] = "no other rail";
	uint8_t b[RS_LEN];
	int ret = -ENETDOWN;

	for (unsigned int i = 1; i <= r->nrails; i++) {
		unsigned int k = (v->rail + i) % r->nrails;
		struct rd_xport *x = rd_xport_of(r->rail[k].xp);
		struct rl_numa_saved ns;
		struct rmig_msgbuf mb;
		struct rd_conn *c;
		char label[200];

		if (k == v->rail || rmig_load_relaxed(&r->rail[k].dead))
			continue;
		snprintf(label, sizeof(label), "channel %u takeover conn to %s (rail %u)",
			 v->vid - 1, r->rail[k].addr, k);
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
		put_rs(b, v->vid, v->rx, r->token);
		ret = c->base.ops->send(&c->base, b, sizeof(b), NULL, 0);
		if (!ret)
			ret = c->base.ops->recv(&c->base, b, sizeof(b), r->timeout_ms);
		if (!ret && (rmig_get_be32(b) != RS_MAGIC || rmig_get_be32(b + 4)))
			ret = -EPROTO;
		if (ret) {
			snprintf(why, sizeof(why), "rail %u (%s): the destination did not take "
				 "channel %u over (%d)", k, r->rail[k].addr, v->vid - 1, ret);
			rmig_rd_conn_close(c);
			continue;
		}
		*peer_rx = rmig_get_be64(b + 8);
		set_in(v, &c->base);
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
 * Destination: what to add when the source gave up: whether rail 0's
 * control connection ended too (a DISCONNECTED waits on it, or it failed),
 * the usual reason (a source whose rail 0 died cannot go on).
 */
static const char *ctl_gone(struct rl_xport *r)
{
	struct rd_conn *c = r->ctl;
	struct pollfd pfd;
	int failed;

	if (!c)
		return "";
	pthread_mutex_lock(&c->mu);
	failed = c->failed;
	pthread_mutex_unlock(&c->mu);
	pfd = (struct pollfd){.fd = c->cm_fd, .events = POLLIN};
	if (failed || rmig_load_relaxed(&c->disconnected) || (pfd.fd >= 0 && poll(&pfd, 1, 0) > 0))
		return "; so did rail 0's control connection, which cannot fail over: the "
		       "migration failed (docs/scale.md)";
	return "";
}

/* Destination: take (or accept) the takeover conn of channel @v->vid. */
static int takeover_wait(struct rl_vconn *v, uint64_t *peer_rx, struct rmig_msgbuf *err)
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
			pthread_mutex_unlock(&r->rs_mu);
			return rmig_msg(err, -ETIMEDOUT,
					"no takeover of channel on another rail within %d ms",
					RS_WAIT_MS);
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
			uint8_t b[RS_LEN];
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
	set_in(v, got->conn);
	v->new_rail = got->rail;
	free(got);
	return 0;
}

/*
 * The channel's conn died: move it to another rail. On return (0) v->in is
 * the new conn and everything the peer lacked has been sent again.
 */
static int move(struct rl_vconn *v, int why, struct rmig_msgbuf *mb)
{
	struct rl_xport *r = v->r;
	struct rmig_conn *old = v->in;
	unsigned int from = v->rail;
	char was[RMIG_ERRMSG_MAX];
	uint64_t peer_rx = 0;
	uint8_t b[RS_LEN];
	int ret;

	snprintf(was, sizeof(was), "%s", mb->msg);
	count(v);
	ret = salvage(v);
	if (ret)
		return rmig_msg(mb, ret, "%s; out of memory moving the channel", was);
	rmig_store_relaxed(&r->rail[from].dead, true);
	/* its QP to error: nothing from it lands after the replay */
	old->ops->shutdown(old);
	ret = r->is_dst ? takeover_wait(v, &peer_rx, mb) : takeover_connect(v, &peer_rx, mb);
	if (!ret) {
		pthread_mutex_lock(&r->vc_mu);
		v->rail = v->new_rail;
		pthread_mutex_unlock(&r->vc_mu);
		v->placed = false;
		place(v);
		rmig_store_relaxed(&v->buf_node, rmig_rl_mem_node(rd_conn_of(v->in)->bufs));
		rmig_conn_set_node(&v->base, rmig_rl_numa_node(r, v->rail));
	}
	if (ret) {
		char how[RMIG_ERRMSG_MAX];

		/* mb holds the takeover's failure: copied out, not formatted into itself */
		snprintf(how, sizeof(how), "%s", mb->msg);
		set_in(v, old);
		return rmig_msg(mb, why, "%.500s; and no other rail took the channel over: %s", was,
				how);
	}
	if (r->is_dst) {
		put_rs(b, 0, v->rx, NULL);
		ret = v->in->ops->send(v->in, b, sizeof(b), NULL, 0);
	}
	pthread_mutex_lock(&v->mu);
	old->ops->close(old);
	pthread_mutex_unlock(&v->mu);
	atomic_fetch_sub_explicit(&r->rail[from].channels, 1u, memory_order_relaxed);
	rmig_add_relaxed(&r->rail[v->rail].channels, 1u);
	v->seen_wire = v->seen_writes = 0;
	v->moves++;
	if (!ret)
		ret = replay(v, peer_rx);
	if (ret)
		return rmig_msg(mb, ret, "channel moved from rail %u to rail %u, then: %s", from,
				v->rail, v->in->err.msg);
	return 0;
}

/* ---------------------------------------------------------------- ops */

static int vc_send(struct rmig_conn *bc, const void *hdr, size_t len, const struct rmig_seg *segs,
		   unsigned int nsegs)
{
	struct rl_vconn *v = vc_of(bc);
	struct rl_rec *e = malloc(sizeof(*e) + len);
	int ret;

	if (!e || (nsegs && !(e->segs = malloc(nsegs * sizeof(*segs))))) {
		free(e);
		return rmig_msg(&bc->err, -ENOMEM, "out of memory");
	}
	if (!nsegs)
		e->segs = NULL;
	place(v);
	memcpy(e->hdr, hdr, len);
	if (nsegs)
		memcpy(e->segs, segs, nsegs * sizeof(*segs));
	e->nsegs = nsegs;
	e->start = v->tx;
	e->end = v->tx + len;
	e->on = NULL;
	e->next = NULL;
	*v->tail = e;
	v->tail = &e->next;
	v->tx += len;

	ret = v->in->ops->send(v->in, hdr, len, segs, nsegs);
	if (!ret)
		mark_posted(v, e);
	else if (dead(v))
		ret = move(v, ret, (snprintf(bc->err.msg, sizeof(bc->err.msg), "%s",
					     v->in->err.msg), &bc->err));
	else
		snprintf(bc->err.msg, sizeof(bc->err.msg), "%s", v->in->err.msg);
	count(v);
	trim(v);
	return ret;
}

static int vc_flush(struct rmig_conn *bc)
{
	struct rl_vconn *v = vc_of(bc);
	int ret;

	place(v);
	for (unsigned int tries = 0; tries <= RD_RAILS_MAX; tries++) {
		ret = v->in->ops->flush(v->in);
		count(v);
		if (!ret) {
			trim(v);
			return 0;
		}
		snprintf(bc->err.msg, sizeof(bc->err.msg), "%s", v->in->err.msg);
		if (!dead(v))
			return ret;
		ret = move(v, ret, &bc->err);
		if (ret)
			return ret;
	}
	return ret;
}

static int vc_recv(struct rmig_conn *bc, void *buf, size_t len, int timeout_ms)
{
	struct rl_vconn *v = vc_of(bc);
	uint8_t *out = buf;
	size_t got = 0;

	place(v);
	while (got < len) {
		struct rd_conn *c;
		uint64_t before;
		int ret;

		if (v->pend_off < v->pend_len) {
			size_t n = v->pend_len - v->pend_off;

			n = n < len - got ? n : len - got;
			memcpy(out + got, v->pend + v->pend_off, n);
			v->pend_off += n;
			got += n;
			if (v->pend_off == v->pend_len)
				v->pend_off = v->pend_len = 0;
			continue;
		}
		c = rd_conn_of(v->in);
		before = c->rx_bytes;
		ret = v->in->ops->recv(v->in, out + got, len - got, timeout_ms);
		/* only this thread reads c: rx_bytes is ours */
		v->rx += c->rx_bytes - before;
		got += c->rx_bytes - before;
		count(v);
		if (!ret)
			return 0;
		snprintf(bc->recv_err.msg, sizeof(bc->recv_err.msg), "%s", v->in->recv_err.msg);
		if (!dead(v))
			return ret;
		ret = move(v, ret, &bc->recv_err);
		if (ret)
			return ret;
	}
	return 0;
}

static void vc_shutdown(struct rmig_conn *bc)
{
	struct rl_vconn *v = vc_of(bc);

	rmig_store_relaxed(&v->down, true);
	pthread_mutex_lock(&v->mu);
	v->in->ops->shutdown(v->in);
	pthread_mutex_unlock(&v->mu);
}

static void vc_close(struct rmig_conn *bc)
{
	struct rl_vconn *v = vc_of(bc);
	struct rl_vconn **pp;

	pthread_mutex_lock(&v->r->vc_mu);
	for (pp = &v->r->vconns; *pp; pp = &(*pp)->next)
		if (*pp == v) {
			*pp = v->next;
			break;
		}
	pthread_mutex_unlock(&v->r->vc_mu);
	v->in->ops->close(v->in);
	while (v->log) {
		struct rl_rec *e = v->log;

		v->log = e->next;
		free(e->segs);
		free(e);
	}
	free(v->pend);
	pthread_mutex_destroy(&v->mu);
	free(v);
}

static const struct rmig_conn_ops vc_ops = {
	.send = vc_send,
	.flush = vc_flush,
	.recv = vc_recv,
	.recv_pages = rmig_conn_no_recv_pages,
	.pull = rmig_conn_no_pull,
	.pull_wait = rmig_conn_no_pull_wait,
	.chan_open = rmig_conn_nop_chan_open,
	.shutdown = vc_shutdown,
	.close = vc_close,
};

int rmig_rl_vconn_new(struct rl_xport *r, unsigned int rail, uint32_t vid, struct rmig_conn *in,
		      struct rmig_conn **out)
{
	struct rl_vconn *v = calloc(1, sizeof(*v));

	if (!v)
		return -ENOMEM;
	v->base.ops = &vc_ops;
	v->r = r;
	v->vid = vid;
	v->rail = rail;
	v->in = in;
	v->tail = &v->log;
	pthread_mutex_init(&v->mu, NULL);
	atomic_init(&v->down, false);
	atomic_init(&v->cpu_node, -1);
	atomic_init(&v->buf_node, rmig_rl_mem_node(rd_conn_of(in)->bufs));
	rmig_conn_set_node(&v->base, rmig_rl_numa_node(r, rail));
	v->creator = pthread_self();
	count(v);
	pthread_mutex_lock(&r->vc_mu);
	v->next = r->vconns;
	r->vconns = v;
	pthread_mutex_unlock(&r->vc_mu);
	*out = &v->base;
	return 0;
}

void rmig_rl_vconn_nodes(struct rl_xport *r, unsigned int k, unsigned int *threads,
			 unsigned int *buffers)
{
	int node = r->rail[k].node;

	*threads = *buffers = 0;
	pthread_mutex_lock(&r->vc_mu);
	for (struct rl_vconn *v = r->vconns; v && node >= 0; v = v->next) {
		if (v->rail != k)
			continue;
		*threads += rmig_load_relaxed(&v->cpu_node) == node;
		*buffers += rmig_load_relaxed(&v->buf_node) == node;
	}
	pthread_mutex_unlock(&r->vc_mu);
}

void rmig_rl_vconn_pages(struct rl_xport *r, unsigned int k, uint64_t *local, uint64_t *remote)
{
	*local = *remote = 0;
	pthread_mutex_lock(&r->vc_mu);
	for (struct rl_vconn *v = r->vconns; v; v = v->next) {
		if (v->rail != k)
			continue;
		*local += rmig_load_relaxed(&v->base.numa_local);
		*remote += rmig_load_relaxed(&v->base.numa_remote);
	}
	pthread_mutex_unlock(&r->vc_mu);
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
