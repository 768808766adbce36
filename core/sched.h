/* SPDX-License-Identifier: MIT */
/*
 * The multifd slot-swap scheduler.
 *
 * There are channels + (one per producer) payload slots. A producer fills
 * the slot it owns and calls rmig_sched_send(): that finds an idle channel,
 * swaps the producer's full slot for the channel's empty one, and publishes
 * the job with a store-release of pending_job. The channel thread
 * load-acquires pending_job, transmits, empties the slot and store-releases
 * pending_job back to idle. Payload contents are never copied.
 *
 * The scheduler knows nothing of transports: it calls back.
 */
#ifndef RMIG_CORE_SCHED_H
#define RMIG_CORE_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rmig/rmig.h"

enum rmig_payload_type {
	RMIG_PAYLOAD_NONE = 0,
	RMIG_PAYLOAD_RAM,
	RMIG_PAYLOAD_DEV,
};

struct rmig_ram_batch {
	uint32_t block;
	uint32_t num;	     /* offsets queued */
	uint32_t normal;     /* after zero detection: offsets[0..normal) carry data */
	uint32_t zero;	     /* offsets[normal..normal+zero) are zero pages */
	uint64_t *offsets;   /* capacity: pages_per_packet */
};

struct rmig_dev_chunk {
	char idstr[RMIG_IDSTR_MAX];
	uint32_t instance;
	uint64_t seq;
	uint8_t *data;	/* owned by the payload; grows to the largest chunk seen */
	size_t len;
	size_t cap;
};

/* One send-data slot: a batch of pages of one block, or one device-state chunk. */
struct rmig_payload {
	enum rmig_payload_type type;
	/* free for the producer's use (e.g. a test's id); the channel leaves it alone */
	uint64_t tag;
	struct rmig_ram_batch ram;
	struct rmig_dev_chunk dev;
};

struct rmig_payload *rmig_payload_alloc(unsigned int pages_per_packet);
void rmig_payload_free(struct rmig_payload *p);
static inline bool rmig_payload_empty(const struct rmig_payload *p)
{
	return p->type == RMIG_PAYLOAD_NONE;
}
/* Make the slot empty again (keeps its memory). */
void rmig_payload_reset(struct rmig_payload *p);

enum rmig_sched_sync {
	RMIG_SCHED_SYNC_LOCAL = 1, /* hand everything over (flush) */
	RMIG_SCHED_SYNC_FENCE = 2, /* LOCAL plus a fence for the round */
	RMIG_SCHED_SYNC_FIN = 3,   /* LOCAL plus the channel's final message */
};

/* What the channel threads call. All run on channel @ch's own thread. */
struct rmig_sched_cb {
	/* Transmit @p. Non-zero aborts the scheduler with that error. */
	int (*transmit)(void *ctx, unsigned int ch, struct rmig_payload *p);
	/*
	 * Sync point of @kind (enum rmig_sched_sync) behind everything this
	 * channel transmitted before.
	 */
	int (*sync)(void *ctx, unsigned int ch, unsigned int kind, uint64_t round);
};

struct rmig_sched;

int rmig_sched_create(unsigned int channels, unsigned int pages_per_packet,
		      const struct rmig_sched_cb *cb, void *ctx, struct rmig_sched **sp);
/*
 * Hand the full slot *@slot to the next idle channel; *@slot becomes that
 * channel's empty slot. Blocks while every channel is busy. Safe from
 * several producer threads at once, each with its own slot.
 * Returns 0 or the scheduler's error (after which *@slot is unchanged).
 */
int rmig_sched_send(struct rmig_sched *s, struct rmig_payload **slot);
/*
 * NUMA steering (core/numa.h). As rmig_sched_send(), but when steering is
 * on and some channel is on @node (>= 0), an idle channel on @node takes
 * the slot; if none is idle, the caller waits for one up to the steering
 * wait, then takes any idle channel (a fallback). @node < 0: as
 * rmig_sched_send().
 */
int rmig_sched_send_node(struct rmig_sched *s, struct rmig_payload **slot, int node);
/* Channel @ch's node (-1 none). Any thread; later sends see it. */
void rmig_sched_set_node(struct rmig_sched *s, unsigned int ch, int node);
/*
 * Steering on or off. @wait_ns: how long a sender waits for an idle channel
 * on its node before it falls back; 0 adapts it to half the channels'
 * average transmit time, within RMIG_SCHED_STEER_MIN_NS..MAX_NS.
 * Any thread; sends that start later see it.
 */
void rmig_sched_set_steer(struct rmig_sched *s, bool on, uint64_t wait_ns);
#define RMIG_SCHED_STEER_MIN_NS 20000ull
#define RMIG_SCHED_STEER_MAX_NS 200000000ull
/* Sends with a node: handed to a channel on it, and those that fell back. */
void rmig_sched_steer_stats(struct rmig_sched *s, uint64_t *steered, uint64_t *fallbacks);
/*
 * Every channel: finish what it holds, then run cb->sync(kind, round).
 * Waits for all. One caller at a time (the main thread).
 */
int rmig_sched_sync(struct rmig_sched *s, unsigned int kind, uint64_t round);
/* Stop with @err (negative errno): wakes every waiter. Any thread; first error wins. */
void rmig_sched_abort(struct rmig_sched *s, int err);
int rmig_sched_error(struct rmig_sched *s);
/* Stop the threads (after a sync, or after abort) and free everything. */
void rmig_sched_destroy(struct rmig_sched *s);

#endif /* RMIG_CORE_SCHED_H */
