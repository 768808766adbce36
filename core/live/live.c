// SPDX-License-Identifier: MIT
/*
 * The live migration engine (include/rmig/live.h), its object: options,
 * hooks, the dirty bitmaps the guest marks, iterable devices, figures and
 * errors. The rounds are in live_rounds.c, rmig_live_run() and the
 * switchover in live_run.c, the convergence decision in live_decide.c.
 *
 * Ordering of a page's content: the guest writes a page, then sets its bit
 * with a release (rmig_live_mark_dirty); the engine takes a bitmap word with
 * an acquire exchange (collect_block, live_rounds.c) and queues the page; the
 * scheduler's hand-off to the channel is itself a release/acquire pair
 * (core/sched.c). So the channel reads the page no older than the write
 * whose mark was collected. Writes that race with the read are marked after
 * it and collected in a later round or, once stop_vcpus has returned, in the
 * final pass.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/barrier.h"
#include "core/live/live_engine.h"
#include "core/src/src_live.h"

#define LIVE_DEF_DOWNTIME_MS 300u
#define LIVE_DEF_MAX_ROUNDS 30u
#define LIVE_MAX_ROUNDS 1000000u
#define LIVE_DEF_DEV_BUDGET (16ull << 20)
#define LIVE_DEF_ACK_WAIT_MS 30000u

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

struct live_dev *live_find_dev(struct rmig_live *live, const char *idstr, uint32_t instance)
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
	 * pairs with the acquire exchange in collect_block()
	 * (live_rounds.c).
	 */
	rmig_or_release(&b->dirty[page / 64], 1ull << (page % 64));
	return 0;
}

int live_fail(struct rmig_live *live, int code, const char *fmt, ...)
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
int live_dev_fail(struct rmig_live *live, const struct rmig_live_device *d, const char *what,
		  int64_t err)
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
int live_src_fail(struct rmig_live *live, int code, const char *what)
{
	const char *msg = rmig_src_error(live->src);

	if (rmig_load_relaxed(&live->cancelled))
		return live_fail(live, -ECANCELED, "migration cancelled");
	return live_fail(live, code, "%s: %s", what, msg[0] ? msg : strerror(-code));
}

uint64_t live_wire_bytes(struct rmig_live *live)
{
	struct rmig_stats st = { .size = sizeof(st) };

	rmig_src_get_stats(live->src, &st);
	return st.wire_bytes;
}

void live_publish(struct rmig_live *live)
{
	pthread_mutex_lock(&live->stats_lock);
	live->pub = live->cur;
	pthread_mutex_unlock(&live->stats_lock);
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
