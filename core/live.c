// SPDX-License-Identifier: MIT
/*
 * The live migration engine: the dirty bitmaps the guest marks, rounds of
 * RAM and iterable devices, the convergence decision (live_decide.c), and
 * the switchover.
 *
 * Ordering of a page's content: the guest writes a page, then sets its bit
 * with a release (rmig_live_mark_dirty); the engine takes a bitmap word with
 * an acquire exchange (collect_block) and queues the page; the scheduler's
 * hand-off to the channel is itself a release/acquire pair (sched.c). So the
 * channel reads the page no older than the write whose mark was collected.
 * Writes that race with the read are marked after it and collected in a
 * later round or, once stop_vcpus has returned, in the final pass.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rmig/live.h"

#include "barrier.h"
#include "core.h"
#include "live_decide.h"
#include "postcopy.h"
#include "src_live.h"

#define LIVE_DEF_DOWNTIME_MS 300u
#define LIVE_DEF_MAX_ROUNDS 30u
#define LIVE_MAX_ROUNDS 1000000u
#define LIVE_DEF_DEV_BUDGET (16ull << 20)
/* A round that moved less than this measures latency more than bandwidth. */
#define LIVE_BW_MIN_BYTES (1ull << 20)
#define LIVE_DEF_ACK_WAIT_MS 30000u
/* When only an ack keeps the switchover back, wait this long for it per round. */
#define LIVE_ACK_POLL_MS 10

struct live_block {
	/* bit set by the guest (release), taken by the engine (acquire) */
	_Atomic uint64_t *dirty;
	uint64_t *sent;	  /* engine only: page queued at least once */
	uint64_t *resent; /* engine only: page queued at least twice */
	uint64_t nwords;
	uint64_t length;
	uint32_t page_size;
	uint32_t page_shift;
};

struct live_dev {
	struct rmig_live_device d;
	char idstr[RMIG_IDSTR_MAX];
	bool acked;
};

enum live_state { LIVE_NEW, LIVE_RUNNING, LIVE_DONE };

struct rmig_live {
	struct rmig_src *src;
	struct rmig_live_opts opts;
	struct rmig_live_hooks hooks;
	struct rmig_err err;
	struct live_block *blocks;
	unsigned int nblocks;
	bool has_peer;
	const struct rmig_block *src_blocks; /* the source's, for postcopy */
	bool postcopy;			     /* postcopy entered: no resume on failure */
	struct live_dev *devs;
	unsigned int ndevs;
	enum live_state state; /* the caller's thread (add_device, run) */
	_Atomic bool cancelled;

	/* the engine's figures; published to get_stats under stats_lock */
	struct rmig_live_stats cur;
	pthread_mutex_t stats_lock;
	struct rmig_live_stats pub; /* Must hold stats_lock */

	uint64_t last_collect_ns;
	uint64_t dirty_bytes, dirty_ns;
};

void rmig_live_opts_init(struct rmig_live_opts *opts)
{
	memset(opts, 0, sizeof(*opts));
	opts->size = sizeof(*opts);
	opts->downtime_limit_ms = LIVE_DEF_DOWNTIME_MS;
	opts->max_rounds = LIVE_DEF_MAX_ROUNDS;
	opts->device_budget = LIVE_DEF_DEV_BUDGET;
	opts->ack_wait_ms = LIVE_DEF_ACK_WAIT_MS;
}

static int live_opts_copy(struct rmig_live_opts *dst, const struct rmig_live_opts *src)
{
	rmig_live_opts_init(dst);
	if (!src)
		return 0;
	if (src->size < offsetof(struct rmig_live_opts, reserved) || src->size > sizeof(*src))
		return -EINVAL;
	memcpy(dst, src, src->size);
	dst->size = sizeof(*dst);
	if (dst->flags & ~(uint32_t)(RMIG_LIVE_SYNC_EACH_SECTION | RMIG_LIVE_FAIL_ON_MAX_ROUNDS |
				     RMIG_LIVE_POSTCOPY))
		return -EINVAL;
	if (dst->postcopy_after_rounds && !(dst->flags & RMIG_LIVE_POSTCOPY))
		return -EINVAL;
	if (dst->max_rounds == 0 || dst->max_rounds > LIVE_MAX_ROUNDS)
		return -EINVAL;
	if (!dst->device_budget)
		dst->device_budget = LIVE_DEF_DEV_BUDGET;
	for (size_t i = 0; i < RMIG_ARRAY_SIZE(dst->reserved); i++)
		if (dst->reserved[i])
			return -EINVAL;
	return 0;
}

