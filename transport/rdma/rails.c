// SPDX-License-Identifier: MIT
/*
 * Multi-rail rdma: "rdma:HOST1,HOST2,...:PORT" moves one migration over
 * several RDMA devices (or ports), one rail per address.
 *
 * Each rail is a whole rdma xport (rdma.c) of its own: its device, PD,
 * registered RAM and MR table. This file only composes them:
 *
 *  - Source: every rail opens a rail connection of its own first (the last
 *    rail first), which carries one RAIL_HELLO ("rail k of n", and what
 *    fabric the source's end of the rail is on) and the destination's
 *    answer; then rail 0 opens the migration's control connection. So a
 *    rail that matches no device, that the destination does not listen on,
 *    that it lists in another place, or whose two ends are on different
 *    fabrics (rails_fabric.c), fails before the destination's core sees a
 *    source.
 *    Channel c goes to rail c % n; the destination's MR tables arrive as
 *    one list (RMRL) and each rail takes its own.
 *  - Destination: one listener per rail (specific addresses, one port);
 *    accept() waits on all of them. Hello connections (marked in the
 *    rdma_cm private data, conn.c) it checks and answers itself; it hands
 *    the core only the control and channel connections. local_info()
 *    refuses while a rail has not said hello: the source lists fewer rails
 *    (or is a one-rail source), and the core passes that on to it.
 *  - Both: two rails of one side on one device port are one link, not two
 *    rails (no more bandwidth, and a port that dies takes both): refused,
 *    at listen for the destination's, in the hellos for the source's,
 *    unless RMIG_RDMA_RAILS_ALLOW=shared-port.
 *
 * Wire (big-endian):
 *   RAIL_HELLO  rails_fabric.h (version 2, RL_HELLO_LEN bytes)
 *   RAIL_ANSWER u32 "RMRA" | i32 status (0 or -errno) | u8 token[16] | char why[RL_WHY]
 *   MR list     u32 "RMRL" | u16 version 1 | u16 nrails
 *               | per rail: u32 length | that rail's MR table (mr.c, "RMRT")
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "rmig-config.h"
#include "core/byteorder.h"
#include "core/xport_util.h"
#include "transport/rdma/conn.h"
#include "transport/rdma/rails_priv.h"

#define RL_ANSWER_MAGIC 0x524d5241u /* "RMRA" */
#define RL_LIST_MAGIC	0x524d524cu /* "RMRL" */
#define RL_LIST_VERSION 1u
#define RL_PULL_MAGIC	0x524d504cu /* "RMPL": the source's pull tables, one per rail */

/* rail @k's part of a list: encode it into @b (room *@len, then its length) */
typedef int (*rl_put_fn)(struct rmig_xport *rail, void *b, size_t *len);
/* rail @k's part of a list: take it */
typedef int (*rl_take_fn)(struct rl_xport *r, unsigned int k, const void *b, size_t len,
			  void *arg);

/*
 * A list with one part per rail: @magic | u16 version 1 | u16 rails, then per
 * rail u32 length + that rail's part, made by @put on each rail's xport.
 */
static int rl_join(struct rl_xport *r, uint32_t magic, rl_put_fn put, void *buf, size_t *len)
{
	uint8_t *b = buf;
	size_t off = 8;
	int ret;

	if (*len < off)
		return rmig_msg(&r->base.err, -ENOSPC, "rdma rail list: no room");
	rmig_put_be32(b, magic);
	rmig_put_be16(b + 4, RL_LIST_VERSION);
	rmig_put_be16(b + 6, (uint16_t)r->nrails);
	for (unsigned int k = 0; k < r->nrails; k++) {
		size_t l;

		if (*len - off < 4)
			return rmig_msg(&r->base.err, -ENOSPC,
					"rdma rail list: no room for rail %u", k);
		l = *len - off - 4;
		ret = put(r->rail[k].xp, b + off + 4, &l);
		if (ret)
			return rmig_msg(&r->base.err, ret, "rail %u (%s): %s", k, r->rail[k].addr,
					r->rail[k].xp->err.msg);
		rmig_put_be32(b + off, (uint32_t)l);
		off += 4 + l;
	}
	*len = off;
	return 0;
}

