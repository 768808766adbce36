// SPDX-License-Identifier: MIT
/*
 * Failures over loopback TCP: RAM-block tables that differ, a peer that goes
 * away in the middle of a large transfer, cancel, and bad input to the API
 * (bad pages, bad URIs, a closed port, a port in use, accept timeouts).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define MiB (1ull << 20)
#define PAGE 4096u

static void sleep_ms(long ms)
{
	nanosleep(&(struct timespec){ .tv_sec = ms / 1000, .tv_nsec = ms % 1000 * 1000000 }, NULL);
}

/* ---- RAM-block tables that differ ------------------------------------------------- */

enum table_diff { DIFF_LENGTH, DIFF_NAME, DIFF_PAGE_SIZE, DIFF_COUNT };

static void mismatch_case(enum table_diff diff, const char *word)
{
	const size_t len = 2 * MiB;
	uint8_t *src_mem = h_map(2 * len), *dst_mem = h_map(2 * len);
	struct rmig_opts o;
	struct h_dst d, s; /* s only describes the source's table */
	struct rmig_src *src;
	int ret;

	h_fill_byte(dst_mem, 2 * len, 0x3c);
	h_dst_init(&d);
	h_dst_add(&d, "pc.ram", dst_mem, len, PAGE);
	h_dst_add(&d, "vga.vram", dst_mem + len, len, PAGE);
	h_dst_init(&s);
	h_dst_add(&s, "pc.ram", src_mem, len, PAGE);
	switch (diff) {
	case DIFF_LENGTH:
		h_dst_add(&s, "vga.vram", src_mem + len, len - PAGE, PAGE);
		break;
	case DIFF_NAME:
		h_dst_add(&s, "vga.vrom", src_mem + len, len, PAGE);
		break;
	case DIFF_PAGE_SIZE:
		h_dst_add(&s, "vga.vram", src_mem + len, len, 2 * PAGE);
		break;
	case DIFF_COUNT:
		break;
	}
	h_opts(&o, 2);
	src = h_src_new(&o, &s);
	h_dst_start(&d);

	h_watchdog_arm(60, "block table mismatch");
	ret = h_src_connect_port(src, d.port);
	if (ret == 0) {
		/* wrongly accepted: end the source so the destination is not left waiting */
		rmig_src_destroy(src);
		h_dst_join(&d);
		fail_msg("connect succeeded with a different table (destination: accept %d, %s)",
			 d.accept_ret, d.error);
	}
	h_dst_end(&d);
	assert_int_equal(ret, -EPROTO);
	h_assert_contains(rmig_src_error(src), "mismatch");
	h_assert_contains(rmig_src_error(src), word);
	assert_int_equal(d.accept_ret, -EPROTO);
	h_assert_contains(d.error, "mismatch");
	h_assert_contains(d.error, word);
	/* Refused before any page: destination RAM untouched, the handle stays failed. */
	for (size_t i = 0; i < 2 * len; i++)
		if (dst_mem[i] != 0x3c)
			fail_msg("destination byte %zu written after a refused handshake", i);
	assert_int_equal(rmig_src_queue_page(src, 0, 0), -EPROTO);
	assert_int_equal(rmig_src_finish(src), -EPROTO);
	rmig_src_destroy(src);
	h_unmap(src_mem, 2 * len);
	h_unmap(dst_mem, 2 * len);
}

static void test_mismatch_length(void **state)
{
	mismatch_case(DIFF_LENGTH, "vga.vram");
}

static void test_mismatch_name(void **state)
{
	mismatch_case(DIFF_NAME, "vga.vrom");
}

static void test_mismatch_page_size(void **state)
{
	mismatch_case(DIFF_PAGE_SIZE, "vga.vram");
}

static void test_mismatch_count(void **state)
{
	mismatch_case(DIFF_COUNT, "1 blocks");
}

/* ---- the destination goes away in the middle of a large transfer ------------------- */

#define BIG (512 * MiB)

struct cancel_after {
	uint64_t pages; /* cancel once this many data pages have arrived */
	uint64_t seen;
	bool timed_out;
};

static int cancel_hook(struct h_dst *d)
{
	struct cancel_after *c = d->arg;
	struct rmig_stats st = { .size = sizeof(st) };

	for (int i = 0; i < h_guard_s(H_TIMEOUT_MS / 1000) * 1000; i++) {
		rmig_dst_get_stats(d->dst, &st);
		if (st.normal_pages >= c->pages)
			break;
		sleep_ms(1);
	}
	c->seen = st.normal_pages;
	c->timed_out = st.normal_pages < c->pages;
	rmig_dst_cancel(d->dst);
	return 0;
}

