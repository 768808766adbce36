/* SPDX-License-Identifier: MIT */
/*
 * Checking a destination in another process: the manifest as it arrives in
 * device-state chunks, its verification, and the page-fold digests of a
 * region that a workload keeps rewriting (rmig-bench --live with
 * --listen/--connect).
 *
 * Page-fold form (MANIFEST_F_PAGE_FOLD): every page has a digest
 * (hash_chunk of its bytes); the digest of a chunk of fold_pages() pages is
 * hash_words() of its pages' digests. The source keeps the page digests up
 * to date while the workload runs (a background thread hashes a page again
 * after it was written), so once the workload stopped only the pages written
 * in the last moments need hashing before the manifest can be sent.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"

/* ---- receiving the manifest ------------------------------------------------ */

#define MANIFEST_MAX (256u << 20)

static int manifest_rx_append(struct manifest_rx *mr, const void *data, size_t len)
{
	size_t cap;
	uint8_t *n;

	if (len > MANIFEST_MAX - mr->len)
		return -EFBIG;
	if (mr->len + len <= mr->cap)
		goto copy;
	cap = mr->cap ? mr->cap : 65536;
	while (cap < mr->len + len)
		cap *= 2;
	n = realloc(mr->buf, cap);
	if (!n)
		return -ENOMEM;
	mr->buf = n;
	mr->cap = cap;
copy:
	memcpy(mr->buf + mr->len, data, len);
	mr->len += len;
	return 0;
}

int manifest_rx_feed(struct manifest_rx *mr, const char *idstr, uint64_t seq, const void *data,
		     size_t len)
{
	int ret;

	/* the library promises queue order; a repeat or step back would corrupt ours */
	if (mr->chunks++ && seq <= mr->last_seq) {
		mr->order_broken = true;
		return -EPROTO;
	}
	mr->last_seq = seq;
	if (strcmp(idstr, BENCH_IDSTR)) {
		mr->foreign_chunks++;
		return 0;
	}
	ret = manifest_rx_append(mr, data, len);
	return ret ? ret : 1;
}

void manifest_rx_free(struct manifest_rx *mr)
{
	free(mr->buf);
	memset(mr, 0, sizeof(*mr));
}

/* ---- page-fold digests ------------------------------------------------------ */

uint64_t fold_pages(uint32_t page_size)
{
	return page_size >= BENCH_HASH_CHUNK ? 1 : BENCH_HASH_CHUNK / page_size;
}

uint64_t fold_nchunks(uint64_t npages, uint32_t page_size)
{
	return (npages + fold_pages(page_size) - 1) / fold_pages(page_size);
}

static uint64_t page_digest(const struct region *r, uint64_t page)
{
	return hash_chunk(r->base + page * r->page_size, r->page_size);
}

/* Chunk @i of @r in the page-fold form; @scratch holds fold_pages() values. */
static uint64_t fold_chunk(const struct region *r, uint64_t i, uint64_t *scratch)
{
	uint64_t ppc = fold_pages(r->page_size), npages = r->size / r->page_size;
	uint64_t first = i * ppc, n = npages - first < ppc ? npages - first : ppc;

	for (uint64_t k = 0; k < n; k++)
		scratch[k] = page_digest(r, first + k);
	return hash_words(scratch, n);
}

bool manifest_chunk_ok(const struct manifest *m, const struct region *reg, uint64_t i,
		       uint64_t *scratch)
{
	return fold_chunk(reg, i, scratch) == manifest_digest(m, i);
}

int page_digests_init(struct page_digests *pd, const struct region *r)
{
	uint64_t npages = r->size / r->page_size, words = (npages + 63) / 64;

	memset(pd, 0, sizeof(*pd));
	pd->reg = r;
	pd->npages = npages;
	pd->hash = malloc(npages * sizeof(*pd->hash));
	pd->touched = calloc(words, sizeof(*pd->touched));
	if (!pd->hash || !pd->touched) {
		page_digests_free(pd);
		return -ENOMEM;
	}
	for (uint64_t p = 0; p < npages; p++)
		pd->hash[p] = page_digest(r, p);
	return 0;
}

