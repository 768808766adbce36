// SPDX-License-Identifier: MIT
/*
 * Memory windows: each channel's own rkeys, bound to its QP (see mw.h).
 *
 * With streamed registration the destination's slices appear one by one
 * after the channels opened. chan_open() binds the channel's windows over
 * the slices registered by then and sends a table marking the others
 * pending (version 2), with this channel's own status table; a binder
 * thread (one per xport, while some channel waits) binds the later slices
 * on every channel's QP and, once a bind has completed, writes the window's
 * rkey into that channel's status table, which the source reads by RDMA
 * READ (regwait.c). The status table itself is reachable only through a
 * read-only window bound to the same QP: no rkey that leaves the
 * destination opens anything on another QP.
 *
 * The binder is a third user of a conn whose thread receives (and sends
 * RELEASE) on it. It never sleeps on the conn: it takes the conn's lock
 * with trylock, posts binds only when the send queue has room, polls the
 * completion queue itself (waking whichever role sleeps on it) and comes
 * back later for what has not completed. So it holds no conn while it
 * waits, and can be joined under mr_lock (revoke, close).
 */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/xport_util.h"
#include "transport/rdma/mr.h"
#include "transport/rdma/mw.h"
#include "transport/rdma/progress.h"
#include "transport/rdma/stream.h"

#define RD_CHK_HDR 4u /* the u32 length in front of a channel's table */
/* The binder's pause while binds are outstanding or a conn is busy */
#define RD_MWB_RETRY_US 200
/* How long it waits for a registration before it looks at its list again */
#define RD_MWB_TICK_MS 10
/* Completion polls under the conn's lock right after posting binds */
#define RD_MWB_SPIN 64

enum { MW_UNBOUND, MW_POSTED, MW_BOUND, MW_FAILED };

/* Destination: one channel's windows and status table. */
struct rd_chan_mw {
	struct rd_conn *c;
	struct rd_chan_mw *next; /* in the binder's list, under its mu */
	unsigned int n;		 /* slices of x->local */
	/* per slice, under c->mu: the window, its rkey, its bind's WR, its state */
	struct ibv_mw **mws;
	uint32_t *rkeys;
	uint64_t *seq;
	uint8_t *state;
	unsigned int left; /* slices not bound yet */
	bool named;	   /* the conn's failure names the slice already */
	bool dead;	   /* the conn failed: nothing more to bind */
	/* the source reads this (one u64 per slice, mr.h) through st_mw only */
	_Atomic uint64_t *st;
	size_t st_bytes;
	struct ibv_mr *st_mr;
	struct ibv_mw *st_mw;
	uint32_t st_rkey;
};

/* The binder: one thread per xport while some channel has slices to bind. */
struct rd_mwbind {
	struct rd_xport *x;
	pthread_t tid;
	pthread_mutex_t mu; /* a leaf lock: guards list, busy, gen */
	pthread_cond_t cv;  /* list or busy changed, or stop */
	struct rd_chan_mw *list;
	struct rd_chan_mw *busy; /* the entry the thread works on outside mu */
	unsigned int gen;	 /* bumped when an entry joins */
	atomic_bool stop;
};

/* ------------------------------------------------------------ helpers */

static void pause_us(unsigned int us)
{
	struct timespec ts = {0, (long)us * 1000L};

	nanosleep(&ts, NULL);
}

/* The block holding slice @k of @t. */
static const struct rd_lblock *block_of(const struct rd_mrs *t, unsigned int k)
{
	unsigned int b = 0;

	while (b + 1 < t->nblocks && k >= t->blocks[b + 1].first)
		b++;
	return &t->blocks[b];
}

static void cmw_free(struct rd_conn *c, struct rd_chan_mw *cm)
{
	if (!cm)
		return;
	/* windows first: a provider may refuse to deregister an MR with windows bound */
	for (unsigned int i = 0; i < cm->n; i++)
		if (cm->mws[i])
			c->v->dealloc_mw(cm->mws[i]);
	if (cm->st_mw)
		c->v->dealloc_mw(cm->st_mw);
	if (cm->st_mr)
		c->v->dereg_mr(cm->st_mr);
	free((void *)cm->st);
	free(cm->mws);
	free(cm->rkeys);
	free(cm->seq);
	free(cm->state);
	free(cm);
}

