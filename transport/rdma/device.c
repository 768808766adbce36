// SPDX-License-Identifier: MIT
/*
 * Which device, port and GID a migration uses, and what the options may say
 * about them.
 *
 * rdma_cm picks the device and port from the IP address (the netdev that
 * owns it), and the GID from the address too: the table entry holding the
 * IPv4-mapped (or IPv6) address, of the RoCE type set by the kernel's
 * default_roce_mode (v2 by default). It offers no way to choose a GID index
 * or a port for a connection. So ib_dev, ib_port and gid_index are
 * assertions: each is checked against what rdma_cm chose, and a mismatch is
 * an error naming both sides; none of them steers the choice.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/xport_util.h"
#include "transport/rdma/device.h"

/* "rxe0, mlx5_0" or "none", for messages */
static void device_names(const struct rmig_verbs_ops *v, char *buf, size_t len)
{
	struct ibv_device **list;
	size_t used = 0;
	int n, i;

	snprintf(buf, len, "none");
	if (v->get_device_list(&list, &n))
		return;
	for (i = 0; i < n && used + 2 < len; i++)
		used += (size_t)snprintf(buf + used, len - used, "%s%s", i ? ", " : "",
					 ibv_get_device_name(list[i]));
	v->free_device_list(list);
}

int rmig_rd_no_device(const struct rmig_verbs_ops *v, const char *addr, int code,
		      struct rmig_msgbuf *err)
{
	char names[200];

	device_names(v, names, sizeof(names));
	return rmig_msg(err, -ENODEV, "no RDMA device for address %s (%s; devices found: %s)", addr,
			strerror(-code), names);
}

