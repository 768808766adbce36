/* SPDX-License-Identifier: MIT */
/*
 * A stand-in for a running guest: threads ("vCPUs") that rewrite pages of a
 * RAM region at a target rate and pattern and report every write to the
 * live engine with rmig_live_mark_dirty(), after the write, as a VMM's
 * dirty log would. Part of sim/ (the simulated guest), used by rmig-bench
 * --live and by tests/live.
 */
#ifndef RMIG_SIM_WORKLOAD_H
#define RMIG_SIM_WORKLOAD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "rmig/live.h"

enum wl_pattern {
	WL_RANDOM, /* uniform over the region */
	WL_SEQ,	   /* each thread walks its own stripe of pages in order, wrapping */
	WL_HOT,	   /* 90% of writes into a hot set (the first hot_bytes), 10% anywhere */
};

struct wl_cfg {
	uint8_t *base;	    /* the region (source RAM) */
	uint64_t size;	    /* bytes, a multiple of page_size */
	uint32_t page_size;
	unsigned int block; /* its index in the source, for rmig_live_mark_dirty() */
	uint64_t rate;	    /* bytes per second over all threads; 0: as fast as possible */
	enum wl_pattern pattern;
	uint64_t hot_bytes; /* WL_HOT: size of the hot set; 0: size / 16 */
	unsigned int threads; /* 0: 1 */
	uint64_t seed;
	/* optional: a bit per page, set (release) after each write of the page,
	 * for a reader that keeps digests of the content (rmig-bench's manifest) */
	_Atomic uint64_t *touched;
};

struct workload;

/*
 * Start the threads, writing into @cfg->base and marking pages in @live
 * (which may be NULL: write only). Returns 0 or a negative errno.
 */
int wl_start(const struct wl_cfg *cfg, struct rmig_live *live, struct workload **wp);
/*
 * Stop every thread and wait for it; afterwards nothing writes the region.
 * Safe to call twice. Suitable as the engine's stop_vcpus hook (returns 0).
 */
int wl_stop(struct workload *w);
/* Pages written so far (all threads). Any thread. */
uint64_t wl_writes(struct workload *w);
/* Seconds the threads have been running (until wl_stop). */
double wl_seconds(struct workload *w);
/* Stop if running, then free. NULL is fine. */
void wl_destroy(struct workload *w);

/* The name of @p ("random", "seq", "hot"), and back (-1: unknown). */
const char *wl_pattern_name(enum wl_pattern p);
int wl_pattern_parse(const char *s);

#endif
