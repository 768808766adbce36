// SPDX-License-Identifier: MIT
/*
 * Live migration over loopback TCP with a workload dirtying RAM while the
 * rounds run: the destination ends up equal to the source's final state;
 * out of rounds the switchover is forced, or fails cleanly when asked to;
 * a device that wants a switchover ack is acknowledged by the destination
 * and the switchover waits for it, even while RAM is dirtied too fast to
 * ever converge (iterable devices not serialized, docs/design.md); legacy per-section syncs reach the destination.
 *
 * No timing assertions: the outcomes are made deterministic with a downtime
 * limit of 0 (only "nothing left" converges) and a gate device that holds
 * round 1 until the workload has rewritten pages already sent.
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
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "rmig/live.h"

#include "helpers.h"
#include "vdev.h"
#include "workload.h"

#define PAGE 4096u
#define TIMEOUT_MS 20000
#define MAX_DEVS 4

/* ---- the destination, on its own thread ------------------------------------- */

struct dst_side {
	struct rmig_dst *dst;
	uint8_t *ram;
	size_t size;
	int port;
	pthread_t thread;
	struct vdev_dst devs[MAX_DEVS];
	unsigned int ndevs;
	uint64_t foreign;
	int accept_ret, finish_ret;
	char error[512];
	struct rmig_stats stats;
};

static int dst_dev_cb(void *arg, const char *idstr, uint32_t instance, uint64_t seq,
		      const void *data, size_t len)
{
	struct dst_side *ds = arg;

	(void)seq;
	for (unsigned int i = 0; i < ds->ndevs; i++) {
		int r = vdev_dst_feed(&ds->devs[i], idstr, instance, data, len);

		if (r)
			return r < 0 ? -1 : 0;
	}
	ds->foreign++;
	return 0;
}

static void *dst_main(void *arg)
{
	struct dst_side *ds = arg;

	ds->accept_ret = rmig_dst_accept(ds->dst);
	ds->finish_ret = ds->accept_ret ? ds->accept_ret : rmig_dst_finish(ds->dst);
	snprintf(ds->error, sizeof(ds->error), "%s", rmig_dst_error(ds->dst));
	ds->stats.size = sizeof(ds->stats);
	rmig_dst_get_stats(ds->dst, &ds->stats);
	return NULL;
}

static void dst_start(struct dst_side *ds, size_t size)
{
	struct rmig_block_desc bd = { .name = "pc.ram", .length = size, .page_size = PAGE };
	struct rmig_opts o;

	ds->size = size;
	ds->ram = h_map(size);
	bd.host = ds->ram;
	rmig_opts_init(&o);
	o.timeout_ms = TIMEOUT_MS;
	assert_int_equal(rmig_dst_create(&o, &ds->dst), 0);
	assert_int_equal(rmig_dst_add_block(ds->dst, &bd), 0);
	assert_int_equal(rmig_dst_set_device_state_cb(ds->dst, dst_dev_cb, ds), 0);
	assert_int_equal(rmig_dst_listen(ds->dst, "tcp:127.0.0.1:0"), 0);
	ds->port = rmig_dst_port(ds->dst);
	assert_true(ds->port > 0);
}

static void dst_run(struct dst_side *ds)
{
	assert_int_equal(pthread_create(&ds->thread, NULL, dst_main, ds), 0);
}

static void dst_join(struct dst_side *ds)
{
	if (h_timedjoin(ds->thread, TIMEOUT_MS / 1000 * 3))
		fail_msg("the destination thread hung");
}

static void dst_free(struct dst_side *ds)
{
	rmig_dst_destroy(ds->dst);
	for (unsigned int i = 0; i < ds->ndevs; i++)
		vdev_dst_destroy(&ds->devs[i]);
	h_unmap(ds->ram, ds->size);
}

/* ---- the source: RAM, workload, engine -------------------------------------- */

