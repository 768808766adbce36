// SPDX-License-Identifier: MIT
/*
 * The destination engine's public API (rmig_dst_*): create, blocks, listen,
 * accept and the handshake, wait_sync (the main thread's side of the
 * receive barrier), switchover acks, finish with its checks, cancel,
 * stats, destroy. The receive threads are in dst_chan.c, postcopy in
 * core/postcopy/pc_dst*.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "rmig/live.h"

#include "core/barrier.h"
#include "core/dst/dst_engine.h"
#include "core/dst/dst_fail.h"
#include "core/postcopy/pc_dst.h"
#include "core/stats.h"

int rmig_dst_create(const struct rmig_opts *opts, struct rmig_dst **dstp)
{
	struct rmig_dst *d;
	int ret;

	if (!dstp)
		return -EINVAL;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	ret = rmig_opts_copy(&d->opts, opts, false);
	if (!ret)
		ret = rmig_key_copy(&d->key, &d->opts);
	if (ret) {
		rmig_key_free(&d->key);
		free(d);
		return ret;
	}
	rmig_err_init(&d->err);
	pthread_mutex_init(&d->dev_lock, NULL);
	pthread_mutex_init(&d->lock, NULL);
	pthread_cond_init(&d->cond, NULL);
	pthread_mutex_init(&d->ctl_send_lock, NULL);
	d->pc_uffd = -1;
	*dstp = d;
	return 0;
}

int rmig_dst_add_block(struct rmig_dst *d, const struct rmig_block_desc *desc)
{
	if (!d)
		return -EINVAL;
	if (d->state != DST_NEW)
		return -EBUSY;
	return rmig_blocks_add(&d->blocks, &d->nblocks, desc);
}

int rmig_dst_set_device_state_cb(struct rmig_dst *d, rmig_dev_state_fn fn, void *arg)
{
	if (!d)
		return -EINVAL;
	if (d->state == DST_RUNNING || d->state == DST_DONE)
		return -EBUSY;
	d->dev_fn = fn;
	d->dev_arg = arg;
	return 0;
}

/*
 * @addr ("HOST:PORT", HOST possibly a comma-separated list of rails) names
 * only loopback addresses: nobody but this host can connect. Names that
 * merely resolve to loopback do not count, except "localhost".
 */
static bool dst_loopback(const char *addr)
{
	char host[256], port[16], *save = NULL, *h;
	bool any = false;

	if (rmig_split_hostport(addr, host, sizeof(host), port, sizeof(port)))
		return false;
	for (h = strtok_r(host, ",", &save); h; h = strtok_r(NULL, ",", &save)) {
		if (strcmp(h, "localhost") && strncmp(h, "127.", 4) && strcmp(h, "::1"))
			return false;
		any = true;
	}
	return any;
}