static void test_dst_cancelled_mid_transfer(void **state)
{
	uint8_t *src_mem = h_map(BIG), *dst_mem = h_map(BIG);
	struct cancel_after c = { .pages = 2048 };
	uint64_t before;
	struct rmig_opts o;
	struct h_dst d;
	struct rmig_src *src;
	char err[512];
	int ret, again;

	h_fill_random(src_mem, BIG, 61);
	before = h_hash(src_mem, BIG);
	h_opts(&o, 4);
	src = h_pair_one_block(&d, &o, src_mem, dst_mem, BIG, PAGE);
	d.hook = cancel_hook;
	d.arg = &c;
	h_dst_start(&d);

	h_watchdog_arm(120, "destination cancelled mid-transfer");
	ret = h_src_connect_port(src, d.port);
	assert_int_equal(ret, 0);
	ret = h_src_queue_all(src, 0, BIG, PAGE);
	if (!ret)
		ret = rmig_src_sync(src, RMIG_SYNC_ALL);
	if (!ret)
		ret = rmig_src_finish(src);
	h_dst_end(&d);

	assert_false(c.timed_out);
	/* The destination never calls it a success, and says why. */
	assert_int_equal(d.finish_ret, -ECANCELED);
	h_assert_contains(d.error, "cancelled");
	assert_true(d.stats.normal_pages < BIG / PAGE);
	/* The source fails, with a reason, and stays failed. */
	if (ret >= 0)
		fail_msg("source returned %d although the destination was cancelled", ret);
	snprintf(err, sizeof(err), "%s", rmig_src_error(src));
	print_message("source error: %s\n", err);
	assert_true(strlen(err) > 10);
	assert_true(strstr(err, "channel") || strstr(err, "destination"));
	again = rmig_src_finish(src);
	assert_int_equal(again, ret);
	assert_int_equal(rmig_src_sync(src, RMIG_SYNC_ALL), ret);
	rmig_src_destroy(src);
	/* rmig never writes source RAM. */
	assert_true(h_hash(src_mem, BIG) == before);
	h_unmap(src_mem, BIG);
	h_unmap(dst_mem, BIG);
}

static void test_src_destroyed_mid_transfer(void **state)
{
	uint8_t *src_mem = h_map(BIG), *dst_mem = h_map(BIG);
	struct rmig_opts o;
	struct h_dst d;
	struct rmig_src *src;
	int ret;

	h_fill_random(src_mem, BIG, 62);
	h_opts(&o, 4);
	src = h_pair_one_block(&d, &o, src_mem, dst_mem, BIG, PAGE);
	h_dst_start(&d);

	h_watchdog_arm(120, "source destroyed mid-transfer");
	ret = h_src_connect_port(src, d.port);
	assert_int_equal(ret, 0);
	/* A quarter of the region, then the source is gone. */
	assert_int_equal(h_src_queue_all(src, 0, BIG / 4, PAGE), 0);
	rmig_src_destroy(src);
	h_dst_end(&d);

	assert_int_equal(d.accept_ret, 0);
	if (d.finish_ret >= 0)
		fail_msg("destination finish returned %d after the source vanished", d.finish_ret);
	assert_int_equal(d.finish_ret, -ECONNRESET);
	/* the source said why before it went: that, not "connection closed", is the error */
	h_assert_contains(d.error, "source aborted: the source closed the migration before finishing");
	assert_true(d.stats.normal_pages <= BIG / 4 / PAGE);
	h_unmap(src_mem, BIG);
	h_unmap(dst_mem, BIG);
}

/* ---- cancel from another thread while the source is blocked ------------------------ */

struct stall {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool go;
};

/*
 * The destination does not call wait_sync until told to: its channels stay
 * stopped at the first fence, so the source fills the socket buffers and
 * blocks waiting for a channel.
 */
static int stall_hook(struct h_dst *d)
{
	struct stall *s = d->arg;

	pthread_mutex_lock(&s->lock);
	while (!s->go)
		pthread_cond_wait(&s->cond, &s->lock);
	pthread_mutex_unlock(&s->lock);
	return 0;
}

