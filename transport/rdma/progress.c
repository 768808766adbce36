// SPDX-License-Identifier: MIT
/*
 * Progress of a conn: its send queue, its completion queue, waiting, and
 * the record of its first failure. Everything else in transport/rdma posts
 * through rmig_rd_add_wr() and waits in rmig_rd_conn_wait() or
 * rmig_rd_wait_done(); a failure recorded by rmig_rd_conn_fail() is what
 * every later call on the conn returns (rmig_rd_check()).
 *
 * Send queue. Every WR gets a sequence number (its wr_id). An RC send queue
 * completes in order, so the completion of a signaled WR numbered s proves
 * every WR up to s has completed (and, for WRITEs, landed in remote memory):
 * sq_done = s. Only every signal_every-th WR is signaled. Two rules keep
 * that safe:
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
 *
 * Completions. Send completions are handled here. Receive completions
 * belong to the stream, one layer up: they go to the handler the stream set
 * in c->on_recv at set-up, so nothing here calls a file above it.
 *
 * Waiting. Each conn has its own rdma_cm event channel (passive ids are
 * migrated off the listener's), so one poll() covers everything a blocked
 * call can be woken by: the completion channel, rdma_cm events
 * (DISCONNECTED), the conn's shutdown eventfd and the xport's. No event
 * thread is needed.
 */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/xport_util.h"
#include "transport/rdma/progress.h"

/* Completion polls before sleeping: cheap, and completions often follow within microseconds. */
#define RD_SPIN 16

/*
 * Record @code and its reason as the conn's failure, unless one is recorded
 * already (later failures are usually its consequences); returns the code
 * recorded, so callers can write `return rmig_rd_conn_fail(...)`.
 */
int rmig_rd_conn_fail(struct rd_conn *c, int code, const char *fmt, ...)
{
	va_list ap;

	if (c->failed)
		return c->failed;
	va_start(ap, fmt);
	vsnprintf(c->fail_msg, sizeof(c->fail_msg), fmt, ap);
	va_end(ap);
	c->failed = code;
	/* a thread asleep on this conn must see the failure now, not at its next keepalive */
	for (int r = 0; r < RD_ROLES; r++)
		rmig_rd_kick(c, (enum rd_role)r);
	return code;
}

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
	case RD_OP_BIND:
		return "BIND_MW";
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
	int ret;

	if (c->failed)
		return c->failed;
	/* relaxed: the flag is re-checked after every wake-up; the eventfd wakes sleepers */
	if (rmig_load_relaxed(&c->down) || rmig_load_relaxed(&c->x->down))
		return rmig_rd_conn_fail(c, -ECANCELED, "%s: shut down", c->label);
	/* acquire: the message was written before the flag (device.c) */
	ret = atomic_load_explicit(&c->x->reg_failed, memory_order_acquire);
	if (ret)
		return rmig_rd_conn_fail(c, ret, "%s: %s", c->label, c->x->reg_err.msg);
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
	if (seq > c->sq_done) {
		uint64_t cum = c->sq_cum[seq % c->sq_depth];

		/*
		 * Page data counts as sent once its WRITEs completed, i.e.
		 * landed: a caller estimating bandwidth from wire_bytes (QEMU's
		 * migration thread) must not see bytes that are only queued.
		 */
		rmig_count(&c->base.wire_bytes, cum - c->cum_done);
		c->cum_done = cum;
		c->sq_done = seq;
	}
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
			ret = c->on_recv(c, &wc[i]);
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
 * Make room for @bytes more WRITE payload: wait for the oldest WRs to
 * complete until at most inflight_max bytes would be outstanding. A WR
 * larger than that alone goes out once nothing else is in flight.
 */
