// SPDX-License-Identifier: MIT
/*
 * Unit tests of the wire format (core/wire.c) and the control protocol
 * helpers (core/proto.c): header encode/decode and validation, HELLO
 * encode/check, status messages, and message framing over an in-memory
 * connection.
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

#include "core/proto.h"
#include "core/wire.h"

#define assert_contains(hay, needle)                                                   \
	do {                                                                           \
		if (!strstr((hay), (needle)))                                          \
			fail_msg("\"%s\" does not mention \"%s\"", (hay), (needle));   \
	} while (0)

/* ---- an in-memory stream: what send() writes, recv() reads back --------- */

struct mem_conn {
	struct rmig_conn base;
	uint8_t *buf;
	size_t len, cap, rpos;
};

static struct mem_conn *to_mem(struct rmig_conn *c)
{
	return rmig_container_of(c, struct mem_conn, base);
}

static void mem_put(struct mem_conn *m, const void *p, size_t n)
{
	if (m->len + n > m->cap) {
		m->cap = (m->len + n) * 2;
		m->buf = realloc(m->buf, m->cap);
		assert_non_null(m->buf);
	}
	memcpy(m->buf + m->len, p, n);
	m->len += n;
}

static int mem_send(struct rmig_conn *c, const void *hdr, size_t hdr_len,
		    const struct rmig_seg *segs, unsigned int nsegs)
{
	mem_put(to_mem(c), hdr, hdr_len);
	for (unsigned int i = 0; i < nsegs; i++)
		mem_put(to_mem(c), segs[i].local, segs[i].len);
	return 0;
}

static int mem_recv(struct rmig_conn *c, void *buf, size_t len, int timeout_ms)
{
	struct mem_conn *m = to_mem(c);

	if (m->len - m->rpos < len)
		return rmig_msg(&c->recv_err, -ECONNRESET, "memory stream ends after %zu bytes",
				m->len - m->rpos);
	memcpy(buf, m->buf + m->rpos, len);
	m->rpos += len;
	return 0;
}

static int mem_flush(struct rmig_conn *c)
{
	return 0;
}

static const struct rmig_conn_ops mem_ops = {
	.send = mem_send,
	.flush = mem_flush,
	.recv = mem_recv,
};

static void mem_init(struct mem_conn *m)
{
	memset(m, 0, sizeof(*m));
	m->base.ops = &mem_ops;
}

/* ---- header ---------------------------------------------------------------- */

static void test_hdr_layout(void **state)
{
	/* The layout in docs/design.md: big-endian magic, version, type, flags, len, seq. */
	static const uint8_t expect[24] = {
		'R', 'M', 'I', 'G', 0x00, 0x03, 0x00, 0x04, 0x00, 0x00, 0x00, 0x01,
		0x00, 0x01, 0x02, 0x03, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
	};
	uint8_t raw[24];

	rmig_hdr_encode(raw, RMIG_MSG_RAM, RMIG_WF_PLACED, 0x00010203u, 0x0102030405060708ull);
	assert_memory_equal(raw, expect, sizeof(raw));
}

static void test_hdr_round_trip(void **state)
{
	static const uint32_t lens[] = { 0, 1, 8, 4096, RMIG_WIRE_BODY_MAX };
	static const uint64_t seqs[] = { 0, 1, 0xffffffffull, 0x100000000ull, UINT64_MAX };
	char why[128];
	uint8_t raw[24];
	struct rmig_hdr h;

	for (unsigned int type = 1; type <= RMIG_MSG_MAX_TYPE; type++)
		for (unsigned int l = 0; l < RMIG_ARRAY_SIZE(lens); l++)
			for (unsigned int s = 0; s < RMIG_ARRAY_SIZE(seqs); s++)
				for (int f = 0; f < 2; f++) {
					uint32_t flags = f ? rmig_wf_allowed(type) : 0;

					memset(&h, 0xee, sizeof(h));
					rmig_hdr_encode(raw, (uint16_t)type, flags, lens[l], seqs[s]);
					assert_int_equal(rmig_hdr_decode(raw, &h, why, sizeof(why)), 0);
					assert_int_equal(h.type, type);
					assert_int_equal(h.flags, flags);
					assert_int_equal(h.len, lens[l]);
					assert_true(h.seq == seqs[s]);
				}
}

