// SPDX-License-Identifier: MIT
/*
 * The live engine without a network: the convergence decision on its edge
 * cases, the downtime estimate, the API's argument checks, and (over the
 * "null:" transport) fairness between iterable devices: with RAM that never
 * converges and devices that always have data, every device makes progress
 * in every round, including the ones behind a device that is stuck.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/live/live_decide.h"
#include "rmig/live.h"
#include "helpers.h"
#include "vdev.h"
#include "workload.h"

#define MS 1000000ull
#define PAGE 4096u
#define RAM_SIZE (8u << 20)

/* ---- rmig_live_decide ------------------------------------------------------ */

static void test_decide(void **state)
{
	const uint32_t fail = RMIG_LIVE_FAIL_ON_MAX_ROUNDS;

	(void)state;
	/* within the limit, the limit itself included */
	assert_int_equal(rmig_live_decide(1, 30, 0, 300 * MS, 0, 0), RMIG_LIVE_SWITCHOVER);
	assert_int_equal(rmig_live_decide(1, 30, 300 * MS, 300 * MS, 0, 0), RMIG_LIVE_SWITCHOVER);
	assert_int_equal(rmig_live_decide(1, 30, 300 * MS + 1, 300 * MS, 0, 0), RMIG_LIVE_CONTINUE);
	/* limit 0: only when nothing is left */
	assert_int_equal(rmig_live_decide(5, 30, 0, 0, 0, 0), RMIG_LIVE_SWITCHOVER);
	assert_int_equal(rmig_live_decide(5, 30, 1, 0, 0, 0), RMIG_LIVE_CONTINUE);
	/* nothing measured yet */
	assert_int_equal(rmig_live_decide(1, 30, UINT64_MAX, UINT64_MAX - 1, 0, 0),
			 RMIG_LIVE_CONTINUE);
	assert_int_equal(rmig_live_decide(1, 30, UINT64_MAX, UINT64_MAX, 0, 0),
			 RMIG_LIVE_SWITCHOVER);
	/* the last round: force, or fail when asked to */
	assert_int_equal(rmig_live_decide(29, 30, UINT64_MAX, 300 * MS, 0, 0), RMIG_LIVE_CONTINUE);
	assert_int_equal(rmig_live_decide(30, 30, UINT64_MAX, 300 * MS, 0, 0), RMIG_LIVE_FORCE);
	assert_int_equal(rmig_live_decide(30, 30, UINT64_MAX, 300 * MS, 0, fail), RMIG_LIVE_FAIL);
	assert_int_equal(rmig_live_decide(31, 30, 400 * MS, 300 * MS, 0, 0), RMIG_LIVE_FORCE);
	/* converging in the last round is no failure */
	assert_int_equal(rmig_live_decide(30, 30, 1, 300 * MS, 0, fail), RMIG_LIVE_SWITCHOVER);
	/* max_rounds 1: decide at once */
	assert_int_equal(rmig_live_decide(1, 1, 400 * MS, 300 * MS, 0, 0), RMIG_LIVE_FORCE);
	assert_int_equal(rmig_live_decide(1, 1, 400 * MS, 300 * MS, 0, fail), RMIG_LIVE_FAIL);
	/* a missing ack holds a converged migration back ... */
	assert_int_equal(rmig_live_decide(1, 30, 0, 300 * MS, 1, 0), RMIG_LIVE_CONTINUE);
	assert_int_equal(rmig_live_decide(29, 30, 0, 300 * MS, 3, fail), RMIG_LIVE_CONTINUE);
	/* ... and is never forced over: out of rounds, force waits for it ... */
	assert_int_equal(rmig_live_decide(30, 30, 0, 300 * MS, 1, 0), RMIG_LIVE_CONTINUE);
	assert_int_equal(rmig_live_decide(30, 30, UINT64_MAX, 300 * MS, 1, 0),
			 RMIG_LIVE_CONTINUE);
	assert_int_equal(rmig_live_decide(1000, 30, UINT64_MAX, 300 * MS, 2, 0),
			 RMIG_LIVE_CONTINUE);
	/* ... and forces once it is in, beyond the last round */
	assert_int_equal(rmig_live_decide(1000, 30, UINT64_MAX, 300 * MS, 0, 0), RMIG_LIVE_FORCE);
	/* with the fail flag, out of rounds is out of rounds */
	assert_int_equal(rmig_live_decide(30, 30, 0, 300 * MS, 1, fail), RMIG_LIVE_FAIL);
	/* flags the decision does not know change nothing */
	assert_int_equal(rmig_live_decide(30, 30, UINT64_MAX, 0, 0, RMIG_LIVE_SYNC_EACH_SECTION),
			 RMIG_LIVE_FORCE);
}

