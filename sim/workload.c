// SPDX-License-Identifier: MIT
/*
 * The dirtying workload: token-bucket paced page writes followed by
 * rmig_live_mark_dirty(). A page write fills the whole page, so a stale copy
 * on the destination is always visible to a byte comparison.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "workload.h"

/* Pages written between clock reads and stop checks. */
#define WL_BATCH 16
/*
 * The bucket holds at most this much time's worth of writes: enough to
 * catch up after the thread was descheduled (on a small machine the
 * migration's own threads compete for the CPUs), not enough for long bursts.
 */
#define WL_BURST_NS 50000000ull

struct wl_thread {
	struct workload *w;
	pthread_t thread;
	unsigned int id;
	uint64_t rng;
	uint64_t cursor; /* WL_SEQ */
	uint64_t version;
	bool started;
};

struct workload {
	struct wl_cfg cfg;
	struct rmig_live *live;
	uint64_t npages, hot_pages;
	unsigned int nthreads;
	struct wl_thread *t;
	_Atomic bool stop;	  /* stop request; threads only need to see it eventually */
	_Atomic uint64_t writes; /* statistics only */
	uint64_t t_start, t_stop;
	bool stopped;
};

static uint64_t wl_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t wl_rand(uint64_t *s)
{
	/* xorshift64*: any non-zero state */
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dull;
}

/* Uniform in [0, n) without a division. */
static uint64_t wl_below(uint64_t *s, uint64_t n)
{
	return (uint64_t)(((unsigned __int128)wl_rand(s) * n) >> 64);
}

static uint64_t wl_next_page(struct wl_thread *t)
{
	struct workload *w = t->w;

	switch (w->cfg.pattern) {
	case WL_SEQ: {
		/* thread i owns pages i, i + n, i + 2n, ... */
		uint64_t own = (w->npages - t->id + w->nthreads - 1) / w->nthreads;
		uint64_t p = t->id + (t->cursor % own) * w->nthreads;

		t->cursor++;
		return p;
	}
	case WL_HOT:
		if (wl_below(&t->rng, 10) < 9)
			return wl_below(&t->rng, w->hot_pages);
		return wl_below(&t->rng, w->npages);
	case WL_RANDOM:
	default:
		return wl_below(&t->rng, w->npages);
	}
}

static void wl_write_page(struct wl_thread *t, uint64_t page)
{
	struct workload *w = t->w;
	uint8_t *p = w->cfg.base + page * w->cfg.page_size;
	uint64_t stamp[2] = { page, ++t->version ^ ((uint64_t)t->id << 56) };

	memset(p, (int)(t->version & 0xff) | 1, w->cfg.page_size);
	memcpy(p, stamp, w->cfg.page_size < sizeof(stamp) ? w->cfg.page_size : sizeof(stamp));
	/* after the write, as a dirty log reports it */
	if (w->live)
		rmig_live_mark_dirty(w->live, w->cfg.block, page * w->cfg.page_size);
	/* release: pairs with the acquire exchange of page_digests_update() */
	if (w->cfg.touched)
		atomic_fetch_or_explicit(&w->cfg.touched[page / 64], 1ull << (page % 64),
					 memory_order_release);
}

static void wl_sleep_ns(uint64_t ns)
{
	struct timespec ts = { .tv_sec = (time_t)(ns / 1000000000ull),
			       .tv_nsec = (long)(ns % 1000000000ull) };

	nanosleep(&ts, NULL);
}