/*
 * Hash again every page written since the last call. The writer sets a
 * page's bit (release) after writing it; the exchange (acquire) comes before
 * the read, so the read sees at least that write, and a write racing with
 * the read sets the bit again for the next call. Once the writers stopped
 * (joined), one call leaves every digest exact.
 */
uint64_t page_digests_update(struct page_digests *pd)
{
	uint64_t n = 0;

	for (uint64_t w = 0; w < (pd->npages + 63) / 64; w++) {
		uint64_t bits;

		if (!atomic_load_explicit(&pd->touched[w], memory_order_relaxed))
			continue;
		bits = atomic_exchange_explicit(&pd->touched[w], 0, memory_order_acquire);
		for (; bits; bits &= bits - 1, n++) {
			uint64_t p = w * 64 + (uint64_t)__builtin_ctzll(bits);

			pd->hash[p] = page_digest(pd->reg, p);
		}
	}
	pd->rehashed += n;
	return n;
}

/* Between passes: a writer's new pages wait at most this long. */
#define DIGEST_PASS_NS 1000000L

static void *page_digests_main(void *arg)
{
	struct page_digests *pd = arg;
	struct timespec pause = { .tv_nsec = DIGEST_PASS_NS };

	while (!atomic_load_explicit(&pd->stop, memory_order_relaxed)) {
		page_digests_update(pd);
		nanosleep(&pause, NULL);
	}
	return NULL;
}

int page_digests_start(struct page_digests *pd)
{
	int ret;

	atomic_store(&pd->stop, false);
	ret = -pthread_create(&pd->thread, NULL, page_digests_main, pd);
	pd->running = !ret;
	return ret;
}

/* Joined: its last hashes are visible to the caller, who may update from now on. */
void page_digests_stop(struct page_digests *pd)
{
	if (!pd->running)
		return;
	atomic_store(&pd->stop, true);
	pthread_join(pd->thread, NULL);
	pd->running = false;
}

int page_digests_manifest(struct page_digests *pd, const struct gen_params *gp, uint8_t **bufp,
			  size_t *lenp)
{
	uint32_t ps = pd->reg->page_size;
	uint64_t ppc = fold_pages(ps), n = fold_nchunks(pd->npages, ps);
	uint64_t *d = malloc(n * sizeof(*d));

	if (!d)
		return -ENOMEM;
	page_digests_stop(pd);
	page_digests_update(pd);
	for (uint64_t i = 0; i < n; i++) {
		uint64_t first = i * ppc;

		d[i] = hash_words(pd->hash + first,
				  pd->npages - first < ppc ? pd->npages - first : ppc);
	}
	*lenp = manifest_encode(bufp, gp, pd->reg->size, MANIFEST_F_PAGE_FOLD,
				(uint32_t)(ppc * ps), d, n);
	free(d);
	return *bufp ? 0 : -ENOMEM;
}

void page_digests_free(struct page_digests *pd)
{
	page_digests_stop(pd);
	free(pd->hash);
	free(pd->touched);
	pd->hash = NULL;
	pd->touched = NULL;
}

/* ---- verification ----------------------------------------------------------- */

static int check_plain(const struct manifest *m, const struct region *reg, char *err,
		       size_t errlen)
{
	uint64_t bad = 0, first = 0;

	if (m->hash_chunk != BENCH_HASH_CHUNK || m->nchunks != region_nchunks(reg)) {
		snprintf(err, errlen, "manifest digests %" PRIu64 " chunks of %u bytes; "
			 "expected %" PRIu64 " of %u", m->nchunks, m->hash_chunk,
			 region_nchunks(reg), BENCH_HASH_CHUNK);
		return -EPROTO;
	}
	for (uint64_t i = 0; i < m->nchunks; i++) {
		uint64_t off = i * BENCH_HASH_CHUNK;
		uint64_t len = reg->size - off;

		if (len > BENCH_HASH_CHUNK)
			len = BENCH_HASH_CHUNK;

		if (hash_chunk(reg->base + off, len) != manifest_digest(m, i) && !bad++)
			first = i;
	}
	if (!bad)
		return 0;
	snprintf(err, errlen, "%" PRIu64 " of %" PRIu64 " 1 MiB chunks differ from the "
		 "source's digest; first: chunk %" PRIu64 " (bytes %" PRIu64 "..)",
		 bad, m->nchunks, first, first * BENCH_HASH_CHUNK);
	return -EPROTO;
}