static void test_expected(void **state)
{
	(void)state;
	assert_int_equal(rmig_live_expected_ns(0, 0), 0);
	assert_int_equal(rmig_live_expected_ns(0, 1000), 0);
	assert_true(rmig_live_expected_ns(1, 0) == UINT64_MAX);
	assert_int_equal(rmig_live_expected_ns(1000000000ull, 1000000000ull), 1000000000ull);
	assert_int_equal(rmig_live_expected_ns(300ull << 20, 1ull << 30), 292968750ull);
	assert_int_equal(rmig_live_expected_ns(1, 3), 333333333ull);
	/* saturates */
	assert_true(rmig_live_expected_ns(UINT64_MAX, 1) == UINT64_MAX);
	assert_true(rmig_live_expected_ns(UINT64_MAX, 18) == UINT64_MAX);
	assert_true(rmig_live_expected_ns(UINT64_MAX, 1ull << 40) < UINT64_MAX);
}

/* ---- a source over null: ------------------------------------------------------ */

struct fx {
	uint8_t *ram;
	struct rmig_src *src;
	struct rmig_live *live;
	struct workload *wl;
	int block;
	unsigned int stops, resumes;
	/* fairness bookkeeping, checked at every round */
	struct vdev_src *devs[4];
	unsigned int ndevs;
	uint64_t last_queued[4];
	uint32_t rounds_seen;
	bool unfair;
	char why[256];
	unsigned int stuck_iterations;
	bool stuck_complete;
};

static int fx_stop(void *arg)
{
	struct fx *f = arg;

	f->stops++;
	return wl_stop(f->wl);
}

static void fx_resume(void *arg)
{
	((struct fx *)arg)->resumes++;
}

static void fx_round(void *arg, const struct rmig_live_round *r)
{
	struct fx *f = arg;

	f->rounds_seen++;
	if (r->round != f->rounds_seen && !f->unfair) {
		f->unfair = true;
		snprintf(f->why, sizeof(f->why), "round %u reported as %u", f->rounds_seen,
			 r->round);
	}
	for (unsigned int i = 0; i < f->ndevs; i++) {
		struct vdev_src *v = f->devs[i];

		if (!f->unfair && (v->iterations != r->round || v->queued <= f->last_queued[i])) {
			f->unfair = true;
			snprintf(f->why, sizeof(f->why),
				 "round %u: device %s iterated %u times, queued %llu (was %llu)",
				 r->round, v->idstr, v->iterations, (unsigned long long)v->queued,
				 (unsigned long long)f->last_queued[i]);
		}
		f->last_queued[i] = v->queued;
	}
}

static void fx_setup(struct fx *f, const struct rmig_live_opts *lo, bool hooks_round)
{
	struct rmig_block_desc bd = { .name = "ram", .length = RAM_SIZE, .page_size = PAGE };
	struct rmig_live_hooks h = {
		.size = sizeof(h), .arg = f, .stop_vcpus = fx_stop, .resume_vcpus = fx_resume,
		.round_done = hooks_round ? fx_round : NULL,
	};
	struct rmig_opts o;

	memset(f, 0, sizeof(*f));
	f->ram = h_map(RAM_SIZE);
	memset(f->ram, 0x5a, RAM_SIZE);
	bd.host = f->ram;
	rmig_opts_init(&o);
	assert_int_equal(rmig_src_create(&o, &f->src), 0);
	f->block = rmig_src_add_block(f->src, &bd);
	assert_int_equal(f->block, 0);
	assert_int_equal(rmig_src_connect(f->src, "null:"), 0);
	assert_int_equal(rmig_live_create(f->src, lo, &h, &f->live), 0);
}

