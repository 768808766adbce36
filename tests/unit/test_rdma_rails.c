// SPDX-License-Identifier: MIT
/*
 * Multi-rail rdma (transport/rdma/rails.c) with the real engines on the fake
 * fabric (fake_fabric.h): "rdma:127.0.0.1,127.0.0.2:PORT" is two rails, each
 * with its own PD, registration and MR table on the fabric's one device.
 *
 *  - a migration over two and three rails verifies, every rail carries
 *    channels and bytes, the control connection is on rail 0;
 *  - bad input fails before any RAM moves, with a message naming the rail:
 *    a source with more rails than the destination, one with fewer, the
 *    rails listed in another order, an address that matches no device, a
 *    malformed list.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <numa.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <rmig/rmig.h>

#include "core/src/src_engine.h"
#include "core/xport.h"
#include "fake_fabric.h"
#include "helpers.h"
#include "transport/rdma/rails.h"

#define PAGE	 4096u
#define RAM_SIZE (1u << 20)
#define PORT	 "47001"

struct side {
	const char *uri;
	unsigned int channels;
	uint8_t *ram;
	int ret; /* first failing call's return, 0 if all succeeded */
	bool wait_out; /* destination: not cancelled when the source fails; it times out */
	char err[512];
	struct rmig_dst *dst;
	int nrails; /* destination: rmig_dst_get_rails() after finish */
	unsigned int rail_channels; /* and the channels its rails counted */
};

/* set on the fabric at the start of the next migrate() */
static struct ff_faults next_fault;
/* rounds of the next migrate(): round 1 sends every page, later ones a quarter */
static unsigned int nrounds = 1;

static bool rewritten(uint64_t p, unsigned int r)
{
	return r == 1 || (p * 7 + r) % 4 == 0;
}

static void fill(uint8_t *page, uint64_t p, unsigned int version)
{
	for (unsigned int i = 0; i < PAGE / 8; i++)
		((uint64_t *)page)[i] = h_mix64((p << 20) ^ ((uint64_t)version << 40) ^ i) | 1;
}

/* Destination RAM as the source wrote it up to round @r, or the first page that differs. */
static long ram_check(const uint8_t *ram, unsigned int r)
{
	uint8_t want[PAGE];

	for (uint64_t p = 0; p < RAM_SIZE / PAGE; p++) {
		unsigned int v = r;

		while (!rewritten(p, v))
			v--;
		fill(want, p, v);
		if (memcmp(want, ram + p * PAGE, PAGE))
			return (long)p;
	}
	return -1;
}

static void *dst_main(void *arg)
{
	struct side *d = arg;
	uint64_t round;

	d->ret = rmig_dst_accept(d->dst);
	for (unsigned int r = 1; !d->ret && r <= nrounds; r++) {
		long bad;

		d->ret = rmig_dst_wait_sync(d->dst, &round);
		/* the round's pages are all here once its SYNC counts, whichever rail they took */
		if (!d->ret && (bad = ram_check(d->ram, r)) >= 0) {
			snprintf(d->err, sizeof(d->err), "round %u: page %ld differs", r, bad);
			d->ret = -EIO;
			return NULL;
		}
	}
	if (!d->ret)
		d->ret = rmig_dst_finish(d->dst);
	if (!d->ret) {
		struct rmig_rail_stats r[RD_RAILS_MAX];

		d->nrails = rmig_dst_get_rails(d->dst, r, RD_RAILS_MAX);
		for (int k = 0; k < d->nrails && k < (int)RD_RAILS_MAX; k++)
			d->rail_channels += r[k].channels;
	}
	snprintf(d->err, sizeof(d->err), "%s", rmig_dst_error(d->dst));
	return NULL;
}

/*
 * Migrate RAM_SIZE bytes from @s->uri to @d->uri. Returns with both sides
 * done; @rails (may be NULL) gets the source's per-rail figures.
 */
