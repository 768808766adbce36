// SPDX-License-Identifier: MIT
/*
 * The destination half. One receive thread per channel reads messages,
 * validates every field before it touches RAM, places page data (or lets the
 * transport's placement stand), and stops at each SYNC until the main thread
 * has seen that round on every channel (the multifd receive barrier).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "rmig/live.h"

#include "barrier.h"
#include "core.h"
#include "msgcheck.h"
#include "postcopy.h"
#include "zero.h"

enum dst_state { DST_NEW, DST_LISTENING, DST_RUNNING, DST_DONE };

/* Most device-state bytes held while waiting for an earlier chunk. */
#define DEV_PENDING_MAX (256u << 20)

struct dst_chan {
	struct rmig_dst *d;
	unsigned int id;
	struct rmig_conn *conn;
	pthread_t thread;
	bool started;
	uint64_t seq;
	uint64_t out_seq; /* messages sent back to the source (RELEASE) */
	struct rmig_totals tot;
	uint8_t *body;
	struct iovec *iov;
	uint64_t *offsets;
	uint8_t fin[sizeof(struct rmig_wire_fin)];
} __attribute__((aligned(RMIG_CACHELINE)));

struct dev_pending {
	struct dev_pending *next;
	uint64_t seq;
	uint32_t instance;
	char idstr[RMIG_IDSTR_MAX];
	size_t len;
	uint8_t data[];
};

/* A SWITCHOVER_ACK waiting for the main thread, its body encoded. */
struct dst_ack {
	struct dst_ack *next;
	size_t len;
	uint8_t body[];
};

struct rmig_dst {
	struct rmig_opts opts;
	struct rmig_err err;
	struct rmig_block *blocks;
	unsigned int nblocks;
	const struct rmig_xport_ops *xops;
	struct rmig_xport *xp;
	struct rmig_conn *ctl;
	uint64_t ctl_seq_out, ctl_seq_in;
	struct dst_chan *chans;
	unsigned int nchan;
	struct rmig_hello hello;
	bool placed;
	bool loading; /* RMIG_XCAP_LOAD: no source, the transport loads from storage */
	enum dst_state state;

	rmig_dev_state_fn dev_fn;
	void *dev_arg;
	pthread_mutex_t dev_lock;
	uint64_t dev_next;
	struct dev_pending *dev_pending; /* sorted by seq */
	size_t dev_pending_bytes;

	/* the receive barrier; all under lock */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned int at_sync; /* channels stopped at round reached + 1 */
	unsigned int at_fin;
	uint64_t reached;     /* last round every channel reached */
	uint64_t released;    /* channels may pass SYNC r when r <= released */
	bool held;	      /* reached > released: the caller is looking at RAM */
	bool failed;
	bool abort_sent;
	struct dst_ack *acks; /* to send, oldest first; any thread queues, main sends */

	/*
	 * Postcopy (postcopy.h). The control connection is read by pc_ctl
	 * alone once accepted; sends on it take ctl_send_lock.
	 */
	bool pc_enabled;
	pthread_mutex_t ctl_send_lock;
	_Atomic uint64_t **pc_recvd; /* per block: page loaded by a channel */
	uint64_t **pc_discard;	     /* per block: stale (PC_DISCARD), pc_ctl until start */
	uint64_t **pc_present;	     /* per block, under lock once running */
	uint64_t **pc_requested;     /* per block, under lock */
	pthread_t pc_ctl, pc_fault, pc_bg;
	bool pc_ctl_started, pc_fault_started, pc_bg_started;
	int pc_uffd;
	bool pc_uffd_used; /* under lock */
	_Atomic bool pc_live; /* receive threads: no RAM message may come any more */
	_Atomic uint64_t pc_faults;
	/* under lock */
	bool pc_announced, pc_running, pc_complete, pc_stop;
	uint64_t pc_round, pc_missing, pc_left, pc_pulled, pc_outstanding, pc_pulls;
	uint64_t pc_start_ns, pc_done_ns;
	/*
	 * Pulls by the transport (RMIG_XCAP_PULL, the source sent
	 * PC_PULL_INFO): one pull thread reads runs of missing pages into
	 * pc_area and places them; the fault thread queues faulting pages for
	 * it (pc_fq, under lock); pc_unreported (under lock) holds pages
	 * pulled since the last PC_PULLED.
	 */
	bool pc_by_read;
	uint8_t *pc_area;     /* RMIG_PC_PULL_SLOTS slots of pc_slot bytes */
	uint64_t pc_slot;
	struct { uint32_t block; uint64_t page; } pc_fq[RMIG_PC_FAULT_QUEUE];
	unsigned int pc_fq_head, pc_fq_tail; /* free-running */
	uint64_t **pc_unreported;
	uint64_t *pc_unrep_lo, *pc_unrep_hi; /* per block: words that may hold bits; lo > hi: none */
	/* a message pc_ctl read for the main thread (DONE), or its error */
	bool stash_set;
	int stash_ret;
	struct rmig_hdr stash_h;
	void *stash_body;
	char stash_why[RMIG_ERRMSG_MAX];
};

