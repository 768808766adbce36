// SPDX-License-Identifier: MIT
/*
 * The rdma transport against a real device (rxe in a guest): both ends in
 * one process, driven through rmig_rdma_ops directly, without the core.
 *
 *   test_rdma_rxe ADDR [MiB for the throughput run]
 *
 * Checks: the MR table handshake; placed data is in destination RAM when
 * the header behind it arrives (several rounds, segments cut at MR slices
 * of different sizes on each side and at the port's max message); stream
 * messages of awkward sizes both ways; credit flow under a slow reader and
 * ping-pong; flush; shutdown() waking a blocked recv; a peer's close
 * giving -ECONNRESET after its last bytes; a wrong rkey, and one of
 * another migration, or (memory windows) of another channel of the same
 * migration, giving IBV_WC_REM_ACCESS_ERR; idle keepalive probes; a dead peer QP giving
 * IBV_WC_RETRY_EXC_ERR. Then WRITE throughput with 512 KiB batches.
 *
 * Exit: 0 pass, 1 fail, 77 no RDMA device.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "rmig-config.h"
#include "core/xport.h"
#include "transport/rdma/rdma.h"
#include "transport/rdma/regwait.h"

#include "helpers.h"

#define NBLK 2
#define NCH  2
#define PAGE 4096u

static const struct rmig_xport_ops *ops = &rmig_rdma_ops;
static uint64_t blk_len[NBLK] = {24ull << 20, (8ull << 20) + 3 * PAGE};
static uint8_t *src_mem[NBLK], *dst_mem[NBLK];
static struct rmig_block sblk[NBLK], dblk[NBLK];
static int failures;

#define CHECK(cond, ...)                                                                           \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                       \
			fprintf(stderr, __VA_ARGS__);                                              \
			fprintf(stderr, "\n");                                                     \
			failures++;                                                                \
		}                                                                                  \
	} while (0)

#define MUST(expr)                                                                                 \
	do {                                                                                       \
		int r_ = (expr);                                                                   \
		if (r_) {                                                                          \
			fprintf(stderr, "FATAL %s:%d: %s = %d (%s)\n", __FILE__, __LINE__, #expr,  \
				r_, strerror(-r_));                                                \
			exit(1);                                                                   \
		}                                                                                  \
	} while (0)

static double now_s(void)
{
	return (double)rmig_now_ns() / 1e9;
}

static uint64_t rng_state = 88172645463325252ull;

/* ------------------------------------------------------- test stream */

enum { T_DATA = 1, T_STREAM, T_ECHO, T_SYNC, T_ACK, T_INFO, T_END };

struct thdr {
	uint32_t type;
	uint32_t nsegs;
	uint64_t len; /* body bytes */
	uint64_t seed;
};

struct tseg {
	uint32_t block;
	uint32_t pad;
	uint64_t off, len;
};

static int send_msg(struct rmig_conn *c, uint32_t type, uint64_t seed, const void *body, size_t len,
		    const struct rmig_seg *segs, unsigned int nsegs)
{
	size_t hl = sizeof(struct thdr) + len;
	uint8_t *buf = malloc(hl);
	struct thdr h = {type, nsegs, len, seed};
	int ret;

	memcpy(buf, &h, sizeof(h));
	if (len)
		memcpy(buf + sizeof(h), body, len);
	ret = c->ops->send(c, buf, hl, segs, nsegs);
	free(buf);
	if (ret)
		fprintf(stderr, "send: %d %s\n", ret, c->err.msg);
	return ret;
}

static int recv_msg(struct rmig_conn *c, struct thdr *h, uint8_t **body, int tmo)
{
	int ret = c->ops->recv(c, h, sizeof(*h), tmo);

	*body = NULL;
	if (ret)
		return ret;
	*body = malloc(h->len + 1);
	if (h->len)
		ret = c->ops->recv(c, *body, h->len, tmo);
	return ret;
}

/* -------------------------------------------------- destination side */

struct dst_chan {
	struct rmig_conn *c;
	pthread_t tid;
	uint64_t msgs, bytes;
	int result;
};

static void *dst_loop(void *arg)
{
	struct dst_chan *d = arg;
	struct thdr h;
	uint8_t *body;
	int ret;

	for (;;) {
		ret = recv_msg(d->c, &h, &body, -1);
		if (ret) {
			d->result = ret;
			free(body);
			return NULL;
		}
		switch (h.type) {
		case T_DATA: {
			/* the header arrived: every WRITE before it must have landed */
			const struct tseg *s = (const struct tseg *)body;

			for (uint32_t i = 0; i < h.nsegs; i++) {
				if (memcmp(dst_mem[s[i].block] + s[i].off,
					   src_mem[s[i].block] + s[i].off, s[i].len)) {
					fprintf(stderr,
						"FAIL: placed data differs: block %u off %" PRIu64
						" len %" PRIu64 "\n",
						s[i].block, s[i].off, s[i].len);
					failures++;
				}
				d->bytes += s[i].len;
			}
			break;
		}
		case T_STREAM: {
			uint8_t *want = malloc(h.len + 8);

			h_fill_random(want, h.len, h.seed);
			CHECK(!memcmp(want, body, h.len),
			      "stream body of %" PRIu64 " bytes differs", h.len);
			free(want);
			break;
		}
		case T_ECHO:
			ret = send_msg(d->c, T_ECHO, h.seed, body, h.len, NULL, 0);
			break;
		case T_SYNC:
			ret = send_msg(d->c, T_ACK, h.seed, NULL, 0, NULL, 0);
			break;
		case T_END:
			free(body);
			d->result = 0;
			return NULL;
		}
		/* counted once handled: test_windows waits for its message's check */
		__atomic_add_fetch(&d->msgs, 1, __ATOMIC_RELEASE);
		free(body);
		if (ret) {
			d->result = ret;
			return NULL;
		}
	}
}

/* ------------------------------------------------------------ setup */

struct pair {
	struct rmig_xport *sx, *dx;
	struct rmig_conn *sctl, *dctl;
	struct rmig_conn *sc[NCH];
	struct dst_chan dc[NCH];
	unsigned int nch;
};

struct acc_arg {
	struct rmig_xport *dx;
	struct rmig_conn **out;
	unsigned int n;
	int ret;
};

static void *acceptor(void *arg)
{
	struct acc_arg *a = arg;

	for (unsigned int i = 0; i < a->n; i++) {
		a->ret = a->dx->ops->accept(a->dx, 20000, &a->out[i]);
		if (a->ret) {
			fprintf(stderr, "accept: %s\n", a->dx->err.msg);
			return NULL;
		}
	}
	return NULL;
}

