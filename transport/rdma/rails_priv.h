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
};

/* destination: a channel's takeover connection, accepted and waiting for its channel */
struct rl_vconn;
struct bitmask;

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
	/* destination: that conn (the core owns it), whose end rails_conn.c reports */
	struct rd_conn *ctl;
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
int rmig_rl_vconn_new(struct rl_xport *r, unsigned int rail, uint32_t vid, struct rmig_conn *in,
		      struct rmig_conn **out);
/* Wait on every rail's listener for up to @timeout_ms; accept one connection: 0 and it. */
int rmig_rl_accept_any(struct rl_xport *r, int timeout_ms, unsigned int *rail,
		       struct rmig_conn **cp);
void rmig_rl_resume_free(struct rl_xport *r);
/* Placement figures of rail @k's channels: threads and stream buffers on its node. */
void rmig_rl_vconn_nodes(struct rl_xport *r, unsigned int k, unsigned int *threads,
			 unsigned int *buffers);
/* Data pages rail @k's channels carried from memory on and off its node (the core counts them). */
void rmig_rl_vconn_pages(struct rl_xport *r, unsigned int k, uint64_t *local, uint64_t *remote);

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
