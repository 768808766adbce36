// SPDX-License-Identifier: MIT
/*
 * The byte stream of a conn: SEND_WITH_IMM messages into the peer's
 * pre-posted receive buffers, with credit flow control.
 *
 * Credits. Each side posts nrecv receive buffers before connecting and tells
 * the peer (connection private data); the peer starts with that many
 * credits, one per SEND it may post. A receiver reposts a buffer as soon as
 * recv() has consumed its bytes (a credit-only message at once), and only
 * then counts it as owed, so a credit always stands for a buffer already on
 * the receive queue: a SEND never finds the queue empty, and no RNR can
 * happen (the QP's rnr_retry is 0, so a bug here fails loudly instead of
 * stalling). Owed credits travel in the immediate data of the next SEND; a
 * side with nothing to send returns them in a zero-length credit-only
 * SEND once it owes half its window.
 *
 * Why credit messages cannot overrun, nor deadlock:
 *  - a credit-only message is itself a SEND and takes a receive buffer, so
 *    it needs a credit like any other; data may never use a side's last
 *    credit, which is thus always there for a credit return;
 *  - a credit return is sent only when at least nrecv/2 (>= 2 with 32
 *    buffers) credits are owed, and receiving one makes its receiver owe
 *    exactly one, so credit messages never answer each other in a loop;
 *  - a sender blocked for credits holds at most one, so nrecv - 1 of its
 *    SENDs are unreturned; a receiver blocked in recv() has consumed all of
 *    them that arrived, hence owes at least nrecv/2 and sends a return with
 *    its reserved credit. A side that spent that reserve gave the peer
 *    >= nrecv/2 credits with it, so the peer's next data SEND (which carries
 *    what it owes, including the buffer the return used) refills it.
 * Only the application can still deadlock the stream, by having both sides
 * send without reading, exactly as with TCP.
 */
#include <endian.h>
#include <errno.h>
#include <string.h>

#include "transport/rdma/progress.h"
#include "transport/rdma/stream.h"

int rmig_rd_post_recv_buf(struct rd_conn *c, unsigned int idx)
{
	struct ibv_sge sge = {
	    .addr = (uintptr_t)(c->bufs + (size_t)idx * c->buf_size),
	    .length = c->buf_size,
	    .lkey = c->buf_mr->lkey,
	};
	struct ibv_recv_wr wr = {.wr_id = RD_WRID_RECV | idx, .sg_list = &sge, .num_sge = 1};
	struct ibv_recv_wr *bad;
	int ret;

	ret = c->v->post_recv(c->qp, &wr, &bad);
	if (ret)
		return rmig_rd_conn_fail(c, ret, "%s: ibv_post_recv failed: %s", c->label,
					 strerror(-ret));
	return 0;
}

/* Post every receive buffer; called before the connection is set up. */
int rmig_rd_stream_init(struct rd_conn *c)
{
	unsigned int i;
	int ret;

	c->on_recv = rmig_rd_on_recv;
	for (i = 0; i < c->nrecv; i++) {
		ret = rmig_rd_post_recv_buf(c, i);
		if (ret)
			return ret;
	}
	return 0;
}