int rmig_dst_listen(struct rmig_dst *d, const char *uri)
{
	struct rmig_xport_params params;
	struct rmig_msgbuf mb = { "" };
	const char *addr;
	int ret;

	if (!d || !uri)
		return -EINVAL;
	ret = rmig_err_code(&d->err);
	if (ret)
		return ret; /* a failed handle stays failed */
	if (d->state != DST_NEW)
		return -EBUSY;
	if (!d->nblocks)
		return rmig_err_set(&d->err, -EINVAL, "no RAM blocks added before listen");
	ret = rmig_uri_parse(uri, &d->xops, &addr);
	if (ret == -EPROTONOSUPPORT)
		return rmig_err_set(&d->err, ret, "'%s': this build of rmig has no such transport", uri);
	if (ret)
		return rmig_err_set(&d->err, ret,
				    "'%s' is not a URI rmig knows (tcp:HOST:PORT, rdma:HOST:PORT, file:PATH)",
				    uri);
	if ((d->opts.flags & RMIG_F_TLS) && !(d->xops->caps & RMIG_XCAP_TLS))
		return rmig_err_set(&d->err, -EINVAL,
				    "the %s transport has no TLS (RMIG_F_TLS is for tcp)", d->xops->name);
	d->placed = d->xops->caps & RMIG_XCAP_PLACES_DATA;
	d->loading = d->xops->caps & RMIG_XCAP_LOAD;
	if (!d->loading) {
		ret = rmig_key_load(&d->key, &d->opts, &mb);
		if (ret)
			return rmig_err_set(&d->err, ret, "%s", mb.msg);
	}
	params = (struct rmig_xport_params){
		.opts = &d->opts, .blocks = d->blocks, .nblocks = d->nblocks, .channels = 0,
	};
	ret = d->xops->listen(&params, addr, &d->xp, &mb);
	if (ret == -ENOSYS)
		return rmig_err_set(&d->err, -EINVAL, "the %s transport cannot receive",
				    d->xops->name);
	if (ret)
		return rmig_err_set(&d->err, ret, "%s: %s", uri, mb.msg);
	/* checked once the transport took the address, so a bad one is named as such first */
	if (!d->loading && !rmig_key_set(&d->key) && !(d->opts.flags & RMIG_F_INSECURE) &&
	    !dst_loopback(addr)) {
		d->xops->destroy(d->xp);
		d->xp = NULL;
		return rmig_err_set(&d->err, -EPERM,
				    "refusing to listen on '%s' without a pre-shared key: anyone who can reach it could write this RAM; give a key (psk_file or psk; rmig-bench --psk-file) or accept the risk with RMIG_F_INSECURE (rmig-bench --insecure)",
				    uri);
	}
	d->state = DST_LISTENING;
	return 0;
}

int rmig_dst_port(struct rmig_dst *d)
{
	if (!d || d->state == DST_NEW || !d->xp)
		return -ENOTCONN;
	return d->xops->port(d->xp);
}

int rmig_dst_accept(struct rmig_dst *d)
{
	char msg[RMIG_ERRMSG_MAX];
	size_t bodycap;
	int ret;

	if (!d)
		return -EINVAL;
	if (d->state != DST_LISTENING)
		return d->state == DST_NEW ? -ENOTCONN : -EBUSY;
	/* Nobody to accept: listen() already opened and checked the file. */
	if (d->loading) {
		d->state = DST_RUNNING;
		return 0;
	}
	ret = dst_handshake(d);
	if (ret)
		return ret;
	d->nchan = d->hello.channels;
	d->chans = aligned_alloc(RMIG_CACHELINE, sizeof(*d->chans) * d->nchan);
	if (!d->chans)
		return rmig_err_set(&d->err, -ENOMEM, "out of memory");
	memset(d->chans, 0, sizeof(*d->chans) * d->nchan);
	bodycap = sizeof(struct rmig_wire_ram) + (size_t)d->hello.pages_per_packet * 8;
	if (bodycap < RMIG_WIRE_BODY_MAX)
		bodycap = RMIG_WIRE_BODY_MAX;
	for (unsigned int i = 0; i < d->nchan; i++) {
		struct dst_chan *ch = &d->chans[i];

		ch->d = d;
		ch->id = i;
		ch->body = malloc(bodycap);
		ch->iov = calloc(d->hello.pages_per_packet, sizeof(struct iovec));
		ch->offsets = calloc(d->hello.pages_per_packet, sizeof(uint64_t));
		if (!ch->body || !ch->iov || !ch->offsets)
			return rmig_err_set(&d->err, -ENOMEM, "out of memory");
	}
	ret = dst_accept_channels(d);
	if (ret) {
		rmig_err_msg(&d->err, msg, sizeof(msg));
		rmig_status_send(d->ctl, RMIG_MSG_ABORT, d->ctl_seq_out++, ret, msg, NULL, 0);
		d->abort_sent = true;
		return ret;
	}
	ret = rmig_status_send(d->ctl, RMIG_MSG_RESULT, d->ctl_seq_out++, 0, "channels accepted",
			       NULL, 0);
	if (ret)
		return rmig_err_set(&d->err, ret, "confirming the channels: %s", d->ctl->err.msg);
	for (unsigned int i = 0; i < d->nchan; i++) {
		ret = -pthread_create(&d->chans[i].thread, NULL, dst_chan_thread, &d->chans[i]);
		if (ret) {
			dst_fail(d, ret, "starting receive threads: %s", strerror(-ret));
			dst_send_abort(d);
			return ret;
		}
		d->chans[i].started = true;
	}
	if (d->pc_enabled) {
		ret = -pthread_create(&d->pc_ctl, NULL, dst_pc_ctl_thread, d);
		if (ret) {
			dst_fail(d, ret, "starting the postcopy control thread: %s", strerror(-ret));
			dst_send_abort(d);
			return ret;
		}
		d->pc_ctl_started = true;
	}
	d->state = DST_RUNNING;
	return 0;
}

