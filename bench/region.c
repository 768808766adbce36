/* SPDX-License-Identifier: MIT */
/*
 * The RAM region rmig-bench migrates: mapping it (anonymous or a file),
 * filling it deterministically, hashing it, and the manifest that lets a
 * destination in another process check what it received.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"

static inline uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	x ^= x >> 31;
	return x;
}

static inline uint64_t rotl64(uint64_t x, unsigned int r)
{
	return (x << r) | (x >> (64 - r));
}

uint64_t frac_to_thr(double f)
{
	if (f <= 0.0)
		return 0;
	if (f >= 1.0)
		return 1ull << 32;
	return (uint64_t)(f * 4294967296.0 + 0.5);
}

void gen_params_init(struct gen_params *gp, const struct bench_cfg *cfg)
{
	gp->seed = cfg->seed;
	gp->page_size = cfg->page_size;
	gp->zero_thr = frac_to_thr(cfg->zero_fraction);
	gp->dirty_thr = frac_to_thr(cfg->dirty_fraction);
	gp->rounds = cfg->rounds;
}

/* Independent streams per (seed, version, page): no state carried between pages. */
static uint64_t page_key(const struct gen_params *gp, uint32_t version, uint64_t page)
{
	return mix64(mix64(gp->seed ^ 0x6a09e667f3bcc909ull) + page * 0x9e3779b97f4a7c15ull +
		     (uint64_t)version * 0xd1b54a32d192ed03ull);
}

bool gen_page_is_zero(const struct gen_params *gp, uint32_t version, uint64_t page)
{
	if (!gp->zero_thr)
		return false;
	return (mix64(page_key(gp, version, page) ^ 0x243f6a8885a308d3ull) >> 32) < gp->zero_thr;
}

/* Whether the rewrite that precedes round @round + 1 touches @page (round >= 1). */
bool gen_page_is_dirty(const struct gen_params *gp, uint32_t round, uint64_t page)
{
	if (!gp->dirty_thr)
		return false;
	return (mix64(page_key(gp, round, page) ^ 0x13198a2e03707344ull) >> 32) < gp->dirty_thr;
}

uint32_t gen_final_version(const struct gen_params *gp, uint64_t page)
{
	for (uint32_t v = gp->rounds - 1; v >= 1; v--)
		if (gen_page_is_dirty(gp, v, page))
			return v;
	return 0;
}

/*
 * Four xorshift64 lanes, so the loop has no single serial dependency chain.
 * Stored little-endian so both ends of a mixed-endian pair agree.
 */
void gen_fill_page(const struct gen_params *gp, uint32_t version, uint64_t page, uint8_t *dst)
{
	uint64_t k, a, b, c, d;
	uint64_t *w = (uint64_t *)dst;
	size_t n = gp->page_size / 8;

	if (gen_page_is_zero(gp, version, page)) {
		memset(dst, 0, gp->page_size);
		return;
	}
	k = page_key(gp, version, page);
	/* xorshift never leaves a non-zero state, so a data page is never all zero */
	a = mix64(k + 1) | 1;
	b = mix64(k + 2) | 1;
	c = mix64(k + 3) | 1;
	d = mix64(k + 4) | 1;
	for (size_t i = 0; i < n; i += 4) {
		a ^= a << 13, a ^= a >> 7, a ^= a << 17;
		b ^= b << 13, b ^= b >> 7, b ^= b << 17;
		c ^= c << 13, c ^= c >> 7, c ^= c << 17;
		d ^= d << 13, d ^= d >> 7, d ^= d << 17;
		w[i] = htole64(a);
		w[i + 1] = htole64(b);
		w[i + 2] = htole64(c);
		w[i + 3] = htole64(d);
	}
}

