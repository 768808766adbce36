// SPDX-License-Identifier: MIT
/*
 * Postcopy over loopback TCP: pages rewritten right before the switch are
 * stale on the destination; it starts "running" (a vCPU thread reading
 * them, caught with userfaultfd) while the rest are pulled in the
 * background; the destination ends equal to the source's final state. A
 * destination that dies during postcopy leaves the source's RAM intact and
 * the source names the pages not yet pulled. Without userfaultfd (here:
 * destination RAM not page aligned) the destination pulls everything before
 * it runs. Option checks too.
 *
 * The same tests run over rdma in an rxe guest (tests/rxe): with
 * RMIG_PC_RDMA=ADDR the pair uses rdma:ADDR, the source connects with
 * RMIG_F_POSTCOPY and the destination pulls by RDMA READ; adding
 * RMIG_PC_BY_REQUEST=1 leaves the flag off, so pages are requested on the
 * rdma control connection while another thread reads it. RMIG_PC_RDMA=
 * "ADDR1,ADDR2" runs them over two rails (the control connection is then
 * the rails' virtual conn, with its reader, senders and pullers).
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

#define PAGE	   4096u
#define NPAGES	   8192u
#define SIZE	   ((size_t)NPAGES * PAGE)
#define TIMEOUT_MS 20000
/* round 1 rewrites every STRIDE-th page, and zeroes some */
#define STRIDE 4u

/* "tcp:127.0.0.1" or "rdma:ADDR", and whether pulls are reads */
static char pc_host[128] = "tcp:127.0.0.1";

/*
 * The destination's listen URI: port 0 (the kernel picks one), except over
 * several rails (RMIG_PC_RDMA="ADDR1,ADDR2"), which take one fixed port: a
 * new one per test, so that none waits for the last one's to be free.
 */
static void listen_uri(char *uri, size_t size)
{
	static unsigned int next;

	if (strchr(pc_host, ','))
		snprintf(uri, size, "%s:%u", pc_host, 18740 + next++ % 40);
	else
		snprintf(uri, size, "%s:0", pc_host);
}

/*
 * Both sides' options: over rdma the destination listens on the device's
 * address, not loopback, so both get a pre-shared key (docs/security.md);
 * the migrations then run authenticated, the source's RAM registered for
 * remote reads only after the handshake.
 */
static const char pc_key[] = "test_live_postcopy-key-0123456789abcdef";

/*
 * tcp with RMIG_F_TLS (the key as the TLS PSK): in postcopy the
 * destination's control connection is used by a receiving and a sending
 * thread at once, through one TLS session.
 */
static bool pc_tls;

static void pc_opts(struct rmig_opts *o)
{
	rmig_opts_init(o);
	o->timeout_ms = TIMEOUT_MS;
	o->psk = pc_key;
	o->psk_len = sizeof(pc_key) - 1;
	if (pc_tls)
		o->flags |= RMIG_F_TLS;
}
static bool pc_by_read;

struct pc_test {
	/* source */
	uint8_t *sram;
	struct rmig_src *src;
	struct rmig_live *live;
	uint64_t sum_at_stop;
	/* destination */
	uint8_t *dram;
	struct rmig_dst *dst;
	int port;
	bool kill_at_start;
	bool dense; /* the rewritten pages are the first NPAGES / STRIDE, not every STRIDE-th */
	bool dst_misalign; /* destination RAM not page aligned: no userfaultfd, degraded */
	uint8_t *dmap;
	pthread_t dthread, vcpu;
	int dst_ret, pc_ret;
	uint64_t vcpu_bad, vcpu_pages, vcpu_missing, vcpu_start_ns;
	struct rmig_dst_postcopy_stats pcs;
	char dst_err[512];
};

/* Pages rewritten after round 1: as many either way, scattered or in one run. */
static bool stale(const struct pc_test *t, uint64_t pg)
{
	return t->dense ? pg < NPAGES / STRIDE : pg % STRIDE == 0;
}