static int migrate(struct side *s, struct side *d, struct rmig_rd_rail_info *rails,
		   unsigned int max)
{
	struct rmig_src *src;
	struct rmig_opts o;
	pthread_t t;
	int n = 0;

	ff_init();
	ff_fault_set(&next_fault);
	s->ram = h_map(RAM_SIZE);
	d->ram = h_map(RAM_SIZE);

	rmig_opts_init(&o);
	o.channels = d->channels;
	o.timeout_ms = 5000;
	o.pages_per_packet = 8; /* 32 batches: every channel gets some */
	assert_int_equal(rmig_dst_create(&o, &d->dst), 0);
	assert_int_equal(rmig_dst_add_block(d->dst, &(struct rmig_block_desc){"pc.ram", d->ram,
									 RAM_SIZE, PAGE}),
			 0);
	d->ret = rmig_dst_listen(d->dst, d->uri);
	if (d->ret) {
		snprintf(d->err, sizeof(d->err), "%s", rmig_dst_error(d->dst));
		rmig_dst_destroy(d->dst);
		return d->ret;
	}
	assert_int_equal(pthread_create(&t, NULL, dst_main, d), 0);

	o.channels = s->channels;
	assert_int_equal(rmig_src_create(&o, &src), 0);
	assert_int_equal(rmig_src_add_block(src, &(struct rmig_block_desc){"pc.ram", s->ram,
									 RAM_SIZE, PAGE}),
			 0);
	s->ret = rmig_src_connect(src, s->uri);
	for (unsigned int r = 1; !s->ret && r <= nrounds; r++) {
		for (uint64_t p = 0; !s->ret && p < RAM_SIZE / PAGE; p++) {
			if (!rewritten(p, r))
				continue;
			fill(s->ram + p * PAGE, p, r);
			s->ret = rmig_src_queue_page(src, 0, p * PAGE);
		}
		if (!s->ret)
			s->ret = rmig_src_sync(src, RMIG_SYNC_ALL);
	}
	if (!s->ret)
		s->ret = rmig_src_finish(src);
	snprintf(s->err, sizeof(s->err), "%s", rmig_src_error(src));
	if (s->ret && !d->wait_out)
		rmig_dst_cancel(d->dst);
	if (rails) {
		struct rmig_rail_stats pub[RD_RAILS_MAX + 1];

		n = rmig_rd_rails_info(src->xops, src->xp, rails, max);
		/* the library's own call says the same; a short array gets a prefix */
		assert_int_equal(rmig_src_get_rails(src, pub, RD_RAILS_MAX + 1), n);
		for (int k = 0; k < n; k++) {
			assert_string_equal(pub[k].device, rails[k].device);
			assert_string_equal(pub[k].addr, rails[k].addr);
			assert_int_equal(pub[k].channels, rails[k].channels);
			assert_true(pub[k].bytes >= rails[k].bytes);
		}
		assert_int_equal(rmig_src_get_rails(src, pub, 1), n);
		assert_int_equal(rmig_src_get_rails(src, NULL, 1), -EINVAL);
		assert_int_equal(rmig_src_get_rails(NULL, pub, 1), -EINVAL);
	}
	rmig_src_destroy(src);
	assert_int_equal(h_timedjoin(t, 30), 0);
	rmig_dst_destroy(d->dst);
	return n;
}

static void sides_free(struct side *s, struct side *d)
{
	h_unmap(s->ram, RAM_SIZE);
	if (d->ram)
		h_unmap(d->ram, RAM_SIZE);
}

static void run_ok(const char *uri, unsigned int nrails, unsigned int channels)
{
	struct side s = {.uri = uri, .channels = channels}, d = {.uri = uri, .channels = 8};
	struct rmig_rd_rail_info info[RD_RAILS_MAX];
	uint64_t total = 0;
	int n;

	n = migrate(&s, &d, info, RD_RAILS_MAX);
	if (s.ret || d.ret)
		fail_msg("%s: source %d (%s), destination %d (%s)", uri, s.ret, s.err, d.ret,
			 d.err);
	assert_int_equal(h_first_diff(s.ram, d.ram, RAM_SIZE), -1);
	assert_int_equal(n, (int)nrails);
	assert_int_equal(d.nrails, (int)nrails);
	assert_int_equal(d.rail_channels, channels);
	for (int k = 0; k < n; k++) {
		print_message("rail %d: %s on %s, %u channels, %llu bytes\n", k, info[k].addr,
			      info[k].device, info[k].channels, (unsigned long long)info[k].bytes);
		assert_string_equal(info[k].device, "fake0");
		/* channel c on rail c % n */
		assert_int_equal(info[k].channels, channels / nrails + (k < (int)(channels % nrails)));
		/* every rail that has channels carried RAM (the scheduler spreads 32 batches) */
		if (info[k].channels)
			assert_true(info[k].bytes >= 8 * PAGE);
		total += info[k].bytes;
	}
	assert_true(total >= RAM_SIZE);
	sides_free(&s, &d);
}

static void test_two_rails(void **state)
{
	run_ok("rdma:127.0.0.1,127.0.0.2:" PORT, 2, 4);
}