static void make_opts(struct rmig_opts *o, uint64_t slice)
{
	memset(o, 0, sizeof(*o));
	o->size = sizeof(*o);
	o->channels = NCH;
	o->timeout_ms = 20000;
	o->gid_index = -1;
	o->signal_every = 64;
	o->sq_depth = 512;
	o->mr_slice = slice;
}

/* Options of pair_open_opt(): which address to listen on, and device assertions. */
static const char *listen_host;
static const char *opt_ib_dev;
static int opt_gid = -1, opt_port;

/* Listen, connect, trade the MR table over the control stream, open @nch channels. */
static void pair_open(struct pair *p, const char *addr, unsigned int nch, bool corrupt_rkey)
{
	struct rmig_opts so, dopts;
	struct rmig_xport_params sp = {&so, sblk, NBLK, nch}, dp = {&dopts, dblk, NBLK, 0};
	struct rmig_msgbuf err;
	struct rmig_conn *acc[1 + NCH];
	struct acc_arg a;
	pthread_t t;
	char where[300];
	uint8_t info[65536];
	size_t ilen = sizeof(info);
	struct thdr h;
	uint8_t *body;

	memset(p, 0, sizeof(*p));
	p->nch = nch;
	/* different slicing on each side: WRITEs must be cut at both */
	make_opts(&so, (5ull << 20) + PAGE);
	make_opts(&dopts, 3ull << 20);
	so.ib_dev = dopts.ib_dev = opt_ib_dev;
	so.gid_index = dopts.gid_index = opt_gid;
	so.ib_port = dopts.ib_port = opt_port;
	snprintf(where, sizeof(where), "%s:0", listen_host ? listen_host : addr);
	if (ops->listen(&dp, where, &p->dx, &err)) {
		fprintf(stderr, "listen: %s\n", err.msg);
		exit(strstr(err.msg, "no RDMA device") ? 77 : 1);
	}
	snprintf(where, sizeof(where), "%s:%d", addr, ops->port(p->dx));
	a = (struct acc_arg){p->dx, acc, 1 + nch, 0};
	pthread_create(&t, NULL, acceptor, &a);
	if (ops->connect(&sp, where, &p->sx, &p->sctl, &err)) {
		fprintf(stderr, "connect: %s\n", err.msg);
		exit(1);
	}
	/* the acceptor's first conn is the control conn; connect() returned once it was up */
	MUST(ops->local_info(p->dx, info, &ilen));
	if (corrupt_rkey)
		info[RD_MRT_HDR + RD_MRT_BLOCK + 16] ^= 0x5a;
	for (unsigned int i = 0; i < nch; i++)
		MUST(ops->connect_channel(p->sx, i, &p->sc[i]));
	pthread_join(t, NULL);
	MUST(a.ret);
	p->dctl = acc[0];
	MUST(send_msg(p->dctl, T_INFO, 0, info, ilen, NULL, 0));
	MUST(recv_msg(p->sctl, &h, &body, 10000));
	CHECK(h.type == T_INFO && h.len == ilen, "info message");
	MUST(ops->set_peer_info(p->sx, body, h.len));
	free(body);
	for (unsigned int i = 0; i < nch; i++) {
		struct rd_conn *sc = rd_conn_of(p->sc[i]);

		/* as the core does once a channel proved itself: its own windows (mw.c) */
		MUST(acc[1 + i]->ops->chan_open(acc[1 + i], 10000));
		MUST(p->sc[i]->ops->chan_open(p->sc[i], 10000));
		CHECK(sc->have_chan_remote == rd_xport_of(p->dx)->use_mw,
		      "channel %u: window table %d, destination uses windows %d", i,
		      sc->have_chan_remote, rd_xport_of(p->dx)->use_mw);
		if (corrupt_rkey && sc->have_chan_remote)
			sc->chan_remote.slices[0].rkey ^= 0x5a;
	}
	for (unsigned int i = 0; i < nch; i++) {
		p->dc[i].c = acc[1 + i];
		pthread_create(&p->dc[i].tid, NULL, dst_loop, &p->dc[i]);
	}
}

static void pair_close(struct pair *p, bool end)
{
	for (unsigned int i = 0; i < p->nch; i++) {
		if (end)
			MUST(send_msg(p->sc[i], T_END, 0, NULL, 0, NULL, 0));
		pthread_join(p->dc[i].tid, NULL);
		if (end)
			CHECK(p->dc[i].result == 0, "channel %u ended with %d (%s)", i,
			      p->dc[i].result, p->dc[i].c->err.msg);
	}
	for (unsigned int i = 0; i < p->nch; i++) {
		p->sc[i]->ops->close(p->sc[i]);
		p->dc[i].c->ops->close(p->dc[i].c);
	}
	p->sctl->ops->close(p->sctl);
	p->dctl->ops->close(p->dctl);
	ops->destroy(p->sx);
	ops->destroy(p->dx);
}

/* ------------------------------------------------------------ tests */

/* Random page runs, some long enough to cross slices and the 8 MiB max message. */
static unsigned int pick_segs(struct rmig_seg *segs, struct tseg *ts, unsigned int max,
			      uint32_t blk)
{
	unsigned int n = 1 + (unsigned int)(h_xorshift(&rng_state) % max);
	uint64_t pages = blk_len[blk] / PAGE;

	for (unsigned int i = 0; i < n; i++) {
		uint64_t np = h_xorshift(&rng_state) % 8 == 0 ? 1 + h_xorshift(&rng_state) % 2600
							       : 1 + h_xorshift(&rng_state) % 16;
		uint64_t first = h_xorshift(&rng_state) % pages;

		if (first + np > pages)
			np = pages - first;
		segs[i] =
		    (struct rmig_seg){src_mem[blk] + first * PAGE, first * PAGE, np * PAGE, blk, 0};
		ts[i] = (struct tseg){blk, 0, first * PAGE, np * PAGE};
	}
	return n;
}

