// SPDX-License-Identifier: MIT
/*
 * Authentication with a pre-shared key and the listener's resilience, over
 * loopback TCP: a migration with a key (file or bytes); a wrong key, a key
 * on one side only, and bad key files, each a clear error on the side that
 * can see it; the secure default for non-loopback listeners; and a
 * destination that outlives port scans, garbage, half-open connections, a
 * flood, clients without the key and stray channel connections, then
 * migrates the real source. The raw client computes the proofs itself from
 * the protocol in docs/design.md (with OpenSSL), so it checks the
 * implementation against the documented construction.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "core/proto.h"
#include "core/wire.h"
#include "harness.h"

#define PAGE 4096u
#define LEN (4u << 20)
#define NCH 2
#define KEY_A "0123456789abcdef0123456789abcdefA" /* 33 printable bytes */
#define KEY_B "0123456789abcdef0123456789abcdefB"

/* ---- key files -------------------------------------------------------------------- */

static void key_file(char *path, size_t len, const char *content, size_t n, mode_t mode)
{
	int fd;

	snprintf(path, len, "/tmp/rmig-test-key-XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, content, n), (ssize_t)n);
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

/* ---- a migration of one 4 MiB block ------------------------------------------------ */

struct pair {
	struct h_dst d;
	struct rmig_opts so;
	struct rmig_src *src;
	uint8_t *src_mem, *dst_mem;
};

static void pair_init(struct pair *p, int dst_timeout_ms)
{
	p->src_mem = h_map(LEN);
	p->dst_mem = h_map(LEN);
	h_fill_random(p->src_mem, LEN, 77);
	h_fill_byte(p->dst_mem, LEN, 0x5a);
	h_opts(&p->so, NCH);
	h_dst_init(&p->d);
	p->d.opts.timeout_ms = dst_timeout_ms;
	h_dst_add(&p->d, "pc.ram", p->src_mem, LEN, PAGE);
}

/* Start the destination (its blocks point at its own RAM) and make the source. */
static void pair_start(struct pair *p)
{
	p->src = h_src_new(&p->so, &p->d);
	p->d.blocks[0].host = p->dst_mem;
	h_dst_start(&p->d);
	h_watchdog_arm(120, "test_auth");
}

/* Connect and migrate everything; 0 or the source's failure. */
static int pair_run(struct pair *p)
{
	int ret = h_src_connect_port(p->src, p->d.port);

	if (!ret)
		ret = h_src_queue_all(p->src, 0, LEN, PAGE);
	if (!ret)
		ret = rmig_src_sync(p->src, RMIG_SYNC_ALL);
	if (!ret)
		ret = rmig_src_finish(p->src);
	return ret;
}

static void pair_expect_ok(struct pair *p, int ret)
{
	char err[512];

	h_end(&p->src, ret, err, sizeof(err), &p->d);
	if (ret || p->d.accept_ret || p->d.finish_ret)
		fail_msg("source %d (%s); destination accept %d finish %d (%s)", ret, err,
			 p->d.accept_ret, p->d.finish_ret, p->d.error);
	if (h_first_diff(p->src_mem, p->dst_mem, LEN) >= 0)
		fail_msg("destination RAM differs from the source");
	rmig_src_destroy(p->src);
}

/* Both sides failed, each naming @src_word / @dst_word; not a byte of RAM moved. */
static void pair_expect_refused(struct pair *p, int ret, int src_code, const char *src_word,
				int dst_code, const char *dst_word)
{
	char err[512];

	h_end(&p->src, ret, err, sizeof(err), &p->d);
	print_message("source: %s\ndestination: %s\n", err, p->d.error);
	if (ret != src_code)
		fail_msg("source returned %d (%s), expected %d", ret, err, src_code);
	h_assert_contains(err, src_word);
	if (p->d.accept_ret != dst_code)
		fail_msg("destination accept returned %d (%s), expected %d", p->d.accept_ret,
			 p->d.error, dst_code);
	h_assert_contains(p->d.error, dst_word);
	assert_true(p->d.stats.conns_dropped >= 1);
	for (size_t i = 0; i < LEN; i++)
		if (p->dst_mem[i] != 0x5a)
			fail_msg("destination byte %zu was written", i);
	/* the key is never quoted */
	assert_null(strstr(err, "0123456789abcdef"));
	assert_null(strstr(p->d.error, "0123456789abcdef"));
}

static void pair_free(struct pair *p)
{
	h_unmap(p->src_mem, LEN);
	h_unmap(p->dst_mem, LEN);
}

/* ---- with a key --------------------------------------------------------------------- */

static void test_key_file_migrates(void **state)
{
	char path[64];
	struct pair p;

	key_file(path, sizeof(path), KEY_A, 33, 0600);
	pair_init(&p, H_TIMEOUT_MS);
	p.so.psk_file = path;
	p.d.opts.psk_file = path;
	pair_start(&p);
	pair_expect_ok(&p, pair_run(&p));
	assert_int_equal(p.d.stats.conns_dropped, 0);
	assert_int_equal(p.d.stats.channels, NCH);
	unlink(path);
	pair_free(&p);
}

static void test_key_bytes_migrates(void **state)
{
	char path[64];
	struct pair p;

	/* one side from a file, the other from bytes: the same key */
	key_file(path, sizeof(path), KEY_A, 33, 0600);
	pair_init(&p, H_TIMEOUT_MS);
	p.so.psk = KEY_A;
	p.so.psk_len = 33;
	p.d.opts.psk_file = path;
	pair_start(&p);
	pair_expect_ok(&p, pair_run(&p));
	unlink(path);
	pair_free(&p);
}

static void test_wrong_key(void **state)
{
	struct pair p;

	pair_init(&p, 2000);
	p.so.psk = KEY_B;
	p.so.psk_len = 33;
	p.d.opts.psk = KEY_A;
	p.d.opts.psk_len = 33;
	pair_start(&p);
	pair_expect_refused(&p, pair_run(&p), -EACCES, "authentication failed", -EACCES,
			    "authentication failed");
	pair_free(&p);
}

static void test_key_on_destination_only(void **state)
{
	struct pair p;

	pair_init(&p, 2000);
	p.d.opts.psk = KEY_A;
	p.d.opts.psk_len = 33;
	pair_start(&p);
	pair_expect_refused(&p, pair_run(&p), -EACCES, "authentication required", -EACCES,
			    "authentication required");
	pair_free(&p);
}

static void test_key_on_source_only(void **state)
{
	struct pair p;

	pair_init(&p, 2000);
	p.so.psk = KEY_A;
	p.so.psk_len = 33;
	pair_start(&p);
	pair_expect_refused(&p, pair_run(&p), -EACCES, "has none", -EACCES, "has none");
	pair_free(&p);
}

/* ---- bad key files and the secure default -------------------------------------------------- */

static uint8_t ram[16 * PAGE] __attribute__((aligned(PAGE)));

static int listen_with(const struct rmig_opts *o, const char *uri, char *err, size_t errlen)
{
	struct rmig_block_desc b = { .name = "pc.ram", .host = ram, .length = sizeof(ram),
				     .page_size = PAGE };
	struct rmig_dst *d = NULL;
	int ret;

	assert_int_equal(rmig_dst_create(o, &d), 0);
	assert_int_equal(rmig_dst_add_block(d, &b), 0);
	ret = rmig_dst_listen(d, uri);
	snprintf(err, errlen, "%s", rmig_dst_error(d));
	rmig_dst_destroy(d);
	return ret;
}

static int connect_with_port(const struct rmig_opts *o, int port, char *err, size_t errlen)
{
	struct rmig_block_desc b = { .name = "pc.ram", .host = ram, .length = sizeof(ram),
				     .page_size = PAGE };
	struct rmig_src *s = NULL;
	char uri[64];
	int ret;

	assert_int_equal(rmig_src_create(o, &s), 0);
	assert_int_equal(rmig_src_add_block(s, &b), 0);
	snprintf(uri, sizeof(uri), "tcp:127.0.0.1:%d", port);
	ret = rmig_src_connect(s, uri);
	snprintf(err, errlen, "%s", rmig_src_error(s));
	rmig_src_destroy(s);
	return ret;
}

/* Nothing listens on port 1: a key problem must be found before connecting. */
static int connect_with(const struct rmig_opts *o, char *err, size_t errlen)
{
	return connect_with_port(o, 1, err, errlen);
}

static void expect_key_error(const struct rmig_opts *o, int code, const char *path,
			     const char *word)
{
	char err[512];
	int ret;

	ret = listen_with(o, "tcp:127.0.0.1:0", err, sizeof(err));
	if (ret != code)
		fail_msg("listen returned %d (%s), expected %d", ret, err, code);
	if (path)
		h_assert_contains(err, path);
	h_assert_contains(err, word);
	assert_null(strstr(err, "0123456789abcdef"));
	ret = connect_with(o, err, sizeof(err));
	if (ret != code)
		fail_msg("connect returned %d (%s), expected %d", ret, err, code);
	if (path)
		h_assert_contains(err, path);
	h_assert_contains(err, word);
	assert_null(strstr(err, "0123456789abcdef"));
}

static void test_key_file_problems(void **state)
{
	struct rmig_opts o;
	char path[64];

	h_opts(&o, NCH);
	o.psk_file = "/nonexistent/rmig.key";
	expect_key_error(&o, -ENOENT, "/nonexistent/rmig.key", "No such file");

	key_file(path, sizeof(path), KEY_A, 33, 0644);
	o.psk_file = path;
	expect_key_error(&o, -EPERM, path, "group or others");
	unlink(path);

	key_file(path, sizeof(path), KEY_A, 16, 0600);
	expect_key_error(&o, -EINVAL, path, "16 bytes");
	unlink(path);

	o.psk_file = NULL;
	o.psk = KEY_A;
	o.psk_len = 31;
	expect_key_error(&o, -EINVAL, NULL, "at least 32");
}

static void test_secure_default(void **state)
{
	struct rmig_opts o;
	char err[512];
	int ret;

	h_opts(&o, NCH);
	ret = listen_with(&o, "tcp:0.0.0.0:0", err, sizeof(err));
	assert_int_equal(ret, -EPERM);
	h_assert_contains(err, "without a pre-shared key");
	h_assert_contains(err, "RMIG_F_INSECURE");
	h_assert_contains(err, "--insecure");
	o.flags |= RMIG_F_INSECURE;
	assert_int_equal(listen_with(&o, "tcp:0.0.0.0:0", err, sizeof(err)), 0);
	o.flags &= ~(uint32_t)RMIG_F_INSECURE;
	o.psk = KEY_A;
	o.psk_len = 33;
	assert_int_equal(listen_with(&o, "tcp:0.0.0.0:0", err, sizeof(err)), 0);
	o.psk = NULL;
	o.psk_len = 0;
	assert_int_equal(listen_with(&o, "tcp:127.0.0.1:0", err, sizeof(err)), 0);
	assert_int_equal(listen_with(&o, "tcp:localhost:0", err, sizeof(err)), 0);
}

/* ---- a raw client ------------------------------------------------------------------------ */

static int raw_dial(int port)
{
	int fd = h_raw_dial(port);

	assert_true(fd >= 0);
	return fd;
}

static void raw_write(int fd, const void *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w <= 0)
			return;
		p = (const uint8_t *)p + w;
		n -= (size_t)w;
	}
}

