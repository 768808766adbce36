// SPDX-License-Identifier: MIT
/*
 * Postcopy pulls by one-sided RDMA READ.
 *
 * Source: with RMIG_F_POSTCOPY its RAM was registered with REMOTE_READ
 * (device.c); pull_info() hands out that MR table, in the same encoding the
 * destination uses for its own (mr.c).
 * Destination: pull_open() decodes the source's table against the local
 * blocks and registers a bounce area; the core reads pages into it with
 * pull() and places them itself (userfaultfd needs an atomic copy into a
 * missing page, which a WRITE by the NIC cannot be). READs go on the
 * control QP, behind nothing: the source's RAM is final by then.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "transport/rdma/progress.h"
#include "transport/rdma/pull.h"

int rmig_rd_pull_info(struct rmig_xport *xp, void *buf, size_t *len)
{
	struct rd_xport *x = rd_xport_of(xp);
	int ret;

	if (x->is_dst)
		return rmig_msg(&xp->err, -EINVAL, "rdma: pull_info is the source's");
	if (!(x->opts.flags & RMIG_F_POSTCOPY))
		return rmig_msg(&xp->err, -ENOTSUP,
				"rdma: source RAM is not readable by the destination "
				"(connect with RMIG_F_POSTCOPY to allow postcopy pulls)");
	/* every rkey goes out at once: the streamed registration must be complete */
	ret = rmig_rd_mrs_wait(&x->local, NULL, &x->down, NULL, &xp->err);
	if (ret)
		return ret;
	pthread_mutex_lock(&x->mr_lock);
	if (x->nblocks && !x->local.slices)
		ret = rmig_msg(&xp->err, -EINVAL, "rdma: RAM is not registered yet");
	else
		ret = rmig_rd_mrt_encode(&x->local, NULL, buf, len, &xp->err);
	pthread_mutex_unlock(&x->mr_lock);
	return ret;
}

int rmig_rd_pull_open(struct rmig_xport *xp, const void *info, size_t len, size_t size,
		      void **area)
{
	struct rd_xport *x = rd_xport_of(xp);
	long psz = sysconf(_SC_PAGESIZE);
	size_t bytes;
	int ret;

	if (!x->is_dst || x->pull_area)
		return rmig_msg(&xp->err, -EINVAL, "rdma: pull_open twice, or on the source");
	if (!x->pd)
		return rmig_msg(&xp->err, -EINVAL, "rdma: no device yet");
	if (!size || size > RD_MSG_CAP)
		return rmig_msg(&xp->err, -EINVAL, "rdma: pull area of %zu bytes", size);
	ret = rmig_rd_mrt_decode(info, len, x->blocks, x->nblocks, &x->pull_remote, &xp->err);
	if (ret)
		return ret;
	bytes = (size + (size_t)psz - 1) & ~((size_t)psz - 1);
	x->pull_area = aligned_alloc((size_t)psz, bytes);
	if (!x->pull_area) {
		ret = rmig_msg(&xp->err, -ENOMEM, "rdma: out of memory for the pull area");
		goto fail;
	}
	ret = x->v->reg_mr(x->pd, x->pull_area, bytes, IBV_ACCESS_LOCAL_WRITE, &x->pull_mr);
	if (ret) {
		ret = rmig_rd_reg_error(ret, "the postcopy pull area, LOCAL_WRITE", x->pull_area,
					bytes, bytes, &xp->err);
		goto fail;
	}
	x->pull_size = bytes;
	*area = x->pull_area;
	return 0;
fail:
	free(x->pull_area);
	x->pull_area = NULL;
	rmig_rd_remote_release(&x->pull_remote);
	return ret;
}

void rmig_rd_pull_release(struct rd_xport *x)
{
	if (x->pull_mr)
		x->v->dereg_mr(x->pull_mr);
	x->pull_mr = NULL;
	free(x->pull_area);
	x->pull_area = NULL;
	rmig_rd_remote_release(&x->pull_remote);
}

static int pull_locked(struct rd_conn *c, uint8_t *p, unsigned int block, uint64_t off,
		       uint64_t len, uint64_t *ticket)
{
	const struct rd_xport *x = c->x;
	const struct rd_remote *r = &x->pull_remote;
	uint64_t seq = 0;
	int ret;

	ret = rmig_rd_check(c);
	if (ret)
		return ret;
	if (!x->pull_mr)
		return rmig_rd_conn_fail(c, -EINVAL, "%s: pull before pull_open", c->label);
	if (!len || p < x->pull_area || (uint64_t)(p - x->pull_area) > x->pull_size ||
	    len > x->pull_size - (uint64_t)(p - x->pull_area))
		return rmig_msg(&c->base.err, -EINVAL, "%s: pull target outside the pull area",
				c->label);
	if (block >= r->nblocks || off > r->blocks[block].length ||
	    len > r->blocks[block].length - off)
		return rmig_msg(&c->base.err, -EINVAL,
				"%s: pull of %" PRIu64 " bytes at block %u offset %" PRIu64
				" is outside the source's RAM",
				c->label, len, block, off);
	while (len) {
		const struct rd_rslice *rs = rmig_rd_remote_find(r, block, off);
		uint64_t n = rs->off + rs->len - off;
		struct ibv_sge sge;

		if (n > len)
			n = len;
		if (n > c->max_msg)
			n = c->max_msg;
		sge = (struct ibv_sge){ (uintptr_t)p, (uint32_t)n, x->pull_mr->lkey };
		ret = rmig_rd_add_wr(c, RD_OP_READ, &sge, 1, rs->addr + (off - rs->off), rs->rkey,
				     n == len, &seq);
		if (ret)
			return ret;
		rmig_count(&c->base.wire_bytes, n);
		p += n;
		off += n;
		len -= n;
	}
	*ticket = seq;
	return rmig_rd_post_batch(c);
}

int rmig_rd_pull(struct rmig_conn *bc, void *local, unsigned int block, uint64_t off, uint64_t len,
		 uint64_t *ticket)
{
	struct rd_conn *c = rd_enter(bc, RD_ROLE_SEND);

	return rd_leave(c, pull_locked(c, local, block, off, len, ticket));
}

int rmig_rd_pull_wait(struct rmig_conn *bc, uint64_t ticket, int timeout_ms)
{
	struct rd_conn *c = rd_enter(bc, RD_ROLE_SEND);
	int ret = rmig_rd_check(c);

	if (!ret && (!ticket || ticket >= c->sq_next))
		ret = rmig_msg(&c->base.err, -EINVAL, "%s: pull_wait for unknown ticket %" PRIu64,
			       c->label, ticket);
	if (!ret)
		ret = rmig_rd_wait_done(c, ticket, rd_deadline(timeout_ms));
	if (ret == -ETIMEDOUT)
		rmig_msg(&c->base.err, ret, "%s: RDMA READ not complete after %d ms", c->label,
			 timeout_ms);
	return rd_leave(c, ret);
}
