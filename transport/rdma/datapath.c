// SPDX-License-Identifier: MIT
/*
 * The send queue and the completion queue of a conn: WR numbering,
 * selective signaling, post lists, page-data WRITEs and flush.
 *
 * Every WR gets a sequence number (its wr_id). An RC send queue completes in
 * order, so the completion of a signaled WR numbered s proves every WR up to
 * s has completed (and, for WRITEs, landed in remote memory): sq_done = s.
 * Only every signal_every-th WR is signaled. Two rules keep that safe:
 *  - outstanding WRs (sq_next - 1 - sq_done) never exceed sq_depth, and
 *    signal_every <= sq_depth / 2, so a full queue always holds a signaled
 *    WR whose completion makes room;
 *  - whoever must wait for seq s (flush, a send slot) first makes sure a
 *    signaled WR numbered >= s exists, adding a zero-length RDMA WRITE (NOP)
 *    if the tail was unsignaled. A zero-length WRITE touches no memory and
 *    the IB spec (C9-88) does not check its R_Key. The source passes the
 *    destination's first rkey, which is stale once the destination revoked
 *    its RAM (postcopy start, the end); the destination passes 0. rxe (6.1)
 *    accepts both, as the spec says: every rxe test with idle conns relies
 *    on it.
 * Errors are always reported, signaled or not, so a failure is never missed.
 */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "core/xport_util.h"
#include "transport/rdma/rdma.h"

static const char *op_name(enum rd_op op)
{
	switch (op) {
	case RD_OP_WRITE:
		return "RDMA_WRITE";
	case RD_OP_SEND:
		return "SEND_WITH_IMM";
	case RD_OP_CREDIT:
		return "SEND_WITH_IMM (credit return)";
	case RD_OP_NOP:
		return "RDMA_WRITE (zero-length probe)";
	case RD_OP_READ:
		return "RDMA_READ";
	}
	return "unknown WR";
}

/* Status -> errno: the peer or the path is gone, or this side did something wrong. */
static int wc_errno(enum ibv_wc_status st)
{
	switch (st) {
	case IBV_WC_RETRY_EXC_ERR:
	case IBV_WC_REM_ABORT_ERR:
	case IBV_WC_REM_OP_ERR:
	case IBV_WC_WR_FLUSH_ERR:
	case IBV_WC_RESP_TIMEOUT_ERR:
		return -ECONNRESET;
	case IBV_WC_REM_ACCESS_ERR:
	case IBV_WC_LOC_PROT_ERR:
	case IBV_WC_LOC_ACCESS_ERR:
		return -EACCES;
	default:
		return -EIO;
	}
}

static const char *wc_hint(enum ibv_wc_status st)
{
	switch (st) {
	case IBV_WC_RETRY_EXC_ERR:
		return ": the peer stopped answering (host down, or its QP gone)";
	case IBV_WC_REM_OP_ERR:
		/* what rxe answers once the peer's QP is in error, e.g. its process exited */
		return ": the peer's QP failed (did the peer exit?)";
	case IBV_WC_REM_ACCESS_ERR:
		return ": the peer refused the rkey or address";
	case IBV_WC_RNR_RETRY_EXC_ERR:
		return ": the peer had no receive posted (a credit accounting bug)";
	default:
		return "";
	}
}

/* 0 if the conn may be used, else the reason it may not. */
int rmig_rd_check(struct rd_conn *c)
{
	if (c->failed)
		return c->failed;
	/* relaxed: the flag is re-checked after every wake-up; the eventfd wakes sleepers */
	if (rmig_load_relaxed(&c->down) || rmig_load_relaxed(&c->x->down))
		return rmig_rd_conn_fail(c, -ECANCELED, "%s: shut down", c->label);
	return 0;
}

