// SPDX-License-Identifier: MIT
/*
 * The source half: the public rmig_src_* API on top of the scheduler and a
 * transport. The main thread fills the RAM slot; channel threads (sched.c)
 * call src_transmit()/src_sync() here, which frame messages and hand them to
 * the channel's conn.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "barrier.h"
#include "core.h"
#include "src_live.h"
#include "zero.h"

enum src_state { SRC_NEW, SRC_CONNECTED, SRC_FINISHED };

struct src_chan {
	struct rmig_conn *conn;
	uint64_t seq;
	uint64_t in_seq;	/* messages received back (RELEASE) */
	uint64_t synced;	/* placed data: last round whose SYNC went out on this channel */
	uint64_t release_next;	/* the next RELEASE expected: rounds go 1, 2, ... */
	struct rmig_totals tot;
	uint8_t *hdrbuf; /* header + RAM body: offsets of one batch */
	struct rmig_seg *segs;
} __attribute__((aligned(RMIG_CACHELINE)));

struct rmig_src {
	struct rmig_opts opts;
	struct rmig_err err;
	struct rmig_block *blocks;
	unsigned int nblocks;
	const struct rmig_xport_ops *xops;
	struct rmig_xport *xp;
	struct rmig_conn *ctl;
	uint64_t ctl_seq;
	bool peer_postcopy; /* WELCOME carried RMIG_WF_POSTCOPY */
	struct src_chan *chans;
	unsigned int nchan;
	struct rmig_sched *sched;
	struct rmig_payload *ram_slot;
	/* device-state producers share one slot, one at a time */
	pthread_mutex_t dev_lock;
	struct rmig_payload *dev_slot;
	uint64_t dev_seq;
	_Atomic uint64_t round; /* written by the main thread, read by get_stats */
	uint8_t uuid[RMIG_UUID_LEN];
	enum src_state state;
	bool placed;
	bool peer_checked;
	bool peer_aborted; /* the destination told us why it stopped */
	bool abort_sent;   /* we told the destination why we stopped */
	bool greeted;	   /* the destination accepted our HELLO: it listens for ABORT */
	_Atomic bool cancelled;
	/*
	 * rmig_src_cancel() may run on any thread while rmig_src_connect() is
	 * still building what it has to shut down: connect publishes xp, ctl,
	 * chans/nchan, each channel's conn and sched under conn_lock, and
	 * cancel reads them under it (the main thread, their only writer,
	 * reads them without it).
	 */
	pthread_mutex_t conn_lock;
};