/*
 * Split what rl_join() made (the caller checked the magic) and hand each
 * rail's part to @take; the count must be this side's.
 */
static int rl_split(struct rl_xport *r, const void *info, size_t len, rl_take_fn take, void *arg)
{
	const uint8_t *b = info;
	size_t off = 8;
	unsigned int n = rmig_get_be16(b + 6);
	int ret;

	if (rmig_get_be16(b + 4) != RL_LIST_VERSION)
		return rmig_msg(&r->base.err, -EPROTO, "rdma rail list: version %u unknown",
				rmig_get_be16(b + 4));
	if (n != r->nrails)
		return rmig_msg(&r->base.err, -EPROTO,
				"this %s migrates over %u rails (%s), the %s over %u",
				r->is_dst ? "destination" : "source", r->nrails, r->list,
				r->is_dst ? "source" : "destination", n);
	for (unsigned int k = 0; k < n; k++) {
		uint32_t l;

		if (len - off < 4 || (l = rmig_get_be32(b + off)) > len - off - 4)
			return rmig_msg(&r->base.err, -EPROTO, "rdma rail list: rail %u truncated",
					k);
		ret = take(r, k, b + off + 4, l, arg);
		if (ret)
			return ret;
		off += 4 + l;
	}
	if (off != len)
		return rmig_msg(&r->base.err, -EPROTO, "rdma rail list: %zu trailing bytes",
				len - off);
	return 0;
}
#define RL_WHY		400u
#define RL_ANSWER_LEN	(8u + RL_TOKEN_LEN + RL_WHY)

/* "h1,h2,[v6]:port" -> one "HOST:PORT" per rail. */
static int parse_rails(struct rl_xport *r, const char *addr, struct rmig_msgbuf *err)
{
	const char *colon = strrchr(addr, ':'), *h, *end;
	size_t len;

	if (!colon || !colon[1] || colon == addr)
		return rmig_msg(err, -EINVAL, "bad rdma rail list '%s' (want HOST,HOST,...:PORT)",
				addr);
	for (const char *p = colon + 1; *p; p++)
		if (*p < '0' || *p > '9' || p - colon > 5)
			return rmig_msg(err, -EINVAL, "bad port in rdma rail list '%s'", addr);
	if (!strcmp(colon + 1, "0"))
		return rmig_msg(err, -EINVAL,
				"rdma rail list '%s': give a port (every rail listens on the same one)",
				addr);
	snprintf(r->list, sizeof(r->list), "%s", addr);
	for (h = addr; h < colon; h = end + 1) {
		end = memchr(h, ',', (size_t)(colon - h));
		if (!end)
			end = colon;
		len = (size_t)(end - h);
		if (!len)
			return rmig_msg(err, -EINVAL, "rdma rail list '%s': an empty address",
					addr);
		if (r->nrails == RD_RAILS_MAX)
			return rmig_msg(err, -E2BIG, "rdma rail list '%s': more than %u rails",
					addr, RD_RAILS_MAX);
		if (len + strlen(colon) >= sizeof(r->rail[0].addr))
			return rmig_msg(err, -EINVAL, "rdma rail list '%s': address too long",
					addr);
		snprintf(r->rail[r->nrails].addr, sizeof(r->rail[0].addr), "%.*s%s", (int)len, h,
			 colon);
		r->nrails++;
	}
	return 0;
}

static void rl_free(struct rl_xport *r)
{
	rmig_rl_resume_free(r);
	rmig_rl_numa_free(r);
	for (unsigned int k = 0; k < r->nrails; k++) {
		if (r->rail[k].hello)
			r->rail[k].hello->ops->close(r->rail[k].hello);
		if (r->rail[k].xp)
			rmig_rdma_ops.destroy(r->rail[k].xp);
	}
	pthread_mutex_destroy(&r->cm_mu);
	pthread_mutex_destroy(&r->vc_mu);
	pthread_mutex_destroy(&r->rs_mu);
	pthread_cond_destroy(&r->rs_cv);
	free(r);
}