/*
 * Main thread, holding d->lock: send the queued switchover acks on the
 * control connection (which only the main thread uses), without the lock
 * while sending.
 */
static void dst_flush_acks(struct rmig_dst *d)
{
	struct dst_ack *a;
	int ret = 0;

	while (!ret && (a = d->acks)) {
		d->acks = a->next;
		pthread_mutex_unlock(&d->lock);
		pthread_mutex_lock(&d->ctl_send_lock);
		ret = rmig_msg_send(d->ctl, RMIG_MSG_SWITCHOVER_ACK, 0, d->ctl_seq_out++, a->body,
				    a->len);
		pthread_mutex_unlock(&d->ctl_send_lock);
		free(a);
		if (ret)
			dst_fail(d, ret, "sending SWITCHOVER_ACK: %s", d->ctl->err.msg);
		pthread_mutex_lock(&d->lock);
	}
}

int rmig_dst_switchover_ack(struct rmig_dst *d, const char *idstr, uint32_t instance)
{
	struct dst_ack *a, **pp;
	size_t idlen, len;
	bool failed;

	if (!d || !idstr)
		return -EINVAL;
	idlen = strlen(idstr);
	if (!idlen || idlen >= RMIG_IDSTR_MAX)
		return -EINVAL;
	if (d->loading)
		return 0; /* a saved file has no source waiting */
	len = sizeof(struct rmig_wire_ack) + rmig_pad8(idlen);
	a = calloc(1, sizeof(*a) + len);
	if (!a)
		return -ENOMEM;
	a->len = len;
	rmig_put_be32(a->body + RMIG_OFF(rmig_wire_ack, instance), instance);
	rmig_put_be16(a->body + RMIG_OFF(rmig_wire_ack, idlen), (uint16_t)idlen);
	memcpy(a->body + sizeof(struct rmig_wire_ack), idstr, idlen);

	pthread_mutex_lock(&d->lock);
	failed = d->failed;
	if (!failed) {
		for (pp = &d->acks; *pp; pp = &(*pp)->next)
			;
		*pp = a;
		/* the main thread may be waiting for a round: it sends on its way */
		pthread_cond_broadcast(&d->cond);
	}
	pthread_mutex_unlock(&d->lock);
	if (failed) {
		free(a);
		return rmig_err_code(&d->err);
	}
	return 0;
}

int rmig_dst_wait_sync(struct rmig_dst *d, uint64_t *round)
{
	int ret = 0;

	if (!d)
		return -EINVAL;
	if (d->state != DST_RUNNING)
		return d->state == DST_DONE ? 1 : -ENOTCONN;
	/* A load has no rounds: the only sync is the end of rmig_dst_finish() (mapped-ram sync). */
	if (d->loading) {
		ret = rmig_err_code(&d->err);
		return ret ? ret : 1;
	}
	pthread_mutex_lock(&d->lock);
	if (d->held) {
		/* The caller is done looking at the last round: let the channels go on. */
		d->released = d->reached;
		d->at_sync = 0;
		d->held = false;
		pthread_cond_broadcast(&d->cond);
	}
	while (!d->failed && !dst_pc_due(d) && (d->acks || d->at_sync + d->at_fin < d->nchan)) {
		if (d->acks)
			dst_flush_acks(d);
		else
			pthread_cond_wait(&d->cond, &d->lock);
	}
	if (!d->failed && dst_pc_due(d)) {
		pthread_mutex_unlock(&d->lock);
		ret = dst_pc_start(d);
		if (ret < 0)
			dst_send_abort(d);
		return ret;
	}
	if (d->failed) {
		ret = rmig_err_code(&d->err);
	} else if (d->at_fin == d->nchan) {
		ret = 1;
	} else if (d->at_fin) {
		pthread_mutex_unlock(&d->lock);
		ret = dst_fail(d, -EPROTO, "%u channel(s) finished while others wait at sync round %llu",
			       d->at_fin, (unsigned long long)(d->reached + 1));
		dst_send_abort(d);
		return ret;
	} else {
		d->reached++;
		d->held = true;
		if (round)
			*round = d->reached;
	}
	pthread_mutex_unlock(&d->lock);
	if (ret < 0)
		dst_send_abort(d);
	return ret;
}

