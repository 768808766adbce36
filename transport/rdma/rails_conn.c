// SPDX-License-Identifier: MIT
/*
 * Rail failover: a channel's connection, or the control connection, over
 * several rails (rails.c). The core sees one conn per channel and one
 * control connection; underneath each is an rdma conn on one rail and,
 * when that rail dies, a new one on a surviving rail that takes over where
 * the dead one stopped (rails_takeover.c). Only when no rail is left does
 * the migration fail.
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
 * after the replay. The control stream is the same: its messages (DONE,
 * the verdict...) arrive once, in order, and the core checks their
 * sequence numbers besides.
 *
 * Postcopy pulls (RDMA READs on the control connection) are logged until
 * waited for, and read again on the new rail after a move.
 *
 * Threads. A channel conn is used by one thread at a time (the core's
 * channel thread); the control connection by two in postcopy (one reading,
 * others sending one at a time and pulling). Every operation counts itself
 * in under v->mu (active) with the conn it uses and the move generation;
 * the first thread to see that conn dead claims the move (moving), shuts
 * the dead conn down so that the other thread's operation returns, waits
 * until no operation is inside, and moves; the other thread sees the
 * generation changed and retries on the new conn (a send it had logged was
 * replayed by the move). shutdown() may come from any thread.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rmig-config.h"
#include "core/xport_util.h"
#include "transport/rdma/conn.h"
#include "transport/rdma/progress.h"
#include "transport/rdma/rails_priv.h"
#include "transport/rdma/stream.h"

static bool is_ctl(const struct rl_vconn *v)
{
	return v->vid == RL_CTL_VID;
}

const char *rmig_rl_vname(const struct rl_vconn *v, char *buf, size_t size)
{
	if (is_ctl(v))
		snprintf(buf, size, "the control connection");
	else
		snprintf(buf, size, "channel %u", v->vid - 1);
	return buf;
}

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

	/* the control connection's threads serve every rail */
	if (is_ctl(v) || pthread_equal(self, v->creator))
		return;
	if (!v->placed) {
		rmig_rl_numa_thread(v->r, v->rail);
		v->placed = true;
		v->thread = self;
	}
}

/* Add what @in counted since last time to the conn's counters. */
static void count(struct rl_vconn *v, struct rmig_conn *in)
{
	uint64_t w, r;

	if (v->placed && pthread_equal(pthread_self(), v->thread))
		rmig_store_relaxed(&v->cpu_node, rmig_rl_cpu_node(v->r));
	pthread_mutex_lock(&v->cnt_mu);
	w = rmig_load_relaxed(&in->wire_bytes);
	r = rmig_load_relaxed(&in->rdma_writes);
	rmig_count(&v->base.wire_bytes, w - v->seen_wire);
	rmig_count(&v->base.rdma_writes, r - v->seen_writes);
	v->seen_wire = w;
	v->seen_writes = r;
	pthread_mutex_unlock(&v->cnt_mu);
}

