/* SPDX-License-Identifier: MIT */
/*
 * The live engine's private header: struct rmig_live and the calls its
 * three files make of each other. live.c is the object (create, devices,
 * marks, stats, errors); live_rounds.c the pre-copy rounds over the dirty
 * bitmaps; live_run.c rmig_live_run() and the switchover. Calls go
 * live_run.c -> live_rounds.c -> live.c, never back.
 */
#ifndef RMIG_CORE_LIVE_ENGINE_H
#define RMIG_CORE_LIVE_ENGINE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "rmig/live.h"

#include "core/core.h"


struct live_block {
	/* bit set by the guest (release), taken by the engine (acquire) */
	_Atomic uint64_t *dirty;
	uint64_t *sent;	  /* engine only: page queued at least once */
	uint64_t *resent; /* engine only: page queued at least twice */
	uint64_t nwords;
	uint64_t length;
	uint32_t page_size;
	uint32_t page_shift;
};

struct live_dev {
	struct rmig_live_device d;
	char idstr[RMIG_IDSTR_MAX];
	bool acked;
};

enum live_state { LIVE_NEW, LIVE_RUNNING, LIVE_DONE };

struct rmig_live {
	struct rmig_src *src;
	struct rmig_live_opts opts;
	struct rmig_live_hooks hooks;
	struct rmig_err err;
	struct live_block *blocks;
	unsigned int nblocks;
	bool has_peer;
	const struct rmig_block *src_blocks; /* the source's, for postcopy */
	bool postcopy;			     /* postcopy entered: no resume on failure */
	struct live_dev *devs;
	unsigned int ndevs;
	enum live_state state; /* the caller's thread (add_device, run) */
	_Atomic bool cancelled;

	/* the engine's figures; published to get_stats under stats_lock */
	struct rmig_live_stats cur;
	pthread_mutex_t stats_lock;
	struct rmig_live_stats pub; /* Must hold stats_lock */

	uint64_t last_collect_ns;
	uint64_t dirty_bytes, dirty_ns;
};

/* ---- live.c: errors, figures, devices ----------------------------------- */

int live_fail(struct rmig_live *live, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* A device callback failed with @err; the source's own failure comes first. */
int live_dev_fail(struct rmig_live *live, const struct rmig_live_device *d, const char *what,
		  int64_t err);
/* A source call failed: its own message says why. */
int live_src_fail(struct rmig_live *live, int code, const char *what);
/* Bytes the source has put on the wire so far. */
uint64_t live_wire_bytes(struct rmig_live *live);
/* Publish the engine's figures (live->cur) to rmig_live_get_stats(). */
void live_publish(struct rmig_live *live);
struct live_dev *live_find_dev(struct rmig_live *live, const char *idstr, uint32_t instance);

/* ---- live_rounds.c: the pre-copy rounds --------------------------------- */

/*
 * Rounds until a decision other than CONTINUE; returns it (an enum
 * rmig_live_decision), or a negative errno.
 */
int live_rounds(struct rmig_live *live);
/* The RAM section: collect every block's dirty bitmap and queue the pages. */
int live_collect_all(struct rmig_live *live, uint64_t *pages, uint64_t *bytes);
/* SYNC_ALL on the source; a failure fails the engine. */
int live_sync(struct rmig_live *live);
/* Devices needing a switchover ack that has not come (0 without a destination). */
unsigned int live_acks_outstanding(struct rmig_live *live);

#endif
