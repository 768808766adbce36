// SPDX-License-Identifier: MIT
/*
 * The file transport tests' fixture (file_fixture.h): RAM with guard pages,
 * generated contents, save and load through the public API.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "rmig/rmig.h"

#include "file_fixture.h"
#include "helpers.h"

const struct layout std_layout[4] = {
    {"pc.ram", 24u << 20, 4096},
    {"vga.vram", 4u << 20, 65536},
    {"pc.rom", 4u << 20, 2u << 20},
    {"tiny", 256u << 10, 512},
};

char dir[4096];

void file_fixture_init(void)
{
	const char *d = getenv("RMIG_TEST_DIR");

	snprintf(dir, sizeof(dir), "%s", d && *d ? d : ".");
}

void path_for(char *buf, size_t len, const char *name)
{
	/* The pid keeps the runs apart, which meson starts in parallel. */
	snprintf(buf, len, "%s/%s-%d.rmig", dir, name, (int)getpid());
}

/* ---- RAM with guard pages ------------------------------------------------ */

void ram_map(struct ram *r, const struct layout *l, unsigned int n)
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

void ram_unmap(struct ram *r)
{
	for (unsigned int i = 0; i < r->n; i++)
		munmap(r->map[i], r->maplen[i]);
}

void fill_page(uint8_t *p, uint32_t ps, uint64_t seed, unsigned int b, uint64_t page,
	       unsigned int zero_pct)
{
	uint64_t s = h_mix64(seed ^ h_mix64(((uint64_t)b << 48) ^ page));

	if (s % 100 < zero_pct) {
		memset(p, 0, ps);
		return;
	}
	for (uint32_t i = 0; i < ps; i += 8) {
		uint64_t v = h_mix64(s + i);

		memcpy(p + i, &v, 8);
	}
}

void ram_fill(struct ram *r, uint64_t seed, unsigned int zero_pct)
{
	for (unsigned int b = 0; b < r->n; b++)
		for (uint64_t pg = 0; pg < r->l[b].length / r->l[b].page_size; pg++)
			fill_page(r->host[b] + pg * r->l[b].page_size, r->l[b].page_size, seed, b,
				  pg, zero_pct);
}

void ram_garbage(struct ram *r)
{
	for (unsigned int b = 0; b < r->n; b++)
		memset(r->host[b], 0xa5, r->l[b].length);
}

void ram_pair(struct ram *a, struct ram *b, const struct layout *l, unsigned int n,
	      uint64_t seed, unsigned int zero_pct)
{
	ram_map(a, l, n);
	ram_map(b, l, n);
	ram_fill(a, seed, zero_pct);
}

void ram_equal(const struct ram *a, const struct ram *b)
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

const struct dev_item std_dev[4] = {
    {"cpu", 0, 4000, 11},
    {"virtio-net", 3, 0, 12},
    {"vga", 1, (5u << 20) / 2, 13}, /* 2.5 MiB: three chunks */
    {"cpu", 1, 4000, 14},
};

uint8_t *dev_bytes(const struct dev_item *d)
{
	uint8_t *p = malloc(d->len + 1);

	for (size_t i = 0; i < d->len; i++)
		p[i] = (uint8_t)h_mix64(d->seed + i);
	return p;
}

struct rmig_opts opts_with(unsigned int channels, uint32_t flags)
{
	struct rmig_opts o;

	rmig_opts_init(&o);
	o.channels = channels;
	o.flags = flags;
	return o;
}

struct rmig_src *src_open(const char *path, struct ram *r, unsigned int channels,
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

void queue_all(struct rmig_src *src, struct ram *r)
{
	for (unsigned int b = 0; b < r->n; b++)
		for (uint64_t off = 0; off < r->l[b].length; off += r->l[b].page_size)
			assert_int_equal(rmig_src_queue_page(src, b, off), 0);
}

void queue_devs(struct rmig_src *src, const struct dev_item *d, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++) {
		uint8_t *p = dev_bytes(&d[i]);

		assert_int_equal(
		    rmig_src_queue_device_state(src, d[i].id, d[i].instance, p, d[i].len), 0);
		free(p);
	}
}

void save_std(const char *path, struct ram *r, unsigned int channels, uint32_t flags)
{
	struct rmig_src *src = src_open(path, r, channels, flags);

	queue_all(src, r);
	queue_devs(src, std_dev, ARRAY_SIZE(std_dev));
	assert_int_equal(rmig_src_sync(src, RMIG_SYNC_ALL), 0);
	if (rmig_src_finish(src))
		fail_msg("finish: %s", rmig_src_error(src));
	rmig_src_destroy(src);
}

int dev_cb(void *arg, const char *id, uint32_t instance, uint64_t seq, const void *data,
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

int load(const char *path, struct ram *r, unsigned int threads, uint32_t flags,
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

void check_devs(const struct dev_seen *s, const struct dev_item *d, unsigned int n)
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

uint64_t total_pages(const struct ram *r)
{
	uint64_t n = 0;

	for (unsigned int i = 0; i < r->n; i++)
		n += r->l[i].length / r->l[i].page_size;
	return n;
}
