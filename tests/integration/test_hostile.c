// SPDX-License-Identifier: MIT
/*
 * A real destination against a hostile source: a raw TCP client built on
 * core/wire.h that breaks the protocol in one way per test. For each, the
 * destination's accept or finish must fail (never return 0), its error must
 * name the problem, it should tell the client why, and no byte of its RAM
 * may change except the pages a valid message legitimately delivered.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
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

#include "core/proto.h"
#include "core/wire.h"
#include "harness.h"

#define PAGE 4096u
#define RAM_PAGES 64
#define VRAM_PAGES 16
#define PPP 4 /* the client's pages_per_packet */
#define PATTERN 0xa5
#define NCH 2

/* ---- raw client ----------------------------------------------------------------- */

struct raw {
	int ctl;
	int ch[NCH];
	uint8_t uuid[RMIG_UUID_LEN];
	uint64_t ctl_seq, ch_seq[NCH];
};

static int raw_dial(int port)
{
	return h_raw_dial(port);
}

/* Best effort: once the destination has refused, writes may fail, which is fine. */
static void raw_write(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;

	while (fd >= 0 && n) {
		ssize_t w = send(fd, b, n, MSG_NOSIGNAL);

		if (w <= 0)
			return;
		b += w;
		n -= (size_t)w;
	}
}

static void raw_msg(int fd, uint16_t type, uint32_t flags, uint64_t seq, const void *body,
		    size_t len)
{
	uint8_t hdr[sizeof(struct rmig_wire_hdr)];

	rmig_hdr_encode(hdr, type, flags, (uint32_t)len, seq);
	raw_write(fd, hdr, sizeof(hdr));
	if (len)
		raw_write(fd, body, len);
}

static int raw_read(int fd, void *p, size_t n, int timeout_ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	uint8_t *b = p;

	while (n) {
		ssize_t r;

		if (poll(&pfd, 1, timeout_ms) <= 0)
			return -ETIMEDOUT;
		r = recv(fd, b, n, 0);
		if (r < 0)
			return -errno;
		if (r == 0)
			return -ECONNRESET;
		b += r;
		n -= (size_t)r;
	}
	return 0;
}

/*
 * Read one status message (WELCOME / RESULT / ABORT) from the destination.
 * Returns 0 and fills @type, @status and @msg, or a negative errno (EOF).
 */
static int raw_status(int fd, uint16_t *type, int *status, char *msg, size_t msglen)
{
	uint8_t raw[sizeof(struct rmig_wire_hdr)], *body;
	char why[256];
	struct rmig_hdr h;
	const void *info;
	size_t info_len;
	int ret;

	ret = raw_read(fd, raw, sizeof(raw), H_TIMEOUT_MS);
	if (ret)
		return ret;
	assert_int_equal(rmig_hdr_decode(raw, &h, why, sizeof(why)), 0);
	assert_true(h.len <= 65536);
	body = malloc(h.len + 1);
	assert_non_null(body);
	assert_int_equal(raw_read(fd, body, h.len, H_TIMEOUT_MS), 0);
	assert_int_equal(rmig_status_parse(body, h.len, status, msg, msglen, &info, &info_len), 0);
	*type = h.type;
	free(body);
	return 0;
}

static void raw_close(struct raw *r)
{
	for (unsigned int i = 0; i < NCH; i++)
		if (r->ch[i] >= 0)
			close(r->ch[i]);
	if (r->ctl >= 0)
		close(r->ctl);
	r->ctl = -1;
	for (unsigned int i = 0; i < NCH; i++)
		r->ch[i] = -1;
}

/* ---- the destination under test ------------------------------------------------------ */

struct victim {
	struct h_dst d;
	uint8_t *ram, *vram;
	struct rmig_block table[2]; /* what a well-behaved source would send */
	struct raw r;
	/* the destination thread's view of sync round 1, behind the prelude */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool round1_done;
	int round1_ret;
	uint64_t round1;
};

/*
 * Destination thread, after accept: wait for round 1, which the client
 * sends right behind its valid prelude on every channel, so the prelude is
 * in RAM before the client misbehaves. Then rmig_dst_finish() goes on.
 */
static int round1_hook(struct h_dst *d)
{
	struct victim *v = d->arg;
	uint64_t round = 0;
	int ret = rmig_dst_wait_sync(d->dst, &round);

	pthread_mutex_lock(&v->lock);
	v->round1_done = true;
	v->round1_ret = ret;
	v->round1 = round;
	pthread_cond_broadcast(&v->cond);
	pthread_mutex_unlock(&v->lock);
	return ret;
}

