// SPDX-License-Identifier: MIT
/*
 * Connections: rdma_cm set-up (active and passive), the QP and its CQ, and
 * tear-down. Once a conn is established, everything that moves it on
 * (completions, waiting, failures) is progress.c's.
 *
 * Each conn gets its own rdma_cm event channel (passive ids are migrated
 * off the listener's), so that progress.c's one poll() also sees the
 * conn's DISCONNECTED; set-up waits on that channel here (wait_cm).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/xport_util.h"
#include "transport/rdma/conn.h"
#include "transport/rdma/datapath.h"
#include "transport/rdma/device.h"
#include "transport/rdma/mw.h"
#include "transport/rdma/progress.h"
#include "transport/rdma/pull.h"
#include "transport/rdma/stream.h"

/* Set-up failed: its text, whether recorded as the conn's failure or not. */
static void setup_err(struct rd_conn *c, struct rmig_msgbuf *err)
{
	snprintf(err->msg, sizeof(err->msg), "%s", c->failed ? c->fail_msg : c->base.err.msg);
}

/* ------------------------------------------------------- private data */

void rmig_rd_cm_priv_encode(uint8_t out[RD_CM_PRIV_WIRE], const struct rd_cm_priv *p)
{
	rmig_put_be32(out, RD_CM_MAGIC);
	rmig_put_be16(out + 4, RD_CM_VERSION);
	rmig_put_be16(out + 6, p->flags);
	rmig_put_be32(out + 8, p->nbufs);
	rmig_put_be32(out + 12, p->buf_size);
	rmig_put_be32(out + 16, p->vid);
}

int rmig_rd_cm_priv_decode(const void *in, size_t len, struct rd_cm_priv *p)
{
	const uint8_t *b = in;

	if (!in || len < RD_CM_PRIV_LEN || rmig_get_be32(b) != RD_CM_MAGIC)
		return -EPROTO;
	if (rmig_get_be16(b + 4) != RD_CM_VERSION)
		return -EPROTONOSUPPORT;
	p->flags = rmig_get_be16(b + 6);
	/* IB CM pads private data with zeros: a peer that sends 16 bytes says vid 0 */
	p->vid = len >= RD_CM_PRIV_WIRE ? rmig_get_be32(b + 16) : 0;
	p->nbufs = rmig_get_be32(b + 8);
	p->buf_size = rmig_get_be32(b + 12);
	/* 16 bits of credits in the immediate data; one reserved credit needs a few more */
	if (p->nbufs < 4 || p->nbufs > 0xffff || p->buf_size < 4096 || p->buf_size > (16u << 20))
		return -EPROTO;
	return 0;
}

/* ------------------------------------------------------------ objects */

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

static void sockaddr_str(const struct sockaddr *sa, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN] = "?";

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s = (const struct sockaddr_in *)sa;

		inet_ntop(AF_INET, &s->sin_addr, ip, sizeof(ip));
		snprintf(buf, len, "%s:%u", ip, ntohs(s->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)sa;

		inet_ntop(AF_INET6, &s->sin6_addr, ip, sizeof(ip));
		snprintf(buf, len, "[%s]:%u", ip, ntohs(s->sin6_port));
	} else {
		snprintf(buf, len, "?");
	}
}

int rmig_rd_conn_alloc(struct rd_xport *x, const char *label, struct rd_conn **cp)
{
	struct rd_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	c->base.ops = &rmig_rd_conn_ops;
	c->x = x;
	c->v = x->v;
	snprintf(c->label, sizeof(c->label), "%s", label);
	c->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (c->efd < 0) {
		free(c);
		return -errno;
	}
	for (int r = 0; r < RD_ROLES; r++) {
		c->kick[r] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (c->kick[r] < 0) {
			int ret = -errno;

			while (r--)
				close(c->kick[r]);
			close(c->efd);
			free(c);
			return ret;
		}
	}
	pthread_mutex_init(&c->mu, NULL);
	c->xefd = x->efd;
	c->cq_fd = -1;
	c->cm_fd = -1;
	c->sq_next = 1;
	c->nrecv = RD_RECV_BUFS;
	c->nslots = RD_SEND_SLOTS;
	c->buf_size = RD_BUF_SIZE;
	atomic_init(&c->down, false);
	atomic_init(&c->disconnected, false);
	*cp = c;
	return 0;
}

