// SPDX-License-Identifier: MIT
/*
 * The rdma transport's ops tables: "rdma:HOST:PORT".
 *
 * Source: connect() opens the control conn (which picks the device) and
 * starts registering the RAM blocks in the background (local access only;
 * with RMIG_F_POSTCOPY, which adds remote reads, only in set_peer_info(),
 * after the handshake); set_peer_info() takes the destination's MR table;
 * connect_channel() opens one RC QP per channel. A WRITE waits only for
 * the slices it touches (mr_stream.c).
 * Destination: listen() binds (and checks the memlock limit);
 * local_info(), which the core calls only once the source has
 * authenticated and its block table checked out, registers the RAM
 * blocks for remote writes and hands out the MR table.
 *
 * Sync fences need nothing of their own: the core's SYNC message is stream
 * bytes, i.e. a SEND_WITH_IMM posted behind the round's WRITEs on the same
 * RC QP, and the destination sees it only after they have landed.
 */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "rmig-config.h"
#include "core/xport_util.h"
#include "transport/rdma/rdma.h"

static int parse_addr(struct rd_xport *x, const char *addr, struct rmig_msgbuf *err)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
	struct addrinfo *res;
	char host[256], port[16];
	int ret;

	if (strlen(addr) >= sizeof(x->addr) ||
	    rmig_split_hostport(addr, host, sizeof(host), port, sizeof(port)))
		return rmig_msg(err, -EINVAL, "bad rdma address '%s' (want HOST:PORT)", addr);
	snprintf(x->addr, sizeof(x->addr), "%s", addr);
	if (x->is_dst)
		hints.ai_flags |= AI_PASSIVE;
	ret = getaddrinfo(host, port, &hints, &res);
	if (ret)
		return rmig_msg(err, ret == EAI_NONAME ? -EHOSTUNREACH : -EINVAL,
				"cannot resolve '%s': %s", host, gai_strerror(ret));
	memcpy(&x->sa, res->ai_addr, res->ai_addrlen);
	freeaddrinfo(res);
	return 0;
}

/* RMIG_RDMA_REG=upfront: either side registers all of RAM before the first page, as before. */
static bool reg_upfront(void)
{
	const char *e = getenv("RMIG_RDMA_REG");

	return e && !strcmp(e, "upfront");
}

static void xport_free(struct rd_xport *x)
{
	const struct rmig_verbs_ops *v = x->v;

	/* the core closes conns first; anything left must not outlive the PD */
	while (x->conns)
		rmig_rd_conn_close(x->conns);
	/* after this no rkey this xport handed out is valid: the peer cannot write */
	rmig_rd_mrs_stop_release(&x->local, v);
	rmig_rd_remote_release(&x->remote);
	rmig_rd_pull_release(x);
	if (x->pd)
		v->dealloc_pd(x->pd);
	if (x->lid)
		v->destroy_id(x->lid);
	if (x->lech)
		v->destroy_event_channel(x->lech);
	if (x->efd >= 0)
		close(x->efd);
	pthread_mutex_destroy(&x->lock);
	pthread_mutex_destroy(&x->mr_lock);
	free(x->blocks);
	free(x);
}

static int xport_new(const struct rmig_xport_params *p, const char *addr, bool dst,
		     struct rd_xport **xp, struct rmig_msgbuf *err)
{
	struct rd_xport *x = calloc(1, sizeof(*x));
	int ret;

	if (!x)
		return rmig_msg(err, -ENOMEM, "out of memory");
	x->base.ops = &rmig_rdma_ops;
	x->v = rmig_rdma_verbs;
	x->is_dst = dst;
	x->efd = -1;
	pthread_mutex_init(&x->lock, NULL);
	pthread_mutex_init(&x->mr_lock, NULL);
	atomic_init(&x->down, false);
	atomic_init(&x->reg_ns, 0);
	x->opts = *p->opts;
	x->opts.ib_dev = NULL; /* kept in x->ib_dev; the caller's string may go */
	x->reg_stream = !reg_upfront();
	atomic_init(&x->reg_failed, 0);
	if (p->opts->ib_dev) {
		if (strlen(p->opts->ib_dev) >= sizeof(x->ib_dev)) {
			ret = rmig_msg(err, -EINVAL, "ib_dev name too long");
			goto err_free;
		}
		snprintf(x->ib_dev, sizeof(x->ib_dev), "%s", p->opts->ib_dev);
	}
	x->channels = p->channels ? p->channels : 1;
	x->nblocks = p->nblocks;
	x->blocks = calloc(p->nblocks ? p->nblocks : 1, sizeof(*x->blocks));
	if (!x->blocks) {
		ret = rmig_msg(err, -ENOMEM, "out of memory");
		goto err_free;
	}
	if (p->nblocks)
		memcpy(x->blocks, p->blocks, p->nblocks * sizeof(*x->blocks));
	ret = parse_addr(x, addr, err);
	if (ret)
		goto err_free;
	x->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (x->efd < 0) {
		ret = rmig_msg(err, -errno, "eventfd: %s", strerror(errno));
		goto err_free;
	}
	*xp = x;
	return 0;

err_free:
	xport_free(x);
	return ret;
}

