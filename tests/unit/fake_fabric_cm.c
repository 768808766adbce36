// SPDX-License-Identifier: MIT
/*
 * The fake fabric's rdma_cm half: event channels, ids, address and route
 * resolution, listen / connect / accept / reject, disconnect.
 *
 * Every event goes to the channel its id is on when it is raised (passive
 * ids start on the listener's; rdma_migrate_id moves them and their queued
 * events). A channel's fd is an eventfd kept readable exactly while events
 * are queued, so poll() on it behaves as on a real rdma_cm channel. Events
 * handed out and not acked are counted per id: rdma_migrate_id and
 * rdma_destroy_id wait for those in librdmacm, so here they are misuse.
 *
 * Only IPv4 loopback addresses (127.x) belong to the fake device; INADDR_ANY
 * may be listened on; anything else has no RDMA device.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "fake_fabric_priv.h"

/* IB CM reject reasons rdma_cm reports in the status of REJECTED */
#define FF_REJ_INVALID_SERVICE_ID 8
#define FF_REJ_CONSUMER_DEFINED	  28
/* private data that fits in an IB CM REQ (rdma_cm takes 36 of its 92 bytes) */
#define FF_REQ_PRIV_MAX 56

#define ff_of(type, p) ((struct type *)(void *)(p))

static uint16_t sa_port(const struct sockaddr *sa)
{
	return ntohs(((const struct sockaddr_in *)sa)->sin_port);
}

static void sa_set_port(struct sockaddr *sa, uint16_t port)
{
	((struct sockaddr_in *)sa)->sin_port = htons(port);
}

/* Under ff.mu: whether a bound or listening id holds @port. */
static bool port_in_use(uint16_t port)
{
	for (struct ff_id *i = ff.ids; i; i = i->next)
		if ((i->state == FF_ID_BOUND || i->state == FF_ID_LISTEN) &&
		    sa_port((struct sockaddr *)&i->id.route.addr.src_addr) == port)
			return true;
	return false;
}

/*
 * Under ff.mu: whether binding @sa would clash with a bound or listening id:
 * the same port on the same address, or either of them the wildcard (so
 * several rails may listen on one port, each on its own 127.x address).
 */
static bool addr_in_use(const struct sockaddr *sa)
{
	const struct sockaddr_in *a = (const struct sockaddr_in *)sa;

	for (struct ff_id *i = ff.ids; i; i = i->next) {
		const struct sockaddr_in *s = (const struct sockaddr_in *)&i->id.route.addr.src_addr;

		if ((i->state == FF_ID_BOUND || i->state == FF_ID_LISTEN) &&
		    s->sin_port == a->sin_port &&
		    (s->sin_addr.s_addr == a->sin_addr.s_addr ||
		     s->sin_addr.s_addr == htonl(INADDR_ANY) ||
		     a->sin_addr.s_addr == htonl(INADDR_ANY)))
			return true;
	}
	return false;
}

static uint16_t ephemeral_port(void)
{
	do {
		if (++ff.next_port < 20000)
			ff.next_port = 20000;
	} while (port_in_use(ff.next_port));
	return ff.next_port;
}

/* ------------------------------------------------------------- events */

static void ev_append(struct ff_ech *ch, struct ff_ev *e)
{
	e->next = NULL;
	if (ch->tail)
		ch->tail->next = e;
	else
		ch->head = e;
	ch->tail = e;
	if (ch->head == e)
		ff_efd_set(ch->ch.fd, true);
}

/* Under ff.mu: raise @type on @id's channel. */
static struct ff_ev *ev_post(struct ff_id *id, enum rdma_cm_event_type type, int status,
			     const void *priv, size_t priv_len)
{
	struct ff_ev *e = calloc(1, sizeof(*e));

	if (!e) {
		fprintf(stderr, "fake fabric: out of memory for an rdma_cm event\n");
		abort();
	}
	e->ev.id = &id->id;
	e->ev.event = type;
	e->ev.status = status;
	if (priv_len) {
		memcpy(e->priv, priv, priv_len);
		e->ev.param.conn.private_data = e->priv;
		e->ev.param.conn.private_data_len = (uint8_t)priv_len;
	}
	e->owner = id;
	ev_append(id->ech, e);
	return e;
}