/* CQ with its completion channel, the RC QP on c->id, the stream buffers, all receives posted. */
int rmig_rd_conn_setup_qp(struct rd_conn *c)
{
	struct rd_xport *x = c->x;
	size_t bytes = (size_t)(c->nrecv + c->nslots) * c->buf_size;
	struct ibv_qp_init_attr qa;
	uint64_t t0;
	int ret;

	c->sq_depth = x->sq_depth;
	c->signal_every = x->signal_every;
	c->max_sge = x->max_sge;
	c->max_msg = x->max_msg;
	c->inflight_max = RD_INFLIGHT_MAX;
	c->sq_ops = calloc(c->sq_depth, 1);
	c->sq_cum = calloc(c->sq_depth, sizeof(*c->sq_cum));
	if (!c->sq_ops || !c->sq_cum)
		return rmig_msg(&c->base.err, -ENOMEM, "%s: out of memory", c->label);

	ret = c->v->create_comp_channel(x->ctx, &c->cc);
	if (ret)
		return rmig_msg(&c->base.err, ret, "%s: ibv_create_comp_channel failed: %s",
				c->label, strerror(-ret));
	c->cq_fd = c->cc->fd;
	ret = set_nonblock(c->cq_fd);
	if (ret)
		return rmig_msg(&c->base.err, ret, "%s: completion channel: %s", c->label,
				strerror(-ret));
	/* every signaled send plus every receive can be outstanding at once */
	ret = c->v->create_cq(x->ctx, (int)(c->sq_depth + c->nrecv + 16), c, c->cc, &c->cq);
	if (ret)
		return rmig_msg(&c->base.err, ret, "%s: ibv_create_cq(%u) failed: %s", c->label,
				c->sq_depth + c->nrecv + 16, strerror(-ret));

	memset(&qa, 0, sizeof(qa));
	qa.send_cq = c->cq;
	qa.recv_cq = c->cq;
	qa.qp_type = IBV_QPT_RC;
	qa.cap.max_send_wr = c->sq_depth;
	qa.cap.max_recv_wr = c->nrecv;
	qa.cap.max_send_sge = c->max_sge;
	qa.cap.max_recv_sge = 1;
	ret = c->v->create_qp(c->id, x->pd, &qa);
	if (ret)
		return rmig_msg(&c->base.err, ret,
				"%s: rdma_create_qp(send %u x %u sge, recv %u) failed: %s",
				c->label, c->sq_depth, c->max_sge, c->nrecv, strerror(-ret));
	c->qp = c->id->qp;

	c->bufs = aligned_alloc(4096, bytes);
	if (!c->bufs)
		return rmig_msg(&c->base.err, -ENOMEM, "%s: out of memory for stream buffers",
				c->label);
	t0 = rmig_now_ns();
	ret = c->v->reg_mr(x->pd, c->bufs, bytes, IBV_ACCESS_LOCAL_WRITE, &c->buf_mr);
	rmig_add_relaxed(&x->reg_ns, rmig_now_ns() - t0);
	if (ret)
		return rmig_rd_reg_error(ret, "stream buffers, LOCAL_WRITE", c->bufs, bytes, bytes,
					 &c->base.err);
	return rmig_rd_stream_init(c);
}

void rmig_rd_conn_free(struct rd_conn *c)
{
	const struct rmig_verbs_ops *v = c->v;

	if (c->qp)
		v->destroy_qp(c->id);
	if (c->cq) {
		if (c->cq_unacked)
			v->ack_cq_events(c->cq, c->cq_unacked);
		v->destroy_cq(c->cq);
	}
	if (c->cc)
		v->destroy_comp_channel(c->cc);
	if (c->buf_mr)
		v->dereg_mr(c->buf_mr);
	free(c->bufs);
	if (c->st_mr)
		v->dereg_mr(c->st_mr);
	free(c->st_buf);
	if (c->id)
		v->destroy_id(c->id);
	if (c->ech)
		v->destroy_event_channel(c->ech);
	close(c->efd);
	for (int r = 0; r < RD_ROLES; r++)
		close(c->kick[r]);
	pthread_mutex_destroy(&c->mu);
	rmig_rd_remote_release(&c->chan_remote);
	free(c->sq_ops);
	free(c->sq_cum);
	free(c);
}

