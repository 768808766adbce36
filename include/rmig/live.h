/* SPDX-License-Identifier: MIT */
/*
 * rmig live migration engine: drives a connected source the way a VMM does
 * while the guest keeps running.
 *
 *   rounds:   collect the dirty bitmap, queue the dirty pages, give every
 *             iterable device its turn, sync once (or after each section,
 *             RMIG_LIVE_SYNC_EACH_SECTION), estimate the downtime from the
 *             measured bandwidth;
 *   switch:   when the expected downtime is within the limit and every
 *             device that asked for it has been acknowledged by the
 *             destination (or the round limit is reached): stop the vCPUs,
 *             queue what is left and every device's final state, sync, and
 *             finish.
 *
 * The engine owns a dirty bitmap per RAM block of the source. The guest
 * (vCPU threads, or a dirty-log reader) reports each write with
 * rmig_live_mark_dirty() after the write. Every page starts dirty, so the
 * first round sends all of RAM.
 *
 * Conventions are those of rmig/rmig.h: 0 or a negative errno, opaque
 * handles, destroy accepts NULL, rmig_live_error() names the first failure.
 *
 * Threads: one thread (the source's main thread) calls rmig_live_run();
 * rmig_live_mark_dirty() is lock-free and may be called from any number of
 * threads at any time between create and destroy; rmig_live_get_stats() and
 * rmig_live_cancel() may be called from any thread.
 */
#ifndef RMIG_LIVE_H
#define RMIG_LIVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rmig/rmig.h"

