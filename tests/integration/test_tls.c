// SPDX-License-Identifier: MIT
/*
 * TLS 1.3 over loopback TCP (RMIG_F_TLS): a migration with certificates on
 * both sides and one with a pre-shared key arrive intact and report TLS in
 * the statistics; an expired client certificate, one from another CA, a
 * server certificate for another name, a key that differs, and one side
 * with TLS and the other without each fail on both sides with a reason
 * that names the problem, before a byte of RAM is written. A TLS listener
 * drops a half-open and a garbage connection and then takes the real source.
 *
 * The credentials are made at run time by tests/common/make-test-certs.sh
 * (its path is the first argument) in a temporary directory.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define MiB (1ull << 20)
#define PAGE 4096u
#define LEN (8 * MiB)
#define DST_WAIT_MS 4000 /* a destination that keeps waiting after a bad peer gives up */

static const char *script;
static char certs[256];

static const uint8_t key_a[40] = "0123456789abcdef0123456789abcdef-key-a";
static const uint8_t key_b[40] = "0123456789abcdef0123456789abcdef-key-b";

static int make_certs(void **state)
{
	char cmd[1024];

	snprintf(certs, sizeof(certs), "%s/rmig-tls-test.XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(certs))
		return -1;
	snprintf(cmd, sizeof(cmd), "bash '%s' '%s' >/dev/null", script, certs);
	return system(cmd) == 0 ? 0 : -1;
}

static int remove_certs(void **state)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", certs);
	return system(cmd) == 0 ? 0 : -1;
}

/* The credentials directory @name (good, expired, otherca, wronghost). */
static const char *creds(const char *name)
{
	static char bufs[4][320];
	static unsigned int next;
	char *b = bufs[next++ % 4];

	snprintf(b, sizeof(bufs[0]), "%s/%s", certs, name);
	return b;
}

/* One side's TLS setup: @dir NULL and @key NULL: plain tcp. */
static void tls_opts(struct rmig_opts *o, const char *dir, const uint8_t *key)
{
	if (!dir && !key)
		return;
	o->flags |= RMIG_F_TLS;
	o->tls_creds = dir;
	if (key) {
		o->psk = key;
		o->psk_len = sizeof(key_a);
	}
}

/* A raw connection to 127.0.0.1:@port that sends @bytes (NULL: nothing). */
static int raw_connect(int port, const char *bytes)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	if (bytes)
		assert_int_equal(send(fd, bytes, strlen(bytes), MSG_NOSIGNAL), (ssize_t)strlen(bytes));
	return fd;
}

/*
 * Before the real source: @half_open connects and says nothing, @garbage
 * speaks HTTP. Both are dropped, the source then gets through.
 */
static void migrate_ok_after_strays(const char *dir, const uint8_t *key, int *dropped)
{
	uint8_t *src_mem = h_map(LEN), *dst_mem = h_map(LEN);
	struct rmig_stats ss;
	struct rmig_opts o;
	struct rmig_src *src;
	struct h_dst d;
	char err[512];
	int ret, half_open = -1, garbage = -1;

	h_fill_random(src_mem, LEN, 12);
	h_opts(&o, 2);
	tls_opts(&o, dir, key);
	src = h_pair_one_block(&d, &o, src_mem, dst_mem, LEN, PAGE);
	tls_opts(&d.opts, dir, key);
	h_dst_start(&d);

	h_watchdog_arm(120, "TLS migration");
	if (dropped) {
		half_open = raw_connect(d.port, NULL);
		garbage = raw_connect(d.port, "GET / HTTP/1.0\r\n\r\n");
	}
	ret = h_src_connect_port(src, d.port);
	if (!ret)
		ret = h_src_queue_all(src, 0, LEN, PAGE);
	if (!ret)
		ret = rmig_src_finish(src);
	if (!ret)
		ss = h_src_stats(src);
	h_end(&src, ret, err, sizeof(err), &d);
	if (ret || d.accept_ret || d.finish_ret)
		fail_msg("source %d (%s), destination %d/%d (%s)", ret, err, d.accept_ret,
			 d.finish_ret, d.error);
	assert_int_equal(h_first_diff(src_mem, dst_mem, LEN), -1);
	h_check_stats_match(&ss, &d.stats);
	/* every channel in TLS, on both sides; kTLS where the kernel has it */
	assert_int_equal(ss.tls_channels, 2);
	assert_int_equal(d.stats.tls_channels, 2);
	assert_true(ss.ktls_channels <= 2);
	print_message("tls: %llu channels, %llu with kTLS sends\n",
		      (unsigned long long)ss.tls_channels, (unsigned long long)ss.ktls_channels);
	if (dropped)
		*dropped = (int)d.stats.conns_dropped;
	if (half_open >= 0)
		close(half_open);
	if (garbage >= 0)
		close(garbage);
	rmig_src_destroy(src);
	h_unmap(src_mem, LEN);
	h_unmap(dst_mem, LEN);
}