struct src_side {
	uint8_t *ram;
	size_t size;
	struct rmig_src *src;
	struct rmig_live *live;
	struct workload *wl;
	struct wl_cfg wc;
	unsigned int stops, resumes;
	uint32_t acks_at_stop;
	uint32_t rounds_at_stop;
	uint32_t stop_round_hook; /* the guest goes idle after this round; 0: never */
	/* the gate: holds round 1 until the workload rewrote this many pages */
	uint64_t gate_writes;
	bool gate_passed;
};

static int src_stop(void *arg)
{
	struct src_side *s = arg;
	struct rmig_live_stats st = { .size = sizeof(st) };

	s->stops++;
	/* what the engine knew when it decided: the ack must already be in */
	rmig_live_get_stats(s->live, &st);
	s->acks_at_stop = st.acks_received;
	s->rounds_at_stop = st.rounds;
	return wl_stop(s->wl);
}

static void src_resume(void *arg)
{
	((struct src_side *)arg)->resumes++;
}

static void src_round(void *arg, const struct rmig_live_round *r)
{
	struct src_side *s = arg;

	if (s->stop_round_hook && r->round == s->stop_round_hook)
		wl_stop(s->wl); /* the guest goes idle; the next round converges */
}

/* pending() says "one byte" until iterate() has passed the gate once. */
static uint64_t gate_pending(void *arg)
{
	return ((struct src_side *)arg)->gate_passed ? 0 : 1;
}

/*
 * Round 1's device section: every page was collected at the start of this
 * round, so pages the workload writes now were sent already and must be
 * sent again. Waiting here makes "rounds > 1" and "pages resent > 0" certain.
 */
static int64_t gate_iterate(void *arg, struct rmig_src *src, uint64_t max)
{
	struct src_side *s = arg;
	uint64_t want = wl_writes(s->wl) + s->gate_writes;

	(void)src;
	(void)max;
	while (wl_writes(s->wl) < want)
		usleep(200);
	s->gate_passed = true;
	return 0;
}

static int gate_complete(void *arg, struct rmig_src *src)
{
	(void)arg;
	(void)src;
	return 0;
}

static void src_start(struct src_side *s, struct dst_side *ds, const struct rmig_live_opts *lo,
		      uint64_t rate)
{
	struct rmig_block_desc bd = { .name = "pc.ram", .length = ds->size, .page_size = PAGE };
	struct rmig_live_hooks h = {
		.size = sizeof(h), .arg = s, .stop_vcpus = src_stop, .resume_vcpus = src_resume,
		.round_done = src_round,
	};
	struct rmig_opts o;
	char uri[64];

	s->size = ds->size;
	s->ram = h_map(s->size);
	h_fill_random(s->ram, s->size, 42);
	bd.host = s->ram;
	rmig_opts_init(&o);
	o.channels = 2;
	o.timeout_ms = TIMEOUT_MS;
	assert_int_equal(rmig_src_create(&o, &s->src), 0);
	assert_int_equal(rmig_src_add_block(s->src, &bd), 0);
	snprintf(uri, sizeof(uri), "tcp:127.0.0.1:%d", ds->port);
	assert_int_equal(rmig_src_connect(s->src, uri), 0);
	assert_int_equal(rmig_live_create(s->src, lo, &h, &s->live), 0);
	s->wc = (struct wl_cfg){
		.base = s->ram, .size = s->size, .page_size = PAGE, .block = 0, .rate = rate,
		.pattern = WL_RANDOM, .threads = 1, .seed = 3,
	};
}

static void src_add_gate(struct src_side *s, uint64_t writes)
{
	struct rmig_live_device g = {
		.size = sizeof(g), .idstr = "gate", .arg = s, .pending = gate_pending,
		.iterate = gate_iterate, .complete = gate_complete,
	};

	s->gate_writes = writes;
	assert_int_equal(rmig_live_add_device(s->live, &g), 0);
}

static void src_go(struct src_side *s)
{
	assert_int_equal(wl_start(&s->wc, s->live, &s->wl), 0);
}

static void src_free(struct src_side *s)
{
	wl_destroy(s->wl);
	rmig_live_destroy(s->live);
	rmig_src_destroy(s->src);
	h_unmap(s->ram, s->size);
}