static void test_placement(struct pair *p, unsigned int rounds)
{
	struct rmig_seg segs[64];
	struct tseg ts[64];
	struct thdr h;
	uint8_t *body;

	for (unsigned int r = 0; r < rounds; r++) {
		for (unsigned int b = 0; b < NBLK; b++)
			h_fill_random(src_mem[b], blk_len[b], 1000 + r * 7 + b);
		for (unsigned int m = 0; m < 24; m++) {
			unsigned int ch = m % p->nch, n = pick_segs(segs, ts, 40, m % NBLK);

			MUST(send_msg(p->sc[ch], T_DATA, 0, ts, n * sizeof(ts[0]), segs, n));
		}
		/* a whole block at once, too */
		segs[0] = (struct rmig_seg){src_mem[1], 0, blk_len[1], 1, 0};
		ts[0] = (struct tseg){1, 0, 0, blk_len[1]};
		MUST(send_msg(p->sc[0], T_DATA, 0, ts, sizeof(ts[0]), segs, 1));
		/* the round ends with a fence on every channel, as the core's sync */
		for (unsigned int ch = 0; ch < p->nch; ch++) {
			MUST(p->sc[ch]->ops->flush(p->sc[ch]));
			MUST(send_msg(p->sc[ch], T_SYNC, r, NULL, 0, NULL, 0));
		}
		for (unsigned int ch = 0; ch < p->nch; ch++) {
			MUST(recv_msg(p->sc[ch], &h, &body, 60000));
			CHECK(h.type == T_ACK && h.seed == r, "sync ack");
			free(body);
		}
	}
	printf("placement: %u rounds ok, %" PRIu64 " WRITE WRs\n", rounds,
	       p->sc[0]->rdma_writes + p->sc[1]->rdma_writes);
}

/* One message of placed data on channel 0, checked by the destination. */
static void test_placement_one(struct pair *p)
{
	struct rmig_seg segs[8];
	struct tseg ts[8];
	struct thdr h;
	uint8_t *body;
	unsigned int n;

	h_fill_random(src_mem[0], blk_len[0], 4242);
	n = pick_segs(segs, ts, 8, 0);
	MUST(send_msg(p->sc[0], T_DATA, 0, ts, n * sizeof(ts[0]), segs, n));
	MUST(send_msg(p->sc[0], T_SYNC, 1, NULL, 0, NULL, 0));
	MUST(recv_msg(p->sc[0], &h, &body, 60000));
	CHECK(h.type == T_ACK, "ack");
	free(body);
}

static void test_stream(struct pair *p)
{
	static const size_t sizes[] = {
	    1, 7, 100, 65535, 65536, 65537, 131072 + 24, (1u << 20) + 64, 3u << 20};
	struct thdr h;
	uint8_t *body, *buf = malloc(4u << 20);

	for (size_t i = 0; i < RMIG_ARRAY_SIZE(sizes); i++) {
		h_fill_random(buf, sizes[i], 77 + i);
		MUST(send_msg(p->sc[0], T_STREAM, 77 + i, buf, sizes[i], NULL, 0));
		MUST(send_msg(p->sc[1], T_ECHO, 99 + i, buf, sizes[i], NULL, 0));
		MUST(recv_msg(p->sc[1], &h, &body, 60000));
		CHECK(h.type == T_ECHO && h.len == sizes[i] && !memcmp(body, buf, sizes[i]),
		      "echo of %zu bytes", sizes[i]);
		free(body);
	}
	free(buf);
	printf("stream: %zu sizes ok both ways\n", RMIG_ARRAY_SIZE(sizes));
}

/* Many small messages in flight, then many echoes: credits must neither run out nor overflow. */
static void test_credits(struct pair *p)
{
	uint8_t small[1024];
	struct thdr h;
	uint8_t *body;
	unsigned int n = 3000, queued = 28, pp = 1000;
	double t0 = now_s(), t1;

	for (unsigned int i = 0; i < n; i++) {
		h_fill_random(small, 40, i);
		MUST(send_msg(p->sc[0], T_STREAM, i, small, 40, NULL, 0));
	}
	/*
	 * Echoes requested before any reply is read: the replies pile up in
	 * this side's buffers and the requests in the peer's. Fewer than the
	 * window, as with TCP: both sides sending without reading can fill any
	 * bounded stream.
	 */
	for (unsigned int i = 0; i < queued; i++)
		MUST(send_msg(p->sc[1], T_ECHO, i, small, sizeof(small), NULL, 0));
	for (unsigned int i = 0; i < queued; i++) {
		MUST(recv_msg(p->sc[1], &h, &body, 60000));
		CHECK(h.type == T_ECHO && h.seed == i, "echo %u", i);
		free(body);
	}
	t1 = now_s();
	for (unsigned int i = 0; i < pp; i++) {
		MUST(send_msg(p->sc[1], T_ECHO, i, small, 8, NULL, 0));
		MUST(recv_msg(p->sc[1], &h, &body, 60000));
		free(body);
	}
	printf("credits: %u one-way + %u queued echoes + %u ping-pongs in %.2f s (%.0f us per "
	       "round trip)\n",
	       n, queued, pp, now_s() - t0, (now_s() - t1) * 1e6 / pp);
}

static void *shut_later(void *arg)
{
	struct rmig_conn *c = arg;

	usleep(300000);
	c->ops->shutdown(c);
	return NULL;
}

/* shutdown() from another thread wakes a recv that would wait forever. */
static void test_shutdown(struct pair *p)
{
	pthread_t t;
	uint8_t b[8];
	double t0;
	int ret;

	pthread_create(&t, NULL, shut_later, p->dctl);
	t0 = now_s();
	ret = p->dctl->ops->recv(p->dctl, b, sizeof(b), -1);
	pthread_join(t, NULL);
	CHECK(ret == -ECANCELED, "recv after shutdown returned %d (%s)", ret, p->dctl->recv_err.msg);
	CHECK(now_s() - t0 < 2.0, "shutdown took %.2f s", now_s() - t0);
	printf("shutdown: blocked recv woke with %d after %.2f s: %s\n", ret, now_s() - t0,
	       p->dctl->recv_err.msg);
}

/* Idle conns probe each other (zero-length WRITEs) without failing. */
static void test_keepalive(struct pair *p)
{
	uint8_t b[8];
	int ret = p->sctl->ops->recv(p->sctl, b, sizeof(b), 5000);
	struct rd_conn *c = rd_conn_of(p->sctl);

	CHECK(ret == -ETIMEDOUT, "idle recv returned %d (%s)", ret, p->sctl->recv_err.msg);
	CHECK(!c->failed && c->sq_posted >= 2, "probes: failed %d, %" PRIu64 " WRs", c->failed,
	      c->sq_posted);
	printf("keepalive: 5 s idle recv -> %d, %" PRIu64 " probes done, conn healthy\n", ret,
	       c->sq_done);
}