static int live_hooks_copy(struct rmig_live_hooks *dst, const struct rmig_live_hooks *src)
{
	memset(dst, 0, sizeof(*dst));
	if (!src || src->size < offsetof(struct rmig_live_hooks, reserved) ||
	    src->size > sizeof(*src))
		return -EINVAL;
	memcpy(dst, src, src->size);
	dst->size = sizeof(*dst);
	if (!dst->stop_vcpus)
		return -EINVAL;
	for (size_t i = 0; i < RMIG_ARRAY_SIZE(dst->reserved); i++)
		if (dst->reserved[i])
			return -EINVAL;
	return 0;
}

static void live_free_blocks(struct rmig_live *live)
{
	for (unsigned int i = 0; live->blocks && i < live->nblocks; i++) {
		free(live->blocks[i].dirty);
		free(live->blocks[i].sent);
		free(live->blocks[i].resent);
	}
	free(live->blocks);
}

int rmig_live_create(struct rmig_src *src, const struct rmig_live_opts *opts,
		     const struct rmig_live_hooks *hooks, struct rmig_live **livep)
{
	const struct rmig_block *blocks;
	struct rmig_live *live;
	unsigned int nblocks;
	bool has_peer;
	int ret;

	if (!src || !livep)
		return -EINVAL;
	ret = rmig_src_live_info(src, &blocks, &nblocks, &has_peer);
	if (ret)
		return ret;
	live = calloc(1, sizeof(*live));
	if (!live)
		return -ENOMEM;
	ret = live_opts_copy(&live->opts, opts);
	if (!ret)
		ret = live_hooks_copy(&live->hooks, hooks);
	if (ret) {
		free(live);
		return ret;
	}
	for (unsigned int i = 0; (live->opts.flags & RMIG_LIVE_POSTCOPY) && i < nblocks; i++)
		if (blocks[i].page_size > RMIG_DEV_CHUNK_MAX)
			has_peer = false; /* a page travels in one control message: refused below */
	if ((live->opts.flags & RMIG_LIVE_POSTCOPY) && !has_peer) {
		free(live);
		return -EINVAL; /* nobody to pull: file and null transports */
	}
	if ((live->opts.flags & RMIG_LIVE_POSTCOPY) && !rmig_src_peer_postcopy(src)) {
		free(live);
		return -ENOTSUP; /* the destination did not call rmig_dst_postcopy_enable() */
	}
	live->src = src;
	live->has_peer = has_peer;
	live->src_blocks = blocks;
	live->blocks = calloc(nblocks, sizeof(*live->blocks));
	if (!live->blocks) {
		free(live);
		return -ENOMEM;
	}
	live->nblocks = nblocks;
	for (unsigned int i = 0; i < nblocks; i++) {
		struct live_block *b = &live->blocks[i];
		uint64_t npages = blocks[i].length / blocks[i].page_size;

		b->length = blocks[i].length;
		b->page_size = blocks[i].page_size;
		b->page_shift = blocks[i].page_shift;
		b->nwords = (npages + 63) / 64;
		b->dirty = calloc(b->nwords, sizeof(*b->dirty));
		b->sent = calloc(b->nwords, sizeof(*b->sent));
		b->resent = calloc(b->nwords, sizeof(*b->resent));
		if (!b->dirty || !b->sent || !b->resent) {
			live_free_blocks(live);
			free(live);
			return -ENOMEM;
		}
		/* Every page starts dirty: the first round sends all of RAM. */
		for (uint64_t w = 0; w < b->nwords; w++) {
			uint64_t left = npages - w * 64;

			atomic_init(&b->dirty[w], left >= 64 ? ~0ull : (1ull << left) - 1);
		}
	}
	rmig_err_init(&live->err);
	pthread_mutex_init(&live->stats_lock, NULL);
	atomic_init(&live->cancelled, false);
	live->cur.size = sizeof(live->cur);
	live->pub = live->cur;
	*livep = live;
	return 0;
}

static struct live_dev *live_find_dev(struct rmig_live *live, const char *idstr, uint32_t instance)
{
	for (unsigned int i = 0; i < live->ndevs; i++)
		if (live->devs[i].d.instance == instance && !strcmp(live->devs[i].idstr, idstr))
			return &live->devs[i];
	return NULL;
}