static void fx_start_workload(struct fx *f, uint64_t rate)
{
	struct wl_cfg wc = {
		.base = f->ram, .size = RAM_SIZE, .page_size = PAGE, .block = 0, .rate = rate,
		.pattern = WL_RANDOM, .threads = 1, .seed = 7,
	};

	assert_int_equal(wl_start(&wc, f->live, &f->wl), 0);
}

static void fx_teardown(struct fx *f)
{
	wl_destroy(f->wl);
	rmig_live_destroy(f->live);
	rmig_src_destroy(f->src);
	h_unmap(f->ram, RAM_SIZE);
}

/* A device that always says it has data and never sends any. */
static uint64_t stuck_pending(void *arg)
{
	(void)arg;
	return 1ull << 30;
}

static int64_t stuck_iterate(void *arg, struct rmig_src *src, uint64_t max)
{
	(void)src;
	(void)max;
	((struct fx *)arg)->stuck_iterations++;
	return 0;
}

static int stuck_complete(void *arg, struct rmig_src *src)
{
	((struct fx *)arg)->stuck_complete = true;
	return rmig_src_queue_device_state(src, "stuck", 0, "x", 1);
}

static void test_fairness(void **state)
{
	struct rmig_live_opts lo;
	struct rmig_live_stats st = { .size = sizeof(st) };
	struct vdev_src a = { .idstr = "vfio-a", .seed = 1, .initial = 64u << 20 };
	struct vdev_src b = { .idstr = "vfio-b", .seed = 2, .initial = 1u << 20, .grow = 2u << 20 };
	struct rmig_live_device stuck = {
		.size = sizeof(stuck), .idstr = "stuck", .pending = stuck_pending,
		.iterate = stuck_iterate, .complete = stuck_complete,
	};
	struct fx f;

	(void)state;
	h_alarm(120); /* a hang kills the test, never a timing check */
	rmig_live_opts_init(&lo);
	lo.downtime_limit_ms = 0; /* never converges: the devices always have data */
	lo.max_rounds = 12;
	lo.device_budget = 512u << 10;
	fx_setup(&f, &lo, true);
	stuck.arg = &f;
	/* the stuck device comes first: it must not keep the others from their turn */
	assert_int_equal(rmig_live_add_device(f.live, &stuck), 0);
	assert_int_equal(vdev_register(f.live, &a), 0);
	assert_int_equal(vdev_register(f.live, &b), 0);
	f.devs[f.ndevs++] = &a;
	f.devs[f.ndevs++] = &b;
	fx_start_workload(&f, 0); /* RAM dirtied as fast as one thread can */

	assert_int_equal(rmig_live_run(f.live), 0);
	if (f.unfair)
		fail_msg("%s", f.why);
	assert_int_equal(rmig_live_get_stats(f.live, &st), 0);
	assert_int_equal(st.rounds, 12);
	assert_int_equal(f.rounds_seen, 12);
	assert_int_equal(st.forced, 1);
	assert_int_equal(f.stops, 1);
	assert_int_equal(f.resumes, 0);
	assert_int_equal(f.stuck_iterations, 12);
	assert_true(f.stuck_complete);
	assert_int_equal(a.completed, 1);
	assert_int_equal(b.completed, 1);
	/* everything produced was queued by the end */
	assert_int_equal(a.queued, a.produced);
	assert_int_equal(b.queued, b.produced);
	assert_int_equal(st.round_bytes_count, 12);
	assert_true(st.pages_sent >= RAM_SIZE / PAGE);
	assert_int_equal(st.pages_unique, RAM_SIZE / PAGE);
	assert_int_equal(st.postcopy_pages, 0);
	vdev_src_free(&a);
	vdev_src_free(&b);
	fx_teardown(&f);
	h_alarm(0);
}

