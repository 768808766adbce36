// SPDX-License-Identifier: MIT
/*
 * Page data of a conn: each segment becomes RDMA WRITEs straight from the
 * caller's memory into the destination's RAM, and the stream header follows
 * them on the same send queue, so its arrival proves the data landed (an RC
 * queue executes in order). flush() waits for the last WR's completion, so
 * no page memory given to send() is referenced after it (progress.c explains
 * the numbering and signaling that makes that wait exact).
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "core/xport_util.h"
#include "transport/rdma/datapath.h"
#include "transport/rdma/progress.h"
#include "transport/rdma/regwait.h"
#include "transport/rdma/stream.h"

/* A WRITE being assembled: one remote range, gathered from up to RD_MAX_SGE pieces. */
struct wr_build {
	uint64_t raddr;
	uint32_t rkey;
	uint64_t len;
	unsigned int nsge;
	struct ibv_sge sge[RD_MAX_SGE];
};

static int emit(struct rd_conn *c, struct wr_build *w)
{
	int ret;

	if (!w->nsge)
		return 0;
	ret = rmig_rd_add_wr(c, RD_OP_WRITE, w->sge, w->nsge, w->raddr, w->rkey, false, NULL);
	if (!ret)
		rmig_count(&c->base.rdma_writes, 1);
	w->nsge = 0;
	w->len = 0;
	return ret;
}

/* Add @n bytes at @p with @lkey, bound for @raddr/@rkey, merging where the remote range continues.
 */
static int add_piece(struct rd_conn *c, struct wr_build *w, uint8_t *p, uint32_t n, uint32_t lkey,
		     uint64_t raddr, uint32_t rkey)
{
	struct ibv_sge *last;
	int ret;

	if (w->nsge && raddr == w->raddr + w->len && rkey == w->rkey && w->len + n <= c->max_msg) {
		last = &w->sge[w->nsge - 1];
		if (last->lkey == lkey && last->addr + last->length == (uintptr_t)p) {
			last->length += n;
			w->len += n;
			return 0;
		}
		if (w->nsge < c->max_sge) {
			w->sge[w->nsge++] = (struct ibv_sge){(uintptr_t)p, n, lkey};
			w->len += n;
			return 0;
		}
	}
	ret = emit(c, w);
	if (ret)
		return ret;
	w->raddr = raddr;
	w->rkey = rkey;
	w->len = n;
	w->nsge = 1;
	w->sge[0] = (struct ibv_sge){(uintptr_t)p, n, lkey};
	return 0;
}

/*
 * Cut each segment at remote slice ends, local slice ends and the port's
 * largest message, and queue WRITEs for the pieces. Page data is never
 * copied: the WRs point at the caller's memory until their completion.
 */
static int post_segments(struct rd_conn *c, const struct rmig_seg *segs, unsigned int nsegs)
{
	const struct rd_xport *x = c->x;
	/* the channel's own windows when the destination bound some (mw.c) */
	const struct rd_remote *r = c->have_chan_remote ? &c->chan_remote : &x->remote;
	struct wr_build w = {0};
	unsigned int i;
	int ret;

	if (!x->have_remote)
		return rmig_rd_conn_fail(
		    c, -EINVAL, "%s: page data before the destination's MR table", c->label);
	for (i = 0; i < nsegs; i++) {
		const struct rmig_seg *s = &segs[i];
		uint8_t *p = s->local;
		uint64_t off = s->offset, left = s->len;

		if (s->block >= r->nblocks || off > r->blocks[s->block].length ||
		    left > r->blocks[s->block].length - off)
			return rmig_rd_conn_fail(c, -EINVAL,
						 "%s: segment %u (block %u, offset %" PRIu64
						 ", %" PRIu64
						 " bytes) is outside the destination's blocks",
						 c->label, i, s->block, off, left);
		while (left) {
			const struct rd_rslice *rs = rmig_rd_remote_find(r, s->block, off);
			const struct rd_lslice *ls = rmig_rd_mrs_find(&x->local, p);
			uint64_t n = left, ravail, lavail;

			if (!ls)
				return rmig_rd_conn_fail(
				    c, -EINVAL,
				    "%s: segment %u memory at %p is not in a registered block",
				    c->label, i, (void *)p);
			/* rmig_rd_wait_registered() saw it; acquire again for this thread */
			if (!atomic_load_explicit(&ls->ready, memory_order_acquire))
				return rmig_rd_conn_fail(c, -EINVAL,
							 "%s: segment %u memory at %p is not registered yet",
							 c->label, i, (void *)p);
			ravail = rs->off + rs->len - off;
			lavail = ls->len - (uint64_t)(p - ls->addr);
			if (n > ravail)
				n = ravail;
			if (n > lavail)
				n = lavail;
			if (n > c->max_msg)
				n = c->max_msg;
			/* rmig_rd_wait_registered() saw it ready: acquire for this thread */
			if (!atomic_load_explicit(&rs->ready, memory_order_acquire))
				return rmig_rd_conn_fail(
				    c, -EINVAL,
				    "%s: destination block %u offset %" PRIu64
				    " is not registered yet",
				    c->label, s->block, off);
			ret = add_piece(c, &w, p, (uint32_t)n, ls->mr->lkey,
					rs->addr + (off - rs->off), rs->rkey);
			if (ret)
				return ret;
			p += n;
			off += n;
			left -= n;
		}
		/* wire_bytes counts the WRITEs when they complete (progress.c) */
	}
	return emit(c, &w);
}

static int send_locked(struct rd_conn *c, const void *hdr, size_t hdr_len,
		       const struct rmig_seg *segs, unsigned int nsegs)
{
	int ret;

	ret = rmig_rd_check(c);
	if (ret)
		return ret;
	if (c->peer_closed)
		return rmig_rd_conn_fail(c, -ECONNRESET, "%s: peer closed the connection",
					 c->label);
	if (nsegs) {
		ret = post_segments(c, segs, nsegs);
		if (ret)
			return ret;
	}
	/*
	 * The header goes on the same QP after the WRITEs: RC executes them in
	 * order, so its arrival at the destination proves the data landed.
	 */
	ret = rmig_rd_stream_write(c, hdr, hdr_len);
	if (ret)
		return ret;
	return rmig_rd_post_batch(c);
}

int rmig_rd_send(struct rmig_conn *bc, const void *hdr, size_t hdr_len, const struct rmig_seg *segs,
		 unsigned int nsegs)
{
	struct rd_conn *c = rd_conn_of(bc);
	int ret;

	if (nsegs) {
		/* both sides' slices registered: outside the conn's lock (regwait.c) */
		ret = rmig_rd_wait_registered(c, segs, nsegs);
		if (ret)
			return ret;
	}
	c = rd_enter(bc, RD_ROLE_SEND);
	return rd_leave(c, send_locked(c, hdr, hdr_len, segs, nsegs));
}

int rmig_rd_flush(struct rmig_conn *bc)
{
	struct rd_conn *c = rd_enter(bc, RD_ROLE_SEND);
	int ret;

	ret = rmig_rd_check(c);
	if (!ret && c->sq_next - 1 != c->sq_done)
		ret = rmig_rd_wait_done(c, c->sq_next - 1, 0);
	return rd_leave(c, ret);
}