static int data_room(struct rd_conn *c, uint64_t bytes)
{
	while (c->cum_posted - c->cum_done + bytes > c->inflight_max &&
	       c->sq_done < c->sq_next - 1) {
		/* a signaled WR at or after it is assured by rmig_rd_wait_done() */
		int ret = rmig_rd_wait_done(c, c->sq_done + 1, 0);

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
/* The next WR on the pending list, numbered, after waiting for room. */
static int next_wr(struct rd_conn *c, struct ibv_send_wr **wrp, uint64_t *seqp)
{
	int ret;

	ret = sq_room(c);
	if (ret)
		return ret;
	if (c->nbatch == RD_BATCH) {
		ret = rmig_rd_post_batch(c);
		if (ret)
			return ret;
	}
	*seqp = c->sq_next++;
	*wrp = &c->batch[c->nbatch];
	memset(*wrp, 0, sizeof(**wrp));
	(*wrp)->wr_id = *seqp;
	return 0;
}

int rmig_rd_add_wr(struct rd_conn *c, enum rd_op op, const struct ibv_sge *sge, unsigned int nsge,
		   uint64_t raddr, uint32_t rkey, bool force_signal, uint64_t *seqp)
{
	struct ibv_send_wr *wr;
	uint64_t seq, bytes = 0;
	int ret;

	if (op == RD_OP_WRITE) {
		for (unsigned int i = 0; i < nsge; i++)
			bytes += sge[i].length;
		ret = data_room(c, bytes);
		if (ret)
			return ret;
	}
	ret = next_wr(c, &wr, &seq);
	if (ret)
		return ret;
	if (nsge)
		memcpy(c->batch_sge[c->nbatch], sge, nsge * sizeof(*sge));
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
	c->cum_posted += bytes;
	c->sq_cum[seq % c->sq_depth] = c->cum_posted;
	c->unsig_bytes += bytes;
	/* signaled often enough in bytes too, so data_room() waits are short */
	if (force_signal || ++c->unsig >= c->signal_every ||
	    c->unsig_bytes >= c->inflight_max / 4) {
		wr->send_flags = IBV_SEND_SIGNALED;
		c->unsig = 0;
		c->unsig_bytes = 0;
		c->last_signaled = seq;
	}
	if (seqp)
		*seqp = seq;
	return 0;
}

/*
 * Queue a signaled IBV_WR_BIND_MW of @mw (type 2) over @bi, with the new
 * rkey @rkey, on this conn's QP: it is counted in the send queue as any WR.
 */
int rmig_rd_add_bind(struct rd_conn *c, struct ibv_mw *mw, uint32_t rkey,
		     const struct ibv_mw_bind_info *bi, uint64_t *seqp)
{
	struct ibv_send_wr *wr;
	uint64_t seq;
	int ret;

	ret = next_wr(c, &wr, &seq);
	if (ret)
		return ret;
	c->nbatch++;
	wr->opcode = IBV_WR_BIND_MW;
	wr->bind_mw.mw = mw;
	wr->bind_mw.rkey = rkey;
	wr->bind_mw.bind_info = *bi;
	wr->send_flags = IBV_SEND_SIGNALED;
	c->sq_ops[seq % c->sq_depth] = (uint8_t)RD_OP_BIND;
	c->sq_cum[seq % c->sq_depth] = c->cum_posted;
	c->unsig = 0;
	c->unsig_bytes = 0;
	c->last_signaled = seq;
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

	if (c->have_chan_remote && c->chan_remote.nslices) {
		raddr = c->chan_remote.slices[0].addr;
		rkey = c->chan_remote.slices[0].rkey;
	} else if (x->have_remote && x->remote.nslices) {
		raddr = x->remote.slices[0].addr;
		rkey = x->remote.slices[0].rkey;
	}
	return rmig_rd_add_wr(c, RD_OP_NOP, NULL, 0, raddr, rkey, true, NULL);
}

/* ------------------------------------------------------------ waiting */

static void qp_to_error(struct rd_conn *c)
{
	struct ibv_qp_attr a = {.qp_state = IBV_QPS_ERR};

	/* flushes what is outstanding now instead of after the retry timeout */
	if (c->qp)
		c->v->modify_qp(c->qp, &a, IBV_QP_STATE);
}

static void drain_cq_events(struct rd_conn *c)
{
	struct ibv_cq *cq;
	void *ctx;

	while (!c->v->get_cq_event(c->cc, &cq, &ctx)) {
		/* acking takes a lock in libibverbs: batch it */
		if (++c->cq_unacked >= 64) {
			c->v->ack_cq_events(c->cq, c->cq_unacked);
			c->cq_unacked = 0;
		}
	}
}

static int conn_cm_events(struct rd_conn *c)
{
	struct rdma_cm_event *ev;
	int ret;

	while (!(ret = c->v->get_cm_event(c->ech, &ev))) {
		enum rdma_cm_event_type type = ev->event;

		c->v->ack_cm_event(ev);
		if (type == RDMA_CM_EVENT_DISCONNECTED && !c->peer_closed) {
			c->peer_closed = true;
			qp_to_error(c);
		} else if (type == RDMA_CM_EVENT_DEVICE_REMOVAL) {
			return rmig_rd_conn_fail(c, -ENODEV, "%s: RDMA device removed", c->label);
		}
	}
	if (ret != -EAGAIN)
		return rmig_rd_conn_fail(c, ret, "%s: rdma_get_cm_event failed: %s", c->label,
					 strerror(-ret));
	return 0;
}

__thread enum rd_role rmig_rd_role;

/* Under mu: wake the thread sleeping as @role, if there is one. */
void rmig_rd_kick(struct rd_conn *c, enum rd_role role)
{
	uint64_t one = 1;

	if (!c->sleeping[role])
		return;
	if (write(c->kick[role], &one, sizeof(one)) < 0) {
		/* only EAGAIN is possible, and then it is readable already */
	}
}

/* Sleep in poll() without mu, as rmig_rd_role; returns poll()'s result. */
static int sleep_unlocked(struct rd_conn *c, struct pollfd *pfd, unsigned int n, int ms)
{
	enum rd_role me = rmig_rd_role;
	int ret, err;

	c->sleeping[me] = true;
	pthread_mutex_unlock(&c->mu);
	ret = poll(pfd, n, ms);
	err = errno;
	pthread_mutex_lock(&c->mu);
	c->sleeping[me] = false;
	errno = err;
	return ret;
}

/*
 * Make progress: process completions, or sleep until one arrives, an
 * rdma_cm event comes, the conn is shut down or @deadline_ns (0: none)
 * passes. Returns 0 when the caller should look at its condition again,
 * -ETIMEDOUT, or the conn's failure. While idle it probes the peer every
 * RD_KEEPALIVE_MS, so a dead peer fails the wait (IBV_WC_RETRY_EXC_ERR)
 * even when nothing else is outstanding.
 */
int rmig_rd_conn_wait(struct rd_conn *c, uint64_t deadline_ns)
{
	enum rd_role me = rmig_rd_role;
	enum rd_role other = me == RD_ROLE_RECV ? RD_ROLE_SEND : RD_ROLE_RECV;
	struct pollfd pfd[5];
	uint64_t now, drained;
	int n, ret, ms;

	for (int i = 0; i < RD_SPIN; i++) {
		n = rmig_rd_poll(c);
		if (n)
			return n < 0 ? n : 0;
	}
	ret = rmig_rd_check(c);
	if (ret)
		return ret;
	ret = c->v->req_notify_cq(c->cq, 0);
	if (ret)
		return rmig_rd_conn_fail(c, ret, "%s: ibv_req_notify_cq failed: %s", c->label,
					 strerror(-ret));
	/* a completion that arrived before arming raises no event: look once more */
	n = rmig_rd_poll(c);
	if (n)
		return n < 0 ? n : 0;

	now = rmig_now_ns();
	if (deadline_ns && now >= deadline_ns)
		return -ETIMEDOUT;
	ms = RD_KEEPALIVE_MS;
	if (deadline_ns && (deadline_ns - now + 999999) / 1000000 < (uint64_t)ms)
		ms = (int)((deadline_ns - now + 999999) / 1000000);
	pfd[0] = (struct pollfd){.fd = c->cq_fd, .events = POLLIN};
	pfd[1] = (struct pollfd){.fd = c->cm_fd, .events = POLLIN};
	pfd[2] = (struct pollfd){.fd = c->efd, .events = POLLIN};
	pfd[3] = (struct pollfd){.fd = c->xefd, .events = POLLIN};
	pfd[4] = (struct pollfd){.fd = c->kick[me], .events = POLLIN};
	n = sleep_unlocked(c, pfd, 5, ms);
	if (n < 0)
		return errno == EINTR ? 0
				      : rmig_rd_conn_fail(c, -errno, "%s: poll failed: %s",
							  c->label, strerror(errno));
	if (pfd[4].revents && read(c->kick[me], &drained, sizeof(drained)) < 0) {
		/* EAGAIN: drained already */
	}
	if (pfd[2].revents || pfd[3].revents)
		return rmig_rd_check(c);
	if (pfd[0].revents) {
		drain_cq_events(c);
		/*
		 * The event may have been the other thread's, sleeping on the
		 * CQ too: re-arm for it, then poll, which kicks it if it took
		 * anything (a completion before the re-arm raises no event).
		 */
		if (c->sleeping[other]) {
			ret = c->v->req_notify_cq(c->cq, 0);
			if (ret)
				return rmig_rd_conn_fail(c, ret, "%s: ibv_req_notify_cq failed: %s",
							 c->label, strerror(-ret));
		}
		ret = rmig_rd_poll(c);
		if (ret < 0)
			return ret;
	}
	if (pfd[1].revents) {
		ret = conn_cm_events(c);
		rmig_rd_kick(c, other); /* a disconnect concerns both threads */
		if (ret)
			return ret;
	}
	if (n)
		return 0;
	now = rmig_now_ns();
	if (deadline_ns && now >= deadline_ns)
		return -ETIMEDOUT;
	/*
	 * Probe when no signaled WR is outstanding: unsignaled WRs that
	 * completed (credit returns, RELEASE) never advance sq_done, so
	 * "sq_posted == sq_done" would switch keepalive off for good.
	 */
	if (c->established && !c->peer_closed && !c->nbatch && c->last_signaled <= c->sq_done &&
	    now - c->last_rx_ns >= RD_KEEPALIVE_MS * 1000000ull) {
		c->last_rx_ns = now;
		ret = rmig_rd_probe(c);
		if (!ret)
			ret = rmig_rd_post_batch(c);
		return ret;
	}
	return 0;
}