/* Initial content; the region is freshly mapped, so zero pages are left alone. */
void gen_fill_region(const struct gen_params *gp, struct region *r)
{
	uint64_t npages = r->size / r->page_size;

	for (uint64_t p = 0; p < npages; p++)
		if (!gen_page_is_zero(gp, 0, p))
			gen_fill_page(gp, 0, p, r->base + p * r->page_size);
}

/* ---- mapping ------------------------------------------------------------ */

/* --hugepages: generated RAM in 2 MiB hugepages (MAP_HUGETLB) */
static bool hugepages;

void region_use_hugepages(bool on)
{
	hugepages = on;
}

int region_map_anon(struct region *r, uint64_t size, uint32_t page_size, bool populate,
		    char *err, size_t errlen)
{
	int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;
	void *p;

	/* --ram-nodes: bound first, populated after (region_bind_nodes) */
	if (populate && !region_nodes_bound())
		flags |= MAP_POPULATE;
	if (hugepages) {
		if (size % (2u << 20)) {
			snprintf(err, errlen, "--hugepages: the size (%llu bytes) is not a "
				 "multiple of 2 MiB", (unsigned long long)size);
			return -EINVAL;
		}
		/* reserved pages, or mmap fails: no silent fallback to 4 KiB pages */
		flags = (flags & ~MAP_NORESERVE) | MAP_HUGETLB;
	}
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, flags, -1, 0);
	if (p == MAP_FAILED) {
		int e = errno;

		snprintf(err, errlen, "cannot map %llu bytes of anonymous memory%s: %s",
			 (unsigned long long)size,
			 hugepages ? " in 2 MiB hugepages (reserve vm.nr_hugepages)" : "",
			 strerror(e));
		return -e;
	}
	r->base = p;
	r->size = size;
	r->page_size = page_size;
	r->mapped_file = false;
	return region_bind_nodes(p, size, populate, err, errlen);
}

int region_map_file(struct region *r, const char *path, uint32_t page_size, bool writable,
		    bool populate, char *err, size_t errlen)
{
	int flags = MAP_SHARED, prot = PROT_READ, fd, ret;
	struct stat st;
	void *p;

	fd = open(path, writable ? O_RDWR : O_RDONLY);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "region file %s: %s", path, strerror(-ret));
		return ret;
	}
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		snprintf(err, errlen, "region file %s: fstat: %s", path, strerror(-ret));
		goto err_close;
	}
	if (!S_ISREG(st.st_mode)) {
		ret = -EINVAL;
		snprintf(err, errlen, "region file %s: not a regular file", path);
		goto err_close;
	}
	if (st.st_size == 0) {
		ret = -EINVAL;
		snprintf(err, errlen, "region file %s is empty", path);
		goto err_close;
	}
	if ((uint64_t)st.st_size % page_size) {
		ret = -EINVAL;
		snprintf(err, errlen,
			 "region file %s: size %lld is not a multiple of the page size %u (see --page-size)",
			 path, (long long)st.st_size, page_size);
		goto err_close;
	}
	if (writable)
		prot |= PROT_WRITE;
	if (populate)
		flags |= MAP_POPULATE;
	p = mmap(NULL, (size_t)st.st_size, prot, flags, fd, 0);
	if (p == MAP_FAILED) {
		ret = -errno;
		snprintf(err, errlen, "region file %s: mmap: %s", path, strerror(-ret));
		goto err_close;
	}
	close(fd); /* the mapping keeps the file */
	r->base = p;
	r->size = (uint64_t)st.st_size;
	r->page_size = page_size;
	r->mapped_file = true;
	return 0;

err_close:
	close(fd);
	return ret;
}

void region_unmap(struct region *r)
{
	if (r->base)
		munmap(r->base, r->size);
	r->base = NULL;
}

/* ---- digest -------------------------------------------------------------- */

static inline uint64_t load_le64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return le64toh(v);
}

#define HK1 0x9fb21c651e98df25ull
#define HK2 0xc2b2ae3d27d4eb4full

static inline uint64_t hash_lane(uint64_t l, uint64_t w)
{
	return rotl64((l ^ w) * HK1, 29);
}