static void migrate_ok(const char *dir, const uint8_t *key)
{
	migrate_ok_after_strays(dir, key, NULL);
}

/* The handshake is part of accept(): a stalled or garbage one must not stop the listener. */
static void test_tls_listener_survives_strays(void **state)
{
	int dropped = 0;

	migrate_ok_after_strays(creds("good"), NULL, &dropped);
	assert_int_equal(dropped, 2);
}

static void test_tls_certs(void **state)
{
	migrate_ok(creds("good"), NULL);
}

static void test_tls_psk(void **state)
{
	migrate_ok(NULL, key_a);
}

/*
 * A failure: source with @s_dir/@s_key, destination with @d_dir/@d_key
 * (both NULL: plain); each side's error must contain its word.
 */
static void fail_case(const char *s_dir, const uint8_t *s_key, const char *d_dir,
		      const uint8_t *d_key, const char *src_word, const char *dst_word)
{
	uint8_t *src_mem = h_map(LEN), *dst_mem = h_map(LEN);
	struct rmig_opts o;
	struct rmig_src *src;
	struct h_dst d;
	char err[512];
	int ret;

	h_fill_random(src_mem, LEN, 13);
	h_fill_byte(dst_mem, LEN, 0x3c);
	h_opts(&o, 2);
	o.timeout_ms = 2 * DST_WAIT_MS;
	tls_opts(&o, s_dir, s_key);
	src = h_pair_one_block(&d, &o, src_mem, dst_mem, LEN, PAGE);
	d.opts.timeout_ms = DST_WAIT_MS;
	tls_opts(&d.opts, d_dir, d_key);
	h_dst_start(&d);

	h_watchdog_arm(120, "TLS failure");
	ret = h_src_connect_port(src, d.port);
	if (!ret)
		ret = h_src_queue_all(src, 0, LEN, PAGE);
	if (!ret)
		ret = rmig_src_finish(src);
	h_end(&src, ret, err, sizeof(err), &d);
	print_message("source: %d %s\ndestination: %d %s\n", ret, err, d.accept_ret, d.error);
	assert_int_not_equal(ret, 0);
	assert_int_not_equal(d.accept_ret, 0);
	h_assert_contains(err, src_word);
	h_assert_contains(d.error, dst_word);
	/* nothing of RAM written */
	for (size_t i = 0; i < LEN; i++)
		if (dst_mem[i] != 0x3c)
			fail_msg("destination byte %zu written although TLS failed", i);
	assert_int_equal(d.stats.normal_pages, 0);
	h_unmap(src_mem, LEN);
	h_unmap(dst_mem, LEN);
}

static void test_tls_expired_client_cert(void **state)
{
	fail_case(creds("expired"), NULL, creds("expired"), NULL, "certificate expired",
		  "certificate has expired");
}

static void test_tls_client_cert_other_ca(void **state)
{
	fail_case(creds("otherca"), NULL, creds("otherca"), NULL, "unknown CA",
		  "unable to get local issuer certificate");
}

static void test_tls_wrong_host(void **state)
{
	fail_case(creds("wronghost"), NULL, creds("wronghost"), NULL, "IP address mismatch",
		  "refused the session");
}

static void test_tls_psk_differs(void **state)
{
	fail_case(NULL, key_a, NULL, key_b, "authentication failed", "authentication failed");
}