/* A closed peer: recv gets the bytes sent before the close, then -ECONNRESET. */
static void test_peer_close(const char *addr)
{
	struct pair p;
	struct thdr h;
	uint8_t *body;
	int ret;

	pair_open(&p, addr, 1, false);
	/* stop the dst reader, then talk to the raw conn */
	MUST(send_msg(p.sc[0], T_END, 0, NULL, 0, NULL, 0));
	pthread_join(p.dc[0].tid, NULL);
	MUST(send_msg(p.sc[0], T_STREAM, 5, "abcd", 4, NULL, 0));
	p.sc[0]->ops->close(p.sc[0]);
	ret = recv_msg(p.dc[0].c, &h, &body, 10000);
	CHECK(!ret && h.type == T_STREAM && h.len == 4 && !memcmp(body, "abcd", 4),
	      "last message before close: %d", ret);
	free(body);
	ret = recv_msg(p.dc[0].c, &h, &body, 10000);
	free(body);
	CHECK(ret == -ECONNRESET, "recv after peer close: %d (%s)", ret, p.dc[0].c->recv_err.msg);
	printf("peer close: %d: %s\n", ret, p.dc[0].c->recv_err.msg);
	p.dc[0].c->ops->close(p.dc[0].c);
	p.sctl->ops->close(p.sctl);
	p.dctl->ops->close(p.dctl);
	ops->destroy(p.sx);
	ops->destroy(p.dx);
}

/* A wrong rkey: the WRITE fails with IBV_WC_REM_ACCESS_ERR, named in the message. */
static void test_bad_rkey(const char *addr)
{
	struct pair p;
	struct rmig_seg s = {src_mem[0], 0, 4 * PAGE, 0, 0};
	struct tseg ts = {0, 0, 0, 4 * PAGE};
	int ret;

	pair_open(&p, addr, 1, true);
	ret = send_msg(p.sc[0], T_DATA, 0, &ts, sizeof(ts), &s, 1);
	if (!ret)
		ret = p.sc[0]->ops->flush(p.sc[0]);
	CHECK(ret == -EACCES && strstr(p.sc[0]->err.msg, "IBV_WC_REM_ACCESS_ERR"),
	      "bad rkey gave %d (%s)", ret, p.sc[0]->err.msg);
	printf("bad rkey: %d: %s\n", ret, p.sc[0]->err.msg);
	p.dc[0].c->ops->shutdown(p.dc[0].c);
	pair_close(&p, false);
}

/* Make @to write with the rkeys @from was given, as a peer that learnt them would. */
static void take_rkeys(struct rmig_conn *to, struct rmig_conn *from)
{
	struct rd_remote *t = &rd_conn_of(to)->chan_remote, *f = &rd_conn_of(from)->chan_remote;

	if (!rd_conn_of(to)->have_chan_remote || !rd_conn_of(from)->have_chan_remote)
		return;
	CHECK(t->nslices == f->nslices, "window tables of %u and %u slices", t->nslices,
	      f->nslices);
	for (unsigned int k = 0; k < t->nslices && k < f->nslices; k++) {
		CHECK(t->slices[k].addr == f->slices[k].addr, "slice %u at another address", k);
		t->slices[k].rkey = f->slices[k].rkey;
	}
}

static size_t changed_bytes(const uint8_t *p, size_t n, uint8_t fill)
{
	size_t changed = 0;

	for (size_t i = 0; i < n; i++)
		changed += p[i] != fill;
	return changed;
}

/*
 * Memory windows (transport/rdma/mw.h): an rkey is scoped to its channel's
 * QP. Channel 1 of the same migration writing with the rkeys bound to
 * channel 0 gets IBV_WC_REM_ACCESS_ERR and nothing lands, while channel 0
 * itself writes fine; the destination's MR rkeys open nothing either; and
 * once the migration ends (revoke) channel 0's own rkeys fail too.
 */
static void test_windows(const char *addr)
{
	struct rmig_seg s = {src_mem[0], 0, 4 * PAGE, 0, 0};
	struct tseg ts = {0, 0, 0, 4 * PAGE};
	struct rd_conn *c0, *c1;
	uint64_t seen;
	struct pair p;
	int ret;

	pair_open(&p, addr, 2, false);
	c0 = rd_conn_of(p.sc[0]);
	c1 = rd_conn_of(p.sc[1]);
	printf("windows: destination %s\n",
	       rd_xport_of(p.dx)->use_mw ? "binds type 2 memory windows per channel QP"
					 : "has no type 2 memory windows (MR rkeys)");
	CHECK(rd_xport_of(p.dx)->use_mw, "rxe has type 2 windows, but the destination uses none");
	if (!rd_xport_of(p.dx)->use_mw) {
		pair_close(&p, true);
		return;
	}
	CHECK(c0->chan_remote.slices[0].rkey != c1->chan_remote.slices[0].rkey,
	      "both channels were given rkey 0x%x", c0->chan_remote.slices[0].rkey);
	CHECK(atomic_load_explicit(&p.sc[0]->tls, memory_order_relaxed) & RMIG_CONN_MW,
	      "channel 0 not flagged MW");
	CHECK(atomic_load_explicit(&p.dc[1].c->tls, memory_order_relaxed) & RMIG_CONN_MW,
	      "dst channel 1 not flagged MW");

	/* channel 1's QP, channel 0's rkeys: refused, nothing lands */
	memset(dst_mem[0], 0xee, 4 * PAGE);
	take_rkeys(p.sc[1], p.sc[0]);
	ret = send_msg(p.sc[1], T_DATA, 0, &ts, sizeof(ts), &s, 1);
	if (!ret)
		ret = p.sc[1]->ops->flush(p.sc[1]);
	CHECK(ret == -EACCES && strstr(p.sc[1]->err.msg, "IBV_WC_REM_ACCESS_ERR"),
	      "channel 1 with channel 0's rkey gave %d (%s)", ret, p.sc[1]->err.msg);
	CHECK(changed_bytes(dst_mem[0], 4 * PAGE, 0xee) == 0,
	      "%zu bytes landed through channel 1 with channel 0's rkey",
	      changed_bytes(dst_mem[0], 4 * PAGE, 0xee));
	printf("windows: channel 1 with channel 0's rkey: %d: %s; %zu bytes changed\n", ret,
	       p.sc[1]->err.msg, changed_bytes(dst_mem[0], 4 * PAGE, 0xee));
	p.dc[1].c->ops->shutdown(p.dc[1].c);

	/* channel 0 with its own: lands (dst_loop checks the bytes at the header) */
	seen = __atomic_load_n(&p.dc[0].msgs, __ATOMIC_ACQUIRE);
	ret = send_msg(p.sc[0], T_DATA, 0, &ts, sizeof(ts), &s, 1);
	if (!ret)
		ret = p.sc[0]->ops->flush(p.sc[0]);
	CHECK(ret == 0, "channel 0 with its own rkey gave %d (%s)", ret, p.sc[0]->err.msg);
	CHECK(memcmp(dst_mem[0], src_mem[0], 4 * PAGE) == 0,
	      "channel 0's WRITE with its own rkey did not land");
	printf("windows: channel 0 with its own rkey: %d, %s\n", ret,
	       memcmp(dst_mem[0], src_mem[0], 4 * PAGE) ? "differs" : "landed");

	/*
	 * dst_loop compares the bytes when the header arrives, which may be
	 * after the flush returned here: let it, before they are overwritten
	 */
	for (int i = 0; i < 5000 && __atomic_load_n(&p.dc[0].msgs, __ATOMIC_ACQUIRE) == seen; i++)
		usleep(1000);

	/* the migration ends: channel 0's own rkeys stop working */
	memset(dst_mem[0], 0xee, 4 * PAGE);
	ops->revoke(p.dx);
	ret = send_msg(p.sc[0], T_DATA, 0, &ts, sizeof(ts), &s, 1);
	if (!ret)
		ret = p.sc[0]->ops->flush(p.sc[0]);
	CHECK(ret == -EACCES && strstr(p.sc[0]->err.msg, "IBV_WC_REM_ACCESS_ERR"),
	      "channel 0 after the end gave %d (%s)", ret, p.sc[0]->err.msg);
	CHECK(changed_bytes(dst_mem[0], 4 * PAGE, 0xee) == 0, "%zu bytes landed after the end",
	      changed_bytes(dst_mem[0], 4 * PAGE, 0xee));
	printf("windows: channel 0 after the end: %d: %s; %zu bytes changed\n", ret,
	       p.sc[0]->err.msg, changed_bytes(dst_mem[0], 4 * PAGE, 0xee));
	p.dc[0].c->ops->shutdown(p.dc[0].c);
	pair_close(&p, false);
}