/* Encode a good header, patch it with @mutate, and expect -EPROTO naming @word. */
static void expect_bad_hdr(void (*mutate)(uint8_t *raw), const char *word)
{
	char why[128] = "";
	uint8_t raw[24];
	struct rmig_hdr h;

	rmig_hdr_encode(raw, RMIG_MSG_DEV, 0, 100, 5);
	mutate(raw);
	assert_int_equal(rmig_hdr_decode(raw, &h, why, sizeof(why)), -EPROTO);
	assert_contains(why, word);
}

static void bad_magic(uint8_t *raw)
{
	raw[0] = 'X';
}
static void bad_version_0(uint8_t *raw)
{
	rmig_put_be16(raw + 4, 0);
}
static void bad_version_2(uint8_t *raw)
{
	rmig_put_be16(raw + 4, RMIG_WIRE_VERSION + 1);
}
static void bad_type_0(uint8_t *raw)
{
	rmig_put_be16(raw + 6, 0);
}
static void bad_type_max(uint8_t *raw)
{
	rmig_put_be16(raw + 6, RMIG_MSG_MAX_TYPE + 1);
}
static void bad_type_ffff(uint8_t *raw)
{
	rmig_put_be16(raw + 6, 0xffff);
}
static void bad_flags_bit1(uint8_t *raw)
{
	rmig_put_be32(raw + 8, 1u << 1);
}
static void bad_flags_high(uint8_t *raw)
{
	rmig_put_be32(raw + 8, RMIG_WF_PLACED | 0x80000000u);
}
/* a flag of another type: PLACED belongs to RAM, POSTCOPY to WELCOME */
static void bad_flags_placed_on_dev(uint8_t *raw)
{
	rmig_put_be32(raw + 8, RMIG_WF_PLACED);
}
static void bad_flags_postcopy_on_ram(uint8_t *raw)
{
	rmig_put_be16(raw + 6, RMIG_MSG_RAM);
	rmig_put_be32(raw + 8, RMIG_WF_POSTCOPY);
}
static void bad_len(uint8_t *raw)
{
	rmig_put_be32(raw + 12, RMIG_WIRE_BODY_MAX + 1);
}
static void bad_len_max(uint8_t *raw)
{
	rmig_put_be32(raw + 12, UINT32_MAX);
}

static void test_hdr_rejects(void **state)
{
	expect_bad_hdr(bad_magic, "magic");
	expect_bad_hdr(bad_version_0, "version");
	expect_bad_hdr(bad_version_2, "version");
	expect_bad_hdr(bad_type_0, "type");
	expect_bad_hdr(bad_type_max, "type");
	expect_bad_hdr(bad_type_ffff, "type");
	expect_bad_hdr(bad_flags_bit1, "flags");
	expect_bad_hdr(bad_flags_high, "flags");
	expect_bad_hdr(bad_flags_placed_on_dev, "flags 0x1 in DEV");
	expect_bad_hdr(bad_flags_postcopy_on_ram, "flags 0x2 in RAM");
	expect_bad_hdr(bad_len, "exceeds");
	expect_bad_hdr(bad_len_max, "limit");
}

static void test_msg_names(void **state)
{
	assert_string_equal(rmig_msg_name(RMIG_MSG_HELLO), "HELLO");
	assert_string_equal(rmig_msg_name(RMIG_MSG_RAM), "RAM");
	assert_string_equal(rmig_msg_name(RMIG_MSG_ABORT), "ABORT");
	assert_string_equal(rmig_msg_name(0), "unknown");
	assert_string_equal(rmig_msg_name(RMIG_MSG_MAX_TYPE + 1), "unknown");
	for (unsigned int t = 1; t <= RMIG_MSG_MAX_TYPE; t++)
		assert_string_not_equal(rmig_msg_name(t), "unknown");
}

/* ---- HELLO ----------------------------------------------------------------- */

static void block_set(struct rmig_block *b, const char *name, uint64_t length, uint32_t page)
{
	memset(b, 0, sizeof(*b));
	snprintf(b->name, sizeof(b->name), "%s", name);
	b->length = length;
	b->page_size = page;
	b->page_shift = (uint32_t)__builtin_ctz(page);
}

