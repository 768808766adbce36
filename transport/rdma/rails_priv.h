/* SPDX-License-Identifier: MIT */
/*
 * Private structures of multi-rail rdma, shared by rails.c (the xport:
 * set-up, hellos, MR list, figures) and rails_conn.c (a channel's
 * connection that moves to another rail when its own dies).
 */
#ifndef RMIG_TRANSPORT_RDMA_RAILS_PRIV_H
#define RMIG_TRANSPORT_RDMA_RAILS_PRIV_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "transport/rdma/rails.h"
#include "transport/rdma/rails_fabric.h"
#include "transport/rdma/types.h"

#define RL_TOKEN_LEN 16u
/* the takeover exchange: "RMRS" | u32 | u64 | token (rails_takeover.c) */
#define RL_RS_LEN (16u + RL_TOKEN_LEN)
/* vid of the control connection (a channel's is its number plus one) */
#define RL_CTL_VID 0xffffffffu

struct rl_rail {
	struct rmig_xport *xp;	 /* an rdma xport (rmig_rdma_ops) */
	struct rmig_conn *hello; /* the rail's own connection */
	char addr[128];		 /* HOST:PORT */
	_Atomic unsigned int channels;
	atomic_bool dead; /* a channel left it: failed over channels avoid it */
	int node;	  /* NUMA node of its device (or RMIG_RDMA_NUMA's), -1: none */
	struct rl_fabric fab;  /* this side's end of the rail (rails_fabric.c) */
	struct rl_fabric peer; /* destination: the source's end, from its hello */
	struct bitmask *cpus; /* the node's CPUs, when placing */
	void *pull_area; /* destination, postcopy: its pull area (the rail xport's) */
};

struct bitmask;

/* One send() that may not have arrived yet (rails_conn.c). */
struct rl_rec {
	struct rl_rec *next;
	uint64_t start, end;   /* its stream bytes, counted from the conn's first */
	struct rd_conn *on;    /* posted on this conn... */
	uint64_t last_seq;     /* ...its last WR */
	unsigned int nsegs;
	struct rmig_seg *segs; /* copies of the descriptors */
	uint8_t hdr[];
};

/*
 * A postcopy pull on the control connection (rails_conn.c): started again on
 * the new conn when the control connection moves.
 */
struct rl_pull {
	struct rl_pull *next;
	uint64_t ticket; /* the core's */
	uint64_t inner;	 /* the current conn's */
	size_t at;	 /* offset in the pull area */
	unsigned int block;
	uint64_t off, len;
};

/*
 * A channel's or the control connection's conn over the rails: an rdma conn
 * on one rail underneath (in), moved to another rail when it dies. A
 * channel has one user at a time; the control connection has two in
 * postcopy (a thread reading it, others sending and pulling on it), so an
 * operation counts itself in (active) and a move waits until none is.
 */
struct rl_vconn {
	struct rmig_conn base;
	struct rl_xport *r;
	uint32_t vid;	       /* channel number plus one, or RL_CTL_VID */
	unsigned int rail;     /* written under r->vc_mu (the figures read it) */
	unsigned int new_rail; /* while moving */
	pthread_mutex_t mu; /* guards in, active, moving, gen, broken */
	pthread_cond_t cv;  /* a move ended, or an operation left */
	struct rmig_conn *in;
	unsigned int active; /* operations inside in's ops */
	bool moving;	     /* a thread is moving the conn: operations wait */
	unsigned int gen;    /* moves so far, failed ones included */
	int broken;	     /* a move failed: every operation fails so */
	char broken_msg[RMIG_ERRMSG_MAX];
	atomic_bool down;
	/*
	 * Destination: the source took this conn over on another rail (its
	 * takeover was accepted): the current conn is dead whatever it says.
	 */
	atomic_bool taken_over;
	/* control connection, postcopy: pulls started and not waited for, oldest first */
	struct rl_pull *pulls, **pulls_tail;
	uint64_t next_ticket; /* the tickets the core holds: 1, 2, ... */
	/* the rest is the send side's and the receive side's own, and a mover's */
	uint64_t tx;		  /* stream bytes sent */
	uint64_t rx;		  /* stream bytes received: handed out or in pend */
	struct rl_rec *log, **tail; /* sends not known to have arrived, oldest first */
	uint8_t *pend;		  /* bytes taken off a dead conn, not read yet */
	size_t pend_len, pend_off;
	pthread_mutex_t cnt_mu;	  /* seen_*: counted from both sides' threads */
	uint64_t seen_wire, seen_writes; /* of in's counters, already in base */
	unsigned int moves;
	struct rl_vconn *next; /* in r->vconns */
	bool placed;	       /* the channel thread is bound to its rail's node */
	pthread_t creator;     /* the thread that set the conn up (the core's main one) */
	pthread_t thread;      /* the channel thread, once placed */
	_Atomic int cpu_node;  /* node of the CPU the channel thread last ran on */
	_Atomic int buf_node;  /* node of the stream buffers' memory */
};

struct rl_resume {
	struct rl_resume *next;
	uint32_t vid;
	unsigned int rail;
	uint64_t peer_rx; /* stream bytes the source had received */
	struct rmig_conn *conn;
};