/* RMIG_TEST_VERBOSE=1: what the engine did, for whoever debugs a failure. */
static void show(const char *name, const struct rmig_live_stats *st)
{
	if (!getenv("RMIG_TEST_VERBOSE"))
		return;
	fprintf(stderr,
		"%s: rounds %u forced %u total %.1f ms downtime %.2f ms expected %.2f ms "
		"sent %llu unique %llu resent %llu dirty %.1f MB/s acks %u/%u\n",
		name, st->rounds, st->forced, (double)st->total_ns / 1e6,
		(double)st->downtime_ns / 1e6,
		st->expected_downtime_ns == UINT64_MAX ? -1.0
						       : (double)st->expected_downtime_ns / 1e6,
		(unsigned long long)st->pages_sent, (unsigned long long)st->pages_unique,
		(unsigned long long)st->pages_resent, (double)st->dirty_rate_bps / 1e6,
		st->acks_received, st->acks_required);
}

static void assert_ram_equal(const struct src_side *s, const struct dst_side *ds)
{
	for (size_t off = 0; off < s->size; off += PAGE)
		if (memcmp(s->ram + off, ds->ram + off, PAGE))
			fail_msg("destination page %zu differs from the source's final state",
				 off / PAGE);
}

static void run_ok(struct src_side *s, struct dst_side *ds)
{
	int ret = rmig_live_run(s->live);

	if (ret)
		fail_msg("rmig_live_run: %d: %s", ret, rmig_live_error(s->live));
	dst_join(ds);
	if (ds->finish_ret)
		fail_msg("destination: %d: %s", ds->finish_ret, ds->error);
}

/* ---- tests ------------------------------------------------------------------ */

/*
 * The guest dirties RAM through rounds 1 and 2, then goes idle: with a
 * downtime limit of 0 the engine switches over (not forced) once nothing is
 * left, and the destination holds the source's final RAM.
 */
static void test_converges(void **state)
{
	struct rmig_live_stats st = { .size = sizeof(st) };
	struct rmig_live_opts lo;
	struct dst_side ds = { 0 };
	struct src_side s = { 0 };

	(void)state;
	h_alarm(240);
	dst_start(&ds, 64u << 20);
	dst_run(&ds);
	rmig_live_opts_init(&lo);
	lo.downtime_limit_ms = 0;
	lo.max_rounds = 30;
	src_start(&s, &ds, &lo, 100u << 20);
	src_add_gate(&s, 256);
	s.stop_round_hook = 2;
	src_go(&s);
	run_ok(&s, &ds);

	assert_int_equal(rmig_live_get_stats(s.live, &st), 0);
	show("converges", &st);
	assert_true(st.rounds > 1);
	assert_true(st.rounds <= 3);
	assert_int_equal(st.forced, 0);
	assert_true(st.pages_resent > 0);
	assert_true(st.pages_sent > st.pages_unique);
	assert_int_equal(st.pages_unique, (64u << 20) / PAGE);
	assert_true(st.downtime_ns > 0 && st.downtime_ns <= st.total_ns);
	assert_int_equal(st.round_bytes_count, st.rounds);
	assert_true(st.round_bytes[0] >= (64u << 20));
	assert_true(st.dirty_rate_bps > 0);
	assert_int_equal(st.postcopy_pages, 0);
	assert_int_equal(s.stops, 1);
	assert_int_equal(s.resumes, 0);
	assert_true(wl_writes(s.wl) > 256);
	assert_ram_equal(&s, &ds);
	/* the source's rounds and the destination's agree: rounds + the switchover's sync */
	assert_int_equal(ds.stats.sync_rounds, st.rounds + 1);
	src_free(&s);
	dst_free(&ds);
	h_alarm(0);
}