/* Under ff.mu: unlink an id, which must be on no list but ff.ids. */
static void id_free(struct ff_id *id)
{
	struct ff_id **pp;

	for (pp = &ff.ids; *pp && *pp != id; pp = &(*pp)->next)
		;
	if (*pp)
		*pp = id->next;
	for (struct ff_ev *e = ff.out; e; e = e->next)
		if (e->owner == id)
			e->owner = NULL;
	id->ech->nids--;
	ff.live--;
	free(id);
}

/*
 * Under ff.mu: take @id's queued events off @ch (moved to @to, or dropped).
 * A dropped connection request refuses its connection: nobody can accept
 * it any more, and its passive id, never handed out, goes with it.
 */
static void ev_take(struct ff_ech *ch, struct ff_id *id, struct ff_id *listener, struct ff_ech *to)
{
	struct ff_ev **pp = &ch->head, *e;

	ch->tail = NULL;
	while ((e = *pp)) {
		bool mine = e->owner == id ||
			    (listener && e->ev.event == RDMA_CM_EVENT_CONNECT_REQUEST &&
			     e->ev.listen_id == &listener->id);

		if (!mine) {
			ch->tail = e;
			pp = &e->next;
			continue;
		}
		*pp = e->next;
		if (to) {
			ev_append(to, e);
			continue;
		}
		if (e->ev.event == RDMA_CM_EVENT_CONNECT_REQUEST && e->owner) {
			struct ff_id *child = e->owner;

			if (child->peer) {
				child->peer->state = FF_ID_IDLE;
				child->peer->peer = NULL;
				ev_post(child->peer, RDMA_CM_EVENT_REJECTED,
					FF_REJ_INVALID_SERVICE_ID, NULL, 0);
			}
			if (child != id)
				id_free(child);
		}
		free(e);
	}
	if (!ch->head)
		ff_efd_set(ch->ch.fd, false);
}

int ff_create_event_channel(struct rdma_event_channel **ch)
{
	struct ff_ech *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	c->ch.fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (c->ch.fd < 0) {
		free(c);
		return -errno;
	}
	pthread_mutex_lock(&ff.mu);
	ff.live++;
	pthread_mutex_unlock(&ff.mu);
	*ch = &c->ch;
	return 0;
}

void ff_destroy_event_channel(struct rdma_event_channel *ch)
{
	struct ff_ech *c = ff_of(ff_ech, ch);

	pthread_mutex_lock(&ff.mu);
	if (c->nids)
		ff_misuse("rdma_destroy_event_channel with %u ids still on it", c->nids);
	while (c->head) {
		struct ff_ev *e = c->head;

		c->head = e->next;
		free(e);
	}
	ff.live--;
	pthread_mutex_unlock(&ff.mu);
	close(c->ch.fd);
	free(c);
}

int ff_get_cm_event(struct rdma_event_channel *ch, struct rdma_cm_event **ev)
{
	struct ff_ech *c = ff_of(ff_ech, ch);
	struct ff_ev *e;

	pthread_mutex_lock(&ff.mu);
	e = c->head;
	if (!e) {
		pthread_mutex_unlock(&ff.mu);
		return -EAGAIN;
	}
	c->head = e->next;
	if (!c->head) {
		c->tail = NULL;
		ff_efd_set(c->ch.fd, false);
	}
	/* librdmacm moves the QP to error as it hands out DISCONNECTED */
	if (e->ev.event == RDMA_CM_EVENT_DISCONNECTED && e->ev.id->qp)
		ff_qp_error(ff_of(ff_qp, e->ev.id->qp));
	if (e->owner)
		e->owner->unacked++;
	e->next = ff.out;
	ff.out = e;
	pthread_mutex_unlock(&ff.mu);
	*ev = &e->ev;
	return 0;
}