/* The destination's vCPU: read the rewritten pages, last first, against the final source. */
static void *vcpu_main(void *arg)
{
	struct pc_test *t = arg;
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	t->vcpu_start_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	for (uint64_t pg = NPAGES; pg-- > 0;) {
		unsigned char in = 1;

		if (!stale(t, pg))
			continue;
		/* not in memory: this read faults, and only a pull can give it the right bytes */
		if (!mincore(t->dram + pg * PAGE, PAGE, &in) && !(in & 1))
			t->vcpu_missing++;
		if (memcmp(t->dram + pg * PAGE, t->sram + pg * PAGE, PAGE))
			t->vcpu_bad++;
		t->vcpu_pages++;
	}
	return NULL;
}

static void *dst_main(void *arg)
{
	struct pc_test *t = arg;
	bool vcpu = false;
	int ret;

	ret = rmig_dst_accept(t->dst);
	while (!ret) {
		ret = rmig_dst_wait_sync(t->dst, NULL);
		if (ret == RMIG_DST_POSTCOPY) {
			t->pc_ret = ret;
			if (t->kill_at_start) {
				rmig_dst_cancel(t->dst); /* dies right as it starts running */
				ret = -ECANCELED;
				break;
			}
			vcpu = pthread_create(&t->vcpu, NULL, vcpu_main, t) == 0;
			ret = 0;
		}
	}
	if (ret == 1)
		ret = rmig_dst_finish(t->dst);
	if (vcpu)
		pthread_join(t->vcpu, NULL);
	t->dst_ret = ret;
	snprintf(t->dst_err, sizeof(t->dst_err), "%s", rmig_dst_error(t->dst));
	t->pcs.size = sizeof(t->pcs);
	rmig_dst_postcopy_stats(t->dst, &t->pcs);
	return NULL;
}

static int stop_vcpus(void *arg)
{
	struct pc_test *t = arg;

	t->sum_at_stop = h_hash(t->sram, SIZE);
	return 0;
}

/* After round 1: the guest rewrites pages already sent, right before the switch. */
static void round_done(void *arg, const struct rmig_live_round *r)
{
	struct pc_test *t = arg;

	if (r->round != 1)
		return;
	for (uint64_t pg = 0; pg < NPAGES; pg++) {
		if (!stale(t, pg))
			continue;
		if (pg % (STRIDE * 16) == 0)
			memset(t->sram + pg * PAGE, 0, PAGE);
		else
			h_fill_random(t->sram + pg * PAGE, PAGE, 1000 + pg);
		assert_int_equal(rmig_live_mark_dirty(t->live, 0, pg * PAGE), 0);
	}
}

static void setup_pair(struct pc_test *t)
{
	struct rmig_block_desc bd = {.name = "pc.ram", .length = SIZE, .page_size = PAGE};
	struct rmig_live_hooks h = {
	    .size = sizeof(h),
	    .arg = t,
	    .stop_vcpus = stop_vcpus,
	    .round_done = round_done,
	};
	struct rmig_live_opts lo;
	struct rmig_opts o;
	char uri[160];

	t->sram = h_map(SIZE);
	t->dmap = h_map(SIZE + PAGE);
	t->dram = t->dmap + (t->dst_misalign ? 64 : 0);
	h_fill_random(t->sram, SIZE, 42);
	pc_opts(&o);
	bd.host = t->dram;
	assert_int_equal(rmig_dst_create(&o, &t->dst), 0);
	assert_int_equal(rmig_dst_add_block(t->dst, &bd), 0);
	listen_uri(uri, sizeof(uri));
	assert_int_equal(rmig_dst_listen(t->dst, uri), 0);
	assert_int_equal(rmig_dst_postcopy_enable(t->dst), 0);
	t->port = rmig_dst_port(t->dst);
	assert_int_equal(pthread_create(&t->dthread, NULL, dst_main, t), 0);

	o.channels = 2;
	if (pc_by_read)
		o.flags |= RMIG_F_POSTCOPY;
	bd.host = t->sram;
	assert_int_equal(rmig_src_create(&o, &t->src), 0);
	assert_int_equal(rmig_src_add_block(t->src, &bd), 0);
	snprintf(uri, sizeof(uri), "%s:%d", pc_host, t->port);
	assert_int_equal(rmig_src_connect(t->src, uri), 0);
	rmig_live_opts_init(&lo);
	lo.flags = RMIG_LIVE_POSTCOPY;
	lo.postcopy_after_rounds = 1;
	lo.downtime_limit_ms = 0;
	assert_int_equal(rmig_live_create(t->src, &lo, &h, &t->live), 0);
}

