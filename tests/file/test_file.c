// SPDX-License-Identifier: MIT
/*
 * The file transport end to end: save with the source API to "file:PATH",
 * load with the destination API, compare RAM and device state. Then every
 * way a file can be wrong, each of which must fail with a sentence naming
 * the problem and never load.
 *
 * Every block sits between PROT_NONE guard pages, so a load that wrote
 * outside a block would crash the test.
 *
 * Run with "direct" as the only argument for the O_DIRECT cases; they exit
 * 77 (skip) when the filesystem of RMIG_TEST_DIR has no O_DIRECT.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "rmig/rmig.h"
#include "transport/file/format.h"

#define MAX_BLOCKS    4
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

struct layout {
	const char *name;
	uint64_t length;
	uint32_t page_size;
};

struct ram {
	unsigned int n;
	struct layout l[MAX_BLOCKS];
	uint8_t *host[MAX_BLOCKS];
	uint8_t *map[MAX_BLOCKS];
	size_t maplen[MAX_BLOCKS];
};

static const struct layout std_layout[] = {
    {"pc.ram", 24u << 20, 4096},
    {"vga.vram", 4u << 20, 65536},
    {"pc.rom", 4u << 20, 2u << 20},
    {"tiny", 256u << 10, 512},
};

static char dir[4096];
static bool direct_mode;

static void path_for(char *buf, size_t len, const char *name)
{
	/* The pid keeps the plain and O_DIRECT runs, which meson starts in parallel, apart. */
	snprintf(buf, len, "%s/%s-%d.rmig", dir, name, (int)getpid());
}

/* ---- RAM with guard pages ------------------------------------------------ */

static void ram_map(struct ram *r, const struct layout *l, unsigned int n)
{
	long pg = sysconf(_SC_PAGESIZE);

	memset(r, 0, sizeof(*r));
	r->n = n;
	for (unsigned int i = 0; i < n; i++) {
		/* Aligned to the block's page size (or 2 MiB at most), with a guard page either
		 * side. */
		size_t al = l[i].page_size > (size_t)pg ? l[i].page_size : (size_t)pg;
		size_t len = l[i].length + 2 * al + 2 * (size_t)pg;
		uint8_t *m = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		uintptr_t h;

		assert_true(m != MAP_FAILED);
		h = ((uintptr_t)m + (size_t)pg + al - 1) & ~(uintptr_t)(al - 1);
		assert_int_equal(mprotect((void *)h, l[i].length, PROT_READ | PROT_WRITE), 0);
		r->l[i] = l[i];
		r->host[i] = (uint8_t *)h;
		r->map[i] = m;
		r->maplen[i] = len;
	}
}

static void ram_unmap(struct ram *r)
{
	for (unsigned int i = 0; i < r->n; i++)
		munmap(r->map[i], r->maplen[i]);
}

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	return x ^ (x >> 33);
}

/* Page content is a function of (seed, block, page); pages drawn below @zero_pct% are zero. */
static void fill_page(uint8_t *p, uint32_t ps, uint64_t seed, unsigned int b, uint64_t page,
		      unsigned int zero_pct)
{
	uint64_t s = mix(seed ^ mix(((uint64_t)b << 48) ^ page));

	if (s % 100 < zero_pct) {
		memset(p, 0, ps);
		return;
	}
	for (uint32_t i = 0; i < ps; i += 8) {
		uint64_t v = mix(s + i);

		memcpy(p + i, &v, 8);
	}
}

static void ram_fill(struct ram *r, uint64_t seed, unsigned int zero_pct)
{
	for (unsigned int b = 0; b < r->n; b++)
		for (uint64_t pg = 0; pg < r->l[b].length / r->l[b].page_size; pg++)
			fill_page(r->host[b] + pg * r->l[b].page_size, r->l[b].page_size, seed, b,
				  pg, zero_pct);
}

static void ram_garbage(struct ram *r)
{
	for (unsigned int b = 0; b < r->n; b++)
		memset(r->host[b], 0xa5, r->l[b].length);
}

static void ram_equal(const struct ram *a, const struct ram *b)
{
	for (unsigned int i = 0; i < a->n; i++) {
		uint32_t ps = a->l[i].page_size;

		for (uint64_t off = 0; off < a->l[i].length; off += ps)
			if (memcmp(a->host[i] + off, b->host[i] + off, ps))
				fail_msg("block '%s' page at 0x%llx differs after load",
					 a->l[i].name, (unsigned long long)off);
	}
}

/* ---- save and load ---------------------------------------------------------- */

struct dev_item {
	const char *id;
	uint32_t instance;
	size_t len;
	uint64_t seed;
};

static const struct dev_item std_dev[] = {
    {"cpu", 0, 4000, 11},
    {"virtio-net", 3, 0, 12},
    {"vga", 1, (5u << 20) / 2, 13}, /* 2.5 MiB: three chunks */
    {"cpu", 1, 4000, 14},
};

static uint8_t *dev_bytes(const struct dev_item *d)
{
	uint8_t *p = malloc(d->len + 1);

	for (size_t i = 0; i < d->len; i++)
		p[i] = (uint8_t)mix(d->seed + i);
	return p;
}

static struct rmig_opts opts_with(unsigned int channels, uint32_t flags)
{
	struct rmig_opts o;

	rmig_opts_init(&o);
	o.channels = channels;
	o.flags = flags;
	return o;
}

