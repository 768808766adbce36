// SPDX-License-Identifier: MIT
/*
 * rmig_live_run(): the rounds (live_rounds.c) until they converge, then
 * stop the vCPUs and switch over, with every device's final state, either
 * sending what is left and finishing, or handing the rest to postcopy
 * (core/postcopy/pc_src.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/barrier.h"
#include "core/live/live_engine.h"
#include "core/postcopy/postcopy.h"
#include "core/src/src_live.h"

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
	unsigned int acks = live_acks_outstanding(live);

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
	uint64_t wire0 = live_wire_bytes(live), pages, bytes;
	int ret;

	ret = live_collect_all(live, &pages, &bytes);
	if (ret)
		return ret;
	ret = live_complete_devices(live);
	if (ret)
		return ret;
	ret = rmig_src_finish(live->src);
	if (ret)
		return live_src_fail(live, ret, "finish");
	live->cur.downtime_ns = rmig_now_ns() - t_stop;
	live->cur.switchover_bytes = live_wire_bytes(live) - wire0;
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
	uint64_t wire0 = live_wire_bytes(live), pulled = 0;
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
	live->cur.switchover_bytes = live_wire_bytes(live) - wire0;
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