static void test_tls_source_only(void **state)
{
	fail_case(creds("good"), NULL, NULL, NULL, "closed the connection during the TLS handshake",
		  "uses TLS and this side does not");
}

static void test_tls_destination_only(void **state)
{
	fail_case(NULL, NULL, creds("good"), NULL, "requires TLS and this side does not",
		  "does not speak TLS");
}

static void test_tls_bad_setup(void **state)
{
	uint8_t *mem = h_map(MiB);
	struct rmig_opts o;
	struct rmig_src *src;
	struct rmig_dst *dst;

	/* zero copy cannot go through TLS */
	h_opts(&o, 2);
	tls_opts(&o, creds("good"), NULL);
	o.flags |= RMIG_F_ZERO_COPY;
	assert_int_equal(rmig_src_create(&o, &src), 0);
	assert_int_equal(rmig_src_add_block(src, &(struct rmig_block_desc){ "ram", mem, MiB, PAGE }), 0);
	assert_int_equal(rmig_src_connect(src, "tcp:127.0.0.1:9"), -EINVAL);
	h_assert_contains(rmig_src_error(src), "zero copy");
	h_assert_contains(rmig_src_error(src), "TLS");
	rmig_src_destroy(src);

	/* a credentials directory without the destination's files */
	h_opts(&o, 2);
	tls_opts(&o, creds("none"), NULL);
	assert_int_equal(rmig_dst_create(&o, &dst), 0);
	assert_int_equal(rmig_dst_add_block(dst, &(struct rmig_block_desc){ "ram", mem, MiB, PAGE }), 0);
	assert_int_equal(rmig_dst_listen(dst, "tcp:127.0.0.1:0"), -ENOENT);
	h_assert_contains(rmig_dst_error(dst), "ca-cert.pem");
	rmig_dst_destroy(dst);

	/* TLS is for tcp: a file destination (and rdma) refuse it rather than go plain */
	h_opts(&o, 2);
	tls_opts(&o, creds("good"), NULL);
	assert_int_equal(rmig_dst_create(&o, &dst), 0);
	assert_int_equal(rmig_dst_add_block(dst, &(struct rmig_block_desc){ "ram", mem, MiB, PAGE }), 0);
	assert_int_equal(rmig_dst_listen(dst, "file:/nonexistent/rmig-tls-test"), -EINVAL);
	h_assert_contains(rmig_dst_error(dst), "no TLS");
	rmig_dst_destroy(dst);
	assert_int_equal(rmig_src_create(&o, &src), 0);
	assert_int_equal(rmig_src_add_block(src, &(struct rmig_block_desc){ "ram", mem, MiB, PAGE }), 0);
	assert_int_equal(rmig_src_connect(src, "null:"), -EINVAL);
	h_assert_contains(rmig_src_error(src), "no TLS");
	rmig_src_destroy(src);

	/* TLS with neither certificates nor a key */
	h_opts(&o, 2);
	o.flags |= RMIG_F_TLS;
	assert_int_equal(rmig_dst_create(&o, &dst), 0);
	assert_int_equal(rmig_dst_add_block(dst, &(struct rmig_block_desc){ "ram", mem, MiB, PAGE }), 0);
	assert_int_equal(rmig_dst_listen(dst, "tcp:127.0.0.1:0"), -EINVAL);
	h_assert_contains(rmig_dst_error(dst), "TLS needs credentials");
	rmig_dst_destroy(dst);
	h_unmap(mem, MiB);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tls_certs),
		cmocka_unit_test(test_tls_psk),
		cmocka_unit_test(test_tls_listener_survives_strays),
		cmocka_unit_test(test_tls_expired_client_cert),
		cmocka_unit_test(test_tls_client_cert_other_ca),
		cmocka_unit_test(test_tls_wrong_host),
		cmocka_unit_test(test_tls_psk_differs),
		cmocka_unit_test(test_tls_source_only),
		cmocka_unit_test(test_tls_destination_only),
		cmocka_unit_test(test_tls_bad_setup),
	};

	if (argc != 2) {
		fprintf(stderr, "usage: %s PATH/make-test-certs.sh\n", argv[0]);
		return 2;
	}
	script = argv[1];
	return cmocka_run_group_tests(tests, make_certs, remove_certs);
}
