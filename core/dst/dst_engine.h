/* SPDX-License-Identifier: MIT */
/*
 * The destination engine's private header: struct rmig_dst and struct
 * dst_chan, and the calls its files make of each other. dst.c is the public
 * API (listen, accept, wait_sync, finish, cancel, stats, destroy);
 * dst_accept.c the listener (which connection becomes the control
 * connection and the channels, authentication, the handshake); dst_chan.c the receive threads; dst_devstate.c the in-order
 * delivery of device state; dst_fail.c (dst_fail.h) failing and telling the
 * source why.
 * Postcopy's destination half (core/postcopy/pc_dst*.c) works on the same
 * struct. Calls go dst.c -> dst_accept.c, and dst.c -> dst_chan.c ->
 * dst_devstate.c -> dst_fail.c, never back.
 */
#ifndef RMIG_CORE_DST_ENGINE_H
#define RMIG_CORE_DST_ENGINE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "core/auth.h"
#include "core/barrier.h"
#include "core/core.h"
#include "core/postcopy/postcopy.h"

enum dst_state { DST_NEW, DST_LISTENING, DST_RUNNING, DST_DONE };

struct dst_chan {
	struct rmig_dst *d;
	unsigned int id;
	struct rmig_conn *conn;
	pthread_t thread;
	bool started;
	uint64_t seq;
	uint64_t out_seq; /* messages sent back to the source (RELEASE) */
	struct rmig_totals tot;
	uint8_t *body;
	struct iovec *iov;
	uint64_t *offsets;
	uint8_t fin[sizeof(struct rmig_wire_fin)];
} __attribute__((aligned(RMIG_CACHELINE)));

struct dev_pending {
	struct dev_pending *next;
	uint64_t seq;
	uint32_t instance;
	char idstr[RMIG_IDSTR_MAX];
	size_t len;
	uint8_t data[];
};

/* A SWITCHOVER_ACK waiting for the main thread, its body encoded. */
struct dst_ack {
	struct dst_ack *next;
	size_t len;
	uint8_t body[];
};

struct rmig_dst {
	struct rmig_opts opts;
	struct rmig_err err;
	struct rmig_block *blocks;
	unsigned int nblocks;
	const struct rmig_xport_ops *xops;
	struct rmig_xport *xp;
	struct rmig_conn *ctl;
	uint64_t ctl_seq_out, ctl_seq_in;
	struct dst_chan *chans;
	unsigned int nchan;
	struct rmig_hello hello;
	struct rmig_key key;   /* pre-shared key, if any */
	struct rmig_auth auth; /* the authenticated session (auth.on), main thread */
	/* connections that did not get in (dst_accept.c); the last one's code and why */
	_Atomic uint64_t conns_dropped;
	int drop_code;
	char drop_why[RMIG_ERRMSG_MAX];
	bool placed;
	bool loading; /* RMIG_XCAP_LOAD: no source, the transport loads from storage */
	enum dst_state state;

	rmig_dev_state_fn dev_fn;
	void *dev_arg;
	pthread_mutex_t dev_lock;
	uint64_t dev_next;
	struct dev_pending *dev_pending; /* sorted by seq */
	size_t dev_pending_bytes;

	/* the receive barrier; all under lock */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned int at_sync; /* channels stopped at round reached + 1 */
	unsigned int at_fin;
	uint64_t reached;     /* last round every channel reached */
	uint64_t released;    /* channels may pass SYNC r when r <= released */
	bool held;	      /* reached > released: the caller is looking at RAM */
	bool failed;
	bool abort_sent;
	struct dst_ack *acks; /* to send, oldest first; any thread queues, main sends */

	/*
	 * Postcopy (core/postcopy/pc_dst.h). The control connection is read by pc_ctl
	 * alone once accepted; sends on it take ctl_send_lock.
	 */
	bool pc_enabled;
	pthread_mutex_t ctl_send_lock;
	_Atomic uint64_t **pc_recvd; /* per block: page loaded by a channel */
	uint64_t **pc_discard;	     /* per block: stale (PC_DISCARD), pc_ctl until start */
	uint64_t **pc_present;	     /* per block, under lock once running */
	uint64_t **pc_requested;     /* per block, under lock */
	pthread_t pc_ctl, pc_fault, pc_bg;
	bool pc_ctl_started, pc_fault_started, pc_bg_started;
	int pc_uffd;
	bool pc_uffd_used; /* under lock */
	_Atomic bool pc_live; /* receive threads: no RAM message may come any more */
	_Atomic uint64_t pc_faults;
	/* under lock */
	bool pc_announced, pc_running, pc_complete, pc_stop;
	uint64_t pc_round, pc_missing, pc_left, pc_pulled, pc_outstanding, pc_pulls;
	uint64_t pc_start_ns, pc_done_ns;
	/*
	 * Pulls by the transport (RMIG_XCAP_PULL, the source sent
	 * PC_PULL_INFO): one pull thread reads runs of missing pages into
	 * pc_area and places them; the fault thread queues faulting pages for
	 * it (pc_fq, under lock); pc_unreported (under lock) holds pages
	 * pulled since the last PC_PULLED.
	 */
	bool pc_by_read;
	uint8_t *pc_area;     /* RMIG_PC_PULL_SLOTS slots of pc_slot bytes */
	uint64_t pc_slot;
	struct { uint32_t block; uint64_t page; } pc_fq[RMIG_PC_FAULT_QUEUE];
	unsigned int pc_fq_head, pc_fq_tail; /* free-running */
	uint64_t **pc_unreported;
	uint64_t *pc_unrep_lo, *pc_unrep_hi; /* per block: words that may hold bits; lo > hi: none */
	/* a message pc_ctl read for the main thread (DONE), or its error */
	bool stash_set;
	int stash_ret;
	struct rmig_hdr stash_h;
	void *stash_body;
	char stash_why[RMIG_ERRMSG_MAX];
};

/* ---- dst_accept.c ------------------------------------------------------ */

/*
 * Main thread: take connections until one is the source (authenticated,
 * when there is a key), check its HELLO, answer WELCOME with the
 * transport's info. 0, or the failure recorded in d->err.
 */
int dst_handshake(struct rmig_dst *d);
/* Main thread, after WELCOME: take connections until every channel is in. */
int dst_accept_channels(struct rmig_dst *d);

/* ---- dst_devstate.c ----------------------------------------------------- */

/*
 * Receive thread of channel @ch: chunk @seq of device state arrived; hand
 * it to the caller's callback in the source's order, holding it until its
 * predecessors have been delivered. 0 or the failure's code.
 */
int dst_dev_deliver(struct rmig_dst *d, unsigned int ch, uint64_t seq, const char *id,
		    uint32_t instance, const uint8_t *data, size_t len);

/* ---- dst_chan.c --------------------------------------------------------- */

/* One channel's receive thread (@arg: its struct dst_chan). */
void *dst_chan_thread(void *arg);

#endif