/* ------------------------------------------------------------- source */

static int rd_connect(const struct rmig_xport_params *p, const char *addr, struct rmig_xport **xp,
		      struct rmig_conn **ctl, struct rmig_msgbuf *err)
{
	struct rd_xport *x;
	struct rd_conn *c;
	char label[400];
	int ret;

	ret = xport_new(p, addr, false, &x, err);
	if (ret)
		return ret;
	snprintf(label, sizeof(label), "control conn to %s", addr);
	/* a memlock limit too low fails here, before anything is sent */
	ret = rmig_rd_memlock_precheck(x, err);
	if (!ret)
		ret = rmig_rd_connect(x, label, &c, err);
	if (ret)
		goto err_free;
	/*
	 * Local access only grants the peer nothing, so it may start now and
	 * overlap the handshake and the destination's own registration.
	 * Remote reads (postcopy) wait for set_peer_info(), after the
	 * destination proved the key.
	 */
	if (x->reg_stream && !(x->opts.flags & RMIG_F_POSTCOPY)) {
		ret = rmig_rd_register_blocks(x, true, err);
		if (ret)
			goto err_free; /* xport_free closes the conn */
	}
	*xp = &x->base;
	*ctl = &c->base;
	return 0;

err_free:
	xport_free(x);
	return ret;
}

static int rd_set_peer_info(struct rmig_xport *xp, const void *info, size_t len)
{
	struct rd_xport *x = rd_xport_of(xp);
	int ret;

	if (!len)
		return rmig_msg(&x->base.err, -EPROTO,
				"the destination sent no rdma MR table (is it listening on rdma?)");
	/*
	 * With RMIG_F_POSTCOPY (remote reads) local RAM is registered only
	 * now, after the handshake (and the authentication, with a key), so
	 * nobody may reach it before the destination proved the key. Without
	 * it, streamed registration started in connect() and this is a no-op.
	 */
	ret = rmig_rd_register_blocks(x, x->reg_stream, &x->base.err);
	if (ret)
		return ret;
	rmig_rd_remote_release(&x->remote);
	x->have_remote = false;
	ret = rmig_rd_mrt_decode(info, len, x->blocks, x->nblocks, &x->remote, &x->base.err);
	if (ret)
		return ret;
	x->have_remote = true;
	return 0;
}

static int rd_connect_channel(struct rmig_xport *xp, unsigned int ch, struct rmig_conn **cp)
{
	struct rd_xport *x = rd_xport_of(xp);
	struct rd_conn *c;
	char label[400];
	int ret;

	snprintf(label, sizeof(label), "channel %u conn to %s", ch, x->addr);
	ret = rmig_rd_connect(x, label, &c, &x->base.err);
	if (ret)
		return ret;
	*cp = &c->base;
	return 0;
}

/* -------------------------------------------------------- destination */

static int rd_listen(const struct rmig_xport_params *p, const char *addr, struct rmig_xport **xp,
		     struct rmig_msgbuf *err)
{
	struct rd_xport *x;
	int ret;

	ret = xport_new(p, addr, true, &x, err);
	if (ret)
		return ret;
	ret = rmig_rd_listen_setup(x, err);
	/*
	 * Not registered yet: only local_info(), once a source has
	 * authenticated and its table checked out, opens RAM to remote
	 * writes. A memlock limit too low for it fails here already.
	 */
	if (!ret)
		ret = rmig_rd_memlock_precheck(x, err);
	if (ret) {
		xport_free(x);
		return ret;
	}
	*xp = &x->base;
	return 0;
}

static int rd_port(struct rmig_xport *xp)
{
	return rd_xport_of(xp)->port;
}

static int rd_accept(struct rmig_xport *xp, int timeout_ms, struct rmig_conn **cp)
{
	struct rd_xport *x = rd_xport_of(xp);
	struct rd_conn *c;
	int ret;

	if (rmig_load_relaxed(&x->down))
		return rmig_msg(&x->base.err, -ECANCELED, "shut down");
	ret = rmig_rd_accept(x, timeout_ms, &c, &x->base.err);
	if (ret)
		return ret;
	*cp = &c->base;
	return 0;
}