static void stall_release(struct stall *s)
{
	pthread_mutex_lock(&s->lock);
	s->go = true;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

static void *canceller(void *arg)
{
	sleep_ms(200);
	rmig_src_cancel(arg);
	return NULL;
}

/* Start a migration whose source is blocked behind a held fence, cancel it. */
static struct rmig_src *cancelled_source(struct h_dst *d, struct stall *s, uint8_t *src_mem,
					 uint8_t *dst_mem, size_t len, int *retp)
{
	struct rmig_opts o;
	struct rmig_src *src;
	pthread_t t;
	int ret;

	h_fill_random(src_mem, len, 63);
	h_dst_init(d);
	h_dst_add(d, "pc.ram", src_mem, len, PAGE);
	h_opts(&o, 2);
	src = h_src_new(&o, d);
	d->blocks[0].host = dst_mem;
	d->hook = stall_hook;
	d->arg = s;
	h_dst_start(d);

	assert_int_equal(h_src_connect_port(src, d->port), 0);
	assert_int_equal(rmig_src_sync(src, RMIG_SYNC_ALL), 0);
	assert_int_equal(pthread_create(&t, NULL, canceller, src), 0);
	ret = h_src_queue_all(src, 0, len, PAGE); /* far more than socket buffers hold */
	if (!ret)
		ret = rmig_src_finish(src);
	pthread_join(t, NULL);
	*retp = ret;
	return src;
}

static void test_src_cancel(void **state)
{
	const size_t len = 64 * MiB;
	uint8_t *src_mem = h_map(len), *dst_mem = h_map(len);
	struct stall s = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false };
	struct h_dst d;
	struct rmig_src *src;
	int ret;

	h_watchdog_arm(60, "source cancel");
	src = cancelled_source(&d, &s, src_mem, dst_mem, len, &ret);
	assert_int_equal(ret, -ECANCELED);
	h_assert_contains(rmig_src_error(src), "cancelled");
	assert_int_equal(rmig_src_finish(src), -ECANCELED);
	assert_int_equal(rmig_src_sync(src, RMIG_SYNC_LOCAL), -ECANCELED);
	assert_int_equal(rmig_src_queue_device_state(src, "dev", 0, "x", 1), -ECANCELED);
	rmig_src_destroy(src);

	stall_release(&s);
	h_dst_end(&d);
	/* The source never finished: the destination must not confirm. */
	if (d.finish_ret >= 0)
		fail_msg("destination finish returned %d for a cancelled source", d.finish_ret);
	assert_int_equal(d.finish_ret, -ECONNRESET);
	h_assert_contains(d.error, "closed");
	h_unmap(src_mem, len);
	h_unmap(dst_mem, len);
}

/*
 * rmig.h: "Once a handle has failed it stays failed: every later call
 * returns the same negative errno." That includes queue_page when the page
 * would only go into a batch that is not full yet (here: right after a
 * sync emptied it).
 */
static void test_failed_source_stays_failed(void **state)
{
	const size_t len = 1 * MiB;
	uint8_t *src_mem = h_map(len), *dst_mem = h_map(len);
	struct h_dst d;
	struct rmig_src *src;
	int page_ret, dev_ret, sync_ret;

	h_fill_random(src_mem, len, 65);
	src = h_pair_one_block(&d, NULL, src_mem, dst_mem, len, PAGE);
	h_dst_start(&d);

	h_watchdog_arm(60, "failed source stays failed");
	assert_int_equal(h_src_connect_port(src, d.port), 0);
	assert_int_equal(h_src_queue_all(src, 0, len, PAGE), 0);
	assert_int_equal(rmig_src_sync(src, RMIG_SYNC_ALL), 0);
	rmig_src_cancel(src);
	page_ret = rmig_src_queue_page(src, 0, 0);
	dev_ret = rmig_src_queue_device_state(src, "dev", 0, "x", 1);
	sync_ret = rmig_src_sync(src, RMIG_SYNC_LOCAL);
	rmig_src_destroy(src);
	h_dst_end(&d);
	h_unmap(src_mem, len);
	h_unmap(dst_mem, len);
	assert_true(d.finish_ret < 0);
	assert_int_equal(dev_ret, -ECANCELED);
	assert_int_equal(sync_ret, -ECANCELED);
	assert_int_equal(page_ret, -ECANCELED);
}

/* ---- bad input to the API -------------------------------------------------------- */