/*
 * The MR's own rkey, which the destination never sends with windows but a
 * peer might guess (rxe rkeys are guessable): the MR has no remote access.
 */
static void test_mr_rkey(const char *addr)
{
	struct rmig_seg s = {src_mem[0], 0, 4 * PAGE, 0, 0};
	struct tseg ts = {0, 0, 0, 4 * PAGE};
	struct rd_remote *r;
	struct pair p;
	int ret;

	pair_open(&p, addr, 1, false);
	if (!rd_xport_of(p.dx)->use_mw) {
		pair_close(&p, true);
		return;
	}
	/*
	 * Slice 0, where it writes: chan_open() waits for it, while later
	 * slices may still be being registered (and bound) in the background
	 */
	r = &rd_conn_of(p.sc[0])->chan_remote;
	r->slices[0].rkey = rd_xport_of(p.dx)->local.slices[0].mr->rkey;
	memset(dst_mem[0], 0xee, 4 * PAGE);
	ret = send_msg(p.sc[0], T_DATA, 0, &ts, sizeof(ts), &s, 1);
	if (!ret)
		ret = p.sc[0]->ops->flush(p.sc[0]);
	CHECK(ret == -EACCES && strstr(p.sc[0]->err.msg, "IBV_WC_REM_ACCESS_ERR"),
	      "the MR's own rkey gave %d (%s)", ret, p.sc[0]->err.msg);
	CHECK(changed_bytes(dst_mem[0], 4 * PAGE, 0xee) == 0,
	      "%zu bytes landed with the MR's rkey", changed_bytes(dst_mem[0], 4 * PAGE, 0xee));
	printf("windows: the MR's own rkey: %d: %s\n", ret, p.sc[0]->err.msg);
	p.dc[0].c->ops->shutdown(p.dc[0].c);
	pair_close(&p, false);
}

/*
 * With streamed registration each channel's status table is read through a
 * window bound to that channel's QP (mw.c): channel 1 reading channel 0's
 * with channel 0's rkey gets IBV_WC_REM_ACCESS_ERR, while channel 0 reads
 * its own. Registration is slowed down (50 ms per MR) so that slices are
 * still pending when the channels open.
 */
static const struct rmig_verbs_ops *real_verbs;

/* Pinning at a slow host's pace, so that slices are still pending at chan_open(). */
static int slow_reg_mr(struct ibv_pd *pd, void *addr, size_t len, int access,
		       struct ibv_mr **mr)
{
	usleep(50000);
	return real_verbs->reg_mr(pd, addr, len, access, mr);
}

static void test_status_window(const char *addr)
{
	static struct rmig_verbs_ops slow;
	struct rd_remote *r0, *r1;
	struct rd_conn *c0, *c1;
	struct rmig_seg s;
	struct pair p;
	unsigned int k;
	int ret;

	real_verbs = rmig_rdma_verbs;
	slow = *real_verbs;
	slow.reg_mr = slow_reg_mr;
	rmig_rdma_verbs = &slow;
	pair_open(&p, addr, 2, false);
	rmig_rdma_verbs = real_verbs; /* each xport keeps the table it was created with */
	c0 = rd_conn_of(p.sc[0]);
	c1 = rd_conn_of(p.sc[1]);
	r0 = &c0->chan_remote;
	r1 = &c1->chan_remote;
	CHECK(!rd_xport_of(p.dx)->use_mw || r0->streamed,
	      "nothing pending at chan_open despite 50 ms per registration");
	if (!rd_xport_of(p.dx)->use_mw || !r0->streamed) {
		pair_close(&p, true);
		return;
	}
	/* the last slice of block 0, made pending on both sources again: they must read */
	k = r0->blocks[0].first + r0->blocks[0].n - 1;
	s = (struct rmig_seg){src_mem[0] + r0->slices[k].off, r0->slices[k].off, PAGE, 0, 0};
	atomic_store(&r0->slices[k].ready, false);
	atomic_store(&r0->all_ready, false);
	ret = rmig_rd_wait_registered(c0, &s, 1);
	CHECK(ret == 0, "channel 0 reading its own status table gave %d (%s)", ret,
	      p.sc[0]->err.msg);
	printf("status window: channel 0, its own: %d\n", ret);
	r1->streamed = true;
	r1->status_addr = r0->status_addr;
	r1->status_rkey = r0->status_rkey;
	atomic_store(&r1->slices[k].ready, false);
	atomic_store(&r1->all_ready, false);
	ret = rmig_rd_wait_registered(c1, &s, 1);
	CHECK(ret == -EACCES && strstr(p.sc[1]->err.msg, "IBV_WC_REM_ACCESS_ERR"),
	      "channel 1 reading channel 0's status table gave %d (%s)", ret, p.sc[1]->err.msg);
	printf("status window: channel 1 with channel 0's rkey: %d: %s\n", ret, p.sc[1]->err.msg);
	p.dc[1].c->ops->shutdown(p.dc[1].c);
	p.dc[0].c->ops->shutdown(p.dc[0].c);
	pair_close(&p, false);
}