static void teardown_pair(struct pc_test *t)
{
	rmig_live_destroy(t->live);
	rmig_src_destroy(t->src);
	rmig_dst_destroy(t->dst);
	h_unmap(t->sram, SIZE);
	h_unmap(t->dmap, SIZE + PAGE);
}

/* Set the pair up and run it: the migration must succeed, in postcopy. */
static void run_pair_ok(struct pc_test *t)
{
	int ret;

	setup_pair(t);
	ret = rmig_live_run(t->live);
	pthread_join(t->dthread, NULL);
	if (ret)
		fail_msg("source: %d %s / destination: %d %s", ret, rmig_live_error(t->live),
			 t->dst_ret, t->dst_err);
	assert_int_equal(t->dst_ret, 0);
	assert_int_equal(t->pc_ret, RMIG_DST_POSTCOPY);
}

static void run_dirty_after_switch(bool dense)
{
	struct rmig_live_stats st = {.size = sizeof(st)};
	struct pc_test t = {.dense = dense};

	run_pair_ok(&t);
	assert_int_equal(rmig_live_get_stats(t.live, &st), 0);
	assert_true(st.postcopy_pages > 0);
	assert_int_equal(st.rounds, 1);
	assert_int_equal(t.pcs.active, 1);
	assert_int_equal(t.pcs.missing, NPAGES / STRIDE);
	assert_int_equal(t.pcs.pulled, st.postcopy_pages);
	assert_int_equal(t.pcs.by_read, pc_by_read);
	/* a pull carries a run of missing pages: one page when they are apart */
	assert_true(t.pcs.pulls > 0 && t.pcs.pulls <= t.pcs.pulled);
	if (!dense)
		assert_int_equal(t.pcs.pulls, t.pcs.pulled);
	else if (t.pcs.pulls * 8 > t.pcs.pulled)
		fail_msg("%llu pulls for %llu pages in one run", (unsigned long long)t.pcs.pulls,
			 (unsigned long long)t.pcs.pulled);
	assert_int_equal(t.vcpu_pages, NPAGES / STRIDE);
	assert_int_equal(t.vcpu_bad, 0);
	/*
	 * The vCPU reads the stale pages last first, against the background
	 * pull's order, in which the last page is placed last: started well
	 * before that, its first read found a page not in memory (mincore), and
	 * vcpu_bad == 0 above says the fault was answered with the source's
	 * bytes (unregistered memory would have read zeroes). The fault counter
	 * is only reported: the kernel may queue a fault and let a pull
	 * answer it before the fault thread reads it.
	 */
	if (t.pcs.uffd && t.vcpu_start_ns + 2000000 < t.pcs.done_ns)
		assert_true(t.vcpu_missing > 0);
	else if (t.pcs.uffd && !t.vcpu_missing)
		fprintf(stderr, "note: the vCPU started only after every page was in\n");
	else if (!t.pcs.uffd)
		fprintf(stderr,
			"note: no userfaultfd here, degraded postcopy (all pulled first)\n");
	fprintf(stderr,
		"postcopy over %s, %s: %llu pages pulled %s in %llu pulls, %llu faults (vCPU "
		"found %llu not in memory), uffd %u, %.2f ms (vCPU ran %.2f ms after the start)\n",
		pc_host, dense ? "dense" : "scattered", (unsigned long long)t.pcs.pulled,
		t.pcs.by_read ? "by read" : "by request", (unsigned long long)t.pcs.pulls,
		(unsigned long long)t.pcs.faults, (unsigned long long)t.vcpu_missing, t.pcs.uffd,
		(double)(t.pcs.done_ns - t.pcs.start_ns) / 1e6,
		((double)t.vcpu_start_ns - (double)t.pcs.start_ns) / 1e6);
	assert_int_equal(h_hash(t.sram, SIZE), t.sum_at_stop);
	assert_memory_equal(t.dram, t.sram, SIZE);
	teardown_pair(&t);
}

static void test_postcopy_dirty_after_switch(void **state)
{
	(void)state;
	run_dirty_after_switch(false);
}