static int on_send_wc(struct rd_conn *c, const struct ibv_wc *wc)
{
	uint64_t seq = wc->wr_id;
	enum rd_op op;

	if (seq == 0 || seq > c->sq_posted)
		return rmig_rd_conn_fail(c, -EIO, "%s: completion for unknown wr_id %" PRIu64,
					 c->label, seq);
	op = (enum rd_op)c->sq_ops[seq % c->sq_depth];
	if (wc->status != IBV_WC_SUCCESS) {
		if (wc->status == IBV_WC_WR_FLUSH_ERR && c->peer_closed)
			return rmig_rd_conn_fail(c, -ECONNRESET,
						 "%s: peer closed the connection with %" PRIu64
						 " work requests outstanding (%s flushed)",
						 c->label, c->sq_posted - c->sq_done, op_name(op));
		return rmig_rd_conn_fail(
		    c, wc_errno(wc->status), "%s: %s failed: %s (%s, vendor error 0x%x)%s",
		    c->label, op_name(op), ibv_wc_status_str(wc->status),
		    rmig_rd_wc_status_name(wc->status), wc->vendor_err, wc_hint(wc->status));
	}
	if (seq > c->sq_done)
		c->sq_done = seq;
	return 0;
}

/* Drain up to one batch of completions. Returns how many, or -errno. */
int rmig_rd_poll(struct rd_conn *c)
{
	struct ibv_wc wc[16];
	int n, i, ret;

	n = c->v->poll_cq(c->cq, (int)RMIG_ARRAY_SIZE(wc), wc);
	if (n < 0)
		return rmig_rd_conn_fail(c, n, "%s: ibv_poll_cq failed: %s", c->label,
					 strerror(-n));
	for (i = 0; i < n; i++) {
		if (wc[i].wr_id & RD_WRID_RECV)
			ret = rmig_rd_on_recv(c, &wc[i]);
		else
			ret = on_send_wc(c, &wc[i]);
		if (ret)
			return ret;
	}
	if (n) {
		c->last_rx_ns = rmig_now_ns();
		/* what we took may be what the other thread sleeps for */
		rmig_rd_kick(c, rmig_rd_role == RD_ROLE_RECV ? RD_ROLE_SEND : RD_ROLE_RECV);
	}
	return n;
}

/* Post the pending list in one call. */
int rmig_rd_post_batch(struct rd_conn *c)
{
	struct ibv_send_wr *bad = NULL;
	unsigned int n = c->nbatch, posted;
	int ret;

	if (!n)
		return 0;
	for (unsigned int i = 0; i + 1 < n; i++)
		c->batch[i].next = &c->batch[i + 1];
	c->batch[n - 1].next = NULL;
	c->nbatch = 0;
	ret = c->v->post_send(c->qp, c->batch, &bad);
	if (!ret) {
		c->sq_posted += n;
		return 0;
	}
	posted = bad >= c->batch && bad < c->batch + n ? (unsigned int)(bad - c->batch) : 0;
	c->sq_posted += posted;
	/* WRs numbered but never posted: the stream cannot continue */
	return rmig_rd_conn_fail(
	    c, ret, "%s: ibv_post_send failed: %s (%s, WR %u of %u in the list)", c->label,
	    strerror(-ret), op_name((enum rd_op)c->sq_ops[(c->sq_posted + 1) % c->sq_depth]),
	    posted + 1, n);
}

/* Wait until WR @seq has completed. Posts the pending list first. */
int rmig_rd_wait_done(struct rd_conn *c, uint64_t seq, uint64_t deadline_ns)
{
	int ret;

	if (c->sq_done >= seq)
		return 0;
	if (c->last_signaled < seq) {
		/* nothing at or after @seq will complete visibly: add a signaled NOP */
		ret = rmig_rd_probe(c);
		if (ret)
			return ret;
	}
	ret = rmig_rd_post_batch(c);
	while (!ret && c->sq_done < seq) {
		ret = rmig_rd_check(c);
		if (!ret)
			ret = rmig_rd_conn_wait(c, deadline_ns);
	}
	return ret;
}

/* Make room for one more WR. */
static int sq_room(struct rd_conn *c)
{
	/*
	 * Loop: with two threads on the conn, both may wait for the same
	 * completion, and the room it makes is only for one of them.
	 */
	while (c->sq_next - 1 - c->sq_done >= c->sq_depth) {
		/* the oldest outstanding WR; a signaled one at or after it is in the queue */
		int ret = rmig_rd_wait_done(c, c->sq_next - c->sq_depth, 0);

		if (ret)
			return ret;
	}
	return 0;
}