static struct rd_chan_mw *cmw_new(struct rd_conn *c, unsigned int n)
{
	struct rd_chan_mw *cm = calloc(1, sizeof(*cm));
	unsigned int m = n ? n : 1;

	if (!cm)
		return NULL;
	cm->c = c;
	cm->n = n;
	cm->left = n;
	cm->mws = calloc(m, sizeof(*cm->mws));
	cm->rkeys = calloc(m, sizeof(*cm->rkeys));
	cm->seq = calloc(m, sizeof(*cm->seq));
	cm->state = calloc(m, sizeof(*cm->state));
	if (!cm->mws || !cm->rkeys || !cm->seq || !cm->state) {
		cmw_free(c, cm);
		return NULL;
	}
	return cm;
}

/* Room in the send queue for one more WR without waiting. Must hold c->mu. */
static bool sq_has_room(const struct rd_conn *c)
{
	return c->sq_next - 1 - c->sq_done < c->sq_depth;
}

/* Slice @k's status for the source, if it has a status table. Must hold c->mu. */
static void st_set(struct rd_chan_mw *cm, unsigned int k, uint64_t v)
{
	/*
	 * release: the bind's completion (polled before) happens before the
	 * rkey is readable; the source's RDMA READ is the reader
	 */
	if (cm->st)
		atomic_store_explicit(&cm->st[k], htobe64(v), memory_order_release);
}

/*
 * Post a bind for every slice registered and not bound yet on @c, as far as
 * the send queue has room (@wait: wait for room; only the channel's own
 * thread may). Returns how many were posted, or the conn's failure. Must
 * hold c->mu; x->local stays (the binder runs only while listed, mr_lock
 * holders unlist it before releasing x->local).
 */
static int post_binds(struct rd_chan_mw *cm, bool wait)
{
	struct rd_conn *c = cm->c;
	const struct rd_mrs *t = &c->x->local;
	int posted = 0, ret;

	for (unsigned int k = 0; k < cm->n; k++) {
		const struct rd_lslice *s = &t->slices[k];
		/* .mr only once ready says it is set (below) */
		struct ibv_mw_bind_info bi = {
		    .addr = (uint64_t)(uintptr_t)s->addr,
		    .length = s->len,
		    .mw_access_flags = IBV_ACCESS_REMOTE_WRITE,
		};

		if (cm->state[k] != MW_UNBOUND)
			continue;
		/* acquire: pairs with the registration thread's release of ready after mr */
		if (!atomic_load_explicit(&s->ready, memory_order_acquire))
			continue;
		if (!wait && !sq_has_room(c))
			break;
		bi.mr = s->mr;
		if (!cm->mws[k]) {
			ret = c->v->alloc_mw(c->x->pd, IBV_MW_TYPE_2, &cm->mws[k]);
			if (ret) {
				const struct rd_lblock *b = block_of(t, k);

				cm->named = true;
				st_set(cm, k, RD_ST_FAILED);
				return rmig_rd_conn_fail(
				    c, ret,
				    "%s: ibv_alloc_mw(type 2) for block %s slice %u of %u "
				    "(offset %" PRIu64 ", %" PRIu64 " bytes) failed: %s",
				    c->label, b->name, k - b->first + 1, b->n,
				    (uint64_t)(s->addr - b->host), s->len, strerror(-ret));
			}
		}
		/* a type 2 window takes the rkey its bind names: a fresh tag */
		cm->rkeys[k] = ibv_inc_rkey(cm->mws[k]->rkey);
		ret = rmig_rd_add_bind(c, cm->mws[k], cm->rkeys[k], &bi, &cm->seq[k]);
		if (ret)
			return ret;
		cm->state[k] = MW_POSTED;
		posted++;
	}
	if (posted) {
		ret = rmig_rd_post_batch(c);
		if (ret)
			return ret;
	}
	return posted;
}

/* Binds that completed: bound, and their rkeys in the status table. Must hold c->mu. */
static unsigned int reap(struct rd_chan_mw *cm)
{
	struct rd_conn *c = cm->c;
	unsigned int outstanding = 0;

	for (unsigned int k = 0; k < cm->n; k++) {
		if (cm->state[k] != MW_POSTED)
			continue;
		if (cm->seq[k] > c->sq_done) {
			outstanding++;
			continue;
		}
		cm->state[k] = MW_BOUND;
		cm->left--;
		st_set(cm, k, rd_st_ready(cm->rkeys[k]));
	}
	return outstanding;
}