static struct rmig_src *src_open(const char *path, struct ram *r, unsigned int channels,
				 uint32_t flags)
{
	struct rmig_opts o = opts_with(channels, flags);
	struct rmig_src *src;
	char uri[4200];

	assert_int_equal(rmig_src_create(&o, &src), 0);
	for (unsigned int i = 0; i < r->n; i++) {
		struct rmig_block_desc d = {r->l[i].name, r->host[i], r->l[i].length,
					    r->l[i].page_size};

		assert_int_equal(rmig_src_add_block(src, &d), (int)i);
	}
	snprintf(uri, sizeof(uri), "file:%s", path);
	if (rmig_src_connect(src, uri)) {
		fail_msg("connect %s: %s", uri, rmig_src_error(src));
	}
	return src;
}

static void queue_all(struct rmig_src *src, struct ram *r)
{
	for (unsigned int b = 0; b < r->n; b++)
		for (uint64_t off = 0; off < r->l[b].length; off += r->l[b].page_size)
			assert_int_equal(rmig_src_queue_page(src, b, off), 0);
}

static void queue_devs(struct rmig_src *src, const struct dev_item *d, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++) {
		uint8_t *p = dev_bytes(&d[i]);

		assert_int_equal(
		    rmig_src_queue_device_state(src, d[i].id, d[i].instance, p, d[i].len), 0);
		free(p);
	}
}

/* One-round save of @r with the standard device state. */
static void save_std(const char *path, struct ram *r, unsigned int channels, uint32_t flags)
{
	struct rmig_src *src = src_open(path, r, channels, flags);

	queue_all(src, r);
	queue_devs(src, std_dev, ARRAY_SIZE(std_dev));
	assert_int_equal(rmig_src_sync(src, RMIG_SYNC_ALL), 0);
	if (rmig_src_finish(src))
		fail_msg("finish: %s", rmig_src_error(src));
	rmig_src_destroy(src);
}

/* What the device-state callback saw, concatenated per chunk in arrival order. */
struct dev_seen {
	uint64_t next_seq;
	unsigned int chunks;
	char ids[16][RMIG_IDSTR_MAX];
	uint32_t inst[16];
	uint8_t *data;
	size_t len, cap;
	bool refuse;
};

static int dev_cb(void *arg, const char *id, uint32_t instance, uint64_t seq, const void *data,
		  size_t len)
{
	struct dev_seen *s = arg;

	if (s->refuse)
		return 1;
	assert_int_equal(seq, s->next_seq);
	s->next_seq++;
	if (s->chunks < 16) {
		snprintf(s->ids[s->chunks], RMIG_IDSTR_MAX, "%s", id);
		s->inst[s->chunks] = instance;
	}
	s->chunks++;
	if (s->len + len > s->cap) {
		s->cap = (s->len + len) * 2;
		s->data = realloc(s->data, s->cap);
	}
	memcpy(s->data + s->len, data, len);
	s->len += len;
	return 0;
}

/* Load @path into @r. Returns 0 or the error, with the message in @why. */
static int load(const char *path, struct ram *r, unsigned int threads, uint32_t flags,
		struct dev_seen *seen, struct rmig_stats *st, char *why, size_t whylen)
{
	struct rmig_opts o = opts_with(threads, flags);
	struct rmig_dst *dst;
	char uri[4200];
	uint64_t round = 0;
	int ret;

	why[0] = '\0';
	assert_int_equal(rmig_dst_create(&o, &dst), 0);
	for (unsigned int i = 0; i < r->n; i++) {
		struct rmig_block_desc d = {r->l[i].name, r->host[i], r->l[i].length,
					    r->l[i].page_size};

		assert_int_equal(rmig_dst_add_block(dst, &d), (int)i);
	}
	if (seen)
		assert_int_equal(rmig_dst_set_device_state_cb(dst, dev_cb, seen), 0);
	snprintf(uri, sizeof(uri), "file:%s", path);
	ret = rmig_dst_listen(dst, uri);
	if (ret)
		goto out;
	assert_int_equal(rmig_dst_port(dst), -ENOSYS);
	ret = rmig_dst_accept(dst);
	if (ret)
		goto out;
	ret = rmig_dst_wait_sync(dst, &round);
	if (ret != 1) {
		fail_msg("wait_sync on a file returned %d, want 1", ret);
	}
	ret = rmig_dst_finish(dst);
	if (st) {
		st->size = sizeof(*st);
		assert_int_equal(rmig_dst_get_stats(dst, st), 0);
	}
out:
	if (ret) {
		snprintf(why, whylen, "%s", rmig_dst_error(dst));
		if (!why[0])
			fail_msg("load failed with %d but no message", ret);
	}
	rmig_dst_destroy(dst);
	return ret;
}

static void check_devs(const struct dev_seen *s, const struct dev_item *d, unsigned int n)
{
	size_t at = 0;
	unsigned int chunk = 0;

	for (unsigned int i = 0; i < n; i++) {
		uint8_t *p = dev_bytes(&d[i]);
		size_t nchunks =
		    d[i].len ? (d[i].len + RMIG_DEV_CHUNK_MAX - 1) / RMIG_DEV_CHUNK_MAX : 1;

		assert_true(at + d[i].len <= s->len);
		assert_memory_equal(s->data + at, p, d[i].len);
		for (size_t k = 0; k < nchunks; k++, chunk++) {
			assert_string_equal(s->ids[chunk], d[i].id);
			assert_int_equal(s->inst[chunk], d[i].instance);
		}
		at += d[i].len;
		free(p);
	}
	assert_int_equal(at, s->len);
	assert_int_equal(chunk, s->chunks);
}

static uint64_t total_pages(const struct ram *r)
{
	uint64_t n = 0;

	for (unsigned int i = 0; i < r->n; i++)
		n += r->l[i].length / r->l[i].page_size;
	return n;
}