static void wait_round1(struct victim *v)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += h_guard_s(H_TIMEOUT_MS / 1000);
	pthread_mutex_lock(&v->lock);
	while (!v->round1_done && pthread_cond_timedwait(&v->cond, &v->lock, &ts) == 0)
		;
	pthread_mutex_unlock(&v->lock);
	if (!v->round1_done)
		fail_msg("the destination never reached round 1 (%s)", v->d.error);
	if (v->round1_ret || v->round1 != 1)
		fail_msg("round 1: %d, round %llu", v->round1_ret, (unsigned long long)v->round1);
}

static void victim_start(struct victim *v, bool postcopy)
{
	struct rmig_opts *o = &v->d.opts;

	v->ram = h_map(RAM_PAGES * PAGE);
	v->vram = h_map(VRAM_PAGES * PAGE);
	h_fill_byte(v->ram, RAM_PAGES * PAGE, PATTERN);
	h_fill_byte(v->vram, VRAM_PAGES * PAGE, PATTERN);
	h_dst_init(&v->d);
	o->timeout_ms = 5000;
	h_dst_add(&v->d, "ram", v->ram, RAM_PAGES * PAGE, PAGE);
	h_dst_add(&v->d, "vram", v->vram, VRAM_PAGES * PAGE, PAGE);
	for (unsigned int i = 0; i < 2; i++) {
		memset(&v->table[i], 0, sizeof(v->table[i]));
		snprintf(v->table[i].name, sizeof(v->table[i].name), "%s", v->d.blocks[i].name);
		v->table[i].length = v->d.blocks[i].length;
		v->table[i].page_size = v->d.blocks[i].page_size;
	}
	memset(&v->r, 0, sizeof(v->r));
	v->r.ctl = -1;
	for (unsigned int i = 0; i < NCH; i++)
		v->r.ch[i] = -1;
	for (unsigned int i = 0; i < RMIG_UUID_LEN; i++)
		v->r.uuid[i] = (uint8_t)(0x40 + i * 7);
	pthread_mutex_init(&v->lock, NULL);
	pthread_cond_init(&v->cond, NULL);
	v->round1_done = false;
	v->d.hook = round1_hook;
	v->d.arg = v;
	v->d.postcopy = postcopy;
	h_dst_start(&v->d);
	h_watchdog_arm(60, "hostile peer");
}

static void hello_body(struct victim *v, const struct rmig_block *table, uint32_t channels,
		       void **body, size_t *len)
{
	struct rmig_hello h = { .channels = channels, .pages_per_packet = PPP };

	memcpy(h.uuid, v->r.uuid, RMIG_UUID_LEN);
	assert_int_equal(rmig_hello_encode(&h, table, 2, body, len), 0);
}

static void send_hello(struct victim *v)
{
	size_t len;
	void *body;

	v->r.ctl = raw_dial(v->d.port);
	hello_body(v, v->table, NCH, &body, &len);
	raw_msg(v->r.ctl, RMIG_MSG_HELLO, 0, v->r.ctl_seq++, body, len);
	free(body);
}

static void expect_status(int fd, uint16_t type, int status, const char *word)
{
	char msg[RMIG_ERRMSG_MAX];
	uint16_t t;
	int s, ret = raw_status(fd, &t, &s, msg, sizeof(msg));

	if (ret)
		fail_msg("expected %s, the connection ended (%d)", rmig_msg_name(type), ret);
	assert_int_equal(t, type);
	assert_int_equal(s, status);
	if (word)
		h_assert_contains(msg, word);
}

static void send_chan(struct victim *v, unsigned int slot, const uint8_t *uuid, uint32_t id)
{
	uint8_t body[sizeof(struct rmig_wire_chan)] = { 0 };

	v->r.ch[slot] = raw_dial(v->d.port);
	memcpy(body + RMIG_OFF(rmig_wire_chan, uuid), uuid, RMIG_UUID_LEN);
	rmig_put_be32(body + RMIG_OFF(rmig_wire_chan, channel), id);
	raw_msg(v->r.ch[slot], RMIG_MSG_CHAN, 0, 0, body, sizeof(body));
	v->r.ch_seq[slot] = 1;
}

/* A well-behaved start: HELLO, WELCOME, both channels, RESULT. */
static void handshake(struct victim *v)
{
	send_hello(v);
	expect_status(v->r.ctl, RMIG_MSG_WELCOME, 0, NULL);
	for (unsigned int i = 0; i < NCH; i++)
		send_chan(v, i, v->r.uuid, i);
	expect_status(v->r.ctl, RMIG_MSG_RESULT, 0, NULL);
}