static void test_three_rails(void **state)
{
	run_ok("rdma:127.0.0.1,127.0.0.2,127.0.0.3:" PORT, 3, 5);
}

/*
 * NUMA figures: the fake device has no node (-1, nothing counted); with
 * RMIG_RDMA_NUMA=0,0 both rails say node 0, and on this host (whatever its
 * nodes) every channel thread and buffer is counted once it ran on node 0
 * (placement binds them there when the host has several nodes).
 */
static void test_numa_figures(void **state)
{
	const char *uri = "rdma:127.0.0.1,127.0.0.2:" PORT;
	struct side s = {.uri = uri, .channels = 4}, d = {.uri = uri, .channels = 8};
	struct rmig_rd_rail_info info[RD_RAILS_MAX];
	int n;

	n = migrate(&s, &d, info, RD_RAILS_MAX);
	assert_int_equal(s.ret | d.ret, 0);
	for (int k = 0; k < n; k++) {
		assert_int_equal(info[k].numa_node, -1);
		assert_int_equal(info[k].threads_on_node, 0);
	}
	sides_free(&s, &d);

	memset(&s, 0, sizeof(s));
	memset(&d, 0, sizeof(d));
	s.uri = d.uri = uri;
	s.channels = 4;
	d.channels = 8;
	setenv("RMIG_RDMA_NUMA", "0,0", 1);
	n = migrate(&s, &d, info, RD_RAILS_MAX);
	unsetenv("RMIG_RDMA_NUMA");
	assert_int_equal(s.ret | d.ret, 0);
	assert_int_equal(n, 2);
	for (int k = 0; k < n; k++) {
		print_message("rail %d: node %d, %u channels, %u threads and %u buffers on it\n", k,
			      info[k].numa_node, info[k].channels, info[k].threads_on_node,
			      info[k].buffers_on_node);
		assert_int_equal(info[k].numa_node, 0);
		if (numa_num_configured_nodes() == 1) {
			assert_int_equal(info[k].threads_on_node, info[k].channels);
			assert_int_equal(info[k].buffers_on_node, info[k].channels);
		}
	}
	sides_free(&s, &d);
}

/*
 * A channel's responder QP goes to error mid-transfer (the fabric's
 * peer_error_at): that channel moves to the other rail, replays what may not
 * have landed, and the migration still verifies.
 */
static void test_failover(void **state)
{
	const char *uri = "rdma:127.0.0.1,127.0.0.2:" PORT;
	struct side s = {.uri = uri, .channels = 4}, d = {.uri = uri, .channels = 8};
	struct rmig_rd_rail_info info[RD_RAILS_MAX];
	unsigned int chans = 0;
	int n;

	/* 4 rounds of 32 + 3 x 8 WRITEs or so: faults in round 1 and in later rounds */
	nrounds = 4;
	for (uint64_t at = 3; at <= 59; at += 8) {
		next_fault = (struct ff_faults){.peer_error_at = at};
		n = migrate(&s, &d, info, RD_RAILS_MAX);
		next_fault = (struct ff_faults){0};
		print_message("fault at WRITE %llu: source %d (%s), destination %d (%s)\n",
			      (unsigned long long)at, s.ret, s.err, d.ret, d.err);
		if (s.ret || d.ret)
			fail_msg("source %d (%s), destination %d (%s)", s.ret, s.err, d.ret, d.err);
		assert_int_equal(h_first_diff(s.ram, d.ram, RAM_SIZE), -1);
		assert_int_equal(n, 2);
		chans = 0;
		for (int k = 0; k < n; k++) {
			print_message("rail %d: %u channels, %llu bytes\n", k, info[k].channels,
				      (unsigned long long)info[k].bytes);
			chans += info[k].channels;
		}
		/* no channel lost, and one moved: the rails no longer hold 2 + 2 */
		assert_int_equal(chans, 4);
		assert_int_not_equal(info[0].channels, 2);
		assert_int_equal(d.rail_channels, 4);
		sides_free(&s, &d);
		memset(&s, 0, sizeof(s));
		memset(&d, 0, sizeof(d));
		s.uri = d.uri = uri;
		s.channels = 4;
		d.channels = 8;
	}
	nrounds = 1;
}

/*
 * The source fails with @want_src in its message; with @want_dst the
 * destination too, on its own (it keeps listening after a bad connection
 * and times out naming the last one).
 */
