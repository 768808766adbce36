// SPDX-License-Identifier: MIT
/*
 * Unit tests of the small pieces around the engines: HOST:PORT and URI
 * parsing, option and RAM-block validation, and the source API's state
 * checks, driven over the null transport (no peer, no sockets).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "rmig-config.h"
#include "core/xport.h"
#include "rmig/rmig.h"

#define assert_contains(hay, needle)                                                   \
	do {                                                                           \
		if (!strstr((hay), (needle)))                                          \
			fail_msg("\"%s\" does not mention \"%s\"", (hay), (needle));   \
	} while (0)

/* ---- HOST:PORT and URIs ----------------------------------------------------- */

static void expect_hostport(const char *addr, const char *host, const char *port)
{
	char h[64] = "", p[16] = "";

	if (rmig_split_hostport(addr, h, sizeof(h), p, sizeof(p)))
		fail_msg("'%s' refused", addr);
	assert_string_equal(h, host);
	assert_string_equal(p, port);
}

static void test_split_hostport(void **state)
{
	static const char *const bad[] = {
		"", "host", "host:", ":80", "[::1]80", "[::1]", "[::1", "host:8a", "host:-1",
		"host:80 ", "[]:80",
	};
	char h[8], p[6];

	expect_hostport("127.0.0.1:4444", "127.0.0.1", "4444");
	expect_hostport("localhost:0", "localhost", "0");
	expect_hostport("[::1]:80", "::1", "80");
	expect_hostport("[fe80::1%eth0]:65535", "fe80::1%eth0", "65535");
	/* Without brackets the last colon separates the port. */
	expect_hostport("a:b:9", "a:b", "9");

	for (unsigned int i = 0; i < RMIG_ARRAY_SIZE(bad); i++)
		if (rmig_split_hostport(bad[i], h, sizeof(h), p, sizeof(p)) != -EINVAL)
			fail_msg("'%s' accepted as HOST:PORT", bad[i]);
	assert_int_equal(rmig_split_hostport(NULL, h, sizeof(h), p, sizeof(p)), -EINVAL);
	/* Buffers too small for the host (8 with its NUL) or the port (6). */
	assert_int_equal(rmig_split_hostport("abcdefgh:1", h, sizeof(h), p, sizeof(p)), -EINVAL);
	assert_int_equal(rmig_split_hostport("abcdefg:1", h, sizeof(h), p, sizeof(p)), 0);
	assert_int_equal(rmig_split_hostport("a:123456", h, sizeof(h), p, sizeof(p)), -EINVAL);
	assert_int_equal(rmig_split_hostport("a:12345", h, sizeof(h), p, sizeof(p)), 0);
}

static void test_uri_parse(void **state)
{
	const struct rmig_xport_ops *ops = NULL;
	const char *addr = NULL;
	int ret;

	assert_int_equal(rmig_uri_parse("tcp:10.0.0.1:4444", &ops, &addr), 0);
	assert_ptr_equal(ops, &rmig_tcp_ops);
	assert_string_equal(addr, "10.0.0.1:4444");
	assert_int_equal(rmig_uri_parse("null:", &ops, &addr), 0);
	assert_ptr_equal(ops, &rmig_null_ops);
	assert_string_equal(addr, "");

	ret = rmig_uri_parse("rdma:10.0.0.1:4444", &ops, &addr);
#ifdef RMIG_HAVE_RDMA
	assert_int_equal(ret, 0);
	assert_ptr_equal(ops, &rmig_rdma_ops);
	assert_string_equal(addr, "10.0.0.1:4444");
#else
	assert_int_equal(ret, -EPROTONOSUPPORT);
#endif
	assert_int_equal(rmig_uri_parse("bogus:1.2.3.4:5", &ops, &addr), -EINVAL);
	assert_int_equal(rmig_uri_parse("tcp", &ops, &addr), -EINVAL);
	assert_int_equal(rmig_uri_parse("", &ops, &addr), -EINVAL);
	assert_int_equal(rmig_uri_parse("TCP:1.2.3.4:5", &ops, &addr), -EINVAL);
	assert_int_equal(rmig_uri_parse("tcpx:1.2.3.4:5", &ops, &addr), -EINVAL);
	assert_int_equal(rmig_uri_parse("tc:1.2.3.4:5", &ops, &addr), -EINVAL);
	assert_int_equal(rmig_uri_parse(":1.2.3.4:5", &ops, &addr), -EINVAL);
	assert_int_equal(rmig_uri_parse(NULL, &ops, &addr), -EINVAL);
}