/*
 * A RAM message: @normal data pages then @zero zero pages at @offs (n =
 * normal + zero offsets written, @len_offsets of them announced), followed
 * by @normal pages of @fill.
 */
static void send_ram(struct victim *v, unsigned int ch, uint64_t seq, uint32_t flags,
		     uint32_t block, uint32_t normal, uint32_t zero, const uint64_t *offs,
		     unsigned int noffs, uint8_t fill, unsigned int ndata)
{
	size_t len = sizeof(struct rmig_wire_ram) + (size_t)noffs * 8;
	uint8_t *body = calloc(1, len), *data = malloc((size_t)ndata * PAGE + 1);

	assert_non_null(body);
	assert_non_null(data);
	rmig_put_be32(body + RMIG_OFF(rmig_wire_ram, block), block);
	rmig_put_be32(body + RMIG_OFF(rmig_wire_ram, normal), normal);
	rmig_put_be32(body + RMIG_OFF(rmig_wire_ram, zero), zero);
	for (unsigned int i = 0; i < noffs; i++)
		rmig_put_be64(body + sizeof(struct rmig_wire_ram) + i * 8, offs[i]);
	memset(data, fill, (size_t)ndata * PAGE);
	raw_msg(v->r.ch[ch], RMIG_MSG_RAM, flags, seq, body, len);
	raw_write(v->r.ch[ch], data, (size_t)ndata * PAGE);
	free(body);
	free(data);
}

/*
 * Valid: pages 1 and 2 of "ram" with data 0x11 and 0x22, page 3 as a zero
 * page, then sync round 1 on every channel; returns once the destination
 * has seen round 1.
 */
static void send_valid_prelude(struct victim *v)
{
	uint64_t a = 1 * PAGE, b = 2 * PAGE, z = 3 * PAGE;
	uint8_t round[8];

	send_ram(v, 0, v->r.ch_seq[0]++, 0, 0, 1, 0, &a, 1, 0x11, 1);
	send_ram(v, 0, v->r.ch_seq[0]++, 0, 0, 1, 1, (uint64_t[]){ b, z }, 2, 0x22, 1);
	rmig_put_be64(round, 1);
	for (unsigned int i = 0; i < NCH; i++)
		raw_msg(v->r.ch[i], RMIG_MSG_SYNC, 0, v->r.ch_seq[i]++, round, sizeof(round));
	wait_round1(v);
}

/* Every byte is the pattern, except what the prelude delivered (if it was sent). */
static void expect_ram(const struct victim *v, bool prelude)
{
	for (size_t i = 0; i < RAM_PAGES * PAGE; i++) {
		uint8_t want = PATTERN;

		if (prelude && i / PAGE == 1)
			want = 0x11;
		else if (prelude && i / PAGE == 2)
			want = 0x22;
		else if (prelude && i / PAGE == 3)
			want = 0;
		if (v->ram[i] != want)
			fail_msg("'ram' byte %zu (page %zu) is 0x%02x, expected 0x%02x", i, i / PAGE,
				 v->ram[i], want);
	}
	for (size_t i = 0; i < VRAM_PAGES * PAGE; i++)
		if (v->vram[i] != PATTERN)
			fail_msg("'vram' byte %zu was written", i);
}

/*
 * The end of every hostile test: the destination has refused (never 0) with
 * @word in its error; if @told, the client got an ABORT (or a refusing
 * WELCOME) saying so too; RAM as expect_ram(@prelude).
 */
static void victim_end(struct victim *v, bool at_accept, int err, const char *word, bool told,
		       bool prelude)
{
	char msg[RMIG_ERRMSG_MAX] = "";
	uint16_t type = 0;
	int status = 0, got = -1;

	/* The destination's word: skip the handshake's good news up to a refusal or the end. */
	if (v->r.ctl >= 0)
		do
			got = raw_status(v->r.ctl, &type, &status, msg, sizeof(msg));
		while (got == 0 && status == 0 && type != RMIG_MSG_ABORT);
	/* A destination wrongly waiting for more sees the end now, instead of hanging. */
	raw_close(&v->r);
	h_dst_end(&v->d);
	if (at_accept) {
		if (v->d.accept_ret >= 0)
			fail_msg("accept returned %d (%s)", v->d.accept_ret, v->d.error);
		assert_int_equal(v->d.accept_ret, err);
	} else {
		assert_int_equal(v->d.accept_ret, 0);
		if (v->d.finish_ret >= 0)
			fail_msg("finish returned %d (%s)", v->d.finish_ret, v->d.error);
		if (v->d.finish_ret != err)
			fail_msg("finish returned %d, expected %d (%s)", v->d.finish_ret, err,
				 v->d.error);
	}
	h_assert_contains(v->d.error, word);
	if (told) {
		if (got)
			fail_msg("the destination closed without saying why (%d)", got);
		assert_true(status < 0);
		h_assert_contains(msg, word);
	} else if (got == 0) {
		/* refused before WELCOME: the client is never told "welcome" */
		assert_true(status < 0);
	}
	expect_ram(v, prelude);
	h_unmap(v->ram, RAM_PAGES * PAGE);
	h_unmap(v->vram, VRAM_PAGES * PAGE);
	pthread_cond_destroy(&v->cond);
	pthread_mutex_destroy(&v->lock);
}