static void conn_link(struct rd_conn *c)
{
	struct rd_xport *x = c->x;

	pthread_mutex_lock(&x->lock);
	c->next = x->conns;
	x->conns = c;
	x->nconns++;
	pthread_mutex_unlock(&x->lock);
}

static void conn_unlink(struct rd_conn *c)
{
	struct rd_xport *x = c->x;
	struct rd_conn **pp;

	pthread_mutex_lock(&x->lock);
	for (pp = &x->conns; *pp; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			x->closed_bytes += rmig_load_relaxed(&c->base.wire_bytes);
			break;
		}
	}
	pthread_mutex_unlock(&x->lock);
}

/* Wait for the next rdma_cm event on @ch during set-up. */
static int wait_cm(const struct rmig_verbs_ops *v, struct rdma_event_channel *ch, int efd, int xefd,
		   uint64_t deadline, struct rdma_cm_event **evp)
{
	for (;;) {
		struct pollfd pfd[3] = {
		    {.fd = ch->fd, .events = POLLIN},
		    {.fd = efd, .events = POLLIN},
		    {.fd = xefd, .events = POLLIN},
		};
		uint64_t now;
		int ret, ms = -1;

		ret = v->get_cm_event(ch, evp);
		if (ret != -EAGAIN)
			return ret;
		now = rmig_now_ns();
		if (deadline) {
			if (now >= deadline)
				return -ETIMEDOUT;
			ms = (int)((deadline - now + 999999) / 1000000);
		}
		ret = poll(pfd, 3, ms);
		if (ret < 0 && errno != EINTR)
			return -errno;
		if (ret > 0 && (pfd[1].revents || pfd[2].revents))
			return -ECANCELED;
	}
}

int rmig_rd_cm_event_error(const struct rdma_cm_event *ev, const char *what,
			   struct rmig_msgbuf *err)
{
	int st = ev->status;
	const char *name = rdma_event_str(ev->event);

	switch (ev->event) {
	case RDMA_CM_EVENT_ADDR_ERROR:
		return rmig_msg(
		    err, st == -ENODEV || st == -EADDRNOTAVAIL ? -ENODEV : -EHOSTUNREACH,
		    "%s: address resolution failed (%s: %s)", what, name, strerror(-st));
	case RDMA_CM_EVENT_ROUTE_ERROR:
		return rmig_msg(err, -EHOSTUNREACH, "%s: route resolution failed (%s: %s)", what,
				name, strerror(-st));
	case RDMA_CM_EVENT_UNREACHABLE:
		return rmig_msg(
		    err, st == -ETIMEDOUT ? -ETIMEDOUT : -EHOSTUNREACH,
		    "%s: peer unreachable, no answer to the connection request (%s: %s)", what,
		    name, strerror(st < 0 ? -st : st));
	case RDMA_CM_EVENT_REJECTED:
		/* status is the IB CM reject reason: 8 = no such service, 28 = consumer */
		return rmig_msg(err, -ECONNREFUSED, "%s: connection refused (%s, reason %d%s)",
				what, name, st,
				st == 8	   ? ": nothing listens on that port"
				: st == 28 ? ": the peer rejected it"
					   : "");
	case RDMA_CM_EVENT_CONNECT_ERROR:
		return rmig_msg(err, -ECONNABORTED, "%s: connection failed (%s: %s)", what, name,
				strerror(st < 0 ? -st : st));
	case RDMA_CM_EVENT_DISCONNECTED:
		return rmig_msg(err, -ECONNRESET, "%s: peer disconnected (%s)", what, name);
	case RDMA_CM_EVENT_DEVICE_REMOVAL:
		return rmig_msg(err, -ENODEV, "%s: RDMA device removed (%s)", what, name);
	default:
		return rmig_msg(err, -EPROTO, "%s: unexpected rdma_cm event %s (status %d)", what,
				name, st);
	}
}