static void run_bad(const char *src_uri, const char *dst_uri, const char *want_src,
		    const char *want_dst)
{
	struct side s = {.uri = src_uri, .channels = 2},
		    d = {.uri = dst_uri, .channels = 8, .wait_out = want_dst != NULL};

	migrate(&s, &d, NULL, 0);
	print_message("source: %d %s\ndestination: %d %s\n", s.ret, s.err, d.ret, d.err);
	assert_int_not_equal(s.ret, 0);
	if (!strstr(s.err, want_src))
		fail_msg("source error '%s' does not say '%s'", s.err, want_src);
	if (want_dst) {
		assert_int_not_equal(d.ret, 0);
		if (!strstr(d.err, want_dst))
			fail_msg("destination error '%s' does not say '%s'", d.err, want_dst);
	}
	/* nothing moved: destination RAM untouched */
	for (size_t i = 0; i < RAM_SIZE; i++)
		if (d.ram[i])
			fail_msg("destination byte %zu written", i);
	sides_free(&s, &d);
}

static void test_source_has_more_rails(void **state)
{
	/* nothing listens on the second rail: refused, naming it */
	run_bad("rdma:127.0.0.1,127.0.0.2:" PORT, "rdma:127.0.0.1:" PORT,
		"rail 1 (127.0.0.2:" PORT ")", NULL);
}

static void test_source_has_fewer_rails(void **state)
{
	run_bad("rdma:127.0.0.1:" PORT, "rdma:127.0.0.1,127.0.0.2:" PORT,
		"this destination over 2 rails", "this destination over 2 rails");
}

static void test_rails_in_another_order(void **state)
{
	run_bad("rdma:127.0.0.2,127.0.0.1:" PORT, "rdma:127.0.0.1,127.0.0.2:" PORT,
		"the source's rail 1 arrived on this destination's rail 0", "rail 0");
}

static void test_source_rail_count_differs(void **state)
{
	run_bad("rdma:127.0.0.1,127.0.0.2,127.0.0.3:" PORT, "rdma:127.0.0.1,127.0.0.2:" PORT,
		"rail 2 (127.0.0.3:" PORT ")", NULL);
}

static void test_rail_without_device(void **state)
{
	/* the fabric has no device for 10.x: the source names the rail */
	run_bad("rdma:127.0.0.1,10.255.0.1:" PORT, "rdma:127.0.0.1,127.0.0.2:" PORT,
		"rail 1 (10.255.0.1:" PORT "): no RDMA device", NULL);
}

static void test_bad_lists(void **state)
{
	static const char *const bad[] = {
	    "rdma:127.0.0.1,,127.0.0.2:" PORT, "rdma:127.0.0.1,127.0.0.2:0",
	    "rdma:127.0.0.1,127.0.0.2:", "rdma:127.0.0.1,127.0.0.2:x1",
	    "rdma:1,2,3,4,5,6,7,8,9:" PORT, "rdma:0.0.0.0,127.0.0.2:" PORT,
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct side s = {.uri = bad[i]}, d = {.uri = bad[i], .channels = 2};
		int ret = migrate(&s, &d, NULL, 0);

		print_message("%s: %d %s\n", bad[i], d.ret, d.err);
		(void)ret;
		assert_int_not_equal(d.ret, 0);
		assert_true(strstr(d.err, "rail") != NULL);
		h_unmap(s.ram, RAM_SIZE);
		h_unmap(d.ram, RAM_SIZE);
	}
}

static const struct rmig_verbs_ops *saved_verbs;

static int group_setup(void **state)
{
	struct rlimit rl;

	if (!getrlimit(RLIMIT_MEMLOCK, &rl) && rl.rlim_cur != RLIM_INFINITY) {
		rl.rlim_cur = rl.rlim_max = RLIM_INFINITY;
		setrlimit(RLIMIT_MEMLOCK, &rl);
	}
	saved_verbs = rmig_rdma_verbs;
	rmig_rdma_verbs = &ff_verbs;
	return 0;
}

static int group_teardown(void **state)
{
	rmig_rdma_verbs = saved_verbs;
	ff_fini();
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_two_rails),
		cmocka_unit_test(test_three_rails),
		cmocka_unit_test(test_failover),
		cmocka_unit_test(test_numa_figures),
		cmocka_unit_test(test_source_has_more_rails),
		cmocka_unit_test(test_source_has_fewer_rails),
		cmocka_unit_test(test_rails_in_another_order),
		cmocka_unit_test(test_source_rail_count_differs),
		cmocka_unit_test(test_rail_without_device),
		cmocka_unit_test(test_bad_lists),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