/* The stale pages in one run: pulls carry many pages each. */
static void test_postcopy_dense(void **state)
{
	(void)state;
	run_dirty_after_switch(true);
}

/* tcp only (registered without RMIG_PC_RDMA): the pulls and their pages inside TLS */
static void test_postcopy_tls(void **state)
{
	(void)state;
	pc_tls = true;
	run_dirty_after_switch(false);
	pc_tls = false;
}

/* Degraded: every missing page is pulled before wait_sync returns RMIG_DST_POSTCOPY. */
static void test_postcopy_degraded(void **state)
{
	struct rmig_live_stats st = {.size = sizeof(st)};
	struct pc_test t = {.dst_misalign = true};

	(void)state;
	run_pair_ok(&t);
	rmig_live_get_stats(t.live, &st);
	assert_int_equal(t.pcs.uffd, 0);
	assert_int_equal(t.pcs.faults, 0);
	assert_int_equal(t.pcs.pulled, NPAGES / STRIDE);
	assert_int_equal(t.pcs.by_read, pc_by_read);
	assert_int_equal(st.postcopy_pages, NPAGES / STRIDE);
	/* the vCPU started after wait_sync returned: everything was there */
	assert_true(t.vcpu_start_ns >= t.pcs.done_ns);
	assert_int_equal(t.vcpu_bad, 0);
	assert_memory_equal(t.dram, t.sram, SIZE);
	teardown_pair(&t);
}

static void test_postcopy_dst_dies(void **state)
{
	struct rmig_live_stats st = {.size = sizeof(st)};
	struct pc_test t = {.kill_at_start = true};
	const char *msg;
	int ret;

	(void)state;
	setup_pair(&t);
	ret = rmig_live_run(t.live);
	pthread_join(t.dthread, NULL);
	msg = rmig_live_error(t.live);
	assert_true(ret < 0);
	assert_int_equal(t.pc_ret, RMIG_DST_POSTCOPY);
	assert_true(t.dst_ret < 0);
	if (!strstr(msg, "not yet pulled") || !strstr(msg, "'pc.ram'+0x"))
		fail_msg("source error does not name the unpulled pages: %s", msg);
	fprintf(stderr, "source: %s\n", msg);
	rmig_live_get_stats(t.live, &st);
	assert_true(st.postcopy_pages < NPAGES / STRIDE);
	/* the source's RAM is what it was when its vCPUs stopped */
	assert_int_equal(h_hash(t.sram, SIZE), t.sum_at_stop);
	teardown_pair(&t);
}

/*
 * A block of 2 MiB pages: a page pulled by request travels in one control
 * message, which cannot hold it (found by fuzz_postcopy), so a destination
 * refuses to offer postcopy at all, before any source connects; a source
 * talking to some other destination refuses by itself before PC_START
 * (core/postcopy: rmig_pc_page_fits).
 */
static void test_postcopy_huge_pages_refused(void **state)
{
	const size_t len = (size_t)2 * (2u << 20);
	uint8_t *ram = h_map(len), *huge = h_map(len);
	struct rmig_opts o;
	struct rmig_dst *dst;

	(void)state;
	rmig_opts_init(&o);
	assert_int_equal(rmig_dst_create(&o, &dst), 0);
	assert_int_equal(rmig_dst_add_block(dst, &(struct rmig_block_desc){"pc.ram", ram, len,
									  4096}), 0);
	assert_int_equal(rmig_dst_add_block(dst, &(struct rmig_block_desc){"huge", huge, len,
									  2u << 20}), 1);
	assert_int_equal(rmig_dst_listen(dst, "tcp:127.0.0.1:0"), 0);
	assert_int_equal(rmig_dst_postcopy_enable(dst), -ENOTSUP);
	rmig_dst_destroy(dst);
	h_unmap(ram, len);
	h_unmap(huge, len);
}