static void dst_shutdown_chans(struct rmig_dst *d)
{
	for (unsigned int i = 0; i < d->nchan; i++)
		if (d->chans[i].conn)
			d->chans[i].conn->ops->shutdown(d->chans[i].conn);
}

static int dst_fail(struct rmig_dst *d, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * Record the first failure, stop every channel, and wake the main thread,
 * which tells the source why (the control connection is the main thread's).
 */
static int dst_fail(struct rmig_dst *d, int code, const char *fmt, ...)
{
	va_list ap;
	int ret;

	va_start(ap, fmt);
	ret = rmig_err_vset(&d->err, code, fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&d->lock);
	d->failed = true;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
	/* A failed migration's peer must not write into our RAM any more. */
	if (d->xp)
		d->xops->revoke(d->xp);
	if (d->chans)
		dst_shutdown_chans(d);
	return ret;
}

/*
 * Main thread, on a failure that says the source went away (a channel or
 * the control connection closed or reset): a source that failed on its own
 * sends ABORT with its reason first (core/src.c, src_tell_peer). Read it,
 * if it comes within half a second, so the error names the real cause.
 * Not while the postcopy control thread owns the control connection: it
 * handles ABORT itself.
 */
static void dst_source_reason(struct rmig_dst *d)
{
	char why[RMIG_ERRMSG_MAX], msg[RMIG_ERRMSG_MAX];
	int code = rmig_err_code(&d->err), status;
	const void *info;
	size_t info_len;
	struct rmig_hdr h;
	void *body = NULL;

	if (!d->ctl || d->pc_ctl_started || d->stash_set ||
	    (code != -ECONNRESET && code != -EPIPE && code != -ECONNABORTED && code != -ENOTCONN))
		return;
	if (rmig_msg_recv(d->ctl, 500, 8192, &h, &body, why, sizeof(why)) == 0 &&
	    h.type == RMIG_MSG_ABORT &&
	    rmig_status_parse(body, h.len, &status, msg, sizeof(msg), &info, &info_len) == 0 &&
	    status < 0) {
		/* the code stays what the caller was told; the text names the cause */
		rmig_err_reword(&d->err, "source aborted: %.400s", msg);
		d->abort_sent = true; /* the source is gone: nothing to tell it */
	}
	free(body);
}

/* Main thread: tell the source why we stopped (best effort, once). */
static void dst_send_abort(struct rmig_dst *d)
{
	char msg[RMIG_ERRMSG_MAX];

	dst_source_reason(d);
	if (!d->ctl || d->abort_sent)
		return;
	d->abort_sent = true;
	rmig_err_msg(&d->err, msg, sizeof(msg));
	pthread_mutex_lock(&d->ctl_send_lock);
	rmig_status_send(d->ctl, RMIG_MSG_ABORT, d->ctl_seq_out++, rmig_err_code(&d->err), msg,
			 NULL, 0);
	pthread_mutex_unlock(&d->ctl_send_lock);
}

/* ---- device state, delivered in the source's order --------------------- */

static int dev_deliver(struct rmig_dst *d, unsigned int ch, uint64_t seq, const char *id,
		       uint32_t instance, const uint8_t *data, size_t len)
{
	struct dev_pending *p, **pp;
	int ret = 0;

	pthread_mutex_lock(&d->dev_lock);
	if (seq < d->dev_next) {
		ret = dst_fail(d, -EPROTO, "channel %u: device-state chunk %llu arrived twice", ch,
			       (unsigned long long)seq);
		goto out;
	}
	if (seq > d->dev_next) {
		for (pp = &d->dev_pending; *pp && (*pp)->seq < seq; pp = &(*pp)->next)
			;
		if (*pp && (*pp)->seq == seq) {
			ret = dst_fail(d, -EPROTO, "channel %u: device-state chunk %llu arrived twice",
				       ch, (unsigned long long)seq);
			goto out;
		}
		if (d->dev_pending_bytes + len > DEV_PENDING_MAX) {
			ret = dst_fail(d, -ENOBUFS,
				       "channel %u: more than %u MiB of device state waiting for chunk %llu",
				       ch, DEV_PENDING_MAX >> 20, (unsigned long long)d->dev_next);
			goto out;
		}
		p = malloc(sizeof(*p) + len);
		if (!p) {
			ret = dst_fail(d, -ENOMEM, "out of memory holding device state");
			goto out;
		}
		p->seq = seq;
		p->instance = instance;
		snprintf(p->idstr, sizeof(p->idstr), "%s", id);
		p->len = len;
		memcpy(p->data, data, len);
		p->next = *pp;
		*pp = p;
		d->dev_pending_bytes += len;
		goto out;
	}
	if (d->dev_fn && d->dev_fn(d->dev_arg, id, instance, seq, data, len)) {
		ret = dst_fail(d, -ECANCELED, "device-state callback refused '%s' instance %u", id,
			       instance);
		goto out;
	}
	d->dev_next++;
	while ((p = d->dev_pending) && p->seq == d->dev_next) {
		d->dev_pending = p->next;
		d->dev_pending_bytes -= p->len;
		if (d->dev_fn && d->dev_fn(d->dev_arg, p->idstr, p->instance, p->seq, p->data, p->len))
			ret = dst_fail(d, -ECANCELED, "device-state callback refused '%s' instance %u",
				       p->idstr, p->instance);
		free(p);
		if (ret)
			goto out;
		d->dev_next++;
	}
out:
	pthread_mutex_unlock(&d->dev_lock);
	return ret;
}

/* ---- receive thread ---------------------------------------------------- */

static int recv_ram(struct dst_chan *ch, const struct rmig_hdr *h)
{
	struct rmig_dst *d = ch->d;
	uint32_t block, normal, zero, n, iovcnt = 0;
	char why[RMIG_ERRMSG_MAX];
	struct rmig_ram_msg m;
	struct rmig_block *b;
	int ret;

	if (h->len < sizeof(struct rmig_wire_ram))
		return dst_fail(d, -EPROTO, "channel %u: RAM message truncated (%u bytes)", ch->id,
				h->len);
	ret = ch->conn->ops->recv(ch->conn, ch->body, h->len, -1);
	if (ret)
		return dst_fail(d, ret, "channel %u: %s", ch->id, ch->conn->recv_err.msg);
	if (rmig_ram_check_head(ch->body, h->len, h->flags, d->blocks, d->nblocks,
				d->hello.pages_per_packet, d->placed, d->xops->name, &m, why,
				sizeof(why)))
		return dst_fail(d, -EPROTO, "channel %u: %s", ch->id, why);
	block = m.block;
	normal = m.normal;
	zero = m.zero;
	n = normal + zero;
	b = &d->blocks[block];
	if (rmig_load_relaxed(&d->pc_live))
		return dst_fail(d, -EPROTO, "channel %u: RAM message during postcopy", ch->id);

	/* Validate every offset before any byte lands in RAM. */
	if (rmig_ram_check_offsets(ch->body, b, &m, ch->offsets, why, sizeof(why)))
		return dst_fail(d, -EPROTO, "channel %u: %s", ch->id, why);
	for (uint32_t i = 0; i < normal; i++) {
		uint64_t off = ch->offsets[i];

		if (iovcnt && (uint8_t *)ch->iov[iovcnt - 1].iov_base + ch->iov[iovcnt - 1].iov_len ==
				      b->host + off) {
			ch->iov[iovcnt - 1].iov_len += b->page_size;
		} else {
			ch->iov[iovcnt].iov_base = b->host + off;
			ch->iov[iovcnt].iov_len = b->page_size;
			iovcnt++;
		}
	}
	if (!d->placed && iovcnt) {
		ret = ch->conn->ops->recv_pages(ch->conn, ch->iov, iovcnt);
		if (ret)
			return dst_fail(d, ret, "channel %u: receiving %u pages of '%s': %s", ch->id,
					normal, b->name, ch->conn->recv_err.msg);
	}
	for (uint32_t i = normal; i < n; i++) {
		uint8_t *page = b->host + ch->offsets[i];

		/* Writing zeros to a page that already is zero would only allocate memory. */
		if (!rmig_is_zero(page, b->page_size)) {
			memset(page, 0, b->page_size);
			rmig_add_relaxed(&ch->tot.zero_written, 1);
		}
	}
	if (d->pc_recvd) {
		/* published to the main thread by the SYNC barrier's lock */
		for (uint32_t i = 0; i < n; i++) {
			uint64_t page = ch->offsets[i] >> b->page_shift;

			atomic_fetch_or_explicit(&d->pc_recvd[block][page / 64], 1ull << (page % 64),
						 memory_order_relaxed);
		}
	}
	rmig_add_relaxed(&ch->tot.packets, 1);
	rmig_add_relaxed(&ch->tot.normal_pages, normal);
	rmig_add_relaxed(&ch->tot.zero_pages, zero);
	rmig_add_relaxed(&ch->tot.data_bytes, (uint64_t)normal * b->page_size);
	return 0;
}

static int recv_dev(struct dst_chan *ch, const struct rmig_hdr *h)
{
	struct rmig_dst *d = ch->d;
	char why[RMIG_ERRMSG_MAX];
	struct rmig_dev_msg m;
	int ret;

	if (h->len < sizeof(struct rmig_wire_dev))
		return dst_fail(d, -EPROTO, "channel %u: device-state message truncated", ch->id);
	ret = ch->conn->ops->recv(ch->conn, ch->body, h->len, -1);
	if (ret)
		return dst_fail(d, ret, "channel %u: %s", ch->id, ch->conn->recv_err.msg);
	if (rmig_dev_check(ch->body, h->len, &m, why, sizeof(why)))
		return dst_fail(d, -EPROTO, "channel %u: %s", ch->id, why);
	ret = dev_deliver(d, ch->id, m.seq, m.id, m.instance, m.data, m.len);
	if (ret)
		return ret;
	rmig_add_relaxed(&ch->tot.packets, 1);
	rmig_add_relaxed(&ch->tot.dev_chunks, 1);
	rmig_add_relaxed(&ch->tot.dev_bytes, m.len);
	return 0;
}

static int recv_sync(struct dst_chan *ch, const struct rmig_hdr *h)
{
	struct rmig_dst *d = ch->d;
	uint64_t round, want;
	int ret;

	if (h->len != sizeof(struct rmig_wire_sync))
		return dst_fail(d, -EPROTO, "channel %u: SYNC of %u bytes", ch->id, h->len);
	ret = ch->conn->ops->recv(ch->conn, ch->body, h->len, -1);
	if (ret)
		return dst_fail(d, ret, "channel %u: %s", ch->id, ch->conn->recv_err.msg);
	round = rmig_get_be64(ch->body);
	want = rmig_load_relaxed(&ch->tot.syncs) + 1;
	if (round != want)
		return dst_fail(d, -EPROTO, "channel %u: SYNC for round %llu, expected round %llu",
				ch->id, (unsigned long long)round, (unsigned long long)want);
	rmig_add_relaxed(&ch->tot.syncs, 1);

	pthread_mutex_lock(&d->lock);
	d->at_sync++;
	pthread_cond_broadcast(&d->cond);
	while (d->released < round && !d->failed)
		pthread_cond_wait(&d->cond, &d->lock);
	ret = d->failed ? -ECANCELED : 0;
	pthread_mutex_unlock(&d->lock);
	if (ret || !d->placed)
		return ret;
	/*
	 * Holding this thread holds a stream, but not RAM that the source
	 * writes one-sidedly: it waits for this RELEASE before it places any
	 * data of the next round on this channel.
	 */
	ret = rmig_msg_send(ch->conn, RMIG_MSG_RELEASE, 0, ch->out_seq++, ch->body,
			    sizeof(struct rmig_wire_sync));
	if (ret)
		return dst_fail(d, ret, "channel %u: sending RELEASE: %s", ch->id, ch->conn->err.msg);
	return 0;
}

static const char *const fin_fields[] = { "packets",	"normal pages", "zero pages", "data bytes",
					  "dev chunks", "dev bytes",	"syncs" };

static int recv_fin(struct dst_chan *ch, const struct rmig_hdr *h)
{
	struct rmig_dst *d = ch->d;
	uint64_t mine[7];
	int ret;

	if (h->len != sizeof(struct rmig_wire_fin))
		return dst_fail(d, -EPROTO, "channel %u: FIN of %u bytes", ch->id, h->len);
	ret = ch->conn->ops->recv(ch->conn, ch->fin, h->len, -1);
	if (ret)
		return dst_fail(d, ret, "channel %u: %s", ch->id, ch->conn->recv_err.msg);
	mine[0] = rmig_load_relaxed(&ch->tot.packets);
	mine[1] = rmig_load_relaxed(&ch->tot.normal_pages);
	mine[2] = rmig_load_relaxed(&ch->tot.zero_pages);
	mine[3] = rmig_load_relaxed(&ch->tot.data_bytes);
	mine[4] = rmig_load_relaxed(&ch->tot.dev_chunks);
	mine[5] = rmig_load_relaxed(&ch->tot.dev_bytes);
	mine[6] = rmig_load_relaxed(&ch->tot.syncs);
	for (unsigned int i = 0; i < 7; i++) {
		uint64_t theirs = rmig_get_be64(ch->fin + i * 8);

		if (theirs != mine[i])
			return dst_fail(d, -EPROTO,
					"channel %u: source sent %llu %s, destination received %llu",
					ch->id, (unsigned long long)theirs, fin_fields[i],
					(unsigned long long)mine[i]);
	}
	pthread_mutex_lock(&d->lock);
	d->at_fin++;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
	return 0;
}

static void *dst_chan_thread(void *arg)
{
	struct dst_chan *ch = arg;
	struct rmig_dst *d = ch->d;
	uint8_t raw[sizeof(struct rmig_wire_hdr)];
	char why[256], name[16];
	struct rmig_hdr h;
	int ret;

	snprintf(name, sizeof(name), "rmig-rx%u", ch->id);
	pthread_setname_np(pthread_self(), name);
	for (;;) {
		ret = ch->conn->ops->recv(ch->conn, raw, sizeof(raw), -1);
		if (ret) {
			dst_fail(d, ret, "channel %u: %s", ch->id, ch->conn->recv_err.msg);
			break;
		}
		ret = rmig_hdr_decode(raw, &h, why, sizeof(why));
		if (ret) {
			dst_fail(d, ret, "channel %u: %s", ch->id, why);
			break;
		}
		if (h.seq != ch->seq) {
			dst_fail(d, -EPROTO, "channel %u: message %llu arrived where %llu was expected",
				 ch->id, (unsigned long long)h.seq, (unsigned long long)ch->seq);
			break;
		}
		ch->seq++;
		switch (h.type) {
		case RMIG_MSG_RAM:
			ret = recv_ram(ch, &h);
			break;
		case RMIG_MSG_DEV:
			ret = recv_dev(ch, &h);
			break;
		case RMIG_MSG_SYNC:
			ret = recv_sync(ch, &h);
			break;
		case RMIG_MSG_FIN:
			recv_fin(ch, &h);
			return NULL;
		default:
			ret = dst_fail(d, -EPROTO, "channel %u: unexpected %s message", ch->id,
				       rmig_msg_name(h.type));
		}
		if (ret)
			break;
	}
	return NULL;
}

#include "dst_postcopy.inc"

/* ---- public API -------------------------------------------------------- */

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
	if (ret) {
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
	d->placed = d->xops->caps & RMIG_XCAP_PLACES_DATA;
	d->loading = d->xops->caps & RMIG_XCAP_LOAD;
	params = (struct rmig_xport_params){
		.opts = &d->opts, .blocks = d->blocks, .nblocks = d->nblocks, .channels = 0,
	};
	ret = d->xops->listen(&params, addr, &d->xp, &mb);
	if (ret == -ENOSYS)
		return rmig_err_set(&d->err, -EINVAL, "the %s transport cannot receive",
				    d->xops->name);
	if (ret)
		return rmig_err_set(&d->err, ret, "%s: %s", uri, mb.msg);
	d->state = DST_LISTENING;
	return 0;
}

int rmig_dst_port(struct rmig_dst *d)
{
	if (!d || d->state == DST_NEW || !d->xp)
		return -ENOTCONN;
	return d->xops->port(d->xp);
}

/* Refuse with @why: tell the source, record, return. */
static int dst_refuse(struct rmig_dst *d, int code, const char *why)
{
	rmig_status_send(d->ctl, RMIG_MSG_WELCOME, d->ctl_seq_out++, code, why, NULL, 0);
	return rmig_err_set(&d->err, code, "refused the migration: %s", why);
}

static int dst_handshake(struct rmig_dst *d)
{
	char why[RMIG_ERRMSG_MAX];
	struct rmig_hdr h;
	void *body = NULL, *info = NULL;
	size_t info_len = RMIG_PEER_INFO_MAX;
	int ret;

	ret = d->xops->accept(d->xp, d->opts.timeout_ms, &d->ctl);
	if (ret)
		return rmig_err_set(&d->err, ret, "waiting for a source to connect: %s",
				    d->xp->err.msg);
	ret = rmig_msg_recv(d->ctl, d->opts.timeout_ms, RMIG_HELLO_MAX, &h, &body, why, sizeof(why));
	if (ret)
		return rmig_err_set(&d->err, ret, "reading the source's HELLO: %s", why);
	if (h.type != RMIG_MSG_HELLO || h.seq != d->ctl_seq_in++) {
		ret = dst_refuse(d, -EPROTO, "the first control message must be HELLO number 0");
		goto out;
	}
	ret = rmig_hello_check(body, h.len, d->blocks, d->nblocks, d->opts.channels, &d->hello,
			       why, sizeof(why));
	if (ret) {
		ret = dst_refuse(d, ret, why);
		goto out;
	}
	/* Only now, with the table checked, does placement info (rkeys) leave this host. */
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

static int dst_accept_channel(struct rmig_dst *d)
{
	char why[RMIG_ERRMSG_MAX];
	struct rmig_conn *c = NULL;
	struct rmig_hdr h;
	void *body = NULL;
	uint32_t id;
	int ret;

	ret = d->xops->accept(d->xp, d->opts.timeout_ms, &c);
	if (ret)
		return rmig_err_set(&d->err, ret, "waiting for channel connections: %s",
				    d->xp->err.msg);
	ret = rmig_msg_recv(c, d->opts.timeout_ms, sizeof(struct rmig_wire_chan), &h, &body, why,
			    sizeof(why));
	if (ret) {
		ret = rmig_err_set(&d->err, ret, "reading a channel's hello: %s", why);
		goto err_close;
	}
	if (h.type != RMIG_MSG_CHAN || h.seq != 0 || h.len != sizeof(struct rmig_wire_chan)) {
		ret = rmig_err_set(&d->err, -EPROTO,
				   "a new channel sent %s (seq %llu, %u bytes) instead of its hello",
				   rmig_msg_name(h.type), (unsigned long long)h.seq, h.len);
		goto err_close;
	}
	if (memcmp(body, d->hello.uuid, RMIG_UUID_LEN)) {
		ret = rmig_err_set(&d->err, -EPROTO,
				   "a channel belongs to another session (session id differs)");
		goto err_close;
	}
	id = rmig_get_be32((uint8_t *)body + RMIG_OFF(rmig_wire_chan, channel));
	if (id >= d->nchan) {
		ret = rmig_err_set(&d->err, -EPROTO, "channel id %u, but the source announced %u channels",
				   id, d->nchan);
		goto err_close;
	}
	if (d->chans[id].conn) {
		ret = rmig_err_set(&d->err, -EPROTO, "channel id %u connected twice", id);
		goto err_close;
	}
	d->chans[id].conn = c;
	d->chans[id].seq = 1;
	free(body);
	return 0;

err_close:
	free(body);
	c->ops->close(c);
	return ret;
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
	for (unsigned int i = 0; i < d->nchan; i++) {
		ret = dst_accept_channel(d);
		if (ret) {
			rmig_err_msg(&d->err, msg, sizeof(msg));
			rmig_status_send(d->ctl, RMIG_MSG_ABORT, d->ctl_seq_out++, ret, msg, NULL, 0);
			d->abort_sent = true;
			return ret;
		}
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
	for (unsigned int i = 0; d->chans && i < d->nchan; i++) {
		struct rmig_totals *t = &d->chans[i].tot;
		struct rmig_conn *c = d->chans[i].conn;

		s.packets += rmig_load_relaxed(&t->packets);
		s.normal_pages += rmig_load_relaxed(&t->normal_pages);
		s.zero_pages += rmig_load_relaxed(&t->zero_pages);
		s.data_bytes += rmig_load_relaxed(&t->data_bytes);
		s.dev_chunks += rmig_load_relaxed(&t->dev_chunks);
		s.dev_bytes += rmig_load_relaxed(&t->dev_bytes);
		s.zero_pages_written += rmig_load_relaxed(&t->zero_written);
		if (c)
			s.wire_bytes += rmig_load_relaxed(&c->wire_bytes);
	}
	pthread_mutex_lock(&d->lock);
	s.channels = d->nchan;
	s.sync_rounds = d->reached;
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
	pthread_cond_destroy(&d->cond);
	pthread_mutex_destroy(&d->lock);
	pthread_mutex_destroy(&d->dev_lock);
	pthread_mutex_destroy(&d->ctl_send_lock);
	rmig_err_destroy(&d->err);
	free(d);
}