static int rl_new(const char *addr, bool dst, struct rl_xport **rp, struct rmig_msgbuf *err)
{
	struct rl_xport *r = calloc(1, sizeof(*r));
	int ret;

	if (!r)
		return rmig_msg(err, -ENOMEM, "out of memory");
	r->base.ops = &rmig_rdma_rails_ops;
	r->is_dst = dst;
	pthread_mutex_init(&r->cm_mu, NULL);
	pthread_mutex_init(&r->vc_mu, NULL);
	pthread_mutex_init(&r->rs_mu, NULL);
	pthread_cond_init(&r->rs_cv, NULL);
	ret = parse_rails(r, addr, err);
	if (ret) {
		rl_free(r);
		return ret;
	}
	*rp = r;
	return 0;
}

/* ------------------------------------------------------------- source */

/* What rail @k's own end is on, from its hello connection (source) or listener. */
static void describe(struct rl_xport *r, unsigned int k, struct rdma_cm_id *id)
{
	struct rd_xport *x = rd_xport_of(r->rail[k].xp);
	const struct sockaddr *local = (const struct sockaddr *)&id->route.addr.src_addr;

	rmig_rl_fabric_describe(x->v, id->verbs, id->port_num, local, &r->rail[k].fab);
	if (rmig_rl_fabric_hook)
		rmig_rl_fabric_hook(r->is_dst, k, &r->rail[k].fab);
}

static int say_hello(struct rl_xport *r, unsigned int k, int timeout_ms, struct rmig_msgbuf *err)
{
	struct rmig_conn *c = r->rail[k].hello;
	uint8_t hello[RL_HELLO_LEN], ans[RL_ANSWER_LEN];
	struct rl_hello h = {
	    .rail = k, .nrails = r->nrails, .allow = r->allow, .attempt = r->attempt};
	int ret, status;

	describe(r, k, rd_conn_of(c)->id);
	h.fab = r->rail[k].fab;
	rmig_rl_hello_encode(hello, &h);
	ret = c->ops->send(c, hello, sizeof(hello), NULL, 0);
	if (ret)
		return rmig_msg(err, ret, "rail %u (%s): sending its hello: %s", k,
				r->rail[k].addr, c->err.msg);
	ret = c->ops->recv(c, ans, sizeof(ans), timeout_ms);
	if (ret)
		return rmig_msg(err, ret, "rail %u (%s): no answer to its hello: %s", k,
				r->rail[k].addr, c->recv_err.msg);
	if (rmig_get_be32(ans) != RL_ANSWER_MAGIC)
		return rmig_msg(err, -EPROTO, "rail %u (%s): the destination is not an rmig rail",
				k, r->rail[k].addr);
	status = (int)rmig_get_be32(ans + 4);
	ans[RL_ANSWER_LEN - 1] = 0;
	if (status)
		return rmig_msg(err, status < 0 ? status : -EPROTO,
				"rail %u (%s): the destination refused it: %s", k,
				r->rail[k].addr, (const char *)ans + 8 + RL_TOKEN_LEN);
	memcpy(r->token, ans + 8, RL_TOKEN_LEN);
	return 0;
}

static int rl_connect(const struct rmig_xport_params *p, const char *addr, struct rmig_xport **xp,
		      struct rmig_conn **ctl, struct rmig_msgbuf *err)
{
	struct rmig_xport_params rp;
	struct rmig_msgbuf mb;
	struct rmig_opts o;
	struct rl_xport *r;
	struct rd_conn *c;
	char label[200];
	int ret;