/* The documented check value, so other readers of the format can test theirs. */
static void test_crc32c(void **state)
{
	assert_int_equal(rmig_crc32c(0, "123456789", 9), 0xe3069283u);
	assert_int_equal(rmig_crc32c(rmig_crc32c(0, "1234", 4), "56789", 5), 0xe3069283u);
}

/* ---- happy paths ------------------------------------------------------------ */

static void round_trip(unsigned int channels, unsigned int threads, uint32_t sflags,
		       uint32_t dflags)
{
	struct ram a, b;
	struct dev_seen seen = {0};
	struct rmig_stats st;
	char path[4200], why[512];

	path_for(path, sizeof(path), "roundtrip");
	ram_map(&a, std_layout, 4);
	ram_map(&b, std_layout, 4);
	ram_fill(&a, 42, 30);
	ram_garbage(&b);
	save_std(path, &a, channels, sflags);
	if (load(path, &b, threads, dflags, &seen, &st, why, sizeof(why)))
		fail_msg("load: %s", why);
	ram_equal(&a, &b);
	check_devs(&seen, std_dev, ARRAY_SIZE(std_dev));
	assert_int_equal(st.normal_pages + st.zero_pages, total_pages(&a));
	assert_int_equal(st.data_bytes, st.normal_pages ? st.data_bytes : 0);
	if (sflags & RMIG_F_NO_ZERO_DETECT) {
		assert_int_equal(st.zero_pages, 0); /* zero pages were saved as data */
	} else {
		assert_true(st.zero_pages > 0);
		assert_true(st.zero_pages_written > 0); /* the garbage had to be cleared */
	}
	assert_int_equal(st.dev_chunks, seen.chunks);
	free(seen.data);
	ram_unmap(&a);
	ram_unmap(&b);
	unlink(path);
}

static void test_round_trip(void **state)
{
	round_trip(4, 3, 0, 0);
}

static void test_round_trip_one_channel_one_thread(void **state)
{
	round_trip(1, 1, 0, 0);
}

static void test_round_trip_many_threads(void **state)
{
	round_trip(7, 16, 0, 0);
}

static void test_no_zero_detect(void **state)
{
	round_trip(3, 2, RMIG_F_NO_ZERO_DETECT, 0);
}

/*
 * Several rounds into one file: pages go data->zero, zero->data and
 * data->other data between rounds, and the file must hold the last one.
 */
static void test_rounds(void **state)
{
	struct ram a, b;
	struct rmig_src *src;
	struct dev_seen seen = {0};
	char path[4200], why[512];
	const unsigned int rounds = 4;

	path_for(path, sizeof(path), "rounds");
	ram_map(&a, std_layout, 4);
	ram_map(&b, std_layout, 4);
	ram_fill(&a, 1, 40);
	src = src_open(path, &a, 3, 0);
	queue_all(src, &a);
	assert_int_equal(rmig_src_sync(src, RMIG_SYNC_ALL), 0);
	for (unsigned int r = 2; r <= rounds; r++) {
		/* Rewrite about a third of the pages with a new draw (40% of them zero), queue
		 * those. */
		for (unsigned int bl = 0; bl < a.n; bl++) {
			uint32_t ps = a.l[bl].page_size;

			for (uint64_t pg = 0; pg < a.l[bl].length / ps; pg++) {
				if (mix(r * 7919 + pg + bl) % 3)
					continue;
				fill_page(a.host[bl] + pg * ps, ps, 100 + r, bl, pg, 40);
				assert_int_equal(rmig_src_queue_page(src, bl, pg * ps), 0);
			}
		}
		/* Some pages are queued twice in one round: the later copy is the same data. */
		assert_int_equal(rmig_src_queue_page(src, 0, 0), 0);
		assert_int_equal(rmig_src_sync(src, RMIG_SYNC_ALL), 0);
	}
	queue_devs(src, std_dev, 2);
	if (rmig_src_finish(src))
		fail_msg("finish: %s", rmig_src_error(src));
	rmig_src_destroy(src);

	/* Destination starts as round 1's RAM plus garbage in every other page. */
	ram_fill(&b, 1, 40);
	for (unsigned int bl = 0; bl < b.n; bl++)
		for (uint64_t off = 0; off < b.l[bl].length; off += 2 * b.l[bl].page_size)
			memset(b.host[bl] + off, 0x5a, b.l[bl].page_size);
	if (load(path, &b, 2, 0, &seen, NULL, why, sizeof(why)))
		fail_msg("load: %s", why);
	ram_equal(&a, &b);
	check_devs(&seen, std_dev, 2);
	free(seen.data);
	ram_unmap(&a);
	ram_unmap(&b);
	unlink(path);
}

/* The same page alone, round by round: data, zero, data, other data, zero. */
static void test_page_transitions(void **state)
{
	static const struct layout l[] = {{"ram", 1u << 20, 4096}};
	struct ram a, b;
	struct rmig_src *src;
	char path[4200], why[512];
	/* value of page 5 and page 6 each round (0: zero page) */
	static const uint8_t v5[] = {0x11, 0, 0x22, 0x33, 0};
	static const uint8_t v6[] = {0, 0x44, 0, 0, 0x55};

	path_for(path, sizeof(path), "transitions");
	ram_map(&a, l, 1);
	ram_map(&b, l, 1);
	ram_fill(&a, 9, 0);
	src = src_open(path, &a, 2, 0);
	for (unsigned int r = 0; r < sizeof(v5); r++) {
		memset(a.host[0] + 5 * 4096, v5[r], 4096);
		memset(a.host[0] + 6 * 4096, v6[r], 4096);
		if (r == 0)
			queue_all(src, &a);
		assert_int_equal(rmig_src_queue_page(src, 0, 5 * 4096), 0);
		assert_int_equal(rmig_src_queue_page(src, 0, 6 * 4096), 0);
		assert_int_equal(rmig_src_sync(src, RMIG_SYNC_ALL), 0);
	}
	assert_int_equal(rmig_src_finish(src), 0);
	rmig_src_destroy(src);

	ram_garbage(&b);
	if (load(path, &b, 2, 0, NULL, NULL, why, sizeof(why)))
		fail_msg("load: %s", why);
	ram_equal(&a, &b);
	for (unsigned int i = 0; i < 4096; i++) {
		assert_int_equal(b.host[0][5 * 4096 + i], 0);
		assert_int_equal(b.host[0][6 * 4096 + i], 0x55);
	}
	ram_unmap(&a);
	ram_unmap(&b);
	unlink(path);
}