/* The destination's table, which every HELLO below is checked against. */
static struct rmig_block dst_blocks[3];

static int hello_setup(void **state)
{
	block_set(&dst_blocks[0], "pc.ram", 1ull << 32, 4096);
	block_set(&dst_blocks[1], "vga.vram", 16 << 20, 4096);
	block_set(&dst_blocks[2], "a-name-of-exactly-16", 2 << 20, 2 << 20);
	return 0;
}

static void hello_make(const struct rmig_block *blocks, unsigned int n, uint32_t channels,
		       uint32_t ppp, void **body, size_t *len)
{
	struct rmig_hello h = { .channels = channels, .pages_per_packet = ppp, .flags = 0 };

	for (unsigned int i = 0; i < RMIG_UUID_LEN; i++)
		h.uuid[i] = (uint8_t)(0xa0 + i);
	assert_int_equal(rmig_hello_encode(&h, blocks, n, body, len), 0);
}

/* Check @body against dst_blocks and expect -EPROTO with each of @words in the reason. */
static void expect_bad_hello(const void *body, size_t len, unsigned int max_channels,
			     const char *word1, const char *word2)
{
	struct rmig_hello out;
	char why[RMIG_ERRMSG_MAX] = "";

	assert_int_equal(rmig_hello_check(body, len, dst_blocks, 3, max_channels, &out, why,
					  sizeof(why)),
			 -EPROTO);
	assert_contains(why, word1);
	if (word2)
		assert_contains(why, word2);
}

static void test_hello_round_trip(void **state)
{
	struct rmig_hello out;
	char why[RMIG_ERRMSG_MAX] = "";
	size_t len, expect_len = sizeof(struct rmig_wire_hello);
	void *body;

	hello_make(dst_blocks, 3, 8, 256, &body, &len);
	for (unsigned int i = 0; i < 3; i++)
		expect_len += sizeof(struct rmig_wire_block) + rmig_pad8(strlen(dst_blocks[i].name));
	assert_int_equal(len, expect_len);
	assert_int_equal(len % 8, 0);
	assert_int_equal(rmig_hello_check(body, len, dst_blocks, 3, 64, &out, why, sizeof(why)),
			 0);
	assert_string_equal(why, "");
	assert_int_equal(out.channels, 8);
	assert_int_equal(out.pages_per_packet, 256);
	assert_int_equal(out.nblocks, 3);
	assert_int_equal(out.flags, 0);
	for (unsigned int i = 0; i < RMIG_UUID_LEN; i++)
		assert_int_equal(out.uuid[i], 0xa0 + i);
	/* Limits are inclusive. */
	free(body);
	hello_make(dst_blocks, 3, 64, RMIG_MAX_PAGES_PER_PACKET, &body, &len);
	assert_int_equal(rmig_hello_check(body, len, dst_blocks, 3, 64, &out, why, sizeof(why)),
			 0);
	assert_int_equal(out.pages_per_packet, RMIG_MAX_PAGES_PER_PACKET);
	free(body);
}

static void test_hello_table_mismatch(void **state)
{
	struct rmig_block src[3];
	size_t len;
	void *body;

	/* Block count, both ways. */
	hello_make(dst_blocks, 2, 2, 128, &body, &len);
	expect_bad_hello(body, len, 64, "mismatch", "2 blocks");
	free(body);
	{
		struct rmig_block more[4];

		memcpy(more, dst_blocks, sizeof(dst_blocks));
		block_set(&more[3], "extra", 1 << 20, 4096);
		hello_make(more, 4, 2, 128, &body, &len);
		expect_bad_hello(body, len, 64, "mismatch", "4 blocks");
		free(body);
	}

	/* Name: same length, one letter differs. */
	memcpy(src, dst_blocks, sizeof(src));
	src[1].name[0] = 'V';
	hello_make(src, 3, 2, 128, &body, &len);
	expect_bad_hello(body, len, 64, "mismatch", "Vga.vram");
	free(body);

	/* Name: a prefix of the real one. */
	memcpy(src, dst_blocks, sizeof(src));
	block_set(&src[0], "pc", 1ull << 32, 4096);
	hello_make(src, 3, 2, 128, &body, &len);
	expect_bad_hello(body, len, 64, "mismatch", "pc.ram");
	free(body);

	/* Length. */
	memcpy(src, dst_blocks, sizeof(src));
	src[1].length += 4096;
	hello_make(src, 3, 2, 128, &body, &len);
	expect_bad_hello(body, len, 64, "mismatch", "vga.vram");
	free(body);

	/* Page size. */
	memcpy(src, dst_blocks, sizeof(src));
	src[2].page_size = 4096;
	hello_make(src, 3, 2, 128, &body, &len);
	expect_bad_hello(body, len, 64, "page size", "a-name-of-exactly-16");
	free(body);
}