/* ---- refused during the handshake ------------------------------------------------------ */

static void hello_with_header(struct victim *v, void (*patch)(uint8_t *hdr))
{
	uint8_t hdr[sizeof(struct rmig_wire_hdr)];
	size_t len;
	void *body;

	v->r.ctl = raw_dial(v->d.port);
	hello_body(v, v->table, NCH, &body, &len);
	rmig_hdr_encode(hdr, RMIG_MSG_HELLO, 0, (uint32_t)len, 0);
	patch(hdr);
	raw_write(v->r.ctl, hdr, sizeof(hdr));
	raw_write(v->r.ctl, body, len);
	free(body);
}

static void patch_magic(uint8_t *hdr)
{
	rmig_put_be32(hdr, 0x47494d52); /* "GIMR": byte-swapped */
}

static void patch_version(uint8_t *hdr)
{
	rmig_put_be16(hdr + RMIG_OFF(rmig_wire_hdr, version), RMIG_WIRE_VERSION + 1);
}

static void test_hello_bad_magic(void **state)
{
	struct victim v;

	victim_start(&v, false);
	hello_with_header(&v, patch_magic);
	victim_end(&v, true, -EPROTO, "magic", false, false);
}

static void test_hello_bad_version(void **state)
{
	struct victim v;

	victim_start(&v, false);
	hello_with_header(&v, patch_version);
	victim_end(&v, true, -EPROTO, "version", false, false);
}

static void test_hello_wrong_table(void **state)
{
	struct rmig_block table[2];
	struct victim v;
	size_t len;
	void *body;

	victim_start(&v, false);
	memcpy(table, v.table, sizeof(table));
	table[1].length += PAGE;
	v.r.ctl = raw_dial(v.d.port);
	hello_body(&v, table, NCH, &body, &len);
	raw_msg(v.r.ctl, RMIG_MSG_HELLO, 0, 0, body, len);
	free(body);
	/* Refused in the WELCOME itself, with the reason. */
	expect_status(v.r.ctl, RMIG_MSG_WELCOME, -EPROTO, "mismatch");
	/* Pressing on regardless writes nothing. */
	send_chan(&v, 0, v.r.uuid, 0);
	send_ram(&v, 0, 1, 0, 0, 1, 0, (uint64_t[]){ 5 * PAGE }, 1, 0xee, 1);
	victim_end(&v, true, -EPROTO, "vram", false, false);
}

static void test_first_message_not_hello(void **state)
{
	struct victim v;

	victim_start(&v, false);
	v.r.ctl = raw_dial(v.d.port);
	raw_msg(v.r.ctl, RMIG_MSG_DONE, 0, 0, NULL, 0);
	victim_end(&v, true, -EPROTO, "HELLO", true, false);
}

static void test_hello_truncated_then_close(void **state)
{
	uint8_t hdr[sizeof(struct rmig_wire_hdr)];
	struct victim v;

	victim_start(&v, false);
	v.r.ctl = raw_dial(v.d.port);
	rmig_hdr_encode(hdr, RMIG_MSG_HELLO, 0, 64, 0);
	raw_write(v.r.ctl, hdr, 10);
	close(v.r.ctl);
	v.r.ctl = -1;
	victim_end(&v, true, -ECONNRESET, "closed", false, false);
}

static void test_channel_id_twice(void **state)
{
	struct victim v;

	victim_start(&v, false);
	send_hello(&v);
	expect_status(v.r.ctl, RMIG_MSG_WELCOME, 0, NULL);
	send_chan(&v, 0, v.r.uuid, 0);
	send_chan(&v, 1, v.r.uuid, 0);
	victim_end(&v, true, -EPROTO, "twice", true, false);
}

static void test_channel_wrong_session(void **state)
{
	uint8_t other[RMIG_UUID_LEN];
	struct victim v;

	victim_start(&v, false);
	send_hello(&v);
	expect_status(v.r.ctl, RMIG_MSG_WELCOME, 0, NULL);
	memcpy(other, v.r.uuid, sizeof(other));
	other[RMIG_UUID_LEN - 1] ^= 1;
	send_chan(&v, 0, v.r.uuid, 0);
	send_chan(&v, 1, other, 1);
	victim_end(&v, true, -EPROTO, "session", true, false);
}