/* A device-state callback that refuses aborts the load. */
static void test_callback_refuses(void **state)
{
	struct ram a, b;
	struct dev_seen seen = {.refuse = true};
	char path[4200], why[512];
	int ret;

	path_for(path, sizeof(path), "refuse");
	ram_map(&a, std_layout, 2);
	ram_map(&b, std_layout, 2);
	ram_fill(&a, 3, 10);
	save_std(path, &a, 2, 0);
	ret = load(path, &b, 2, 0, &seen, NULL, why, sizeof(why));
	assert_int_equal(ret, -ECANCELED);
	assert_non_null(strstr(why, "refused"));
	ram_unmap(&a);
	ram_unmap(&b);
	unlink(path);
}

/* ---- bad files ------------------------------------------------------------------ */

static void expect_refused(const char *path, struct ram *r, int code, const char *words)
{
	char why[512];
	int ret;

	/* The destination must not be touched: fill with a marker and check it stays. */
	for (unsigned int i = 0; i < r->n; i++)
		memset(r->host[i], 0x77, r->l[i].length);
	ret = load(path, r, 2, 0, NULL, NULL, why, sizeof(why));
	print_message("    refused (%d): %s\n", ret, why);
	if (ret != code)
		fail_msg("load returned %d (%s), want %d", ret, why, code);
	if (!strstr(why, words))
		fail_msg("error '%s' does not mention '%s'", why, words);
	for (unsigned int i = 0; i < r->n; i++)
		for (uint64_t k = 0; k < r->l[i].length; k++)
			if (r->host[i][k] != 0x77)
				fail_msg("a refused load wrote block '%s' at 0x%llx", r->l[i].name,
					 (unsigned long long)k);
}

struct saved {
	struct ram a, b;
	char path[4200];
};

static void saved_make(struct saved *s, const char *name)
{
	path_for(s->path, sizeof(s->path), name);
	ram_map(&s->a, std_layout, 4);
	ram_map(&s->b, std_layout, 4);
	ram_fill(&s->a, 5, 25);
	save_std(s->path, &s->a, 3, 0);
}

static void saved_free(struct saved *s)
{
	ram_unmap(&s->a);
	ram_unmap(&s->b);
	unlink(s->path);
}

static void file_rw(const char *path, void *buf, size_t len, uint64_t off, bool write)
{
	int fd = open(path, O_RDWR);

	assert_true(fd >= 0);
	if (write)
		assert_int_equal(pwrite(fd, buf, len, (off_t)off), (ssize_t)len);
	else
		assert_int_equal(pread(fd, buf, len, (off_t)off), (ssize_t)len);
	close(fd);
}

/* Read the header area, let @fn change it, write it back with a valid checksum. */
static uint8_t *hdr_read(const char *path, uint32_t *size)
{
	uint8_t fixed[128], *area;

	file_rw(path, fixed, sizeof(fixed), 0, false);
	*size = rmig_get_be32(fixed + RMIG_FILE_OFF(rmig_file_hdr, hdr_size));
	area = malloc(*size);
	file_rw(path, area, *size, 0, false);
	return area;
}

static void hdr_write_fixed(const char *path, uint8_t *area, uint32_t size)
{
	rmig_put_be32(area + RMIG_FILE_OFF(rmig_file_hdr, hdr_crc), rmig_file_hdr_crc(area, size));
	file_rw(path, area, size, 0, true);
	free(area);
}

static uint8_t *block_entry(uint8_t *area, unsigned int i)
{
	return area + sizeof(struct rmig_file_hdr) + (size_t)i * sizeof(struct rmig_file_block);
}

static void test_corrupt_header(void **state)
{
	struct saved s;
	uint8_t byte;

	saved_make(&s, "corrupt");
	/* one bit in block 1's name */
	file_rw(s.path, &byte, 1, 128 + 320 + 64, false);
	byte ^= 0x04;
	file_rw(s.path, &byte, 1, 128 + 320 + 64, true);
	expect_refused(s.path, &s.b, -EPROTO, "checksum");
	saved_free(&s);
}

static void test_corrupt_header_size_field(void **state)
{
	struct saved s;
	uint8_t be[8];

	saved_make(&s, "corrupt2");
	/* the pages offset of block 0, without fixing the checksum */
	file_rw(s.path, be, 8, 128 + RMIG_FILE_OFF(rmig_file_block, pages_off), false);
	be[6] ^= 0x10;
	file_rw(s.path, be, 8, 128 + RMIG_FILE_OFF(rmig_file_block, pages_off), true);
	expect_refused(s.path, &s.b, -EPROTO, "header is corrupted");
	saved_free(&s);
}

static void test_wrong_magic(void **state)
{
	struct saved s;

	saved_make(&s, "magic");
	file_rw(s.path, "QEMUFILE", 8, 0, true);
	expect_refused(s.path, &s.b, -EPROTO, "magic");
	saved_free(&s);
}