static void test_hello_limits(void **state)
{
	size_t len;
	void *body;

	hello_make(dst_blocks, 3, 0, 128, &body, &len);
	expect_bad_hello(body, len, 64, "channels", NULL);
	free(body);
	hello_make(dst_blocks, 3, 5, 128, &body, &len);
	expect_bad_hello(body, len, 4, "5 channels", "1 to 4");
	free(body);
	hello_make(dst_blocks, 3, 65, 128, &body, &len);
	expect_bad_hello(body, len, 64, "channels", NULL);
	free(body);
	hello_make(dst_blocks, 3, 2, 0, &body, &len);
	expect_bad_hello(body, len, 64, "pages per packet", NULL);
	free(body);
	hello_make(dst_blocks, 3, 2, RMIG_MAX_PAGES_PER_PACKET + 1, &body, &len);
	expect_bad_hello(body, len, 64, "pages per packet", NULL);
	free(body);
}

static void test_hello_malformed(void **state)
{
	uint8_t *body, *longer;
	size_t len;
	void *v;
	size_t first_name_len_at = sizeof(struct rmig_wire_hello) +
				   RMIG_OFF(rmig_wire_block, name_len);

	hello_make(dst_blocks, 3, 2, 128, &v, &len);
	body = v;

	/* Every strict prefix is refused as truncated. */
	for (size_t cut = 0; cut < len; cut++)
		expect_bad_hello(body, cut, 64, "truncated", NULL);

	/* Trailing bytes after the last block. */
	longer = calloc(1, len + 8);
	assert_non_null(longer);
	memcpy(longer, body, len);
	expect_bad_hello(longer, len + 8, 64, "trailing", NULL);
	expect_bad_hello(longer, len + 1, 64, "trailing", NULL);

	/* Name length at the limit, and far past the body. */
	rmig_put_be16(longer + first_name_len_at, RMIG_BLOCK_NAME_MAX);
	expect_bad_hello(longer, len, 64, "name length", NULL);
	rmig_put_be16(longer + first_name_len_at, 0xffff);
	expect_bad_hello(longer, len, 64, "name length", NULL);
	/* A name length that fits the limit but runs past the body. */
	memcpy(longer, body, len);
	rmig_put_be16(longer + first_name_len_at, 200);
	expect_bad_hello(longer, len, 64, "truncated", NULL);
	/* A name length of 0 is a different (empty) name. */
	memcpy(longer, body, len);
	rmig_put_be16(longer + first_name_len_at, 0);
	expect_bad_hello(longer, len, 64, "mismatch", NULL);

	/* A block count larger than the body holds. */
	memcpy(longer, body, len);
	rmig_put_be32(longer + RMIG_OFF(rmig_wire_hello, nblocks), 0xffffffffu);
	expect_bad_hello(longer, len, 64, "mismatch", NULL);
	free(longer);
	free(body);
}

/* Random damage to a HELLO is either caught or harmless, never out of bounds. */
static void test_hello_fuzz(void **state)
{
	struct rmig_hello out;
	char why[RMIG_ERRMSG_MAX];
	uint64_t rng = 0x5eed;
	uint8_t *body, *copy;
	size_t len;
	void *v;
	int ret, accepted = 0;

	hello_make(dst_blocks, 3, 2, 128, &v, &len);
	body = v;
	for (int iter = 0; iter < 20000; iter++) {
		size_t cut;

		rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
		cut = len - (rng >> 40) % 9 * ((rng & 1) ? 1 : 0);
		copy = malloc(cut ? cut : 1); /* exact size, so ASan sees any overread */
		assert_non_null(copy);
		memcpy(copy, body, cut);
		copy[(rng >> 8) % cut] ^= (uint8_t)(1u << ((rng >> 20) % 8));
		ret = rmig_hello_check(copy, cut, dst_blocks, 3, 64, &out, why, sizeof(why));
		assert_true(ret == 0 || ret == -EPROTO);
		if (ret == 0) {
			/* Only fields the check does not constrain may have changed. */
			assert_int_equal(cut, len);
			assert_int_equal(out.nblocks, 3);
			assert_in_range(out.channels, 1, 64);
			assert_in_range(out.pages_per_packet, 1, RMIG_MAX_PAGES_PER_PACKET);
			accepted++;
		}
		free(copy);
	}
	/* The uuid and flags are not checked, so some flips there pass. */
	assert_true(accepted > 0);
	free(body);
}