static void raw_msg(int fd, uint16_t type, uint64_t seq, const void *body, size_t len)
{
	uint8_t hdr[sizeof(struct rmig_wire_hdr)];

	rmig_hdr_encode(hdr, type, 0, (uint32_t)len, seq);
	raw_write(fd, hdr, sizeof(hdr));
	raw_write(fd, body, len);
}

static int raw_read(int fd, void *p, size_t n)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	while (n) {
		ssize_t r;

		if (poll(&pfd, 1, 10000) <= 0)
			return -ETIMEDOUT;
		r = recv(fd, p, n, 0);
		if (r <= 0)
			return r < 0 ? -errno : -ECONNRESET;
		p = (uint8_t *)p + r;
		n -= (size_t)r;
	}
	return 0;
}

/* One message into @body (at most @cap bytes). */
static void raw_recv(int fd, struct rmig_hdr *h, uint8_t *body, size_t cap)
{
	uint8_t hdr[sizeof(struct rmig_wire_hdr)];
	char why[256];

	assert_int_equal(raw_read(fd, hdr, sizeof(hdr)), 0);
	if (rmig_hdr_decode(hdr, h, why, sizeof(why)))
		fail_msg("bad header from the destination: %s", why);
	assert_true(h->len <= cap);
	assert_int_equal(raw_read(fd, body, h->len), 0);
}