	ret = rl_new(addr, false, &r, err);
	if (ret)
		return ret;
	r->timeout_ms = p->opts->timeout_ms > 0 ? p->opts->timeout_ms : 30000;
	ret = rmig_rl_allow_env(&r->allow, err);
	if (ret)
		goto err_free;
	if (getrandom(&r->attempt, sizeof(r->attempt), 0) != (ssize_t)sizeof(r->attempt)) {
		ret = rmig_msg(err, -EIO, "getrandom: %s", strerror(errno));
		goto err_free;
	}
	/*
	 * Every rail says hello on a connection of its own, the last rail
	 * first: the destination's core sees the control connection only once
	 * every rail is up and agreed to.
	 */
	rp = *p;
	o = *p->opts;
	o.flags |= RD_XF_RAIL; /* conn.c marks each rail's first connection a hello */
	rp.opts = &o;
	for (unsigned int k = r->nrails; k-- > 0;) {
		ret = rmig_rdma_ops.connect(&rp, r->rail[k].addr, &r->rail[k].xp,
					    &r->rail[k].hello, &mb);
		if (ret) {
			rmig_msg(err, ret, "rail %u (%s): %s", k, r->rail[k].addr, mb.msg);
			goto err_free;
		}
		ret = say_hello(r, k, p->opts->timeout_ms, err);
		if (ret)
			goto err_free;
	}
	ret = rmig_rl_numa_setup(r, p->opts, err);
	if (ret)
		goto err_free;
	/* on rail 0 first; it moves to another rail if rail 0 dies (rails_conn.c) */
	snprintf(label, sizeof(label), "control conn to %s (rail 0)", r->rail[0].addr);
	ret = rmig_rd_connect(rd_xport_of(r->rail[0].xp), label, &c, err);
	if (ret)
		goto err_free;
	ret = rmig_rl_vconn_new(r, 0, RL_CTL_VID, &c->base, ctl);
	if (ret) {
		rmig_rd_conn_close(c);
		rmig_msg(err, ret, "out of memory");
		goto err_free;
	}
	*xp = &r->base;
	return 0;

err_free:
	rl_free(r);
	return ret;
}

static int take_peer_info(struct rl_xport *r, unsigned int k, const void *b, size_t len,
			  void *arg)
{
	int ret = rmig_rdma_ops.set_peer_info(r->rail[k].xp, b, len);

	if (ret)
		return rmig_msg(&r->base.err, ret, "rail %u (%s): %s", k, r->rail[k].addr,
				r->rail[k].xp->err.msg);
	return 0;
}

static int rl_set_peer_info(struct rmig_xport *xp, const void *info, size_t len)
{
	struct rl_xport *r = rl_of(xp);

	if (len < 8 || rmig_get_be32(info) != RL_LIST_MAGIC)
		return rmig_msg(&xp->err, -EPROTO,
				"this source migrates over %u rails (%s), but the destination "
				"listens on one only",
				r->nrails, r->list);
	return rl_split(r, info, len, take_peer_info, NULL);
}

static int rl_connect_channel(struct rmig_xport *xp, unsigned int ch, struct rmig_conn **cp)
{
	struct rl_xport *r = rl_of(xp);
	unsigned int k = ch % r->nrails;
	struct rd_xport *x = rd_xport_of(r->rail[k].xp);
	struct rl_numa_saved ns;
	struct rmig_conn *c;
	int ret;

	/* the vid in the private data names the channel if it must move (rails_conn.c) */
	pthread_mutex_lock(&r->cm_mu);
	x->next_vid = ch + 1;
	/* its buffers and CQ on the rail's node */
	rmig_rl_numa_enter(r, k, &ns);
	ret = rmig_rdma_ops.connect_channel(r->rail[k].xp, ch, &c);
	rmig_rl_numa_leave(&ns);
	x->next_vid = 0;
	pthread_mutex_unlock(&r->cm_mu);
	if (ret)
		return rmig_msg(&xp->err, ret, "rail %u (%s): %s", k, r->rail[k].addr,
				r->rail[k].xp->err.msg);
	ret = rmig_rl_vconn_new(r, k, ch + 1, c, cp);
	if (ret) {
		c->ops->close(c);
		return rmig_msg(&xp->err, ret, "out of memory");
	}
	rmig_add_relaxed(&r->rail[k].channels, 1u);
	return 0;
}

/* -------------------------------------------------------- destination */