/* ---- status messages and framing ------------------------------------------ */

static void test_status_round_trip(void **state)
{
	static const uint8_t info[] = { 1, 2, 3, 4, 5, 6, 7, 8, 9 };
	static const struct {
		int status;
		const char *msg;
		const void *info;
		size_t info_len;
	} cases[] = {
		{ 0, "welcome", NULL, 0 },
		{ -EPROTO, "RAM block table mismatch: block 'x'", NULL, 0 },
		{ 0, "", info, sizeof(info) },
		{ -ECANCELED, "exactly8", info, 3 },
		{ -4095, NULL, NULL, 0 },
	};
	struct mem_conn m;

	mem_init(&m);
	for (unsigned int i = 0; i < RMIG_ARRAY_SIZE(cases); i++)
		assert_int_equal(rmig_status_send(&m.base, RMIG_MSG_RESULT, 10 + i, cases[i].status,
						  cases[i].msg, cases[i].info, cases[i].info_len),
				 0);
	for (unsigned int i = 0; i < RMIG_ARRAY_SIZE(cases); i++) {
		char why[128], msg[RMIG_ERRMSG_MAX];
		const void *ip;
		size_t il;
		struct rmig_hdr h;
		void *body;
		int status;

		assert_int_equal(rmig_msg_recv(&m.base, 1000, 8192, &h, &body, why, sizeof(why)), 0);
		assert_int_equal(h.type, RMIG_MSG_RESULT);
		assert_int_equal(h.seq, 10 + i);
		assert_int_equal(h.len % 8, (cases[i].info_len) % 8);
		assert_int_equal(rmig_status_parse(body, h.len, &status, msg, sizeof(msg), &ip, &il),
				 0);
		assert_int_equal(status, cases[i].status);
		assert_string_equal(msg, cases[i].msg ? cases[i].msg : "");
		assert_int_equal(il, cases[i].info_len);
		if (il)
			assert_memory_equal(ip, cases[i].info, il);
		free(body);
	}
	assert_int_equal(m.rpos, m.len);
	free(m.buf);
}

static void put_status(uint8_t *b, int32_t status, uint32_t mlen, uint32_t ilen)
{
	memset(b, 0, 16);
	rmig_put_be32(b, (uint32_t)status);
	rmig_put_be32(b + 4, mlen);
	rmig_put_be32(b + 8, ilen);
}

static void expect_bad_status(const uint8_t *b, size_t len, const char *word)
{
	char msg[RMIG_ERRMSG_MAX] = "";
	const void *ip;
	size_t il;
	int status;

	assert_int_equal(rmig_status_parse(b, len, &status, msg, sizeof(msg), &ip, &il), -EPROTO);
	assert_contains(msg, word);
}

static void test_status_malformed(void **state)
{
	uint8_t *b = calloc(1, 64);

	assert_non_null(b);
	expect_bad_status(b, 0, "truncated");
	expect_bad_status(b, 15, "truncated");
	put_status(b, 0, 5, 0); /* text of 5 is padded to 8: 24 bytes, not 21 */
	expect_bad_status(b, 21, "add up");
	expect_bad_status(b, 32, "add up");
	put_status(b, 0, 0, 4);
	expect_bad_status(b, 16, "add up");
	put_status(b, 0, 4097, 0);
	expect_bad_status(b, 64, "add up");
	put_status(b, 0, 0xfffffff8u, 8); /* lengths that would wrap */
	expect_bad_status(b, 16, "add up");
	put_status(b, 0, 0, RMIG_PEER_INFO_MAX + 1);
	expect_bad_status(b, 16, "add up");
	put_status(b, 1, 0, 0);
	expect_bad_status(b, 16, "not an error code");
	put_status(b, -4096, 0, 0);
	expect_bad_status(b, 16, "not an error code");
	put_status(b, INT32_MIN, 0, 0);
	expect_bad_status(b, 16, "not an error code");
	/* And the smallest good one. */
	put_status(b, -EIO, 0, 0);
	{
		char msg[16];
		const void *ip;
		size_t il;
		int status;

		assert_int_equal(rmig_status_parse(b, 16, &status, msg, sizeof(msg), &ip, &il), 0);
		assert_int_equal(status, -EIO);
		assert_int_equal(il, 0);
	}
	free(b);
}