static int dst_check_done(struct rmig_dst *d)
{
	char why[RMIG_ERRMSG_MAX];
	uint64_t rounds, chunks, channels;
	struct rmig_hdr h;
	void *body = NULL;
	int ret;

	if (d->stash_set) {
		/* the postcopy control thread read it (and has exited) */
		d->stash_set = false;
		ret = d->stash_ret;
		h = d->stash_h;
		body = d->stash_body;
		d->stash_body = NULL;
		snprintf(why, sizeof(why), "%s", d->stash_why);
		if (!ret && h.len > sizeof(struct rmig_wire_done)) {
			snprintf(why, sizeof(why), "%s message of %u bytes", rmig_msg_name(h.type),
				 h.len);
			ret = -EPROTO;
		}
	} else {
		ret = rmig_msg_recv(d->ctl, d->opts.timeout_ms, sizeof(struct rmig_wire_done), &h,
				    &body, why, sizeof(why));
	}
	if (ret) {
		free(body);
		return dst_fail(d, ret, "waiting for the source's DONE: %s", why);
	}
	if (h.type != RMIG_MSG_DONE || h.len != sizeof(struct rmig_wire_done) ||
	    h.seq != d->ctl_seq_in++) {
		free(body);
		return dst_fail(d, -EPROTO, "expected DONE on the control connection, got %s",
				rmig_msg_name(h.type));
	}
	rounds = rmig_get_be64((uint8_t *)body + RMIG_OFF(rmig_wire_done, rounds));
	chunks = rmig_get_be64((uint8_t *)body + RMIG_OFF(rmig_wire_done, dev_chunks));
	channels = rmig_get_be64((uint8_t *)body + RMIG_OFF(rmig_wire_done, channels));
	free(body);
	if (channels != d->nchan)
		return dst_fail(d, -EPROTO, "source finished %llu channels, %u were opened",
				(unsigned long long)channels, d->nchan);
	if (rounds != d->reached)
		return dst_fail(d, -EPROTO, "source ran %llu sync rounds, destination saw %llu",
				(unsigned long long)rounds, (unsigned long long)d->reached);
	pthread_mutex_lock(&d->dev_lock);
	ret = 0;
	if (chunks != d->dev_next || d->dev_pending)
		ret = -EPROTO;
	pthread_mutex_unlock(&d->dev_lock);
	if (ret)
		return dst_fail(d, ret, "source queued %llu device-state chunks, %llu were delivered",
				(unsigned long long)chunks, (unsigned long long)d->dev_next);
	return 0;
}

/* RMIG_XCAP_LOAD: read everything with one thread per destination channel. */
static int dst_load(struct rmig_dst *d)
{
	int ret = rmig_err_code(&d->err);

	if (ret)
		return ret;
	ret = d->xops->load(d->xp, d->opts.channels, d->dev_fn, d->dev_arg);
	if (ret)
		return dst_fail(d, ret, "loading: %s", d->xp->err.msg);
	d->state = DST_DONE;
	return 0;
}