/* A device that grows faster than it drains: the migration cannot converge. */
static void max_rounds_case(bool fail_flag)
{
	struct rmig_live_stats st = { .size = sizeof(st) };
	struct rmig_live_opts lo;
	struct dst_side ds = { 0 };
	struct src_side s = { 0 };
	struct vdev_src v = { .idstr = "grower", .instance = 3, .seed = 9, .initial = 1u << 20,
			      .grow = 2u << 20, .final_extra = 12345 };
	int ret;

	h_alarm(240);
	dst_start(&ds, 32u << 20);
	vdev_dst_init(&ds.devs[ds.ndevs++], "grower", 3, 9, ds.dst, false);
	dst_run(&ds);
	rmig_live_opts_init(&lo);
	lo.downtime_limit_ms = 0;
	lo.max_rounds = 4;
	lo.device_budget = 1u << 20;
	if (fail_flag)
		lo.flags |= RMIG_LIVE_FAIL_ON_MAX_ROUNDS;
	src_start(&s, &ds, &lo, 200u << 20);
	assert_int_equal(vdev_register(s.live, &v), 0);
	src_go(&s);

	ret = rmig_live_run(s.live);
	assert_int_equal(rmig_live_get_stats(s.live, &st), 0);
	show(fail_flag ? "max_rounds_fail" : "max_rounds_force", &st);
	assert_int_equal(st.rounds, 4);
	if (fail_flag) {
		assert_int_equal(ret, -ETIME);
		assert_non_null(strstr(rmig_live_error(s.live), "did not converge in 4 rounds"));
		assert_non_null(strstr(rmig_live_error(s.live), "limit of 0 ms"));
		assert_int_equal(s.stops, 0); /* the guest never stopped */
		assert_int_equal(st.forced, 0);
		dst_join(&ds);
		assert_int_equal(ds.accept_ret, 0);
		assert_true(ds.finish_ret < 0); /* the destination does not pretend */
		/* and it names the source's reason, which the source sent before it went */
		if (!strstr(ds.error, "source aborted") || !strstr(ds.error, "did not converge"))
			fail_msg("destination error without the source's reason: %s", ds.error);
		assert_false(ds.devs[0].complete);
	} else {
		if (ret)
			fail_msg("rmig_live_run: %d: %s", ret, rmig_live_error(s.live));
		assert_int_equal(st.forced, 1);
		assert_int_equal(s.stops, 1);
		dst_join(&ds);
		if (ds.finish_ret)
			fail_msg("destination: %s", ds.error);
		assert_ram_equal(&s, &ds);
		if (ds.devs[0].error[0])
			fail_msg("device: %s", ds.devs[0].error);
		assert_true(ds.devs[0].complete);
		assert_int_equal(ds.devs[0].received, v.produced);
		assert_int_equal(v.produced, (1u << 20) + 4 * (2u << 20) + 12345);
	}
	vdev_src_free(&v);
	src_free(&s);
	dst_free(&ds);
	h_alarm(0);
}

static void test_max_rounds_force(void **state)
{
	(void)state;
	max_rounds_case(false);
}

static void test_max_rounds_fail(void **state)
{
	(void)state;
	max_rounds_case(true);
}

/*
 * Switchover-ack with RAM dirtied too fast to converge (limit 0): every
 * round still gives the device its turn, its initial data arrives, the
 * destination acks, and the switchover (forced here, out of rounds) comes
 * only after the ack. @limit_ms > 0 instead lets RAM converge at once: the
 * engine then waits for nothing but the ack.
 */
