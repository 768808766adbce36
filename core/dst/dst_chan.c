// SPDX-License-Identifier: MIT
/*
 * The destination's receive threads, one per channel: read each message,
 * validate every field before it touches RAM (core/msgcheck.c), place page
 * data (or let the transport's placement stand), hand device state on in
 * order (dst_devstate.c), stop at each SYNC until the main thread has seen
 * that round on every channel (the multifd receive barrier), and check the
 * source's totals at FIN.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/barrier.h"
#include "core/dst/dst_engine.h"
#include "core/dst/dst_fail.h"
#include "core/msgcheck.h"
#include "core/zero.h"

static int recv_ram(struct dst_chan *ch, const struct rmig_hdr *h)
{
	struct rmig_dst *d = ch->d;
	uint32_t block, normal, zero, n, iovcnt = 0;
	char why[RMIG_ERRMSG_MAX];
	struct rmig_ram_msg m;
	struct rmig_block *b;
	int ret;

	if (h->len < sizeof(struct rmig_wire_ram))
		return dst_fail(d, -EPROTO, "channel %u: RAM message truncated (%u bytes)", ch->id,
				h->len);
	ret = ch->conn->ops->recv(ch->conn, ch->body, h->len, -1);
	if (ret)
		return dst_fail(d, ret, "channel %u: %s", ch->id, ch->conn->recv_err.msg);
	if (rmig_ram_check_head(ch->body, h->len, h->flags, d->blocks, d->nblocks,
				d->hello.pages_per_packet, d->placed, d->xops->name, &m, why,
				sizeof(why)))
		return dst_fail(d, -EPROTO, "channel %u: %s", ch->id, why);
	block = m.block;
	normal = m.normal;
	zero = m.zero;
	n = normal + zero;
	b = &d->blocks[block];
	if (rmig_load_relaxed(&d->pc_live))
		return dst_fail(d, -EPROTO, "channel %u: RAM message during postcopy", ch->id);

	/* Validate every offset before any byte lands in RAM. */
	if (rmig_ram_check_offsets(ch->body, b, &m, ch->offsets, why, sizeof(why)))
		return dst_fail(d, -EPROTO, "channel %u: %s", ch->id, why);
	for (uint32_t i = 0; i < normal; i++) {
		uint64_t off = ch->offsets[i];

		if (iovcnt && (uint8_t *)ch->iov[iovcnt - 1].iov_base + ch->iov[iovcnt - 1].iov_len ==
				      b->host + off) {
			ch->iov[iovcnt - 1].iov_len += b->page_size;
		} else {
			ch->iov[iovcnt].iov_base = b->host + off;
			ch->iov[iovcnt].iov_len = b->page_size;
			iovcnt++;
		}
	}
	if (!d->placed && iovcnt) {
		ret = ch->conn->ops->recv_pages(ch->conn, ch->iov, iovcnt);
		if (ret)
			return dst_fail(d, ret, "channel %u: receiving %u pages of '%s': %s", ch->id,
					normal, b->name, ch->conn->recv_err.msg);
	}
	for (uint32_t i = normal; i < n; i++) {
		uint8_t *page = b->host + ch->offsets[i];

		/* Writing zeros to a page that already is zero would only allocate memory. */
		if (!rmig_is_zero(page, b->page_size)) {
			memset(page, 0, b->page_size);
			rmig_add_relaxed(&ch->tot.zero_written, 1);
		}
	}
	if (d->pc_recvd) {
		/* published to the main thread by the SYNC barrier's lock */
		for (uint32_t i = 0; i < n; i++) {
			uint64_t page = ch->offsets[i] >> b->page_shift;

			atomic_fetch_or_explicit(&d->pc_recvd[block][page / 64], 1ull << (page % 64),
						 memory_order_relaxed);
		}
	}
	rmig_add_relaxed(&ch->tot.packets, 1);
	rmig_add_relaxed(&ch->tot.normal_pages, normal);
	rmig_add_relaxed(&ch->tot.zero_pages, zero);
	rmig_add_relaxed(&ch->tot.data_bytes, (uint64_t)normal * b->page_size);
	return 0;
}

static int recv_dev(struct dst_chan *ch, const struct rmig_hdr *h)
{
	struct rmig_dst *d = ch->d;
	char why[RMIG_ERRMSG_MAX];
	struct rmig_dev_msg m;
	int ret;

	if (h->len < sizeof(struct rmig_wire_dev))
		return dst_fail(d, -EPROTO, "channel %u: device-state message truncated", ch->id);
	ret = ch->conn->ops->recv(ch->conn, ch->body, h->len, -1);
	if (ret)
		return dst_fail(d, ret, "channel %u: %s", ch->id, ch->conn->recv_err.msg);
	if (rmig_dev_check(ch->body, h->len, &m, why, sizeof(why)))
		return dst_fail(d, -EPROTO, "channel %u: %s", ch->id, why);
	ret = dst_dev_deliver(d, ch->id, m.seq, m.id, m.instance, m.data, m.len);
	if (ret)
		return ret;
	rmig_add_relaxed(&ch->tot.packets, 1);
	rmig_add_relaxed(&ch->tot.dev_chunks, 1);
	rmig_add_relaxed(&ch->tot.dev_bytes, m.len);
	return 0;
}