static void test_not_a_file(void **state)
{
	struct ram r;
	char path[4200], why[512];

	ram_map(&r, std_layout, 1);
	path_for(path, sizeof(path), "does-not-exist");
	unlink(path);
	assert_int_equal(load(path, &r, 1, 0, NULL, NULL, why, sizeof(why)), -ENOENT);
	assert_non_null(strstr(why, "cannot open"));
	path_for(path, sizeof(path), "short");
	{
		int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);

		assert_true(write(fd, "RMIG", 4) == 4);
		close(fd);
	}
	expect_refused(path, &r, -EPROTO, "too short");
	unlink(path);
	ram_unmap(&r);
}

static void test_wrong_version(void **state)
{
	struct saved s;
	uint32_t size;
	uint8_t *area;

	saved_make(&s, "version");
	area = hdr_read(s.path, &size);
	rmig_put_be32(area + RMIG_FILE_OFF(rmig_file_hdr, version), 2);
	hdr_write_fixed(s.path, area, size);
	expect_refused(s.path, &s.b, -EPROTO, "version 2");
	saved_free(&s);
}

static void test_unknown_flag(void **state)
{
	struct saved s;
	uint32_t size;
	uint8_t *area;

	saved_make(&s, "flags");
	area = hdr_read(s.path, &size);
	rmig_put_be32(area + RMIG_FILE_OFF(rmig_file_hdr, flags), RMIG_FILE_F_COMPLETE | 0x80);
	hdr_write_fixed(s.path, area, size);
	expect_refused(s.path, &s.b, -EPROTO, "unknown header flags");
	saved_free(&s);
}

static void test_bitmap_past_end(void **state)
{
	struct saved s;
	struct stat st;
	uint32_t size;
	uint8_t *area;

	saved_make(&s, "bitmap-end");
	assert_int_equal(stat(s.path, &st), 0);
	area = hdr_read(s.path, &size);
	/* block 0's bitmap (768 bytes) would end 668 bytes past the end */
	rmig_put_be64(block_entry(area, 0) + RMIG_FILE_OFF(rmig_file_block, bitmap_off),
		      (uint64_t)st.st_size - 100);
	hdr_write_fixed(s.path, area, size);
	expect_refused(s.path, &s.b, -EPROTO, "past the end of the file");
	saved_free(&s);
}

static void test_bitmap_corrupt(void **state)
{
	struct saved s;
	uint32_t size;
	uint8_t *area, byte;
	uint64_t off;

	saved_make(&s, "bitmap-bad");
	area = hdr_read(s.path, &size);
	off = rmig_get_be64(block_entry(area, 0) + RMIG_FILE_OFF(rmig_file_block, bitmap_off));
	free(area);
	file_rw(s.path, &byte, 1, off + 3, false);
	byte ^= 0x81;
	file_rw(s.path, &byte, 1, off + 3, true);
	expect_refused(s.path, &s.b, -EPROTO, "bitmap of 'pc.ram' is corrupted");
	saved_free(&s);
}

static void test_regions_overlap(void **state)
{
	struct saved s;
	uint32_t size;
	uint8_t *area;
	uint64_t p0;

	saved_make(&s, "overlap");
	area = hdr_read(s.path, &size);
	p0 = rmig_get_be64(block_entry(area, 0) + RMIG_FILE_OFF(rmig_file_block, pages_off));
	/* block 1's pages moved into the middle of block 0's */
	rmig_put_be64(block_entry(area, 1) + RMIG_FILE_OFF(rmig_file_block, pages_off),
		      p0 + (1u << 20));
	hdr_write_fixed(s.path, area, size);
	expect_refused(s.path, &s.b, -EPROTO, "overlaps");
	saved_free(&s);
}

static void test_truncated(void **state)
{
	struct saved s;
	uint32_t size;
	uint8_t *area;
	uint64_t p0;

	saved_make(&s, "truncated");
	area = hdr_read(s.path, &size);
	p0 = rmig_get_be64(block_entry(area, 0) + RMIG_FILE_OFF(rmig_file_block, pages_off));
	free(area);
	/* cut block 0's pages area in half: present pages now lie past the end */
	assert_int_equal(truncate(s.path, (off_t)(p0 + std_layout[0].length / 2)), 0);
	expect_refused(s.path, &s.b, -EPROTO, "file is truncated");
	saved_free(&s);
}

static void test_truncated_tail(void **state)
{
	struct saved s;
	struct stat st;

	saved_make(&s, "truncated-tail");
	/* only the device-state index is cut */
	assert_int_equal(stat(s.path, &st), 0);
	assert_int_equal(truncate(s.path, st.st_size - 8), 0);
	expect_refused(s.path, &s.b, -EPROTO, "file is truncated");
	saved_free(&s);
}

static void test_unfinished(void **state)
{
	struct ram a, b;
	struct rmig_src *src;
	char path[4200];

	path_for(path, sizeof(path), "unfinished");
	ram_map(&a, std_layout, 4);
	ram_map(&b, std_layout, 4);
	ram_fill(&a, 8, 20);
	src = src_open(path, &a, 2, 0);
	queue_all(src, &a);
	queue_devs(src, std_dev, 1);
	assert_int_equal(rmig_src_sync(src, RMIG_SYNC_ALL), 0);
	rmig_src_destroy(src); /* never finished */
	expect_refused(path, &b, -EPROTO, "did not finish");

	/* cancelled, too */
	src = src_open(path, &a, 2, 0);
	queue_all(src, &a);
	rmig_src_cancel(src);
	assert_int_equal(rmig_src_finish(src), -ECANCELED);
	rmig_src_destroy(src);
	expect_refused(path, &b, -EPROTO, "did not finish");
	ram_unmap(&a);
	ram_unmap(&b);
	unlink(path);
}

