/* SPDX-License-Identifier: MIT */
/*
 * Private structures of the rdma transport.
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
 * Files: verbs_ops.c (the verbs edge), mr.c (registration, MR tables),
 * conn.c (rdma_cm set-up and tear-down, waiting), datapath.c (send queue,
 * completions, WRITEs, flush), stream.c (stream bytes and credits), rdma.c
 * (the rmig_xport_ops table).
 *
 * Threads: a conn may be driven by two threads at once, one receiving (recv)
 * and one sending (send, flush, pull, pull_wait): a control connection is
 * read by one thread while others send on it (postcopy). Its `mu` serializes
 * them (see struct rd_conn); only the `down` flag and eventfd are touched
 * without it (shutdown). The xport's device, PD and MR
 * tables are written before any conn exists (or, for a wildcard listener,
 * before the first conn is returned) and only read afterwards.
 */
#ifndef RMIG_TRANSPORT_RDMA_RDMA_H
#define RMIG_TRANSPORT_RDMA_RDMA_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "core/xport.h"
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
};

/* Which side of a conn a thread is using it as; set on entry to every conn op. */
enum rd_role {
	RD_ROLE_RECV,
	RD_ROLE_SEND,
	RD_ROLES,
};
extern __thread enum rd_role rmig_rd_role;

/* Connection private data (rdma_cm REQ and REP), big-endian on the wire */
#define RD_CM_MAGIC    0x524d4452u /* "RMDR" */
#define RD_CM_VERSION  1u
#define RD_CM_PRIV_LEN 16u
struct rd_cm_priv {
	uint32_t nbufs;	   /* receive buffers posted: the peer's initial credits */
	uint32_t buf_size; /* bytes per receive buffer: the largest SEND accepted */
};
void rmig_rd_cm_priv_encode(uint8_t out[RD_CM_PRIV_LEN], const struct rd_cm_priv *p);
int rmig_rd_cm_priv_decode(const void *in, size_t len, struct rd_cm_priv *p);

/* ------------------------------------------------------------------ mr.c */

/* A registered piece of a local block. */
struct rd_lslice {
	uint8_t *addr;
	uint64_t len;
	struct ibv_mr *mr;
};

struct rd_lblock {
	uint8_t *host;
	uint64_t length;
	unsigned int first; /* index of its first slice */
	unsigned int n;
};

/* The local blocks as MRs. */
struct rd_mrs {
	struct rd_lblock *blocks;
	unsigned int nblocks;
	struct rd_lslice *slices;
	unsigned int nslices;
	unsigned int *by_addr; /* slice indexes sorted by address, for lookups */
};

/* A piece of a remote block, as the destination described it. */
struct rd_rslice {
	uint64_t off; /* offset in the block */
	uint64_t len;
	uint64_t addr; /* remote virtual address */
	uint32_t rkey;
};

struct rd_rblock {
	uint64_t length;
	unsigned int first;
	unsigned int n;
};

/* The destination's MR table, as the source holds it. */
struct rd_remote {
	struct rd_rblock *blocks;
	unsigned int nblocks;
	struct rd_rslice *slices;
	unsigned int nslices;
};

/*
 * MR table encoding (version 1), all big-endian:
 *   u32 magic "RMRT", u16 version, u16 flags (0), u32 nblocks, u32 nslices
 *   per block: u64 length, u32 nslices, u32 pad (0),
 *              then per slice: u64 addr, u64 len, u32 rkey, u32 pad (0)
 * Slices of a block are in offset order and cover it exactly.
 */
#define RD_MRT_MAGIC   0x524d5254u /* "RMRT" */
#define RD_MRT_VERSION 1u
#define RD_MRT_HDR     16u
#define RD_MRT_BLOCK   16u
#define RD_MRT_SLICE   24u

int rmig_rd_memlock_verdict(uint64_t need, uint64_t limit, bool cap_ipc_lock,
			    struct rmig_msgbuf *err);
int rmig_rd_memlock_check(uint64_t need, struct rmig_msgbuf *err);
int rmig_rd_reg_error(int ret, const char *what, const void *addr, uint64_t len, uint64_t total,
		      struct rmig_msgbuf *err);
int rmig_rd_mrs_register(struct rd_mrs *t, const struct rmig_verbs_ops *v, struct ibv_pd *pd,
			 const struct rmig_block *blocks, unsigned int nblocks, uint64_t slice,
			 int access, uint64_t *ns, struct rmig_msgbuf *err);
void rmig_rd_mrs_release(struct rd_mrs *t, const struct rmig_verbs_ops *v);
/* The slice holding @p, or NULL. */
const struct rd_lslice *rmig_rd_mrs_find(const struct rd_mrs *t, const void *p);
size_t rmig_rd_mrt_size(const struct rd_mrs *t);
int rmig_rd_mrt_encode(const struct rd_mrs *t, void *buf, size_t *len, struct rmig_msgbuf *err);
int rmig_rd_mrt_decode(const void *buf, size_t len, const struct rmig_block *blocks,
		       unsigned int nblocks, struct rd_remote *r, struct rmig_msgbuf *err);
void rmig_rd_remote_release(struct rd_remote *r);
/* Remote address for (@block, @off): slice, with bytes left in it in *@avail. */
const struct rd_rslice *rmig_rd_remote_find(const struct rd_remote *r, unsigned int block,
					    uint64_t off);

/* --------------------------------------------------------------- xport */