/*
 * The conn failed: if a bind of ours was the WR that failed (the first one
 * not completed; an RC queue completes in order), say which slice, in the
 * conn's failure (what both sides report) and the status table. Must hold
 * c->mu.
 */
static void name_failure(struct rd_chan_mw *cm)
{
	struct rd_conn *c = cm->c;
	const struct rd_mrs *t = &c->x->local;
	unsigned int bad = cm->n;
	size_t used;

	if (cm->named || !c->failed)
		return;
	cm->named = true;
	for (unsigned int k = 0; k < cm->n; k++)
		if (cm->state[k] == MW_POSTED && cm->seq[k] > c->sq_done &&
		    (bad == cm->n || cm->seq[k] < cm->seq[bad]))
			bad = k;
	if (bad == cm->n || !strstr(c->fail_msg, "BIND_MW"))
		return;
	cm->state[bad] = MW_FAILED;
	st_set(cm, bad, RD_ST_FAILED);
	used = strlen(c->fail_msg);
	if (used + 1 < sizeof(c->fail_msg)) {
		const struct rd_lblock *b = block_of(t, bad);
		const struct rd_lslice *s = &t->slices[bad];

		snprintf(c->fail_msg + used, sizeof(c->fail_msg) - used,
			 " (the window over block %s slice %u of %u, offset %" PRIu64 ", %" PRIu64
			 " bytes)",
			 b->name, bad - b->first + 1, b->n, (uint64_t)(s->addr - b->host), s->len);
	}
}

/* A registration that failed: the source fails naming it, not waiting on. Must hold c->mu. */
static void mark_reg_failure(struct rd_chan_mw *cm)
{
	int bad = rmig_rd_mrs_failed_slice(&cm->c->x->local);

	if (bad >= 0 && (unsigned int)bad < cm->n && cm->state[bad] == MW_UNBOUND) {
		cm->state[bad] = MW_FAILED;
		st_set(cm, (unsigned int)bad, RD_ST_FAILED);
	}
}

/* ------------------------------------------------------------- binder */

enum step { STEP_DONE, STEP_RETRY, STEP_WAIT_REG };

/* One look at one channel: reap, bind what appeared, reap again. */
static enum step chan_step(struct rd_chan_mw *cm)
{
	struct rd_conn *c = cm->c;
	unsigned int outstanding;
	int n = 0, polled = 0;
	bool room;

	/* never wait for the conn: its own thread may hold it while it waits for mr_lock */
	if (pthread_mutex_trylock(&c->mu))
		return STEP_RETRY;
	/* first, while the source may still read it: which slice failed to register */
	mark_reg_failure(cm);
	if (rmig_rd_check(c) || c->peer_closed) {
		name_failure(cm);
		cm->dead = true;
		pthread_mutex_unlock(&c->mu);
		return STEP_DONE;
	}
	n = post_binds(cm, false);
	outstanding = reap(cm);
	for (int i = 0; n >= 0 && outstanding && i < RD_MWB_SPIN; i++) {
		n = rmig_rd_poll(c);
		if (n > 0) {
			polled += n;
			outstanding = reap(cm);
		} else if (!n) {
			sched_yield();
		}
	}
	/* rmig_rd_poll woke a receiver; a sender may sleep for what we took too */
	if (polled)
		rmig_rd_kick(c, RD_ROLE_SEND);
	if (n < 0 || c->failed) {
		name_failure(cm);
		cm->dead = true;
		pthread_mutex_unlock(&c->mu);
		return STEP_DONE;
	}
	room = sq_has_room(c);
	pthread_mutex_unlock(&c->mu);
	if (!cm->left)
		return STEP_DONE;
	return outstanding || !room ? STEP_RETRY : STEP_WAIT_REG;
}