static void mac(const void *key, size_t keylen, const void *msg, size_t len, uint8_t *out)
{
	unsigned int outlen = 0;

	assert_non_null(HMAC(EVP_sha256(), key, (int)keylen, msg, len, out, &outlen));
	assert_int_equal(outlen, 32);
}

/* T || role, T = "rmig-auth-v1" || session || Ns || Nd (core/auth.h) */
static void session_mac(const uint8_t *session, const uint8_t *ns, const uint8_t *nd,
			const char *role, uint8_t *out)
{
	uint8_t buf[128];
	size_t n = 0;

	memcpy(buf, "rmig-auth-v1", 12), n += 12;
	memcpy(buf + n, session, 16), n += 16;
	memcpy(buf + n, ns, 32), n += 32;
	memcpy(buf + n, nd, 32), n += 32;
	memcpy(buf + n, role, strlen(role)), n += strlen(role);
	mac(KEY_A, 33, buf, n, out);
}

struct client {
	int ctl, ch[NCH];
	uint64_t seq;
	uint8_t session[16], ns[32], nd[32], chan_key[32];
};

/* Authenticate with KEY_A and send HELLO for @d's table; WELCOME 0 expected. */
static void client_start(struct client *c, const struct h_dst *d)
{
	uint8_t hello[56] = { 0 }, body[512], proof[32];
	struct rmig_block table = { .length = LEN, .page_size = PAGE };
	struct rmig_hello h = { .channels = NCH, .pages_per_packet = 4 };
	struct rmig_hdr hd;
	size_t len;
	void *hb;

	memset(c, 0, sizeof(*c));
	for (unsigned int i = 0; i < 16; i++)
		c->session[i] = (uint8_t)(i * 11 + 3);
	for (unsigned int i = 0; i < 32; i++)
		c->ns[i] = (uint8_t)(i * 5 + 1);
	memcpy(hello, c->session, 16);
	memcpy(hello + 16, c->ns, 32);
	rmig_put_be32(hello + 48, RMIG_AUTH_ALG_HMAC_SHA256);
	c->ctl = raw_dial(d->port);
	raw_msg(c->ctl, RMIG_MSG_AUTH_HELLO, c->seq++, hello, sizeof(hello));
	raw_recv(c->ctl, &hd, body, sizeof(body));
	assert_int_equal(hd.type, RMIG_MSG_AUTH_CHALLENGE);
	assert_int_equal(hd.len, 64);
	memcpy(c->nd, body, 32);
	session_mac(c->session, c->ns, c->nd, "dst", proof);
	assert_memory_equal(proof, body + 32, 32);
	session_mac(c->session, c->ns, c->nd, "src", proof);
	raw_msg(c->ctl, RMIG_MSG_AUTH_PROOF, c->seq++, proof, sizeof(proof));
	session_mac(c->session, c->ns, c->nd, "chan", c->chan_key);

	snprintf(table.name, sizeof(table.name), "pc.ram");
	memcpy(h.uuid, c->session, 16);
	assert_int_equal(rmig_hello_encode(&h, &table, 1, &hb, &len), 0);
	raw_msg(c->ctl, RMIG_MSG_HELLO, c->seq++, hb, len);
	free(hb);
	raw_recv(c->ctl, &hd, body, sizeof(body));
	assert_int_equal(hd.type, RMIG_MSG_WELCOME);
	assert_int_equal((int32_t)rmig_get_be32(body), 0);
}