static void test_bad_pages_then_success(void **state)
{
	const size_t len = 4 * MiB;
	uint8_t *src_mem = h_map(len), *dst_mem = h_map(len);
	struct h_dst d;
	struct rmig_src *src;
	char err[512];
	int ret;

	h_fill_random(src_mem, len, 64);
	src = h_pair_one_block(&d, NULL, src_mem, dst_mem, len, PAGE);
	h_dst_start(&d);

	h_watchdog_arm(60, "bad pages");
	assert_int_equal(h_src_connect_port(src, d.port), 0);
	assert_int_equal(rmig_src_queue_page(src, 1, 0), -EINVAL);
	assert_int_equal(rmig_src_queue_page(src, 0, len), -EINVAL);
	assert_int_equal(rmig_src_queue_page(src, 0, PAGE + 1), -EINVAL);
	assert_int_equal(rmig_src_queue_page(src, 0, UINT64_MAX), -EINVAL);
	assert_int_equal(rmig_src_sync(src, (enum rmig_sync_kind)2), -EINVAL);
	/* Refused input does not fail the migration. */
	ret = h_src_queue_all(src, 0, len, PAGE);
	if (!ret)
		ret = rmig_src_finish(src);
	h_end(&src, ret, err, sizeof(err), &d);
	if (ret || d.finish_ret)
		fail_msg("source %d (%s), destination %d (%s)", ret, err, d.finish_ret, d.error);
	assert_int_equal(h_first_diff(src_mem, dst_mem, len), -1);
	rmig_src_destroy(src);
	h_unmap(src_mem, len);
	h_unmap(dst_mem, len);
}

static struct rmig_src *lone_src(uint8_t *mem)
{
	struct rmig_opts o;
	struct rmig_src *src;

	h_opts(&o, 2);
	assert_int_equal(rmig_src_create(&o, &src), 0);
	assert_int_equal(rmig_src_add_block(src, &(struct rmig_block_desc){ "ram", mem, 1 << 20, PAGE }),
			 0);
	return src;
}

static void test_bad_uris(void **state)
{
	uint8_t *mem = h_map(1 << 20);
	struct rmig_src *src;

	src = lone_src(mem);
	assert_int_equal(rmig_src_connect(src, "smoke-signal:127.0.0.1:1"), -EINVAL);
	h_assert_contains(rmig_src_error(src), "smoke-signal:127.0.0.1:1");
	rmig_src_destroy(src);

	src = lone_src(mem);
	assert_int_equal(rmig_src_connect(src, "tcp:127.0.0.1"), -EINVAL);
	h_assert_contains(rmig_src_error(src), "127.0.0.1");
	rmig_src_destroy(src);

	src = lone_src(mem);
	assert_int_equal(rmig_src_connect(src, "tcp127.0.0.1:5"), -EINVAL);
	h_assert_contains(rmig_src_error(src), "tcp127.0.0.1:5");
	rmig_src_destroy(src);
	h_unmap(mem, 1 << 20);
}

/* A TCP port that is bound but not listening: connecting to it is refused. */
static int closed_port(int *fdp)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	*fdp = fd;
	return ntohs(sa.sin_port);
}

static void test_connect_refused(void **state)
{
	uint8_t *mem = h_map(1 << 20);
	struct rmig_src *src = lone_src(mem);
	char uri[64], addr[64];
	int fd, port = closed_port(&fd);

	snprintf(uri, sizeof(uri), "tcp:127.0.0.1:%d", port);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	assert_int_equal(rmig_src_connect(src, uri), -ECONNREFUSED);
	h_assert_contains(rmig_src_error(src), addr);
	h_assert_contains(rmig_src_error(src), "refused");
	assert_int_equal(rmig_src_queue_page(src, 0, 0), -ECONNREFUSED);
	rmig_src_destroy(src);
	close(fd);
	h_unmap(mem, 1 << 20);
}

static void *cancel_src_later(void *arg)
{
	sleep_ms(200);
	rmig_src_cancel(arg);
	return NULL;
}

/*
 * A destination that accepts the connection (the kernel does, from the
 * backlog) but never answers HELLO: connect waits for WELCOME until a
 * cancel from another thread, which must reach the control connection
 * connect is still setting up (a ThreadSanitizer case too).
 */