/* Legacy sync: one sync after RAM and one after each device that had data. */
static void test_sync_each_section(void **state)
{
	struct rmig_live_opts lo;
	struct rmig_live_stats st = { .size = sizeof(st) };
	struct rmig_stats ss = { .size = sizeof(ss) };
	struct vdev_src a = { .idstr = "dev-a", .seed = 1, .initial = 8u << 20 };
	struct vdev_src b = { .idstr = "dev-b", .seed = 2, .initial = 8u << 20 };
	struct fx f;

	(void)state;
	h_alarm(120);
	rmig_live_opts_init(&lo);
	lo.flags = RMIG_LIVE_SYNC_EACH_SECTION;
	lo.downtime_limit_ms = 0;
	lo.max_rounds = 3;
	lo.device_budget = 1u << 20;
	fx_setup(&f, &lo, false);
	assert_int_equal(vdev_register(f.live, &a), 0);
	assert_int_equal(vdev_register(f.live, &b), 0);
	/* no workload: stop_vcpus has nothing to stop */
	assert_int_equal(rmig_live_run(f.live), 0);
	assert_int_equal(rmig_live_get_stats(f.live, &st), 0);
	assert_int_equal(rmig_src_get_stats(f.src, &ss), 0);
	assert_int_equal(st.rounds, 3);
	/* 3 rounds x (RAM + 2 devices) + the switchover's sync */
	assert_int_equal(ss.sync_rounds, 3 * 3 + 1);
	vdev_src_free(&a);
	vdev_src_free(&b);
	fx_teardown(&f);
	h_alarm(0);
}

/* Out of rounds with the fail flag: -ETIME, the guest is never stopped. */
static void test_fail_on_max_rounds(void **state)
{
	struct rmig_live_opts lo;
	struct rmig_live_stats st = { .size = sizeof(st) };
	struct vdev_src a = { .idstr = "grower", .seed = 1, .initial = 1u << 20, .grow = 4u << 20 };
	struct fx f;

	(void)state;
	h_alarm(120);
	rmig_live_opts_init(&lo);
	lo.flags = RMIG_LIVE_FAIL_ON_MAX_ROUNDS;
	lo.downtime_limit_ms = 0; /* the device grows faster than it drains: never converges */
	lo.max_rounds = 3;
	lo.device_budget = 1u << 20;
	fx_setup(&f, &lo, false);
	assert_int_equal(vdev_register(f.live, &a), 0);
	assert_int_equal(rmig_live_run(f.live), -ETIME);
	assert_non_null(strstr(rmig_live_error(f.live), "did not converge in 3 rounds"));
	assert_int_equal(f.stops, 0);
	assert_int_equal(f.resumes, 0);
	assert_int_equal(rmig_live_get_stats(f.live, &st), 0);
	assert_int_equal(st.rounds, 3);
	assert_int_equal(st.forced, 0);
	/* the source handle was cancelled with it */
	assert_int_equal(rmig_src_sync(f.src, RMIG_SYNC_ALL), -ECANCELED);
	vdev_src_free(&a);
	fx_teardown(&f);
	h_alarm(0);
}

/* A failing device: the migration fails; after stop_vcpus, resume_vcpus is called. */
static int bad_complete(void *arg, struct rmig_src *src)
{
	(void)arg;
	(void)src;
	return -EIO;
}

static void test_failure_resumes(void **state)
{
	struct rmig_live_device bad = {
		.size = sizeof(bad), .idstr = "bad", .complete = bad_complete,
	};
	struct fx f;

	(void)state;
	h_alarm(120);
	fx_setup(&f, NULL, false);
	assert_int_equal(rmig_live_add_device(f.live, &bad), 0);
	fx_start_workload(&f, 50u << 20);
	assert_int_equal(rmig_live_run(f.live), -EIO);
	assert_non_null(strstr(rmig_live_error(f.live), "'bad' instance 0: complete"));
	assert_int_equal(f.stops, 1);
	assert_int_equal(f.resumes, 1);
	assert_int_equal(rmig_live_run(f.live), -EALREADY);
	fx_teardown(&f);
	h_alarm(0);
}

/* Devices that want an ack are not waited for where nobody can ack (null, file). */
static void test_ack_without_peer(void **state)
{
	struct rmig_live_stats st = { .size = sizeof(st) };
	struct vdev_src a = {
		.idstr = "vfio", .seed = 1, .initial = 1u << 20, .switchover_ack = true,
	};
	struct fx f;

	(void)state;
	h_alarm(120);
	fx_setup(&f, NULL, false);
	assert_int_equal(vdev_register(f.live, &a), 0);
	assert_int_equal(rmig_live_run(f.live), 0);
	assert_int_equal(rmig_live_get_stats(f.live, &st), 0);
	assert_int_equal(st.acks_required, 1);
	assert_int_equal(st.acks_received, 0);
	assert_int_equal(a.queued, a.produced);
	vdev_src_free(&a);
	fx_teardown(&f);
	h_alarm(0);
}