/* Wait for event @want on the conn's channel; anything else becomes an error. */
static int expect(struct rd_conn *c, enum rdma_cm_event_type want, uint64_t deadline,
		  const char *what, struct rdma_cm_event **evp, struct rmig_msgbuf *err)
{
	struct rdma_cm_event *ev;
	char ctx[160];
	int ret;

	snprintf(ctx, sizeof(ctx), "%s: %s", c->label, what);
	ret = wait_cm(c->v, c->ech, c->efd, c->xefd, deadline, &ev);
	if (ret == -ETIMEDOUT)
		return rmig_msg(err, ret, "%s: timed out after %d ms", ctx, c->x->opts.timeout_ms);
	if (ret == -ECANCELED)
		return rmig_msg(err, ret, "%s: cancelled", ctx);
	if (ret)
		return rmig_msg(err, ret, "%s: rdma_get_cm_event failed: %s", ctx, strerror(-ret));
	if (ev->event != want) {
		if (ev->event == RDMA_CM_EVENT_ADDR_ERROR &&
		    (ev->status == -ENODEV || ev->status == -EADDRNOTAVAIL))
			ret = rmig_rd_no_device(c->v, c->x->addr, ev->status, err);
		else
			ret = rmig_rd_cm_event_error(ev, ctx, err);
		c->v->ack_cm_event(ev);
		return ret;
	}
	*evp = ev;
	return 0;
}

static int ms_left(uint64_t deadline)
{
	uint64_t now = rmig_now_ns();

	if (!deadline)
		return 30000;
	return now >= deadline ? 1 : (int)((deadline - now + 999999) / 1000000);
}

static void established(struct rd_conn *c, const struct rd_cm_priv *peer)
{
	c->credits = peer->nbufs;
	c->peer_nbufs = peer->nbufs;
	c->peer_buf_size = peer->buf_size;
	c->established = true;
	c->last_rx_ns = rmig_now_ns();
	conn_link(c);
}

static void conn_param(struct rd_conn *c, struct rdma_conn_param *p, uint8_t *priv,
		       unsigned int ird, unsigned int ord)
{
	struct rd_cm_priv mine = {.nbufs = c->nrecv, .buf_size = c->buf_size};

	/* a rail's first connection is its hello (rails.c sets RD_XF_RAIL on the rail) */
	if ((c->x->opts.flags & RD_XF_RAIL) && !c->x->nconns)
		mine.flags |= RD_CM_F_RAIL_HELLO;
	/* active side: what rails.c asked for this connection (it serializes connects) */
	mine.flags |= c->x->next_cm_flags;
	mine.vid = c->x->next_vid;

	rmig_rd_cm_priv_encode(priv, &mine);
	memset(p, 0, sizeof(*p));
	p->private_data = priv;
	p->private_data_len = RD_CM_PRIV_WIRE;
	p->responder_resources = (uint8_t)ird;
	p->initiator_depth = (uint8_t)ord;
	p->retry_count = RD_RETRY_COUNT;
	/* credits make RNR impossible; if it happens anyway it is a bug to report, not to wait out
	 */
	p->rnr_retry_count = 0;
}

/* ------------------------------------------------------ active side */

int rmig_rd_connect(struct rd_xport *x, const char *label, struct rd_conn **cp,
		    struct rmig_msgbuf *err)
{
	uint64_t deadline = rd_deadline(x->opts.timeout_ms);
	uint8_t priv[RD_CM_PRIV_WIRE], tmo = RD_ACK_TIMEOUT;
	struct rdma_conn_param param;
	struct rdma_cm_event *ev;
	struct rd_cm_priv peer;
	struct rd_conn *c;
	int ret;

	ret = rmig_rd_conn_alloc(x, label, &c);
	if (ret)
		return rmig_msg(err, ret, "%s: %s", label, strerror(-ret));
	ret = x->v->create_event_channel(&c->ech);
	if (ret) {
		if (ret == -ENODEV)
			rmig_rd_no_device(x->v, x->addr, ret, err);
		else
			rmig_msg(err, ret, "rdma_create_event_channel failed: %s", strerror(-ret));
		goto err_free;
	}
	c->cm_fd = c->ech->fd;
	ret = set_nonblock(c->cm_fd);
	if (!ret)
		ret = x->v->create_id(c->ech, &c->id, c, RDMA_PS_TCP);
	if (ret) {
		rmig_msg(err, ret, "%s: rdma_create_id failed: %s", label, strerror(-ret));
		goto err_free;
	}
	/* best effort: a kernel without the option keeps its own default */
	x->v->set_option(c->id, RDMA_OPTION_ID, RDMA_OPTION_ID_ACK_TIMEOUT, &tmo, sizeof(tmo));