static void test_channel_id_out_of_range(void **state)
{
	struct victim v;

	victim_start(&v, false);
	send_hello(&v);
	expect_status(v.r.ctl, RMIG_MSG_WELCOME, 0, NULL);
	send_chan(&v, 0, v.r.uuid, NCH);
	victim_end(&v, true, -EPROTO, "announced", true, false);
}

static void test_channel_starts_with_ram(void **state)
{
	struct victim v;

	victim_start(&v, false);
	send_hello(&v);
	expect_status(v.r.ctl, RMIG_MSG_WELCOME, 0, NULL);
	v.r.ch[0] = raw_dial(v.d.port);
	send_ram(&v, 0, 0, 0, 0, 1, 0, (uint64_t[]){ 5 * PAGE }, 1, 0xee, 1);
	victim_end(&v, true, -EPROTO, "instead of its hello", true, false);
}

/* ---- refused on a channel, after a valid start ---------------------------------------- */

struct bad_msg {
	void (*send)(struct victim *v);
	int err;
	const char *word;
};

static void bad_unknown_block(struct victim *v)
{
	send_ram(v, 0, v->r.ch_seq[0]++, 0, 7, 1, 0, (uint64_t[]){ 12 * PAGE }, 1, 0xee, 1);
}

static void bad_offset_outside(struct victim *v)
{
	/* the first offset is fine, the second one byte past the block: nothing may land */
	send_ram(v, 0, v->r.ch_seq[0]++, 0, 0, 2, 0, (uint64_t[]){ 10 * PAGE, RAM_PAGES * PAGE }, 2,
		 0xee, 2);
}

static void bad_offset_huge(struct victim *v)
{
	send_ram(v, 1, v->r.ch_seq[1]++, 0, 1, 1, 0, (uint64_t[]){ UINT64_MAX & ~(uint64_t)4095 },
		 1, 0xee, 1);
}

static void bad_offset_unaligned(struct victim *v)
{
	send_ram(v, 0, v->r.ch_seq[0]++, 0, 0, 2, 0, (uint64_t[]){ 11 * PAGE, 5 * PAGE + 8 }, 2,
		 0xee, 2);
}

static void bad_zero_offset_outside(struct victim *v)
{
	/* a zero page outside the block must not be cleared either */
	send_ram(v, 0, v->r.ch_seq[0]++, 0, 1, 1, 1, (uint64_t[]){ 2 * PAGE, VRAM_PAGES * PAGE }, 2,
		 0xee, 1);
}

static void bad_too_many_normal(struct victim *v)
{
	uint64_t offs[PPP + 1];

	for (unsigned int i = 0; i <= PPP; i++)
		offs[i] = (20 + i) * PAGE;
	send_ram(v, 0, v->r.ch_seq[0]++, 0, 0, PPP + 1, 0, offs, PPP + 1, 0xee, PPP + 1);
}

static void bad_too_many_zero(struct victim *v)
{
	uint64_t offs[PPP + 1];

	for (unsigned int i = 0; i <= PPP; i++)
		offs[i] = (30 + i) * PAGE;
	send_ram(v, 1, v->r.ch_seq[1]++, 0, 0, 0, PPP + 1, offs, PPP + 1, 0xee, 0);
}

static void bad_count_wraps(struct victim *v)
{
	/* normal + zero wraps to 0 in 32 bits, which matches an empty body */
	send_ram(v, 0, v->r.ch_seq[0]++, 0, 0, UINT32_MAX, 1, NULL, 0, 0xee, 4);
}

static void bad_length_mismatch(struct victim *v)
{
	send_ram(v, 0, v->r.ch_seq[0]++, 0, 0, 2, 0,
		 (uint64_t[]){ 13 * PAGE, 14 * PAGE, 15 * PAGE }, 3, 0xee, 2);
}

static void bad_placed_over_tcp(struct victim *v)
{
	send_ram(v, 0, v->r.ch_seq[0]++, RMIG_WF_PLACED, 0, 1, 0, (uint64_t[]){ 16 * PAGE }, 1,
		 0xee, 1);
}

static void bad_seq_gap(struct victim *v)
{
	v->r.ch_seq[0]++; /* one message "lost" */
	send_ram(v, 0, v->r.ch_seq[0]++, 0, 0, 1, 0, (uint64_t[]){ 17 * PAGE }, 1, 0xee, 1);
}