static void test_different_layout(void **state)
{
	struct saved s;
	struct layout l[4];
	struct ram r;

	saved_make(&s, "layout");

	memcpy(l, std_layout, sizeof(l));
	l[1].length *= 2;
	ram_map(&r, l, 4);
	expect_refused(s.path, &r, -EPROTO, "RAM layout differs: block 'vga.vram' is");
	ram_unmap(&r);

	memcpy(l, std_layout, sizeof(l));
	l[2].name = "pc.bios";
	ram_map(&r, l, 4);
	expect_refused(s.path, &r, -EPROTO, "RAM layout differs: block 2 is 'pc.rom'");
	ram_unmap(&r);

	memcpy(l, std_layout, sizeof(l));
	l[0].page_size = 8192;
	ram_map(&r, l, 4);
	expect_refused(s.path, &r, -EPROTO, "page size");
	ram_unmap(&r);

	ram_map(&r, std_layout, 3);
	expect_refused(s.path, &r, -EPROTO, "the file has 4 blocks, this side has 3");
	ram_unmap(&r);
	saved_free(&s);
}

static void test_dev_record_corrupt(void **state)
{
	struct saved s;
	uint32_t size;
	uint8_t *area, ent[16], byte;
	uint64_t idx, off;

	saved_make(&s, "devbad");
	area = hdr_read(s.path, &size);
	idx = rmig_get_be64(area + RMIG_FILE_OFF(rmig_file_hdr, index_off));
	free(area);
	/* a data byte of record 2 */
	file_rw(s.path, ent, sizeof(ent), idx + 2 * sizeof(ent), false);
	off = rmig_get_be64(ent) + 40;
	file_rw(s.path, &byte, 1, off, false);
	byte ^= 1;
	file_rw(s.path, &byte, 1, off, true);
	expect_refused(s.path, &s.b, -EPROTO, "device-state record 2");
	saved_free(&s);
}

static void test_dev_record_lengths(void **state)
{
	struct saved s;
	uint32_t size;
	uint8_t *area, ent[16], rec[40];
	uint64_t idx, off;
	uint32_t len;

	saved_make(&s, "devlen");
	area = hdr_read(s.path, &size);
	idx = rmig_get_be64(area + RMIG_FILE_OFF(rmig_file_hdr, index_off));
	free(area);
	/* record 0 claims more data than it holds; its checksum is made to match */
	file_rw(s.path, ent, sizeof(ent), idx, false);
	off = rmig_get_be64(ent);
	len = rmig_get_be32(ent + 8);
	area = malloc(len);
	file_rw(s.path, area, len, off, false);
	rmig_put_be32(area + 8 + RMIG_OFF(rmig_wire_dev, len), 99999);
	rmig_put_be32(area + 4, rmig_crc32c(0, area + 8, len - 8));
	file_rw(s.path, area, len, off, true);
	free(area);
	(void)rec;
	expect_refused(s.path, &s.b, -EPROTO, "device-state record 0 is malformed");
	saved_free(&s);
}

static void test_dev_index_corrupt(void **state)
{
	struct saved s;
	uint32_t size;
	uint8_t *area, byte;
	uint64_t idx;

	saved_make(&s, "devindex");
	area = hdr_read(s.path, &size);
	idx = rmig_get_be64(area + RMIG_FILE_OFF(rmig_file_hdr, index_off));
	free(area);
	file_rw(s.path, &byte, 1, idx + 17, false);
	byte ^= 0x40;
	file_rw(s.path, &byte, 1, idx + 17, true);
	expect_refused(s.path, &s.b, -EPROTO, "index is corrupted");
	saved_free(&s);
}

/* A bitmap bit past the end of the last page (crafted, checksums made valid). */
static void test_bitmap_tail_bits(void **state)
{
	static const struct layout l[] = {{"odd", 13 * 4096, 4096}};
	struct ram a, b;
	char path[4200];
	uint32_t size;
	uint8_t *area, bm[2];
	uint64_t off;

	path_for(path, sizeof(path), "tailbits");
	ram_map(&a, l, 1);
	ram_map(&b, l, 1);
	ram_fill(&a, 2, 0);
	save_std(path, &a, 1, 0);
	area = hdr_read(path, &size);
	off = rmig_get_be64(block_entry(area, 0) + RMIG_FILE_OFF(rmig_file_block, bitmap_off));
	file_rw(path, bm, 2, off, false);
	bm[1] |= 0x80; /* page 15 of a 13-page block */
	file_rw(path, bm, 2, off, true);
	rmig_put_be32(block_entry(area, 0) + RMIG_FILE_OFF(rmig_file_block, bitmap_crc),
		      rmig_crc32c(0, bm, 2));
	hdr_write_fixed(path, area, size);
	expect_refused(path, &b, -EPROTO, "past the end of the block");
	ram_unmap(&a);
	ram_unmap(&b);
	unlink(path);
}

/*
 * The O_DIRECT refusal, run in @dirpath whose filesystem refuses O_DIRECT:
 * connect fails naming O_DIRECT, an existing file keeps its bytes, and a
 * file it had to create is gone again. Returns NULL or what went wrong
 * (this runs in a child, outside cmocka's asserts).
 */