/* Record a failure and stop everything; returns the recorded code. */
static int src_fail(struct rmig_src *src, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int src_fail(struct rmig_src *src, int code, const char *fmt, ...)
{
	va_list ap;
	int ret;

	va_start(ap, fmt);
	ret = rmig_err_vset(&src->err, code, fmt, ap);
	va_end(ap);
	if (src->sched)
		rmig_sched_abort(src->sched, ret);
	return ret;
}

/* Main thread, or under conn_lock. */
static void src_shutdown_conns(struct rmig_src *src)
{
	for (unsigned int i = 0; i < src->nchan; i++)
		if (src->chans[i].conn)
			src->chans[i].conn->ops->shutdown(src->chans[i].conn);
	if (src->xp)
		src->xops->shutdown(src->xp);
}

/*
 * Main thread: tell the destination why this source stopped, once, so it
 * reports the real cause instead of "connection closed by the peer". Not
 * when the destination stopped first (it knows), nor after a cancel (the
 * control connection is shut down; cancel may come from any thread). @msg
 * NULL: the recorded failure's text. Best effort: a dead peer fails the send.
 */
static void src_tell_peer(struct rmig_src *src, int code, const char *msg)
{
	char buf[RMIG_ERRMSG_MAX];

	if (!src->ctl || !src->greeted || src->abort_sent || src->peer_aborted ||
	    src->state == SRC_FINISHED || rmig_load_relaxed(&src->cancelled))
		return;
	src->abort_sent = true;
	if (!msg) {
		rmig_err_msg(&src->err, buf, sizeof(buf));
		msg = buf;
	}
	rmig_status_send(src->ctl, RMIG_MSG_ABORT, src->ctl_seq++, code < 0 ? code : -ECANCELED,
			 msg, NULL, 0);
}

/*
 * A channel failed, most likely because the destination gave up and closed
 * it. Its reason, if it sent one, is waiting on the control connection:
 * read it once (main thread only) so the error names the real problem.
 */
static int src_error(struct rmig_src *src)
{
	int code = rmig_err_code(&src->err);
	char why[RMIG_ERRMSG_MAX], msg[RMIG_ERRMSG_MAX];
	const void *info;
	size_t info_len;
	struct rmig_hdr h;
	void *body = NULL;
	int status, skipped = 0;
	bool got;

	if (!code && src->sched)
		code = rmig_sched_error(src->sched);
	if (!code || src->peer_checked || !src->ctl)
		return code;
	src->peer_checked = true;
	if (rmig_load_relaxed(&src->cancelled))
		return code;
	/* Switchover acks may be queued ahead of the reason. */
	do {
		free(body);
		body = NULL;
		got = rmig_msg_recv(src->ctl, 500, 8192, &h, &body, why, sizeof(why)) == 0;
	} while (got && h.type == RMIG_MSG_SWITCHOVER_ACK && ++skipped < 1024);
	if (got && (h.type == RMIG_MSG_ABORT || h.type == RMIG_MSG_RESULT) &&
	    rmig_status_parse(body, h.len, &status, msg, sizeof(msg), &info, &info_len) == 0 &&
	    status < 0) {
		/* The destination's reason comes first; ours was a consequence. */
		pthread_mutex_lock(&src->err.lock);
		snprintf(src->err.msg, sizeof(src->err.msg), "destination aborted: %.400s", msg);
		pthread_mutex_unlock(&src->err.lock);
		src->peer_aborted = true;
	}
	free(body);
	/* The failure is ours: the destination must hear why, not just see us go. */
	src_tell_peer(src, code, NULL);
	return code;
}

/* ---- channel thread callbacks ------------------------------------------ */

/*
 * RELEASE flow (placing transports only).
 *
 * One-sided writes would land in destination RAM while the destination's
 * caller is still looking at the last round, so a channel waits for the
 * destination to release every round it synced before it places more data:
 * a round trip per channel per round with data.
 *
 * Rounds without data on a channel (an idle guest, device state only, a
 * long switchover-ack wait, per-section syncs) are released too, one
 * RELEASE each, and every one of them occupies a receive buffer on this
 * side until it is read: a stream with credits (rdma) lets the destination
 * send only as many as the source has buffers. So the channel must read
 * them whether or not it will place data again:
 *  - before each SYNC it reads every RELEASE that has already arrived
 *    (src_drain_releases, which never waits), and
 *  - it never has more than RMIG_RELEASE_WINDOW rounds unreleased: before
 *    SYNC r goes out, RELEASE r - RMIG_RELEASE_WINDOW must have been read,
 *    waiting for it if need be.
 * At most RMIG_RELEASE_WINDOW RELEASEs are thus ever unread, whatever the
 * number of rounds, and a placing transport must buffer at least
 * RMIG_RELEASE_WINDOW + 2 messages toward a reader (core/xport.h). The wait
 * in the second rule depends only on the destination's caller moving on
 * (its next rmig_dst_wait_sync() releases), never on this source.
 */
static int src_release_recv(struct rmig_src *src, unsigned int id, int timeout_ms)
{
	struct src_chan *ch = &src->chans[id];
	uint8_t raw[sizeof(struct rmig_wire_hdr)], body[sizeof(struct rmig_wire_sync)];
	char why[RMIG_ERRMSG_MAX];
	struct rmig_hdr h;
	int ret;

	ret = ch->conn->ops->recv(ch->conn, raw, sizeof(raw), timeout_ms);
	if (ret == -ETIMEDOUT && timeout_ms >= 0)
		return -EAGAIN;
	if (ret)
		return src_fail(src, ret,
				"channel %u: waiting for the destination to release round %llu: %s",
				id, (unsigned long long)ch->release_next, ch->conn->recv_err.msg);
	ret = rmig_hdr_decode(raw, &h, why, sizeof(why));
	if (ret)
		return src_fail(src, ret, "channel %u: from the destination: %s", id, why);
	if (h.type != RMIG_MSG_RELEASE || h.seq != ch->in_seq || h.len != sizeof(body))
		return src_fail(src, -EPROTO,
				"channel %u: expected RELEASE of round %llu, got %s (message %llu, %u bytes)",
				id, (unsigned long long)ch->release_next, rmig_msg_name(h.type),
				(unsigned long long)h.seq, h.len);
	/* the body came in the same message as the header: this does not wait */
	ret = ch->conn->ops->recv(ch->conn, body, sizeof(body), -1);
	if (ret)
		return src_fail(src, ret, "channel %u: reading RELEASE: %s", id, ch->conn->recv_err.msg);
	if (rmig_get_be64(body) != ch->release_next || ch->release_next > ch->synced)
		return src_fail(src, -EPROTO,
				"channel %u: expected RELEASE of round %llu, got round %llu (last SYNC %llu)",
				id, (unsigned long long)ch->release_next,
				(unsigned long long)rmig_get_be64(body),
				(unsigned long long)ch->synced);
	ch->in_seq++;
	ch->release_next++;
	return 0;
}

/* Read RELEASEs, waiting, until every round up to @upto is released. */
static int src_await_release(struct rmig_src *src, unsigned int id, uint64_t upto)
{
	struct src_chan *ch = &src->chans[id];
	int ret = 0;

	while (!ret && ch->release_next <= upto)
		ret = src_release_recv(src, id, -1);
	return ret;
}

/* Read the RELEASEs that have already arrived; never waits. */
static int src_drain_releases(struct rmig_src *src, unsigned int id)
{
	struct src_chan *ch = &src->chans[id];
	int ret = 0;

	while (!ret && ch->release_next <= ch->synced)
		ret = src_release_recv(src, id, 0);
	return ret == -EAGAIN ? 0 : ret;
}

static int src_send_ram(struct rmig_src *src, unsigned int id, struct rmig_payload *p)
{
	struct src_chan *ch = &src->chans[id];
	struct rmig_ram_batch *b = &p->ram;
	struct rmig_block *blk = &src->blocks[b->block];
	uint8_t *body = ch->hdrbuf + sizeof(struct rmig_wire_hdr);
	uint32_t n = b->num, nsegs = 0;
	size_t len = sizeof(struct rmig_wire_ram) + (size_t)n * 8;
	int ret;

	if (src->placed) {
		ret = src_await_release(src, id, ch->synced);
		if (ret)
			return ret;
	}
	if (src->opts.flags & RMIG_F_NO_ZERO_DETECT) {
		b->normal = n;
		b->zero = 0;
	} else {
		rmig_zero_detect(b, blk->host, blk->page_size);
	}

	/* Contiguous data pages become one segment: one iovec, or one RDMA WRITE. */
	for (uint32_t i = 0; i < b->normal; i++) {
		uint64_t off = b->offsets[i];
		struct rmig_seg *prev = nsegs ? &ch->segs[nsegs - 1] : NULL;

		if (prev && prev->offset + prev->len == off) {
			prev->len += blk->page_size;
			continue;
		}
		ch->segs[nsegs++] = (struct rmig_seg){
			.local = blk->host + off, .offset = off, .len = blk->page_size,
			.block = b->block,
		};
	}

	rmig_hdr_encode(ch->hdrbuf, RMIG_MSG_RAM, src->placed ? RMIG_WF_PLACED : 0, (uint32_t)len,
			ch->seq++);
	rmig_put_be32(body + RMIG_OFF(rmig_wire_ram, block), b->block);
	rmig_put_be32(body + RMIG_OFF(rmig_wire_ram, normal), b->normal);
	rmig_put_be32(body + RMIG_OFF(rmig_wire_ram, zero), b->zero);
	rmig_put_be32(body + RMIG_OFF(rmig_wire_ram, pad), 0);
	for (uint32_t i = 0; i < n; i++)
		rmig_put_be64(body + sizeof(struct rmig_wire_ram) + (size_t)i * 8, b->offsets[i]);

	ret = ch->conn->ops->send(ch->conn, ch->hdrbuf, sizeof(struct rmig_wire_hdr) + len,
				  ch->segs, nsegs);
	if (ret)
		return src_fail(src, ret, "channel %u: sending %u pages of '%s': %s", id, n,
				blk->name, ch->conn->err.msg);
	rmig_add_relaxed(&ch->tot.packets, 1);
	rmig_add_relaxed(&ch->tot.normal_pages, b->normal);
	rmig_add_relaxed(&ch->tot.zero_pages, b->zero);
	rmig_add_relaxed(&ch->tot.data_bytes, (uint64_t)b->normal * blk->page_size);
	return 0;
}

/*
 * Device-state layout in the slot's buffer: room for header + DEV body + id
 * first (filled here), the caller's bytes behind it (copied at queue time),
 * so the whole message goes out as one stream write.
 */
static size_t dev_room(size_t idlen)
{
	return sizeof(struct rmig_wire_hdr) + sizeof(struct rmig_wire_dev) + rmig_pad8(idlen);
}

static int src_send_dev(struct rmig_src *src, unsigned int id, struct rmig_payload *p)
{
	struct src_chan *ch = &src->chans[id];
	struct rmig_dev_chunk *d = &p->dev;
	size_t idlen = strlen(d->idstr), room = dev_room(idlen);
	uint8_t *body = d->data + sizeof(struct rmig_wire_hdr);
	int ret;

	memset(d->data, 0, room);
	rmig_hdr_encode(d->data, RMIG_MSG_DEV, 0,
			(uint32_t)(room - sizeof(struct rmig_wire_hdr) + d->len), ch->seq++);
	rmig_put_be64(body + RMIG_OFF(rmig_wire_dev, seq), d->seq);
	rmig_put_be32(body + RMIG_OFF(rmig_wire_dev, instance), d->instance);
	rmig_put_be16(body + RMIG_OFF(rmig_wire_dev, idlen), (uint16_t)idlen);
	rmig_put_be32(body + RMIG_OFF(rmig_wire_dev, len), (uint32_t)d->len);
	memcpy(body + sizeof(struct rmig_wire_dev), d->idstr, idlen);

	ret = ch->conn->ops->send(ch->conn, d->data, room + d->len, NULL, 0);
	if (ret)
		return src_fail(src, ret, "channel %u: sending device state '%s': %s", id,
				d->idstr, ch->conn->err.msg);
	rmig_add_relaxed(&ch->tot.packets, 1);
	rmig_add_relaxed(&ch->tot.dev_chunks, 1);
	rmig_add_relaxed(&ch->tot.dev_bytes, d->len);
	return 0;
}

static int src_transmit(void *ctx, unsigned int id, struct rmig_payload *p)
{
	struct rmig_src *src = ctx;

	switch (p->type) {
	case RMIG_PAYLOAD_RAM:
		return src_send_ram(src, id, p);
	case RMIG_PAYLOAD_DEV:
		return src_send_dev(src, id, p);
	default:
		return src_fail(src, -EINVAL, "channel %u: empty payload handed over", id);
	}
}

static int src_sync(void *ctx, unsigned int id, unsigned int kind, uint64_t round)
{
	struct rmig_src *src = ctx;
	struct src_chan *ch = &src->chans[id];
	struct rmig_conn *c = ch->conn;
	uint8_t body[sizeof(struct rmig_wire_fin)];
	int ret = 0;

	/*
	 * The fence goes out before we wait for our own completions, so the
	 * destination can move on while the source drains.
	 */
	if (kind == RMIG_SCHED_SYNC_FENCE) {
		if (src->placed) {
			/* RELEASE flow: read what came, keep the window (see above) */
			ret = src_drain_releases(src, id);
			if (!ret && round > RMIG_RELEASE_WINDOW)
				ret = src_await_release(src, id, round - RMIG_RELEASE_WINDOW);
			if (ret)
				return ret;
		}
		rmig_put_be64(body, round);
		ret = rmig_msg_send(c, RMIG_MSG_SYNC, 0, ch->seq++, body, sizeof(struct rmig_wire_sync));
		if (!ret)
			rmig_add_relaxed(&ch->tot.syncs, 1);
		if (!ret && src->placed)
			ch->synced = round;
	} else if (kind == RMIG_SCHED_SYNC_FIN) {
		rmig_put_be64(body + RMIG_OFF(rmig_wire_fin, packets), rmig_load_relaxed(&ch->tot.packets));
		rmig_put_be64(body + RMIG_OFF(rmig_wire_fin, normal_pages),
			      rmig_load_relaxed(&ch->tot.normal_pages));
		rmig_put_be64(body + RMIG_OFF(rmig_wire_fin, zero_pages),
			      rmig_load_relaxed(&ch->tot.zero_pages));
		rmig_put_be64(body + RMIG_OFF(rmig_wire_fin, data_bytes),
			      rmig_load_relaxed(&ch->tot.data_bytes));
		rmig_put_be64(body + RMIG_OFF(rmig_wire_fin, dev_chunks),
			      rmig_load_relaxed(&ch->tot.dev_chunks));
		rmig_put_be64(body + RMIG_OFF(rmig_wire_fin, dev_bytes),
			      rmig_load_relaxed(&ch->tot.dev_bytes));
		rmig_put_be64(body + RMIG_OFF(rmig_wire_fin, syncs), rmig_load_relaxed(&ch->tot.syncs));
		ret = rmig_msg_send(c, RMIG_MSG_FIN, 0, ch->seq++, body, sizeof(body));
	}
	if (!ret)
		ret = c->ops->flush(c);
	if (ret)
		return src_fail(src, ret, "channel %u: sync: %s", id, c->err.msg);
	return 0;
}

static const struct rmig_sched_cb src_sched_cb = {
	.transmit = src_transmit,
	.sync = src_sync,
};

/* ---- public API -------------------------------------------------------- */

int rmig_src_create(const struct rmig_opts *opts, struct rmig_src **srcp)
{
	struct rmig_src *src;
	int ret;

	if (!srcp)
		return -EINVAL;
	src = calloc(1, sizeof(*src));
	if (!src)
		return -ENOMEM;
	ret = rmig_opts_copy(&src->opts, opts, true);
	if (ret) {
		free(src);
		return ret;
	}
	rmig_err_init(&src->err);
	pthread_mutex_init(&src->dev_lock, NULL);
	pthread_mutex_init(&src->conn_lock, NULL);
	atomic_init(&src->cancelled, false);
	*srcp = src;
	return 0;
}

int rmig_src_add_block(struct rmig_src *src, const struct rmig_block_desc *desc)
{
	if (!src)
		return -EINVAL;
	if (src->state != SRC_NEW)
		return -EBUSY;
	return rmig_blocks_add(&src->blocks, &src->nblocks, desc);
}

static int src_handshake(struct rmig_src *src, const char *uri)
{
	char why[RMIG_ERRMSG_MAX], msg[RMIG_ERRMSG_MAX];
	struct rmig_hello hello = {
		.channels = src->nchan,
		.pages_per_packet = src->opts.pages_per_packet,
		.flags = 0,
	};
	const void *info;
	size_t len, info_len;
	struct rmig_hdr h;
	void *body = NULL;
	int ret, status;

	memcpy(hello.uuid, src->uuid, sizeof(src->uuid));
	ret = rmig_hello_encode(&hello, src->blocks, src->nblocks, &body, &len);
	if (ret)
		return src_fail(src, ret, "out of memory");
	ret = rmig_msg_send(src->ctl, RMIG_MSG_HELLO, 0, src->ctl_seq++, body, len);
	free(body);
	body = NULL;
	if (ret)
		return src_fail(src, ret, "%s: sending HELLO: %s", uri, src->ctl->err.msg);

	ret = rmig_msg_recv(src->ctl, src->opts.timeout_ms, RMIG_PEER_INFO_MAX + 8192, &h, &body,
			    why, sizeof(why));
	if (ret)
		return src_fail(src, ret, "%s: waiting for the destination's WELCOME: %s", uri, why);
	if (h.type != RMIG_MSG_WELCOME && h.type != RMIG_MSG_ABORT) {
		ret = src_fail(src, -EPROTO, "%s: expected WELCOME, got %s", uri, rmig_msg_name(h.type));
		goto out;
	}
	ret = rmig_status_parse(body, h.len, &status, msg, sizeof(msg), &info, &info_len);
	if (ret) {
		ret = src_fail(src, ret, "%s: bad WELCOME: %s", uri, msg);
		goto out;
	}
	if (status < 0) {
		ret = src_fail(src, status, "destination refused the migration: %s", msg);
		goto out;
	}
	src->peer_postcopy = h.flags & RMIG_WF_POSTCOPY;
	src->greeted = true;
	ret = src->xops->set_peer_info(src->xp, info, info_len);
	if (ret) {
		ret = src_fail(src, ret, "%s: %s", uri, src->xp->err.msg);
		goto out;
	}
out:
	free(body);
	return ret;
}

/*
 * A control message that must be RESULT (or ABORT): 0 if the destination's
 * status is 0, else the recorded failure, its text prefixed by @refused.
 * Frees @body.
 */
static int src_check_result(struct rmig_src *src, const struct rmig_hdr *h, void *body,
			    const char *refused)
{
	char msg[RMIG_ERRMSG_MAX];
	const void *info;
	size_t info_len;
	int ret, status;

	if (h->type != RMIG_MSG_RESULT && h->type != RMIG_MSG_ABORT)
		ret = src_fail(src, -EPROTO, "expected RESULT, got %s", rmig_msg_name(h->type));
	else if ((ret = rmig_status_parse(body, h->len, &status, msg, sizeof(msg), &info, &info_len)))
		ret = src_fail(src, ret, "bad RESULT: %s", msg);
	else if (status < 0) {
		src->peer_aborted = true;
		ret = src_fail(src, status, "%s: %s", refused, msg);
	}
	free(body);
	return ret;
}

/* After all channels are open, the destination confirms it accepted every one. */
static int src_wait_ready(struct rmig_src *src)
{
	char why[RMIG_ERRMSG_MAX];
	struct rmig_hdr h;
	void *body = NULL;
	int ret;

	ret = rmig_msg_recv(src->ctl, src->opts.timeout_ms, 8192, &h, &body, why, sizeof(why));
	if (ret)
		return src_fail(src, ret, "waiting for the destination to accept the channels: %s", why);
	return src_check_result(src, &h, body, "destination refused the channels");
}

/*
 * Publish what connect() just opened, for rmig_src_cancel(). A cancel that
 * came earlier found nothing to shut down: do it here, so it is not lost
 * (cancel stores cancelled before it takes conn_lock).
 */
static void src_publish_ctl(struct rmig_src *src, struct rmig_xport *xp, struct rmig_conn *ctl)
{
	pthread_mutex_lock(&src->conn_lock);
	src->xp = xp;
	src->ctl = ctl;
	if (rmig_load_relaxed(&src->cancelled)) {
		if (ctl)
			ctl->ops->shutdown(ctl);
		if (xp)
			src->xops->shutdown(xp);
	}
	pthread_mutex_unlock(&src->conn_lock);
}

static void src_publish_chan(struct rmig_src *src, unsigned int i, struct rmig_conn *conn)
{
	pthread_mutex_lock(&src->conn_lock);
	src->chans[i].conn = conn;
	if (conn && rmig_load_relaxed(&src->cancelled))
		conn->ops->shutdown(conn);
	pthread_mutex_unlock(&src->conn_lock);
}

int rmig_src_connect(struct rmig_src *src, const char *uri)
{
	struct rmig_xport_params params;
	struct rmig_msgbuf mb = { "" };
	struct rmig_xport *xp = NULL;
	struct rmig_conn *ctl = NULL;
	struct rmig_sched *sched;
	struct src_chan *chans;
	const char *addr;
	size_t hdrcap;
	int ret;

	if (!src || !uri)
		return -EINVAL;
	ret = rmig_err_code(&src->err);
	if (ret)
		return ret; /* a failed handle stays failed */
	if (src->state != SRC_NEW)
		return -EBUSY;
	if (!src->nblocks)
		return src_fail(src, -EINVAL, "no RAM blocks added before connect");
	ret = rmig_uri_parse(uri, &src->xops, &addr);
	if (ret == -EPROTONOSUPPORT)
		return src_fail(src, ret, "'%s': this build of rmig has no such transport", uri);
	if (ret)
		return src_fail(src, ret, "'%s' is not a URI rmig knows (tcp:HOST:PORT, rdma:HOST:PORT, file:PATH, null:)",
				uri);
	if ((src->opts.flags & RMIG_F_ZERO_COPY) && !(src->xops->caps & RMIG_XCAP_ZERO_COPY))
		return src_fail(src, -EINVAL, "zero copy is not supported by the %s transport",
				src->xops->name);
	src->placed = src->xops->caps & RMIG_XCAP_PLACES_DATA;
	if (getrandom(src->uuid, sizeof(src->uuid), 0) != sizeof(src->uuid))
		return src_fail(src, -EIO, "no random bytes for the session id");

	chans = aligned_alloc(RMIG_CACHELINE, sizeof(*chans) * src->opts.channels);
	if (!chans)
		return src_fail(src, -ENOMEM, "out of memory");
	memset(chans, 0, sizeof(*chans) * src->opts.channels);
	pthread_mutex_lock(&src->conn_lock);
	src->chans = chans;
	src->nchan = src->opts.channels;
	pthread_mutex_unlock(&src->conn_lock);
	hdrcap = sizeof(struct rmig_wire_hdr) + sizeof(struct rmig_wire_ram) +
		 (size_t)src->opts.pages_per_packet * 8;
	for (unsigned int i = 0; i < src->nchan; i++) {
		src->chans[i].release_next = 1;
		src->chans[i].hdrbuf = malloc(hdrcap);
		src->chans[i].segs = calloc(src->opts.pages_per_packet, sizeof(struct rmig_seg));
		if (!src->chans[i].hdrbuf || !src->chans[i].segs)
			return src_fail(src, -ENOMEM, "out of memory");
	}
	src->ram_slot = rmig_payload_alloc(src->opts.pages_per_packet);
	src->dev_slot = rmig_payload_alloc(src->opts.pages_per_packet);
	if (!src->ram_slot || !src->dev_slot)
		return src_fail(src, -ENOMEM, "out of memory");

	params = (struct rmig_xport_params){
		.opts = &src->opts, .blocks = src->blocks, .nblocks = src->nblocks,
		.channels = src->nchan,
	};
	ret = src->xops->connect(&params, addr, &xp, &ctl, &mb);
	src_publish_ctl(src, xp, ctl);
	if (ret)
		return src_fail(src, ret, "%s: %s", uri, mb.msg);

	if (!(src->xops->caps & RMIG_XCAP_SINK)) {
		ret = src_handshake(src, uri);
		if (ret)
			return ret;
	}
	for (unsigned int i = 0; i < src->nchan; i++) {
		struct rmig_wire_chan wc;
		uint8_t body[sizeof(wc)] = { 0 };

		struct rmig_conn *conn = NULL;

		ret = src->xops->connect_channel(src->xp, i, &conn);
		src_publish_chan(src, i, conn);
		if (ret)
			return src_fail(src, ret, "%s: opening channel %u: %s", uri, i, src->xp->err.msg);
		memcpy(body + RMIG_OFF(rmig_wire_chan, uuid), src->uuid, RMIG_UUID_LEN);
		rmig_put_be32(body + RMIG_OFF(rmig_wire_chan, channel), i);
		ret = rmig_msg_send(src->chans[i].conn, RMIG_MSG_CHAN, 0, src->chans[i].seq++, body,
				    sizeof(body));
		if (ret)
			return src_fail(src, ret, "%s: channel %u hello: %s", uri, i,
					src->chans[i].conn->err.msg);
	}
	if (!(src->xops->caps & RMIG_XCAP_SINK)) {
		ret = src_wait_ready(src);
		if (ret)
			return ret;
	}
	ret = rmig_sched_create(src->nchan, src->opts.pages_per_packet, &src_sched_cb, src,
				&sched);
	if (ret)
		return src_fail(src, ret, "starting channel threads: %s", strerror(-ret));
	pthread_mutex_lock(&src->conn_lock);
	src->sched = sched;
	if (rmig_load_relaxed(&src->cancelled))
		rmig_sched_abort(sched, -ECANCELED);
	pthread_mutex_unlock(&src->conn_lock);
	src->state = SRC_CONNECTED;
	return 0;
}

static inline int src_check(struct rmig_src *src)
{
	if (unlikely(src->state != SRC_CONNECTED)) {
		int code = rmig_err_code(&src->err);

		return code ? code : -ENOTCONN;
	}
	/* A channel may have failed since the last hand-over: stay failed. */
	if (unlikely(rmig_sched_error(src->sched)))
		return src_error(src);
	return 0;
}

int rmig_src_queue_page(struct rmig_src *src, unsigned int block, uint64_t offset)
{
	struct rmig_payload *slot = src->ram_slot;
	struct rmig_block *b;
	int ret;

	ret = src_check(src);
	if (unlikely(ret))
		return ret;
	if (unlikely(block >= src->nblocks))
		return -EINVAL;
	b = &src->blocks[block];
	if (unlikely(offset >= b->length || (offset & (b->page_size - 1))))
		return -EINVAL;

	if (slot->type == RMIG_PAYLOAD_RAM &&
	    (slot->ram.block != block || slot->ram.num == src->opts.pages_per_packet)) {
		ret = rmig_sched_send(src->sched, &src->ram_slot);
		if (unlikely(ret))
			return src_error(src);
		slot = src->ram_slot;
	}
	if (slot->type == RMIG_PAYLOAD_NONE) {
		slot->type = RMIG_PAYLOAD_RAM;
		slot->ram.block = block;
		slot->ram.num = 0;
	}
	slot->ram.offsets[slot->ram.num++] = offset;
	return 0;
}

int rmig_src_queue_device_state(struct rmig_src *src, const char *idstr, uint32_t instance,
				const void *data, size_t len)
{
	size_t idlen, room, chunk;
	struct rmig_dev_chunk *d;
	int ret = 0;

	if (!src || !idstr || (len && !data))
		return -EINVAL;
	idlen = strlen(idstr);
	if (idlen >= RMIG_IDSTR_MAX)
		return -EINVAL;
	ret = src_check(src);
	if (ret)
		return ret;
	room = dev_room(idlen);

	pthread_mutex_lock(&src->dev_lock);
	/* A zero-length state is still one chunk, so the destination sees it. */
	do {
		chunk = len > RMIG_DEV_CHUNK_MAX ? RMIG_DEV_CHUNK_MAX : len;
		d = &src->dev_slot->dev;
		if (d->cap < room + chunk) {
			uint8_t *nd = realloc(d->data, room + chunk);

			if (!nd) {
				ret = -ENOMEM;
				break;
			}
			d->data = nd;
			d->cap = room + chunk;
		}
		src->dev_slot->type = RMIG_PAYLOAD_DEV;
		memcpy(d->idstr, idstr, idlen + 1);
		d->instance = instance;
		d->seq = src->dev_seq++;
		d->len = chunk;
		if (chunk)
			memcpy(d->data + room, data, chunk);
		ret = rmig_sched_send(src->sched, &src->dev_slot);
		if (ret) {
			rmig_payload_reset(src->dev_slot);
			break;
		}
		data = (const uint8_t *)data + chunk;
		len -= chunk;
	} while (len);
	pthread_mutex_unlock(&src->dev_lock);
	return ret;
}

int rmig_src_sync(struct rmig_src *src, enum rmig_sync_kind kind)
{
	int ret;

	if (!src || (kind != RMIG_SYNC_LOCAL && kind != RMIG_SYNC_ALL))
		return -EINVAL;
	ret = src_check(src);
	if (ret)
		return ret;
	if (!rmig_payload_empty(src->ram_slot)) {
		ret = rmig_sched_send(src->sched, &src->ram_slot);
		if (ret)
			return src_error(src);
	}
	if (kind == RMIG_SYNC_ALL)
		ret = rmig_sched_sync(src->sched, RMIG_SCHED_SYNC_FENCE, rmig_add_relaxed(&src->round, 1) + 1);
	else
		ret = rmig_sched_sync(src->sched, RMIG_SCHED_SYNC_LOCAL, rmig_load_relaxed(&src->round));
	return ret ? src_error(src) : 0;
}

int rmig_src_finish(struct rmig_src *src)
{
	char why[RMIG_ERRMSG_MAX];
	uint8_t done[sizeof(struct rmig_wire_done)];
	struct rmig_hdr h;
	void *body = NULL;
	int ret;

	if (!src)
		return -EINVAL;
	ret = src_check(src);
	if (ret)
		return ret;
	if (!rmig_payload_empty(src->ram_slot)) {
		ret = rmig_sched_send(src->sched, &src->ram_slot);
		if (ret)
			return src_error(src);
	}
	ret = rmig_sched_sync(src->sched, RMIG_SCHED_SYNC_FIN, rmig_load_relaxed(&src->round));
	if (ret)
		return src_error(src);
	if (src->xops->caps & RMIG_XCAP_SINK) {
		ret = src->xops->finish(src->xp);
		if (ret)
			return src_fail(src, ret, "finishing: %s", src->xp->err.msg);
		src->state = SRC_FINISHED;
		return 0;
	}

	rmig_put_be64(done + RMIG_OFF(rmig_wire_done, rounds), rmig_load_relaxed(&src->round));
	rmig_put_be64(done + RMIG_OFF(rmig_wire_done, dev_chunks), src->dev_seq);
	rmig_put_be64(done + RMIG_OFF(rmig_wire_done, channels), src->nchan);
	ret = rmig_msg_send(src->ctl, RMIG_MSG_DONE, 0, src->ctl_seq++, done, sizeof(done));
	if (ret)
		return src_fail(src, ret, "sending DONE: %s", src->ctl->err.msg);

	/* Switchover acks sent before the verdict have nothing left to wait for. */
	while ((ret = rmig_msg_recv(src->ctl, src->opts.timeout_ms, 8192, &h, &body, why,
				    sizeof(why))) == 0 &&
	       h.type == RMIG_MSG_SWITCHOVER_ACK) {
		free(body);
		body = NULL;
	}
	if (ret)
		return src_fail(src, ret, "waiting for the destination's verdict: %s", why);
	ret = src_check_result(src, &h, body, "destination did not confirm the migration");
	if (!ret)
		src->state = SRC_FINISHED;
	return ret;
}

/* ---- for the live engine (src_live.h) ------------------------------------ */

int rmig_src_live_info(struct rmig_src *src, const struct rmig_block **blocks,
		       unsigned int *nblocks, bool *has_peer)
{
	if (!src || src->state != SRC_CONNECTED)
		return -ENOTCONN;
	*blocks = src->blocks;
	*nblocks = src->nblocks;
	*has_peer = src->ctl != NULL;
	return 0;
}

void rmig_src_revoke(struct rmig_src *src)
{
	if (src->xp)
		src->xops->revoke(src->xp);
}

bool rmig_src_peer_postcopy(struct rmig_src *src)
{
	return src->peer_postcopy;
}

int rmig_src_pull_info(struct rmig_src *src, void *buf, size_t *len)
{
	int ret;

	if (!(src->xops->caps & RMIG_XCAP_PULL) || !(src->opts.flags & RMIG_F_POSTCOPY))
		return 1;
	ret = src->xops->pull_info(src->xp, buf, len);
	if (ret)
		return rmig_err_set(&src->err, ret, "postcopy: %s", src->xp->err.msg);
	return 0;
}

int rmig_src_peer_error(struct rmig_src *src)
{
	return src_error(src);
}

static int src_parse_ack(const uint8_t *body, uint32_t len, struct rmig_src_ack *ack)
{
	uint16_t idlen;

	if (len < sizeof(struct rmig_wire_ack))
		return -EPROTO;
	idlen = rmig_get_be16(body + RMIG_OFF(rmig_wire_ack, idlen));
	if (idlen == 0 || idlen >= RMIG_IDSTR_MAX ||
	    len != sizeof(struct rmig_wire_ack) + rmig_pad8(idlen) ||
	    memchr(body + sizeof(struct rmig_wire_ack), '\0', idlen))
		return -EPROTO;
	ack->instance = rmig_get_be32(body + RMIG_OFF(rmig_wire_ack, instance));
	memcpy(ack->idstr, body + sizeof(struct rmig_wire_ack), idlen);
	ack->idstr[idlen] = '\0';
	return 0;
}

/* An ABORT read on the control connection: fail with the destination's reason. */
static int src_peer_abort(struct rmig_src *src, const void *body, uint32_t len)
{
	char msg[RMIG_ERRMSG_MAX];
	const void *info;
	size_t info_len;
	int status;

	src->peer_checked = true;
	src->peer_aborted = true;
	if (rmig_status_parse(body, len, &status, msg, sizeof(msg), &info, &info_len) ||
	    status >= 0)
		return src_fail(src, -EPROTO, "destination sent a malformed ABORT");
	return src_fail(src, status, "destination aborted: %.400s", msg);
}

int rmig_src_poll_ctl(struct rmig_src *src, int timeout_ms, struct rmig_src_ack *ack)
{
	char why[RMIG_ERRMSG_MAX];
	uint8_t raw[sizeof(struct rmig_wire_hdr)];
	struct rmig_hdr h;
	uint8_t *body = NULL;
	int ret;

	ret = src_check(src);
	if (ret)
		return ret;
	if (!src->ctl)
		return 0;
	/* Consume nothing unless a message has begun to arrive: the stream keeps its step. */
	ret = src->ctl->ops->recv(src->ctl, raw, 1, timeout_ms);
	if (ret == -ETIMEDOUT)
		return 0;
	if (!ret)
		ret = src->ctl->ops->recv(src->ctl, raw + 1, sizeof(raw) - 1, src->opts.timeout_ms);
	if (ret)
		return src_fail(src, ret, "control connection: %s", src->ctl->recv_err.msg);
	ret = rmig_hdr_decode(raw, &h, why, sizeof(why));
	if (ret)
		return src_fail(src, ret, "control connection: %s", why);
	if (h.len > 8192)
		return src_fail(src, -EPROTO, "control connection: %s message of %u bytes",
				rmig_msg_name(h.type), h.len);
	if (h.len) {
		body = malloc(h.len);
		if (!body)
			return src_fail(src, -ENOMEM, "out of memory");
		ret = src->ctl->ops->recv(src->ctl, body, h.len, src->opts.timeout_ms);
		if (ret) {
			free(body);
			return src_fail(src, ret, "control connection: %s", src->ctl->recv_err.msg);
		}
	}
	switch (h.type) {
	case RMIG_MSG_SWITCHOVER_ACK:
		ret = src_parse_ack(body, h.len, ack);
		if (ret)
			ret = src_fail(src, ret, "malformed SWITCHOVER_ACK of %u bytes", h.len);
		else
			ret = 1;
		break;
	case RMIG_MSG_ABORT:
		ret = src_peer_abort(src, body, h.len);
		break;
	default:
		ret = src_fail(src, -EPROTO, "control connection: unexpected %s while migrating",
			       rmig_msg_name(h.type));
	}
	free(body);
	return ret;
}

int rmig_src_ctl_send(struct rmig_src *src, uint16_t type, const void *body, size_t len)
{
	int ret = src_check(src);

	if (ret)
		return ret;
	if (!src->ctl)
		return -ENOTCONN;
	ret = rmig_msg_send(src->ctl, type, 0, src->ctl_seq++, body, len);
	if (ret)
		return src_fail(src, ret, "control connection: sending %s: %s", rmig_msg_name(type),
				src->ctl->err.msg);
	return 0;
}

int rmig_src_ctl_recv(struct rmig_src *src, int timeout_ms, size_t max_body, uint16_t *type,
		      void **bodyp, uint32_t *len)
{
	char why[RMIG_ERRMSG_MAX];
	struct rmig_hdr h;
	void *body = NULL;
	int ret;

	*bodyp = NULL;
	ret = src_check(src);
	if (ret)
		return ret;
	if (!src->ctl)
		return -ENOTCONN;
	if (timeout_ms < 0)
		timeout_ms = src->opts.timeout_ms;
	ret = rmig_msg_recv(src->ctl, timeout_ms, max_body, &h, &body, why, sizeof(why));
	if (ret)
		return src_fail(src, ret, "control connection: %s", why);
	if (h.type == RMIG_MSG_ABORT) {
		ret = src_peer_abort(src, body, h.len);
		free(body);
		return ret;
	}
	*type = h.type;
	*len = h.len;
	*bodyp = body;
	return 0;
}

void rmig_src_cancel(struct rmig_src *src)
{
	if (!src)
		return;
	/* before conn_lock: connect, publishing later, then sees it (src_publish_ctl) */
	rmig_store_relaxed(&src->cancelled, true);
	rmig_err_set(&src->err, -ECANCELED, "migration cancelled");
	pthread_mutex_lock(&src->conn_lock);
	if (src->sched)
		rmig_sched_abort(src->sched, -ECANCELED);
	src_shutdown_conns(src);
	if (src->ctl)
		src->ctl->ops->shutdown(src->ctl);
	pthread_mutex_unlock(&src->conn_lock);
}

int rmig_src_get_stats(struct rmig_src *src, struct rmig_stats *st)
{
	struct rmig_stats s = { .size = sizeof(s) };

	if (!src || !st || st->size < offsetof(struct rmig_stats, packets))
		return -EINVAL;
	for (unsigned int i = 0; i < src->nchan && src->chans; i++) {
		struct rmig_totals *t = &src->chans[i].tot;
		struct rmig_conn *c = src->chans[i].conn;

		s.packets += rmig_load_relaxed(&t->packets);
		s.normal_pages += rmig_load_relaxed(&t->normal_pages);
		s.zero_pages += rmig_load_relaxed(&t->zero_pages);
		s.data_bytes += rmig_load_relaxed(&t->data_bytes);
		s.dev_chunks += rmig_load_relaxed(&t->dev_chunks);
		s.dev_bytes += rmig_load_relaxed(&t->dev_bytes);
		if (c) {
			s.wire_bytes += rmig_load_relaxed(&c->wire_bytes);
			s.zc_sends += rmig_load_relaxed(&c->zc_sends);
			s.zc_copied += rmig_load_relaxed(&c->zc_copied);
			s.rdma_writes += rmig_load_relaxed(&c->rdma_writes);
		}
	}
	s.sync_rounds = rmig_load_relaxed(&src->round);
	s.channels = src->nchan;
	if (src->xp)
		s.reg_ns = src->xops->reg_ns(src->xp);
	s.size = st->size < sizeof(s) ? st->size : (uint32_t)sizeof(s);
	memcpy(st, &s, s.size);
	return 0;
}

const char *rmig_src_error(struct rmig_src *src)
{
	return src ? src->err.msg : "";
}

void rmig_src_abort(struct rmig_src *src, int code, const char *msg)
{
	if (src)
		src_tell_peer(src, code, msg && *msg ? msg : NULL);
}

void rmig_src_destroy(struct rmig_src *src)
{
	if (!src)
		return;
	if (src->state == SRC_CONNECTED || (src->state == SRC_NEW && src->xp)) {
		/* a migration given up without a word: say so, or say why */
		if (rmig_err_code(&src->err))
			src_tell_peer(src, rmig_err_code(&src->err), NULL);
		else
			src_tell_peer(src, -ECANCELED,
				      "the source closed the migration before finishing it");
		if (src->sched)
			rmig_sched_abort(src->sched, -ECANCELED);
		src_shutdown_conns(src);
	}
	rmig_sched_destroy(src->sched);
	for (unsigned int i = 0; src->chans && i < src->nchan; i++) {
		if (src->chans[i].conn)
			src->chans[i].conn->ops->close(src->chans[i].conn);
		free(src->chans[i].hdrbuf);
		free(src->chans[i].segs);
	}
	if (src->ctl)
		src->ctl->ops->close(src->ctl);
	if (src->xp)
		src->xops->destroy(src->xp);
	free(src->chans);
	rmig_payload_free(src->ram_slot);
	rmig_payload_free(src->dev_slot);
	free(src->blocks);
	pthread_mutex_destroy(&src->dev_lock);
	pthread_mutex_destroy(&src->conn_lock);
	rmig_err_destroy(&src->err);
	free(src);
}