struct rl_xport {
	struct rmig_xport base;
	bool is_dst;
	bool got_ctl; /* destination: rail 0's control conn was accepted */
	/* destination: that conn (the core owns it), whose end rails_takeover.c reports */
	struct rl_vconn *ctl;
	unsigned int nrails;
	int timeout_ms;
	struct rl_rail rail[RD_RAILS_MAX];
	char list[RMIG_ERRMSG_MAX / 2]; /* the rails' addresses, for messages */
	/*
	 * Random, made by the destination at listen and sent in every hello
	 * answer: a takeover connection must present it (rails_conn.c).
	 */
	uint8_t token[RL_TOKEN_LEN];
	unsigned int allow; /* RL_ALLOW_*: checks this side waives (RMIG_RDMA_RAILS_ALLOW) */
	/*
	 * Source: random per connect(), in every rail's hello. Destination:
	 * the hellos' it holds; a hello of another attempt means the source
	 * that said the held ones gave up, and they are dropped.
	 */
	uint64_t attempt;

	/* source: connects set the rail xport's next_cm_flags/next_vid under it */
	pthread_mutex_t cm_mu;
	/* destination: takeover connections, accepted by whichever channel waits */
	pthread_mutex_t rs_mu;
	pthread_cond_t rs_cv;
	bool rs_accepting; /* Must hold rs_mu: a thread is accepting */
	struct rl_resume *rs_list; /* Must hold rs_mu */

	bool numa; /* place channels on their rail's node (rails_numa.c) */
	int *cpu_node; /* node of each CPU, made once at set-up */
	int ncpus;
	int max_node;
	size_t pull_size; /* destination, postcopy: each rail's pull area */
	pthread_mutex_t vc_mu; /* guards vconns, and each one's rail */
	struct rl_vconn *vconns;
};

/* rails_numa.c: the calling thread's placement, saved while it works for a rail */
struct rl_numa_saved {
	bool on;
	bool mode_ok;
	int mode;
	unsigned long nodes[4];
	struct bitmask *cpus;
};

static inline struct rl_xport *rl_of(struct rmig_xport *x)
{
	return rmig_container_of(x, struct rl_xport, base);
}

/* rails_conn.c */
/* Wrap @in (a channel's conn, or the control connection's with RL_CTL_VID). */
int rmig_rl_vconn_new(struct rl_xport *r, unsigned int rail, uint32_t vid, struct rmig_conn *in,
		      struct rmig_conn **out);
/* Placement figures of rail @k's channels: threads and stream buffers on its node. */
void rmig_rl_vconn_nodes(struct rl_xport *r, unsigned int k, unsigned int *threads,
			 unsigned int *buffers);
/* Data pages rail @k's channels carried from memory on and off its node (the core counts them). */
void rmig_rl_vconn_pages(struct rl_xport *r, unsigned int k, uint64_t *local, uint64_t *remote);
/* Point @v at @in (under v->mu: shutdown() from another thread reads it). */
void rmig_rl_set_in(struct rl_vconn *v, struct rmig_conn *in);
/*
 * Destination: a takeover for the conn @vid was accepted: tell it its conn
 * is dead (shut down, so that a call blocked in it returns and moves it).
 */
void rmig_rl_taken_over(struct rl_xport *r, uint32_t vid);
/* "channel N" or "control connection", for messages. */
const char *rmig_rl_vname(const struct rl_vconn *v, char *buf, size_t size);

/* rails_takeover.c */
void rmig_rl_put_rs(uint8_t b[RL_RS_LEN], uint32_t word, uint64_t off, const uint8_t *token);
/* Source: a takeover conn for @v on the next live rail; the peer's received bytes. */
int rmig_rl_takeover_connect(struct rl_vconn *v, uint64_t *peer_rx, struct rmig_msgbuf *err);
/* Destination: wait for (accepting on every rail) the takeover conn of @v. */
int rmig_rl_takeover_wait(struct rl_vconn *v, uint64_t *peer_rx, struct rmig_msgbuf *err);
/* Wait on every rail's listener for up to @timeout_ms; accept one connection: 0 and it. */
int rmig_rl_accept_any(struct rl_xport *r, int timeout_ms, unsigned int *rail,
		       struct rmig_conn **cp);
void rmig_rl_resume_free(struct rl_xport *r);

/* rails_numa.c */
int rmig_rl_device_node(const char *dev);
/* Rails' nodes and CPUs from their devices, or by hand (@o, RMIG_RDMA_NUMA): 0 or -EINVAL. */
int rmig_rl_numa_setup(struct rl_xport *r, const struct rmig_opts *o, struct rmig_msgbuf *err);
/* Rail @rail's node when its channels are placed there, else -1 (steering: rmig_conn_set_node). */
int rmig_rl_numa_node(const struct rl_xport *r, unsigned int rail);
void rmig_rl_numa_enter(struct rl_xport *r, unsigned int rail, struct rl_numa_saved *s);
void rmig_rl_numa_leave(struct rl_numa_saved *s);
void rmig_rl_numa_thread(struct rl_xport *r, unsigned int rail);
int rmig_rl_cpu_node(const struct rl_xport *r);
void rmig_rl_numa_free(struct rl_xport *r);
int rmig_rl_mem_node(const void *addr);

#endif /* RMIG_TRANSPORT_RDMA_RAILS_PRIV_H */