static void test_postcopy_opts(void **state)
{
	struct rmig_block_desc bd = {.name = "pc.ram", .length = 16 * PAGE, .page_size = PAGE};
	struct rmig_live_hooks h = {.size = sizeof(h), .stop_vcpus = stop_vcpus};
	struct rmig_live_opts lo;
	struct rmig_live *live = NULL;
	struct rmig_src *src;
	uint8_t *ram = h_map(16 * PAGE);

	(void)state;
	bd.host = ram;
	assert_int_equal(rmig_src_create(NULL, &src), 0);
	assert_int_equal(rmig_src_add_block(src, &bd), 0);
	assert_int_equal(rmig_src_connect(src, "null:"), 0);
	rmig_live_opts_init(&lo);
	lo.postcopy_after_rounds = 2;
	assert_int_equal(rmig_live_create(src, &lo, &h, &live), -EINVAL);
	lo.flags = RMIG_LIVE_POSTCOPY;
	/* nobody to pull from a null sink */
	assert_int_equal(rmig_live_create(src, &lo, &h, &live), -EINVAL);
	rmig_src_destroy(src);
	h_unmap(ram, 16 * PAGE);
}

/* A destination that did not enable postcopy said so in WELCOME: refused at create. */
static void *accept_main(void *arg)
{
	struct rmig_dst *dst = arg;

	rmig_dst_accept(dst); /* then fails when the source goes away */
	rmig_dst_finish(dst);
	return NULL;
}

static void test_postcopy_not_agreed(void **state)
{
	struct rmig_block_desc bd = {.name = "pc.ram", .length = 16 * PAGE, .page_size = PAGE};
	struct rmig_live_hooks h = {.size = sizeof(h), .stop_vcpus = stop_vcpus};
	uint8_t *sram = h_map(16 * PAGE), *dram = h_map(16 * PAGE);
	struct rmig_live_opts lo;
	struct rmig_live *live = NULL;
	struct rmig_dst *dst;
	struct rmig_src *src;
	struct rmig_opts o;
	pthread_t th;
	char uri[160];

	(void)state;
	pc_opts(&o);
	bd.host = dram;
	assert_int_equal(rmig_dst_create(&o, &dst), 0);
	assert_int_equal(rmig_dst_add_block(dst, &bd), 0);
	listen_uri(uri, sizeof(uri));
	assert_int_equal(rmig_dst_listen(dst, uri), 0);
	assert_int_equal(pthread_create(&th, NULL, accept_main, dst), 0);
	bd.host = sram;
	assert_int_equal(rmig_src_create(&o, &src), 0);
	assert_int_equal(rmig_src_add_block(src, &bd), 0);
	snprintf(uri, sizeof(uri), "%s:%d", pc_host, rmig_dst_port(dst));
	assert_int_equal(rmig_src_connect(src, uri), 0);
	rmig_live_opts_init(&lo);
	lo.flags = RMIG_LIVE_POSTCOPY;
	assert_int_equal(rmig_live_create(src, &lo, &h, &live), -ENOTSUP);
	/* without postcopy the same pair is fine */
	lo.flags = 0;
	assert_int_equal(rmig_live_create(src, &lo, &h, &live), 0);
	rmig_live_destroy(live);
	rmig_src_destroy(src);
	pthread_join(th, NULL);
	rmig_dst_destroy(dst);
	h_unmap(sram, 16 * PAGE);
	h_unmap(dram, 16 * PAGE);
}

int main(void)
{
	const char *rdma = getenv("RMIG_PC_RDMA");
	const char *by_req = getenv("RMIG_PC_BY_REQUEST");

	if (rdma && *rdma) {
		snprintf(pc_host, sizeof(pc_host), "rdma:%s", rdma);
		pc_by_read = !(by_req && !strcmp(by_req, "1"));
	}
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_postcopy_opts),
	    cmocka_unit_test(test_postcopy_not_agreed),
	    cmocka_unit_test(test_postcopy_dirty_after_switch),
	    cmocka_unit_test(test_postcopy_dense),
	    cmocka_unit_test(test_postcopy_degraded),
	    cmocka_unit_test(test_postcopy_dst_dies),
	    cmocka_unit_test(test_postcopy_huge_pages_refused),
	    cmocka_unit_test(test_postcopy_tls), /* last: tcp only */
	};
	size_t n = sizeof(tests) / sizeof(tests[0]) - (rdma && *rdma ? 1 : 0);

	return _cmocka_run_group_tests("test_live_postcopy", tests, n, NULL, NULL);
}