/* A CHAN for channel @id: the session's proof, or a forged one. */
static int client_chan(struct client *c, const struct h_dst *d, uint32_t id, bool forged)
{
	uint8_t body[24 + 64] = { 0 }, m[64];
	int fd = raw_dial(d->port);

	memcpy(body, c->session, 16);
	rmig_put_be32(body + 16, id);
	for (unsigned int i = 0; i < 32; i++)
		body[24 + i] = (uint8_t)(id * 31 + i);
	memcpy(m, "rmig-chan-v1", 12);
	memcpy(m + 12, c->session, 16);
	rmig_put_be32(m + 28, id);
	memcpy(m + 32, body + 24, 32);
	mac(forged ? (const void *)KEY_A : c->chan_key, 32, m, 64, body + 56);
	raw_msg(fd, RMIG_MSG_CHAN, 0, body, sizeof(body));
	return fd;
}

/* ---- the listener survives ----------------------------------------------------------------- */

static unsigned int threads_now(void)
{
	DIR *dir = opendir("/proc/self/task");
	unsigned int n = 0;

	assert_non_null(dir);
	while (readdir(dir))
		n++;
	closedir(dir);
	return n - 2;
}

/*
 * Before the real source: a port scan, garbage, a client without the key
 * (refused before it learns anything: no rkey, no table, the refusal's
 * info empty), a wrong key, a half-open connection that sends nothing, and
 * a flood of scans. The destination drops each and counts it, holds no
 * thread for them, and then migrates the real source.
 */