static void *binder_main(void *arg)
{
	struct rd_mwbind *b = arg;
	struct rd_mrs *t = &b->x->local;
	unsigned int done = 0, gen = 0;
	bool reg_over = false;

	/* the send queue's side of each conn; it never sleeps on one (chan_step) */
	rmig_rd_role = RD_ROLE_SEND;
	pthread_mutex_lock(&b->mu);
	while (!atomic_load_explicit(&b->stop, memory_order_relaxed)) {
		bool retry = false, wait_reg = false;

		gen = b->gen;
		for (struct rd_chan_mw *cm = b->list; cm; cm = cm->next) {
			enum step st;

			if (cm->dead || !cm->left)
				continue;
			b->busy = cm;
			pthread_mutex_unlock(&b->mu);
			st = chan_step(cm);
			pthread_mutex_lock(&b->mu);
			b->busy = NULL;
			pthread_cond_broadcast(&b->cv); /* rmig_rd_mws_release waits for that */
			retry |= st == STEP_RETRY;
			wait_reg |= st == STEP_WAIT_REG;
		}
		if (retry) {
			pthread_mutex_unlock(&b->mu);
			pause_us(RD_MWB_RETRY_US);
			pthread_mutex_lock(&b->mu);
		} else if (wait_reg && !reg_over) {
			struct rmig_msgbuf err;
			int ret;

			pthread_mutex_unlock(&b->mu);
			ret = rmig_rd_mrs_wait_more(t, &done, RD_MWB_TICK_MS, &b->stop, &err);
			/* failed or stopped: one more pass marks it, then idle */
			reg_over = ret && ret != -ETIMEDOUT;
			pthread_mutex_lock(&b->mu);
		} else if (gen == b->gen) {
			pthread_cond_wait(&b->cv, &b->mu);
		}
	}
	pthread_mutex_unlock(&b->mu);
	return NULL;
}

/* Hand @cm to the xport's binder, starting it. Must hold x->mr_lock. */
static int binder_add(struct rd_xport *x, struct rd_chan_mw *cm)
{
	struct rd_mwbind *b = x->mwb;
	int ret;

	if (!b) {
		b = calloc(1, sizeof(*b));
		if (!b)
			return -ENOMEM;
		b->x = x;
		atomic_init(&b->stop, false);
		pthread_mutex_init(&b->mu, NULL);
		pthread_cond_init(&b->cv, NULL);
		ret = pthread_create(&b->tid, NULL, binder_main, b);
		if (ret) {
			pthread_cond_destroy(&b->cv);
			pthread_mutex_destroy(&b->mu);
			free(b);
			return -ret;
		}
		x->mwb = b;
	}
	pthread_mutex_lock(&b->mu);
	cm->next = b->list;
	b->list = cm;
	b->gen++;
	pthread_cond_broadcast(&b->cv);
	pthread_mutex_unlock(&b->mu);
	return 0;
}

/* Take @cm off the binder's list; the last one out stops it. Must hold x->mr_lock. */
static void binder_remove(struct rd_xport *x, struct rd_chan_mw *cm)
{
	struct rd_mwbind *b = x->mwb;
	bool last;

	if (!b)
		return;
	pthread_mutex_lock(&b->mu);
	for (struct rd_chan_mw **p = &b->list; *p; p = &(*p)->next)
		if (*p == cm) {
			*p = cm->next;
			break;
		}
	while (b->busy == cm)
		pthread_cond_wait(&b->cv, &b->mu);
	last = !b->list;
	if (last) {
		atomic_store_explicit(&b->stop, true, memory_order_relaxed);
		pthread_cond_broadcast(&b->cv);
	}
	pthread_mutex_unlock(&b->mu);
	if (!last)
		return;
	/* it takes no lock we may hold (chan_step only tries the conn's) */
	pthread_join(b->tid, NULL);
	pthread_cond_destroy(&b->cv);
	pthread_mutex_destroy(&b->mu);
	free(b);
	x->mwb = NULL;
}

void rmig_rd_mws_release(struct rd_conn *c)
{
	struct rd_chan_mw *cm = c->cmw;

	if (!cm)
		return;
	binder_remove(c->x, cm);
	c->cmw = NULL;
	cmw_free(c, cm);
}

void rmig_rd_mws_release_all(struct rd_xport *x)
{
	for (struct rd_conn *c = x->conns; c; c = c->next)
		rmig_rd_mws_release(c);
}

/* ------------------------------------------------------ destination */

/*
 * The channel's status table, readable through a window bound to its QP
 * only (REMOTE_READ; the MR itself grants no remote access). Must hold
 * c->mu and x->mr_lock.
 */