/* Destination: no two of its rails on one device port (unless allowed). */
static int own_ports_differ(struct rl_xport *r, struct rmig_msgbuf *err)
{
	if (r->allow & RL_ALLOW_SHARED_PORT)
		return 0;
	for (unsigned int k = 1; k < r->nrails; k++)
		for (unsigned int j = 0; j < k; j++)
			if (rmig_rl_fabric_same_port(&r->rail[j].fab, &r->rail[k].fab))
				return rmig_msg(err, -EINVAL,
						"rails %u (%s) and %u (%s) are both on RDMA device "
						"%s port %u: that is one link, not two rails (no "
						"more bandwidth, no failover); give one address per "
						"port, or set RMIG_RDMA_RAILS_ALLOW=shared-port",
						j, r->rail[j].addr, k, r->rail[k].addr,
						r->rail[k].fab.dev, r->rail[k].fab.port);
	return 0;
}

static int rl_listen(const struct rmig_xport_params *p, const char *addr, struct rmig_xport **xp,
		     struct rmig_msgbuf *err)
{
	struct rmig_xport_params rp;
	struct rmig_msgbuf mb;
	struct rmig_opts o;
	struct rl_xport *r;
	int ret;

	ret = rl_new(addr, true, &r, err);
	if (ret)
		return ret;
	if (getrandom(r->token, sizeof(r->token), 0) != (ssize_t)sizeof(r->token)) {
		ret = rmig_msg(err, -EIO, "getrandom: %s", strerror(errno));
		goto err_free;
	}
	r->timeout_ms = p->opts->timeout_ms > 0 ? p->opts->timeout_ms : 30000;
	ret = rmig_rl_allow_env(&r->allow, err);
	if (ret)
		goto err_free;
	rp = *p;
	o = *p->opts;
	o.flags |= RD_XF_NO_MW; /* MR rkeys in each rail's PD: a channel may change QP */
	rp.opts = &o;
	for (unsigned int k = 0; k < r->nrails; k++) {
		ret = rmig_rdma_ops.listen(&rp, r->rail[k].addr, &r->rail[k].xp, &mb);
		if (ret) {
			rmig_msg(err, ret, "rail %u (%s): %s", k, r->rail[k].addr, mb.msg);
			goto err_free;
		}
		if (!rd_xport_of(r->rail[k].xp)->lid->verbs) {
			ret = rmig_msg(err, -EINVAL,
				       "rail %u (%s): a wildcard address names no RDMA device; "
				       "give each rail's own address",
				       k, r->rail[k].addr);
			goto err_free;
		}
		describe(r, k, rd_xport_of(r->rail[k].xp)->lid);
	}
	ret = own_ports_differ(r, err);
	if (ret)
		goto err_free;
	ret = rmig_rl_numa_setup(r, p->opts, err);
	if (ret)
		goto err_free;
	*xp = &r->base;
	return 0;

err_free:
	rl_free(r);
	return ret;
}

static int rl_port(struct rmig_xport *xp)
{
	return rmig_rdma_ops.port(rl_of(xp)->rail[0].xp);
}

/*
 * The hellos held are from another connect() of the source than @attempt's
 * (that one gave up half-way): drop them, the new source starts over.
 */
static void forget_hellos(struct rl_xport *r, uint64_t attempt)
{
	if (attempt == r->attempt)
		return;
	for (unsigned int k = 0; k < r->nrails; k++)
		if (r->rail[k].hello) {
			r->rail[k].hello->ops->close(r->rail[k].hello);
			r->rail[k].hello = NULL;
		}
	r->attempt = attempt;
}

/* Why rail @k's hello @h does not fit this destination ("" and 0 if it does). */
static int hello_check(struct rl_xport *r, unsigned int k, const struct rl_hello *h, char *why,
		       size_t len)
{
	if (h->nrails != r->nrails)
		return snprintf(why, len,
				"the source migrates over %u rails, this destination over %u "
				"(%.160s)",
				h->nrails, r->nrails, r->list),
		       -EPROTO;
	if (h->rail != k)
		return snprintf(why, len,
				"the source's rail %u arrived on this destination's rail %u "
				"(%.100s): list the rails in the same order on both sides",
				h->rail, k, r->rail[k].addr),
		       -EPROTO;
	if (r->rail[k].hello)
		return snprintf(why, len, "rail %u said hello twice", k), -EPROTO;
	if (!((h->allow | r->allow) & RL_ALLOW_SHARED_PORT))
		for (unsigned int j = 0; j < r->nrails; j++)
			if (r->rail[j].hello && rmig_rl_fabric_same_port(&h->fab, &r->rail[j].peer))
				return snprintf(why, len,
						"the source's rails %u and %u are both on RDMA "
						"device %s port %u: that is one link, not two rails "
						"(no more bandwidth, no failover); RMIG_RDMA_RAILS_"
						"ALLOW=shared-port accepts it",
						k, j, h->fab.dev, h->fab.port),
				       -EINVAL;
	return rmig_rl_fabric_match(k, &h->fab, &r->rail[k].fab, h->allow | r->allow, why, len);
}