static void *wl_main(void *arg)
{
	struct wl_thread *t = arg;
	struct workload *w = t->w;
	double rate = (double)w->cfg.rate / w->nthreads; /* bytes/s for this thread */
	double burst = rate * WL_BURST_NS / 1e9, tokens = 0;
	uint64_t last = wl_now_ns();

	if (burst < w->cfg.page_size)
		burst = w->cfg.page_size;
	while (!atomic_load_explicit(&w->stop, memory_order_relaxed)) {
		unsigned int n = WL_BATCH;

		if (w->cfg.rate) {
			uint64_t now = wl_now_ns();

			tokens += (double)(now - last) * rate / 1e9;
			last = now;
			if (tokens > burst)
				tokens = burst;
			if (tokens < w->cfg.page_size) {
				double wait_s = (w->cfg.page_size - tokens) / rate;

				wl_sleep_ns((uint64_t)(wait_s * 1e9) + 1);
				continue;
			}
			if (tokens / w->cfg.page_size < n)
				n = (unsigned int)(tokens / w->cfg.page_size);
			tokens -= (double)n * w->cfg.page_size;
		}
		for (unsigned int i = 0; i < n; i++)
			wl_write_page(t, wl_next_page(t));
		atomic_fetch_add_explicit(&w->writes, n, memory_order_relaxed);
	}
	return NULL;
}

int wl_start(const struct wl_cfg *cfg, struct rmig_live *live, struct workload **wp)
{
	struct workload *w;
	int ret;

	if (!cfg->base || !cfg->page_size || !cfg->size || cfg->size % cfg->page_size)
		return -EINVAL;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->cfg = *cfg;
	w->live = live;
	w->npages = cfg->size / cfg->page_size;
	w->hot_pages = (cfg->hot_bytes ? cfg->hot_bytes : cfg->size / 16) / cfg->page_size;
	if (!w->hot_pages)
		w->hot_pages = 1;
	if (w->hot_pages > w->npages)
		w->hot_pages = w->npages;
	w->nthreads = cfg->threads ? cfg->threads : 1;
	if (w->nthreads > w->npages)
		w->nthreads = (unsigned int)w->npages;
	atomic_init(&w->stop, false);
	atomic_init(&w->writes, 0);
	w->t = calloc(w->nthreads, sizeof(*w->t));
	if (!w->t) {
		free(w);
		return -ENOMEM;
	}
	w->t_start = wl_now_ns();
	for (unsigned int i = 0; i < w->nthreads; i++) {
		struct wl_thread *t = &w->t[i];

		t->w = w;
		t->id = i;
		t->rng = (cfg->seed + 1) * 0x9e3779b97f4a7c15ull + i * 0xbf58476d1ce4e5b9ull;
		if (!t->rng)
			t->rng = 1;
		ret = -pthread_create(&t->thread, NULL, wl_main, t);
		if (ret) {
			wl_destroy(w);
			return ret;
		}
		t->started = true;
	}
	*wp = w;
	return 0;
}

int wl_stop(struct workload *w)
{
	if (!w || w->stopped)
		return 0;
	atomic_store_explicit(&w->stop, true, memory_order_relaxed);
	/* the joins order every write (and its mark) before our return */
	for (unsigned int i = 0; i < w->nthreads; i++)
		if (w->t[i].started)
			pthread_join(w->t[i].thread, NULL);
	w->t_stop = wl_now_ns();
	w->stopped = true;
	return 0;
}

uint64_t wl_writes(struct workload *w)
{
	return atomic_load_explicit(&w->writes, memory_order_relaxed);
}

double wl_seconds(struct workload *w)
{
	return (double)((w->stopped ? w->t_stop : wl_now_ns()) - w->t_start) / 1e9;
}

void wl_destroy(struct workload *w)
{
	if (!w)
		return;
	wl_stop(w);
	free(w->t);
	free(w);
}

const char *wl_pattern_name(enum wl_pattern p)
{
	switch (p) {
	case WL_SEQ:
		return "seq";
	case WL_HOT:
		return "hot";
	case WL_RANDOM:
	default:
		return "random";
	}
}

int wl_pattern_parse(const char *s)
{
	if (!strcmp(s, "random"))
		return WL_RANDOM;
	if (!strcmp(s, "seq"))
		return WL_SEQ;
	if (!strcmp(s, "hot"))
		return WL_HOT;
	return -1;
}