static void test_msg_framing(void **state)
{
	static const char text[] = "some body bytes";
	char why[128] = "";
	struct mem_conn m;
	struct rmig_hdr h;
	void *body;
	uint8_t *big;

	mem_init(&m);
	assert_int_equal(rmig_msg_send(&m.base, RMIG_MSG_DONE, 0, 3, NULL, 0), 0);
	assert_int_equal(rmig_msg_send(&m.base, RMIG_MSG_DEV, 0, 4, text, sizeof(text)), 0);
	assert_int_equal(rmig_msg_send(&m.base, RMIG_MSG_DEV, 0, 5, text, sizeof(text)), 0);
	assert_int_equal(m.len, 3 * 24 + 2 * sizeof(text));

	assert_int_equal(rmig_msg_recv(&m.base, 100, 64, &h, &body, why, sizeof(why)), 0);
	assert_int_equal(h.type, RMIG_MSG_DONE);
	assert_int_equal(h.len, 0);
	assert_null(body);
	assert_int_equal(rmig_msg_recv(&m.base, 100, sizeof(text), &h, &body, why, sizeof(why)), 0);
	assert_int_equal(h.seq, 4);
	assert_memory_equal(body, text, sizeof(text));
	free(body);
	/* One byte over the caller's limit is refused before the body is read. */
	assert_int_equal(rmig_msg_recv(&m.base, 100, sizeof(text) - 1, &h, &body, why, sizeof(why)),
			 -EPROTO);
	assert_contains(why, "larger");
	assert_null(body);
	/* The stream ends: the transport's reason is passed on. */
	assert_int_equal(rmig_msg_recv(&m.base, 100, 64, &h, &body, why, sizeof(why)), -ECONNRESET);
	assert_contains(why, "ends");

	/* A body over the wire limit is never sent. */
	big = malloc(RMIG_WIRE_BODY_MAX + 1);
	assert_non_null(big);
	assert_int_equal(rmig_msg_send(&m.base, RMIG_MSG_DEV, 0, 6, big, RMIG_WIRE_BODY_MAX + 1),
			 -EMSGSIZE);
	assert_int_equal(m.len, 3 * 24 + 2 * sizeof(text));
	/* A bad header in the stream is named. */
	m.len = m.rpos = 0;
	rmig_hdr_encode(big, RMIG_MSG_RAM, 0, 0, 0);
	big[3] ^= 1;
	mem_put(&m, big, 24);
	assert_int_equal(rmig_msg_recv(&m.base, 100, 64, &h, &body, why, sizeof(why)), -EPROTO);
	assert_contains(why, "magic");
	free(big);
	free(m.buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hdr_layout),
		cmocka_unit_test(test_hdr_round_trip),
		cmocka_unit_test(test_hdr_rejects),
		cmocka_unit_test(test_msg_names),
		cmocka_unit_test_setup(test_hello_round_trip, hello_setup),
		cmocka_unit_test_setup(test_hello_table_mismatch, hello_setup),
		cmocka_unit_test_setup(test_hello_limits, hello_setup),
		cmocka_unit_test_setup(test_hello_malformed, hello_setup),
		cmocka_unit_test_setup(test_hello_fuzz, hello_setup),
		cmocka_unit_test(test_status_round_trip),
		cmocka_unit_test(test_status_malformed),
		cmocka_unit_test(test_msg_framing),
	};

	/* unbuffered: a crash must not swallow the report in the test log */
	setvbuf(stdout, NULL, _IONBF, 0);
	return cmocka_run_group_tests_name("wire", tests, NULL, NULL);
}