/* Answer a rail's hello on its own connection: 0 if it fits this destination. */
static int answer_hello(struct rl_xport *r, unsigned int k, struct rmig_conn *c, int timeout_ms)
{
	uint8_t hello[RL_HELLO_LEN], ans[RL_ANSWER_LEN] = {0};
	char *why = (char *)ans + 8 + RL_TOKEN_LEN;
	struct rl_hello h;
	size_t len = RL_HELLO_HEAD;
	int ret;

	/* the head first: a version 1 hello is only that long */
	ret = c->ops->recv(c, hello, RL_HELLO_HEAD, timeout_ms);
	if (!ret && rmig_get_be32(hello) == RL_HELLO_MAGIC &&
	    rmig_get_be16(hello + 4) == RL_HELLO_VERSION) {
		ret = c->ops->recv(c, hello + RL_HELLO_HEAD, RL_HELLO_LEN - RL_HELLO_HEAD,
				   timeout_ms);
		len = RL_HELLO_LEN;
	}
	if (ret)
		return rmig_msg(&r->base.err, ret, "rail %u (%s): no hello: %s", k,
				r->rail[k].addr, c->recv_err.msg);
	ret = rmig_rl_hello_decode(hello, len, &h, why, RL_WHY);
	/* once a source's control conn is in, its hellos stay: no second source */
	if (!ret && r->got_ctl && h.attempt != r->attempt)
		ret = -EBUSY, snprintf(why, RL_WHY, "this destination is migrating from another "
						 "source already");
	if (!ret) {
		forget_hellos(r, h.attempt);
		ret = hello_check(r, k, &h, why, RL_WHY);
	}
	rmig_put_be32(ans, RL_ANSWER_MAGIC);
	rmig_put_be32(ans + 4, (uint32_t)ret);
	if (!ret)
		memcpy(ans + 8, r->token, RL_TOKEN_LEN);
	c->ops->send(c, ans, sizeof(ans), NULL, 0);
	if (ret)
		return rmig_msg(&r->base.err, ret, "rail %u (%s): %s", k, r->rail[k].addr, why);
	r->rail[k].hello = c;
	r->rail[k].peer = h.fab;
	return 0;
}

/*
 * Destination, no source came in time: if some rails said hello and others
 * not, the source failed in between (an address of it matches no device,
 * say); point at the first missing rail and the source's own error.
 */
static int accept_timeout(struct rl_xport *r, int ret)
{
	unsigned int said = 0, missing = 0;
	char saved[RMIG_ERRMSG_MAX];

	for (unsigned int k = r->nrails; k-- > 0;)
		if (r->rail[k].hello)
			said++;
		else
			missing = k;
	if (ret != -ETIMEDOUT || !said || said == r->nrails)
		return ret;
	snprintf(saved, sizeof(saved), "%s", r->base.err.msg);
	return rmig_msg(&r->base.err, ret,
			"%.300s; %u of %u rails said hello, rail %u (%s) did not: the source's "
			"own error says why",
			saved, said, r->nrails, missing, r->rail[missing].addr);
}