static void bad_seq_repeat(struct victim *v)
{
	uint64_t seq = v->r.ch_seq[1]++;

	/* valid (page 1 again, same bytes as the prelude), then its number once more */
	send_ram(v, 1, seq, 0, 0, 1, 0, (uint64_t[]){ 1 * PAGE }, 1, 0x11, 1);
	send_ram(v, 1, seq, 0, 0, 1, 0, (uint64_t[]){ 18 * PAGE }, 1, 0xee, 1);
}

static void bad_header_flags(struct victim *v)
{
	uint8_t hdr[sizeof(struct rmig_wire_hdr)];
	uint8_t body[sizeof(struct rmig_wire_ram) + 8] = { 0 };

	rmig_put_be32(body + RMIG_OFF(rmig_wire_ram, normal), 1);
	rmig_put_be64(body + sizeof(struct rmig_wire_ram), 19 * PAGE);
	rmig_hdr_encode(hdr, RMIG_MSG_RAM, 0, sizeof(body), v->r.ch_seq[0]++);
	rmig_put_be32(hdr + RMIG_OFF(rmig_wire_hdr, flags), 1u << 7);
	raw_write(v->r.ch[0], hdr, sizeof(hdr));
	raw_write(v->r.ch[0], body, sizeof(body));
}

static void bad_truncated_then_close(struct victim *v)
{
	uint8_t hdr[sizeof(struct rmig_wire_hdr)];

	rmig_hdr_encode(hdr, RMIG_MSG_RAM, 0, 24, v->r.ch_seq[0]++);
	raw_write(v->r.ch[0], hdr, 10);
	close(v->r.ch[0]);
	v->r.ch[0] = -1;
}

static void bad_control_message_on_channel(struct victim *v)
{
	raw_msg(v->r.ch[0], RMIG_MSG_DONE, 0, v->r.ch_seq[0]++, NULL, 0);
}

static void bad_sync_round(struct victim *v)
{
	uint8_t body[8];

	rmig_put_be64(body, 3); /* round 2 is next */
	raw_msg(v->r.ch[0], RMIG_MSG_SYNC, 0, v->r.ch_seq[0]++, body, sizeof(body));
}

static void send_dev(struct victim *v, unsigned int ch, uint64_t dseq, uint16_t idlen,
		     const char *id, uint32_t len, size_t body_extra)
{
	size_t blen = sizeof(struct rmig_wire_dev) + rmig_pad8(strlen(id)) + len + body_extra;
	uint8_t *body = calloc(1, blen);

	assert_non_null(body);
	rmig_put_be64(body + RMIG_OFF(rmig_wire_dev, seq), dseq);
	rmig_put_be16(body + RMIG_OFF(rmig_wire_dev, idlen), idlen);
	rmig_put_be32(body + RMIG_OFF(rmig_wire_dev, len), len);
	memcpy(body + sizeof(struct rmig_wire_dev), id, strlen(id));
	raw_msg(v->r.ch[ch], RMIG_MSG_DEV, 0, v->r.ch_seq[ch]++, body, blen);
	free(body);
}

static void bad_dev_twice(struct victim *v)
{
	send_dev(v, 0, 0, 3, "cpu", 16, 0);
	send_dev(v, 1, 0, 3, "cpu", 16, 0);
}

static void bad_dev_lengths(struct victim *v)
{
	send_dev(v, 0, 0, 3, "cpu", 16, 8); /* 8 bytes more than the lengths say */
}

static void bad_dev_empty_id(struct victim *v)
{
	send_dev(v, 0, 0, 0, "", 4, 0);
}

static void bad_fin_totals(struct victim *v)
{
	uint8_t fin[sizeof(struct rmig_wire_fin)] = { 0 };

	/* Channel 0 carried the prelude's two RAM messages; claim three. */
	rmig_put_be64(fin + RMIG_OFF(rmig_wire_fin, packets), 3);
	rmig_put_be64(fin + RMIG_OFF(rmig_wire_fin, normal_pages), 2);
	rmig_put_be64(fin + RMIG_OFF(rmig_wire_fin, zero_pages), 1);
	rmig_put_be64(fin + RMIG_OFF(rmig_wire_fin, data_bytes), 2 * PAGE);
	rmig_put_be64(fin + RMIG_OFF(rmig_wire_fin, syncs), 1);
	raw_msg(v->r.ch[0], RMIG_MSG_FIN, 0, v->r.ch_seq[0]++, fin, sizeof(fin));
}

