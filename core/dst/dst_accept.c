// SPDX-License-Identifier: MIT
/*
 * The destination's listener: which incoming connection becomes the
 * control connection, which ones become channels, and the handshake.
 *
 * Until a peer has authenticated (with a key) or sent a well-formed HELLO
 * (without), anything can knock: a port scan, garbage, a wrong key, a
 * half-open connection. Such a connection is dropped, counted
 * (conns_dropped) and remembered as the last reason, and the destination
 * waits on for the real source until its timeout. One connection is
 * handled at a time, each given RMIG_AUTH_DEADLINE_MS per step, so a flood
 * costs one connection's memory and no thread; the rest wait in the
 * kernel's backlog. Channel connections are held to the same: one that
 * does not prove it belongs to the session is dropped, and the real
 * channels are still awaited.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/barrier.h"
#include "core/dst/dst_engine.h"
#include "core/dst/dst_fail.h"

static int ms_left(uint64_t end_ns)
{
	uint64_t now = rmig_now_ns();

	return now >= end_ns ? 0 : (int)((end_ns - now + 999999) / 1000000);
}

static int step_ms(uint64_t end_ns)
{
	int left = ms_left(end_ns);

	return left < RMIG_AUTH_DEADLINE_MS ? left : RMIG_AUTH_DEADLINE_MS;
}

/* Drop @c, which did not get in: count it and keep why. Returns @code. */
static int dst_drop(struct rmig_dst *d, struct rmig_conn *c, int code, const char *what,
		    const char *why)
{
	rmig_count(&d->conns_dropped, 1);
	d->drop_code = code;
	snprintf(d->drop_why, sizeof(d->drop_why), "%s: %.440s", what, why);
	c->ops->close(c);
	return code;
}

/*
 * A connection attempt failed, the listener is still there: count it, and
 * pause a little so a persistent failure (out of descriptors) does not spin.
 */
static void dst_accept_failed(struct rmig_dst *d, int code)
{
	struct timespec pause = { 0, 10 * 1000 * 1000 };

	rmig_count(&d->conns_dropped, 1);
	d->drop_code = code;
	snprintf(d->drop_why, sizeof(d->drop_why), "failed to connect: %.440s", d->xp->err.msg);
	nanosleep(&pause, NULL);
}

/* The wait is over without a source (or channels): say what came instead. */
static int dst_no_peer(struct rmig_dst *d, int ret, const char *waiting, const char *xerr)
{
	uint64_t n = rmig_load_relaxed(&d->conns_dropped);

	if (ret != -ETIMEDOUT || !n)
		return rmig_err_set(&d->err, ret, "%s: %s", waiting, xerr);
	return rmig_err_set(&d->err, d->drop_code, "%s: none got through within %d ms; %llu connection(s) dropped, the last one %s",
			    waiting, d->opts.timeout_ms, (unsigned long long)n, d->drop_why);
}

/* Tell a peer that does not get in why (best effort: it may not read). */
static void dst_tell(struct rmig_conn *c, uint64_t seq, int code, const char *why)
{
	rmig_status_send(c, RMIG_MSG_WELCOME, seq, code, why, NULL, 0);
}

/*
 * The first messages on a new connection @c: with a key, authentication,
 * then HELLO; without, HELLO. 0 with HELLO in *@hello (@hlen bytes): @c is
 * the session's. 1: @c was dropped. < 0: the destination fails (an
 * authenticated peer broke the protocol).
 */