static int rl_accept(struct rmig_xport *xp, int timeout_ms, struct rmig_conn **cp)
{
	struct rl_xport *r = rl_of(xp);
	uint64_t deadline = rd_deadline(timeout_ms);

	for (;;) {
		int ret, left = -1;
		struct rmig_conn *c;
		unsigned int k;

		if (deadline) {
			uint64_t now = rmig_now_ns();

			left = now >= deadline ? 0 : (int)((deadline - now + 999999) / 1000000);
			if (!left)
				return accept_timeout(
				    r, rmig_msg(&xp->err, -ETIMEDOUT,
						"no rdma connection on %s within %d ms", r->list,
						timeout_ms));
		}
		ret = rmig_rl_accept_any(r, left, &k, &c);
		if (ret)
			return accept_timeout(r, ret);
		if (rd_conn_of(c)->rail_hello) {
			ret = answer_hello(r, k, c, timeout_ms < 0 ? 30000 : timeout_ms);
			if (ret) {
				c->ops->close(c);
				return ret;
			}
			continue;
		}
		/* after the hellos: the control conn first, on rail 0; then channels */
		if (k || r->got_ctl) {
			uint32_t vid = rd_conn_of(c)->vid;

			if (vid && rmig_rl_vconn_new(r, k, vid, c, cp)) {
				c->ops->close(c);
				return rmig_msg(&xp->err, -ENOMEM, "out of memory");
			}
			if (!vid)
				*cp = c;
			rmig_add_relaxed(&r->rail[k].channels, 1u);
		} else {
			struct rd_conn *rc = rd_conn_of(c);
			char was[sizeof(rc->label)];

			snprintf(was, sizeof(was), "%s", rc->label);
			snprintf(rc->label, sizeof(rc->label), "control conn (rail 0), %.45s", was);
			/* it moves to another rail if rail 0 dies (rails_conn.c) */
			if (rmig_rl_vconn_new(r, 0, RL_CTL_VID, c, cp)) {
				c->ops->close(c);
				return rmig_msg(&xp->err, -ENOMEM, "out of memory");
			}
		}
		r->got_ctl = true;
		return 0;
	}
}

static int rl_local_info(struct rmig_xport *xp, void *buf, size_t *len)
{
	struct rl_xport *r = rl_of(xp);
	unsigned int said = 0, missing = r->nrails;

	for (unsigned int k = r->nrails; k-- > 0;)
		if (r->rail[k].hello)
			said++;
		else
			missing = k;
	if (!said)
		return rmig_msg(&xp->err, -EPROTO,
				"the source opened no rails: it migrates over one address, this "
				"destination over %u rails (%s)",
				r->nrails, r->list);
	if (said < r->nrails)
		return rmig_msg(&xp->err, -EPROTO,
				"the source did not open rail %u (%s): it migrates over fewer "
				"rails than this destination's %u (%s)",
				missing, r->rail[missing].addr, r->nrails, r->list);
	return rl_join(r, RL_LIST_MAGIC, rmig_rdma_ops.local_info, buf, len);
}

/* --------------------------------------------------------------- both */

/*
 * Postcopy pulls: RDMA READs on the control connection, from the source's
 * RAM as registered on whichever rail that connection is on. The source
 * gives one pull table per rail; the destination opens each with a pull
 * area of its own (rail 0's is the one the core sees; rails_conn.c reads
 * into another rail's and copies over once the control connection moved).
 */
static int rl_pull_info(struct rmig_xport *xp, void *buf, size_t *len)
{
	return rl_join(rl_of(xp), RL_PULL_MAGIC, rmig_rdma_ops.pull_info, buf, len);
}

struct pull_open_args {
	size_t size;
};

static int take_pull_info(struct rl_xport *r, unsigned int k, const void *b, size_t len,
			  void *arg)
{
	const struct pull_open_args *a = arg;
	int ret = rmig_rdma_ops.pull_open(r->rail[k].xp, b, len, a->size, &r->rail[k].pull_area);

	if (ret)
		return rmig_msg(&r->base.err, ret, "rail %u (%s): %s", k, r->rail[k].addr,
				r->rail[k].xp->err.msg);
	return 0;
}

static int rl_pull_open(struct rmig_xport *xp, const void *info, size_t len, size_t size,
			void **area)
{
	struct rl_xport *r = rl_of(xp);
	struct pull_open_args a = {.size = size};
	int ret;

	if (len < 8 || rmig_get_be32(info) != RL_PULL_MAGIC)
		return rmig_msg(&xp->err, -EPROTO,
				"rdma rails: the source's pull tables are not a rail list");
	ret = rl_split(r, info, len, take_pull_info, &a);
	if (ret)
		return ret;
	r->pull_size = size;
	*area = r->rail[0].pull_area;
	return 0;
}