static const char *direct_refusal(const char *dirpath, const struct rmig_block_desc *d)
{
	struct rmig_opts o;
	struct rmig_src *src;
	char path[4200], uri[4300], buf[8] = {0};
	int fd, ret;

	snprintf(path, sizeof(path), "%s/rmig-nodirect-%d", dirpath, (int)getpid());
	fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_DIRECT, 0600);
	if (fd >= 0 || errno != EINVAL) {
		if (fd >= 0)
			close(fd);
		unlink(path);
		return "the filesystem took O_DIRECT after all";
	}
	fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
	if (fd < 0 || write(fd, "keepme!", 8) != 8)
		return "cannot write the file to keep";
	close(fd);
	rmig_opts_init(&o);
	o.flags = RMIG_F_DIRECT_IO;
	snprintf(uri, sizeof(uri), "file:%s", path);
	if (rmig_src_create(&o, &src) || rmig_src_add_block(src, d))
		return "source set-up failed";
	ret = rmig_src_connect(src, uri);
	if (ret != -EINVAL || !strstr(rmig_src_error(src), "O_DIRECT"))
		return "connect did not refuse naming O_DIRECT";
	rmig_src_destroy(src);
	fd = open(path, O_RDONLY);
	if (fd < 0 || read(fd, buf, sizeof(buf)) != 8 || strcmp(buf, "keepme!"))
		return "the existing file was touched";
	close(fd);
	unlink(path);

	if (rmig_src_create(&o, &src) || rmig_src_add_block(src, d))
		return "source set-up failed";
	ret = rmig_src_connect(src, uri);
	rmig_src_destroy(src);
	if (ret != -EINVAL)
		return "connect to a new file did not refuse";
	if (access(path, F_OK) == 0)
		return "the file connect created was left behind";
	return NULL;
}

/*
 * connect refuses without touching an existing file: no path; no O_DIRECT.
 * A filesystem without O_DIRECT: RMIG_TEST_NODIRECT_DIR if set, else a
 * ramfs mounted in a private mount namespace of a child (root; tmpfs has
 * O_DIRECT since Linux 6.6, ramfs has none). Not a skip when neither
 * works: a case that cannot run has not passed.
 */
static void test_connect_refused(void **state)
{
	static const struct layout l[] = {{"ram", 1u << 20, 4096}};
	const char *given = getenv("RMIG_TEST_NODIRECT_DIR");
	struct rmig_opts o;
	struct rmig_src *src;
	struct rmig_block_desc d;
	struct ram a;
	int pfd[2], st;
	char why[256] = {0};
	pid_t pid;

	(void)state;
	ram_map(&a, l, 1);
	d = (struct rmig_block_desc){"ram", a.host[0], l[0].length, l[0].page_size};
	rmig_opts_init(&o);
	assert_int_equal(rmig_src_create(&o, &src), 0);
	assert_int_equal(rmig_src_add_block(src, &d), 0);
	assert_int_equal(rmig_src_connect(src, "file:"), -EINVAL);
	assert_non_null(strstr(rmig_src_error(src), "no path"));
	rmig_src_destroy(src);

	assert_int_equal(pipe(pfd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char mnt[] = "/tmp/rmig-ramfs-XXXXXX";
		const char *dirpath = given, *err;

		close(pfd[0]);
		if (!given || !*given) {
			if (unshare(CLONE_NEWNS) ||
			    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) || !mkdtemp(mnt)) {
				err = "no private mount namespace (needs root; or set RMIG_TEST_NODIRECT_DIR to a directory on a filesystem without O_DIRECT)";
				goto out;
			}
			if (mount("ramfs", mnt, "ramfs", 0, NULL)) {
				rmdir(mnt);
				err = "cannot mount a ramfs (needs root; or set RMIG_TEST_NODIRECT_DIR)";
				goto out;
			}
			dirpath = mnt;
		}
		err = direct_refusal(dirpath, &d);
		if (dirpath == mnt) {
			umount(mnt);
			rmdir(mnt);
		}
out:
		if (err && write(pfd[1], err, strlen(err)) < 0)
			_exit(2);
		_exit(err ? 1 : 0);
	}
	close(pfd[1]);
	if (read(pfd[0], why, sizeof(why) - 1) < 0)
		why[0] = 0;
	close(pfd[0]);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		fail_msg("O_DIRECT refusal: %s", why[0] ? why : "the child crashed");
	print_message("    O_DIRECT refused on %s, file kept, nothing left behind\n",
		      given && *given ? given : "a private ramfs");
	ram_unmap(&a);
}

/*
 * The disk fills up while saving (a 2 MiB tmpfs, 16 MiB of RAM), in a
 * child's private mount namespace (root): the save must fail naming the
 * full disk, leave source RAM as it was, and leave no file a load would
 * take as complete. Returns NULL or what went wrong.
 */
