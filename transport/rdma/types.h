/* SPDX-License-Identifier: MIT */
/*
 * Private structures of the rdma transport, shared by every file of it.
 * Types and constants only: each file's functions are declared in its own
 * header (rdma.h lists the files and their layers).
 *
 * One struct rd_xport per rmig_xport: one device, one protection domain, the
 * local RAM blocks registered as MRs and (source) the destination's MR table.
 * One struct rd_conn per connection: an RC QP with its own CQ, completion
 * channel and rdma_cm event channel, carrying
 *  - a byte stream of SEND_WITH_IMM messages into pre-posted buffers with
 *    credit flow control (stream.c), and
 *  - RDMA WRITEs of page data placed in the destination's RAM, ordered before
 *    the stream header that describes them (datapath.c).
 *
 * Threads: a conn may be driven by two threads at once, one receiving (recv)
 * and one sending (send, flush, pull, pull_wait): a control connection is
 * read by one thread while others send on it (postcopy). Its `mu` serializes
 * them (see struct rd_conn); only the `down` flag and eventfd are touched
 * without it (shutdown). The xport's device, PD and MR
 * tables are written before any conn exists (or, for a wildcard listener,
 * before the first conn is returned) and only read afterwards.
 */
#ifndef RMIG_TRANSPORT_RDMA_TYPES_H
#define RMIG_TRANSPORT_RDMA_TYPES_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "core/xport.h"
#include "transport/rdma/mr.h"
#include "transport/rdma/verbs_ops.h"

/* Stream buffers per conn: RD_RECV_BUFS receive and RD_SEND_SLOTS send
 * buffers of RD_BUF_SIZE bytes each, in one registered area (3 MiB). */
#define RD_RECV_BUFS  32u
#define RD_SEND_SLOTS 16u /* a multiple of 4 (see stream_write) */
#define RD_BUF_SIZE   (64u * 1024u)
/* rings indexed by free-running unsigned counters modulo their size */
_Static_assert((RD_RECV_BUFS & (RD_RECV_BUFS - 1)) == 0, "receive ring is a power of two");
_Static_assert((RD_SEND_SLOTS & (RD_SEND_SLOTS - 1)) == 0 && RD_SEND_SLOTS >= 4,
	       "send slots: a power of two, signaled every quarter");
/* the core's RELEASE window must fit, with a credit return and the reserve */
_Static_assert(RD_RECV_BUFS >= RMIG_RELEASE_WINDOW + 4, "receive window holds the RELEASE window");
/* credits travel in 16 bits, and one is always kept back for credit returns */
_Static_assert(RD_RECV_BUFS >= 4 && RD_RECV_BUFS <= 0xffff, "receive window");
/* WRs linked into one ibv_post_send() call, and gather entries per WRITE */
#define RD_BATCH   32u
/*
 * Most WRITE payload bytes outstanding on one conn. A batch of contiguous
 * pages becomes one WRITE of up to max_msg, so without a bound in bytes
 * sq_depth WRs could put all of RAM in flight at once, and a sync would
 * wait for all of it. 64 MiB is what ib_write_bw keeps in flight with its
 * defaults (128 x 512 KiB) and far above a bandwidth-delay product
 * (400 Gb/s x 10 us = 500 KB); 16 MiB cost rxe a third of its throughput.
 */
#define RD_INFLIGHT_MAX (64ull << 20)
#define RD_MAX_SGE 16u
/* Largest single WR we post, whatever the port allows (SGE lengths are u32) */
#define RD_MSG_CAP (1u << 30)
/* Idle time after which a waiting conn probes its peer with a NOP */
#define RD_KEEPALIVE_MS 2000
/* How long close() lets queued sends drain before disconnecting */
#define RD_CLOSE_DRAIN_MS 5000
/*
 * rdma_cm: local ACK timeout exponent (4.096 us << 18 = 1.07 s) and
 * retries; a dead peer fails outstanding WRs after about (6 + 1) x 1.07 s.
 * Not 7: rxe treats a transport retry count of 7 as "retry forever" (as the
 * spec does only for RNR), and a dead peer then hangs every wait (seen on
 * 6.1: retries went on for minutes).
 */
#define RD_ACK_TIMEOUT 18
#define RD_RETRY_COUNT 6

/*
 * Immediate data of every stream SEND (big-endian on the wire):
 *   bits 31..24  type: RD_IMM_DATA (payload follows) or RD_IMM_CREDIT (none)
 *   bits 15..0   receive buffers the sender has reposted since it last said
 */
#define RD_IMM_DATA	      0x01u
#define RD_IMM_CREDIT	      0x02u
#define RD_IMM_TYPE(imm)      ((imm) >> 24)
#define RD_IMM_CREDITS(imm)   ((imm)&0xffffu)
#define RD_IMM(type, credits) (((uint32_t)(type) << 24) | ((uint32_t)(credits)&0xffffu))

/* wr_id: receives carry the flag and the buffer index; sends their sequence number */
#define RD_WRID_RECV (1ull << 63)