/*
 * The engine over "file:": rounds overwrite earlier copies of a page in the
 * file, the switchover's pass and the device's final state complete it, and
 * a load gives back the source's final RAM.
 */
static uint64_t loaded_dev_bytes;

static int count_dev(void *arg, const char *idstr, uint32_t instance, uint64_t seq,
		     const void *data, size_t len)
{
	(void)arg, (void)idstr, (void)instance, (void)seq, (void)data;
	loaded_dev_bytes += len;
	return 0;
}

static void test_file_transport(void **state)
{
	struct rmig_block_desc bd = { .name = "ram", .length = RAM_SIZE, .page_size = PAGE };
	struct rmig_live_hooks h = { .size = sizeof(h), .stop_vcpus = fx_stop };
	struct rmig_live_stats st = { .size = sizeof(st) };
	struct vdev_src a = { .idstr = "dev", .seed = 1, .initial = 3u << 20, .grow = 1u << 20 };
	struct rmig_live_opts lo;
	struct rmig_dst *dst;
	char path[] = "/tmp/rmig-live-XXXXXX", uri[64];
	uint8_t *back;
	struct fx f;
	int fd;

	(void)state;
	/* the file transport is always built: its absence is a failure, not a skip */
	assert_true(rmig_transport_available("file"));
	h_alarm(120);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	snprintf(uri, sizeof(uri), "file:%s", path);

	memset(&f, 0, sizeof(f));
	f.ram = h_map(RAM_SIZE);
	memset(f.ram, 0x5a, RAM_SIZE);
	bd.host = f.ram;
	assert_int_equal(rmig_src_create(NULL, &f.src), 0);
	assert_int_equal(rmig_src_add_block(f.src, &bd), 0);
	assert_int_equal(rmig_src_connect(f.src, uri), 0);
	rmig_live_opts_init(&lo);
	lo.downtime_limit_ms = 0;
	lo.max_rounds = 4;
	lo.device_budget = 1u << 20;
	h.arg = &f;
	assert_int_equal(rmig_live_create(f.src, &lo, &h, &f.live), 0);
	assert_int_equal(vdev_register(f.live, &a), 0);
	fx_start_workload(&f, 100u << 20);
	if (rmig_live_run(f.live))
		fail_msg("%s", rmig_live_error(f.live));
	assert_int_equal(rmig_live_get_stats(f.live, &st), 0);
	assert_int_equal(st.rounds, 4);

	back = h_map(RAM_SIZE);
	bd.host = back;
	assert_int_equal(rmig_dst_create(NULL, &dst), 0);
	assert_int_equal(rmig_dst_add_block(dst, &bd), 0);
	assert_int_equal(rmig_dst_set_device_state_cb(dst, count_dev, NULL), 0);
	assert_int_equal(rmig_dst_listen(dst, uri), 0);
	assert_int_equal(rmig_dst_accept(dst), 0);
	/* nobody to acknowledge to: accepted and ignored */
	assert_int_equal(rmig_dst_switchover_ack(dst, "dev", 0), 0);
	if (rmig_dst_finish(dst))
		fail_msg("%s", rmig_dst_error(dst));
	assert_memory_equal(back, f.ram, RAM_SIZE);
	assert_true(loaded_dev_bytes > a.produced); /* the stream plus record headers */
	rmig_dst_destroy(dst);
	h_unmap(back, RAM_SIZE);
	unlink(path);
	vdev_src_free(&a);
	fx_teardown(&f);
	h_alarm(0);
}

static int noop_stop(void *arg)
{
	(void)arg;
	return 0;
}

static int noop_complete(void *arg, struct rmig_src *src)
{
	(void)arg;
	(void)src;
	return 0;
}

