// SPDX-License-Identifier: MIT
/*
 * Streamed registration: RAM registered by background threads while pages
 * already move, so the time to the first byte does not grow with RAM.
 *
 * Pinning and registering costs time per byte (docs/scale.md, R2/R4: tens
 * of ms per GiB on rxe, seconds per TiB on real hosts), and registering all
 * of RAM before the first WRITE put that whole cost in front of the
 * migration. Here the slices are registered in address order, which is the
 * order the first round sends pages in, by up to RD_STREAM_THREADS threads;
 * a WRITE that needs a slice not registered yet waits for that slice alone
 * (rmig_rd_mrs_wait, from the datapath, outside the conn's lock).
 *
 * Slices grow: the first of each block is RD_STREAM_FIRST bytes, so the
 * first pages wait for a few ms of pinning whatever the RAM size; each
 * next slice is twice the one before, up to mr_slice, so a 1 TiB block is
 * still a few hundred MRs, not hundreds of thousands.
 *
 * A failed registration stops the stream and is kept, with the block, the
 * slice and its range named; every waiter returns it, so the migration fails
 * with that message and nothing that depends on the missing slice is sent.
 * rmig_rd_mrs_stop_release() stops the threads and joins them before it
 * deregisters what they registered (revoke, destroy).
 */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/xport_util.h"
#include "transport/rdma/mr.h"

/*
 * At most two threads, and one CPU always left to the handshake and the
 * channels (on rxe, parallel pinning of 4 KiB pages was no faster than one
 * thread: docs/scale.md, R4; 2 MiB pages gained from it, R2).
 */
#define RD_STREAM_THREADS 2
#define RD_STREAM_FIRST	  (16ull << 20)
/* How often a waiter looks at the cancel flags; a registration wakes it at once */
#define RD_STREAM_TICK_MS 50

struct rd_regstream {
	struct rd_mrs *t;
	const struct rmig_verbs_ops *v;
	struct ibv_pd *pd;
	int access;
	uint64_t total;
	_Atomic uint64_t *ns;
	uint64_t t0;

	/* destination: the status table the source reads (mr.h), and its MR */
	_Atomic uint64_t *status;
	size_t status_bytes;
	struct ibv_mr *status_mr;

	pthread_t tids[RD_STREAM_THREADS];
	unsigned int nthreads;
	atomic_uint next; /* next slice to claim, in address order */
	atomic_bool stop;
	void (*on_fail)(void *arg, int ret, const char *msg);
	void *arg;

	pthread_mutex_t mu; /* guards what follows; cv: a slice registered, or the end */
	pthread_cond_t cv;
	unsigned int done;
	unsigned int waiters; /* in rmig_rd_mrs_wait: stop frees nothing before they left */
	bool stopped;	      /* released: no slice will be registered any more */
	int ret;      /* the first failure */
	int bad;      /* its slice, -1 before */
	struct rmig_msgbuf err;
};

/* A slice's failure, naming where it is: the message every waiter returns. */
static void record_failure(struct rd_regstream *rs, unsigned int i, int ret)
{
	const struct rd_mrs *t = rs->t;
	const struct rd_lslice *s = &t->slices[i];
	const struct rd_lblock *b;
	struct rmig_msgbuf why;
	unsigned int bi = 0;

	while (bi + 1 < t->nblocks && i >= t->blocks[bi + 1].first)
		bi++;
	b = &t->blocks[bi];
	rmig_rd_reg_error(ret, rmig_rd_access_name(rs->access), s->addr, s->len, rs->total, &why);
	rs->ret = rmig_msg(&rs->err, ret == -ENOMEM || ret == -EPERM || ret == -EAGAIN ? -ENOMEM
										  : ret,
			   "registering RAM in the background: block %s slice %u of %u (offset %" PRIu64
			   ", %" PRIu64 " bytes): %s",
			   b->name, i - b->first + 1, b->n, (uint64_t)(s->addr - b->host), s->len,
			   why.msg);
}