static void rl_shutdown(struct rmig_xport *xp)
{
	struct rl_xport *r = rl_of(xp);

	for (unsigned int k = 0; k < r->nrails; k++)
		rmig_rdma_ops.shutdown(r->rail[k].xp);
}

static void rl_revoke(struct rmig_xport *xp)
{
	struct rl_xport *r = rl_of(xp);

	for (unsigned int k = 0; k < r->nrails; k++)
		rmig_rdma_ops.revoke(r->rail[k].xp);
}

static void rl_destroy(struct rmig_xport *xp)
{
	if (xp)
		rl_free(rl_of(xp));
}

static uint64_t rl_reg_ns(struct rmig_xport *xp)
{
	struct rl_xport *r = rl_of(xp);
	uint64_t ns = 0;

	for (unsigned int k = 0; k < r->nrails; k++)
		ns += rmig_rdma_ops.reg_ns(r->rail[k].xp);
	return ns;
}

/* ------------------------------------------------------------- stats */

static void rail_info(struct rmig_xport *rxp, const char *addr, unsigned int channels,
		      struct rmig_rd_rail_info *out)
{
	struct rd_xport *x = rd_xport_of(rxp);

	memset(out, 0, sizeof(*out));
	snprintf(out->addr, sizeof(out->addr), "%s", addr);
	out->numa_node = -1;
	out->channels = channels;
	if (x->ctx) {
		snprintf(out->device, sizeof(out->device), "%s",
			 ibv_get_device_name(x->ctx->device));
		out->numa_node = rmig_rl_device_node(out->device);
	}
	pthread_mutex_lock(&x->lock);
	out->bytes = x->closed_bytes;
	for (struct rd_conn *c = x->conns; c; c = c->next)
		out->bytes += rmig_load_relaxed(&c->base.wire_bytes);
	pthread_mutex_unlock(&x->lock);
}

int rmig_rd_rails_info(const struct rmig_xport_ops *ops, struct rmig_xport *xp,
		       struct rmig_rd_rail_info *out, unsigned int max)
{
	struct rl_xport *r;

	if (!xp)
		return 0;
	if (ops == &rmig_rdma_ops) {
		if (max)
			rail_info(xp, rd_xport_of(xp)->addr,
				  rd_xport_of(xp)->nconns ? rd_xport_of(xp)->nconns - 1 : 0, out);
		return 1;
	}
	if (ops != &rmig_rdma_rails_ops)
		return 0;
	r = rl_of(xp);
	for (unsigned int k = 0; k < r->nrails && k < max; k++) {
		rail_info(r->rail[k].xp, r->rail[k].addr, rmig_load_relaxed(&r->rail[k].channels),
			  &out[k]);
		out[k].numa_node = r->rail[k].node;
		rmig_rl_vconn_nodes(r, k, &out[k].threads_on_node, &out[k].buffers_on_node);
		rmig_rl_vconn_pages(r, k, &out[k].local_pages, &out[k].remote_pages);
	}
	return (int)r->nrails;
}

const struct rmig_xport_ops rmig_rdma_rails_ops = {
	.name = "rdma",
	.caps = RMIG_XCAP_PLACES_DATA | RMIG_XCAP_PULL,
	.connect = rl_connect,
	.set_peer_info = rl_set_peer_info,
	.connect_channel = rl_connect_channel,
	.listen = rl_listen,
	.port = rl_port,
	.accept = rl_accept,
	.revoke = rl_revoke,
	.local_info = rl_local_info,
	.pull_info = rl_pull_info,
	.pull_open = rl_pull_open,
	.shutdown = rl_shutdown,
	.destroy = rl_destroy,
	.reg_ns = rl_reg_ns,
	.finish = rmig_xport_nop_finish,
	.load = rmig_xport_no_load,
	.load_stats = rmig_xport_nop_load_stats,
};