#ifdef __cplusplus
extern "C" {
#endif

struct rmig_live;

/** Rounds whose byte counts &rmig_live_stats keeps. */
#define RMIG_LIVE_ROUNDS_KEPT 64
/** Largest number of devices one engine drives. */
#define RMIG_LIVE_MAX_DEVICES 256

/** enum rmig_live_flags - bits for &rmig_live_opts.flags */
enum rmig_live_flags {
	/** legacy: sync after the RAM section and after each device's section,
	 *  instead of once per round (QEMU before 8.1) */
	RMIG_LIVE_SYNC_EACH_SECTION = 1u << 0,
	/** when the migration has not converged after max_rounds, fail
	 *  (-ETIME, the guest keeps running on the source) instead of forcing
	 *  the switchover over the downtime limit */
	RMIG_LIVE_FAIL_ON_MAX_ROUNDS = 1u << 1,
	/** postcopy: at the switchover (converged, after
	 *  &rmig_live_opts.postcopy_after_rounds rounds, or out of rounds,
	 *  which then neither forces nor fails) stop the vCPUs, queue every
	 *  device's final state, flush and sync every channel, and let the
	 *  destination run and pull the pages still dirty on demand (see
	 *  rmig_dst_postcopy_enable()). Needs a destination (not "file:" or
	 *  "null:") and pages of at most RMIG_DEV_CHUNK_MAX (else
	 *  rmig_live_create() returns -EINVAL). Over tcp the destination
	 *  requests pages on the control connection; over rdma it reads them
	 *  by RDMA READ when the source was created with RMIG_F_POSTCOPY
	 *  (else it requests them too). Once postcopy has begun, a failure
	 *  does not call resume_vcpus: the destination may have run. */
	RMIG_LIVE_POSTCOPY = 1u << 2,
};

/**
 * struct rmig_live_opts - parameters of the live engine
 * @size: sizeof(struct rmig_live_opts); set by rmig_live_opts_init()
 * @flags: enum rmig_live_flags
 * @downtime_limit_ms: switch over once the expected downtime is at most this
 *                     (default 300; 0: only when nothing is left to send)
 * @max_rounds: rounds before the switchover is forced or the migration fails
 *              (1..1000000, default 30)
 * @device_budget: bytes each iterable device may queue per round
 *                 (default 16 MiB)
 * @ack_wait_ms: out of rounds, a forced switchover still waits this long for
 *               missing switchover acks, going on with rounds, before the
 *               migration fails (default 30000; 0: fail at once)
 * @postcopy_after_rounds: with RMIG_LIVE_POSTCOPY, switch to postcopy after
 *                         this many rounds at the latest (0: only at
 *                         convergence or out of rounds); must be 0 without it
 * @reserved: must be zero
 */
struct rmig_live_opts {
	uint32_t size;
	uint32_t flags;
	uint32_t downtime_limit_ms;
	uint32_t max_rounds;
	uint64_t device_budget;
	uint32_t ack_wait_ms;
	uint32_t postcopy_after_rounds;
	uint64_t reserved[8];
};

/**
 * rmig_live_opts_init() - fill @opts with the defaults
 * @opts: caller-owned structure
 */
void rmig_live_opts_init(struct rmig_live_opts *opts);

/** enum rmig_live_decision - what the engine does after a round */
enum rmig_live_decision {
	/** another round */
	RMIG_LIVE_CONTINUE = 0,
	/** converged: expected downtime within the limit, every ack in */
	RMIG_LIVE_SWITCHOVER = 1,
	/** out of rounds: switch over although the downtime limit is exceeded */
	RMIG_LIVE_FORCE = 2,
	/** out of rounds with RMIG_LIVE_FAIL_ON_MAX_ROUNDS, or a device's
	 *  switchover ack still missing after &rmig_live_opts.ack_wait_ms */
	RMIG_LIVE_FAIL = 3,
};

/**
 * struct rmig_live_round - what one round did (for &rmig_live_hooks.round_done)
 * @round: 1, 2, ...
 * @decision: enum rmig_live_decision taken after it
 * @ns: duration of the round, collection to the end of its sync
 * @bytes: bytes the transport carried during the round, headers included
 * @ram_pages: pages queued (the dirty pages collected at its start)
 * @dev_bytes: device-state bytes the devices' iterate() queued
 * @remaining_bytes: dirty RAM plus devices' pending bytes after the round
 * @bandwidth_bps: bandwidth estimate used for the decision, bytes/s
 * @expected_downtime_ns: @remaining_bytes at @bandwidth_bps
 * @acks_outstanding: devices whose switchover ack has not arrived
 */
struct rmig_live_round {
	uint32_t round;
	uint32_t decision;
	uint64_t ns;
	uint64_t bytes;
	uint64_t ram_pages;
	uint64_t dev_bytes;
	uint64_t remaining_bytes;
	uint64_t bandwidth_bps;
	uint64_t expected_downtime_ns;
	uint32_t acks_outstanding;
	uint32_t pad;
};

/**
 * struct rmig_live_hooks - how the engine reaches the VMM
 * @size: sizeof(struct rmig_live_hooks)
 * @arg: passed to every hook
 * @stop_vcpus: required. Called once, at the switchover, on the thread that
 *              runs rmig_live_run(). Must return only when nothing writes
 *              guest RAM any more (every vCPU stopped, every write it made
 *              already reported with rmig_live_mark_dirty()). Non-zero
 *              fails the migration with that value.
 * @resume_vcpus: optional. Called if the migration fails once @stop_vcpus
 *                has been called (also when it failed itself), so the guest
 *                can go on running on the source.
 * @round_done: optional. Called after each round, with its figures and the
 *              decision taken, on the thread that runs rmig_live_run().
 *              @r is valid only during the call.
 * @reserved: must be zero
 *
 * Hooks must not call rmig_live_run(), rmig_live_destroy() or the source's
 * main-thread functions.
 */
struct rmig_live_hooks {
	uint32_t size;
	uint32_t pad;
	void *arg;
	int (*stop_vcpus)(void *arg);
	void (*resume_vcpus)(void *arg);
	void (*round_done)(void *arg, const struct rmig_live_round *r);
	void *reserved[4];
};

/** enum rmig_live_dev_flags - bits for &rmig_live_device.flags */
enum rmig_live_dev_flags {
	/** the switchover waits until the destination has acknowledged this
	 *  device's initial data with rmig_dst_switchover_ack() (QEMU's
	 *  switchover-ack). Not waited for on transports without a peer
	 *  ("file:", "null:"). */
	RMIG_LIVE_DEV_SWITCHOVER_ACK = 1u << 0,
};

/**
 * struct rmig_live_device - a device that migrates state besides RAM
 * @size: sizeof(struct rmig_live_device)
 * @flags: enum rmig_live_dev_flags
 * @idstr: device id (copied), at most RMIG_IDSTR_MAX - 1 bytes; with
 *         @instance it names the device in switchover acks
 * @instance: instance id
 * @arg: passed to every callback
 * @pending: bytes of pre-copy data not yet queued (an estimate is fine).
 *           Called at every round; counted in the expected downtime. NULL
 *           for a device that has no pre-copy data.
 * @iterate: queue up to about @max_bytes of pre-copy data with
 *           rmig_src_queue_device_state() on @src; return the bytes queued
 *           or a negative errno (which fails the migration). Called every
 *           round in which @pending reports data, for every such device in
 *           registration order: a device that still has data never keeps
 *           the ones behind it from their turn. NULL: not iterable (only
 *           @complete is called).
 * @complete: required. Called once, after stop_vcpus, in registration order:
 *            queue everything left and the device's final state. 0 or a
 *            negative errno.
 * @reserved: must be zero
 *
 * All callbacks run on the thread that runs rmig_live_run().
 */
struct rmig_live_device {
	uint32_t size;
	uint32_t flags;
	const char *idstr;
	uint32_t instance;
	uint32_t pad;
	void *arg;
	uint64_t (*pending)(void *arg);
	int64_t (*iterate)(void *arg, struct rmig_src *src, uint64_t max_bytes);
	int (*complete)(void *arg, struct rmig_src *src);
	void *reserved[4];
};

/**
 * struct rmig_live_stats - what a live migration did
 * @size: sizeof(struct rmig_live_stats); the caller sets it
 * @rounds: rounds before the switchover
 * @total_ns: rmig_live_run() from its start to the destination's confirmation
 * @downtime_ns: from the call of stop_vcpus to the destination's confirmation
 *               (rmig_src_finish() returning 0)
 * @expected_downtime_ns: the estimate at the decision to switch over
 * @bandwidth_bps: the bandwidth estimate at that decision, bytes/s
 * @round_bytes: bytes carried in each of the first RMIG_LIVE_ROUNDS_KEPT rounds
 * @round_bytes_count: entries of @round_bytes filled
 * @forced: 1 if the switchover was forced after max_rounds
 * @switchover_bytes: bytes carried after stop_vcpus (the downtime's share)
 * @dirty_rate_bps: bytes per second the guest dirtied, measured from the
 *                  bitmap between collections (a page dirtied twice between
 *                  two collections counts once)
 * @pages_sent: pages queued, all rounds and the switchover
 * @pages_unique: distinct pages queued
 * @pages_resent: distinct pages queued more than once
 * @dev_bytes: device-state bytes: while running, those iterate() reported;
 *             at the end, every byte the source carried (complete() included)
 * @acks_required: devices with RMIG_LIVE_DEV_SWITCHOVER_ACK
 * @acks_received: switchover acks received
 * @postcopy_pages: pages the destination pulled after the switchover
 *                  (RMIG_LIVE_POSTCOPY); @downtime_ns then ends when the
 *                  destination may run (postcopy start); the pulled pages
 *                  travel on the control connection, not in
 *                  @switchover_bytes
 * @reserved: zero
 *
 * Counters are final once rmig_live_run() has returned; before that they
 * show the rounds completed so far.
 */
struct rmig_live_stats {
	uint32_t size;
	uint32_t rounds;
	uint64_t total_ns;
	uint64_t downtime_ns;
	uint64_t expected_downtime_ns;
	uint64_t bandwidth_bps;
	uint64_t round_bytes[RMIG_LIVE_ROUNDS_KEPT];
	uint32_t round_bytes_count;
	uint32_t forced;
	uint64_t switchover_bytes;
	uint64_t dirty_rate_bps;
	uint64_t pages_sent;
	uint64_t pages_unique;
	uint64_t pages_resent;
	uint64_t dev_bytes;
	uint32_t acks_required;
	uint32_t acks_received;
	uint64_t postcopy_pages;
	uint64_t reserved[8];
};

/**
 * rmig_live_create() - make a live engine over a connected source
 * @src: handle after a successful rmig_src_connect(); the engine uses it
 *       (from rmig_live_run()) but does not own it: destroy @src after the
 *       engine, or at least after rmig_live_run() has returned
 * @opts: parameters (copied); NULL for the defaults
 * @hooks: the VMM's hooks (copied); stop_vcpus is required
 * @livep: receives the handle
 *
 * Allocates one dirty bitmap per RAM block of @src, every page marked dirty.
 *
 * Return: 0; -EINVAL for bad parameters or missing hooks; -ENOTCONN if @src
 * is not connected; -ENOTSUP for RMIG_LIVE_POSTCOPY when the destination
 * did not accept postcopy (rmig_dst_postcopy_enable(): agreed in the
 * handshake, so this is known before anything is sent); -ENOMEM.
 */
int rmig_live_create(struct rmig_src *src, const struct rmig_live_opts *opts,
		     const struct rmig_live_hooks *hooks, struct rmig_live **livep);

/**
 * rmig_live_add_device() - register a device
 * @live: handle, before rmig_live_run()
 * @dev: the device (copied, idstr included)
 *
 * Return: 0; -EINVAL (bad size, idstr, or no complete()); -EEXIST for an
 * (idstr, instance) already registered; -E2BIG past RMIG_LIVE_MAX_DEVICES;
 * -EBUSY once running; -ENOMEM.
 */
int rmig_live_add_device(struct rmig_live *live, const struct rmig_live_device *dev);

/**
 * rmig_live_mark_dirty() - report that the guest wrote a page
 * @live: handle
 * @block: block index from rmig_src_add_block()
 * @offset: any byte offset inside the page
 *
 * Call after the write: the page is then sent again, in a later round or at
 * the switchover, with content at least as new as that write. Lock-free;
 * any thread, any time between create and destroy.
 *
 * Return: 0, or -EINVAL for a bad block or offset.
 */
int rmig_live_mark_dirty(struct rmig_live *live, unsigned int block, uint64_t offset);

/**
 * rmig_live_run() - migrate: rounds, switchover, finish
 * @live: handle
 *
 * Runs on the source's main thread and returns when the destination has
 * confirmed the migration (rmig_src_finish() returned 0), or on failure.
 * Once the switchover decision is taken, stop_vcpus is called, the dirty
 * pages left and every device's complete() are queued, the source syncs
 * and finishes.
 *
 * On any failure the source handle is cancelled (the destination sees its
 * connections close and fails too); a failure once stop_vcpus has been
 * called also calls resume_vcpus, if set.
 *
 * Return: 0 when the destination confirmed; -ETIME when the migration did
 * not converge within max_rounds and RMIG_LIVE_FAIL_ON_MAX_ROUNDS is set, or
 * when a device's switchover ack is still missing (with the flag: after
 * max_rounds; without: ack_wait_ms later), stop_vcpus never having been
 * called; the source's error (rmig_src_error(),
 * which names the destination's reason when it aborted); a hook's or
 * device's error; -ECANCELED after rmig_live_cancel(); -EALREADY if run
 * before. rmig_live_error() names the problem.
 */
int rmig_live_run(struct rmig_live *live);

/**
 * rmig_live_cancel() - stop a running migration from any thread
 * @live: handle
 *
 * Cancels the source (rmig_src_cancel()); rmig_live_run() returns
 * -ECANCELED.
 */
void rmig_live_cancel(struct rmig_live *live);

/**
 * rmig_live_get_stats() - read the figures
 * @live: handle
 * @stats: caller-owned; set stats->size first (older callers get a prefix)
 *
 * Any thread.
 *
 * Return: 0 or -EINVAL.
 */
int rmig_live_get_stats(struct rmig_live *live, struct rmig_live_stats *stats);

/**
 * rmig_live_error() - the first failure, in words
 * @live: handle
 *
 * Return: a string owned by @live, "" when nothing has failed.
 */
const char *rmig_live_error(struct rmig_live *live);

/**
 * rmig_live_destroy() - free the engine
 * @live: handle or NULL; not while rmig_live_run() runs, and not while any
 *        thread may still call rmig_live_mark_dirty()
 *
 * Does not touch the source handle.
 */
void rmig_live_destroy(struct rmig_live *live);

/**
 * rmig_dst_switchover_ack() - tell the source a device's initial data is in
 * @dst: accepted destination handle
 * @idstr: the device's id, as the source registered it
 * @instance: its instance id
 *
 * The acknowledgement is queued and sent on the control connection by the
 * destination's main thread (inside rmig_dst_wait_sync() or
 * rmig_dst_finish(), which wake up for it), so it may be called from any
 * thread, including a device-state callback. A source whose engine waits for
 * this device (RMIG_LIVE_DEV_SWITCHOVER_ACK) switches over only after it
 * arrived. Call after rmig_dst_listen(); an ack requested before accept goes
 * out with the first round, one requested after the source finished is
 * dropped. When loading a file there is nobody to tell: returns 0 and does
 * nothing.
 *
 * Return: 0; -EINVAL for a bad id; -ENOMEM; or the migration's error.
 */
int rmig_dst_switchover_ack(struct rmig_dst *dst, const char *idstr, uint32_t instance);

/**
 * rmig_dst_postcopy_enable() - accept a postcopy switchover
 * @dst: handle, after rmig_dst_listen(), before rmig_dst_accept()
 *
 * A source running with RMIG_LIVE_POSTCOPY may then start postcopy: once
 * every page queued before it is loaded, rmig_dst_wait_sync() returns
 * RMIG_DST_POSTCOPY and the caller may start its vCPUs; pages still missing
 * are pulled from the source when touched (userfaultfd, where the kernel
 * allows it) and in the background. rmig_dst_finish() (or wait_sync again
 * until it returns 1) then returns when every page is in and the source
 * confirmed. Without userfaultfd, every missing page is fetched before
 * wait_sync returns RMIG_DST_POSTCOPY (rmig_dst_postcopy_stats() says so).
 * RAM blocks must then be private anonymous memory for userfaultfd. If the
 * migration fails during postcopy, the registration is dropped and pages
 * not yet pulled read as zero: the guest must not go on running.
 *
 * Return: 0; -EINVAL; -EBUSY once accepted; -ENOTSUP when loading a file or
 * for pages larger than RMIG_DEV_CHUNK_MAX; -ENOMEM.
 */
int rmig_dst_postcopy_enable(struct rmig_dst *dst);

/** rmig_dst_wait_sync() returns this when postcopy starts. */
#define RMIG_DST_POSTCOPY 2

/**
 * struct rmig_dst_postcopy_stats - what postcopy did on the destination
 * @size: sizeof; the caller sets it
 * @active: 1 once postcopy started
 * @uffd: 1 when pages were caught with userfaultfd, 0 in degraded mode
 * @missing: pages missing or stale at postcopy start
 * @by_read: 1 when the pages were read from the source's RAM by the
 *           transport (rdma: RDMA READ; the source connected with
 *           RMIG_F_POSTCOPY), 0 when requested on the control connection
 * @pulled: pages pulled and placed
 * @faults: userfaultfd faults (touches of a page not yet there)
 * @start_ns: wall time of the postcopy start, CLOCK_MONOTONIC
 * @done_ns: when the last page was placed, CLOCK_MONOTONIC (0 before)
 * @pulls: pull operations: requests (a run of up to 64 missing pages) or
 *         reads (a run of up to 128 KiB)
 * @reserved: zero
 */
struct rmig_dst_postcopy_stats {
	uint32_t size;
	uint32_t active;
	uint32_t uffd;
	uint32_t by_read;
	uint64_t missing;
	uint64_t pulled;
	uint64_t faults;
	uint64_t start_ns;
	uint64_t done_ns;
	uint64_t pulls;
	uint64_t reserved[3];
};

/**
 * rmig_dst_postcopy_stats() - read the destination's postcopy figures
 * @dst: handle
 * @st: caller-owned, st->size set
 *
 * Any thread. Return: 0 or -EINVAL.
 */
int rmig_dst_postcopy_stats(struct rmig_dst *dst, struct rmig_dst_postcopy_stats *st);

#ifdef __cplusplus
}
#endif

#endif /* RMIG_LIVE_H */