static void ack_case(uint32_t limit_ms, uint32_t max_rounds)
{
	struct rmig_live_stats st = { .size = sizeof(st) };
	struct rmig_live_opts lo;
	struct dst_side ds = { 0 };
	struct src_side s = { 0 };
	struct vdev_src vfio = { .idstr = "0000:00:05.0/vfio", .seed = 5, .initial = 6u << 20,
				 .grow = 64u << 10, .final_extra = 1u << 20,
				 .switchover_ack = true };
	struct vdev_src other = { .idstr = "virtio-net", .seed = 6, .initial = 3u << 20,
				  .grow = 256u << 10 };
	int ret;

	h_alarm(240);
	dst_start(&ds, 32u << 20);
	vdev_dst_init(&ds.devs[ds.ndevs++], vfio.idstr, 0, 5, ds.dst, true);
	vdev_dst_init(&ds.devs[ds.ndevs++], other.idstr, 0, 6, ds.dst, false);
	dst_run(&ds);
	rmig_live_opts_init(&lo);
	lo.downtime_limit_ms = limit_ms;
	lo.max_rounds = max_rounds;
	lo.device_budget = 512u << 10; /* 12 rounds for the initial data at least */
	src_start(&s, &ds, &lo, 400u << 20);
	/* the other device first: the vfio one still gets its turn every round */
	assert_int_equal(vdev_register(s.live, &other), 0);
	assert_int_equal(vdev_register(s.live, &vfio), 0);
	src_go(&s);

	ret = rmig_live_run(s.live);
	if (ret)
		fail_msg("rmig_live_run: %d: %s", ret, rmig_live_error(s.live));
	dst_join(&ds);
	if (ds.finish_ret)
		fail_msg("destination: %s", ds.error);
	assert_int_equal(rmig_live_get_stats(s.live, &st), 0);
	show(limit_ms ? "ack_waited_for" : "ack_fast_ram", &st);
	assert_int_equal(st.acks_required, 1);
	assert_int_equal(st.acks_received, 1);
	assert_int_equal(s.acks_at_stop, 1); /* ack in before stop_vcpus was called */
	assert_true(st.rounds >= 12);
	assert_true(ds.devs[0].acked);
	for (unsigned int i = 0; i < 2; i++) {
		if (ds.devs[i].error[0])
			fail_msg("device %s: %s", ds.devs[i].idstr, ds.devs[i].error);
		assert_true(ds.devs[i].complete);
	}
	assert_int_equal(ds.devs[0].received, vfio.produced);
	assert_int_equal(ds.devs[1].received, other.produced);
	assert_int_equal(vfio.iterations, st.rounds);
	assert_int_equal(other.iterations, st.rounds);
	assert_ram_equal(&s, &ds);
	if (!limit_ms)
		assert_int_equal(st.forced, 1);
	vdev_src_free(&vfio);
	vdev_src_free(&other);
	src_free(&s);
	dst_free(&ds);
	h_alarm(0);
}

static void test_ack_fast_ram(void **state)
{
	(void)state;
	ack_case(0, 40);
}

static void test_ack_waited_for(void **state)
{
	(void)state;
	ack_case(60000, 1000);
}

/*
 * A destination that never acknowledges: out of rounds, the forced
 * switchover waits ack_wait_ms for it (rounds going on), then the migration
 * fails with the device named, the guest never stopped.
 */
static void test_ack_missing(void **state)
{
	struct rmig_live_stats st = { .size = sizeof(st) };
	struct rmig_live_opts lo;
	struct dst_side ds = { 0 };
	struct src_side s = { 0 };
	struct vdev_src v = { .idstr = "vfio", .instance = 2, .seed = 4, .initial = 1u << 20,
			      .grow = 1u << 20, .switchover_ack = true };
	int ret;

	(void)state;
	h_alarm(240);
	dst_start(&ds, 16u << 20);
	vdev_dst_init(&ds.devs[ds.ndevs++], "vfio", 2, 4, ds.dst, false /* never acks */);
	dst_run(&ds);
	rmig_live_opts_init(&lo);
	lo.downtime_limit_ms = 1000;
	lo.max_rounds = 3;
	lo.ack_wait_ms = 200;
	src_start(&s, &ds, &lo, 50u << 20);
	assert_int_equal(vdev_register(s.live, &v), 0);
	src_go(&s);
	ret = rmig_live_run(s.live);
	assert_int_equal(ret, -ETIME);
	if (getenv("RMIG_TEST_VERBOSE"))
		fprintf(stderr, "ack_missing: %s\n", rmig_live_error(s.live));
	assert_non_null(strstr(rmig_live_error(s.live), "no switchover ack"));
	assert_non_null(strstr(rmig_live_error(s.live), "'vfio' instance 2"));
	assert_int_equal(rmig_live_get_stats(s.live, &st), 0);
	assert_true(st.rounds >= 3);
	assert_int_equal(st.acks_received, 0);
	assert_int_equal(s.stops, 0);
	dst_join(&ds);
	assert_true(ds.finish_ret < 0);
	vdev_src_free(&v);
	src_free(&s);
	dst_free(&ds);
	h_alarm(0);
}