/* A receive completion: credits first, then the payload (if any) joins the stream. */
int rmig_rd_on_recv(struct rd_conn *c, const struct ibv_wc *wc)
{
	unsigned int idx = (unsigned int)(wc->wr_id & ~RD_WRID_RECV);
	uint32_t imm, type, back;

	if (wc->status != IBV_WC_SUCCESS) {
		if (wc->status == IBV_WC_WR_FLUSH_ERR) {
			/* the QP went to error: the peer left, or we are closing */
			c->peer_closed = true;
			return 0;
		}
		return rmig_rd_conn_fail(c, wc->status == IBV_WC_LOC_LEN_ERR ? -EPROTO : -EIO,
					 "%s: receive failed: %s (%s, vendor error 0x%x)", c->label,
					 ibv_wc_status_str(wc->status),
					 rmig_rd_wc_status_name(wc->status), wc->vendor_err);
	}
	if (idx >= c->nrecv)
		return rmig_rd_conn_fail(c, -EIO, "%s: receive completion for unknown buffer %u",
					 c->label, idx);
	if (wc->opcode != IBV_WC_RECV || !(wc->wc_flags & IBV_WC_WITH_IMM))
		return rmig_rd_conn_fail(
		    c, -EPROTO, "%s: peer sent a message without immediate data", c->label);
	imm = be32toh(wc->imm_data);
	type = RD_IMM_TYPE(imm);
	back = RD_IMM_CREDITS(imm);
	if ((type != RD_IMM_DATA && type != RD_IMM_CREDIT) ||
	    (type == RD_IMM_CREDIT) != !wc->byte_len)
		return rmig_rd_conn_fail(
		    c, -EPROTO, "%s: peer sent a malformed stream message (imm 0x%08x, %u bytes)",
		    c->label, imm, wc->byte_len);
	if (back > c->peer_nbufs - c->credits)
		return rmig_rd_conn_fail(c, -EPROTO,
					 "%s: peer returned %u credits but only %u were lent to it",
					 c->label, back, c->peer_nbufs - c->credits);
	c->credits += back;

	if (type == RD_IMM_CREDIT) {
		/* nothing to read: the buffer goes straight back, then counts as owed */
		if (rmig_rd_post_recv_buf(c, idx))
			return c->failed;
		c->owed++;
		return 0;
	}
	if (c->ready_head - c->ready_tail >= c->nrecv)
		return rmig_rd_conn_fail(c, -EIO, "%s: receive ring overflow", c->label);
	c->ready[c->ready_head % c->nrecv] = idx;
	c->ready_len[c->ready_head % c->nrecv] = wc->byte_len;
	c->ready_head++;
	return 0;
}

/* Send what we owe in a credit-only message, if it is at least @threshold. */
int rmig_rd_return_credits(struct rd_conn *c, unsigned int threshold)
{
	int ret;

	if (!c->owed || c->owed < threshold || !c->credits)
		return 0;
	ret = rmig_rd_add_wr(c, RD_OP_CREDIT, NULL, 0, 0, 0, false, NULL);
	if (ret)
		return ret;
	c->credits--;
	return rmig_rd_post_batch(c);
}

/* Wait for a credit that data may use (never the last one). */
static int data_credit(struct rd_conn *c)
{
	int ret;

	while (c->credits < 2) {
		ret = rmig_rd_return_credits(c, rd_credit_threshold(c));
		if (!ret)
			ret = rmig_rd_post_batch(c);
		if (!ret)
			ret = rmig_rd_check(c);
		if (!ret && c->peer_closed)
			ret = rmig_rd_conn_fail(c, -ECONNRESET, "%s: peer closed the connection",
						c->label);
		if (!ret)
			ret = rmig_rd_conn_wait(c, 0);
		if (ret)
			return ret;
	}
	return 0;
}

/* A free send buffer: slots are reused in order, once their SEND has completed. */
static int send_slot(struct rd_conn *c, uint8_t **slot)
{
	int ret;

	while (c->slot_head - c->slot_tail == c->nslots) {
		uint64_t seq = c->slot_seq[c->slot_tail % c->nslots];

		if (c->sq_done >= seq) {
			c->slot_tail++;
			continue;
		}
		ret = rmig_rd_wait_done(c, seq, 0);
		if (ret)
			return ret;
	}
	*slot = c->bufs + (size_t)(c->nrecv + c->slot_head % c->nslots) * c->buf_size;
	return 0;
}

/*
 * Queue @len stream bytes as SENDs of at most the peer's buffer size. The
 * bytes are copied into registered send buffers, so @buf is free on return.
 */
int rmig_rd_stream_write(struct rd_conn *c, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	uint32_t chunk = c->buf_size < c->peer_buf_size ? c->buf_size : c->peer_buf_size;
	int ret;

	while (len) {
		struct ibv_sge sge;
		uint8_t *slot = NULL;
		uint32_t n = len < chunk ? (uint32_t)len : chunk;
		uint64_t seq;

		ret = data_credit(c);
		if (!ret)
			ret = send_slot(c, &slot);
		if (ret)
			return ret;
		memcpy(slot, p, n);
		sge = (struct ibv_sge){(uintptr_t)slot, n, c->buf_mr->lkey};
		/*
		 * Every quarter of the slots, a signaled SEND: slots then come
		 * free while others are still in flight, instead of waiting
		 * for a NOP behind everything posted (a pipeline drain).
		 */
		ret = rmig_rd_add_wr(c, RD_OP_SEND, &sge, 1, 0, 0,
				     (c->slot_head + 1) % (c->nslots / 4) == 0, &seq);
		if (ret)
			return ret;
		c->slot_seq[c->slot_head % c->nslots] = seq;
		c->slot_head++;
		c->credits--;
		rmig_count(&c->base.wire_bytes, n);
		p += n;
		len -= n;
	}
	return 0;
}

