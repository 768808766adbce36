// SPDX-License-Identifier: MIT
/*
 * Sync rounds over loopback TCP: pages rewritten between rounds, the
 * destination RAM compared with the source's snapshot at every round while
 * the destination holds its channels at the fence, and the fence really
 * holding back data the source has already sent for the next round.
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
#include <time.h>

#include <cmocka.h>

#include "harness.h"

#define MiB (1ull << 20)
#define PAGE 4096u
#define MAX_ROUNDS 8

/*
 * What the source publishes for the destination thread: its RAM as it was
 * at each sync, and how far it got. Guarded by lock.
 */
struct rounds {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint8_t *snap[MAX_ROUNDS + 1];
	unsigned int published;	  /* snapshots 1..published exist */
	unsigned int source_synced; /* rmig_src_sync(ALL) returned for rounds 1..source_synced */
	/* the destination's view */
	uint8_t *dst_mem;
	size_t len;
	bool check_held;	/* before comparing round N, wait until source synced N+1 */
	unsigned int nrounds;
	/* results from the destination thread */
	uint64_t seen[MAX_ROUNDS + 2];
	unsigned int nseen;
	long diff_at[MAX_ROUNDS + 1];
	uint64_t stats_rounds[MAX_ROUNDS + 1];
	int end_ret;
	bool gave_up;
};

static void rounds_init(struct rounds *r, uint8_t *dst_mem, size_t len, unsigned int nrounds)
{
	memset(r, 0, sizeof(*r));
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->cond, NULL);
	r->dst_mem = dst_mem;
	r->len = len;
	r->nrounds = nrounds;
	for (unsigned int i = 0; i <= MAX_ROUNDS; i++)
		r->diff_at[i] = -2; /* "not compared" */
}

static void rounds_free(struct rounds *r)
{
	for (unsigned int i = 0; i <= MAX_ROUNDS; i++)
		free(r->snap[i]);
	pthread_cond_destroy(&r->cond);
	pthread_mutex_destroy(&r->lock);
}

/* Wait until *@field >= @want; false after a generous limit (a hang). */
static bool rounds_wait(struct rounds *r, unsigned int *field, unsigned int want)
{
	struct timespec ts;
	bool ok = true;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += h_guard_s(H_TIMEOUT_MS / 1000);
	pthread_mutex_lock(&r->lock);
	while (*field < want && ok)
		ok = pthread_cond_timedwait(&r->cond, &r->lock, &ts) == 0 || *field >= want;
	pthread_mutex_unlock(&r->lock);
	return ok;
}

static void rounds_bump(struct rounds *r, unsigned int *field, unsigned int to)
{
	pthread_mutex_lock(&r->lock);
	*field = to;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
}

/* Destination thread: every round, compare RAM with the source's snapshot. */
static int rounds_hook(struct h_dst *d)
{
	struct rounds *r = d->arg;
	struct rmig_stats st = { .size = sizeof(st) };
	uint64_t round;
	int ret;

	for (;;) {
		ret = rmig_dst_wait_sync(d->dst, &round);
		if (ret)
			break;
		if (r->nseen < MAX_ROUNDS + 2)
			r->seen[r->nseen++] = round;
		if (round == 0 || round > r->nrounds)
			continue;
		if (!rounds_wait(r, &r->published, (unsigned int)round) ||
		    (r->check_held && round < r->nrounds &&
		     !rounds_wait(r, &r->source_synced, (unsigned int)round + 1))) {
			r->gave_up = true;
			continue;
		}
		/* The channels are stopped at this round's fence: RAM cannot change under us. */
		r->diff_at[round] = h_first_diff(r->snap[round], r->dst_mem, r->len);
		rmig_dst_get_stats(d->dst, &st);
		r->stats_rounds[round] = st.sync_rounds;
	}
	r->end_ret = ret;
	return ret == 1 ? 0 : ret;
}