static void test_src_cancel_during_connect(void **state)
{
	uint8_t *mem = h_map(1 << 20);
	struct rmig_src *src = lone_src(mem);
	char uri[64];
	pthread_t t;
	int fd, port = closed_port(&fd);

	assert_int_equal(listen(fd, 8), 0);
	snprintf(uri, sizeof(uri), "tcp:127.0.0.1:%d", port);
	h_watchdog_arm(60, "source cancel during connect");
	assert_int_equal(pthread_create(&t, NULL, cancel_src_later, src), 0);
	assert_int_equal(rmig_src_connect(src, uri), -ECANCELED);
	pthread_join(t, NULL);
	h_watchdog_disarm();
	h_assert_contains(rmig_src_error(src), "cancelled");
	rmig_src_destroy(src);
	close(fd);
	h_unmap(mem, 1 << 20);
}

static void test_listen_in_use(void **state)
{
	uint8_t *mem = h_map(1 << 20);
	struct rmig_dst *a, *b;
	char uri[64];

	assert_int_equal(rmig_dst_create(NULL, &a), 0);
	assert_int_equal(rmig_dst_create(NULL, &b), 0);
	assert_int_equal(rmig_dst_add_block(a, &(struct rmig_block_desc){ "ram", mem, 1 << 20, PAGE }),
			 0);
	assert_int_equal(rmig_dst_add_block(b, &(struct rmig_block_desc){ "ram", mem, 1 << 20, PAGE }),
			 0);
	assert_int_equal(rmig_dst_listen(a, "tcp:127.0.0.1:0"), 0);
	assert_int_equal(rmig_dst_listen(a, "tcp:127.0.0.1:0"), -EBUSY);
	snprintf(uri, sizeof(uri), "tcp:127.0.0.1:%d", rmig_dst_port(a));
	assert_int_equal(rmig_dst_listen(b, uri), -EADDRINUSE);
	h_assert_contains(rmig_dst_error(b), uri + 4);
	rmig_dst_destroy(a);
	rmig_dst_destroy(b);
	h_unmap(mem, 1 << 20);
}

static void *cancel_dst_later(void *arg)
{
	sleep_ms(100);
	rmig_dst_cancel(arg);
	return NULL;
}

static void test_accept_timeout_and_cancel(void **state)
{
	uint8_t *mem = h_map(1 << 20);
	struct rmig_opts o;
	struct rmig_dst *dst;
	pthread_t t;

	h_opts(&o, 0);
	o.timeout_ms = 200;
	assert_int_equal(rmig_dst_create(&o, &dst), 0);
	assert_int_equal(rmig_dst_add_block(dst, &(struct rmig_block_desc){ "ram", mem, 1 << 20, PAGE }),
			 0);
	assert_int_equal(rmig_dst_listen(dst, "tcp:127.0.0.1:0"), 0);
	assert_int_equal(rmig_dst_accept(dst), -ETIMEDOUT);
	h_assert_contains(rmig_dst_error(dst), "200 ms");
	rmig_dst_destroy(dst);

	h_opts(&o, 0);
	assert_int_equal(rmig_dst_create(&o, &dst), 0);
	assert_int_equal(rmig_dst_add_block(dst, &(struct rmig_block_desc){ "ram", mem, 1 << 20, PAGE }),
			 0);
	assert_int_equal(rmig_dst_listen(dst, "tcp:127.0.0.1:0"), 0);
	h_watchdog_arm(60, "accept cancel");
	assert_int_equal(pthread_create(&t, NULL, cancel_dst_later, dst), 0);
	assert_int_equal(rmig_dst_accept(dst), -ECANCELED);
	pthread_join(t, NULL);
	h_watchdog_disarm();
	h_assert_contains(rmig_dst_error(dst), "cancel");
	rmig_dst_destroy(dst);
	h_unmap(mem, 1 << 20);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mismatch_length),
		cmocka_unit_test(test_mismatch_name),
		cmocka_unit_test(test_mismatch_page_size),
		cmocka_unit_test(test_mismatch_count),
		cmocka_unit_test(test_dst_cancelled_mid_transfer),
		cmocka_unit_test(test_src_destroyed_mid_transfer),
		cmocka_unit_test(test_src_cancel),
		cmocka_unit_test(test_failed_source_stays_failed),
		cmocka_unit_test(test_bad_pages_then_success),
		cmocka_unit_test(test_bad_uris),
		cmocka_unit_test(test_connect_refused),
		cmocka_unit_test(test_src_cancel_during_connect),
		cmocka_unit_test(test_listen_in_use),
		cmocka_unit_test(test_accept_timeout_and_cancel),
	};

	/* unbuffered: a crash must not swallow the report in the test log */
	setvbuf(stdout, NULL, _IONBF, 0);
	return cmocka_run_group_tests_name("errors", tests, NULL, NULL);
}