int rmig_dst_finish(struct rmig_dst *d)
{
	int ret;

	if (!d)
		return -EINVAL;
	if (d->state != DST_RUNNING)
		return d->state == DST_DONE ? 0 : -ENOTCONN;
	if (d->loading)
		return dst_load(d);
	do
		ret = rmig_dst_wait_sync(d, NULL);
	while (ret == 0 || ret == RMIG_DST_POSTCOPY);
	if (ret < 0)
		return ret;
	for (unsigned int i = 0; i < d->nchan; i++) {
		pthread_join(d->chans[i].thread, NULL);
		d->chans[i].started = false;
	}
	ret = dst_pc_finish(d);
	if (ret) {
		dst_send_abort(d);
		return ret;
	}
	ret = dst_check_done(d);
	/* whatever failed on any thread, even after the checks above, is a failure */
	if (!ret)
		ret = rmig_err_code(&d->err);
	if (ret) {
		dst_send_abort(d);
		return ret;
	}
	/* Everything arrived and checked out: the source has no business in our RAM now. */
	d->xops->revoke(d->xp);
	pthread_mutex_lock(&d->ctl_send_lock);
	ret = rmig_status_send(d->ctl, RMIG_MSG_RESULT, d->ctl_seq_out++, 0, "verified", NULL, 0);
	pthread_mutex_unlock(&d->ctl_send_lock);
	if (ret)
		return rmig_err_set(&d->err, ret, "confirming the migration: %s", d->ctl->err.msg);
	d->state = DST_DONE;
	return 0;
}

void rmig_dst_cancel(struct rmig_dst *d)
{
	if (!d)
		return;
	dst_fail(d, -ECANCELED, "migration cancelled");
	if (d->ctl)
		d->ctl->ops->shutdown(d->ctl);
	if (d->xp)
		d->xops->shutdown(d->xp);
}

int rmig_dst_get_stats(struct rmig_dst *d, struct rmig_stats *st)
{
	struct rmig_stats s = { .size = sizeof(s) };

	if (!d || !st || st->size < offsetof(struct rmig_stats, packets))
		return -EINVAL;
	for (unsigned int i = 0; d->chans && i < d->nchan; i++)
		rmig_totals_add(&s, &d->chans[i].tot, d->chans[i].conn);
	pthread_mutex_lock(&d->lock);
	s.channels = d->nchan;
	s.sync_rounds = d->reached;
	s.conns_dropped = rmig_load_relaxed(&d->conns_dropped);
	pthread_mutex_unlock(&d->lock);
	if (d->loading && d->xp)
		d->xops->load_stats(d->xp, &s);
	if (d->xp)
		s.reg_ns = d->xops->reg_ns(d->xp);
	s.size = st->size < sizeof(s) ? st->size : (uint32_t)sizeof(s);
	memcpy(st, &s, s.size);
	return 0;
}

const char *rmig_dst_error(struct rmig_dst *d)
{
	return d ? d->err.msg : "";
}

void rmig_dst_destroy(struct rmig_dst *d)
{
	struct dev_pending *p;
	struct dst_ack *a;

	if (!d)
		return;
	if (d->state == DST_RUNNING)
		rmig_dst_cancel(d);
	/*
	 * Every receive thread must be gone before any conn is closed: a
	 * failing thread shuts down all the others' conns (dst_fail()).
	 */
	for (unsigned int i = 0; d->chans && i < d->nchan; i++)
		if (d->chans[i].started)
			pthread_join(d->chans[i].thread, NULL);
	dst_pc_destroy(d);
	for (unsigned int i = 0; d->chans && i < d->nchan; i++) {
		struct dst_chan *ch = &d->chans[i];

		if (ch->conn)
			ch->conn->ops->close(ch->conn);
		free(ch->body);
		free(ch->iov);
		free(ch->offsets);
	}
	if (d->ctl)
		d->ctl->ops->close(d->ctl);
	/* For rdma this deregisters destination RAM: no peer can write into it afterwards. */
	if (d->xp)
		d->xops->destroy(d->xp);
	while ((p = d->dev_pending)) {
		d->dev_pending = p->next;
		free(p);
	}
	while ((a = d->acks)) {
		d->acks = a->next;
		free(a);
	}
	free(d->chans);
	free(d->blocks);
	rmig_key_free(&d->key);
	OPENSSL_cleanse(&d->auth, sizeof(d->auth));
	pthread_cond_destroy(&d->cond);
	pthread_mutex_destroy(&d->lock);
	pthread_mutex_destroy(&d->dev_lock);
	pthread_mutex_destroy(&d->ctl_send_lock);
	rmig_err_destroy(&d->err);
	free(d);
}