/*
 * With memory windows the MRs have no remote access and their rkeys would
 * open nothing: the table carries the blocks' slicing with rkey 0, and each
 * channel gets its windows' rkeys from chan_open() (mw.c).
 */
static int encode_shape(struct rd_xport *x, void *buf, size_t *len)
{
	uint32_t *zero = calloc(x->local.nslices ? x->local.nslices : 1, sizeof(*zero));
	int ret;

	if (!zero)
		return rmig_msg(&x->base.err, -ENOMEM, "out of memory");
	ret = rmig_rd_mrt_encode(&x->local, zero, buf, len, &x->base.err);
	free(zero);
	return ret;
}

static int rd_local_info(struct rmig_xport *xp, void *buf, size_t *len)
{
	struct rd_xport *x = rd_xport_of(xp);
	int ret;

	/*
	 * The core asks only for an authenticated source with a matching
	 * table. Streamed, the table goes out with the slices not registered
	 * yet marked pending (version 2); with memory windows it carries the
	 * slicing alone, and each channel's windows are bound as the slices
	 * get registered (mw.c).
	 */
	ret = rmig_rd_register_blocks(x, x->reg_stream, &x->base.err);
	if (ret)
		return ret;
	pthread_mutex_lock(&x->mr_lock);
	if (x->revoked)
		ret = rmig_msg(&x->base.err, -ECANCELED, "rdma: RAM access was revoked (cancelled)");
	else if (x->nblocks && !x->local.slices)
		ret = rmig_msg(&x->base.err, -EINVAL, "rdma: RAM is not registered yet");
	else if (x->use_mw)
		ret = encode_shape(x, buf, len);
	else
		ret = rmig_rd_mrt_encode(&x->local, NULL, buf, len, &x->base.err);
	pthread_mutex_unlock(&x->mr_lock);
	return ret;
}

/*
 * Deallocate every channel's windows and deregister local RAM now: from
 * here on a peer's RDMA WRITE or READ into it
 * fails with a remote access error instead of landing. The QPs may still be
 * alive (the destination's RESULT may still be draining on them).
 */
static void rd_revoke(struct rmig_xport *xp)
{
	struct rd_xport *x = rd_xport_of(xp);

	/* windows first: a provider may refuse to deregister an MR with windows bound */
	pthread_mutex_lock(&x->lock);
	pthread_mutex_lock(&x->mr_lock);
	x->revoked = true;
	rmig_rd_mws_release_all(x);
	rmig_rd_mrs_stop_release(&x->local, x->v);
	pthread_mutex_unlock(&x->mr_lock);
	pthread_mutex_unlock(&x->lock);
}

/* --------------------------------------------------------------- both */

static void rd_xshutdown(struct rmig_xport *xp)
{
	struct rd_xport *x = rd_xport_of(xp);
	uint64_t one = 1;

	/* relaxed: the eventfd, which every conn and accept polls, wakes them; they re-read it */
	rmig_store_relaxed(&x->down, true);
	if (write(x->efd, &one, sizeof(one)) < 0) {
		/* only EAGAIN is possible, and then it is readable already */
	}
}

static void rd_destroy(struct rmig_xport *xp)
{
	if (xp)
		xport_free(rd_xport_of(xp));
}

static uint64_t rd_reg_ns(struct rmig_xport *xp)
{
	return rmig_load_relaxed(&rd_xport_of(xp)->reg_ns);
}

const struct rmig_xport_ops rmig_rdma_ops = {
	.name = "rdma",
	.caps = RMIG_XCAP_PLACES_DATA | RMIG_XCAP_PULL,
	.connect = rd_connect,
	.set_peer_info = rd_set_peer_info,
	.connect_channel = rd_connect_channel,
	.listen = rd_listen,
	.port = rd_port,
	.accept = rd_accept,
	.revoke = rd_revoke,
	.local_info = rd_local_info,
	.pull_info = rmig_rd_pull_info,
	.pull_open = rmig_rd_pull_open,
	.shutdown = rd_xshutdown,
	.destroy = rd_destroy,
	.reg_ns = rd_reg_ns,
	.finish = rmig_xport_nop_finish, /* the peer confirms the end, not the transport */
	.load = rmig_xport_no_load,	 /* not RMIG_XCAP_LOAD */
	.load_stats = rmig_xport_nop_load_stats,
};
