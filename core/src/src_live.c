// SPDX-License-Identifier: MIT
/*
 * What the live engine (core/live/) and the postcopy source
 * (core/postcopy/pc_src.c) use of a source beyond the public API
 * (src_live.h): its blocks, the destination's acks and reasons on the
 * control connection, and postcopy's messages there.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/src/src_engine.h"
#include "core/src/src_fail.h"
#include "core/src/src_live.h"

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

void rmig_src_abort(struct rmig_src *src, int code, const char *msg)
{
	if (src)
		src_tell_peer(src, code, msg && *msg ? msg : NULL);
}