static void test_transport_available(void **state)
{
	assert_int_equal(rmig_transport_available("tcp"), 1);
	assert_int_equal(rmig_transport_available("null"), 1);
#ifdef RMIG_HAVE_RDMA
	assert_int_equal(rmig_transport_available("rdma"), 1);
#else
	assert_int_equal(rmig_transport_available("rdma"), 0);
#endif
	assert_int_equal(rmig_transport_available("bogus"), 0);
	assert_int_equal(rmig_transport_available(""), 0);
	assert_int_equal(rmig_transport_available(NULL), 0);
}

/* ---- options ---------------------------------------------------------------- */

static void test_opts_defaults(void **state)
{
	struct rmig_opts o;

	memset(&o, 0xa5, sizeof(o));
	rmig_opts_init(&o);
	assert_int_equal(o.size, sizeof(o));
	assert_int_equal(o.flags, 0);
	assert_int_equal(o.channels, 2);
	assert_int_equal(o.pages_per_packet, 128);
	assert_int_equal(o.timeout_ms, 30000);
	assert_int_equal(o.gid_index, -1);
	assert_null(o.ib_dev);
	for (unsigned int i = 0; i < RMIG_ARRAY_SIZE(o.reserved); i++)
		assert_int_equal(o.reserved[i], 0);
}

/* Both constructors must give @expect for @o. */
static void expect_create(const struct rmig_opts *o, int expect)
{
	struct rmig_src *src = NULL;
	struct rmig_dst *dst = NULL;

	assert_int_equal(rmig_src_create(o, &src), expect);
	assert_int_equal(rmig_dst_create(o, &dst), expect);
	if (expect) {
		assert_null(src);
		assert_null(dst);
	}
	rmig_src_destroy(src);
	rmig_dst_destroy(dst);
}

static void test_opts_validation(void **state)
{
	struct rmig_opts o;

	expect_create(NULL, 0);
	rmig_opts_init(&o);
	expect_create(&o, 0);

#define BAD(stmt)                          \
	do {                               \
		rmig_opts_init(&o);        \
		stmt;                      \
		expect_create(&o, -EINVAL); \
	} while (0)
#define GOOD(stmt)                    \
	do {                          \
		rmig_opts_init(&o);   \
		stmt;                 \
		expect_create(&o, 0); \
	} while (0)

	BAD(o.channels = 0);
	BAD(o.channels = RMIG_MAX_CHANNELS + 1);
	BAD(o.channels = UINT32_MAX);
	GOOD(o.channels = 1);
	GOOD(o.channels = RMIG_MAX_CHANNELS);
	BAD(o.pages_per_packet = 0);
	BAD(o.pages_per_packet = 4097);
	GOOD(o.pages_per_packet = 1);
	GOOD(o.pages_per_packet = 4096);
	BAD(o.flags = 1u << 20);
	BAD(o.flags = RMIG_F_NO_ZERO_DETECT | 0x80000000u);
	GOOD(o.flags = RMIG_F_ZERO_COPY | RMIG_F_NO_ZERO_DETECT);
	for (unsigned int i = 0; i < RMIG_ARRAY_SIZE(o.reserved); i++) {
		BAD(o.reserved[i] = 1);
		BAD(o.reserved[i] = 1ull << 63);
	}
	BAD(o.size = 0);
	BAD(o.size = offsetof(struct rmig_opts, numa) - 1);
	BAD(o.size = sizeof(o) + 8);
	/* An older caller whose struct ends before the reserved words (numa took some). */
	GOOD(o.size = offsetof(struct rmig_opts, numa));
	GOOD(o.size = offsetof(struct rmig_opts, reserved));
	/* NUMA: the mode, and rail nodes by hand (-1: none; unused entries zero) */
	GOOD(o.numa = RMIG_NUMA_OFF);
	GOOD(o.numa = RMIG_NUMA_PLACE);
	BAD(o.numa = RMIG_NUMA_PLACE + 1);
	GOOD(o.numa_rails = 2; o.numa_node[0] = 1; o.numa_node[1] = -1);
	GOOD(o.numa_rails = RMIG_MAX_RAILS);
	BAD(o.numa_rails = RMIG_MAX_RAILS + 1);
	BAD(o.numa_rails = 1; o.numa_node[0] = -2);
	BAD(o.numa_rails = 1; o.numa_node[1] = 1);
	BAD(o.numa_node[0] = 1);
	/* A timeout of 0 or below means the default, not "never". */
	GOOD(o.timeout_ms = 0);
	GOOD(o.timeout_ms = -5);
#undef BAD
#undef GOOD
	assert_int_equal(rmig_src_create(NULL, NULL), -EINVAL);
	assert_int_equal(rmig_dst_create(NULL, NULL), -EINVAL);
}