/* Rewrite about @pct % of the pages (some to all zero), queue each rewritten page. */
static int rewrite_some(struct rmig_src *src, uint8_t *mem, size_t len, unsigned int pct,
			uint64_t *rng)
{
	int ret;

	for (size_t off = 0; off < len; off += PAGE) {
		uint64_t x = h_rand(rng);

		if (x % 100 >= pct)
			continue;
		if ((x >> 32) % 4 == 0)
			memset(mem + off, 0, PAGE);
		else
			h_fill_random(mem + off, PAGE, x);
		ret = rmig_src_queue_page(src, 0, off);
		if (ret)
			return ret;
	}
	return 0;
}

static void snapshot(struct rounds *r, unsigned int round, const uint8_t *mem)
{
	r->snap[round] = malloc(r->len);
	assert_non_null(r->snap[round]);
	memcpy(r->snap[round], mem, r->len);
	rounds_bump(r, &r->published, round);
}

static void check_rounds(struct rounds *r, const struct h_dst *d)
{
	assert_false(r->gave_up);
	assert_int_equal(r->end_ret, 1); /* the source finished after the last round */
	assert_int_equal(r->nseen, r->nrounds);
	for (unsigned int i = 0; i < r->nrounds; i++) {
		assert_int_equal(r->seen[i], i + 1);
		if (r->diff_at[i + 1] != -1)
			fail_msg("round %u: destination RAM differs from the source's snapshot at byte %ld",
				 i + 1, r->diff_at[i + 1]);
		assert_int_equal(r->stats_rounds[i + 1], i + 1);
	}
	if (d->hook_ret || d->finish_ret || d->accept_ret)
		fail_msg("destination: accept %d, rounds %d, finish %d: %s", d->accept_ret,
			 d->hook_ret, d->finish_ret, d->error);
}

/* Round 1 sends everything; rounds 2..5 rewrite and resend a random tenth. */
static void test_rounds(void **state)
{
	const size_t len = 16 * MiB;
	const unsigned int nrounds = 5;
	uint8_t *src_mem = h_map(len), *dst_mem = h_map(len);
	uint64_t rng = 99;
	struct rmig_stats ss = { 0 };
	struct rmig_opts o;
	struct rounds r;
	struct h_dst d;
	struct rmig_src *src;
	char err[512];
	int ret;

	h_fill_random(src_mem, len, 1);
	h_fill_random(dst_mem, len, 2);
	rounds_init(&r, dst_mem, len, nrounds);
	h_dst_init(&d);
	h_dst_add(&d, "pc.ram", src_mem, len, PAGE);
	h_opts(&o, 4);
	o.pages_per_packet = 64;
	src = h_src_new(&o, &d);
	d.blocks[0].host = dst_mem;
	d.hook = rounds_hook;
	d.arg = &r;
	h_dst_start(&d);

	h_watchdog_arm(120, "sync rounds");
	ret = h_src_connect_port(src, d.port);
	if (!ret)
		ret = h_src_queue_all(src, 0, len, PAGE);
	for (unsigned int round = 1; !ret && round <= nrounds; round++) {
		if (round > 1)
			ret = rewrite_some(src, src_mem, len, 10, &rng);
		/* A LOCAL sync is not a round: the destination must not see it. */
		if (!ret && round == 3)
			ret = rmig_src_sync(src, RMIG_SYNC_LOCAL);
		if (ret)
			break;
		snapshot(&r, round, src_mem);
		ret = rmig_src_sync(src, RMIG_SYNC_ALL);
	}
	if (!ret)
		ret = rmig_src_finish(src);
	if (!ret)
		ss = h_src_stats(src);
	h_end(&src, ret, err, sizeof(err), &d);
	if (ret)
		fail_msg("source: %d %s / destination: %s", ret, err, d.error);
	check_rounds(&r, &d);
	assert_int_equal(h_first_diff(src_mem, dst_mem, len), -1);
	assert_int_equal(ss.sync_rounds, nrounds);
	h_check_stats_match(&ss, &d.stats);

	rmig_src_destroy(src);
	rounds_free(&r);
	h_unmap(src_mem, len);
	h_unmap(dst_mem, len);
}

/*
 * While the destination looks at round N, the source has already sent
 * round N+1 (small enough to sit in socket buffers) and finished its sync:
 * the destination's RAM must still be exactly round N.
 */