/* What a send-queue entry was, for error messages (WC opcodes are undefined on error) */
enum rd_op {
	RD_OP_WRITE = 1,
	RD_OP_SEND,
	RD_OP_CREDIT,
	RD_OP_NOP,
	RD_OP_READ,
	RD_OP_BIND, /* IBV_WR_BIND_MW: a memory window onto this QP (mw.c) */
};

/* Which side of a conn a thread is using it as; set on entry to every conn op. */
enum rd_role {
	RD_ROLE_RECV,
	RD_ROLE_SEND,
	RD_ROLES,
};

/*
 * In rd_xport.opts.flags, never in a caller's options: the xport is one
 * rail of several (rails.c), and its first connection is the rail's hello.
 */
#define RD_XF_RAIL (1u << 31)
/*
 * Likewise: no memory windows on this xport (rails.c sets it on every rail
 * it listens on: a rail's channel may move to another QP, and its conns
 * are rails_conn.c's, whose chan_open() binds nothing).
 */
#define RD_XF_NO_MW (1u << 30)

/* ---------------------------------------------------------- xport, conn */

struct rd_conn;
struct rd_chan_mw;
struct rd_mwbind;

struct rd_xport {
	struct rmig_xport base;
	const struct rmig_verbs_ops *v;
	bool is_dst;
	struct rmig_opts opts;
	char ib_dev[64];
	struct rmig_block *blocks; /* copy of the core's table */
	unsigned int nblocks;
	unsigned int channels;

	char addr[300]; /* "HOST:PORT" as given, for messages */
	struct sockaddr_storage sa;

	/* the device, set once */
	struct ibv_context *ctx;
	uint8_t port_num;
	struct ibv_pd *pd;
	uint64_t max_msg;
	unsigned int max_sge;
	unsigned int sq_depth;
	unsigned int signal_every;
	unsigned int rd_atomic;

	struct rd_mrs local;
	/*
	 * Register RAM in the background (mr_stream.c): the source from
	 * connect() on, overlapping the handshake and the destination's own;
	 * the destination from local_info() on (with memory windows too,
	 * each channel's windows bound as slices appear, mw.c), the source
	 * learning each slice's rkey from a status table (regwait.c). Off
	 * with RMIG_RDMA_REG=upfront: all of it before the MR table goes out
	 * (destination) or in set_peer_info (source).
	 */
	bool reg_stream;
	/* a background registration's failure (device.c): set once, message first */
	_Atomic int reg_failed;
	struct rmig_msgbuf reg_err;
	/*
	 * Destination: the device has type 2 memory windows and this is no
	 * rail (a rail's channel moves between QPs). RAM is then registered
	 * without REMOTE_WRITE and each channel gets windows bound to its own
	 * QP (mw.c); otherwise the MR rkeys, scoped by this xport's PD.
	 */
	bool use_mw;
	/*
	 * Destination, windows with streamed registration: the thread that
	 * binds each channel's windows over slices registered after the
	 * channel opened (mw.c). Under mr_lock; NULL when no channel waits.
	 */
	struct rd_mwbind *mwb;
	/*
	 * mr_lock guards local against revoke() from another thread; once
	 * revoked, local RAM is never registered again.
	 */
	pthread_mutex_t mr_lock;
	bool revoked;
	struct rd_remote remote; /* source, after set_peer_info */
	bool have_remote;

	/* destination, after pull_open (pull.c): the source's RAM and the area pulls land in */
	struct rd_remote pull_remote;
	uint8_t *pull_area;
	size_t pull_size;
	struct ibv_mr *pull_mr;

	/* destination */
	struct rdma_event_channel *lech;
	struct rdma_cm_id *lid;
	int port;

	int efd; /* eventfd, readable once the xport is shut down */
	atomic_bool down;
	_Atomic uint64_t reg_ns;

	pthread_mutex_t lock; /* guards conns, nconns and closed_bytes */
	struct rd_conn *conns;
	unsigned int nconns;
	uint64_t closed_bytes; /* wire_bytes of the conns closed so far (rails.c's stats) */
	/* active side, set by rails.c before a connect: private-data flags and vid */
	uint16_t next_cm_flags;
	uint32_t next_vid;
};

/* ---------------------------------------------------------------- conn */

struct rd_conn {
	struct rmig_conn base;
	struct rd_xport *x;
	const struct rmig_verbs_ops *v;
	char label[96];
	struct rd_conn *next; /* in x->conns */

	struct rdma_event_channel *ech;
	struct rdma_cm_id *id;
	struct ibv_comp_channel *cc;
	struct ibv_cq *cq;
	struct ibv_qp *qp;
	int cq_fd;
	int cm_fd;
	int efd; /* eventfd, readable once the conn is shut down */
	int xefd;
	unsigned int cq_unacked;
	bool established;
	bool peer_closed; /* DISCONNECTED seen, or receives flushed */
	bool rail_hello;  /* accepted: the peer marked it a rail's hello (rails.c) */
	bool rail_resume; /* accepted: it takes over channel vid (rails.c) */
	uint32_t vid;	  /* accepted: the peer's id for the channel (rails.c), 0 if none */
	uint64_t rx_bytes; /* stream bytes handed to recv() callers so far */