/*
 * Queue one WR on the pending list (posted when the list fills, or by
 * rmig_rd_post_batch()). Waits for send-queue room if needed. SENDs carry
 * the credits owed at this moment: waiting for room may have added some,
 * so they are read only after the wait.
 */
int rmig_rd_add_wr(struct rd_conn *c, enum rd_op op, const struct ibv_sge *sge, unsigned int nsge,
		   uint64_t raddr, uint32_t rkey, bool force_signal, uint64_t *seqp)
{
	struct ibv_send_wr *wr;
	uint64_t seq;
	int ret;

	ret = sq_room(c);
	if (ret)
		return ret;
	if (c->nbatch == RD_BATCH) {
		ret = rmig_rd_post_batch(c);
		if (ret)
			return ret;
	}
	seq = c->sq_next++;
	wr = &c->batch[c->nbatch];
	memset(wr, 0, sizeof(*wr));
	if (nsge)
		memcpy(c->batch_sge[c->nbatch], sge, nsge * sizeof(*sge));
	wr->wr_id = seq;
	wr->sg_list = nsge ? c->batch_sge[c->nbatch] : NULL;
	wr->num_sge = (int)nsge;
	c->nbatch++;
	if (op == RD_OP_WRITE || op == RD_OP_NOP || op == RD_OP_READ) {
		wr->opcode = op == RD_OP_READ ? IBV_WR_RDMA_READ : IBV_WR_RDMA_WRITE;
		wr->wr.rdma.remote_addr = raddr;
		wr->wr.rdma.rkey = rkey;
	} else {
		wr->opcode = IBV_WR_SEND_WITH_IMM;
		wr->imm_data =
		    htobe32(RD_IMM(op == RD_OP_SEND ? RD_IMM_DATA : RD_IMM_CREDIT, c->owed));
		c->owed = 0;
	}
	c->sq_ops[seq % c->sq_depth] = (uint8_t)op;
	if (force_signal || ++c->unsig >= c->signal_every) {
		wr->send_flags = IBV_SEND_SIGNALED;
		c->unsig = 0;
		c->last_signaled = seq;
	}
	if (seqp)
		*seqp = seq;
	return 0;
}

/*
 * A signaled zero-length RDMA WRITE: proves the tail of the queue has
 * completed, and that the peer still answers (keepalive).
 */
int rmig_rd_probe(struct rd_conn *c)
{
	const struct rd_xport *x = c->x;
	uint64_t raddr = 0;
	uint32_t rkey = 0;

	if (x->have_remote && x->remote.nslices) {
		raddr = x->remote.slices[0].addr;
		rkey = x->remote.slices[0].rkey;
	}
	return rmig_rd_add_wr(c, RD_OP_NOP, NULL, 0, raddr, rkey, true, NULL);
}

/* ------------------------------------------------------- page data */

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

		if (s->block >= x->remote.nblocks || off > x->remote.blocks[s->block].length ||
		    left > x->remote.blocks[s->block].length - off)
			return rmig_rd_conn_fail(c, -EINVAL,
						 "%s: segment %u (block %u, offset %" PRIu64
						 ", %" PRIu64
						 " bytes) is outside the destination's blocks",
						 c->label, i, s->block, off, left);
		while (left) {
			const struct rd_rslice *rs = rmig_rd_remote_find(&x->remote, s->block, off);
			const struct rd_lslice *ls = rmig_rd_mrs_find(&x->local, p);
			uint64_t n = left, ravail, lavail;

			if (!ls)
				return rmig_rd_conn_fail(
				    c, -EINVAL,
				    "%s: segment %u memory at %p is not in a registered block",
				    c->label, i, (void *)p);
			ravail = rs->off + rs->len - off;
			lavail = ls->len - (uint64_t)(p - ls->addr);
			if (n > ravail)
				n = ravail;
			if (n > lavail)
				n = lavail;
			if (n > c->max_msg)
				n = c->max_msg;
			ret = add_piece(c, &w, p, (uint32_t)n, ls->mr->lkey,
					rs->addr + (off - rs->off), rs->rkey);
			if (ret)
				return ret;
			p += n;
			off += n;
			left -= n;
		}
		rmig_count(&c->base.wire_bytes, s->len);
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
	struct rd_conn *c = rd_enter(bc, RD_ROLE_SEND);

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
