// SPDX-License-Identifier: MIT
/*
 * Device state over loopback TCP: chunks queued from two threads while the
 * main thread queues RAM and syncs arrive in the source's order with their
 * bytes intact (large states split at RMIG_DEV_CHUNK_MAX, empty ones kept);
 * at a sync round exactly the chunks queued before it have been delivered;
 * a callback that refuses a chunk fails the migration on both sides.
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

#include <cmocka.h>

#include "harness.h"

#define MiB (1ull << 20)
#define PAGE 4096u
#define NTHREADS 2
#define ITEMS 100 /* per thread */
#define MAX_ROUNDS 8

/* ---- generated device states: size and bytes depend on (thread, item) ------ */

static size_t item_size(unsigned int t, unsigned int k)
{
	switch (k % 25) {
	case 3:
		return 2 * (size_t)RMIG_DEV_CHUNK_MAX + 12345; /* three chunks */
	case 7:
		return RMIG_DEV_CHUNK_MAX; /* exactly one */
	case 11:
		return RMIG_DEV_CHUNK_MAX + 1; /* two, the second of one byte */
	}
	if (k % 10 == 0)
		return 0;
	return 1 + (k * 7919u + t * 104729u) % 9000;
}

static unsigned int item_chunks(size_t size)
{
	return size ? (unsigned int)((size + RMIG_DEV_CHUNK_MAX - 1) / RMIG_DEV_CHUNK_MAX) : 1;
}

static uint8_t item_byte(unsigned int t, unsigned int k, size_t i)
{
	uint64_t x = (i / 8) * 0x9e3779b97f4a7c15ull ^ ((uint64_t)k << 40) ^ ((uint64_t)t << 56);

	x ^= x >> 29;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 32;
	return (uint8_t)(x >> (8 * (i % 8)));
}

static uint8_t *item_make(unsigned int t, unsigned int k, size_t *len)
{
	size_t n = item_size(t, k);
	uint8_t *b = malloc(n ? n : 1);

	assert_non_null(b);
	for (size_t i = 0; i < n; i++)
		b[i] = item_byte(t, k, i);
	*len = n;
	return b;
}

/* ---- the destination's callback: checks order and bytes as chunks arrive ----- */

struct dev_rx {
	pthread_mutex_t lock;
	uint64_t next_seq;
	unsigned int next_item[NTHREADS];
	size_t item_off[NTHREADS];
	unsigned int chunks;
	uint64_t bytes;
	unsigned int errors;
	char first_err[256];
	int64_t refuse_seq; /* refuse this chunk (-1: none) */
};

static void rx_init(struct dev_rx *rx)
{
	memset(rx, 0, sizeof(*rx));
	pthread_mutex_init(&rx->lock, NULL);
	rx->refuse_seq = -1;
}

__attribute__((format(printf, 2, 3))) static void rx_err(struct dev_rx *rx, const char *fmt,
							   ...)
{
	va_list ap;

	if (rx->errors++ == 0) {
		va_start(ap, fmt);
		vsnprintf(rx->first_err, sizeof(rx->first_err), fmt, ap);
		va_end(ap);
	}
}

static int rx_cb(void *arg, const char *idstr, uint32_t instance, uint64_t seq, const void *data,
		 size_t len)
{
	struct dev_rx *rx = arg;
	const uint8_t *b = data;
	unsigned int t, k = instance;
	size_t size, off, want;
	int ret = 0;

	pthread_mutex_lock(&rx->lock);
	if (seq != rx->next_seq)
		rx_err(rx, "chunk seq %llu delivered where %llu was due", (unsigned long long)seq,
		       (unsigned long long)rx->next_seq);
	rx->next_seq = seq + 1;
	rx->chunks++;
	rx->bytes += len;
	if (sscanf(idstr, "dev-%u", &t) != 1 || t >= NTHREADS) {
		rx_err(rx, "unexpected device id '%s'", idstr);
		goto out;
	}
	if (k != rx->next_item[t]) {
		rx_err(rx, "thread %u: item %u arrived, item %u was due", t, k, rx->next_item[t]);
		goto out;
	}
	size = item_size(t, k);
	off = rx->item_off[t];
	want = size - off < RMIG_DEV_CHUNK_MAX ? size - off : RMIG_DEV_CHUNK_MAX;
	if (len != want) {
		rx_err(rx, "thread %u item %u: chunk of %zu bytes at %zu, expected %zu", t, k, len,
		       off, want);
		goto out;
	}
	for (size_t i = 0; i < len; i++)
		if (b[i] != item_byte(t, k, off + i)) {
			rx_err(rx, "thread %u item %u: wrong byte at %zu", t, k, off + i);
			goto out;
		}
	off += len;
	if (off == size) {
		rx->next_item[t]++;
		off = 0;
	}
	rx->item_off[t] = off;
out:
	if ((int64_t)seq == rx->refuse_seq)
		ret = -1;
	pthread_mutex_unlock(&rx->lock);
	return ret;
}

