// SPDX-License-Identifier: MIT
/*
 * The source's channel threads: core/sched.c calls src_transmit() with each
 * payload handed to a channel and src_sync() with each sync request; they
 * frame the messages (RAM batches, device-state chunks, SYNC, FIN), hand
 * them to the channel's conn, and, on placing transports, keep the RELEASE
 * flow.
 */
#include <errno.h>
#include <string.h>

#include "core/barrier.h"
#include "core/src/src_engine.h"
#include "core/src/src_fail.h"
#include "core/zero.h"

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
	if (src->numa) {
		/* where the data pages live against where this channel sends from */
		int node = rmig_conn_node(ch->conn);
		uint64_t local, remote;

		rmig_sched_set_node(src->sched, id, node); /* a channel may move (rdma rails) */
		if (node >= 0) {
			rmig_numa_count(src->numa, b->block, b->offsets, b->normal, node, &local,
					&remote);
			rmig_count(&ch->conn->numa_local, local);
			rmig_count(&ch->conn->numa_remote, remote);
		}
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

const struct rmig_sched_cb src_sched_cb = {
	.transmit = src_transmit,
	.sync = src_sync,
};