static void *stream_thread(void *arg)
{
	struct rd_regstream *rs = arg;
	struct rd_mrs *t = rs->t;

	for (;;) {
		/* relaxed: the index only divides the work; ready (release) publishes each MR */
		unsigned int i = atomic_fetch_add_explicit(&rs->next, 1, memory_order_relaxed);
		struct ibv_mr *mr = NULL;
		bool first_failure = false;
		int ret;

		if (i >= t->nslices || atomic_load_explicit(&rs->stop, memory_order_relaxed))
			return NULL;
		ret = rs->v->reg_mr(rs->pd, t->slices[i].addr, t->slices[i].len, rs->access, &mr);
		pthread_mutex_lock(&rs->mu);
		if (ret) {
			if (!rs->ret) {
				record_failure(rs, i, ret);
				rs->bad = (int)i;
				first_failure = true;
			}
			atomic_store_explicit(&rs->stop, true, memory_order_relaxed);
			/* the source, waiting for this slice, fails instead of waiting on */
			if (rs->status)
				atomic_store_explicit(&rs->status[i], htobe64(RD_ST_FAILED),
						      memory_order_release);
		} else {
			t->slices[i].mr = mr;
			atomic_store_explicit(&t->slices[i].ready, true, memory_order_release);
			/* the MR exists before its rkey is readable by the peer */
			if (rs->status)
				atomic_store_explicit(&rs->status[i], htobe64(rd_st_ready(mr->rkey)),
						      memory_order_release);
			if (++rs->done == t->nslices) {
				atomic_fetch_add_explicit(rs->ns, rmig_now_ns() - rs->t0,
							  memory_order_relaxed);
				atomic_store_explicit(&t->all_ready, true, memory_order_release);
			}
		}
		pthread_cond_broadcast(&rs->cv);
		pthread_mutex_unlock(&rs->mu);
		/*
		 * Outside mu: the hook takes the xport's locks, which revoke()
		 * holds while it stops (and joins) this thread. rs->err is set
		 * once and never written again.
		 */
		if (first_failure && rs->on_fail)
			rs->on_fail(rs->arg, rs->ret, rs->err.msg);
		if (ret)
			return NULL;
	}
}

/*
 * Destination: the table the source reads each slice's rkey from. Its own
 * MR grants remote reads of it alone; zero (pending) until a slice is done.
 */
static int publish(struct rd_regstream *rs, struct rmig_msgbuf *err)
{
	struct rd_mrs *t = rs->t;
	long psz = sysconf(_SC_PAGESIZE);
	size_t bytes = ((size_t)t->nslices * 8 + (size_t)psz - 1) & ~((size_t)psz - 1);
	int ret;

	rs->status = aligned_alloc((size_t)psz, bytes);
	if (!rs->status)
		return rmig_msg(err, -ENOMEM, "out of memory for the registration status table");
	memset((void *)rs->status, 0, bytes);
	rs->status_bytes = bytes;
	ret = rs->v->reg_mr(rs->pd, (void *)rs->status, bytes, IBV_ACCESS_REMOTE_READ,
			    &rs->status_mr);
	if (ret)
		return rmig_rd_reg_error(ret, "the registration status table, REMOTE_READ",
					 (void *)rs->status, bytes, bytes, err);
	t->status_addr = (uint64_t)(uintptr_t)rs->status;
	t->status_rkey = rs->status_mr->rkey;
	t->published = true;
	return 0;
}

int rmig_rd_mrs_stream(struct rd_mrs *t, const struct rmig_verbs_ops *v, struct ibv_pd *pd,
		       const struct rmig_block *blocks, unsigned int nblocks,
		       const struct rd_stream_params *sp, struct rmig_msgbuf *err)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	struct rd_regstream *rs;
	pthread_condattr_t ca;
	uint64_t total;
	unsigned int want;
	int ret;

	ret = rmig_rd_mrs_plan(t, blocks, nblocks, sp->slice, RD_STREAM_FIRST, &total, err);
	if (ret)
		return ret;
	rs = calloc(1, sizeof(*rs));
	if (!rs) {
		ret = rmig_msg(err, -ENOMEM, "out of memory for the registration threads");
		goto err_plan;
	}
	rs->t = t;
	rs->v = v;
	rs->pd = pd;
	rs->access = sp->access;
	rs->total = total;
	rs->ns = sp->ns;
	rs->on_fail = sp->on_fail;
	rs->arg = sp->arg;
	rs->bad = -1;
	atomic_init(&rs->next, 0);
	atomic_init(&rs->stop, false);
	pthread_mutex_init(&rs->mu, NULL);
	/* waits are timed on CLOCK_MONOTONIC: a clock step must not stretch them */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&rs->cv, &ca);
	pthread_condattr_destroy(&ca);
	t->rs = rs;
	if (sp->publish_status) {
		ret = publish(rs, err);
		if (ret)
			goto err_plan;
	}
	if (!t->nslices) {
		atomic_store_explicit(&t->all_ready, true, memory_order_release);
		return 0;
	}
	/* leave a CPU to the handshake and the channels: that is what streaming is for */
	want = cpus > RD_STREAM_THREADS ? RD_STREAM_THREADS : cpus > 1 ? (unsigned int)cpus - 1 : 1;
	if (want > t->nslices)
		want = t->nslices;
	rs->t0 = rmig_now_ns();
	while (rs->nthreads < want) {
		ret = pthread_create(&rs->tids[rs->nthreads], NULL, stream_thread, rs);
		if (ret)
			break; /* fewer threads is slower, not wrong; none is an error */
		rs->nthreads++;
	}
	if (!rs->nthreads) {
		ret = rmig_msg(err, -ret, "cannot start a registration thread: %s", strerror(ret));
		goto err_plan;
	}
	return 0;