/*
 * Copy up to @len stream bytes that arrived and were not read yet, whatever
 * state the conn is in (rails.c takes them off a dead rail's conn before it
 * moves the channel). Buffers are not reposted. Returns how many.
 */
size_t rmig_rd_stream_salvage(struct rd_conn *c, void *buf, size_t len)
{
	uint8_t *out = buf;
	size_t got = 0;

	/* receive completions that came before the failure still count */
	for (int i = 0; i < 64 && rmig_rd_poll(c) > 0; i++)
		;
	while (got < len && c->ready_head != c->ready_tail) {
		unsigned int r = c->ready_tail % c->nrecv;
		uint32_t avail = c->ready_len[r] - c->cur_off;
		size_t n = len - got < avail ? len - got : avail;

		memcpy(out + got, c->bufs + (size_t)c->ready[r] * c->buf_size + c->cur_off, n);
		got += n;
		c->rx_bytes += n;
		c->cur_off += (uint32_t)n;
		if (c->cur_off == c->ready_len[r]) {
			c->ready_tail++;
			c->cur_off = 0;
		}
	}
	return got;
}

static int recv_locked(struct rd_conn *c, void *buf, size_t len, int timeout_ms)
{
	uint64_t deadline = rd_deadline(timeout_ms);
	uint8_t *out = buf;
	size_t got = 0;
	int ret;

	ret = rmig_rd_check(c);
	if (ret)
		return ret;
	while (got < len) {
		if (c->ready_head != c->ready_tail) {
			unsigned int r = c->ready_tail % c->nrecv;
			uint32_t idx = c->ready[r];
			uint32_t avail = c->ready_len[r] - c->cur_off;
			size_t n = len - got < avail ? len - got : avail;

			memcpy(out + got, c->bufs + (size_t)idx * c->buf_size + c->cur_off, n);
			got += n;
			c->rx_bytes += n;
			c->cur_off += (uint32_t)n;
			if (c->cur_off == c->ready_len[r]) {
				c->ready_tail++;
				c->cur_off = 0;
				ret = rmig_rd_post_recv_buf(c, idx);
				if (ret)
					return ret;
				c->owed++;
			}
			continue;
		}
		/* about to wait: do not sit on credits the peer may be waiting for */
		ret = rmig_rd_return_credits(c, rd_credit_threshold(c));
		if (ret)
			return ret;
		if (c->peer_closed) {
			/* completions that arrived before the disconnect still count */
			do
				ret = rmig_rd_poll(c);
			while (ret > 0 && c->ready_head == c->ready_tail);
			if (ret < 0)
				return ret;
			if (c->ready_head != c->ready_tail)
				continue;
			return rmig_rd_conn_fail(c, -ECONNRESET, "%s: peer closed the connection%s",
						 c->label,
						 got ? " in the middle of a message" : "");
		}
		ret = rmig_rd_conn_wait(c, deadline);
		if (ret == -ETIMEDOUT) {
			if (got) /* the stream is out of step now */
				return rmig_rd_conn_fail(c, -ETIMEDOUT,
							 "%s: timed out after %zu of %zu bytes",
							 c->label, got, len);
			return rmig_msg(&c->base.recv_err, -ETIMEDOUT, "%s: nothing received in %d ms",
					c->label, timeout_ms);
		}
		if (ret)
			return ret;
	}
	rmig_count(&c->base.wire_bytes, len);
	return rmig_rd_return_credits(c, rd_credit_threshold(c));
}

int rmig_rd_recv(struct rmig_conn *bc, void *buf, size_t len, int timeout_ms)
{
	struct rd_conn *c = rd_enter(bc, RD_ROLE_RECV);

	return rd_leave(c, recv_locked(c, buf, len, timeout_ms));
}