static int dst_greet(struct rmig_dst *d, struct rmig_conn *c, uint64_t end, void **hello,
		     size_t *hlen)
{
	char why[RMIG_ERRMSG_MAX];
	uint64_t seq_in = 0, seq_out = 0;
	struct rmig_hdr h;
	void *body = NULL;
	int ret;

	ret = rmig_msg_recv(c, step_ms(end), RMIG_HELLO_MAX, &h, &body, why, sizeof(why));
	if (ret) {
		dst_drop(d, c, ret, "sent no valid first message", why);
		return 1;
	}
	if (h.seq != seq_in++ || (h.type != RMIG_MSG_HELLO && h.type != RMIG_MSG_AUTH_HELLO)) {
		snprintf(why, sizeof(why), "the first control message must be %s number 0, not %s",
			 rmig_key_set(&d->key) ? "AUTH_HELLO" : "HELLO", rmig_msg_name(h.type));
		dst_tell(c, seq_out, -EPROTO, why);
		goto drop;
	}
	if (h.type == RMIG_MSG_HELLO && rmig_key_set(&d->key)) {
		ret = -EACCES;
		snprintf(why, sizeof(why),
			 "authentication required: this destination has a pre-shared key and the source sent none (psk_file, rmig-bench --psk-file)");
		dst_tell(c, seq_out, ret, why);
		goto drop;
	}
	if (h.type == RMIG_MSG_AUTH_HELLO && !rmig_key_set(&d->key)) {
		ret = -EACCES;
		snprintf(why, sizeof(why),
			 "authentication failed: the source has a pre-shared key and this destination has none (psk_file, rmig-bench --psk-file)");
		dst_tell(c, seq_out, ret, why);
		goto drop;
	}
	if (h.type == RMIG_MSG_AUTH_HELLO) {
		ret = rmig_auth_dst(c, &d->key, &h, body, &seq_in, &seq_out, step_ms(end), &d->auth,
				    why, sizeof(why));
		if (ret)
			goto drop;
		memcpy(d->hello.uuid, d->auth.session, RMIG_UUID_LEN);
		free(body);
		body = NULL;
		/* authenticated: from here on this is the source, and its mistakes are fatal */
		ret = rmig_msg_recv(c, d->opts.timeout_ms, RMIG_HELLO_MAX, &h, &body, why,
				    sizeof(why));
		if (!ret && (h.type != RMIG_MSG_HELLO || h.seq != seq_in++)) {
			snprintf(why, sizeof(why), "after authenticating, the source sent %s number %llu instead of HELLO",
				 rmig_msg_name(h.type), (unsigned long long)h.seq);
			ret = -EPROTO;
		}
		d->ctl = c;
		d->ctl_seq_in = seq_in;
		d->ctl_seq_out = seq_out;
		if (ret) {
			free(body);
			return rmig_err_set(&d->err, ret, "reading the source's HELLO: %s", why);
		}
	} else {
		d->ctl = c;
		d->ctl_seq_in = seq_in;
		d->ctl_seq_out = seq_out;
	}
	*hello = body;
	*hlen = h.len;
	return 0;

drop:
	free(body);
	dst_drop(d, c, ret ? ret : -EPROTO, "was dropped", why);
	return 1;
}

/* Refuse with @why: tell the source, record, return. */
static int dst_refuse(struct rmig_dst *d, int code, const char *why)
{
	rmig_status_send(d->ctl, RMIG_MSG_WELCOME, d->ctl_seq_out++, code, why, NULL, 0);
	return rmig_err_set(&d->err, code, "refused the migration: %s", why);
}

int dst_handshake(struct rmig_dst *d)
{
	uint64_t end = rmig_now_ns() + (uint64_t)d->opts.timeout_ms * 1000000ull;
	char why[RMIG_ERRMSG_MAX];
	uint8_t session[RMIG_UUID_LEN];
	void *body = NULL, *info = NULL;
	size_t info_len = RMIG_PEER_INFO_MAX, hlen = 0;
	int ret;

	for (;;) {
		struct rmig_conn *c = NULL;
		int left = ms_left(end);

		ret = left ? d->xops->accept(d->xp, left, &c) : -ETIMEDOUT;
		if (ret == -ETIMEDOUT || ret == -ECANCELED || ret == -ENODEV)
			return dst_no_peer(d, ret, "waiting for a source to connect",
					   left ? d->xp->err.msg : "timed out");
		if (ret) {
			dst_accept_failed(d, ret);
			continue;
		}
		ret = dst_greet(d, c, end, &body, &hlen);
		if (ret <= 0)
			break;
	}
	if (ret)
		return ret;
	memcpy(session, d->hello.uuid, RMIG_UUID_LEN);
	ret = rmig_hello_check(body, hlen, d->blocks, d->nblocks, d->opts.channels, &d->hello, why,
			       sizeof(why));
	if (ret) {
		ret = dst_refuse(d, ret, why);
		goto out;
	}
	if (d->auth.on && memcmp(session, d->hello.uuid, RMIG_UUID_LEN)) {
		ret = dst_refuse(d, -EPROTO, "HELLO names another session than AUTH_HELLO");
		goto out;
	}
	/*
	 * Only now, the peer authenticated and its table checked, is RAM
	 * registered for it (rdma) and does placement info leave this host.
	 */
	info = malloc(info_len);
	if (!info) {
		ret = dst_refuse(d, -ENOMEM, "destination out of memory");
		goto out;
	}
	ret = d->xops->local_info(d->xp, info, &info_len);
	if (ret) {
		ret = dst_refuse(d, ret, d->xp->err.msg);
		goto out;
	}
	/* postcopy is agreed here: a source may start it only if we said so */
	ret = rmig_status_send_flags(d->ctl, RMIG_MSG_WELCOME, d->pc_enabled ? RMIG_WF_POSTCOPY : 0,
				     d->ctl_seq_out++, 0, "welcome", info, info_len);
	if (ret)
		ret = rmig_err_set(&d->err, ret, "sending WELCOME: %s", d->ctl->err.msg);
out:
	free(info);
	free(body);
	return ret;
}