static const char *disk_full_save(const char *mnt)
{
	static const struct layout l[] = {{"pc.ram", 16u << 20, 4096}};
	static char why[600];
	struct ram a, b;
	struct rmig_opts o;
	struct rmig_src *src;
	char path[4200], uri[4300], lwhy[512];
	uint64_t before, after;
	int ret;

	ram_map(&a, l, 1);
	ram_map(&b, l, 1);
	ram_fill(&a, 77, 0);
	before = mix(0);
	for (uint64_t i = 0; i < l[0].length / 8; i++)
		before = mix(before ^ ((uint64_t *)a.host[0])[i]);
	snprintf(path, sizeof(path), "%s/full.rmig", mnt);
	snprintf(uri, sizeof(uri), "file:%s", path);
	rmig_opts_init(&o);
	o.channels = 2;
	if (rmig_src_create(&o, &src) ||
	    rmig_src_add_block(src, &(struct rmig_block_desc){"pc.ram", a.host[0], l[0].length,
							       l[0].page_size}) < 0)
		return "source set-up failed";
	ret = rmig_src_connect(src, uri);
	for (uint64_t off = 0; !ret && off < l[0].length; off += 4096)
		ret = rmig_src_queue_page(src, 0, off);
	if (!ret)
		ret = rmig_src_sync(src, RMIG_SYNC_ALL);
	if (!ret)
		ret = rmig_src_finish(src);
	if (!ret)
		return "saving 16 MiB to a 2 MiB filesystem succeeded";
	if (!strstr(rmig_src_error(src), "No space left")) {
		snprintf(why, sizeof(why), "the error does not say the disk is full: %s",
			 rmig_src_error(src));
		return why;
	}
	print_message("    disk full: %s\n", rmig_src_error(src));
	rmig_src_destroy(src);
	after = mix(0);
	for (uint64_t i = 0; i < l[0].length / 8; i++)
		after = mix(after ^ ((uint64_t *)a.host[0])[i]);
	if (after != before)
		return "source RAM changed";
	/* whatever is on disk must not load as a migration */
	if (access(path, F_OK) == 0 && load(path, &b, 2, 0, NULL, NULL, lwhy, sizeof(lwhy)) == 0)
		return "the file of a failed save loaded";
	ram_unmap(&a);
	ram_unmap(&b);
	return NULL;
}

static void test_disk_full(void **state)
{
	char why[700] = {0};
	int pfd[2], st;
	pid_t pid;

	(void)state;
	assert_int_equal(pipe(pfd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char mnt[] = "/tmp/rmig-full-XXXXXX";
		const char *err;

		close(pfd[0]);
		if (unshare(CLONE_NEWNS) || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) ||
		    !mkdtemp(mnt)) {
			err = "no private mount namespace (needs root)";
		} else if (mount("tmpfs", mnt, "tmpfs", 0, "size=2m")) {
			rmdir(mnt);
			err = "cannot mount a 2 MiB tmpfs (needs root)";
		} else {
			err = disk_full_save(mnt);
			umount2(mnt, MNT_DETACH);
			rmdir(mnt);
		}
		if (err && write(pfd[1], err, strlen(err)) < 0)
			_exit(2);
		_exit(err ? 1 : 0);
	}
	close(pfd[1]);
	if (read(pfd[0], why, sizeof(why) - 1) < 0)
		why[0] = 0;
	close(pfd[0]);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		fail_msg("disk full: %s", why[0] ? why : "the child crashed");
}

/* ---- O_DIRECT ------------------------------------------------------------------ */

static void test_direct_round_trip(void **state)
{
	round_trip(3, 3, RMIG_F_DIRECT_IO, RMIG_F_DIRECT_IO);
}

static void test_direct_save_buffered_load(void **state)
{
	round_trip(2, 2, RMIG_F_DIRECT_IO, 0);
}

static void test_buffered_save_direct_load(void **state)
{
	round_trip(2, 2, 0, RMIG_F_DIRECT_IO);
}

/* Does the test directory's filesystem take O_DIRECT? */
static int direct_supported(void)
{
	char path[4200];
	int fd;

	path_for(path, sizeof(path), "direct-probe");
	fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_DIRECT, 0600);
	if (fd < 0)
		return errno == EINVAL ? 0 : -errno;
	close(fd);
	unlink(path);
	return 1;
}

int main(int argc, char **argv)
{
	const char *d = getenv("RMIG_TEST_DIR");

	snprintf(dir, sizeof(dir), "%s", d && *d ? d : ".");
	direct_mode = argc > 1 && !strcmp(argv[1], "direct");
	if (direct_mode) {
		const struct CMUnitTest direct[] = {
		    cmocka_unit_test(test_direct_round_trip),
		    cmocka_unit_test(test_direct_save_buffered_load),
		    cmocka_unit_test(test_buffered_save_direct_load),
		};
		int ok = direct_supported();

		if (ok <= 0) {
			printf("SKIP: %s does not support O_DIRECT (%s)\n", dir,
			       ok ? strerror(-ok) : "EINVAL");
			return 77;
		}
		return cmocka_run_group_tests_name("file transport, O_DIRECT", direct, NULL, NULL);
	}

	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_crc32c),
	    cmocka_unit_test(test_round_trip),
	    cmocka_unit_test(test_round_trip_one_channel_one_thread),
	    cmocka_unit_test(test_round_trip_many_threads),
	    cmocka_unit_test(test_no_zero_detect),
	    cmocka_unit_test(test_rounds),
	    cmocka_unit_test(test_page_transitions),
	    cmocka_unit_test(test_callback_refuses),
	    cmocka_unit_test(test_corrupt_header),
	    cmocka_unit_test(test_corrupt_header_size_field),
	    cmocka_unit_test(test_wrong_magic),
	    cmocka_unit_test(test_not_a_file),
	    cmocka_unit_test(test_wrong_version),
	    cmocka_unit_test(test_unknown_flag),
	    cmocka_unit_test(test_bitmap_past_end),
	    cmocka_unit_test(test_bitmap_corrupt),
	    cmocka_unit_test(test_bitmap_tail_bits),
	    cmocka_unit_test(test_regions_overlap),
	    cmocka_unit_test(test_truncated),
	    cmocka_unit_test(test_truncated_tail),
	    cmocka_unit_test(test_unfinished),
	    cmocka_unit_test(test_different_layout),
	    cmocka_unit_test(test_dev_record_corrupt),
	    cmocka_unit_test(test_dev_record_lengths),
	    cmocka_unit_test(test_disk_full),
	    cmocka_unit_test(test_dev_index_corrupt),
	    cmocka_unit_test(test_connect_refused),
	};

	return cmocka_run_group_tests_name("file transport", tests, NULL, NULL);
}
