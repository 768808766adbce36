// SPDX-License-Identifier: MIT
/*
 * The live engine's pre-copy rounds: each round collects the dirty bitmaps
 * and queues those pages, gives every iterable device its turn, syncs, reads
 * the destination's acks, and asks live_decide.c whether to go on.
 */
#include <errno.h>
#include <stdlib.h>

#include "core/barrier.h"
#include "core/live/live_decide.h"
#include "core/live/live_engine.h"
#include "core/src/src_live.h"

/* A round that moved less than this measures latency more than bandwidth. */
#define LIVE_BW_MIN_BYTES (1ull << 20)
/* When only an ack keeps the switchover back, wait this long for it per round. */
#define LIVE_ACK_POLL_MS 10

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

int live_collect_all(struct rmig_live *live, uint64_t *pages, uint64_t *bytes)
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

int live_sync(struct rmig_live *live)
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

unsigned int live_acks_outstanding(struct rmig_live *live)
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

int live_rounds(struct rmig_live *live)
{
	uint64_t limit_ns = (uint64_t)live->opts.downtime_limit_ms * 1000000u;
	uint64_t bw = 0, all_bytes = 0, all_ns = 0, out_of_rounds = 0;
	int ret;

	for (uint32_t round = 1;; round++) {
		struct rmig_live_round r = { .round = round };
		uint64_t start = rmig_now_ns(), wire0 = live_wire_bytes(live), ram_bytes;
		enum rmig_live_decision dec;
		unsigned int acks;

		if (rmig_load_relaxed(&live->cancelled))
			return live_fail(live, -ECANCELED, "migration cancelled");
		ret = live_collect_all(live, &r.ram_pages, &ram_bytes);
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
		r.bytes = live_wire_bytes(live) - wire0;
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
		acks = live_acks_outstanding(live);
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
			acks = live_acks_outstanding(live);
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