/* Check a new channel connection's CHAN; 0 and its id, or the reason in @why. */
static int dst_chan_check(struct rmig_dst *d, struct rmig_conn *c, uint64_t end, uint32_t *idp,
			  char *why, size_t whylen)
{
	size_t want = sizeof(struct rmig_wire_chan) +
		      (d->auth.on ? sizeof(struct rmig_wire_chan_auth) : 0);
	struct rmig_hdr h;
	uint8_t *body = NULL;
	uint32_t id;
	int ret;

	ret = rmig_msg_recv(c, step_ms(end), want, &h, (void **)&body, why, whylen);
	if (ret)
		return ret;
	ret = -EPROTO;
	if (h.type != RMIG_MSG_CHAN || h.seq != 0 || h.len != want) {
		snprintf(why, whylen, "sent %s (seq %llu, %u bytes) instead of its hello (CHAN)",
			 rmig_msg_name(h.type), (unsigned long long)h.seq, h.len);
		goto out;
	}
	if (memcmp(body, d->hello.uuid, RMIG_UUID_LEN)) {
		snprintf(why, whylen, "belongs to another session (session id differs)");
		goto out;
	}
	id = rmig_get_be32(body + RMIG_OFF(rmig_wire_chan, channel));
	if (id >= d->nchan) {
		snprintf(why, whylen, "says channel id %u, but the source announced %u channels", id,
			 d->nchan);
		goto out;
	}
	if (d->auth.on && !rmig_auth_chan_check(&d->auth, id, body + sizeof(struct rmig_wire_chan))) {
		snprintf(why, whylen,
			 "authentication failed: channel %u does not prove it belongs to the session",
			 id);
		ret = -EACCES;
		goto out;
	}
	if (d->chans[id].conn) {
		snprintf(why, whylen, "channel id %u connected twice", id);
		goto out;
	}
	*idp = id;
	ret = 0;
out:
	free(body);
	return ret;
}

int dst_accept_channels(struct rmig_dst *d)
{
	uint64_t end = rmig_now_ns() + (uint64_t)d->opts.timeout_ms * 1000000ull;
	char why[RMIG_ERRMSG_MAX];
	unsigned int got = 0;
	uint32_t id;
	int ret;

	while (got < d->nchan) {
		struct rmig_conn *c = NULL;
		int left = ms_left(end);

		ret = left ? d->xops->accept(d->xp, left, &c) : -ETIMEDOUT;
		if (ret == -ETIMEDOUT || ret == -ECANCELED || ret == -ENODEV)
			return dst_no_peer(d, ret, "waiting for channel connections",
					   left ? d->xp->err.msg : "timed out");
		if (ret) {
			dst_accept_failed(d, ret);
			continue;
		}
		ret = dst_chan_check(d, c, end, &id, why, sizeof(why));
		if (ret) {
			dst_drop(d, c, ret, "a would-be channel", why);
			continue;
		}
		/* proved: only now may the transport open RAM to this channel (rdma: windows) */
		ret = c->ops->chan_open(c, step_ms(end));
		if (ret) {
			ret = dst_fail(d, ret, "channel %u: %s", id, c->err.msg);
			c->ops->close(c);
			return ret;
		}
		d->chans[id].conn = c;
		d->chans[id].seq = 1;
		got++;
	}
	return 0;
}