static unsigned int rx_chunks(struct dev_rx *rx)
{
	unsigned int n;

	pthread_mutex_lock(&rx->lock);
	n = rx->chunks;
	pthread_mutex_unlock(&rx->lock);
	return n;
}

/* ---- two producer threads concurrent with RAM --------------------------------- */

struct dev_producer {
	struct rmig_src *src;
	unsigned int t;
	int ret;
};

static void *producer_main(void *arg)
{
	struct dev_producer *p = arg;
	char id[32];

	snprintf(id, sizeof(id), "dev-%u", p->t);
	for (unsigned int k = 0; k < ITEMS && !p->ret; k++) {
		size_t len;
		uint8_t *b = item_make(p->t, k, &len);

		p->ret = rmig_src_queue_device_state(p->src, id, k, b, len);
		free(b);
	}
	return NULL;
}

static void test_concurrent_with_ram(void **state)
{
	const size_t len = 32 * MiB;
	uint8_t *src_mem = h_map(len), *dst_mem = h_map(len);
	struct dev_producer prod[NTHREADS];
	pthread_t threads[NTHREADS];
	unsigned int want_chunks = 0;
	uint64_t want_bytes = 0;
	struct rmig_stats ss = { 0 };
	struct rmig_opts o;
	struct dev_rx rx;
	struct h_dst d;
	struct rmig_src *src;
	char err[512];
	int ret;

	for (unsigned int t = 0; t < NTHREADS; t++)
		for (unsigned int k = 0; k < ITEMS; k++) {
			want_chunks += item_chunks(item_size(t, k));
			want_bytes += item_size(t, k);
		}
	h_fill_random(src_mem, len, 21);
	rx_init(&rx);
	h_opts(&o, 4);
	src = h_pair_one_block(&d, &o, src_mem, dst_mem, len, PAGE);
	d.dev_fn = rx_cb;
	d.dev_arg = &rx;
	h_dst_start(&d);

	h_watchdog_arm(180, "device state concurrent with RAM");
	ret = h_src_connect_port(src, d.port);
	assert_int_equal(ret, 0);
	for (unsigned int t = 0; t < NTHREADS; t++) {
		prod[t] = (struct dev_producer){ .src = src, .t = t };
		assert_int_equal(pthread_create(&threads[t], NULL, producer_main, &prod[t]), 0);
	}
	/* RAM from this thread meanwhile, in three rounds. */
	for (int round = 0; round < 3 && !ret; round++) {
		ret = h_src_queue_all(src, 0, len, PAGE);
		if (!ret && round < 2)
			ret = rmig_src_sync(src, RMIG_SYNC_ALL);
	}
	for (unsigned int t = 0; t < NTHREADS; t++) {
		pthread_join(threads[t], NULL);
		if (!ret)
			ret = prod[t].ret;
	}
	if (!ret)
		ret = rmig_src_finish(src);
	if (!ret)
		ss = h_src_stats(src);
	h_end(&src, ret, err, sizeof(err), &d);
	if (ret || d.accept_ret || d.finish_ret)
		fail_msg("source %d (%s), destination accept %d finish %d (%s)", ret, err,
			 d.accept_ret, d.finish_ret, d.error);
	if (rx.errors)
		fail_msg("%u device-state error(s), first: %s", rx.errors, rx.first_err);
	for (unsigned int t = 0; t < NTHREADS; t++) {
		assert_int_equal(rx.next_item[t], ITEMS);
		assert_int_equal(rx.item_off[t], 0);
	}
	assert_int_equal(rx.chunks, want_chunks);
	assert_int_equal(rx.bytes, want_bytes);
	assert_int_equal(ss.dev_chunks, want_chunks);
	assert_int_equal(ss.dev_bytes, want_bytes);
	h_check_stats_match(&ss, &d.stats);
	assert_int_equal(h_first_diff(src_mem, dst_mem, len), -1);
	rmig_src_destroy(src);
	pthread_mutex_destroy(&rx.lock);
	h_unmap(src_mem, len);
	h_unmap(dst_mem, len);
}