/* ---- RAM blocks ------------------------------------------------------------- */

typedef int (*add_fn)(void *h, const struct rmig_block_desc *d);

static int src_add(void *h, const struct rmig_block_desc *d)
{
	return rmig_src_add_block(h, d);
}

static int dst_add(void *h, const struct rmig_block_desc *d)
{
	return rmig_dst_add_block(h, d);
}

static void check_block_rules(void *h, add_fn add)
{
	static uint64_t mem[8192] __attribute__((aligned(4096))); /* 64 KiB */
	char longname[RMIG_BLOCK_NAME_MAX + 1];
	struct rmig_block_desc d;

#define DESC(n, ho, len, ps)                                                         \
	(d = (struct rmig_block_desc){ .name = (n), .host = (ho), .length = (len),      \
				       .page_size = (ps) },                             \
	 &d)
	assert_int_equal(add(h, NULL), -EINVAL);
	assert_int_equal(add(h, DESC(NULL, mem, 4096, 4096)), -EINVAL);
	assert_int_equal(add(h, DESC("", mem, 4096, 4096)), -EINVAL);
	assert_int_equal(add(h, DESC("a", NULL, 4096, 4096)), -EINVAL);
	assert_int_equal(add(h, DESC("a", mem, 0, 4096)), -EINVAL);
	assert_int_equal(add(h, DESC("a", mem, 4096 + 512, 4096)), -EINVAL);
	assert_int_equal(add(h, DESC("a", mem, 4096, 0)), -EINVAL);
	assert_int_equal(add(h, DESC("a", mem, 6144, 3072)), -EINVAL); /* not a power of two */
	assert_int_equal(add(h, DESC("a", mem, 4096, 256)), -EINVAL);	/* below 512 */
	assert_int_equal(add(h, DESC("a", mem, 1ull << 31, 1u << 31)), -EINVAL); /* above 1 GiB */
	assert_int_equal(add(h, DESC("a", (uint8_t *)mem + 4, 4096, 4096)), -EINVAL);
	memset(longname, 'n', sizeof(longname));
	longname[RMIG_BLOCK_NAME_MAX] = '\0'; /* 256 characters: one too many */
	assert_int_equal(add(h, DESC(longname, mem, 4096, 4096)), -EINVAL);

	/* Good ones get consecutive indexes; the name is copied. */
	longname[RMIG_BLOCK_NAME_MAX - 1] = '\0'; /* 255: the most allowed */
	assert_int_equal(add(h, DESC(longname, mem, 4096, 4096)), 0);
	longname[0] = 'X'; /* changing the caller's string later changes nothing */
	assert_int_equal(add(h, DESC("ram", mem, sizeof(mem), 512)), 1);
	assert_int_equal(add(h, DESC("ram", mem, 4096, 4096)), -EINVAL); /* duplicate */
	longname[0] = 'n';
	assert_int_equal(add(h, DESC(longname, mem, 4096, 4096)), -EINVAL); /* duplicate too */
	assert_int_equal(add(h, DESC("huge-pages", mem, 1ull << 30, 1u << 30)), 2);
	assert_int_equal(add(h, DESC("Ram", mem, 8192, 8192)), 3); /* names are case sensitive */
#undef DESC
}

