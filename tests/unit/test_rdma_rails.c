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
 *    rails listed in another order, an address that matches no device (on
 *    either side), a malformed list; a rail whose two ends are on different
 *    fabrics (the fake fabric has one device: a hook on the rails' fabric
 *    descriptions puts them elsewhere), two rails of one side on one port,
 *    a source that gave up half-way followed by one that gets through.
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
#include "transport/rdma/rails_fabric.h"

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

/* QPs the connecting side (the source) created in the last migration. */
static unsigned int source_qps(void)
{
	struct ff_stats st;
	unsigned int n = 0;

	ff_stats_get(&st);
	for (unsigned int q = 0; q < st.nqps && q < FF_MAX_QPS; q++)
		n += st.qp[q].used && st.qp[q].active;
	return n;
}

/* Each page of the source's RAM as some round wrote it: rmig only read it. */
static void source_intact(const uint8_t *ram)
{
	uint8_t want[PAGE];

	for (uint64_t p = 0; p < RAM_SIZE / PAGE; p++) {
		bool ok = false;

		for (unsigned int v = 1; v <= 4 && !ok; v++) {
			fill(want, p, v);
			ok = !memcmp(want, ram + p * PAGE, PAGE);
		}
		if (!ok)
			fail_msg("source page %llu changed", (unsigned long long)p);
	}
}

/*
 * Rail 0's control connection dies (the source's third QP: the two rail
 * hellos, last rail first, then the control conn), at WRITEs spread over
 * four rounds and at the last one, so that DONE and the verdict go over
 * the conn that took it over; once with a channel's QP dying a few WRITEs
 * later too. The control connection moves to rail 1 (one more source QP),
 * every round verifies at its SYNC, and so does the whole migration.
 */
static void test_control_failover(void **state)
{
	const char *uri = "rdma:127.0.0.1,127.0.0.2:" PORT;
	struct side s = {.uri = uri, .channels = 4}, d = {.uri = uri, .channels = 8};
	uint64_t total, at[6];
	unsigned int base;

	nrounds = 4;
	next_fault = (struct ff_faults){0};
	migrate(&s, &d, NULL, 0);
	assert_int_equal(s.ret | d.ret, 0);
	total = ff_writes();
	base = source_qps();
	sides_free(&s, &d);
	print_message("%llu WRITEs, %u source QPs without a fault\n", (unsigned long long)total,
		      base);
	assert_true(total >= 40);
	at[0] = 2;
	at[1] = total / 4;
	at[2] = total / 2;
	at[3] = 3 * total / 4;
	at[4] = total;
	at[5] = total / 3;
	for (unsigned int i = 0; i < 6; i++) {
		memset(&s, 0, sizeof(s));
		memset(&d, 0, sizeof(d));
		s.uri = d.uri = uri;
		s.channels = 4;
		d.channels = 8;
		next_fault = (struct ff_faults){.kill_at = at[i], .kill_nth = 2};
		if (i == 5)
			next_fault.peer_error_at = at[i] + 3;
		migrate(&s, &d, NULL, 0);
		next_fault = (struct ff_faults){0};
		print_message("control conn killed at WRITE %llu%s: source %d (%s), destination "
			      "%d (%s), %u source QPs\n",
			      (unsigned long long)at[i], i == 5 ? " and a channel 3 later" : "",
			      s.ret, s.err, d.ret, d.err, source_qps());
		if (s.ret || d.ret)
			fail_msg("source %d (%s), destination %d (%s)", s.ret, s.err, d.ret, d.err);
		assert_int_equal(h_first_diff(s.ram, d.ram, RAM_SIZE), -1);
		/* the control connection's takeover (and the channel's) */
		assert_int_equal(source_qps(), base + 1 + (i == 5));
		sides_free(&s, &d);
	}
	nrounds = 1;
}

/*
 * The control connection dies on rail 0, moves to rail 1, and dies there
 * too, each time with its link (later connects to the rail fail), right
 * after the takeover exchange (its takeover is the source's
 * eighth QP: two hellos, the control conn, four channels, then it): no
 * rail is left for it, so both sides
 * fail, saying so, the destination never reports success, and the
 * source's RAM is as the test wrote it.
 */