/*
 * An rkey is scoped to its migration: each listen() has its own protection
 * domain (docs/security.md). Migration B's source is handed migration A's MR
 * table, as a peer that learnt A's rkeys would use them: its WRITE over B's
 * QP fails with IBV_WC_REM_ACCESS_ERR and nothing lands, while A's own
 * source still writes with them.
 */
static void test_rkey_other_migration(const char *addr)
{
	struct rmig_seg s = {src_mem[0], 0, 4 * PAGE, 0, 0};
	struct tseg ts = {0, 0, 0, 4 * PAGE};
	uint8_t info[65536];
	size_t ilen = sizeof(info), changed = 0;
	struct pair a, b;
	int ret;

	pair_open(&a, addr, 1, false);
	pair_open(&b, addr, 1, false);
	MUST(ops->local_info(a.dx, info, &ilen));
	MUST(ops->set_peer_info(b.sx, info, ilen));
	/* with windows the rkeys that open A's RAM are those of A's channel */
	take_rkeys(b.sc[0], a.sc[0]);
	memset(dst_mem[0], 0xee, 4 * PAGE);
	ret = send_msg(b.sc[0], T_DATA, 0, &ts, sizeof(ts), &s, 1);
	if (!ret)
		ret = b.sc[0]->ops->flush(b.sc[0]);
	CHECK(ret == -EACCES && strstr(b.sc[0]->err.msg, "IBV_WC_REM_ACCESS_ERR"),
	      "a WRITE with another migration's rkey gave %d (%s)", ret, b.sc[0]->err.msg);
	for (size_t i = 0; i < 4 * PAGE; i++)
		changed += ((uint8_t *)dst_mem[0])[i] != 0xee;
	CHECK(changed == 0, "%zu bytes landed with another migration's rkey", changed);
	printf("rkey of another migration: %d: %s; %zu bytes changed\n", ret, b.sc[0]->err.msg,
	       changed);
	b.dc[0].c->ops->shutdown(b.dc[0].c);
	pair_close(&b, false);
	/* the same table on its own migration's QP: lands */
	ret = send_msg(a.sc[0], T_DATA, 0, &ts, sizeof(ts), &s, 1);
	if (!ret)
		ret = a.sc[0]->ops->flush(a.sc[0]);
	CHECK(ret == 0, "a WRITE on the rkey's own migration gave %d (%s)", ret, a.sc[0]->err.msg);
	pair_close(&a, true);
	CHECK(memcmp(dst_mem[0], src_mem[0], 4 * PAGE) == 0,
	      "the WRITE on the rkey's own migration did not land");
}

/*
 * After revoke() (what the core calls when a migration ends) destination RAM
 * is out of reach: a WRITE with the rkey the source holds fails, and nothing
 * lands.
 */
static void test_revoke(const char *addr)
{
	struct pair p;
	struct rmig_seg s = {src_mem[0], 0, 4 * PAGE, 0, 0};
	struct tseg ts = {0, 0, 0, 4 * PAGE};
	size_t changed = 0;
	int ret;

	/* (WRITEs with this very table land in test_placement) */
	pair_open(&p, addr, 1, false);
	memset(dst_mem[0], 0xee, 4 * PAGE);
	ops->revoke(p.dx);
	ret = send_msg(p.sc[0], T_DATA, 0, &ts, sizeof(ts), &s, 1);
	if (!ret)
		ret = p.sc[0]->ops->flush(p.sc[0]);
	CHECK(ret == -EACCES && strstr(p.sc[0]->err.msg, "IBV_WC_REM_ACCESS_ERR"),
	      "WRITE after revoke gave %d (%s)", ret, p.sc[0]->err.msg);
	for (size_t i = 0; i < 4 * PAGE; i++)
		changed += ((uint8_t *)dst_mem[0])[i] != 0xee;
	CHECK(changed == 0, "%zu bytes landed after revoke", changed);
	printf("revoke: %d: %s; %zu bytes changed\n", ret, p.sc[0]->err.msg, changed);
	p.dc[0].c->ops->shutdown(p.dc[0].c);
	pair_close(&p, false);
}

struct flush_arg {
	struct rmig_conn *c;
	struct rmig_seg *s;
	struct tseg *ts;
	int ret;
	bool done;
};

static void *flush_thread(void *arg)
{
	struct flush_arg *f = arg;

	f->ret = send_msg(f->c, T_DATA, 0, f->ts, sizeof(*f->ts), f->s, 1);
	if (!f->ret)
		f->ret = f->c->ops->flush(f->c);
	__atomic_store_n(&f->done, true, __ATOMIC_RELEASE);
	return NULL;
}