static void test_blocks_src(void **state)
{
	struct rmig_src *src;

	assert_int_equal(rmig_src_create(NULL, &src), 0);
	check_block_rules(src, src_add);
	rmig_src_destroy(src);
	assert_int_equal(rmig_src_add_block(NULL, NULL), -EINVAL);
}

static void test_blocks_dst(void **state)
{
	struct rmig_dst *dst;

	assert_int_equal(rmig_dst_create(NULL, &dst), 0);
	check_block_rules(dst, dst_add);
	rmig_dst_destroy(dst);
	assert_int_equal(rmig_dst_add_block(NULL, NULL), -EINVAL);
}

static void test_blocks_limit(void **state)
{
	static uint64_t mem[512];
	struct rmig_src *src;
	char name[32];

	assert_int_equal(rmig_src_create(NULL, &src), 0);
	for (int i = 0; i < RMIG_MAX_BLOCKS; i++) {
		snprintf(name, sizeof(name), "b%d", i);
		assert_int_equal(rmig_src_add_block(src, &(struct rmig_block_desc){ name, mem, 4096, 4096 }),
				 i);
	}
	assert_int_equal(rmig_src_add_block(src, &(struct rmig_block_desc){ "one-more", mem, 4096, 4096 }),
			 -E2BIG);
	rmig_src_destroy(src);
}

/* ---- the source API over the null transport ---------------------------------- */

#define NULL_PAGES 64

static uint64_t null_mem[NULL_PAGES * 512] __attribute__((aligned(4096)));

static struct rmig_src *null_src(const struct rmig_opts *o)
{
	struct rmig_src *src;

	assert_int_equal(rmig_src_create(o, &src), 0);
	assert_int_equal(rmig_src_add_block(src, &(struct rmig_block_desc){ "ram", null_mem,
									    sizeof(null_mem), 4096 }),
			 0);
	return src;
}

static void test_src_connect_errors(void **state)
{
	struct rmig_opts o;
	struct rmig_src *src;

	assert_int_equal(rmig_src_create(NULL, &src), 0);
	assert_int_equal(rmig_src_connect(src, "null:"), -EINVAL);
	assert_contains(rmig_src_error(src), "no RAM blocks");
	rmig_src_destroy(src);

	src = null_src(NULL);
	assert_string_equal(rmig_src_error(src), "");
	assert_int_equal(rmig_src_connect(src, "carrier-pigeon:coop:1"), -EINVAL);
	assert_contains(rmig_src_error(src), "carrier-pigeon:coop:1");
	assert_int_equal(rmig_src_connect(src, NULL), -EINVAL);
	rmig_src_destroy(src);

	src = null_src(NULL);
#ifdef RMIG_HAVE_RDMA
	(void)0;
#else
	assert_int_equal(rmig_src_connect(src, "rdma:127.0.0.1:1"), -EPROTONOSUPPORT);
	assert_contains(rmig_src_error(src), "no such transport");
#endif
	rmig_src_destroy(src);

	rmig_opts_init(&o);
	o.flags = RMIG_F_ZERO_COPY;
	src = null_src(&o);
	assert_int_equal(rmig_src_connect(src, "null:"), -EINVAL);
	assert_contains(rmig_src_error(src), "zero copy");
	rmig_src_destroy(src);
	assert_string_equal(rmig_src_error(NULL), "");
	assert_string_equal(rmig_dst_error(NULL), "");
}

/* The header promises a failed handle stays failed: a later connect must not succeed. */
static void test_src_failed_stays_failed(void **state)
{
	struct rmig_src *src = null_src(NULL);

	assert_int_equal(rmig_src_connect(src, "bogus:1"), -EINVAL);
	assert_int_equal(rmig_src_connect(src, "null:"), -EINVAL);
	assert_int_equal(rmig_src_queue_page(src, 0, 0), -EINVAL);
	rmig_src_destroy(src);
}