int ff_ack_cm_event(struct rdma_cm_event *ev)
{
	struct ff_ev *e = ff_of(ff_ev, ev), **pp;

	pthread_mutex_lock(&ff.mu);
	for (pp = &ff.out; *pp && *pp != e; pp = &(*pp)->next)
		;
	if (!*pp) {
		ff_misuse("rdma_ack_cm_event of an event not handed out");
		pthread_mutex_unlock(&ff.mu);
		return -EINVAL;
	}
	*pp = e->next;
	if (e->owner)
		e->owner->unacked--;
	pthread_mutex_unlock(&ff.mu);
	free(e);
	return 0;
}

/* ---------------------------------------------------------------- ids */

/* Under ff.mu: a new id on @ch. */
static struct ff_id *id_new(struct ff_ech *ch, void *ctx, enum rdma_port_space ps)
{
	struct ff_id *id = calloc(1, sizeof(*id));

	if (!id)
		return NULL;
	id->id.channel = &ch->ch;
	id->id.context = ctx;
	id->id.ps = ps;
	id->id.qp_type = IBV_QPT_RC;
	id->ech = ch;
	ch->nids++;
	id->next = ff.ids;
	ff.ids = id;
	ff.live++;
	return id;
}

int ff_create_id(struct rdma_event_channel *ch, struct rdma_cm_id **idp, void *ctx,
		 enum rdma_port_space ps)
{
	struct ff_id *id;

	pthread_mutex_lock(&ff.mu);
	id = id_new(ff_of(ff_ech, ch), ctx, ps);
	pthread_mutex_unlock(&ff.mu);
	if (!id)
		return -ENOMEM;
	*idp = &id->id;
	return 0;
}

/* Under ff.mu: the connection of @id ends; both sides hear DISCONNECTED once. */
static void id_disconnect(struct ff_id *id)
{
	struct ff_id *peer = id->peer;

	if (id->state != FF_ID_CONNECTED)
		return;
	id->state = FF_ID_DISCONNECTED;
	if (id->id.qp)
		ff_qp_error(ff_of(ff_qp, id->id.qp));
	ev_post(id, RDMA_CM_EVENT_DISCONNECTED, 0, NULL, 0);
	if (peer && peer->state == FF_ID_CONNECTED) {
		peer->state = FF_ID_DISCONNECTED;
		ev_post(peer, RDMA_CM_EVENT_DISCONNECTED, 0, NULL, 0);
	}
}

int ff_destroy_id(struct rdma_cm_id *rid)
{
	struct ff_id *id = ff_of(ff_id, rid);

	pthread_mutex_lock(&ff.mu);
	if (rid->qp)
		ff_misuse("rdma_destroy_id with its QP not destroyed");
	if (id->unacked)
		ff_misuse("rdma_destroy_id with %u events not acked (would hang)", id->unacked);
	/* the kernel sends a DREQ for a connected id, a REJ for a request not accepted */
	if (id->state == FF_ID_CONNECTED) {
		if (id->peer && id->peer->state == FF_ID_CONNECTED) {
			id->peer->state = FF_ID_DISCONNECTED;
			ev_post(id->peer, RDMA_CM_EVENT_DISCONNECTED, 0, NULL, 0);
		}
	} else if (id->state == FF_ID_REQ && id->peer) {
		id->peer->state = FF_ID_IDLE;
		ev_post(id->peer, RDMA_CM_EVENT_REJECTED, FF_REJ_CONSUMER_DEFINED, NULL, 0);
	}
	if (id->peer)
		id->peer->peer = NULL;
	ev_take(id->ech, id, id->state == FF_ID_LISTEN ? id : NULL, NULL);
	for (struct ff_id *i = ff.ids; i; i = i->next)
		if (i->listener == id)
			i->listener = NULL;
	id_free(id);
	pthread_mutex_unlock(&ff.mu);
	return 0;
}

