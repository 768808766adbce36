// SPDX-License-Identifier: MIT
/*
 * The source engine's public API (rmig_src_*): create, blocks, connect and
 * the handshake, queueing pages and device state, sync, finish, cancel,
 * stats, destroy; on top of the scheduler (core/sched.c) and a transport.
 * The main thread fills the RAM slot; channel threads call src_chan.c,
 * which frames messages and hands them to the channel's conn.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <openssl/crypto.h>

#include "core/barrier.h"
#include "core/src/src_engine.h"
#include "core/src/src_fail.h"
#include "core/stats.h"

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
	if (!ret)
		ret = rmig_key_copy(&src->key, &src->opts);
	if (ret) {
		rmig_key_free(&src->key);
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
	if (rmig_key_set(&src->key)) {
		/* nothing of this host's RAM, not even its table, before the destination proved the key */
		ret = rmig_auth_src(src->ctl, &src->key, src->uuid, &src->ctl_seq,
				    src->opts.timeout_ms, &src->auth, why, sizeof(why));
		if (ret)
			return src_fail(src, ret, "%s: %s", uri, why);
	}
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

/*
 * NUMA steering (core/numa.h): when the transport put the channels on two
 * nodes or more, map where the blocks' memory lives and tell the scheduler
 * each channel's node; to steer, open one RAM batch per such node. A
 * failed query or allocation leaves steering (or all of it) off.
 */
