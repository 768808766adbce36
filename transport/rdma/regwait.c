// SPDX-License-Identifier: MIT
/*
 * Streamed registration, the source's side of the wait (see mr_stream.c for
 * the registration itself).
 *
 * Local slices: the source's own registration threads set each slice's
 * ready flag; a send waits on it (rmig_rd_mrs_wait).
 *
 * Remote slices: the destination's MR table (version 2, mr.h) may mark
 * slices pending. Their rkeys appear in the destination's status table,
 * one u64 per slice, as its registration threads finish them. The source
 * reads that table with one RDMA READ on the channel's own QP when a send
 * needs a slice still pending, takes every rkey that has appeared, and
 * reads again after a pause if its slice was not among them. With memory
 * windows the table and the status table are the channel's own (mw.c): the
 * status table is read through a window bound to the channel's QP and
 * gives the rkeys of the windows bound there. One-sided:
 * the destination's threads never send anything, so no message, credit or
 * lock of a conn is shared with them, and a rail's conns read their own
 * rail's table. In the first round pages go in address order, which is the
 * order both sides register in, so after the first slice a send rarely
 * finds its slice pending.
 *
 * A slice the destination failed to register reads as RD_ST_FAILED: the
 * send fails naming it (the destination fails its own conns with the full
 * reason, device.c).
 */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/xport_util.h"
#include "transport/rdma/progress.h"
#include "transport/rdma/regwait.h"

/* Pause between two READs of a status table that had not changed for us */
#define RD_REGWAIT_PAUSE_US 500
#define RD_REGWAIT_PAUSE_MAX_US 20000

/* A block's name for messages; the source's table names the same blocks. */
static const char *block_name(const struct rd_xport *x, unsigned int b)
{
	return b < x->nblocks ? x->blocks[b].name : "?";
}

/*
 * Take what the status table in c->st_buf says: under mr_lock, every slice
 * pending here and registered there gets its rkey, then ready (release).
 * -EIO when slice @want failed there. Must hold c->mu.
 */
static int take_status(struct rd_conn *c, struct rd_remote *r, unsigned int want)
{
	struct rd_xport *x = c->x;
	unsigned int pending = 0;
	int ret = 0;

	pthread_mutex_lock(&x->mr_lock);
	for (unsigned int i = 0; i < r->nslices; i++) {
		struct rd_rslice *s = &r->slices[i];
		uint64_t e = be64toh(c->st_buf[i]);
		uint32_t rkey = (uint32_t)(e >> 32);

		if (atomic_load_explicit(&s->ready, memory_order_relaxed))
			continue;
		if (e && e == rd_st_ready(rkey)) {
			s->rkey = rkey;
			atomic_store_explicit(&s->ready, true, memory_order_release);
			continue;
		}
		if (e == RD_ST_FAILED && i == want) {
			unsigned int b = 0;

			while (b + 1 < r->nblocks && i >= r->blocks[b + 1].first)
				b++;
			ret = rmig_rd_conn_fail(
			    c, -EIO,
			    "%s: the destination could not register (or open to this channel) "
			    "block %s slice %u (offset %" PRIu64 ", %" PRIu64
			    " bytes); its side names the reason",
			    c->label, block_name(x, b), i - r->blocks[b].first + 1, s->off, s->len);
		}
		pending++;
	}
	if (!pending)
		atomic_store_explicit(&r->all_ready, true, memory_order_release);
	pthread_mutex_unlock(&x->mr_lock);
	return ret;
}