/* ---- at a sync round, exactly the chunks queued before it are delivered --------- */

struct at_sync {
	struct dev_rx *rx;
	unsigned int delivered[MAX_ROUNDS + 1];
	unsigned int rounds;
	int end_ret;
};

static int at_sync_hook(struct h_dst *d)
{
	struct at_sync *a = d->arg;
	uint64_t round;
	int ret;

	while ((ret = rmig_dst_wait_sync(d->dst, &round)) == 0) {
		/* Channels are held at the fence: no chunk can be delivered meanwhile. */
		if (round <= MAX_ROUNDS)
			a->delivered[round] = rx_chunks(a->rx);
		a->rounds++;
	}
	a->end_ret = ret;
	return ret == 1 ? 0 : ret;
}

static void test_delivered_at_sync(void **state)
{
	const size_t len = 4 * MiB;
	const unsigned int rounds = 5;
	uint8_t *src_mem = h_map(len), *dst_mem = h_map(len);
	unsigned int queued[MAX_ROUNDS + 1] = { 0 }, total = 0, k = 0;
	struct rmig_opts o;
	struct at_sync a = { 0 };
	struct dev_rx rx;
	struct h_dst d;
	struct rmig_src *src;
	char err[512];
	int ret;

	h_fill_random(src_mem, len, 31);
	rx_init(&rx);
	a.rx = &rx;
	h_opts(&o, 3);
	src = h_pair_one_block(&d, &o, src_mem, dst_mem, len, PAGE);
	d.dev_fn = rx_cb;
	d.dev_arg = &rx;
	d.hook = at_sync_hook;
	d.arg = &a;
	h_dst_start(&d);

	h_watchdog_arm(120, "device state at sync");
	ret = h_src_connect_port(src, d.port);
	for (unsigned int r = 1; !ret && r <= rounds; r++) {
		/* device state and RAM interleaved, the last thing before the sync a chunk */
		for (unsigned int i = 0; i < 8 && !ret; i++, k++) {
			size_t n;
			uint8_t *b = item_make(0, k, &n);

			ret = rmig_src_queue_device_state(src, "dev-0", k, b, n);
			total += item_chunks(n);
			free(b);
			for (size_t off = (size_t)i * PAGE * 16; !ret && off < (size_t)(i + 1) * PAGE * 16;
			     off += PAGE)
				ret = rmig_src_queue_page(src, 0, off);
		}
		queued[r] = total;
		if (!ret)
			ret = rmig_src_sync(src, RMIG_SYNC_ALL);
	}
	if (!ret)
		ret = rmig_src_finish(src);
	h_end(&src, ret, err, sizeof(err), &d);
	if (ret || d.accept_ret || d.hook_ret || d.finish_ret)
		fail_msg("source %d (%s), destination %d/%d/%d (%s)", ret, err, d.accept_ret,
			 d.hook_ret, d.finish_ret, d.error);
	if (rx.errors)
		fail_msg("%u device-state error(s), first: %s", rx.errors, rx.first_err);
	assert_int_equal(a.rounds, rounds);
	assert_int_equal(a.end_ret, 1);
	for (unsigned int r = 1; r <= rounds; r++)
		if (a.delivered[r] != queued[r])
			fail_msg("round %u: %u chunks delivered at the fence, %u were queued before it",
				 r, a.delivered[r], queued[r]);
	assert_int_equal(rx.chunks, total);
	rmig_src_destroy(src);
	pthread_mutex_destroy(&rx.lock);
	h_unmap(src_mem, len);
	h_unmap(dst_mem, len);
}