static void src_numa_setup(struct rmig_src *src, struct rmig_sched *sched)
{
	const char *env = getenv("RMIG_RDMA_NUMA");
	int nodes[RMIG_MAX_CHANNELS];

	memset(src->numa_idx, -1, sizeof(src->numa_idx));
	/* the variable is the option's fallback (rmig.h, enum rmig_numa) */
	if (src->opts.numa == RMIG_NUMA_AUTO && !src->opts.numa_rails && env &&
	    (!strcmp(env, "place") || !strcmp(env, "off")))
		src->opts.numa = strcmp(env, "off") ? RMIG_NUMA_PLACE : RMIG_NUMA_OFF;
	if (src->opts.numa == RMIG_NUMA_OFF)
		return;
	for (unsigned int i = 0; i < src->nchan; i++)
		nodes[i] = rmig_conn_node(src->chans[i].conn);
	if (rmig_numa_distinct_nodes(nodes, src->nchan) < 2 ||
	    rmig_numa_map_build(src->blocks, src->nblocks, NULL, &src->numa))
		return;
	for (unsigned int i = 0; i < src->nchan; i++) {
		int n = nodes[i];

		rmig_sched_set_node(sched, i, n);
		if (src->opts.numa != RMIG_NUMA_AUTO || n < 0 || n >= RMIG_NUMA_NODES_MAX ||
		    src->numa_idx[n] >= 0)
			continue;
		src->numa_slot[src->numa_nslots] = rmig_payload_alloc(src->opts.pages_per_packet);
		if (!src->numa_slot[src->numa_nslots])
			return; /* no steering: the slots made so far stay empty */
		src->numa_node[src->numa_nslots] = n;
		src->numa_idx[n] = (int8_t)src->numa_nslots++;
	}
	src->numa_steer = src->opts.numa == RMIG_NUMA_AUTO;
	rmig_sched_set_steer(sched, src->numa_steer, 0);
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
	if ((src->opts.flags & RMIG_F_TLS) && !(src->xops->caps & RMIG_XCAP_TLS))
		return src_fail(src, -EINVAL, "the %s transport has no TLS (RMIG_F_TLS is for tcp)",
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

	if (!(src->xops->caps & RMIG_XCAP_SINK)) {
		ret = rmig_key_load(&src->key, &src->opts, &mb);
		if (ret)
			return src_fail(src, ret, "%s", mb.msg);
	}
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
		uint8_t body[sizeof(struct rmig_wire_chan) + sizeof(struct rmig_wire_chan_auth)] = { 0 };
		size_t blen = sizeof(struct rmig_wire_chan);
		struct rmig_conn *conn = NULL;

		ret = src->xops->connect_channel(src->xp, i, &conn);
		src_publish_chan(src, i, conn);
		if (ret)
			return src_fail(src, ret, "%s: opening channel %u: %s", uri, i, src->xp->err.msg);
		memcpy(body + RMIG_OFF(rmig_wire_chan, uuid), src->uuid, RMIG_UUID_LEN);
		rmig_put_be32(body + RMIG_OFF(rmig_wire_chan, channel), i);
		if (src->auth.on) {
			if (rmig_auth_chan_prove(&src->auth, i, body + blen))
				return src_fail(src, -EIO, "channel %u: no random bytes for its proof", i);
			blen += sizeof(struct rmig_wire_chan_auth);
		}
		ret = rmig_msg_send(src->chans[i].conn, RMIG_MSG_CHAN, 0, src->chans[i].seq++, body,
				    blen);
		if (ret)
			return src_fail(src, ret, "%s: channel %u hello: %s", uri, i,
					src->chans[i].conn->err.msg);
		/* rdma: this channel's own rkeys, bound to its QP, before any page data */
		ret = conn->ops->chan_open(conn, src->opts.timeout_ms);
		if (ret)
			return src_fail(src, ret, "%s: channel %u: %s", uri, i, conn->err.msg);
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
	src_numa_setup(src, sched);
	pthread_mutex_lock(&src->conn_lock);
	src->sched = sched;
	if (rmig_load_relaxed(&src->cancelled))
		rmig_sched_abort(sched, -ECANCELED);
	pthread_mutex_unlock(&src->conn_lock);
	src->state = SRC_CONNECTED;
	return 0;
}

int rmig_src_queue_page(struct rmig_src *src, unsigned int block, uint64_t offset)
{
	struct rmig_payload **sp = &src->ram_slot, *slot;
	struct rmig_block *b;
	int ret, node = -1;

	ret = src_check(src);
	if (unlikely(ret))
		return ret;
	if (unlikely(block >= src->nblocks))
		return -EINVAL;
	b = &src->blocks[block];
	if (unlikely(offset >= b->length || (offset & (b->page_size - 1))))
		return -EINVAL;

	if (src->numa_steer) {
		/* the open batch of the page's node, if a channel is on it */
		int n = rmig_numa_node_of(src->numa, block, offset);

		if (n >= 0 && src->numa_idx[n] >= 0) {
			sp = &src->numa_slot[src->numa_idx[n]];
			node = n;
		}
	}
	slot = *sp;
	if (slot->type == RMIG_PAYLOAD_RAM &&
	    (slot->ram.block != block || slot->ram.num == src->opts.pages_per_packet)) {
		ret = rmig_sched_send_node(src->sched, sp, node);
		if (unlikely(ret))
			return src_error(src);
		slot = *sp;
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

/* Hand the partly filled RAM slots to channels, so a sync or FIN goes out behind them. */
static int src_flush_slot(struct rmig_src *src)
{
	for (unsigned int i = 0; i < src->numa_nslots; i++)
		if (!rmig_payload_empty(src->numa_slot[i]) &&
		    rmig_sched_send_node(src->sched, &src->numa_slot[i], src->numa_node[i]))
			return src_error(src);
	if (rmig_payload_empty(src->ram_slot))
		return 0;
	return rmig_sched_send(src->sched, &src->ram_slot) ? src_error(src) : 0;
}

int rmig_src_sync(struct rmig_src *src, enum rmig_sync_kind kind)
{
	int ret;

	if (!src || (kind != RMIG_SYNC_LOCAL && kind != RMIG_SYNC_ALL))
		return -EINVAL;
	ret = src_check(src);
	if (ret)
		return ret;
	ret = src_flush_slot(src);
	if (ret)
		return ret;
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
	ret = src_flush_slot(src);
	if (ret)
		return ret;
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
		struct rmig_conn *c = src->chans[i].conn;

		/* the source clears no zero page: zero_written stays 0 */
		rmig_totals_add(&s, &src->chans[i].tot, c);
		if (c) {
			s.zc_sends += rmig_load_relaxed(&c->zc_sends);
			s.zc_copied += rmig_load_relaxed(&c->zc_copied);
			s.rdma_writes += rmig_load_relaxed(&c->rdma_writes);
			s.numa_local_pages += rmig_load_relaxed(&c->numa_local);
			s.numa_remote_pages += rmig_load_relaxed(&c->numa_remote);
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
	rmig_numa_map_free(src->numa);
	for (unsigned int i = 0; i < src->numa_nslots; i++)
		rmig_payload_free(src->numa_slot[i]);
	rmig_payload_free(src->ram_slot);
	rmig_payload_free(src->dev_slot);
	free(src->blocks);
	rmig_key_free(&src->key);
	OPENSSL_cleanse(&src->auth, sizeof(src->auth));
	pthread_mutex_destroy(&src->dev_lock);
	pthread_mutex_destroy(&src->conn_lock);
	rmig_err_destroy(&src->err);
	free(src);
}