static void test_control_no_rail_left(void **state)
{
	const char *uri = "rdma:127.0.0.1,127.0.0.2:" PORT;
	struct side s = {.uri = uri, .channels = 4},
		    d = {.uri = uri, .channels = 8, .wait_out = true};

	nrounds = 4;
	next_fault = (struct ff_faults){.kill_at = 20, .kill_nth = 2, .kill2_nth = 7,
					.kill2_send = 2, .kill_downs_link = true};
	migrate(&s, &d, NULL, 0);
	next_fault = (struct ff_faults){0};
	nrounds = 1;
	print_message("source: %d %s\ndestination: %d %s\n", s.ret, s.err, d.ret, d.err);
	assert_int_not_equal(s.ret, 0);
	assert_int_not_equal(d.ret, 0);
	if (!strstr(s.err, "no other rail took the control connection over"))
		fail_msg("source error '%s' does not say no rail took the control connection",
			 s.err);
	if (!strstr(d.err, "control conn"))
		fail_msg("destination error '%s' does not name the control connection", d.err);
	source_intact(s.ram);
	sides_free(&s, &d);
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

/* ------------------------------------------------------------ fabrics */

/*
 * Every rail's description gets its own device name ("fake0" is every
 * rail's device), so rails are not one port unless a test says so; then
 * @tweak changes one end of one rail.
 */
static struct {
	bool shared;  /* leave the device names alone: every rail on fake0 port 1 */
	int side;     /* 0 source, 1 destination, -1 none */
	unsigned int rail;
	void (*fn)(struct rl_fabric *f);
} tweak = {.side = -1};

static void fabric_hook(bool is_dst, unsigned int rail, struct rl_fabric *f)
{
	assert_string_equal(f->dev, "fake0");
	assert_int_equal(f->port, 1);
	assert_int_equal(f->link, RL_LINK_ETH);
	assert_int_equal(f->family, 4);
	if (!tweak.shared)
		snprintf(f->dev, sizeof(f->dev), "fake0.%u", rail);
	if (tweak.fn && tweak.side == (int)is_dst && tweak.rail == rail)
		tweak.fn(f);
}

static void to_ib(struct rl_fabric *f)
{
	f->link = RL_LINK_IB;
	f->gid_type = RL_GID_IB;
	f->subnet[0] = 0xfe;
	f->subnet[1] = 0x80;
}

static void roce_v1(struct rl_fabric *f)
{
	f->gid_type = RL_GID_ROCE_V1;
}

static void roce_v2(struct rl_fabric *f)
{
	f->gid_type = RL_GID_ROCE_V2;
}

/* the source reached the destination's rail from 10.0.1.2/24, another network */
static void other_subnet(struct rl_fabric *f)
{
	static const uint8_t ip[4] = {10, 0, 1, 2};

	f->family = 4;
	memset(f->ip, 0, sizeof(f->ip));
	memcpy(f->ip, ip, 4);
	f->prefix = 24;
	snprintf(f->netdev, sizeof(f->netdev), "eth1");
}

static void run_tweaked(int side, unsigned int rail, void (*fn)(struct rl_fabric *),
			const char *want)
{
	const char *uri = "rdma:127.0.0.1,127.0.0.2:" PORT;

	tweak.side = side;
	tweak.rail = rail;
	tweak.fn = fn;
	run_bad(uri, uri, want, want);
	tweak.side = -1;
	tweak.fn = NULL;
}

static void test_fabric_link_layer(void **state)
{
	run_tweaked(1, 1, to_ib, "rail 1: the source's end (fake0.1 port 1, Ethernet, 127.0.0.2/8 "
				 "on lo) and the destination's (fake0.1 port 1, InfiniBand, IB GIDs, "
				 "subnet prefix fe80:0000:0000:0000, 127.0.0.2/8 on lo) are on "
				 "different link layers");
}

/* both ends InfiniBand, the destination's rail 0 on another subnet prefix */
static void ib_a(struct rl_fabric *f)
{
	to_ib(f);
}

static void ib_b(struct rl_fabric *f)
{
	to_ib(f);
	f->subnet[7] = 0x42;
}

static void both_ib(bool is_dst, unsigned int rail, struct rl_fabric *f)
{
	fabric_hook(is_dst, rail, f);
	(is_dst && rail == 0 ? ib_b : ib_a)(f);
}

static void test_fabric_ib_subnet(void **state)
{
	const char *uri = "rdma:127.0.0.1,127.0.0.2:" PORT;

	rmig_rl_fabric_hook = both_ib;
	run_bad(uri, uri, "different InfiniBand subnets", "subnet prefix fe80:0000:0000:0042");
	rmig_rl_fabric_hook = fabric_hook;
}

static void v1_v2(bool is_dst, unsigned int rail, struct rl_fabric *f)
{
	fabric_hook(is_dst, rail, f);
	(is_dst ? roce_v2 : roce_v1)(f);
}

static void test_fabric_roce_version(void **state)
{
	const char *uri = "rdma:127.0.0.1,127.0.0.2:" PORT;

	rmig_rl_fabric_hook = v1_v2;
	/* rail 1 says hello first: it is the one named */
	run_bad(uri, uri, "rail 1: the source's end (fake0.1 port 1, Ethernet, RoCE v1",
		"and the destination's (fake0.1 port 1, Ethernet, RoCE v2");
	rmig_rl_fabric_hook = fabric_hook;
}

static void test_fabric_ip_subnet(void **state)
{
	const char *uri = "rdma:127.0.0.1,127.0.0.2:" PORT;

	run_tweaked(0, 0, other_subnet,
		    "rail 0: the source's end (fake0.0 port 1, Ethernet, 10.0.1.2/24 on eth1) and "
		    "the destination's (fake0.0 port 1, Ethernet, 127.0.0.1/8 on lo) are on "
		    "different IP subnets");
	/* a routed fabric, said on either side */
	tweak.side = 0;
	tweak.fn = other_subnet;
	setenv("RMIG_RDMA_RAILS_ALLOW", "routed", 1);
	run_ok(uri, 2, 4);
	unsetenv("RMIG_RDMA_RAILS_ALLOW");
	tweak.side = -1;
	tweak.fn = NULL;
}

static void test_shared_port(void **state)
{
	const char *uri = "rdma:127.0.0.1,127.0.0.2:" PORT;
	struct side s = {.uri = uri, .channels = 2}, d = {.uri = uri, .channels = 8};

	/* the destination's own rails: refused at listen */
	tweak.shared = true;
	migrate(&s, &d, NULL, 0);
	print_message("destination: %d %s\n", d.ret, d.err);
	assert_int_equal(d.ret, -EINVAL);
	assert_non_null(strstr(d.err, "rails 0 (127.0.0.1:" PORT ") and 1 (127.0.0.2:" PORT
				      ") are both on RDMA device fake0 port 1"));
	h_unmap(s.ram, RAM_SIZE);
	h_unmap(d.ram, RAM_SIZE);

	/* waived (the source's rails share the port too; one environment for both) */
	setenv("RMIG_RDMA_RAILS_ALLOW", "shared-port", 1);
	run_ok(uri, 2, 4);
	unsetenv("RMIG_RDMA_RAILS_ALLOW");
	tweak.shared = false;
}

/* the source's rails both on fake0 port 1, the destination's on two ports */
static void src_shared(bool is_dst, unsigned int rail, struct rl_fabric *f)
{
	if (is_dst)
		snprintf(f->dev, sizeof(f->dev), "fake0.%u", rail);
}

static void test_source_shared_port(void **state)
{
	const char *uri = "rdma:127.0.0.1,127.0.0.2:" PORT;

	rmig_rl_fabric_hook = src_shared;
	run_bad(uri, uri, "the source's rails 0 and 1 are both on RDMA device fake0 port 1",
		"the source's rails 0 and 1 are both on RDMA device fake0 port 1");
	rmig_rl_fabric_hook = fabric_hook;
}

static void test_listen_without_device(void **state)
{
	struct side s = {.uri = "rdma:127.0.0.1,127.0.0.2:" PORT, .channels = 2},
		    d = {.uri = "rdma:127.0.0.1,10.255.0.1:" PORT, .channels = 8};

	migrate(&s, &d, NULL, 0);
	print_message("destination: %d %s\n", d.ret, d.err);
	assert_int_equal(d.ret, -ENODEV);
	assert_non_null(strstr(d.err, "rail 1 (10.255.0.1:" PORT "): no RDMA device"));
	h_unmap(s.ram, RAM_SIZE);
	h_unmap(d.ram, RAM_SIZE);
}

/*
 * Rail 1 says hello, rail 0 has no device: the source fails naming rail 0,
 * and the destination, once it gives up waiting, says which rail never came.
 */
static void test_source_fails_half_way(void **state)
{
	run_bad("rdma:10.255.0.1,127.0.0.2:" PORT, "rdma:127.0.0.1,127.0.0.2:" PORT,
		"rail 0 (10.255.0.1:" PORT "): no RDMA device",
		"1 of 2 rails said hello, rail 0 (127.0.0.1:" PORT ") did not");
}

struct retry_dst {
	struct rmig_dst *dst;
	int ret;
};

static void *retry_dst_main(void *arg)
{
	struct retry_dst *r = arg;

	r->ret = rmig_dst_accept(r->dst);
	if (!r->ret)
		r->ret = rmig_dst_finish(r->dst);
	return NULL;
}

/* One source gives up after rail 1's hello; the next one gets through. */
static void test_source_retries(void **state)
{
	uint8_t *sram = h_map(RAM_SIZE), *dram = h_map(RAM_SIZE);
	struct retry_dst rd = {0};
	struct rmig_src *src;
	struct rmig_opts o;
	pthread_t t;
	int ret;

	ff_init();
	for (size_t p = 0; p < RAM_SIZE / PAGE; p++)
		fill(sram + p * PAGE, p, 1);
	rmig_opts_init(&o);
	o.channels = 4;
	o.timeout_ms = 5000;
	assert_int_equal(rmig_dst_create(&o, &rd.dst), 0);
	assert_int_equal(rmig_dst_add_block(rd.dst, &(struct rmig_block_desc){"pc.ram", dram,
									  RAM_SIZE, PAGE}),
			 0);
	assert_int_equal(rmig_dst_listen(rd.dst, "rdma:127.0.0.1,127.0.0.2:" PORT), 0);
	assert_int_equal(pthread_create(&t, NULL, retry_dst_main, &rd), 0);

	assert_int_equal(rmig_src_create(&o, &src), 0);
	assert_int_equal(rmig_src_add_block(src, &(struct rmig_block_desc){"pc.ram", sram,
									 RAM_SIZE, PAGE}),
			 0);
	ret = rmig_src_connect(src, "rdma:10.255.0.1,127.0.0.2:" PORT);
	print_message("first source: %d %s\n", ret, rmig_src_error(src));
	assert_int_equal(ret, -ENODEV);
	rmig_src_destroy(src);

	assert_int_equal(rmig_src_create(&o, &src), 0);
	assert_int_equal(rmig_src_add_block(src, &(struct rmig_block_desc){"pc.ram", sram,
									 RAM_SIZE, PAGE}),
			 0);
	ret = rmig_src_connect(src, "rdma:127.0.0.1,127.0.0.2:" PORT);
	for (uint64_t p = 0; !ret && p < RAM_SIZE / PAGE; p++)
		ret = rmig_src_queue_page(src, 0, p * PAGE);
	if (!ret)
		ret = rmig_src_finish(src);
	if (ret)
		fail_msg("second source: %d %s", ret, rmig_src_error(src));
	rmig_src_destroy(src);
	assert_int_equal(h_timedjoin(t, 30), 0);
	if (rd.ret)
		fail_msg("destination: %d %s", rd.ret, rmig_dst_error(rd.dst));
	rmig_dst_destroy(rd.dst);
	assert_int_equal(h_first_diff(sram, dram, RAM_SIZE), -1);
	h_unmap(sram, RAM_SIZE);
	h_unmap(dram, RAM_SIZE);
}

/* A version 1 hello (12 bytes, before the fabric checks) is refused by name. */
static void test_hello_v1(void **state)
{
	static const uint8_t v1[12] = {'R', 'M', 'R', 'H', 0, 1, 0, 0, 0, 2, 0, 0};
	uint8_t buf[RL_HELLO_LEN];
	struct rl_hello h = {.rail = 1, .nrails = 2, .allow = RL_ALLOW_ROUTED, .attempt = 7},
			back;
	char why[200];

	assert_int_equal(rmig_rl_hello_decode(v1, sizeof(v1), &back, why, sizeof(why)),
			 -EPROTONOSUPPORT);
	assert_non_null(strstr(why, "rail hello version 1, this destination 2"));
	snprintf(h.fab.dev, sizeof(h.fab.dev), "mlx5_0");
	h.fab.port = 1;
	h.fab.link = RL_LINK_IB;
	h.fab.gid_type = RL_GID_IB;
	rmig_rl_hello_encode(buf, &h);
	assert_int_equal(rmig_rl_hello_decode(buf, sizeof(buf), &back, why, sizeof(why)), 0);
	assert_memory_equal(&back, &h, sizeof(h));
	buf[60] = '\n'; /* a name that would break a message */
	assert_int_equal(rmig_rl_hello_decode(buf, sizeof(buf), &back, why, sizeof(why)), -EPROTO);
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
	rmig_rl_fabric_hook = fabric_hook;
	return 0;
}

static int group_teardown(void **state)
{
	rmig_rdma_verbs = saved_verbs;
	rmig_rl_fabric_hook = NULL;
	ff_fini();
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_two_rails),
		cmocka_unit_test(test_three_rails),
		cmocka_unit_test(test_failover),
		cmocka_unit_test(test_control_failover),
		cmocka_unit_test(test_control_no_rail_left),
		cmocka_unit_test(test_numa_figures),
		cmocka_unit_test(test_source_has_more_rails),
		cmocka_unit_test(test_source_has_fewer_rails),
		cmocka_unit_test(test_rails_in_another_order),
		cmocka_unit_test(test_source_rail_count_differs),
		cmocka_unit_test(test_rail_without_device),
		cmocka_unit_test(test_bad_lists),
		cmocka_unit_test(test_fabric_link_layer),
		cmocka_unit_test(test_fabric_ib_subnet),
		cmocka_unit_test(test_fabric_roce_version),
		cmocka_unit_test(test_fabric_ip_subnet),
		cmocka_unit_test(test_shared_port),
		cmocka_unit_test(test_source_shared_port),
		cmocka_unit_test(test_listen_without_device),
		cmocka_unit_test(test_source_fails_half_way),
		cmocka_unit_test(test_source_retries),
		cmocka_unit_test(test_hello_v1),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