static void test_survives_hostile(void **state)
{
	uint8_t garbage[300], body[1024];
	unsigned int before, scans = 24;
	struct rmig_hdr h;
	struct pair p;
	size_t hlen;
	void *hb;
	int fd, half;

	pair_init(&p, H_TIMEOUT_MS);
	p.so.psk = KEY_A;
	p.so.psk_len = 33;
	p.d.opts.psk = KEY_A;
	p.d.opts.psk_len = 33;
	pair_start(&p);
	before = threads_now();

	fd = raw_dial(p.d.port); /* port scan */
	close(fd);
	fd = raw_dial(p.d.port); /* garbage */
	for (unsigned int i = 0; i < sizeof(garbage); i++)
		garbage[i] = (uint8_t)(i * 37 + 11);
	raw_write(fd, garbage, sizeof(garbage));
	close(fd);

	/* the old raw client: a plain HELLO, as test_hostile sends it */
	fd = raw_dial(p.d.port);
	{
		struct rmig_block table = { .length = LEN, .page_size = PAGE };
		struct rmig_hello hello = { .channels = NCH, .pages_per_packet = 4 };

		snprintf(table.name, sizeof(table.name), "pc.ram");
		assert_int_equal(rmig_hello_encode(&hello, &table, 1, &hb, &hlen), 0);
		raw_msg(fd, RMIG_MSG_HELLO, 0, hb, hlen);
		free(hb);
	}
	raw_recv(fd, &h, body, sizeof(body));
	assert_int_equal(h.type, RMIG_MSG_WELCOME);
	assert_int_equal((int32_t)rmig_get_be32(body), -EACCES);
	assert_int_equal(rmig_get_be32(body + 8), 0); /* no transport info */
	assert_true(h.len < 300);
	close(fd);

	/* half-open: connects and says nothing; dropped after its deadline */
	half = raw_dial(p.d.port);
	for (unsigned int i = 0; i < scans; i++)
		close(raw_dial(p.d.port));
	/* the destination handles them one at a time, on its own thread */
	assert_true(threads_now() <= before);

	/* then a source with the wrong key, then the real one */
	{
		struct rmig_opts wrong;
		char err[512];

		h_opts(&wrong, NCH);
		wrong.psk = KEY_B;
		wrong.psk_len = 33;
		assert_int_equal(connect_with_port(&wrong, p.d.port, err, sizeof(err)), -EACCES);
		h_assert_contains(err, "authentication failed");
	}
	pair_expect_ok(&p, pair_run(&p));
	close(half);
	/* scan, garbage, HELLO without key, half-open, the scans, the wrong key */
	if (p.d.stats.conns_dropped < 5 + scans)
		fail_msg("%llu connections dropped, expected at least %u",
			 (unsigned long long)p.d.stats.conns_dropped, 5 + scans);
	pair_free(&p);
}