	ret = x->v->resolve_addr(c->id, NULL, (struct sockaddr *)&x->sa, ms_left(deadline));
	if (ret) {
		if (ret == -ENODEV || ret == -EADDRNOTAVAIL)
			ret = rmig_rd_no_device(x->v, x->addr, ret, err);
		else
			rmig_msg(err, ret, "%s: rdma_resolve_addr failed: %s", label,
				 strerror(-ret));
		goto err_free;
	}
	ret = expect(c, RDMA_CM_EVENT_ADDR_RESOLVED, deadline, "resolving the address", &ev, err);
	if (ret)
		goto err_free;
	x->v->ack_cm_event(ev);
	ret = rmig_rd_use_device(x, c->id->verbs, c->id->port_num, err);
	if (!ret)
		ret = rmig_rd_check_gid(x, c->id, err);
	if (ret)
		goto err_free;

	ret = x->v->resolve_route(c->id, ms_left(deadline));
	if (ret) {
		/* 127.0.0.1 resolves (to any device), and only the route says there is none */
		if (ret == -ENODEV || ret == -EADDRNOTAVAIL || ret == -ENETUNREACH)
			ret = rmig_rd_no_device(x->v, x->addr, ret, err);
		else
			rmig_msg(err, ret, "%s: rdma_resolve_route failed: %s", label,
				 strerror(-ret));
		goto err_free;
	}
	ret = expect(c, RDMA_CM_EVENT_ROUTE_RESOLVED, deadline, "resolving the route", &ev, err);
	if (ret)
		goto err_free;
	x->v->ack_cm_event(ev);

	ret = rmig_rd_conn_setup_qp(c);
	if (ret) {
		setup_err(c, err);
		goto err_free;
	}
	conn_param(c, &param, priv, x->rd_atomic, x->rd_atomic);
	ret = x->v->connect(c->id, &param);
	if (ret) {
		rmig_msg(err, ret, "%s: rdma_connect failed: %s", label, strerror(-ret));
		goto err_free;
	}
	ret = expect(c, RDMA_CM_EVENT_ESTABLISHED, deadline, "connecting", &ev, err);
	if (ret)
		goto err_free;
	ret = rmig_rd_cm_priv_decode(ev->param.conn.private_data, ev->param.conn.private_data_len,
				     &peer);
	x->v->ack_cm_event(ev);
	if (ret) {
		rmig_msg(err, -EPROTO, "%s: the peer is not an rmig rdma endpoint of this version",
			 label);
		ret = -EPROTO;
		goto err_disconnect;
	}
	established(c, &peer);
	*cp = c;
	return 0;

err_disconnect:
	x->v->disconnect(c->id);
err_free:
	rmig_rd_conn_free(c);
	return ret;
}

/* ----------------------------------------------------- passive side */

int rmig_rd_listen_setup(struct rd_xport *x, struct rmig_msgbuf *err)
{
	struct ibv_context **list;
	int ret, n, i;

	ret = x->v->create_event_channel(&x->lech);
	if (ret)
		return ret == -ENODEV ? rmig_rd_no_device(x->v, x->addr, ret, err)
				      : rmig_msg(err, ret, "rdma_create_event_channel failed: %s",
						 strerror(-ret));
	ret = set_nonblock(x->lech->fd);
	if (!ret)
		ret = x->v->create_id(x->lech, &x->lid, x, RDMA_PS_TCP);
	if (ret)
		return rmig_msg(err, ret, "rdma_create_id failed: %s", strerror(-ret));
	ret = x->v->bind_addr(x->lid, (struct sockaddr *)&x->sa);
	if (ret == -ENODEV || ret == -EADDRNOTAVAIL)
		return rmig_rd_no_device(x->v, x->addr, ret, err);
	if (ret)
		return rmig_msg(err, ret, "cannot bind rdma address %s: %s", x->addr,
				strerror(-ret));
	ret = x->v->listen(x->lid, 64);
	if (ret)
		return rmig_msg(err, ret, "rdma_listen on %s failed: %s", x->addr, strerror(-ret));
	x->port = x->v->get_src_port(x->lid);

	if (x->lid->verbs) {
		ret = rmig_rd_use_device(x, x->lid->verbs, x->lid->port_num, err);
		if (!ret)
			ret = rmig_rd_check_gid(x, x->lid, err);
		return ret;
	}
	/*
	 * A wildcard address has no device until a connection arrives. Pick
	 * one now when that is unambiguous, so a device problem shows at
	 * listen; otherwise the first accept does it.
	 */
	ret = x->v->cm_get_devices(&list, &n);
	if (ret || !n) {
		if (!ret)
			x->v->cm_free_devices(list);
		return rmig_rd_no_device(x->v, x->addr, ret ? ret : -ENODEV, err);
	}
	for (i = 0; i < n; i++) {
		const char *name = ibv_get_device_name(list[i]->device);

		if (x->ib_dev[0] ? !strcmp(name, x->ib_dev) : n == 1) {
			ret = rmig_rd_use_device(x, list[i], 0, err);
			break;
		}
	}
	if (!ret && x->ib_dev[0] && i == n)
		ret = rmig_msg(err, -ENODEV, "ib_dev %s not found", x->ib_dev);
	x->v->cm_free_devices(list);
	return ret;
}