	atomic_bool down;
	atomic_bool disconnected; /* rdma_disconnect() called, by shutdown or close */
	int failed; /* sticky first failure (negative errno) */
	/*
	 * Its text, under mu; rd_leave() copies it into the failing op's own
	 * buffer (base.recv_err or base.err), which only that role's thread
	 * writes and reads, so a receive timeout on one thread never replaces
	 * the real cause another thread is about to report.
	 */
	char fail_msg[RMIG_ERRMSG_MAX];

	/*
	 * mu guards every field of the conn (but down) while a receiving and a
	 * sending thread share it. A thread that must wait for completions
	 * drops mu only while it sleeps in poll() (progress.c), with
	 * sleeping[its role] set; whoever processes completions meanwhile
	 * writes kick[that role], so a completion the sleeper needs, polled by
	 * the other thread, still wakes it. One eventfd per role: a thread
	 * never drains the other's wake-up.
	 */
	pthread_mutex_t mu;
	int kick[RD_ROLES];
	bool sleeping[RD_ROLES];

	/* limits, copied from the xport at set-up */
	unsigned int sq_depth;
	unsigned int signal_every;
	unsigned int max_sge;
	uint64_t max_msg;

	/* send queue: WRs numbered from 1; seq <= sq_done have completed */
	uint64_t sq_next;   /* number the next WR gets */
	uint64_t sq_posted; /* WRs up to this one were handed to the device */
	uint64_t sq_done;
	uint64_t last_signaled; /* highest signaled seq, posted or in the batch */
	unsigned int unsig;	/* WRs since the last signaled one */
	uint8_t *sq_ops;	/* enum rd_op per seq % sq_depth */
	uint64_t *sq_cum;	/* cum_posted once seq was numbered, per seq % sq_depth */
	uint64_t cum_posted;	/* WRITE payload bytes of every WR numbered so far */
	uint64_t cum_done;	/* of those, the ones of WRs up to sq_done: wire_bytes */
	uint64_t unsig_bytes;	/* WRITE payload since the last signaled WR */
	uint64_t inflight_max;	/* most WRITE payload outstanding (RD_INFLIGHT_MAX) */
	struct ibv_send_wr batch[RD_BATCH];
	struct ibv_sge batch_sge[RD_BATCH][RD_MAX_SGE];
	unsigned int nbatch;

	/* stream buffers */
	uint8_t *bufs;
	struct ibv_mr *buf_mr;
	unsigned int nrecv;
	unsigned int nslots;
	uint32_t buf_size;

	/*
	 * Receive completions, handed over by progress.c's poll: set by the
	 * stream layer at set-up (rmig_rd_stream_init), so progress does not
	 * call up into the file above it.
	 */
	int (*on_recv)(struct rd_conn *c, const struct ibv_wc *wc);
	/* receive side: filled buffers in arrival order */
	uint32_t ready[RD_RECV_BUFS];
	uint32_t ready_len[RD_RECV_BUFS];
	unsigned int ready_head, ready_tail; /* free-running */
	uint32_t cur_off;		     /* bytes consumed of ready[tail] */

	/* send side: slots used in order, freed in order by completions */
	uint64_t slot_seq[RD_SEND_SLOTS];
	unsigned int slot_head, slot_tail; /* free-running */

	/* credits */
	unsigned int credits;	 /* SENDs we may still post to the peer */
	unsigned int owed;	 /* our buffers reposted and not yet reported */
	unsigned int peer_nbufs; /* the peer's window */
	uint32_t peer_buf_size;

	uint64_t last_rx_ns; /* last completion of any kind, for keepalive */

	/*
	 * Memory windows (mw.c). Destination: this channel's windows (one per
	 * slice of x->local, bound to this QP as the slices get registered)
	 * and its status table; the pointer under x->mr_lock (revoke()
	 * deallocates them from another thread), the contents under mu.
	 * Source: the rkeys the destination bound for this channel, used
	 * instead of x->remote's.
	 */
	struct rd_chan_mw *cmw;
	struct rd_remote chan_remote;
	bool have_chan_remote;

	/*
	 * Source, streamed registration (regwait.c): where this conn's RDMA
	 * READ of the destination's status table lands. Sending role only.
	 */
	uint64_t *st_buf;
	size_t st_len;
	struct ibv_mr *st_mr;
};

static inline struct rd_conn *rd_conn_of(struct rmig_conn *c)
{
	return rmig_container_of(c, struct rd_conn, base);
}

static inline struct rd_xport *rd_xport_of(struct rmig_xport *x)
{
	return rmig_container_of(x, struct rd_xport, base);
}

/* deadline helper: 0 = none */
static inline uint64_t rd_deadline(int timeout_ms)
{
	return timeout_ms < 0 ? 0 : rmig_now_ns() + (uint64_t)timeout_ms * 1000000ull;
}

#endif /* RMIG_TRANSPORT_RDMA_TYPES_H */