static int status_table(struct rd_chan_mw *cm)
{
	struct rd_conn *c = cm->c;
	long psz = sysconf(_SC_PAGESIZE);
	size_t bytes = ((size_t)cm->n * 8 + (size_t)psz - 1) & ~((size_t)psz - 1);
	struct ibv_mw_bind_info bi = {.mw_access_flags = IBV_ACCESS_REMOTE_READ};
	int ret;

	cm->st = aligned_alloc((size_t)psz, bytes);
	if (!cm->st)
		return rmig_rd_conn_fail(c, -ENOMEM, "%s: out of memory for the status table",
					 c->label);
	memset((void *)cm->st, 0, bytes);
	cm->st_bytes = bytes;
	ret = c->v->reg_mr(c->x->pd, (void *)cm->st, bytes,
			   IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_MW_BIND, &cm->st_mr);
	if (ret) {
		struct rmig_msgbuf mb;

		rmig_rd_reg_error(ret, "the channel's status table, LOCAL_WRITE|MW_BIND",
				  (void *)cm->st, bytes, bytes, &mb);
		return rmig_rd_conn_fail(c, ret, "%s: %s", c->label, mb.msg);
	}
	ret = c->v->alloc_mw(c->x->pd, IBV_MW_TYPE_2, &cm->st_mw);
	if (ret)
		return rmig_rd_conn_fail(c, ret,
					 "%s: ibv_alloc_mw(type 2) for the status table failed: %s",
					 c->label, strerror(-ret));
	bi.mr = cm->st_mr;
	bi.addr = (uint64_t)(uintptr_t)cm->st;
	bi.length = bytes;
	cm->st_rkey = ibv_inc_rkey(cm->st_mw->rkey);
	return rmig_rd_add_bind(c, cm->st_mw, cm->st_rkey, &bi, NULL);
}

/*
 * Bind what is registered, wait until those binds completed (an rkey goes
 * out only once it works) and encode the channel's table into *@bufp.
 * Must hold c->mu and x->mr_lock.
 */
static int open_windows(struct rd_conn *c, uint64_t deadline, uint8_t **bufp, size_t *lenp)
{
	struct rd_xport *x = c->x;
	struct rd_mrs *t = &x->local;
	struct rd_chan_mw *cm;
	struct rmig_msgbuf err;
	uint8_t *pending = NULL;
	size_t len;
	int ret;

	if (x->revoked)
		return rmig_rd_conn_fail(c, -ECANCELED, "%s: RAM access was revoked (cancelled)",
					 c->label);
	if (c->cmw)
		return rmig_rd_conn_fail(c, -EALREADY, "%s: channel opened twice", c->label);
	if (x->nblocks && !t->slices)
		return rmig_rd_conn_fail(c, -EINVAL, "%s: RAM is not registered yet", c->label);
	/* the first pages go to the first slice: have it in the table, not pending */
	if (t->nslices) {
		ret = rmig_rd_mrs_wait(t, &t->slices[0], &x->down, &c->down, &err);
		if (ret)
			return rmig_rd_conn_fail(c, ret, "%s: %s", c->label, err.msg);
	}
	cm = cmw_new(c, t->nslices);
	if (!cm)
		return rmig_rd_conn_fail(c, -ENOMEM, "%s: out of memory for memory windows",
					 c->label);
	c->cmw = cm;
	/* slices may appear while this runs: the binder takes the rest */
	if (!rmig_rd_mrs_all_ready(t)) {
		ret = status_table(cm);
		if (ret)
			return ret;
	}
	ret = post_binds(cm, true);
	if (ret < 0)
		return ret;
	ret = rmig_rd_wait_done(c, c->sq_next - 1, deadline);
	if (ret) {
		name_failure(cm);
		return rmig_rd_conn_fail(c, ret, "%s: waiting for the memory window binds: %s",
					 c->label, strerror(-ret));
	}
	reap(cm);
	if (cm->left) {
		ret = binder_add(x, cm);
		if (ret)
			return rmig_rd_conn_fail(c, ret, "%s: cannot start the window binder: %s",
						 c->label, strerror(-ret));
	}
	pending = malloc(cm->n ? cm->n : 1);
	if (!pending)
		return rmig_rd_conn_fail(c, -ENOMEM, "%s: out of memory", c->label);
	for (unsigned int k = 0; k < cm->n; k++)
		pending[k] = cm->state[k] != MW_BOUND;
	len = rmig_rd_mrt_size_v(t, cm->left > 0);
	*bufp = malloc(RD_CHK_HDR + len);
	if (!*bufp) {
		free(pending);
		return rmig_rd_conn_fail(c, -ENOMEM, "%s: out of memory", c->label);
	}
	ret = rmig_rd_mrt_encode_chan(t, cm->rkeys, pending, (uint64_t)(uintptr_t)cm->st,
				      cm->st_rkey, *bufp + RD_CHK_HDR, &len, &err);
	free(pending);
	if (ret)
		return rmig_rd_conn_fail(c, ret, "%s: %s", c->label, err.msg);
	*lenp = len;
	return 0;
}