/* Take the connection request on @id through to ESTABLISHED. */
static int accept_one(struct rd_xport *x, struct rdma_cm_id *id, const struct rd_cm_priv *peer,
		      unsigned int peer_ird, unsigned int peer_ord, uint64_t deadline,
		      struct rd_conn **cp, struct rmig_msgbuf *err)
{
	uint8_t priv[RD_CM_PRIV_WIRE];
	struct rdma_conn_param param;
	struct rdma_cm_event *ev;
	char label[96], from[64];
	struct rd_conn *c;
	int ret;

	sockaddr_str((struct sockaddr *)&id->route.addr.dst_addr, from, sizeof(from));
	snprintf(label, sizeof(label), "rdma conn %u from %s", x->nconns, from);
	ret = rmig_rd_conn_alloc(x, label, &c);
	if (ret) {
		x->v->reject(id, NULL, 0);
		x->v->destroy_id(id);
		return rmig_msg(err, ret, "%s: %s", label, strerror(-ret));
	}
	c->id = id;
	ret = x->v->create_event_channel(&c->ech);
	if (!ret) {
		c->cm_fd = c->ech->fd;
		ret = set_nonblock(c->cm_fd);
	}
	if (!ret)
		ret = x->v->migrate_id(id, c->ech);
	if (ret) {
		rmig_msg(err, ret, "%s: cannot give the connection its own event channel: %s",
			 label, strerror(-ret));
		goto err_reject;
	}
	ret = rmig_rd_use_device(x, id->verbs, id->port_num, err);
	if (!ret)
		ret = rmig_rd_check_gid(x, id, err);
	/* RAM is registered later, for an authenticated source (rd_local_info) */
	if (ret)
		goto err_reject;
	ret = rmig_rd_conn_setup_qp(c);
	if (ret) {
		setup_err(c, err);
		goto err_reject;
	}
	conn_param(c, &param, priv, peer_ord < x->rd_atomic ? peer_ord : x->rd_atomic,
		   peer_ird < x->rd_atomic ? peer_ird : x->rd_atomic);
	ret = x->v->accept(id, &param);
	if (ret) {
		rmig_msg(err, ret, "%s: rdma_accept failed: %s", label, strerror(-ret));
		goto err_reject;
	}
	ret = expect(c, RDMA_CM_EVENT_ESTABLISHED, deadline, "accepting", &ev, err);
	if (ret)
		goto err_free;
	x->v->ack_cm_event(ev);
	c->rail_hello = peer->flags & RD_CM_F_RAIL_HELLO;
	c->rail_resume = peer->flags & RD_CM_F_RAIL_RESUME;
	c->vid = peer->vid;
	established(c, peer);
	*cp = c;
	return 0;

err_reject:
	x->v->reject(id, NULL, 0);
err_free:
	rmig_rd_conn_free(c);
	return ret;
}