/* The GID rdma_cm uses for a local IP address. */
static void addr_gid(const struct sockaddr *sa, union ibv_gid *gid)
{
	memset(gid, 0, sizeof(*gid));
	if (sa->sa_family == AF_INET) {
		gid->raw[10] = 0xff;
		gid->raw[11] = 0xff;
		memcpy(&gid->raw[12], &((const struct sockaddr_in *)sa)->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6) {
		memcpy(gid->raw, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
	}
}

static bool addr_is_any(const struct sockaddr *sa)
{
	static const struct in6_addr any6 = IN6ADDR_ANY_INIT;

	if (sa->sa_family == AF_INET)
		return ((const struct sockaddr_in *)sa)->sin_addr.s_addr == htonl(INADDR_ANY);
	if (sa->sa_family == AF_INET6)
		return !memcmp(&((const struct sockaddr_in6 *)sa)->sin6_addr, &any6, sizeof(any6));
	return true;
}

/*
 * gid_index >= 0: the entry at that index must hold the GID of the local
 * address of @id (so the connection really uses it).
 */
int rmig_rd_check_gid(struct rd_xport *x, struct rdma_cm_id *id, struct rmig_msgbuf *err)
{
	const struct sockaddr *src = (const struct sockaddr *)&id->route.addr.src_addr;
	union ibv_gid want, have;
	char ws[INET6_ADDRSTRLEN], hs[INET6_ADDRSTRLEN];
	int ret;

	if (x->opts.gid_index < 0 || addr_is_any(src))
		return 0;
	addr_gid(src, &want);
	ret = x->v->query_gid(id->verbs, id->port_num, x->opts.gid_index, &have);
	if (ret)
		return rmig_msg(err, ret, "cannot read GID index %d of %s port %u: %s",
				x->opts.gid_index, ibv_get_device_name(id->verbs->device),
				id->port_num, strerror(-ret));
	if (memcmp(&want, &have, sizeof(want))) {
		inet_ntop(AF_INET6, want.raw, ws, sizeof(ws));
		inet_ntop(AF_INET6, have.raw, hs, sizeof(hs));
		return rmig_msg(
		    err, -EINVAL,
		    "gid_index %d on %s port %u holds %s, but rdma_cm uses %s for this address "
		    "(rdma_cm picks the GID from the address; leave gid_index at -1 or fix it)",
		    x->opts.gid_index, ibv_get_device_name(id->verbs->device), id->port_num, hs,
		    ws);
	}
	return 0;
}

/*
 * RMIG_RDMA_MW=off: the destination hands out its MR rkeys (scoped by the
 * per-listen PD, as on a device without windows) instead of binding
 * windows per channel, so that its registration streams too (rdma.c,
 * local_info); docs/rdma.md weighs the two.
 */
static bool mw_off(void)
{
	const char *e = getenv("RMIG_RDMA_MW");

	return e && !strcmp(e, "off");
}

/*
 * Adopt the device of @ctx (port @port) for the xport: check the options,
 * read its limits, allocate the PD. Later conns must use the same device:
 * memory is registered once, in this PD.
 */
int rmig_rd_use_device(struct rd_xport *x, struct ibv_context *ctx, uint8_t port,
		       struct rmig_msgbuf *err)
{
	const char *name = ibv_get_device_name(ctx->device);
	struct ibv_device_attr da;
	struct ibv_port_attr pa;
	unsigned int depth;
	int ret;

	if (x->ctx) {
		if (ctx != x->ctx)
			return rmig_msg(err, -EXDEV,
					"connection uses RDMA device %s, but this migration's "
					"memory is registered on %s",
					name, ibv_get_device_name(x->ctx->device));
		return 0;
	}
	if (x->ib_dev[0] && strcmp(x->ib_dev, name))
		return rmig_msg(err, -EINVAL,
				"address %s is on RDMA device %s, but ib_dev asks for %s", x->addr,
				name, x->ib_dev);
	if (x->opts.ib_port > 0 && port && port != x->opts.ib_port)
		return rmig_msg(err, -EINVAL,
				"address %s is on %s port %u, but ib_port asks for %d", x->addr,
				name, port, x->opts.ib_port);
	if (!port)
		port = x->opts.ib_port > 0 ? (uint8_t)x->opts.ib_port : 1;

	ret = x->v->query_device(ctx, &da);
	if (ret)
		return rmig_msg(err, ret, "ibv_query_device(%s) failed: %s", name, strerror(-ret));
	ret = x->v->query_port(ctx, port, &pa);
	if (ret)
		return rmig_msg(err, ret, "ibv_query_port(%s, %u) failed: %s", name, port,
				strerror(-ret));
	if (pa.state != IBV_PORT_ACTIVE)
		return rmig_msg(err, -ENETDOWN, "%s port %u is %s, not active", name, port,
				ibv_port_state_str(pa.state));

	depth = x->opts.sq_depth ? x->opts.sq_depth : 512;
	if (da.max_qp_wr > 0 && depth > (unsigned int)da.max_qp_wr)
		depth = (unsigned int)da.max_qp_wr;
	/* the CQ also holds the receive completions: clamp before checking */
	if (da.max_cqe > 0 && depth + RD_RECV_BUFS + 16 > (unsigned int)da.max_cqe)
		depth = (unsigned int)da.max_cqe > RD_RECV_BUFS + 16 ?
				(unsigned int)da.max_cqe - RD_RECV_BUFS - 16 : 0;
	if (depth < 8)
		return rmig_msg(err, -EINVAL, "sq_depth %u is too small (at least 8)", depth);
	x->sq_depth = depth;
	x->signal_every = x->opts.signal_every ? x->opts.signal_every : 64;
	/* a full queue must hold a signaled WR (see datapath.c) */
	if (x->signal_every > depth / 2)
		x->signal_every = depth / 2;
	x->max_sge = da.max_sge > 0 && (unsigned int)da.max_sge < RD_MAX_SGE
			 ? (unsigned int)da.max_sge
			 : RD_MAX_SGE;
	x->rd_atomic = da.max_qp_rd_atom > 16 ? 16 : (unsigned int)da.max_qp_rd_atom;
	x->max_msg = pa.max_msg_sz && pa.max_msg_sz < RD_MSG_CAP ? pa.max_msg_sz : RD_MSG_CAP;
	/*
	 * Type 2 windows are bound to one QP: a rail's channel may move to
	 * another QP (rails.c), so rails keep MR rkeys in their PD.
	 */
	x->use_mw = x->is_dst && !(x->opts.flags & RD_XF_NO_MW) && !mw_off() && da.max_mw > 0 &&
		    (da.device_cap_flags &
		     (IBV_DEVICE_MEM_WINDOW_TYPE_2A | IBV_DEVICE_MEM_WINDOW_TYPE_2B));

	ret = x->v->alloc_pd(ctx, &x->pd);
	if (ret)
		return rmig_msg(err, ret, "ibv_alloc_pd(%s) failed: %s", name, strerror(-ret));
	x->ctx = ctx;
	x->port_num = port;
	return 0;
}

/* Bytes of registered memory this xport will need: RAM plus stream buffers. */
static uint64_t memlock_need(const struct rd_xport *x)
{
	uint64_t need = (uint64_t)(x->channels + 1) * (RD_RECV_BUFS + RD_SEND_SLOTS) * RD_BUF_SIZE;

	for (unsigned int i = 0; i < x->nblocks; i++)
		need += x->blocks[i].length;
	return need;
}

int rmig_rd_memlock_precheck(struct rd_xport *x, struct rmig_msgbuf *err)
{
	return rmig_rd_memlock_check(memlock_need(x), err);
}

/*
 * A background registration failed: every conn of the xport fails with
 * that message at its next operation or wake-up (rmig_rd_check), so the
 * migration stops naming the block and slice, on the destination too, where
 * no WRITE of its own would notice.
 */
static void reg_failed(void *arg, int ret, const char *msg)
{
	struct rd_xport *x = arg;
	uint64_t one = 1;

	snprintf(x->reg_err.msg, sizeof(x->reg_err.msg), "%s", msg);
	atomic_store_explicit(&x->reg_failed, ret, memory_order_release);
	/*
	 * Wake whoever sleeps on a conn (both roles), so it sees the failure
	 * now. Only if the conn list is free: revoke() holds x->lock while it
	 * joins this thread, and then the xport is ending anyway (sleepers
	 * still see the flag at their next keepalive tick).
	 */
	if (pthread_mutex_trylock(&x->lock))
		return;
	for (struct rd_conn *c = x->conns; c; c = c->next)
		for (int r = 0; r < RD_ROLES; r++)
			if (write(c->kick[r], &one, sizeof(one)) < 0) {
				/* EAGAIN only: it is readable already */
			}
	pthread_mutex_unlock(&x->lock);
}

/*
 * Register the RAM blocks. The destination allows remote writes (with
 * memory windows: only window binding, the windows allow the writes); the
 * source needs local access only (LOCAL_WRITE because some providers hand
 * out lkeys only with it), plus remote reads when it may serve postcopy
 * pulls (RMIG_F_POSTCOPY, pull.c). Nothing is granted that no peer uses:
 * rkeys are guessable on some providers (rxe).
 */
int rmig_rd_register_blocks(struct rd_xport *x, bool stream, struct rmig_msgbuf *err)
{
	int access = IBV_ACCESS_LOCAL_WRITE;
	uint64_t ns = 0;
	int ret;

	pthread_mutex_lock(&x->mr_lock);
	if (x->revoked) {
		ret = rmig_msg(err, -ECANCELED, "rdma: RAM access was revoked (cancelled)");
		goto out;
	}
	ret = 0;
	if (x->local.slices || !x->nblocks)
		goto out;
	ret = rmig_rd_memlock_check(memlock_need(x), err);
	if (ret)
		goto out;
	if (x->is_dst && x->use_mw)
		access |= IBV_ACCESS_MW_BIND; /* remote writes only through windows (mw.c) */
	else if (x->is_dst)
		access |= IBV_ACCESS_REMOTE_WRITE;
	else if (x->opts.flags & RMIG_F_POSTCOPY)
		access |= IBV_ACCESS_REMOTE_READ;
	if (stream) {
		struct rd_stream_params sp = {
		    .slice = x->opts.mr_slice,
		    .access = access,
		    /* the source reads rkeys from it; with windows each channel has its own (mw.c) */
		    .publish_status = x->is_dst && !x->use_mw,
		    .ns = &x->reg_ns,
		    .on_fail = reg_failed,
		    .arg = x,
		};

		/* returns at once; the source's WRITEs wait per slice (regwait.c) */
		ret = rmig_rd_mrs_stream(&x->local, x->v, x->pd, x->blocks, x->nblocks, &sp, err);
		goto out;
	}
	ret = rmig_rd_mrs_register(&x->local, x->v, x->pd, x->blocks, x->nblocks, x->opts.mr_slice,
				   access, &ns, err);
	rmig_add_relaxed(&x->reg_ns, ns);
out:
	pthread_mutex_unlock(&x->mr_lock);
	return ret;
}