/* Destination: bind (or not) and send the channel's table. Must hold c->mu. */
static int dst_open(struct rd_conn *c, int timeout_ms)
{
	struct rd_xport *x = c->x;
	uint8_t *buf = NULL;
	size_t len = 0;
	int ret;

	ret = rmig_rd_check(c);
	if (ret)
		return ret;
	if (x->use_mw) {
		pthread_mutex_lock(&x->mr_lock);
		ret = open_windows(c, rd_deadline(timeout_ms), &buf, &len);
		pthread_mutex_unlock(&x->mr_lock);
		if (ret)
			goto out;
	} else {
		buf = malloc(RD_CHK_HDR);
		if (!buf) {
			ret = rmig_rd_conn_fail(c, -ENOMEM, "%s: out of memory", c->label);
			goto out;
		}
	}
	rmig_put_be32(buf, (uint32_t)len);
	ret = rmig_rd_stream_write(c, buf, RD_CHK_HDR + len);
	if (!ret)
		ret = rmig_rd_post_batch(c);
	if (!ret && x->use_mw)
		rmig_store_relaxed(&c->base.tls, rmig_load_relaxed(&c->base.tls) | RMIG_CONN_MW);
out:
	free(buf);
	return ret;
}

/* Source: take the channel's table (none: the WELCOME's MR table stands). */
static int src_open(struct rmig_conn *bc, int timeout_ms)
{
	struct rd_conn *c = rd_conn_of(bc);
	struct rd_remote r;
	uint8_t hdr[RD_CHK_HDR];
	uint8_t *buf;
	uint32_t len;
	int ret;

	ret = rmig_rd_recv(bc, hdr, sizeof(hdr), timeout_ms);
	if (ret)
		return rmig_msg(&bc->err, ret, "%s", bc->recv_err.msg);
	len = rmig_get_be32(hdr);
	if (!len)
		return 0;
	if (len > RMIG_PEER_INFO_MAX)
		return rmig_msg(&bc->err, -EPROTO,
				"%s: the destination's window table is %" PRIu32
				" bytes (at most %u)",
				c->label, len, RMIG_PEER_INFO_MAX);
	buf = malloc(len);
	if (!buf)
		return rmig_msg(&bc->err, -ENOMEM, "%s: out of memory", c->label);
	ret = rmig_rd_recv(bc, buf, len, timeout_ms);
	if (ret) {
		ret = rmig_msg(&bc->err, ret, "%s", bc->recv_err.msg);
		goto out;
	}
	/* version 2: slices still pending; their rkeys come from this channel's status table */
	ret = rmig_rd_mrt_decode(buf, len, c->x->blocks, c->x->nblocks, &r, &bc->err);
	if (ret)
		goto out;
	pthread_mutex_lock(&c->mu);
	rmig_rd_remote_release(&c->chan_remote);
	c->chan_remote = r;
	c->have_chan_remote = true;
	pthread_mutex_unlock(&c->mu);
	rmig_store_relaxed(&bc->tls, rmig_load_relaxed(&bc->tls) | RMIG_CONN_MW);
out:
	free(buf);
	return ret;
}

int rmig_rd_chan_open(struct rmig_conn *bc, int timeout_ms)
{
	struct rd_conn *c = rd_conn_of(bc);

	if (!c->x->is_dst)
		return src_open(bc, timeout_ms);
	c = rd_enter(bc, RD_ROLE_SEND);
	return rd_leave(c, dst_open(c, timeout_ms));
}