/* The peer's QP dies silently: outstanding WRs end with IBV_WC_RETRY_EXC_ERR. */
static void test_dead_peer(const char *addr)
{
	struct pair p;
	struct ibv_qp_attr a = {.qp_state = IBV_QPS_ERR};
	struct rmig_seg s = {src_mem[0], 0, 16 * PAGE, 0, 0};
	struct tseg ts = {0, 0, 0, 16 * PAGE};
	double t0;
	int ret;

	pair_open(&p, addr, 1, false);
	MUST(send_msg(p.sc[0], T_END, 0, NULL, 0, NULL, 0));
	pthread_join(p.dc[0].tid, NULL);
	/* an error-state QP answers nothing, as a crashed host would */
	ibv_modify_qp(rd_conn_of(p.dc[0].c)->qp, &a, IBV_QP_STATE);
	t0 = now_s();
	{
		struct flush_arg f = {p.sc[0], &s, &ts, 0, false};
		pthread_t t;

		pthread_create(&t, NULL, flush_thread, &f);
		/* bounded: a transport that never notices fails the test, not hangs it */
		while (!__atomic_load_n(&f.done, __ATOMIC_ACQUIRE) && now_s() - t0 < 120)
			usleep(100000);
		if (!__atomic_load_n(&f.done, __ATOMIC_ACQUIRE)) {
			printf("FAIL: dead peer not noticed within 120 s\n");
			exit(1);
		}
		pthread_join(t, NULL);
		ret = f.ret;
	}
	CHECK(ret == -ECONNRESET && strstr(p.sc[0]->err.msg, "IBV_WC_RETRY_EXC_ERR"),
	      "dead peer gave %d (%s)", ret, p.sc[0]->err.msg);
	printf("dead peer: %d after %.1f s: %s\n", ret, now_s() - t0, p.sc[0]->err.msg);
	p.sc[0]->ops->close(p.sc[0]);
	p.dc[0].c->ops->close(p.dc[0].c);
	p.sctl->ops->close(p.sctl);
	p.dctl->ops->close(p.dctl);
	ops->destroy(p.sx);
	ops->destroy(p.dx);
}

/* ------------------------------------------------------- throughput */

struct bw_arg {
	struct rmig_conn *c;
	unsigned int ch, nch;
	uint64_t bytes;
	int ret;
};

/* Like the core: 128-page batches, each one RAM header behind its WRITEs. */
static void *bw_thread(void *arg)
{
	struct bw_arg *a = arg;
	uint64_t batch = 128 * PAGE, off = (uint64_t)a->ch * batch, sent = 0;
	struct rmig_seg s;
	struct tseg ts;

	while (sent < a->bytes) {
		if (off + batch > blk_len[0])
			off = (uint64_t)a->ch * batch;
		s = (struct rmig_seg){src_mem[0] + off, off, batch, 0, 0};
		ts = (struct tseg){0, 0, off, batch};
		a->ret = send_msg(a->c, T_STREAM, 0, NULL, 0, &s, 1);
		if (a->ret)
			return NULL;
		(void)ts;
		sent += batch;
		off += batch * a->nch;
	}
	a->ret = a->c->ops->flush(a->c);
	return NULL;
}

static double bw_run(struct pair *p, unsigned int nch, uint64_t total)
{
	struct bw_arg a[NCH];
	pthread_t t[NCH];
	double t0 = now_s(), dt;

	for (unsigned int i = 0; i < nch; i++) {
		a[i] = (struct bw_arg){p->sc[i], i, nch, total / nch, 0};
		pthread_create(&t[i], NULL, bw_thread, &a[i]);
	}
	for (unsigned int i = 0; i < nch; i++) {
		pthread_join(t[i], NULL);
		CHECK(!a[i].ret, "bw channel %u: %d", i, a[i].ret);
	}
	dt = now_s() - t0;
	return (double)total / dt;
}

/*
 * On-demand paging: what the device offers (ibv_query_device_ex). rmig does
 * not use ODP; this says whether it could (rxe on Debian 12's 6.1: no).
 */
static void report_odp(struct ibv_context *ctx)
{
	struct ibv_device_attr_ex a;

	memset(&a, 0, sizeof(a));
	if (ibv_query_device_ex(ctx, NULL, &a)) {
		printf("odp: ibv_query_device_ex failed: %s\n", strerror(errno));
		return;
	}
	printf("odp: %s: general caps 0x%" PRIx64 " (%s), rc caps 0x%x\n",
	       ibv_get_device_name(ctx->device), (uint64_t)a.odp_caps.general_caps,
	       a.odp_caps.general_caps & IBV_ODP_SUPPORT ? "on-demand paging supported"
							 : "no on-demand paging",
	       a.odp_caps.per_transport_caps.rc_odp_caps);
}

/*
 * Registration of one large block: whole, and sliced (registered in parallel
 * threads); in 4 KiB pages and, when the guest has 2 MiB hugepages reserved
 * (vm.nr_hugepages), in hugepages (MAP_HUGETLB).
 */
static void test_registration(uint64_t mib)
{
	struct ibv_context **ctxs;
	struct ibv_pd *pd;
	struct rmig_block b = {"big", NULL, mib << 20, PAGE, 12};
	struct rd_mrs t;
	struct rmig_msgbuf err;
	uint64_t ns;
	int n;

	ctxs = rdma_get_devices(&n);
	if (!ctxs || !n)
		return;
	report_odp(ctxs[0]);
	pd = ibv_alloc_pd(ctxs[0]);
	for (int huge = 0; huge < 2; huge++) {
		const char *kind = huge ? "2 MiB pages" : "4 KiB pages";

		b.host = mmap(NULL, b.length, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS | (huge ? MAP_HUGETLB : 0), -1, 0);
		if (b.host == MAP_FAILED) {
			printf("registration: %s: no mapping (%s; reserve vm.nr_hugepages)\n",
			       kind, strerror(errno));
			continue;
		}
		memset(b.host, 1, b.length); /* populated, as guest RAM would be */
		for (int pass = 0; pass < 2; pass++) {
			uint64_t slice = pass ? b.length / 8 : 0;

			ns = 0;
			MUST(rmig_rd_mrs_register(&t, &rmig_verbs_real, pd, &b, 1, slice,
						  IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE,
						  &ns, &err));
			printf("registration: %" PRIu64 " MiB of %s as %u MR(s): %.1f ms "
			       "(%.0f ms/GiB)\n",
			       mib, kind, t.nslices, ns / 1e6,
			       ns / 1e6 / ((double)b.length / (1 << 30)));
			rmig_rd_mrs_release(&t, &rmig_verbs_real);
		}
		munmap(b.host, b.length);
	}
	ibv_dealloc_pd(pd);
	rdma_free_devices(ctxs);
}

static void *xshut_later(void *arg)
{
	struct rmig_xport *x = arg;

	usleep(300000);
	x->ops->shutdown(x);
	return NULL;
}