/*
 * An authenticated session's channels: a CHAN whose proof is made with the
 * pre-shared key instead of the session's channel key, one without a
 * proof, and one of another session are dropped; the real two get in and
 * the migration (empty) is verified.
 */
static void test_stray_channels(void **state)
{
	uint8_t fin[sizeof(struct rmig_wire_fin)] = { 0 }, done[sizeof(struct rmig_wire_done)] = { 0 };
	uint8_t body[512], plain[24] = { 0 };
	struct client c;
	struct rmig_hdr h;
	struct pair p;
	int stray[3];

	pair_init(&p, H_TIMEOUT_MS);
	p.d.opts.psk = KEY_A;
	p.d.opts.psk_len = 33;
	pair_start(&p);
	client_start(&c, &p.d);

	stray[0] = client_chan(&c, &p.d, 0, true);
	stray[1] = raw_dial(p.d.port);
	memcpy(plain, c.session, 16);
	raw_msg(stray[1], RMIG_MSG_CHAN, 0, plain, sizeof(plain));
	c.session[0] ^= 1;
	stray[2] = client_chan(&c, &p.d, 1, false);
	c.session[0] ^= 1;
	for (unsigned int i = 0; i < NCH; i++)
		c.ch[i] = client_chan(&c, &p.d, i, false);
	raw_recv(c.ctl, &h, body, sizeof(body));
	assert_int_equal(h.type, RMIG_MSG_RESULT);
	assert_int_equal((int32_t)rmig_get_be32(body), 0);

	for (unsigned int i = 0; i < NCH; i++)
		raw_msg(c.ch[i], RMIG_MSG_FIN, 1, fin, sizeof(fin));
	rmig_put_be64(done + RMIG_OFF(rmig_wire_done, channels), NCH);
	raw_msg(c.ctl, RMIG_MSG_DONE, c.seq++, done, sizeof(done));
	raw_recv(c.ctl, &h, body, sizeof(body));
	assert_int_equal(h.type, RMIG_MSG_RESULT);
	assert_int_equal((int32_t)rmig_get_be32(body), 0);
	h_dst_end(&p.d);
	if (p.d.accept_ret || p.d.finish_ret)
		fail_msg("accept %d finish %d: %s", p.d.accept_ret, p.d.finish_ret, p.d.error);
	assert_int_equal(p.d.stats.conns_dropped, 3);
	assert_int_equal(p.d.stats.channels, NCH);
	for (unsigned int i = 0; i < 3; i++)
		close(stray[i]);
	for (unsigned int i = 0; i < NCH; i++)
		close(c.ch[i]);
	close(c.ctl);
	rmig_src_destroy(p.src);
	for (size_t i = 0; i < LEN; i++)
		if (p.dst_mem[i] != 0x5a)
			fail_msg("destination byte %zu was written", i);
	pair_free(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key_file_migrates),
		cmocka_unit_test(test_key_bytes_migrates),
		cmocka_unit_test(test_wrong_key),
		cmocka_unit_test(test_key_on_destination_only),
		cmocka_unit_test(test_key_on_source_only),
		cmocka_unit_test(test_key_file_problems),
		cmocka_unit_test(test_secure_default),
		cmocka_unit_test(test_survives_hostile),
		cmocka_unit_test(test_stray_channels),
	};

	setvbuf(stdout, NULL, _IONBF, 0);
	return cmocka_run_group_tests_name("auth", tests, NULL, NULL);
}