/*
 * Four lanes over 32-byte strides: each lane's chain is xor, multiply,
 * rotate, and the lanes are independent, so the multiplies overlap.
 */
uint64_t hash_chunk(const void *buf, size_t len)
{
	const uint8_t *p = buf;
	uint64_t l0 = 0x243f6a8885a308d3ull, l1 = 0x13198a2e03707344ull;
	uint64_t l2 = 0xa4093822299f31d0ull, l3 = 0x082efa98ec4e6c89ull;
	size_t i = 0;
	uint64_t h;

	for (; i + 32 <= len; i += 32) {
		l0 = hash_lane(l0, load_le64(p + i));
		l1 = hash_lane(l1, load_le64(p + i + 8));
		l2 = hash_lane(l2, load_le64(p + i + 16));
		l3 = hash_lane(l3, load_le64(p + i + 24));
	}
	if (i < len) {
		uint8_t tail[32] = { 0 };

		memcpy(tail, p + i, len - i);
		l0 = hash_lane(l0, load_le64(tail));
		l1 = hash_lane(l1, load_le64(tail + 8));
		l2 = hash_lane(l2, load_le64(tail + 16));
		l3 = hash_lane(l3, load_le64(tail + 24));
	}
	h = mix64(l0 ^ HK2);
	h = mix64(h ^ l1);
	h = mix64(h ^ l2);
	h = mix64(h ^ l3);
	return mix64(h ^ (uint64_t)len);
}

/*
 * hash_chunk's lanes over 64-bit values rather than bytes (so the result does
 * not depend on the host's byte order): digests of page digests.
 */
uint64_t hash_words(const uint64_t *w, uint64_t n)
{
	uint64_t l[4] = { 0x243f6a8885a308d3ull, 0x13198a2e03707344ull, 0xa4093822299f31d0ull,
			  0x082efa98ec4e6c89ull };
	uint64_t i = 0, h;

	for (; i + 4 <= n; i += 4) {
		l[0] = hash_lane(l[0], w[i]);
		l[1] = hash_lane(l[1], w[i + 1]);
		l[2] = hash_lane(l[2], w[i + 2]);
		l[3] = hash_lane(l[3], w[i + 3]);
	}
	for (unsigned int j = 0; i < n; i++, j++)
		l[j] = hash_lane(l[j], w[i]);
	h = mix64(l[0] ^ HK2);
	h = mix64(h ^ l[1]);
	h = mix64(h ^ l[2]);
	h = mix64(h ^ l[3]);
	return mix64(h ^ (n * 8));
}

uint64_t region_nchunks(const struct region *r)
{
	return (r->size + BENCH_HASH_CHUNK - 1) / BENCH_HASH_CHUNK;
}

void region_digest(const struct region *r, uint64_t *out)
{
	uint64_t n = region_nchunks(r);

	for (uint64_t i = 0; i < n; i++) {
		uint64_t off = i * BENCH_HASH_CHUNK;
		uint64_t len = r->size - off < BENCH_HASH_CHUNK ? r->size - off : BENCH_HASH_CHUNK;

		out[i] = hash_chunk(r->base + off, len);
	}
}

/*
 * The digest the region will have after the last round, computed up front
 * (so outside the timed run) by generating each page's final version into a
 * scratch window of whole pages and whole chunks.
 */