static const struct bad_msg bad_msgs[] = {
	{ bad_unknown_block, -EPROTO, "unknown block" },
	{ bad_offset_outside, -EPROTO, "outside" },
	{ bad_offset_huge, -EPROTO, "outside" },
	{ bad_offset_unaligned, -EPROTO, "aligned" },
	{ bad_zero_offset_outside, -EPROTO, "outside" },
	{ bad_too_many_normal, -EPROTO, "limit" },
	{ bad_too_many_zero, -EPROTO, "limit" },
	{ bad_count_wraps, -EPROTO, "limit" },
	{ bad_length_mismatch, -EPROTO, "does not fit" },
	{ bad_placed_over_tcp, -EPROTO, "placed" },
	{ bad_seq_gap, -EPROTO, "expected" },
	{ bad_seq_repeat, -EPROTO, "expected" },
	{ bad_header_flags, -EPROTO, "flags" },
	{ bad_truncated_then_close, -ECONNRESET, "closed" },
	{ bad_control_message_on_channel, -EPROTO, "unexpected DONE" },
	{ bad_sync_round, -EPROTO, "round" },
	{ bad_dev_twice, -EPROTO, "twice" },
	{ bad_dev_lengths, -EPROTO, "lengths" },
	{ bad_dev_empty_id, -EPROTO, "lengths" },
	{ bad_fin_totals, -EPROTO, "packets" },
};

static void test_bad_channel_message(void **state)
{
	const struct bad_msg *b = *state;
	struct victim v;

	victim_start(&v, false);
	handshake(&v);
	send_valid_prelude(&v);
	b->send(&v);
	victim_end(&v, false, b->err, b->word, true, true);
}

/* ---- postcopy messages on the control connection (postcopy enabled) ------------ */

struct bad_pc {
	uint16_t type;
	uint8_t body[32];
	uint32_t len;
	const char *word;
};

static const struct bad_pc bad_pcs[] = {
	/* tcp cannot read the source's RAM: a source offering it is confused or hostile */
	{ RMIG_MSG_PC_PULL_INFO, "RMRT", 4, "cannot read" },
	/* block 9 of 2 */
	{ RMIG_MSG_PC_DISCARD, { 0, 0, 0, 9, 0, 0, 0, 1 }, 24, "PC_DISCARD for block 9" },
	/* words 1..2 of a 1-word block */
	{ RMIG_MSG_PC_DISCARD, { 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1 }, 24,
	  "PC_DISCARD for block 0 words 1+1" },
	{ RMIG_MSG_PAGE_DATA, { 0 }, 16, "PAGE_DATA before postcopy started" },
	{ RMIG_MSG_PC_START, { 0 }, 8, "unexpected PC_START of 8 bytes" },
};

static void test_bad_postcopy_message(void **state)
{
	const struct bad_pc *b = *state;
	struct victim v;

	victim_start(&v, true);
	handshake(&v);
	send_valid_prelude(&v);
	raw_msg(v.r.ctl, b->type, 0, v.r.ctl_seq++, b->body, b->len);
	victim_end(&v, false, -EPROTO, b->word, true, true);
}

/* FIN on both channels and DONE, as a source ending after round 1 sends them. */
static void send_fins_and_done(struct victim *v)
{
	uint8_t fin[sizeof(struct rmig_wire_fin)] = { 0 }, done[sizeof(struct rmig_wire_done)] = { 0 };

	rmig_put_be64(fin + RMIG_OFF(rmig_wire_fin, packets), 2);
	rmig_put_be64(fin + RMIG_OFF(rmig_wire_fin, normal_pages), 2);
	rmig_put_be64(fin + RMIG_OFF(rmig_wire_fin, zero_pages), 1);
	rmig_put_be64(fin + RMIG_OFF(rmig_wire_fin, data_bytes), 2 * PAGE);
	rmig_put_be64(fin + RMIG_OFF(rmig_wire_fin, syncs), 1);
	raw_msg(v->r.ch[0], RMIG_MSG_FIN, 0, v->r.ch_seq[0]++, fin, sizeof(fin));
	memset(fin, 0, sizeof(fin));
	rmig_put_be64(fin + RMIG_OFF(rmig_wire_fin, syncs), 1);
	raw_msg(v->r.ch[1], RMIG_MSG_FIN, 0, v->r.ch_seq[1]++, fin, sizeof(fin));
	rmig_put_be64(done + RMIG_OFF(rmig_wire_done, rounds), 1);
	rmig_put_be64(done + RMIG_OFF(rmig_wire_done, channels), NCH);
	raw_msg(v->r.ctl, RMIG_MSG_DONE, 0, v->r.ctl_seq++, done, sizeof(done));
}

/*
 * Postcopy announced (page 5 stale) for a round the channels never reach,
 * then the end: the destination must not call page 5 verified.
 */