static int recv_sync(struct dst_chan *ch, const struct rmig_hdr *h)
{
	struct rmig_dst *d = ch->d;
	uint64_t round, want;
	int ret;

	if (h->len != sizeof(struct rmig_wire_sync))
		return dst_fail(d, -EPROTO, "channel %u: SYNC of %u bytes", ch->id, h->len);
	ret = ch->conn->ops->recv(ch->conn, ch->body, h->len, -1);
	if (ret)
		return dst_fail(d, ret, "channel %u: %s", ch->id, ch->conn->recv_err.msg);
	round = rmig_get_be64(ch->body);
	want = rmig_load_relaxed(&ch->tot.syncs) + 1;
	if (round != want)
		return dst_fail(d, -EPROTO, "channel %u: SYNC for round %llu, expected round %llu",
				ch->id, (unsigned long long)round, (unsigned long long)want);
	rmig_add_relaxed(&ch->tot.syncs, 1);

	pthread_mutex_lock(&d->lock);
	d->at_sync++;
	pthread_cond_broadcast(&d->cond);
	while (d->released < round && !d->failed)
		pthread_cond_wait(&d->cond, &d->lock);
	ret = d->failed ? -ECANCELED : 0;
	pthread_mutex_unlock(&d->lock);
	if (ret || !d->placed)
		return ret;
	/*
	 * Holding this thread holds a stream, but not RAM that the source
	 * writes one-sidedly: it waits for this RELEASE before it places any
	 * data of the next round on this channel.
	 */
	ret = rmig_msg_send(ch->conn, RMIG_MSG_RELEASE, 0, ch->out_seq++, ch->body,
			    sizeof(struct rmig_wire_sync));
	if (ret)
		return dst_fail(d, ret, "channel %u: sending RELEASE: %s", ch->id, ch->conn->err.msg);
	return 0;
}

static int recv_fin(struct dst_chan *ch, const struct rmig_hdr *h)
{
	struct rmig_dst *d = ch->d;
	uint64_t mine[RMIG_FIN_TOTALS];
	int ret;

	if (h->len != sizeof(struct rmig_wire_fin))
		return dst_fail(d, -EPROTO, "channel %u: FIN of %u bytes", ch->id, h->len);
	ret = ch->conn->ops->recv(ch->conn, ch->fin, h->len, -1);
	if (ret)
		return dst_fail(d, ret, "channel %u: %s", ch->id, ch->conn->recv_err.msg);
	mine[0] = rmig_load_relaxed(&ch->tot.packets);
	mine[1] = rmig_load_relaxed(&ch->tot.normal_pages);
	mine[2] = rmig_load_relaxed(&ch->tot.zero_pages);
	mine[3] = rmig_load_relaxed(&ch->tot.data_bytes);
	mine[4] = rmig_load_relaxed(&ch->tot.dev_chunks);
	mine[5] = rmig_load_relaxed(&ch->tot.dev_bytes);
	mine[6] = rmig_load_relaxed(&ch->tot.syncs);
	for (unsigned int i = 0; i < RMIG_FIN_TOTALS; i++) {
		uint64_t theirs = rmig_get_be64(ch->fin + i * 8);

		if (theirs != mine[i])
			return dst_fail(d, -EPROTO,
					"channel %u: source sent %llu %s, destination received %llu",
					ch->id, (unsigned long long)theirs, rmig_fin_total_names[i],
					(unsigned long long)mine[i]);
	}
	pthread_mutex_lock(&d->lock);
	d->at_fin++;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
	return 0;
}

void *dst_chan_thread(void *arg)
{
	struct dst_chan *ch = arg;
	struct rmig_dst *d = ch->d;
	uint8_t raw[sizeof(struct rmig_wire_hdr)];
	char why[256], name[16];
	struct rmig_hdr h;
	int ret;

	snprintf(name, sizeof(name), "rmig-rx%u", ch->id);
	pthread_setname_np(pthread_self(), name);
	for (;;) {
		ret = ch->conn->ops->recv(ch->conn, raw, sizeof(raw), -1);
		if (ret) {
			dst_fail(d, ret, "channel %u: %s", ch->id, ch->conn->recv_err.msg);
			break;
		}
		ret = rmig_hdr_decode(raw, &h, why, sizeof(why));
		if (ret) {
			dst_fail(d, ret, "channel %u: %s", ch->id, why);
			break;
		}
		if (h.seq != ch->seq) {
			dst_fail(d, -EPROTO, "channel %u: message %llu arrived where %llu was expected",
				 ch->id, (unsigned long long)h.seq, (unsigned long long)ch->seq);
			break;
		}
		ch->seq++;
		switch (h.type) {
		case RMIG_MSG_RAM:
			ret = recv_ram(ch, &h);
			break;
		case RMIG_MSG_DEV:
			ret = recv_dev(ch, &h);
			break;
		case RMIG_MSG_SYNC:
			ret = recv_sync(ch, &h);
			break;
		case RMIG_MSG_FIN:
			recv_fin(ch, &h);
			return NULL;
		default:
			ret = dst_fail(d, -EPROTO, "channel %u: unexpected %s message", ch->id,
				       rmig_msg_name(h.type));
		}
		if (ret)
			break;
	}
	return NULL;
}