static void test_fence_holds(void **state)
{
	const size_t len = 2 * MiB;
	const unsigned int nrounds = 4;
	uint8_t *src_mem = h_map(len), *dst_mem = h_map(len);
	struct rmig_opts o;
	struct rounds r;
	struct h_dst d;
	struct rmig_src *src;
	char err[512];
	int ret;

	h_fill_random(src_mem, len, 3);
	rounds_init(&r, dst_mem, len, nrounds);
	r.check_held = true;
	h_opts(&o, 2);
	src = h_pair_one_block(&d, &o, src_mem, dst_mem, len, PAGE);
	d.hook = rounds_hook;
	d.arg = &r;
	h_dst_start(&d);

	h_watchdog_arm(120, "fence holds");
	ret = h_src_connect_port(src, d.port);
	if (!ret)
		ret = h_src_queue_all(src, 0, len, PAGE);
	for (unsigned int round = 1; !ret && round <= nrounds; round++) {
		if (round > 1) {
			/* Two pages, each queued alone: a few KiB per channel at most. */
			for (unsigned int k = 0; k < 2 && !ret; k++) {
				size_t off = (size_t)((round * 37 + k * 101) % (len / PAGE)) * PAGE;

				h_fill_random(src_mem + off, PAGE, round * 1000 + k);
				ret = rmig_src_queue_page(src, 0, off);
				if (!ret)
					ret = rmig_src_sync(src, RMIG_SYNC_LOCAL);
			}
			if (ret)
				break;
		}
		snapshot(&r, round, src_mem);
		ret = rmig_src_sync(src, RMIG_SYNC_ALL);
		if (!ret)
			rounds_bump(&r, &r.source_synced, round);
	}
	if (!ret)
		ret = rmig_src_finish(src);
	h_end(&src, ret, err, sizeof(err), &d);
	if (ret)
		fail_msg("source: %d %s / destination: %s", ret, err, d.error);
	check_rounds(&r, &d);
	assert_int_equal(h_first_diff(src_mem, dst_mem, len), -1);
	rmig_src_destroy(src);
	rounds_free(&r);
	h_unmap(src_mem, len);
	h_unmap(dst_mem, len);
}

/* No SYNC_ALL at all: the destination's first wait_sync says "finished". */
static void test_no_rounds(void **state)
{
	const size_t len = 1 * MiB;
	uint8_t *src_mem = h_map(len), *dst_mem = h_map(len);
	struct rmig_opts o;
	struct rounds r;
	struct h_dst d;
	struct rmig_src *src;
	char err[512];
	int ret;

	h_fill_random(src_mem, len, 4);
	rounds_init(&r, dst_mem, len, 0);
	h_opts(&o, 3);
	src = h_pair_one_block(&d, &o, src_mem, dst_mem, len, PAGE);
	d.hook = rounds_hook;
	d.arg = &r;
	h_dst_start(&d);

	h_watchdog_arm(60, "no rounds");
	ret = h_src_connect_port(src, d.port);
	if (!ret)
		ret = h_src_queue_all(src, 0, len, PAGE);
	if (!ret)
		ret = rmig_src_sync(src, RMIG_SYNC_LOCAL);
	if (!ret)
		ret = rmig_src_finish(src);
	h_end(&src, ret, err, sizeof(err), &d);
	if (ret)
		fail_msg("source: %d %s / destination: %s", ret, err, d.error);
	check_rounds(&r, &d);
	assert_int_equal(d.stats.sync_rounds, 0);
	assert_int_equal(h_first_diff(src_mem, dst_mem, len), -1);
	rmig_src_destroy(src);
	rounds_free(&r);
	h_unmap(src_mem, len);
	h_unmap(dst_mem, len);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rounds),
		cmocka_unit_test(test_fence_holds),
		cmocka_unit_test(test_no_rounds),
	};

	/* unbuffered: a crash must not swallow the report in the test log */
	setvbuf(stdout, NULL, _IONBF, 0);
	return cmocka_run_group_tests_name("sync", tests, NULL, NULL);
}