struct rd_conn;

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

	pthread_mutex_t lock; /* guards conns and nconns */
	struct rd_conn *conns;
	unsigned int nconns;
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
	 * drops mu only while it sleeps in poll() (rmig_rd_conn_wait), with
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
	struct ibv_send_wr batch[RD_BATCH];
	struct ibv_sge batch_sge[RD_BATCH][RD_MAX_SGE];
	unsigned int nbatch;

	/* stream buffers */
	uint8_t *bufs;
	struct ibv_mr *buf_mr;
	unsigned int nrecv;
	unsigned int nslots;
	uint32_t buf_size;

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
};

static inline struct rd_conn *rd_conn_of(struct rmig_conn *c)
{
	return rmig_container_of(c, struct rd_conn, base);
}

/* Entry and exit of every conn op: take the conn for @role. */
static inline struct rd_conn *rd_enter(struct rmig_conn *bc, enum rd_role role)
{
	struct rd_conn *c = rd_conn_of(bc);

	pthread_mutex_lock(&c->mu);
	rmig_rd_role = role;
	return c;
}

static inline int rd_leave(struct rd_conn *c, int ret)
{
	if (ret && ret == c->failed) {
		struct rmig_msgbuf *mb =
		    rmig_rd_role == RD_ROLE_RECV ? &c->base.recv_err : &c->base.err;

		snprintf(mb->msg, sizeof(mb->msg), "%s", c->fail_msg);
	}
	pthread_mutex_unlock(&c->mu);
	return ret;
}

static inline struct rd_xport *rd_xport_of(struct rmig_xport *x)
{
	return rmig_container_of(x, struct rd_xport, base);
}

/* conn.c */
int rmig_rd_conn_fail(struct rd_conn *c, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int rmig_rd_conn_alloc(struct rd_xport *x, const char *label, struct rd_conn **cp);
int rmig_rd_conn_setup_qp(struct rd_conn *c);
void rmig_rd_conn_free(struct rd_conn *c);
int rmig_rd_conn_wait(struct rd_conn *c, uint64_t deadline_ns);
void rmig_rd_kick(struct rd_conn *c, enum rd_role role);
int rmig_rd_connect(struct rd_xport *x, const char *label, struct rd_conn **cp,
		    struct rmig_msgbuf *err);
int rmig_rd_accept(struct rd_xport *x, int timeout_ms, struct rd_conn **cp,
		   struct rmig_msgbuf *err);
int rmig_rd_listen_setup(struct rd_xport *x, struct rmig_msgbuf *err);
void rmig_rd_conn_close(struct rd_conn *c);
void rmig_rd_conn_shutdown(struct rd_conn *c);
int rmig_rd_cm_event_error(const struct rdma_cm_event *ev, const char *what,
			   struct rmig_msgbuf *err);
int rmig_rd_no_device(const struct rmig_verbs_ops *v, const char *addr, int code,
		      struct rmig_msgbuf *err);

/* device.c */
int rmig_rd_use_device(struct rd_xport *x, struct ibv_context *ctx, uint8_t port,
		       struct rmig_msgbuf *err);
int rmig_rd_check_gid(struct rd_xport *x, struct rdma_cm_id *id, struct rmig_msgbuf *err);
int rmig_rd_register_blocks(struct rd_xport *x, struct rmig_msgbuf *err);

/* datapath.c */
int rmig_rd_poll(struct rd_conn *c);
int rmig_rd_add_wr(struct rd_conn *c, enum rd_op op, const struct ibv_sge *sge, unsigned int nsge,
		   uint64_t raddr, uint32_t rkey, bool force_signal, uint64_t *seq);
int rmig_rd_post_batch(struct rd_conn *c);
int rmig_rd_wait_done(struct rd_conn *c, uint64_t seq, uint64_t deadline_ns);
int rmig_rd_send(struct rmig_conn *bc, const void *hdr, size_t hdr_len, const struct rmig_seg *segs,
		 unsigned int nsegs);
int rmig_rd_flush(struct rmig_conn *bc);
int rmig_rd_probe(struct rd_conn *c);
int rmig_rd_check(struct rd_conn *c);

/* pull.c */
int rmig_rd_pull_info(struct rmig_xport *xp, void *buf, size_t *len);
int rmig_rd_pull_open(struct rmig_xport *xp, const void *info, size_t len, size_t size,
		      void **area);
void rmig_rd_pull_release(struct rd_xport *x);
int rmig_rd_pull(struct rmig_conn *bc, void *local, unsigned int block, uint64_t off, uint64_t len,
		 uint64_t *ticket);
int rmig_rd_pull_wait(struct rmig_conn *bc, uint64_t ticket, int timeout_ms);

/* stream.c */
int rmig_rd_stream_init(struct rd_conn *c);
int rmig_rd_post_recv_buf(struct rd_conn *c, unsigned int idx);
int rmig_rd_on_recv(struct rd_conn *c, const struct ibv_wc *wc);
int rmig_rd_stream_write(struct rd_conn *c, const void *buf, size_t len);
int rmig_rd_return_credits(struct rd_conn *c, unsigned int threshold);
int rmig_rd_recv(struct rmig_conn *bc, void *buf, size_t len, int timeout_ms);

static inline unsigned int rd_credit_threshold(const struct rd_conn *c)
{
	return c->nrecv / 2 ? c->nrecv / 2 : 1;
}

extern const struct rmig_conn_ops rmig_rd_conn_ops;

/* deadline helper: 0 = none */
static inline uint64_t rd_deadline(int timeout_ms)
{
	return timeout_ms < 0 ? 0 : rmig_now_ns() + (uint64_t)timeout_ms * 1000000ull;
}

#endif /* RMIG_TRANSPORT_RDMA_RDMA_H */