static void test_src_null_run(void **state)
{
	static uint8_t dev[RMIG_DEV_CHUNK_MAX + 10];
	char longid[RMIG_IDSTR_MAX + 1];
	struct rmig_stats st = { .size = sizeof(st) };
	struct rmig_opts o;
	struct rmig_src *src;
	uint64_t queued = 0, zeros = 0;

	rmig_opts_init(&o);
	o.channels = 3;
	o.pages_per_packet = 5;
	src = null_src(&o);
	/* Before connect nothing can be queued. */
	assert_int_equal(rmig_src_queue_page(src, 0, 0), -ENOTCONN);
	assert_int_equal(rmig_src_sync(src, RMIG_SYNC_ALL), -ENOTCONN);
	assert_int_equal(rmig_src_finish(src), -ENOTCONN);
	assert_int_equal(rmig_src_queue_device_state(src, "dev", 0, "x", 1), -ENOTCONN);

	memset(null_mem, 0, sizeof(null_mem));
	for (unsigned int p = 0; p < NULL_PAGES; p += 3)
		((uint8_t *)null_mem)[p * 4096 + p] = 1; /* every third page has data */
	assert_int_equal(rmig_src_connect(src, "null:"), 0);
	assert_string_equal(rmig_src_error(src), "");
	assert_int_equal(rmig_src_connect(src, "null:"), -EBUSY);
	assert_int_equal(rmig_src_add_block(src, &(struct rmig_block_desc){ "late", null_mem, 4096, 4096 }),
			 -EBUSY);

	/* Bad pages are refused without failing the migration. */
	assert_int_equal(rmig_src_queue_page(src, 1, 0), -EINVAL);
	assert_int_equal(rmig_src_queue_page(src, UINT32_MAX, 0), -EINVAL);
	assert_int_equal(rmig_src_queue_page(src, 0, 100), -EINVAL);
	assert_int_equal(rmig_src_queue_page(src, 0, sizeof(null_mem)), -EINVAL);
	assert_int_equal(rmig_src_queue_page(src, 0, UINT64_MAX & ~4095ull), -EINVAL);
	assert_int_equal(rmig_src_sync(src, (enum rmig_sync_kind)7), -EINVAL);
	memset(longid, 'd', sizeof(longid));
	longid[RMIG_IDSTR_MAX] = '\0';
	assert_int_equal(rmig_src_queue_device_state(src, longid, 0, "x", 1), -EINVAL);
	assert_int_equal(rmig_src_queue_device_state(src, NULL, 0, "x", 1), -EINVAL);
	assert_int_equal(rmig_src_queue_device_state(src, "dev", 0, NULL, 1), -EINVAL);

	for (int round = 0; round < 3; round++) {
		for (unsigned int p = 0; p < NULL_PAGES; p++) {
			assert_int_equal(rmig_src_queue_page(src, 0, (uint64_t)p * 4096), 0);
			queued++;
			zeros += p % 3 != 0;
		}
		assert_int_equal(rmig_src_sync(src, round == 1 ? RMIG_SYNC_LOCAL : RMIG_SYNC_ALL), 0);
	}
	assert_int_equal(rmig_src_queue_device_state(src, "dev", 0, NULL, 0), 0);
	assert_int_equal(rmig_src_queue_device_state(src, "dev", 1, dev, sizeof(dev)), 0);
	assert_int_equal(rmig_src_finish(src), 0);
	assert_string_equal(rmig_src_error(src), "");

	assert_int_equal(rmig_src_get_stats(src, &st), 0);
	assert_int_equal(st.normal_pages + st.zero_pages, queued);
	assert_int_equal(st.zero_pages, zeros);
	assert_int_equal(st.data_bytes, st.normal_pages * 4096);
	assert_int_equal(st.sync_rounds, 2); /* LOCAL rounds are not counted */
	assert_int_equal(st.dev_chunks, 3);  /* empty, then 1 MiB + 10 bytes in two */
	assert_int_equal(st.dev_bytes, sizeof(dev));
	/* Every batch of at most 5 pages is one packet, plus the three device chunks. */
	assert_int_equal(st.packets, 3 * ((NULL_PAGES + 4) / 5) + 3);
	assert_true(st.wire_bytes > st.data_bytes);

	/* After finish the handle takes nothing more. */
	assert_int_equal(rmig_src_queue_page(src, 0, 0), -ENOTCONN);
	assert_int_equal(rmig_src_sync(src, RMIG_SYNC_ALL), -ENOTCONN);
	rmig_src_destroy(src);
}