static void test_postcopy_never_started(void **state)
{
	uint8_t discard[sizeof(struct rmig_wire_pc_discard) + 8] = { 0 };
	uint8_t start[sizeof(struct rmig_wire_pc_start)] = { 0 };
	struct victim v;

	victim_start(&v, true);
	handshake(&v);
	send_valid_prelude(&v);
	rmig_put_be32(discard + RMIG_OFF(rmig_wire_pc_discard, nwords), 1);
	rmig_put_be64(discard + sizeof(struct rmig_wire_pc_discard), 1ull << 5);
	raw_msg(v.r.ctl, RMIG_MSG_PC_DISCARD, 0, v.r.ctl_seq++, discard, sizeof(discard));
	rmig_put_be64(start + RMIG_OFF(rmig_wire_pc_start, round), 7);
	rmig_put_be64(start + RMIG_OFF(rmig_wire_pc_start, discarded), 1);
	raw_msg(v.r.ctl, RMIG_MSG_PC_START, 0, v.r.ctl_seq++, start, sizeof(start));
	send_fins_and_done(&v);
	victim_end(&v, false, -EPROTO, "pulled", true, true);
}

/* The client above is sound: played straight, the destination verifies it. */
static void test_valid_client(void **state)
{
	struct victim v;

	victim_start(&v, false);
	handshake(&v);
	send_valid_prelude(&v);
	send_fins_and_done(&v);
	expect_status(v.r.ctl, RMIG_MSG_RESULT, 0, "verified");
	h_dst_end(&v.d);
	assert_int_equal(v.d.accept_ret, 0);
	if (v.d.finish_ret)
		fail_msg("finish %d: %s", v.d.finish_ret, v.d.error);
	assert_int_equal(v.d.stats.normal_pages, 2);
	assert_int_equal(v.d.stats.zero_pages, 1);
	assert_int_equal(v.d.stats.zero_pages_written, 1);
	assert_int_equal(v.d.stats.sync_rounds, 1);
	raw_close(&v.r);
	expect_ram(&v, true);
	h_unmap(v.ram, RAM_PAGES * PAGE);
	h_unmap(v.vram, VRAM_PAGES * PAGE);
	pthread_cond_destroy(&v.cond);
	pthread_mutex_destroy(&v.lock);
}

#define BAD_PC(i, name) \
	{ "bad_postcopy_" name, test_bad_postcopy_message, NULL, NULL, (void *)&bad_pcs[i] }
#define BAD(i, name) { "bad_" name, test_bad_channel_message, NULL, NULL, (void *)&bad_msgs[i] }

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_client),
		cmocka_unit_test(test_postcopy_never_started),
		cmocka_unit_test(test_hello_bad_magic),
		cmocka_unit_test(test_hello_bad_version),
		cmocka_unit_test(test_hello_wrong_table),
		cmocka_unit_test(test_first_message_not_hello),
		cmocka_unit_test(test_hello_truncated_then_close),
		cmocka_unit_test(test_channel_id_twice),
		cmocka_unit_test(test_channel_wrong_session),
		cmocka_unit_test(test_channel_id_out_of_range),
		cmocka_unit_test(test_channel_starts_with_ram),
		BAD(0, "unknown_block"),
		BAD(1, "offset_outside"),
		BAD(2, "offset_huge"),
		BAD(3, "offset_unaligned"),
		BAD(4, "zero_offset_outside"),
		BAD(5, "too_many_normal"),
		BAD(6, "too_many_zero"),
		BAD(7, "count_wraps"),
		BAD(8, "length_mismatch"),
		BAD(9, "placed_over_tcp"),
		BAD(10, "seq_gap"),
		BAD(11, "seq_repeat"),
		BAD(12, "header_flags"),
		BAD(13, "truncated_then_close"),
		BAD(14, "control_message_on_channel"),
		BAD(15, "sync_round"),
		BAD(16, "dev_twice"),
		BAD(17, "dev_lengths"),
		BAD(18, "dev_empty_id"),
		BAD(19, "fin_totals"),
		BAD_PC(0, "pull_info_over_tcp"),
		BAD_PC(1, "discard_block"),
		BAD_PC(2, "discard_words"),
		BAD_PC(3, "page_data_early"),
		BAD_PC(4, "start_short"),
	};

	/* unbuffered: a crash must not swallow the report in the test log */
	setvbuf(stdout, NULL, _IONBF, 0);
	_Static_assert(sizeof(bad_msgs) / sizeof(bad_msgs[0]) == 20, "one test per bad message");
	return cmocka_run_group_tests_name("hostile", tests, NULL, NULL);
}