/*
 * The destination refuses a device's data (wrong seed: the first record
 * does not verify) and aborts: the engine stops with the destination's
 * reason, before any switchover, and the guest is never stopped.
 */
static void test_destination_aborts(void **state)
{
	struct rmig_live_opts lo;
	struct dst_side ds = { 0 };
	struct src_side s = { 0 };
	struct vdev_src v = { .idstr = "dev", .seed = 1, .initial = 4u << 20, .grow = 1u << 20 };
	int ret;

	(void)state;
	h_alarm(240);
	dst_start(&ds, 16u << 20);
	vdev_dst_init(&ds.devs[ds.ndevs++], "dev", 0, 2 /* not the source's seed */, ds.dst, false);
	dst_run(&ds);
	rmig_live_opts_init(&lo);
	lo.downtime_limit_ms = 0; /* the device always has more: no switchover */
	lo.max_rounds = 100000;
	lo.device_budget = 1u << 20;
	src_start(&s, &ds, &lo, 50u << 20);
	assert_int_equal(vdev_register(s.live, &v), 0);
	src_go(&s);
	ret = rmig_live_run(s.live);
	assert_true(ret < 0);
	if (getenv("RMIG_TEST_VERBOSE"))
		fprintf(stderr, "destination_aborts: %s\n", rmig_live_error(s.live));
	if (!strstr(rmig_live_error(s.live), "destination aborted"))
		fail_msg("error does not give the destination's reason: %s",
			 rmig_live_error(s.live));
	assert_int_equal(s.stops, 0);
	assert_int_equal(s.resumes, 0);
	dst_join(&ds);
	assert_true(ds.finish_ret < 0);
	assert_non_null(strstr(ds.devs[0].error, "differ"));
	vdev_src_free(&v);
	src_free(&s);
	dst_free(&ds);
	h_alarm(0);
}

/* Legacy per-section sync over TCP: the destination sees every one of them. */
static void test_legacy_sync(void **state)
{
	struct rmig_live_stats st = { .size = sizeof(st) };
	struct rmig_live_opts lo;
	struct dst_side ds = { 0 };
	struct src_side s = { 0 };
	struct vdev_src v = { .idstr = "dev", .seed = 1, .initial = 4u << 20, .grow = 256u << 10 };

	(void)state;
	h_alarm(240);
	dst_start(&ds, 32u << 20);
	vdev_dst_init(&ds.devs[ds.ndevs++], "dev", 0, 1, ds.dst, false);
	dst_run(&ds);
	rmig_live_opts_init(&lo);
	lo.flags = RMIG_LIVE_SYNC_EACH_SECTION;
	lo.downtime_limit_ms = 0;
	lo.max_rounds = 5;
	lo.device_budget = 1u << 20;
	src_start(&s, &ds, &lo, 50u << 20);
	assert_int_equal(vdev_register(s.live, &v), 0);
	src_go(&s);
	run_ok(&s, &ds);
	assert_int_equal(rmig_live_get_stats(s.live, &st), 0);
	show("legacy_sync", &st);
	assert_int_equal(st.rounds, 5); /* the device always has more: forced */
	assert_int_equal(st.forced, 1);
	/* RAM and the device in each of 5 rounds, and the switchover's */
	assert_int_equal(ds.stats.sync_rounds, 5 * 2 + 1);
	assert_true(ds.devs[0].complete);
	assert_ram_equal(&s, &ds);
	vdev_src_free(&v);
	src_free(&s);
	dst_free(&ds);
	h_alarm(0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_converges),
		cmocka_unit_test(test_max_rounds_force),
		cmocka_unit_test(test_max_rounds_fail),
		cmocka_unit_test(test_ack_fast_ram),
		cmocka_unit_test(test_ack_waited_for),
		cmocka_unit_test(test_legacy_sync),
		cmocka_unit_test(test_destination_aborts),
		cmocka_unit_test(test_ack_missing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