/* Whether @in died under us (not shut down by the caller). */
static bool dead(struct rl_vconn *v, struct rmig_conn *in)
{
	struct rd_conn *c = rd_conn_of(in);
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

static void mark_posted(struct rmig_conn *in, struct rl_rec *e)
{
	struct rd_conn *c = rd_conn_of(in);

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
		mark_posted(v->in, e);
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

void rmig_rl_set_in(struct rl_vconn *v, struct rmig_conn *in)
{
	pthread_mutex_lock(&v->mu);
	v->in = in;
	pthread_mutex_unlock(&v->mu);
}

/*
 * Count an operation in: wait out a move, and take the conn to use and the
 * generation it belongs to. Fails when an earlier move did (@err says why).
 */
static int enter(struct rl_vconn *v, struct rmig_conn **in, unsigned int *gen,
		 struct rmig_msgbuf *err)
{
	pthread_mutex_lock(&v->mu);
	while (v->moving)
		pthread_cond_wait(&v->cv, &v->mu);
	if (v->broken) {
		int ret = v->broken;

		snprintf(err->msg, sizeof(err->msg), "%s", v->broken_msg);
		pthread_mutex_unlock(&v->mu);
		return ret;
	}
	v->active++;
	*in = v->in;
	*gen = v->gen;
	pthread_mutex_unlock(&v->mu);
	return 0;
}

static void leave(struct rl_vconn *v)
{
	pthread_mutex_lock(&v->mu);
	v->active--;
	pthread_cond_broadcast(&v->cv);
	pthread_mutex_unlock(&v->mu);
}

/*
 * An operation on @in (entered at @gen) failed. Returns 1 when the conn
 * moved since (the caller retries on the new one), 0 when @in died and this
 * thread is to move it (v->moving set, every other operation out of @in,
 * which is shut down), -1 when it did not die (the error stands).
 */
static int claim(struct rl_vconn *v, struct rmig_conn *in, unsigned int gen)
{
	pthread_mutex_lock(&v->mu);
	while (v->moving && v->gen == gen)
		pthread_cond_wait(&v->cv, &v->mu);
	if (v->gen != gen) {
		pthread_mutex_unlock(&v->mu);
		return 1;
	}
	if (!dead(v, in) && !rmig_load_relaxed(&v->taken_over)) {
		pthread_mutex_unlock(&v->mu);
		return -1;
	}
	v->moving = true;
	/* a thread blocked in @in (the other side of the control connection) returns */
	in->ops->shutdown(in);
	while (v->active)
		pthread_cond_wait(&v->cv, &v->mu);
	pthread_mutex_unlock(&v->mu);
	return 0;
}

void rmig_rl_taken_over(struct rl_xport *r, uint32_t vid)
{
	/*
	 * A conn that saw nothing wrong yet (an idle one, or one whose QP's
	 * work hangs on a port that went down) would never look for the
	 * takeover: its peer moved it already. Lock order: vc_mu, v->mu.
	 */
	pthread_mutex_lock(&r->vc_mu);
	for (struct rl_vconn *v = r->vconns; v; v = v->next) {
		if (v->vid != vid)
			continue;
		rmig_store_relaxed(&v->taken_over, true);
		pthread_mutex_lock(&v->mu);
		if (!v->moving)
			v->in->ops->shutdown(v->in);
		pthread_mutex_unlock(&v->mu);
	}
	pthread_mutex_unlock(&r->vc_mu);
}

/* The move ended, with @ret and @msg when it failed (every later operation fails so). */
static void release(struct rl_vconn *v, int ret, const char *msg)
{
	pthread_mutex_lock(&v->mu);
	v->gen++;
	v->moving = false;
	rmig_store_relaxed(&v->taken_over, false);
	if (ret) {
		v->broken = ret;
		snprintf(v->broken_msg, sizeof(v->broken_msg), "%s", msg);
	}
	pthread_cond_broadcast(&v->cv);
	pthread_mutex_unlock(&v->mu);
}

/* The pull area of the rail the conn is on (rail 0's is the core's). */
static uint8_t *pull_area(const struct rl_vconn *v)
{
	return v->r->rail[v->rail].pull_area;
}

/* Start every logged pull again on the new conn (after a move). */
static int pulls_again(struct rl_vconn *v)
{
	for (struct rl_pull *p = v->pulls; p; p = p->next) {
		int ret = v->in->ops->pull(v->in, pull_area(v) + p->at, p->block, p->off, p->len,
					   &p->inner);

		if (ret)
			return rmig_msg(&v->base.err, ret, "starting a postcopy pull again: %s",
					v->in->err.msg);
	}
	return 0;
}

/*
 * The conn died (this thread claimed the move): move it to another rail. On
 * return (0) v->in is the new conn and everything the peer lacked has been
 * sent again.
 */
static int move(struct rl_vconn *v, int why, struct rmig_msgbuf *mb)
{
	struct rl_xport *r = v->r;
	struct rmig_conn *old = v->in;
	unsigned int from = v->rail;
	char was[RMIG_ERRMSG_MAX], name[32];
	uint64_t peer_rx = 0;
	uint8_t b[RL_RS_LEN];
	int ret;

	snprintf(was, sizeof(was), "%s", mb->msg);
	count(v, old);
	ret = salvage(v);
	if (ret)
		return rmig_msg(mb, ret, "%s; out of memory moving %s", was,
				rmig_rl_vname(v, name, sizeof(name)));
	rmig_store_relaxed(&r->rail[from].dead, true);
	/* its QP to error: nothing from it lands after the replay (claim() did) */
	old->ops->shutdown(old);
	ret = r->is_dst ? rmig_rl_takeover_wait(v, &peer_rx, mb)
			: rmig_rl_takeover_connect(v, &peer_rx, mb);
	if (ret) {
		char how[RMIG_ERRMSG_MAX];

		/* mb holds the takeover's failure: copied out, not formatted into itself */
		snprintf(how, sizeof(how), "%s", mb->msg);
		rmig_rl_set_in(v, old);
		return rmig_msg(mb, why, "%.500s; and no other rail took %s over: %s", was,
				rmig_rl_vname(v, name, sizeof(name)), how);
	}
	pthread_mutex_lock(&r->vc_mu);
	v->rail = v->new_rail;
	pthread_mutex_unlock(&r->vc_mu);
	v->placed = false;
	place(v);
	rmig_store_relaxed(&v->buf_node, rmig_rl_mem_node(rd_conn_of(v->in)->bufs));
	if (!is_ctl(v))
		rmig_conn_set_node(&v->base, rmig_rl_numa_node(r, v->rail));
	if (r->is_dst) {
		rmig_rl_put_rs(b, 0, v->rx, NULL);
		ret = v->in->ops->send(v->in, b, sizeof(b), NULL, 0);
	}
	pthread_mutex_lock(&v->mu);
	old->ops->close(old);
	pthread_mutex_unlock(&v->mu);
	if (!is_ctl(v)) {
		atomic_fetch_sub_explicit(&r->rail[from].channels, 1u, memory_order_relaxed);
		rmig_add_relaxed(&r->rail[v->rail].channels, 1u);
	}
	pthread_mutex_lock(&v->cnt_mu);
	v->seen_wire = v->seen_writes = 0;
	pthread_mutex_unlock(&v->cnt_mu);
	v->moves++;
	if (!ret)
		ret = replay(v, peer_rx);
	if (!ret && v->pulls)
		ret = pulls_again(v);
	if (ret)
		return rmig_msg(mb, ret, "%s moved from rail %u to rail %u, then: %s",
				rmig_rl_vname(v, name, sizeof(name)), from, v->rail,
				v->in->err.msg);
	return 0;
}

/*
 * After @in failed an operation with @ret (its message in @mb): move the
 * conn if it died. 0: retry the operation on the conn as it is now (moved
 * by this thread or another); else the error to return, in @mb.
 */
static int recover(struct rl_vconn *v, struct rmig_conn *in, unsigned int gen, int ret,
		   struct rmig_msgbuf *mb)
{
	int c = claim(v, in, gen);

	if (c > 0)
		return 0;
	if (c < 0)
		return ret;
	ret = move(v, ret, mb);
	release(v, ret, mb->msg);
	return ret;
}

/* ---------------------------------------------------------------- ops */

static int vc_send(struct rmig_conn *bc, const void *hdr, size_t len, const struct rmig_seg *segs,
		   unsigned int nsegs)
{
	struct rl_vconn *v = vc_of(bc);
	struct rl_rec *e = malloc(sizeof(*e) + len);
	struct rmig_conn *in;
	unsigned int gen;
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
	e->on = NULL;
	e->next = NULL;
	ret = enter(v, &in, &gen, &bc->err);
	if (ret) {
		free(e->segs);
		free(e);
		return ret;
	}
	/* logged while counted in: a move from now on replays it */
	e->start = v->tx;
	e->end = v->tx + len;
	*v->tail = e;
	v->tail = &e->next;
	v->tx += len;
	ret = in->ops->send(in, hdr, len, segs, nsegs);
	if (!ret)
		mark_posted(in, e);
	else
		snprintf(bc->err.msg, sizeof(bc->err.msg), "%s", in->err.msg);
	count(v, in);
	if (!ret)
		trim(v);
	leave(v);
	/* a move, by this thread or another, replayed the send: it is done */
	if (ret)
		ret = recover(v, in, gen, ret, &bc->err);
	return ret;
}

static int vc_flush(struct rmig_conn *bc)
{
	struct rl_vconn *v = vc_of(bc);
	int ret = 0;

	place(v);
	for (unsigned int tries = 0; tries <= RD_RAILS_MAX + 1; tries++) {
		struct rmig_conn *in;
		unsigned int gen;

		ret = enter(v, &in, &gen, &bc->err);
		if (ret)
			return ret;
		ret = in->ops->flush(in);
		count(v, in);
		if (!ret)
			trim(v);
		else
			snprintf(bc->err.msg, sizeof(bc->err.msg), "%s", in->err.msg);
		leave(v);
		if (!ret)
			return 0;
		ret = recover(v, in, gen, ret, &bc->err);
		if (ret)
			return ret;
	}
	return ret ? ret : rmig_msg(&bc->err, -ENETDOWN, "moved too often while flushing");
}

static int vc_recv(struct rmig_conn *bc, void *buf, size_t len, int timeout_ms)
{
	struct rl_vconn *v = vc_of(bc);
	uint8_t *out = buf;
	size_t got = 0;

	place(v);
	while (got < len) {
		struct rmig_conn *in;
		struct rd_conn *c;
		unsigned int gen;
		uint64_t before;
		int ret;

		ret = enter(v, &in, &gen, &bc->recv_err);
		if (ret)
			return ret;
		if (v->pend_off < v->pend_len) {
			size_t n = v->pend_len - v->pend_off;

			n = n < len - got ? n : len - got;
			memcpy(out + got, v->pend + v->pend_off, n);
			v->pend_off += n;
			got += n;
			if (v->pend_off == v->pend_len)
				v->pend_off = v->pend_len = 0;
			leave(v);
			continue;
		}
		c = rd_conn_of(in);
		before = c->rx_bytes;
		ret = in->ops->recv(in, out + got, len - got, timeout_ms);
		/* only this thread reads c: rx_bytes is ours */
		v->rx += c->rx_bytes - before;
		got += c->rx_bytes - before;
		count(v, in);
		if (ret)
			snprintf(bc->recv_err.msg, sizeof(bc->recv_err.msg), "%s",
				 in->recv_err.msg);
		leave(v);
		if (!ret)
			return 0;
		ret = recover(v, in, gen, ret, &bc->recv_err);
		if (ret)
			return ret;
	}
	return 0;
}

/*
 * Postcopy pulls (the control connection only): RDMA READs from the
 * source's RAM as registered on the conn's current rail, into that rail's
 * pull area at the offset the core gave in rail 0's. Each is logged until
 * waited for: a move starts the logged ones again on the new conn (READs
 * are idempotent; the source's RAM is final by then).
 */
static int vc_pull(struct rmig_conn *bc, void *local, unsigned int block, uint64_t off,
		   uint64_t len, uint64_t *ticket)
{
	struct rl_vconn *v = vc_of(bc);
	uint8_t *area0 = v->r->rail[0].pull_area;
	struct rl_pull *p;
	struct rmig_conn *in;
	unsigned int gen;
	int ret;

	if (!area0 || (uint8_t *)local < area0 || (size_t)((uint8_t *)local - area0) > v->r->pull_size)
		return rmig_msg(&bc->err, -EINVAL, "rdma rails: pull target outside the pull area");
	p = calloc(1, sizeof(*p));
	if (!p)
		return rmig_msg(&bc->err, -ENOMEM, "out of memory");
	p->at = (size_t)((uint8_t *)local - area0);
	p->block = block;
	p->off = off;
	p->len = len;
	ret = enter(v, &in, &gen, &bc->err);
	if (ret) {
		free(p);
		return ret;
	}
	/* logged while counted in: a move from now on starts it again */
	p->ticket = ++v->next_ticket;
	*v->pulls_tail = p;
	v->pulls_tail = &p->next;
	ret = in->ops->pull(in, pull_area(v) + p->at, block, off, len, &p->inner);
	if (ret)
		snprintf(bc->err.msg, sizeof(bc->err.msg), "%s", in->err.msg);
	leave(v);
	if (ret)
		ret = recover(v, in, gen, ret, &bc->err);
	if (!ret)
		*ticket = p->ticket;
	return ret;
}

/* Drop the pulls up to @ticket, copied into rail 0's area if they landed in another's. */
static void pulls_done(struct rl_vconn *v, uint64_t ticket)
{
	uint8_t *area0 = v->r->rail[0].pull_area;

	while (v->pulls && v->pulls->ticket <= ticket) {
		struct rl_pull *p = v->pulls;

		if (v->rail)
			memcpy(area0 + p->at, pull_area(v) + p->at, p->len);
		v->pulls = p->next;
		free(p);
	}
	if (!v->pulls)
		v->pulls_tail = &v->pulls;
}

static int vc_pull_wait(struct rmig_conn *bc, uint64_t ticket, int timeout_ms)
{
	struct rl_vconn *v = vc_of(bc);

	if (!ticket || ticket > v->next_ticket)
		return rmig_msg(&bc->err, -EINVAL, "rdma rails: pull_wait for unknown ticket %llu",
				(unsigned long long)ticket);
	for (;;) {
		struct rl_pull *p;
		struct rmig_conn *in;
		unsigned int gen;
		int ret = enter(v, &in, &gen, &bc->err);

		if (ret)
			return ret;
		/* pulls complete in order: the last one up to @ticket stands for all */
		for (p = v->pulls; p && p->next && p->next->ticket <= ticket; p = p->next)
			;
		if (p && p->ticket <= ticket) {
			ret = in->ops->pull_wait(in, p->inner, timeout_ms);
			if (!ret)
				pulls_done(v, ticket);
			else
				snprintf(bc->err.msg, sizeof(bc->err.msg), "%s", in->err.msg);
		}
		leave(v);
		if (!ret || ret == -ETIMEDOUT)
			return ret;
		ret = recover(v, in, gen, ret, &bc->err);
		if (ret)
			return ret;
	}
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
	if (v->r->ctl == v)
		v->r->ctl = NULL;
	pthread_mutex_unlock(&v->r->vc_mu);
	v->in->ops->close(v->in);
	while (v->log) {
		struct rl_rec *e = v->log;

		v->log = e->next;
		free(e->segs);
		free(e);
	}
	while (v->pulls) {
		struct rl_pull *p = v->pulls;

		v->pulls = p->next;
		free(p);
	}
	free(v->pend);
	pthread_mutex_destroy(&v->mu);
	pthread_mutex_destroy(&v->cnt_mu);
	pthread_cond_destroy(&v->cv);
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

/* The control connection's: the same, with postcopy's pulls. */
static const struct rmig_conn_ops vc_ctl_ops = {
	.send = vc_send,
	.flush = vc_flush,
	.recv = vc_recv,
	.recv_pages = rmig_conn_no_recv_pages,
	.pull = vc_pull,
	.pull_wait = vc_pull_wait,
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
	v->base.ops = vid == RL_CTL_VID ? &vc_ctl_ops : &vc_ops;
	v->r = r;
	v->vid = vid;
	v->rail = rail;
	v->in = in;
	v->tail = &v->log;
	v->pulls_tail = &v->pulls;
	pthread_mutex_init(&v->mu, NULL);
	pthread_mutex_init(&v->cnt_mu, NULL);
	pthread_cond_init(&v->cv, NULL);
	atomic_init(&v->down, false);
	atomic_init(&v->taken_over, false);
	atomic_init(&v->cpu_node, -1);
	atomic_init(&v->buf_node, rmig_rl_mem_node(rd_conn_of(in)->bufs));
	if (!is_ctl(v))
		rmig_conn_set_node(&v->base, rmig_rl_numa_node(r, rail));
	v->creator = pthread_self();
	count(v, in);
	pthread_mutex_lock(&r->vc_mu);
	v->next = r->vconns;
	r->vconns = v;
	if (is_ctl(v) && r->is_dst)
		r->ctl = v;
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
		if (v->rail != k || is_ctl(v))
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
		if (v->rail != k || is_ctl(v))
			continue;
		*local += rmig_load_relaxed(&v->base.numa_local);
		*remote += rmig_load_relaxed(&v->base.numa_remote);
	}
	pthread_mutex_unlock(&r->vc_mu);
}
