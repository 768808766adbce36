/* SPDX-License-Identifier: MIT */
/*
 * The source engine's private header: struct rmig_src and struct src_chan,
 * and the calls its files make of each other. src.c is the public API;
 * src_chan.c the channel threads' callbacks (framing, RELEASE flow, sync);
 * src_live.c what the live and postcopy engines use (src_live.h);
 * src_fail.c (src_fail.h) failing and telling the destination why. Calls
 * go from src.c and src_live.c to src_chan.c and src_fail.c, and from
 * src_chan.c to src_fail.c, never back.
 */
#ifndef RMIG_CORE_SRC_ENGINE_H
#define RMIG_CORE_SRC_ENGINE_H

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/auth.h"
#include "core/barrier.h"
#include "core/core.h"
#include "core/numa.h"

enum src_state { SRC_NEW, SRC_CONNECTED, SRC_FINISHED };

struct src_chan {
	struct rmig_conn *conn;
	uint64_t seq;
	uint64_t in_seq;	/* messages received back (RELEASE) */
	uint64_t synced;	/* placed data: last round whose SYNC went out on this channel */
	uint64_t release_next;	/* the next RELEASE expected: rounds go 1, 2, ... */
	struct rmig_totals tot;
	uint8_t *hdrbuf; /* header + RAM body: offsets of one batch */
	struct rmig_seg *segs;
} __attribute__((aligned(RMIG_CACHELINE)));

struct rmig_src {
	struct rmig_opts opts;
	struct rmig_err err;
	struct rmig_block *blocks;
	unsigned int nblocks;
	const struct rmig_xport_ops *xops;
	struct rmig_xport *xp;
	struct rmig_conn *ctl;
	uint64_t ctl_seq;
	bool peer_postcopy; /* WELCOME carried RMIG_WF_POSTCOPY */
	struct src_chan *chans;
	unsigned int nchan;
	struct rmig_sched *sched;
	/* NUMA: where the blocks' memory lives, when channels are on two nodes or more */
	struct rmig_numa_map *numa;
	/*
	 * Steering (enum rmig_numa): one open RAM batch per node that has
	 * channels, numa_slot[i] for node numa_node[i] (numa_idx[node] = i,
	 * -1 for a node without channels, whose pages go to ram_slot), so a
	 * batch holds one node's pages and goes to a channel on that node.
	 */
	bool numa_steer;
	unsigned int numa_nslots;
	struct rmig_payload *numa_slot[RMIG_MAX_CHANNELS];
	int numa_node[RMIG_MAX_CHANNELS];
	int8_t numa_idx[RMIG_NUMA_NODES_MAX];
	struct rmig_payload *ram_slot;
	/* device-state producers share one slot, one at a time */
	pthread_mutex_t dev_lock;
	struct rmig_payload *dev_slot;
	uint64_t dev_seq;
	_Atomic uint64_t round; /* written by the main thread, read by get_stats */
	uint8_t uuid[RMIG_UUID_LEN];
	struct rmig_key key;   /* pre-shared key, if any */
	struct rmig_auth auth; /* the authenticated session (auth.on) */
	enum src_state state;
	bool placed;
	bool peer_checked;
	bool peer_aborted; /* the destination told us why it stopped */
	bool abort_sent;   /* we told the destination why we stopped */
	bool greeted;	   /* the destination accepted our HELLO: it listens for ABORT */
	_Atomic bool cancelled;
	/*
	 * rmig_src_cancel() may run on any thread while rmig_src_connect() is
	 * still building what it has to shut down: connect publishes xp, ctl,
	 * chans/nchan, each channel's conn and sched under conn_lock, and
	 * cancel reads them under it (the main thread, their only writer,
	 * reads them without it).
	 */
	pthread_mutex_t conn_lock;
};

/*
 * Room a device-state chunk with an id of @idlen bytes takes in its slot
 * before the data: header, body head, id padded to 8.
 */
static inline size_t dev_room(size_t idlen)
{
	return sizeof(struct rmig_wire_hdr) + sizeof(struct rmig_wire_dev) + rmig_pad8(idlen);
}

/* ---- src_chan.c --------------------------------------------------------- */

/* The channel threads' callbacks (core/sched.h). */
extern const struct rmig_sched_cb src_sched_cb;

#endif