static int check_fold(const struct manifest *m, const struct region *reg, char *err,
		      size_t errlen)
{
	uint64_t ppc = fold_pages(reg->page_size), npages = reg->size / reg->page_size;
	uint64_t n = fold_nchunks(npages, reg->page_size), bad = 0, first = 0;
	uint64_t *scratch;

	if (m->hash_chunk != ppc * reg->page_size || m->nchunks != n) {
		snprintf(err, errlen, "manifest digests %" PRIu64 " chunks of %u bytes; "
			 "expected %" PRIu64 " of %" PRIu64, m->nchunks, m->hash_chunk, n,
			 ppc * reg->page_size);
		return -EPROTO;
	}
	scratch = malloc(ppc * sizeof(*scratch));
	if (!scratch) {
		snprintf(err, errlen, "out of memory for verification");
		return -ENOMEM;
	}
	for (uint64_t i = 0; i < n; i++)
		if (!manifest_chunk_ok(m, reg, i, scratch) && !bad++)
			first = i;
	free(scratch);
	if (!bad)
		return 0;
	snprintf(err, errlen, "%" PRIu64 " of %" PRIu64 " chunks of %" PRIu64 " pages differ "
		 "from the source's final digest; first: chunk %" PRIu64 " (bytes %" PRIu64 "..)",
		 bad, n, ppc, first, first * ppc * reg->page_size);
	return -EPROTO;
}

static int check_generated(const struct manifest *m, const struct region *reg, char *err,
			   size_t errlen)
{
	struct gen_params gp = { .seed = m->seed, .page_size = m->page_size,
				 .zero_thr = m->zero_thr, .dirty_thr = m->dirty_thr,
				 .rounds = m->rounds };
	uint64_t npages = reg->size / reg->page_size, bad = 0, first = 0;
	uint8_t *page = malloc(reg->page_size);

	if (!page) {
		snprintf(err, errlen, "out of memory for verification");
		return -ENOMEM;
	}
	for (uint64_t p = 0; p < npages; p++) {
		gen_fill_page(&gp, gen_final_version(&gp, p), p, page);
		if (memcmp(page, reg->base + p * reg->page_size, reg->page_size) && !bad++)
			first = p;
	}
	free(page);
	if (!bad)
		return 0;
	snprintf(err, errlen, "%" PRIu64 " of %" PRIu64 " pages differ from the content "
		 "regenerated from seed %" PRIu64 "; first: page %" PRIu64, bad, npages,
		 m->seed, first);
	return -EPROTO;
}

int manifest_verify(const struct manifest_rx *mr, const struct region *reg, bool full,
		    struct manifest *m, char *err, size_t errlen)
{
	int ret;

	if (mr->order_broken) {
		snprintf(err, errlen, "device-state chunks arrived out of order (seq went back)");
		return -EPROTO;
	}
	if (!mr->len) {
		snprintf(err, errlen, "no manifest arrived as device state \"%s\"", BENCH_IDSTR);
		return -EPROTO;
	}
	ret = manifest_decode(m, mr->buf, mr->len, err, errlen);
	if (ret)
		return ret;
	if (m->size != reg->size || m->page_size != reg->page_size) {
		snprintf(err, errlen, "manifest describes %" PRIu64 " bytes of %u-byte pages, "
			 "this region is %" PRIu64 " bytes of %u-byte pages",
			 m->size, m->page_size, reg->size, reg->page_size);
		return -EPROTO;
	}
	if (!full)
		return 0;
	if (m->nchunks) {
		ret = m->flags & MANIFEST_F_PAGE_FOLD ? check_fold(m, reg, err, errlen)
						      : check_plain(m, reg, err, errlen);
		if (ret)
			return ret;
	}
	if (!(m->flags & MANIFEST_F_GENERATED))
		return 0;
	return check_generated(m, reg, err, errlen);
}
