// SPDX-License-Identifier: MIT
/*
 * Memory windows: each channel's own rkeys, bound to its QP (see mw.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "core/xport_util.h"
#include "transport/rdma/mr.h"
#include "transport/rdma/mw.h"
#include "transport/rdma/progress.h"
#include "transport/rdma/stream.h"

#define RD_CHK_HDR 4u /* the u32 length in front of a channel's table */

void rmig_rd_mws_release(struct rd_conn *c)
{
	for (unsigned int i = 0; i < c->nmws; i++)
		c->v->dealloc_mw(c->mws[i]);
	free(c->mws);
	c->mws = NULL;
	c->nmws = 0;
}

void rmig_rd_mws_release_all(struct rd_xport *x)
{
	for (struct rd_conn *c = x->conns; c; c = c->next)
		rmig_rd_mws_release(c);
}

/*
 * Allocate and bind one window per slice of x->local on @c's QP, and wait
 * until every bind has completed: an rkey goes out only once it works.
 * Must hold c->mu (a conn op) and x->mr_lock. The rkeys in @rkeys.
 */
static int bind_windows(struct rd_conn *c, uint32_t *rkeys, uint64_t deadline)
{
	struct rd_xport *x = c->x;
	uint64_t seq = 0;
	int ret;

	if (x->revoked)
		return rmig_rd_conn_fail(c, -ECANCELED, "%s: RAM access was revoked (cancelled)",
					 c->label);
	if (c->mws)
		return rmig_rd_conn_fail(c, -EALREADY, "%s: channel opened twice", c->label);
	c->mws = calloc(x->local.nslices ? x->local.nslices : 1, sizeof(*c->mws));
	if (!c->mws)
		return rmig_rd_conn_fail(c, -ENOMEM, "%s: out of memory for memory windows",
					 c->label);
	for (unsigned int i = 0; i < x->local.nslices; i++) {
		const struct rd_lslice *s = &x->local.slices[i];
		struct ibv_mw_bind_info bi = {
		    .mr = s->mr,
		    .addr = (uint64_t)(uintptr_t)s->addr,
		    .length = s->len,
		    .mw_access_flags = IBV_ACCESS_REMOTE_WRITE,
		};

		ret = c->v->alloc_mw(x->pd, IBV_MW_TYPE_2, &c->mws[i]);
		if (ret)
			return rmig_rd_conn_fail(c, ret,
						 "%s: ibv_alloc_mw(type 2) %u of %u failed: %s",
						 c->label, i + 1, x->local.nslices, strerror(-ret));
		c->nmws = i + 1;
		/* a type 2 window takes the rkey its bind names: a fresh tag each time */
		rkeys[i] = ibv_inc_rkey(c->mws[i]->rkey);
		ret = rmig_rd_add_bind(c, c->mws[i], rkeys[i], &bi, &seq);
		if (ret)
			return ret;
	}
	return seq ? rmig_rd_wait_done(c, seq, deadline) : 0;
}

/* Destination: bind (or not) and send the channel's table. Must hold c->mu. */
static int dst_open(struct rd_conn *c, int timeout_ms)
{
	struct rd_xport *x = c->x;
	uint32_t *rkeys = NULL;
	uint8_t *buf = NULL;
	size_t len = 0;
	int ret;

	ret = rmig_rd_check(c);
	if (ret)
		return ret;
	if (x->use_mw) {
		pthread_mutex_lock(&x->mr_lock);
		len = rmig_rd_mrt_size(&x->local);
		rkeys = calloc(x->local.nslices ? x->local.nslices : 1, sizeof(*rkeys));
		buf = malloc(RD_CHK_HDR + len);
		if (!rkeys || !buf)
			ret = rmig_rd_conn_fail(c, -ENOMEM, "%s: out of memory", c->label);
		else if (x->nblocks && !x->local.slices)
			ret = rmig_rd_conn_fail(c, -EINVAL, "%s: RAM is not registered yet",
						c->label);
		else
			ret = bind_windows(c, rkeys, rd_deadline(timeout_ms));
		if (!ret &&
		    rmig_rd_mrt_encode(&x->local, rkeys, buf + RD_CHK_HDR, &len, &c->base.err))
			ret = rmig_rd_conn_fail(c, -EINVAL, "%s: %s", c->label, c->base.err.msg);
		pthread_mutex_unlock(&x->mr_lock);
		if (ret)
			goto out;
	} else {
		buf = malloc(RD_CHK_HDR);
		if (!buf) {
			ret = rmig_rd_conn_fail(c, -ENOMEM, "%s: out of memory", c->label);
			goto out;
		}
	}
	rmig_put_be32(buf, (uint32_t)len);
	ret = rmig_rd_stream_write(c, buf, RD_CHK_HDR + len);
	if (!ret)
		ret = rmig_rd_post_batch(c);
	if (!ret && x->use_mw)
		rmig_store_relaxed(&c->base.tls, rmig_load_relaxed(&c->base.tls) | RMIG_CONN_MW);
out:
	free(buf);
	free(rkeys);
	return ret;
}

/* Source: take the channel's table (none: the WELCOME's MR table stands). */
static int src_open(struct rmig_conn *bc, int timeout_ms)
{
	struct rd_conn *c = rd_conn_of(bc);
	struct rd_remote r;
	uint8_t hdr[RD_CHK_HDR];
	uint8_t *buf;
	uint32_t len;
	int ret;

	ret = rmig_rd_recv(bc, hdr, sizeof(hdr), timeout_ms);
	if (ret)
		return rmig_msg(&bc->err, ret, "%s", bc->recv_err.msg);
	len = rmig_get_be32(hdr);
	if (!len)
		return 0;
	if (len > RMIG_PEER_INFO_MAX)
		return rmig_msg(&bc->err, -EPROTO,
				"%s: the destination's window table is %" PRIu32
				" bytes (at most %u)",
				c->label, len, RMIG_PEER_INFO_MAX);
	buf = malloc(len);
	if (!buf)
		return rmig_msg(&bc->err, -ENOMEM, "%s: out of memory", c->label);
	ret = rmig_rd_recv(bc, buf, len, timeout_ms);
	if (ret) {
		ret = rmig_msg(&bc->err, ret, "%s", bc->recv_err.msg);
		goto out;
	}
	ret = rmig_rd_mrt_decode(buf, len, c->x->blocks, c->x->nblocks, &r, &bc->err);
	if (ret)
		goto out;
	pthread_mutex_lock(&c->mu);
	rmig_rd_remote_release(&c->chan_remote);
	c->chan_remote = r;
	c->have_chan_remote = true;
	pthread_mutex_unlock(&c->mu);
	rmig_store_relaxed(&bc->tls, rmig_load_relaxed(&bc->tls) | RMIG_CONN_MW);
out:
	free(buf);
	return ret;
}

int rmig_rd_chan_open(struct rmig_conn *bc, int timeout_ms)
{
	struct rd_conn *c = rd_conn_of(bc);

	if (!c->x->is_dst)
		return src_open(bc, timeout_ms);
	c = rd_enter(bc, RD_ROLE_SEND);
	return rd_leave(c, dst_open(c, timeout_ms));
}