/* ---- a callback that refuses a chunk ---------------------------------------------- */

static void test_callback_refuses(void **state)
{
	const size_t len = 8 * MiB;
	uint8_t *src_mem = h_map(len), *dst_mem = h_map(len);
	struct rmig_opts o;
	struct dev_rx rx;
	struct h_dst d;
	struct rmig_src *src;
	char err[512];
	int ret;

	h_fill_random(src_mem, len, 41);
	rx_init(&rx);
	rx.refuse_seq = 5;
	h_opts(&o, 2);
	src = h_pair_one_block(&d, &o, src_mem, dst_mem, len, PAGE);
	d.dev_fn = rx_cb;
	d.dev_arg = &rx;
	h_dst_start(&d);

	h_watchdog_arm(120, "callback refuses");
	ret = h_src_connect_port(src, d.port);
	for (unsigned int k = 0; !ret && k < 20; k++) {
		size_t n;
		uint8_t *b = item_make(0, k, &n);

		ret = rmig_src_queue_device_state(src, "dev-0", k, b, n);
		free(b);
	}
	if (!ret)
		ret = h_src_queue_all(src, 0, len, PAGE);
	if (!ret)
		ret = rmig_src_sync(src, RMIG_SYNC_ALL);
	if (!ret)
		ret = rmig_src_finish(src);
	h_end(&src, ret ? ret : -1, err, sizeof(err), &d);

	assert_int_equal(d.accept_ret, 0);
	assert_true(d.finish_ret < 0);
	h_assert_contains(d.error, "refused");
	h_assert_contains(d.error, "dev-0");
	/* The source must not believe the migration succeeded. */
	if (ret >= 0)
		fail_msg("source returned %d after the destination refused (%s)", ret, err);
	assert_true(err[0] != '\0');
	/* Delivery stopped at the refused chunk. */
	assert_int_equal(rx.chunks, 6);
	pthread_mutex_destroy(&rx.lock);
	h_unmap(src_mem, len);
	h_unmap(dst_mem, len);
}

/* No callback: device state is dropped, the migration still verifies. */
static void test_no_callback(void **state)
{
	const size_t len = 1 * MiB;
	uint8_t *src_mem = h_map(len), *dst_mem = h_map(len);
	struct h_dst d;
	struct rmig_src *src;
	char err[512];
	int ret;

	h_fill_random(src_mem, len, 51);
	src = h_pair_one_block(&d, NULL, src_mem, dst_mem, len, PAGE);
	h_dst_start(&d);

	h_watchdog_arm(60, "no callback");
	ret = h_src_connect_port(src, d.port);
	for (unsigned int k = 0; !ret && k < 12; k++) {
		size_t n;
		uint8_t *b = item_make(1, k, &n);

		ret = rmig_src_queue_device_state(src, "dev-1", k, b, n);
		free(b);
	}
	if (!ret)
		ret = h_src_queue_all(src, 0, len, PAGE);
	if (!ret)
		ret = rmig_src_finish(src);
	h_end(&src, ret, err, sizeof(err), &d);
	if (ret || d.finish_ret)
		fail_msg("source %d (%s), destination %d (%s)", ret, err, d.finish_ret, d.error);
	{
		unsigned int want = 0;

		for (unsigned int k = 0; k < 12; k++)
			want += item_chunks(item_size(1, k));
		assert_int_equal(d.stats.dev_chunks, want);
	}
	assert_int_equal(h_first_diff(src_mem, dst_mem, len), -1);
	rmig_src_destroy(src);
	h_unmap(src_mem, len);
	h_unmap(dst_mem, len);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_concurrent_with_ram),
		cmocka_unit_test(test_delivered_at_sync),
		cmocka_unit_test(test_callback_refuses),
		cmocka_unit_test(test_no_callback),
	};

	/* unbuffered: a crash must not swallow the report in the test log */
	setvbuf(stdout, NULL, _IONBF, 0);
	return cmocka_run_group_tests_name("devstate", tests, NULL, NULL);
}