err_plan:
	/* frees rs (if set) and the plan; no MR exists yet */
	rmig_rd_mrs_stop_release(t, v);
	return ret;
}

static void stream_stop(struct rd_mrs *t)
{
	struct rd_regstream *rs = t->rs;

	if (!rs)
		return;
	atomic_store_explicit(&rs->stop, true, memory_order_relaxed);
	/* a thread inside ibv_reg_mr finishes that slice, which release then deregisters */
	while (rs->nthreads)
		pthread_join(rs->tids[--rs->nthreads], NULL);
	pthread_mutex_lock(&rs->mu);
	rs->stopped = true;
	pthread_cond_broadcast(&rs->cv);
	while (rs->waiters)
		pthread_cond_wait(&rs->cv, &rs->mu);
	pthread_mutex_unlock(&rs->mu);
	t->rs = NULL;
	/* the source can no longer read the table; nothing will write it either */
	if (rs->status_mr)
		rs->v->dereg_mr(rs->status_mr);
	free((void *)rs->status);
	t->published = false;
	pthread_cond_destroy(&rs->cv);
	pthread_mutex_destroy(&rs->mu);
	free(rs);
}

void rmig_rd_mrs_stop_release(struct rd_mrs *t, const struct rmig_verbs_ops *v)
{
	/* no background thread may register a slice after this */
	stream_stop(t);
	rmig_rd_mrs_release(t, v);
}

static bool is_set(const atomic_bool *f)
{
	return f && atomic_load_explicit(f, memory_order_relaxed);
}

int rmig_rd_mrs_wait(struct rd_mrs *t, const struct rd_lslice *s, const atomic_bool *down,
		     const atomic_bool *down2, struct rmig_msgbuf *err)
{
	const atomic_bool *flag = s ? &s->ready : &t->all_ready;
	struct rd_regstream *rs = t->rs;
	int ret = 0;

	if (!rs || atomic_load_explicit(flag, memory_order_acquire))
		return 0;
	pthread_mutex_lock(&rs->mu);
	rs->waiters++;
	for (;;) {
		struct timespec ts;

		if (atomic_load_explicit(flag, memory_order_acquire))
			break;
		if (rs->ret) {
			ret = rmig_msg(err, rs->ret, "%s", rs->err.msg);
			break;
		}
		if (rs->stopped) {
			ret = rmig_msg(err, -ECANCELED, "rdma: RAM access was revoked (cancelled)");
			break;
		}
		if (is_set(down) || is_set(down2)) {
			ret = rmig_msg(err, -ECANCELED,
				       "shut down while RAM was still being registered");
			break;
		}
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += RD_STREAM_TICK_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&rs->cv, &rs->mu, &ts);
	}
	if (!--rs->waiters && rs->stopped)
		pthread_cond_broadcast(&rs->cv); /* stream_stop() waits for that */
	pthread_mutex_unlock(&rs->mu);
	return ret;
}

int rmig_rd_mrs_wait_more(struct rd_mrs *t, unsigned int *done, int ms, const atomic_bool *down,
			  struct rmig_msgbuf *err)
{
	struct rd_regstream *rs = t->rs;
	struct timespec ts;
	int ret = 0;

	if (!rs)
		return 0;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&rs->mu);
	rs->waiters++;
	for (;;) {
		if (rs->done != *done) {
			*done = rs->done;
			break;
		}
		if (rs->ret) {
			ret = rmig_msg(err, rs->ret, "%s", rs->err.msg);
			break;
		}
		if (rs->stopped || is_set(down)) {
			ret = rmig_msg(err, -ECANCELED, "rdma: RAM access was revoked (cancelled)");
			break;
		}
		if (pthread_cond_timedwait(&rs->cv, &rs->mu, &ts) == ETIMEDOUT) {
			ret = -ETIMEDOUT;
			break;
		}
	}
	if (!--rs->waiters && rs->stopped)
		pthread_cond_broadcast(&rs->cv); /* stream_stop() waits for that */
	pthread_mutex_unlock(&rs->mu);
	return ret;
}

int rmig_rd_mrs_failed_slice(struct rd_mrs *t)
{
	struct rd_regstream *rs = t->rs;
	int bad;

	if (!rs)
		return -1;
	pthread_mutex_lock(&rs->mu);
	bad = rs->bad;
	pthread_mutex_unlock(&rs->mu);
	return bad;
}