int rmig_live_add_device(struct rmig_live *live, const struct rmig_live_device *dev)
{
	struct rmig_live_device copy;
	struct live_dev *nd, *ld;
	size_t idlen;

	if (!live || !dev || dev->size < offsetof(struct rmig_live_device, reserved) ||
	    dev->size > sizeof(*dev) || !dev->idstr || !dev->complete)
		return -EINVAL;
	if (live->state != LIVE_NEW)
		return -EBUSY;
	if (dev->flags & ~(uint32_t)RMIG_LIVE_DEV_SWITCHOVER_ACK)
		return -EINVAL;
	if ((dev->iterate && !dev->pending) || (dev->pending && !dev->iterate))
		return -EINVAL;
	idlen = strlen(dev->idstr);
	if (idlen == 0 || idlen >= RMIG_IDSTR_MAX)
		return -EINVAL;
	if (live_find_dev(live, dev->idstr, dev->instance))
		return -EEXIST;
	if (live->ndevs >= RMIG_LIVE_MAX_DEVICES)
		return -E2BIG;
	memset(&copy, 0, sizeof(copy));
	memcpy(&copy, dev, dev->size);
	for (size_t i = 0; i < RMIG_ARRAY_SIZE(copy.reserved); i++)
		if (copy.reserved[i])
			return -EINVAL;
	nd = realloc(live->devs, sizeof(*nd) * (live->ndevs + 1));
	if (!nd)
		return -ENOMEM;
	live->devs = nd;
	ld = &nd[live->ndevs];
	memset(ld, 0, sizeof(*ld));
	ld->d = copy;
	memcpy(ld->idstr, dev->idstr, idlen + 1);
	ld->d.idstr = ld->idstr;
	ld->d.size = sizeof(ld->d);
	live->ndevs++;
	if (ld->d.flags & RMIG_LIVE_DEV_SWITCHOVER_ACK)
		live->cur.acks_required++;
	return 0;
}

int rmig_live_mark_dirty(struct rmig_live *live, unsigned int block, uint64_t offset)
{
	struct live_block *b;
	uint64_t page;

	if (unlikely(!live || block >= live->nblocks))
		return -EINVAL;
	b = &live->blocks[block];
	if (unlikely(offset >= b->length))
		return -EINVAL;
	page = offset >> b->page_shift;
	/*
	 * Release: the guest's write of the page is published with its bit;
	 * pairs with the acquire exchange in collect_block().
	 */
	rmig_or_release(&b->dirty[page / 64], 1ull << (page % 64));
	return 0;
}

/* ---- the engine ---------------------------------------------------------- */