int rmig_rd_accept(struct rd_xport *x, int timeout_ms, struct rd_conn **cp, struct rmig_msgbuf *err)
{
	uint64_t deadline = rd_deadline(timeout_ms);
	struct rdma_cm_event *ev;
	struct rd_cm_priv peer;
	unsigned int ird, ord;
	struct rdma_cm_id *id;
	int ret;

	for (;;) {
		ret = wait_cm(x->v, x->lech, -1, x->efd, deadline, &ev);
		if (ret == -ETIMEDOUT)
			return rmig_msg(err, ret, "no rdma connection on %s within %d ms", x->addr,
					timeout_ms);
		if (ret == -ECANCELED)
			return rmig_msg(err, ret, "cancelled while waiting for a connection");
		if (ret)
			return rmig_msg(err, ret, "rdma_get_cm_event failed: %s", strerror(-ret));
		if (ev->event != RDMA_CM_EVENT_CONNECT_REQUEST) {
			enum rdma_cm_event_type type = ev->event;

			x->v->ack_cm_event(ev);
			if (type == RDMA_CM_EVENT_DEVICE_REMOVAL)
				return rmig_msg(err, -ENODEV, "RDMA device removed under %s",
						x->addr);
			continue;
		}
		id = ev->id;
		ret = rmig_rd_cm_priv_decode(ev->param.conn.private_data,
					     ev->param.conn.private_data_len, &peer);
		ird = ev->param.conn.responder_resources;
		ord = ev->param.conn.initiator_depth;
		/* acked before migrate_id, which waits for every event of the id to be acked */
		x->v->ack_cm_event(ev);
		if (!ret)
			break;
		/* not one of ours (or another version): refuse it and keep listening */
		x->v->reject(id, NULL, 0);
		x->v->destroy_id(id);
	}
	return accept_one(x, id, &peer, ird, ord, deadline, cp, err);
}

/* ------------------------------------------------------------ ending */

void rmig_rd_conn_shutdown(struct rd_conn *c)
{
	uint64_t one = 1;

	/* relaxed: the eventfd wakes the owner, which then re-reads the flag */
	rmig_store_relaxed(&c->down, true);
	if (write(c->efd, &one, sizeof(one)) < 0) {
		/* only EAGAIN is possible, and then the eventfd is readable already */
	}
	/*
	 * Tell the peer at once, as a socket's shutdown does: otherwise it
	 * learns only when this process closes the conn, or it times out.
	 * The QP goes to error; whatever is outstanding completes flushed.
	 */
	if (c->established && !atomic_exchange(&c->disconnected, true))
		c->v->disconnect(c->id);
}

void rmig_rd_conn_close(struct rd_conn *c)
{
	/*
	 * Let queued SENDs reach the peer first: disconnecting moves the QP to
	 * error and would drop a last message (the destination's RESULT) that
	 * the caller considers sent. Waiting drops mu while asleep: hold it,
	 * as every conn op does (no other thread uses the conn any more).
	 */
	rd_enter(&c->base, RD_ROLE_SEND);
	if (c->established && !rmig_rd_check(c) && !c->peer_closed && !rmig_rd_post_batch(c) &&
	    c->sq_next - 1 > c->sq_done)
		rmig_rd_wait_done(c, c->sq_next - 1,
				  rmig_now_ns() + RD_CLOSE_DRAIN_MS * 1000000ull);
	rd_leave(c, 0);
	/* its windows go before its QP, and their rkeys with them */
	pthread_mutex_lock(&c->x->mr_lock);
	rmig_rd_mws_release(c);
	pthread_mutex_unlock(&c->x->mr_lock);
	if (c->established) {
		if (!atomic_exchange(&c->disconnected, true))
			c->v->disconnect(c->id);
		conn_unlink(c);
	}
	rmig_rd_conn_free(c);
}

/*
 * A conn's ops: defined with the conns rather than in rdma.c, so that
 * conn_alloc() can give a new conn its ops without calling up a layer.
 */
static int rd_recv_pages(struct rmig_conn *bc, const struct iovec *iov, unsigned int iovcnt)
{
	return rmig_msg(&bc->recv_err, -ENOSYS,
			"rdma places page data itself; recv_pages is not used with it");
}

static void rd_conn_shutdown(struct rmig_conn *bc)
{
	rmig_rd_conn_shutdown(rd_conn_of(bc));
}

static void rd_conn_close(struct rmig_conn *bc)
{
	rmig_rd_conn_close(rd_conn_of(bc));
}

const struct rmig_conn_ops rmig_rd_conn_ops = {
	.send = rmig_rd_send,
	.flush = rmig_rd_flush,
	.recv = rmig_rd_recv,
	.recv_pages = rd_recv_pages,
	.pull = rmig_rd_pull,
	.pull_wait = rmig_rd_pull_wait,
	.chan_open = rmig_rd_chan_open,
	.shutdown = rd_conn_shutdown,
	.close = rd_conn_close,
};