static void test_stats_sizes(void **state)
{
	struct rmig_stats st;
	struct rmig_src *src = null_src(NULL);
	struct rmig_dst *dst;

	assert_int_equal(rmig_dst_create(NULL, &dst), 0);
	st.size = 4;
	assert_int_equal(rmig_src_get_stats(src, &st), -EINVAL);
	assert_int_equal(rmig_dst_get_stats(dst, &st), -EINVAL);
	assert_int_equal(rmig_src_get_stats(src, NULL), -EINVAL);
	assert_int_equal(rmig_src_get_stats(NULL, &st), -EINVAL);
	/* An older, shorter struct gets a prefix and nothing behind it is written. */
	memset(&st, 0xa5, sizeof(st));
	st.size = offsetof(struct rmig_stats, data_bytes);
	assert_int_equal(rmig_src_get_stats(src, &st), 0);
	assert_int_equal(st.packets, 0);
	assert_int_equal(st.zero_pages, 0);
	assert_true(st.data_bytes == 0xa5a5a5a5a5a5a5a5ull);
	assert_true(st.zero_pages_written == 0xa5a5a5a5a5a5a5a5ull);
	rmig_src_destroy(src);
	rmig_dst_destroy(dst);
}

static void test_dst_state_errors(void **state)
{
	static uint64_t mem[512];
	struct rmig_dst *dst;
	uint64_t round;

	assert_int_equal(rmig_dst_create(NULL, &dst), 0);
	assert_int_equal(rmig_dst_listen(dst, "tcp:127.0.0.1:0"), -EINVAL);
	assert_contains(rmig_dst_error(dst), "no RAM blocks");
	rmig_dst_destroy(dst);

	assert_int_equal(rmig_dst_create(NULL, &dst), 0);
	assert_int_equal(rmig_dst_add_block(dst, &(struct rmig_block_desc){ "ram", mem, 4096, 4096 }),
			 0);
	assert_int_equal(rmig_dst_port(dst), -ENOTCONN);
	assert_int_equal(rmig_dst_accept(dst), -ENOTCONN);
	assert_int_equal(rmig_dst_wait_sync(dst, &round), -ENOTCONN);
	assert_int_equal(rmig_dst_finish(dst), -ENOTCONN);
	assert_int_equal(rmig_dst_listen(dst, "udp:127.0.0.1:0"), -EINVAL);
	assert_contains(rmig_dst_error(dst), "udp:127.0.0.1:0");
	rmig_dst_destroy(dst);

	assert_int_equal(rmig_dst_create(NULL, &dst), 0);
	assert_int_equal(rmig_dst_add_block(dst, &(struct rmig_block_desc){ "ram", mem, 4096, 4096 }),
			 0);
	assert_int_equal(rmig_dst_listen(dst, "null:"), -EINVAL);
	assert_contains(rmig_dst_error(dst), "cannot receive");
	rmig_dst_destroy(dst);
	rmig_dst_destroy(NULL);
	rmig_src_destroy(NULL);
	rmig_dst_cancel(NULL);
	rmig_src_cancel(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_split_hostport),
		cmocka_unit_test(test_uri_parse),
		cmocka_unit_test(test_transport_available),
		cmocka_unit_test(test_opts_defaults),
		cmocka_unit_test(test_opts_validation),
		cmocka_unit_test(test_blocks_src),
		cmocka_unit_test(test_blocks_dst),
		cmocka_unit_test(test_blocks_limit),
		cmocka_unit_test(test_src_connect_errors),
		cmocka_unit_test(test_src_failed_stays_failed),
		cmocka_unit_test(test_src_null_run),
		cmocka_unit_test(test_stats_sizes),
		cmocka_unit_test(test_dst_state_errors),
	};

	/* unbuffered: a crash must not swallow the report in the test log */
	setvbuf(stdout, NULL, _IONBF, 0);
	return cmocka_run_group_tests_name("util", tests, NULL, NULL);
}