static int live_fail(struct rmig_live *live, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int live_fail(struct rmig_live *live, int code, const char *fmt, ...)
{
	va_list ap;
	int ret;

	va_start(ap, fmt);
	ret = rmig_err_vset(&live->err, code, fmt, ap);
	va_end(ap);
	return ret;
}

/*
 * A device callback failed with @err. When that is because the source
 * failed (its queueing saw a dead channel), the source's reason, which may
 * be the destination's, comes first.
 */
static int live_dev_fail(struct rmig_live *live, const struct rmig_live_device *d,
			 const char *what, int64_t err)
{
	int code = rmig_src_peer_error(live->src);

	if (rmig_load_relaxed(&live->cancelled))
		return live_fail(live, -ECANCELED, "migration cancelled");
	if (code)
		return live_fail(live, code, "device '%s' instance %u: %s: %s", d->idstr,
				 d->instance, what, rmig_src_error(live->src));
	code = err < 0 && err >= -4095 ? (int)err : -EIO;
	return live_fail(live, code, "device '%s' instance %u: %s: %s", d->idstr, d->instance,
			 what, strerror(-code));
}

/* A source call failed: its own message says why. */
static int live_src_fail(struct rmig_live *live, int code, const char *what)
{
	const char *msg = rmig_src_error(live->src);

	if (rmig_load_relaxed(&live->cancelled))
		return live_fail(live, -ECANCELED, "migration cancelled");
	return live_fail(live, code, "%s: %s", what, msg[0] ? msg : strerror(-code));
}

static uint64_t src_wire_bytes(struct rmig_live *live)
{
	struct rmig_stats st = { .size = sizeof(st) };

	rmig_src_get_stats(live->src, &st);
	return st.wire_bytes;
}

static void live_publish(struct rmig_live *live)
{
	pthread_mutex_lock(&live->stats_lock);
	live->pub = live->cur;
	pthread_mutex_unlock(&live->stats_lock);
}

/* Queue every page whose bit is set, clearing the bits; counts into *@pages. */
static int collect_block(struct rmig_live *live, unsigned int bi, uint64_t *pages)
{
	struct live_block *b = &live->blocks[bi];
	int ret;

	for (uint64_t w = 0; w < b->nwords; w++) {
		uint64_t bits, again;

		/* Most words are clean in late rounds: look before writing the line. */
		if (!rmig_load_relaxed(&b->dirty[w]))
			continue;
		/*
		 * Acquire: pairs with the release in rmig_live_mark_dirty(), so
		 * the writes behind these bits happen before the pages are
		 * queued (and so before a channel reads them).
		 */
		bits = rmig_xchg_acquire(&b->dirty[w], 0);
		again = bits & b->sent[w];
		live->cur.pages_resent += (uint64_t)__builtin_popcountll(again & ~b->resent[w]);
		live->cur.pages_unique += (uint64_t)__builtin_popcountll(bits & ~b->sent[w]);
		b->resent[w] |= again;
		b->sent[w] |= bits;
		for (; bits; bits &= bits - 1) {
			uint64_t page = w * 64 + (uint64_t)__builtin_ctzll(bits);

			ret = rmig_src_queue_page(live->src, bi, page << b->page_shift);
			if (ret)
				return live_src_fail(live, ret, "queueing a dirty page");
			(*pages)++;
		}
	}
	return 0;
}

/* The RAM section: collect every block's dirty bitmap and queue the pages. */
static int collect_all(struct rmig_live *live, uint64_t *pages, uint64_t *bytes)
{
	uint64_t start = rmig_now_ns(), mid;
	int ret;

	*pages = *bytes = 0;
	for (unsigned int i = 0; i < live->nblocks; i++) {
		uint64_t n = 0;

		ret = collect_block(live, i, &n);
		if (ret)
			return ret;
		*pages += n;
		*bytes += n * live->blocks[i].page_size;
	}
	/*
	 * Bits gathered since the previous collection measure the dirty rate.
	 * Queueing paces a collection (a word is taken only when the channels
	 * have taken the pages before it), so a big round collects its words
	 * spread over the whole round: time it at its midpoint.
	 */
	mid = start + (rmig_now_ns() - start) / 2;
	if (live->last_collect_ns) {
		live->dirty_bytes += *bytes;
		live->dirty_ns += mid - live->last_collect_ns;
		if (live->dirty_ns)
			live->cur.dirty_rate_bps = (uint64_t)((double)live->dirty_bytes * 1e9 /
							      (double)live->dirty_ns);
	}
	live->last_collect_ns = mid;
	live->cur.pages_sent += *pages;
	return 0;
}

/* Dirty RAM not collected yet: an estimate, the guest goes on writing. */
static uint64_t dirty_bytes_now(struct rmig_live *live)
{
	uint64_t total = 0;

	for (unsigned int i = 0; i < live->nblocks; i++) {
		struct live_block *b = &live->blocks[i];
		uint64_t n = 0;

		for (uint64_t w = 0; w < b->nwords; w++)
			n += (uint64_t)__builtin_popcountll(rmig_load_relaxed(&b->dirty[w]));
		total += n * b->page_size;
	}
	return total;
}

static int live_sync(struct rmig_live *live)
{
	int ret = rmig_src_sync(live->src, RMIG_SYNC_ALL);

	return ret ? live_src_fail(live, ret, "sync") : 0;
}

/*
 * Every iterable device that has pre-copy data gets its turn, whatever the
 * ones before it still hold (iterable devices not serialized: stopping at the first device that
 * is not done starves the rest).
 */
static int iterate_devices(struct rmig_live *live, uint64_t *dev_bytes)
{
	int ret;

	*dev_bytes = 0;
	for (unsigned int i = 0; i < live->ndevs; i++) {
		struct rmig_live_device *d = &live->devs[i].d;
		int64_t n;

		if (!d->iterate || !d->pending(d->arg))
			continue;
		n = d->iterate(d->arg, live->src, live->opts.device_budget);
		if (n < 0)
			return live_dev_fail(live, d, "iterate", n);
		*dev_bytes += (uint64_t)n;
		live->cur.dev_bytes += (uint64_t)n;
		if (live->opts.flags & RMIG_LIVE_SYNC_EACH_SECTION) {
			ret = live_sync(live);
			if (ret)
				return ret;
		}
	}
	return 0;
}

static unsigned int acks_outstanding(struct rmig_live *live)
{
	unsigned int n = 0;

	if (!live->has_peer)
		return 0; /* nobody could ack: file and null transports */
	for (unsigned int i = 0; i < live->ndevs; i++)
		if ((live->devs[i].d.flags & RMIG_LIVE_DEV_SWITCHOVER_ACK) && !live->devs[i].acked)
			n++;
	return n;
}

/* Read what the destination sent back; wait up to @timeout_ms for the first message. */
static int drain_ctl(struct rmig_live *live, int timeout_ms)
{
	struct rmig_src_ack ack;
	struct live_dev *ld;
	int ret;

	if (!live->has_peer)
		return 0;
	while ((ret = rmig_src_poll_ctl(live->src, timeout_ms, &ack)) == 1) {
		timeout_ms = 0;
		ld = live_find_dev(live, ack.idstr, ack.instance);
		if (!ld)
			return live_fail(live, -EPROTO,
					 "destination acknowledged device '%s' instance %u, which is not registered",
					 ack.idstr, ack.instance);
		if (!ld->acked) {
			ld->acked = true;
			live->cur.acks_received++;
		}
	}
	return ret < 0 ? live_src_fail(live, ret, "control connection") : 0;
}

static uint64_t devices_pending(struct rmig_live *live)
{
	uint64_t n = 0;

	for (unsigned int i = 0; i < live->ndevs; i++)
		if (live->devs[i].d.pending)
			n += live->devs[i].d.pending(live->devs[i].d.arg);
	return n;
}

/* Rounds until a decision other than CONTINUE; returns it, or a negative errno. */
static int live_rounds(struct rmig_live *live)
{
	uint64_t limit_ns = (uint64_t)live->opts.downtime_limit_ms * 1000000u;
	uint64_t bw = 0, all_bytes = 0, all_ns = 0, out_of_rounds = 0;
	int ret;

	for (uint32_t round = 1;; round++) {
		struct rmig_live_round r = { .round = round };
		uint64_t start = rmig_now_ns(), wire0 = src_wire_bytes(live), ram_bytes;
		enum rmig_live_decision dec;
		unsigned int acks;

		if (rmig_load_relaxed(&live->cancelled))
			return live_fail(live, -ECANCELED, "migration cancelled");
		ret = collect_all(live, &r.ram_pages, &ram_bytes);
		if (!ret && (live->opts.flags & RMIG_LIVE_SYNC_EACH_SECTION))
			ret = live_sync(live);
		if (!ret)
			ret = iterate_devices(live, &r.dev_bytes);
		if (!ret && !(live->opts.flags & RMIG_LIVE_SYNC_EACH_SECTION))
			ret = live_sync(live);
		if (!ret)
			ret = drain_ctl(live, 0);
		if (ret)
			return ret;
		r.ns = rmig_now_ns() - start;
		r.bytes = src_wire_bytes(live) - wire0;
		all_bytes += r.bytes;
		all_ns += r.ns;

		/* The last round that moved enough data, else everything so far. */
		if (r.bytes >= LIVE_BW_MIN_BYTES && r.ns)
			bw = (uint64_t)((double)r.bytes * 1e9 / (double)r.ns);
		else if (!bw && all_ns)
			bw = (uint64_t)((double)all_bytes * 1e9 / (double)all_ns);
		r.bandwidth_bps = bw;
		r.remaining_bytes = dirty_bytes_now(live) + devices_pending(live);
		r.expected_downtime_ns = rmig_live_expected_ns(r.remaining_bytes, bw);
		acks = acks_outstanding(live);
		dec = rmig_live_decide(round, live->opts.max_rounds, r.expected_downtime_ns,
				       limit_ns, acks, live->opts.flags);
		if (dec == RMIG_LIVE_CONTINUE && acks &&
		    (r.expected_downtime_ns <= limit_ns || round >= live->opts.max_rounds)) {
			/*
			 * Only an ack keeps the switchover back: give it a moment
			 * instead of spinning rounds; the destination may well be
			 * several rounds behind.
			 */
			ret = drain_ctl(live, LIVE_ACK_POLL_MS);
			if (ret)
				return ret;
			acks = acks_outstanding(live);
			dec = rmig_live_decide(round, live->opts.max_rounds,
					       r.expected_downtime_ns, limit_ns, acks,
					       live->opts.flags);
		}
		if ((live->opts.flags & RMIG_LIVE_POSTCOPY) && !acks &&
		    (dec == RMIG_LIVE_FORCE || round >= live->opts.max_rounds ||
		     (live->opts.postcopy_after_rounds &&
		      round >= live->opts.postcopy_after_rounds)))
			dec = RMIG_LIVE_SWITCHOVER; /* postcopy pulls what is left */
		if (dec == RMIG_LIVE_CONTINUE && round >= live->opts.max_rounds) {
			/* Out of rounds, waiting for acks only: for at most ack_wait_ms. */
			if (!out_of_rounds)
				out_of_rounds = rmig_now_ns();
			if (rmig_now_ns() - out_of_rounds >=
			    (uint64_t)live->opts.ack_wait_ms * 1000000u)
				dec = RMIG_LIVE_FAIL;
		}
		r.acks_outstanding = acks;
		r.decision = dec;

		live->cur.rounds = round;
		if (round <= RMIG_LIVE_ROUNDS_KEPT) {
			live->cur.round_bytes[round - 1] = r.bytes;
			live->cur.round_bytes_count = round;
		}
		live->cur.expected_downtime_ns = r.expected_downtime_ns;
		live->cur.bandwidth_bps = bw;
		live_publish(live);
		if (live->hooks.round_done)
			live->hooks.round_done(live->hooks.arg, &r);
		if (dec != RMIG_LIVE_CONTINUE)
			return dec;
	}
}

static void live_name_missing_acks(struct rmig_live *live, char *buf, size_t len)
{
	size_t n = 0;

	buf[0] = '\0';
	for (unsigned int i = 0; i < live->ndevs && n < len; i++) {
		struct live_dev *ld = &live->devs[i];

		if (!(ld->d.flags & RMIG_LIVE_DEV_SWITCHOVER_ACK) || ld->acked)
			continue;
		n += (size_t)snprintf(buf + n, len - n, "%s'%s' instance %u", n ? ", " : "",
				      ld->idstr, ld->d.instance);
	}
}

static int live_not_converged(struct rmig_live *live)
{
	char missing[256], expected[64];
	unsigned int acks = acks_outstanding(live);

	if (acks) {
		live_name_missing_acks(live, missing, sizeof(missing));
		return live_fail(live, -ETIME,
				 "no switchover ack from the destination after %u rounds (limit %u, then %u ms) for %s",
				 live->cur.rounds, live->opts.max_rounds, live->opts.ack_wait_ms,
				 missing);
	}
	if (live->cur.expected_downtime_ns == UINT64_MAX)
		snprintf(expected, sizeof(expected), "unbounded (no bandwidth measured)");
	else
		snprintf(expected, sizeof(expected), "%.1f ms",
			 (double)live->cur.expected_downtime_ns / 1e6);
	return live_fail(live, -ETIME,
			 "did not converge in %u rounds: expected downtime %s exceeds the limit of %u ms",
			 live->cur.rounds, expected, live->opts.downtime_limit_ms);
}

/* vCPUs stopped: queue every device's final state, then sync every channel. */
static int live_complete_devices(struct rmig_live *live)
{
	int ret;

	for (unsigned int i = 0; i < live->ndevs; i++) {
		struct rmig_live_device *d = &live->devs[i].d;

		ret = d->complete(d->arg, live->src);
		if (ret)
			return live_dev_fail(live, d, "complete", ret > 0 ? -EIO : ret);
	}
	return live_sync(live);
}

/* vCPUs stopped: everything left, every device's final state, sync, finish. */
static int live_switchover(struct rmig_live *live, uint64_t t_stop)
{
	uint64_t wire0 = src_wire_bytes(live), pages, bytes;
	int ret;

	ret = collect_all(live, &pages, &bytes);
	if (ret)
		return ret;
	ret = live_complete_devices(live);
	if (ret)
		return ret;
	ret = rmig_src_finish(live->src);
	if (ret)
		return live_src_fail(live, ret, "finish");
	live->cur.downtime_ns = rmig_now_ns() - t_stop;
	live->cur.switchover_bytes = src_wire_bytes(live) - wire0;
	return 0;
}

/*
 * Postcopy switchover, vCPUs stopped: every device's final state, then
 * flush the partial slot and sync every channel (postcopy-prepare flush: every page queued
 * so far is loaded before the destination runs), then the destination pulls
 * the pages still dirty while it runs; finish once it has them all.
 */
static int live_switchover_postcopy(struct rmig_live *live, uint64_t t_stop)
{
	uint64_t wire0 = src_wire_bytes(live), pulled = 0;
	_Atomic uint64_t **dirty;
	char why[RMIG_ERRMSG_MAX];
	int ret;

	ret = live_complete_devices(live);
	if (ret)
		return ret;
	dirty = calloc(live->nblocks, sizeof(*dirty));
	if (!dirty)
		return live_fail(live, -ENOMEM, "out of memory");
	for (unsigned int i = 0; i < live->nblocks; i++)
		dirty[i] = live->blocks[i].dirty;
	live->postcopy = true;
	live->cur.downtime_ns = rmig_now_ns() - t_stop; /* the destination runs from here */
	ret = rmig_pc_src_run(live->src, live->src_blocks, live->nblocks,
			      (_Atomic uint64_t *const *)dirty, &pulled, why, sizeof(why));
	free(dirty);
	live->cur.postcopy_pages = pulled;
	if (ret) {
		if (rmig_load_relaxed(&live->cancelled))
			return live_fail(live, -ECANCELED, "migration cancelled: %s", why);
		return live_fail(live, ret, "%s", why);
	}
	ret = rmig_src_finish(live->src);
	if (ret)
		return live_src_fail(live, ret, "finish after postcopy");
	live->cur.switchover_bytes = src_wire_bytes(live) - wire0;
	return 0;
}

int rmig_live_run(struct rmig_live *live)
{
	struct rmig_stats st = { .size = sizeof(st) };
	uint64_t t0, t_stop = 0;
	bool stopped = false;
	int ret;

	if (!live)
		return -EINVAL;
	if (live->state != LIVE_NEW)
		return -EALREADY;
	live->state = LIVE_RUNNING;
	t0 = rmig_now_ns();

	ret = live_rounds(live);
	if (ret == RMIG_LIVE_FAIL) {
		ret = live_not_converged(live);
	} else if (ret >= 0) {
		live->cur.forced = ret == RMIG_LIVE_FORCE;
		t_stop = rmig_now_ns();
		stopped = true;
		ret = live->hooks.stop_vcpus(live->hooks.arg);
		if (ret)
			ret = live_fail(live, ret < 0 && ret >= -4095 ? ret : -EIO,
					"stop_vcpus failed (%d)", ret);
		else if (live->opts.flags & RMIG_LIVE_POSTCOPY)
			ret = live_switchover_postcopy(live, t_stop);
		else
			ret = live_switchover(live, t_stop);
	}
	if (ret) {
		/* The destination must not go on with a half migration, and must hear why. */
		rmig_src_abort(live->src, ret, live->err.msg);
		rmig_src_cancel(live->src);
		if (stopped && !live->postcopy && live->hooks.resume_vcpus)
			live->hooks.resume_vcpus(live->hooks.arg);
	}
	live->cur.total_ns = rmig_now_ns() - t0;
	if (!rmig_src_get_stats(live->src, &st))
		live->cur.dev_bytes = st.dev_bytes;
	live_publish(live);
	live->state = LIVE_DONE;
	return ret;
}

void rmig_live_cancel(struct rmig_live *live)
{
	if (!live)
		return;
	rmig_store_relaxed(&live->cancelled, true);
	rmig_src_cancel(live->src);
}

int rmig_live_get_stats(struct rmig_live *live, struct rmig_live_stats *stats)
{
	struct rmig_live_stats s;

	if (!live || !stats || stats->size < offsetof(struct rmig_live_stats, total_ns))
		return -EINVAL;
	pthread_mutex_lock(&live->stats_lock);
	s = live->pub;
	pthread_mutex_unlock(&live->stats_lock);
	s.size = sizeof(s);
	memcpy(stats, &s, stats->size < sizeof(s) ? stats->size : sizeof(s));
	return 0;
}

const char *rmig_live_error(struct rmig_live *live)
{
	return live ? live->err.msg : "";
}

void rmig_live_destroy(struct rmig_live *live)
{
	if (!live)
		return;
	live_free_blocks(live);
	free(live->devs);
	pthread_mutex_destroy(&live->stats_lock);
	rmig_err_destroy(&live->err);
	free(live);
}