/* Device options, wildcard listening, refused and impossible connections, accept timeouts. */
static void test_options(const char *addr)
{
	struct rmig_opts o;
	struct rmig_xport_params dp = {&o, dblk, NBLK, 0}, sp = {&o, sblk, NBLK, 1};
	struct rmig_msgbuf err;
	struct rmig_xport *x, *x2;
	struct rmig_conn *c;
	struct pair p;
	char where[300];
	pthread_t t;
	double t0;
	int ret;

	snprintf(where, sizeof(where), "%s:0", addr);
	make_opts(&o, 0);
	o.ib_dev = "nosuchdev0";
	ret = ops->listen(&dp, where, &x, &err);
	CHECK(ret == -EINVAL && strstr(err.msg, "nosuchdev0") && strstr(err.msg, "rxe0"),
	      "ib_dev mismatch: %d %s", ret, err.msg);
	printf("ib_dev mismatch: %d: %s\n", ret, err.msg);
	make_opts(&o, 0);
	o.gid_index = 0; /* rxe: the link-local GID, not the IPv4 one */
	ret = ops->listen(&dp, where, &x, &err);
	CHECK(ret == -EINVAL && strstr(err.msg, "gid_index 0"), "gid mismatch: %d %s", ret,
	      err.msg);
	printf("gid_index mismatch: %d: %s\n", ret, err.msg);
	make_opts(&o, 0);
	o.ib_port = 2;
	ret = ops->listen(&dp, where, &x, &err);
	CHECK(ret == -EINVAL && strstr(err.msg, "ib_port"), "ib_port mismatch: %d %s", ret,
	      err.msg);

	/* nothing listens there */
	make_opts(&o, 0);
	MUST(ops->listen(&dp, where, &x, &err));
	snprintf(where, sizeof(where), "%s:%d", addr, ops->port(x) + 1);
	ret = ops->connect(&sp, where, &x2, &c, &err);
	CHECK(ret == -ECONNREFUSED, "connect to a closed port: %d %s", ret, err.msg);
	printf("closed port: %d: %s\n", ret, err.msg);
	/* an address no RDMA device owns */
	ret = ops->connect(&sp, "127.0.0.1:7000", &x2, &c, &err);
	CHECK(ret == -ENODEV && strstr(err.msg, "127.0.0.1"), "connect to loopback: %d %s", ret,
	      err.msg);
	printf("no device: %d: %s\n", ret, err.msg);
	/* accept: a timeout, then a shutdown from another thread */
	t0 = now_s();
	ret = ops->accept(x, 300, &c);
	CHECK(ret == -ETIMEDOUT, "accept timeout: %d %s", ret, x->err.msg);
	CHECK(now_s() - t0 < 2, "accept timeout took %.2f s", now_s() - t0);
	pthread_create(&t, NULL, xshut_later, x);
	t0 = now_s();
	ret = ops->accept(x, -1, &c);
	pthread_join(t, NULL);
	CHECK(ret == -ECANCELED && now_s() - t0 < 2, "accept after shutdown: %d in %.2f s", ret,
	      now_s() - t0);
	printf("accept: timeout and shutdown ok (%s)\n", x->err.msg);
	ops->destroy(x);

	/* the right assertions pass; a wildcard listener finds its device */
	opt_ib_dev = "rxe0";
	opt_gid = 1;
	opt_port = 1;
	listen_host = "0.0.0.0";
	pair_open(&p, addr, 1, false);
	test_placement_one(&p);
	pair_close(&p, true);
	opt_ib_dev = NULL;
	opt_gid = -1;
	opt_port = 0;
	listen_host = NULL;
	printf("options: wildcard listen with ib_dev/ib_port/gid_index asserted ok\n");
}

int main(int argc, char **argv)
{
	const char *addr = argc > 1 ? argv[1] : getenv("RXE_ADDR");
	uint64_t bw_mib = argc > 2 ? strtoull(argv[2], NULL, 0) : 128;
	const char *only = getenv("RD_TEST_ONLY");
	struct pair p;
	double bw1, bw2;

	setvbuf(stdout, NULL, _IONBF, 0);
	if (!addr) {
		fprintf(stderr, "usage: %s ADDR [MiB]\n", argv[0]);
		return 2;
	}
	for (unsigned int b = 0; b < NBLK; b++) {
		src_mem[b] = aligned_alloc(PAGE, blk_len[b]);
		dst_mem[b] = aligned_alloc(PAGE, blk_len[b]);
		memset(dst_mem[b], 0, blk_len[b]);
		snprintf(sblk[b].name, sizeof(sblk[b].name), "blk%u", b);
		sblk[b].host = src_mem[b];
		sblk[b].length = blk_len[b];
		sblk[b].page_size = PAGE;
		sblk[b].page_shift = 12;
		dblk[b] = sblk[b];
		dblk[b].host = dst_mem[b];
	}

	pair_open(&p, addr, NCH, false);
	printf("setup ok: dst reg %.1f ms, src reg %.1f ms, max_msg %" PRIu64 "\n",
	       ops->reg_ns(p.dx) / 1e6, ops->reg_ns(p.sx) / 1e6, rd_xport_of(p.sx)->max_msg);
	if (!only || strstr(only, "place"))
		test_placement(&p, 3);
	if (!only || strstr(only, "stream"))
		test_stream(&p);
	if (!only || strstr(only, "credit"))
		test_credits(&p);
	if (!only || strstr(only, "bw")) {
		bw1 = bw_run(&p, 1, bw_mib << 20);
		bw2 = bw_run(&p, NCH, bw_mib << 20);
		printf("throughput: 1 channel %.1f MB/s (%.2f Gb/s), %u channels %.1f MB/s (%.2f "
		       "Gb/s)\n",
		       bw1 / 1e6, bw1 * 8 / 1e9, NCH, bw2 / 1e6, bw2 * 8 / 1e9);
	}
	if (!only || strstr(only, "keepalive"))
		test_keepalive(&p);
	if (!only || strstr(only, "shutdown"))
		test_shutdown(&p);
	pair_close(&p, true);

	if (!only || strstr(only, "close"))
		test_peer_close(addr);
	if (!only || strstr(only, "rkey"))
		test_bad_rkey(addr);
	if (!only || strstr(only, "revoke"))
		test_revoke(addr);
	if (!only || strstr(only, "scope"))
		test_rkey_other_migration(addr);
	if (!only || strstr(only, "window")) {
		test_windows(addr);
		test_mr_rkey(addr);
		test_status_window(addr);
	}
	if (!only || strstr(only, "dead"))
		test_dead_peer(addr);
	if (!only || strstr(only, "options"))
		test_options(addr);
	if (!only || strstr(only, "reg"))
		test_registration(getenv("RD_REG_MIB") ? strtoull(getenv("RD_REG_MIB"), NULL, 0)
						       : 256);

	printf("%s: %d failure(s)\n", failures ? "FAIL" : "PASS", failures);
	return failures ? 1 : 0;
}