int ff_migrate_id(struct rdma_cm_id *rid, struct rdma_event_channel *ch)
{
	struct ff_id *id = ff_of(ff_id, rid);
	struct ff_ech *to = ff_of(ff_ech, ch);

	pthread_mutex_lock(&ff.mu);
	if (id->unacked) {
		ff_misuse("rdma_migrate_id with %u events not acked (would hang)", id->unacked);
		pthread_mutex_unlock(&ff.mu);
		return -EBUSY;
	}
	ev_take(id->ech, id, NULL, to);
	id->ech->nids--;
	to->nids++;
	id->ech = to;
	rid->channel = ch;
	pthread_mutex_unlock(&ff.mu);
	return 0;
}

int ff_set_option(struct rdma_cm_id *id, int level, int name, void *val, size_t len)
{
	return 0;
}

static bool is_loopback(const struct sockaddr *sa)
{
	return sa->sa_family == AF_INET &&
	       (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
}

static bool is_any(const struct sockaddr *sa)
{
	return sa->sa_family == AF_INET &&
	       ((const struct sockaddr_in *)sa)->sin_addr.s_addr == htonl(INADDR_ANY);
}

int ff_bind_addr(struct rdma_cm_id *rid, struct sockaddr *addr)
{
	struct ff_id *id = ff_of(ff_id, rid);
	struct sockaddr *src = (struct sockaddr *)&rid->route.addr.src_addr;
	uint16_t port = sa_port(addr);
	int ret = 0;

	if (!is_loopback(addr) && !is_any(addr))
		return -EADDRNOTAVAIL;
	pthread_mutex_lock(&ff.mu);
	if (id->state != FF_ID_IDLE)
		ret = -EINVAL;
	else if (port && addr_in_use(addr))
		ret = -EADDRINUSE;
	if (!ret) {
		memcpy(src, addr, sizeof(struct sockaddr_in));
		sa_set_port(src, port ? port : ephemeral_port());
		/* a wildcard id has no device until a connection arrives */
		rid->verbs = is_any(addr) ? NULL : &ff.ctx;
		rid->port_num = is_any(addr) ? 0 : 1;
		id->state = FF_ID_BOUND;
	}
	pthread_mutex_unlock(&ff.mu);
	return ret;
}

int ff_listen(struct rdma_cm_id *rid, int backlog)
{
	struct ff_id *id = ff_of(ff_id, rid);
	int ret = -EINVAL;

	pthread_mutex_lock(&ff.mu);
	if (id->state == FF_ID_BOUND) {
		id->state = FF_ID_LISTEN;
		ret = 0;
	}
	pthread_mutex_unlock(&ff.mu);
	return ret;
}

uint16_t ff_get_src_port(struct rdma_cm_id *rid)
{
	return sa_port((struct sockaddr *)&rid->route.addr.src_addr);
}

int ff_resolve_addr(struct rdma_cm_id *rid, struct sockaddr *src, struct sockaddr *dst,
		    int timeout_ms)
{
	struct ff_id *id = ff_of(ff_id, rid);
	struct sockaddr_in *s = (struct sockaddr_in *)&rid->route.addr.src_addr;

	pthread_mutex_lock(&ff.mu);
	if (id->state != FF_ID_IDLE) {
		pthread_mutex_unlock(&ff.mu);
		return -EINVAL;
	}
	id->active = true;
	if (!is_loopback(dst)) {
		/* resolution runs, and finds no RDMA device on the way */
		ev_post(id, RDMA_CM_EVENT_ADDR_ERROR, -ENODEV, NULL, 0);
		pthread_mutex_unlock(&ff.mu);
		return 0;
	}
	memcpy(&rid->route.addr.dst_addr, dst, sizeof(struct sockaddr_in));
	memset(s, 0, sizeof(*s));
	s->sin_family = AF_INET;
	s->sin_addr = ((struct sockaddr_in *)dst)->sin_addr;
	s->sin_port = htons(ephemeral_port());
	rid->verbs = &ff.ctx;
	rid->port_num = 1;
	id->state = FF_ID_ADDR;
	ev_post(id, RDMA_CM_EVENT_ADDR_RESOLVED, 0, NULL, 0);
	pthread_mutex_unlock(&ff.mu);
	return 0;
}

int ff_resolve_route(struct rdma_cm_id *rid, int timeout_ms)
{
	struct ff_id *id = ff_of(ff_id, rid);
	int ret = -EINVAL;

	pthread_mutex_lock(&ff.mu);
	if (id->state == FF_ID_ADDR) {
		id->state = FF_ID_ROUTE;
		ev_post(id, RDMA_CM_EVENT_ROUTE_RESOLVED, 0, NULL, 0);
		ret = 0;
	}
	pthread_mutex_unlock(&ff.mu);
	return ret;
}

/* Under ff.mu: the id listening for @dst, or NULL. */
static struct ff_id *find_listener(const struct sockaddr *dst)
{
	const struct sockaddr_in *d = (const struct sockaddr_in *)dst;

	for (struct ff_id *i = ff.ids; i; i = i->next) {
		const struct sockaddr_in *s = (const struct sockaddr_in *)&i->id.route.addr.src_addr;

		if (i->state == FF_ID_LISTEN && s->sin_port == d->sin_port &&
		    (s->sin_addr.s_addr == htonl(INADDR_ANY) ||
		     s->sin_addr.s_addr == d->sin_addr.s_addr))
			return i;
	}
	return NULL;
}

int ff_connect(struct rdma_cm_id *rid, struct rdma_conn_param *p)
{
	struct ff_id *id = ff_of(ff_id, rid), *l, *child;
	struct ff_ev *e;

	if (p->private_data_len > FF_REQ_PRIV_MAX)
		return -EINVAL;
	pthread_mutex_lock(&ff.mu);
	if (id->state != FF_ID_ROUTE || !rid->qp) {
		pthread_mutex_unlock(&ff.mu);
		return -EINVAL;
	}
	for (unsigned int i = 0; i < ff.ndown; i++)
		if (((struct sockaddr_in *)&rid->route.addr.dst_addr)->sin_addr.s_addr == ff.down[i]) {
			/* the link is down: the REQ's retries run out */
			id->state = FF_ID_IDLE;
			ev_post(id, RDMA_CM_EVENT_UNREACHABLE, -ETIMEDOUT, NULL, 0);
			pthread_mutex_unlock(&ff.mu);
			return 0;
		}
	l = find_listener((struct sockaddr *)&rid->route.addr.dst_addr);
	if (!l) {
		/* the peer's CM answers a REQ for an unknown service with a REJ */
		id->state = FF_ID_IDLE;
		ev_post(id, RDMA_CM_EVENT_REJECTED, FF_REJ_INVALID_SERVICE_ID, NULL, 0);
		pthread_mutex_unlock(&ff.mu);
		return 0;
	}
	child = id_new(l->ech, l->id.context, l->id.ps);
	if (!child) {
		pthread_mutex_unlock(&ff.mu);
		return -ENOMEM;
	}
	child->id.verbs = &ff.ctx;
	child->id.port_num = 1;
	memcpy(&child->id.route.addr.src_addr, &rid->route.addr.dst_addr,
	       sizeof(struct sockaddr_in));
	memcpy(&child->id.route.addr.dst_addr, &rid->route.addr.src_addr,
	       sizeof(struct sockaddr_in));
	child->state = FF_ID_REQ;
	child->peer = id;
	child->listener = l;
	id->peer = child;
	id->state = FF_ID_CONNECTING;
	/* the request is the passive id's event (it acks before rdma_migrate_id), raised on the
	 * listener's channel */
	e = ev_post(child, RDMA_CM_EVENT_CONNECT_REQUEST, 0, p->private_data,
		    p->private_data_len);
	e->ev.listen_id = &l->id;
	e->ev.param.conn.responder_resources = p->responder_resources;
	e->ev.param.conn.initiator_depth = p->initiator_depth;
	e->ev.param.conn.retry_count = p->retry_count;
	e->ev.param.conn.rnr_retry_count = p->rnr_retry_count;
	pthread_mutex_unlock(&ff.mu);
	return 0;
}

int ff_accept(struct rdma_cm_id *rid, struct rdma_conn_param *p)
{
	struct ff_id *id = ff_of(ff_id, rid), *a;
	struct ff_qp *qp, *aqp;
	struct ff_ev *e;

	if (p && p->private_data_len > FF_PRIV_MAX)
		return -EINVAL;
	pthread_mutex_lock(&ff.mu);
	if (id->state != FF_ID_REQ || !rid->qp) {
		pthread_mutex_unlock(&ff.mu);
		return -EINVAL;
	}
	a = id->peer;
	if (!a || a->state != FF_ID_CONNECTING || !a->id.qp) {
		/* the active side gave up: the REP goes nowhere */
		id->state = FF_ID_IDLE;
		ev_post(id, RDMA_CM_EVENT_CONNECT_ERROR, -ETIMEDOUT, NULL, 0);
		pthread_mutex_unlock(&ff.mu);
		return 0;
	}
	qp = ff_of(ff_qp, rid->qp);
	aqp = ff_of(ff_qp, a->id.qp);
	qp->peer = aqp;
	aqp->peer = qp;
	qp->qp.state = IBV_QPS_RTS;
	aqp->qp.state = IBV_QPS_RTS;
	id->state = FF_ID_CONNECTED;
	a->state = FF_ID_CONNECTED;
	e = ev_post(a, RDMA_CM_EVENT_ESTABLISHED, 0, p ? p->private_data : NULL,
		    p ? p->private_data_len : 0);
	if (p) {
		e->ev.param.conn.responder_resources = p->responder_resources;
		e->ev.param.conn.initiator_depth = p->initiator_depth;
	}
	ev_post(id, RDMA_CM_EVENT_ESTABLISHED, 0, NULL, 0);
	pthread_mutex_unlock(&ff.mu);
	return 0;
}

int ff_reject(struct rdma_cm_id *rid, const void *data, uint8_t len)
{
	struct ff_id *id = ff_of(ff_id, rid);
	int ret = -EINVAL;

	if (len > FF_PRIV_MAX)
		return -EINVAL;
	pthread_mutex_lock(&ff.mu);
	if (id->state == FF_ID_REQ) {
		if (id->peer && id->peer->state == FF_ID_CONNECTING) {
			id->peer->state = FF_ID_IDLE;
			id->peer->peer = NULL;
			ev_post(id->peer, RDMA_CM_EVENT_REJECTED, FF_REJ_CONSUMER_DEFINED, data,
				len);
		}
		id->peer = NULL;
		id->state = FF_ID_IDLE;
		ret = 0;
	}
	pthread_mutex_unlock(&ff.mu);
	return ret;
}

int ff_disconnect(struct rdma_cm_id *rid)
{
	struct ff_id *id = ff_of(ff_id, rid);
	int ret = 0;

	pthread_mutex_lock(&ff.mu);
	if (id->state == FF_ID_CONNECTED)
		id_disconnect(id);
	else if (id->state == FF_ID_DISCONNECTED && rid->qp)
		ff_qp_error(ff_of(ff_qp, rid->qp)); /* the peer's DREQ came first */
	else if (id->state != FF_ID_DISCONNECTED)
		ret = -EINVAL;
	pthread_mutex_unlock(&ff.mu);
	return ret;
}