int gen_digest_final(const struct gen_params *gp, uint64_t size, uint64_t *out)
{
	uint64_t win = gp->page_size > BENCH_HASH_CHUNK ? gp->page_size : BENCH_HASH_CHUNK;
	uint64_t pages_per_win = win / gp->page_size, npages = size / gp->page_size;
	uint8_t *scratch = malloc(win);
	uint64_t c = 0;

	if (!scratch)
		return -ENOMEM;
	for (uint64_t first = 0; first < npages; first += pages_per_win) {
		uint64_t n = npages - first < pages_per_win ? npages - first : pages_per_win;
		uint64_t bytes = n * gp->page_size;

		for (uint64_t i = 0; i < n; i++)
			gen_fill_page(gp, gen_final_version(gp, first + i), first + i,
				      scratch + i * gp->page_size);
		for (uint64_t off = 0; off < bytes; off += BENCH_HASH_CHUNK)
			out[c++] = hash_chunk(scratch + off, bytes - off < BENCH_HASH_CHUNK
								 ? bytes - off
								 : BENCH_HASH_CHUNK);
	}
	free(scratch);
	return 0;
}

/* ---- manifest ------------------------------------------------------------ */

/*
 * Layout, little-endian: magic u32, version u32, flags u32, rounds u32,
 * seed u64, size u64, zero_thr u64, dirty_thr u64, page_size u32,
 * hash_chunk u32, nchunks u64, then nchunks u64 digests.
 */
static void put32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, 4);
}

static void put64(uint8_t *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, 8);
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return le32toh(v);
}

size_t manifest_encode(uint8_t **bufp, const struct gen_params *gp, uint64_t size, uint32_t flags,
		       uint32_t hash_chunk_len, const uint64_t *digests, uint64_t nchunks)
{
	size_t len = MANIFEST_HDR_LEN + nchunks * 8;
	uint8_t *b = calloc(1, len);

	*bufp = b;
	if (!b)
		return 0;
	put32(b + 0, MANIFEST_MAGIC);
	put32(b + 4, MANIFEST_VERSION);
	put32(b + 8, flags);
	put32(b + 12, gp->rounds);
	put64(b + 16, gp->seed);
	put64(b + 24, size);
	put64(b + 32, gp->zero_thr);
	put64(b + 40, gp->dirty_thr);
	put32(b + 48, gp->page_size);
	put32(b + 52, hash_chunk_len);
	put64(b + 56, nchunks);
	for (uint64_t i = 0; i < nchunks; i++)
		put64(b + MANIFEST_HDR_LEN + i * 8, digests[i]);
	return len;
}

int manifest_decode(struct manifest *m, const uint8_t *b, size_t len, char *err, size_t errlen)
{
	if (len < MANIFEST_HDR_LEN || get32(b) != MANIFEST_MAGIC) {
		snprintf(err, errlen, "manifest: %zu bytes, not a rmig-bench manifest", len);
		return -EPROTO;
	}
	m->version = get32(b + 4);
	if (m->version != MANIFEST_VERSION) {
		snprintf(err, errlen, "manifest: format version %u, this build reads %u",
			 m->version, MANIFEST_VERSION);
		return -EPROTO;
	}
	m->flags = get32(b + 8);
	m->rounds = get32(b + 12);
	m->seed = load_le64(b + 16);
	m->size = load_le64(b + 24);
	m->zero_thr = load_le64(b + 32);
	m->dirty_thr = load_le64(b + 40);
	m->page_size = get32(b + 48);
	m->hash_chunk = get32(b + 52);
	m->nchunks = load_le64(b + 56);
	if (m->nchunks > (len - MANIFEST_HDR_LEN) / 8 ||
	    len != MANIFEST_HDR_LEN + m->nchunks * 8) {
		snprintf(err, errlen, "manifest: length %zu does not fit %llu digests", len,
			 (unsigned long long)m->nchunks);
		return -EPROTO;
	}
	if (m->rounds == 0 || m->page_size == 0 || m->hash_chunk == 0 || m->zero_thr > (1ull << 32) ||
	    m->dirty_thr > (1ull << 32)) {
		snprintf(err, errlen, "manifest: malformed header");
		return -EPROTO;
	}
	m->digests = b + MANIFEST_HDR_LEN;
	return 0;
}

uint64_t manifest_digest(const struct manifest *m, uint64_t i)
{
	return load_le64(m->digests + i * 8);
}