/* One RDMA READ of the destination's status table into c->st_buf. Must hold c->mu. */
static int read_status(struct rd_conn *c, struct rd_remote *r)
{
	size_t len = (size_t)r->nslices * sizeof(uint64_t);
	struct ibv_sge sge;
	uint64_t seq = 0;
	int ret;

	ret = rmig_rd_check(c);
	if (ret)
		return ret;
	if (!c->st_mr) {
		long psz = sysconf(_SC_PAGESIZE);
		size_t bytes = (len + (size_t)psz - 1) & ~((size_t)psz - 1);

		c->st_buf = aligned_alloc((size_t)psz, bytes);
		if (!c->st_buf)
			return rmig_rd_conn_fail(c, -ENOMEM, "%s: out of memory", c->label);
		memset(c->st_buf, 0, bytes);
		c->st_len = bytes;
		ret = c->v->reg_mr(c->x->pd, c->st_buf, bytes, IBV_ACCESS_LOCAL_WRITE, &c->st_mr);
		if (ret) {
			struct rmig_msgbuf mb;

			rmig_rd_reg_error(ret, "the status table copy, LOCAL_WRITE", c->st_buf,
					  bytes, bytes, &mb);
			return rmig_rd_conn_fail(c, ret, "%s: %s", c->label, mb.msg);
		}
	}
	if (len > c->st_len || len > c->max_msg)
		return rmig_rd_conn_fail(c, -EPROTO,
					 "%s: the destination's status table (%zu bytes) is too large",
					 c->label, len);
	sge = (struct ibv_sge){(uintptr_t)c->st_buf, (uint32_t)len, c->st_mr->lkey};
	ret = rmig_rd_add_wr(c, RD_OP_READ, &sge, 1, r->status_addr, r->status_rkey, true, &seq);
	if (!ret)
		ret = rmig_rd_post_batch(c);
	if (!ret)
		ret = rmig_rd_wait_done(c, seq, rd_deadline(c->x->opts.timeout_ms));
	return ret;
}

static void pause_us(unsigned int us)
{
	struct timespec ts = {0, (long)us * 1000L};

	nanosleep(&ts, NULL);
}

/* Until remote slice @i is ready: read the status table, pause, again. */
static int wait_remote(struct rd_conn *c, struct rd_remote *r, unsigned int i)
{
	unsigned int pause = RD_REGWAIT_PAUSE_US;
	int ret;

	for (;;) {
		c = rd_enter(&c->base, RD_ROLE_SEND);
		ret = read_status(c, r);
		if (!ret)
			ret = take_status(c, r, i);
		ret = rd_leave(c, ret);
		if (ret || atomic_load_explicit(&r->slices[i].ready, memory_order_acquire))
			return ret;
		/* the conn's own checks (shutdown, failure) run at the next rd_enter */
		pause_us(pause);
		if (pause < RD_REGWAIT_PAUSE_MAX_US)
			pause *= 2;
	}
}

static int wait_local(struct rd_conn *c, const struct rd_lslice *ls)
{
	struct rd_xport *x = c->x;
	struct rmig_msgbuf err;
	int ret;

	ret = rmig_rd_mrs_wait(&x->local, ls, &x->down, &c->down, &err);
	if (!ret)
		return 0;
	c = rd_enter(&c->base, RD_ROLE_SEND);
	ret = rmig_rd_conn_fail(c, ret, "%s: %s", c->label, err.msg);
	return rd_leave(c, ret);
}

int rmig_rd_wait_registered(struct rd_conn *c, const struct rmig_seg *segs, unsigned int nsegs)
{
	struct rd_xport *x = c->x;
	/*
	 * A channel with memory windows has its own table, whose pending
	 * slices this channel's own status table resolves (mw.c)
	 */
	struct rd_remote *r = c->have_chan_remote ? &c->chan_remote : &x->remote;
	bool local = !rmig_rd_mrs_all_ready(&x->local);
	bool remote = x->have_remote && r->streamed &&
		      !atomic_load_explicit(&r->all_ready, memory_order_acquire);
	int ret;

	if (!local && !remote)
		return 0;
	for (unsigned int i = 0; i < nsegs; i++) {
		const struct rmig_seg *s = &segs[i];
		uint8_t *p = s->local, *end = p + s->len;
		uint64_t off = s->offset, stop = s->offset + s->len;

		while (local && p < end) {
			const struct rd_lslice *ls = rmig_rd_mrs_find(&x->local, p);

			if (!ls)
				break; /* post_segments() names it */
			ret = wait_local(c, ls);
			if (ret)
				return ret;
			p = ls->addr + ls->len;
		}
		while (remote && off < stop) {
			const struct rd_rslice *rs = rmig_rd_remote_find(r, s->block, off);

			if (!rs)
				break; /* outside the blocks: post_segments() names it */
			if (!atomic_load_explicit(&rs->ready, memory_order_acquire)) {
				ret = wait_remote(c, r, (unsigned int)(rs - r->slices));
				if (ret)
					return ret;
			}
			off = rs->off + rs->len;
		}
	}
	return 0;
}