static void test_api_checks(void **state)
{
	struct rmig_live_hooks h = { .size = sizeof(h), .stop_vcpus = noop_stop };
	struct rmig_live_hooks nohook = { .size = sizeof(h) };
	struct rmig_live_device d = { .size = sizeof(d), .idstr = "d", .complete = noop_complete };
	struct rmig_block_desc bd = { .name = "ram", .length = RAM_SIZE, .page_size = PAGE };
	struct rmig_live_opts lo;
	struct rmig_live *live = NULL;
	struct rmig_src *src;
	struct fx f;

	(void)state;
	/* not connected */
	bd.host = h_map(RAM_SIZE);
	assert_int_equal(rmig_src_create(NULL, &src), 0);
	assert_int_equal(rmig_src_add_block(src, &bd), 0);
	assert_int_equal(rmig_live_create(src, NULL, &h, &live), -ENOTCONN);
	rmig_src_destroy(src);
	h_unmap(bd.host, RAM_SIZE);

	fx_setup(&f, NULL, false);
	assert_int_equal(rmig_live_create(f.src, NULL, NULL, &live), -EINVAL);
	assert_int_equal(rmig_live_create(f.src, NULL, &nohook, &live), -EINVAL);
	assert_int_equal(rmig_live_create(NULL, NULL, &h, &live), -EINVAL);
	rmig_live_opts_init(&lo);
	lo.flags = 1u << 7;
	assert_int_equal(rmig_live_create(f.src, &lo, &h, &live), -EINVAL);
	rmig_live_opts_init(&lo);
	lo.max_rounds = 0;
	assert_int_equal(rmig_live_create(f.src, &lo, &h, &live), -EINVAL);
	rmig_live_opts_init(&lo);
	lo.reserved[3] = 1;
	assert_int_equal(rmig_live_create(f.src, &lo, &h, &live), -EINVAL);
	rmig_live_opts_init(&lo);
	lo.size = 4;
	assert_int_equal(rmig_live_create(f.src, &lo, &h, &live), -EINVAL);

	/* marks */
	assert_int_equal(rmig_live_mark_dirty(f.live, 0, 0), 0);
	assert_int_equal(rmig_live_mark_dirty(f.live, 0, RAM_SIZE - 1), 0);
	assert_int_equal(rmig_live_mark_dirty(f.live, 0, RAM_SIZE), -EINVAL);
	assert_int_equal(rmig_live_mark_dirty(f.live, 1, 0), -EINVAL);
	assert_int_equal(rmig_live_mark_dirty(NULL, 0, 0), -EINVAL);

	/* devices */
	assert_int_equal(rmig_live_add_device(f.live, &d), 0);
	assert_int_equal(rmig_live_add_device(f.live, &d), -EEXIST);
	d.instance = 1;
	assert_int_equal(rmig_live_add_device(f.live, &d), 0);
	d.instance = 2;
	d.complete = NULL;
	assert_int_equal(rmig_live_add_device(f.live, &d), -EINVAL);
	d.complete = noop_complete;
	d.idstr = "";
	assert_int_equal(rmig_live_add_device(f.live, &d), -EINVAL);
	d.idstr = "d";
	d.flags = 1u << 5;
	assert_int_equal(rmig_live_add_device(f.live, &d), -EINVAL);
	d.flags = 0;
	d.pending = stuck_pending; /* pending without iterate */
	assert_int_equal(rmig_live_add_device(f.live, &d), -EINVAL);
	d.pending = NULL;
	d.reserved[0] = &d;
	assert_int_equal(rmig_live_add_device(f.live, &d), -EINVAL);
	d.reserved[0] = NULL;

	assert_int_equal(rmig_live_run(f.live), 0);
	assert_int_equal(rmig_live_add_device(f.live, &d), -EBUSY);
	assert_int_equal(rmig_live_run(f.live), -EALREADY);
	assert_string_equal(rmig_live_error(f.live), "");
	fx_teardown(&f);
	rmig_live_destroy(NULL);
	rmig_live_cancel(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_decide),
		cmocka_unit_test(test_expected),
		cmocka_unit_test(test_api_checks),
		cmocka_unit_test(test_fairness),
		cmocka_unit_test(test_sync_each_section),
		cmocka_unit_test(test_fail_on_max_rounds),
		cmocka_unit_test(test_failure_resumes),
		cmocka_unit_test(test_ack_without_peer),
		cmocka_unit_test(test_file_transport),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
