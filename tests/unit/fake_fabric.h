/* SPDX-License-Identifier: MIT */
/*
 * A loopback RDMA fabric in one process, behind the rdma transport's verbs
 * table (transport/rdma/verbs_ops.h): the real rmig engines and the real
 * transport/rdma code run over it with "rdma:127.0.0.1:PORT", no device.
 *
 * What it emulates:
 *  - one device "fake0" (port 1, active) that owns every 127.x address;
 *  - PDs and MRs (addr, length, lkey, rkey, access), checked on every access;
 *  - CQs with completion channels whose fd is a real eventfd: a completion
 *    on an armed CQ (req_notify_cq) raises one event, as hardware does;
 *  - rdma_cm event channels (eventfd plus a queue of events), listeners
 *    keyed by port, connect / accept pairing two RC QPs, reject, disconnect;
 *  - RC semantics executed at post time, in order: RDMA WRITE / READ check
 *    the rkey, range and remote access of a registered MR of the peer (else
 *    IBV_WC_REM_ACCESS_ERR and both QPs go to error); a zero-length WRITE
 *    passes with any rkey (IB spec C9-88); a SEND consumes the peer's
 *    oldest posted receive, and a SEND that finds none is an RNR: rmig sets
 *    rnr_retry to 0, so it fails the QP with IBV_WC_RNR_RETRY_EXC_ERR and is
 *    counted. Completions are signaled only with IBV_SEND_SIGNALED (errors
 *    always); a QP in error flushes its receives and every later WR.
 *
 * Misuse that would hang or fail on real rdma-core (destroying a CQ with
 * unacked events, migrating or destroying an id with unacked events, a PD
 * with MRs left, more WRs outstanding than the send queue holds, a CQ
 * overrun) is not emulated as a hang: it is counted in ff_stats.misuse and
 * described in ff_stats.misuse_msg, for the test to assert on.
 *
 * One mutex guards the whole fabric: the engines use conns from several
 * threads at once (channel threads, the control thread).
 */
#ifndef RMIG_TESTS_FAKE_FABRIC_H
#define RMIG_TESTS_FAKE_FABRIC_H

#include <stdbool.h>
#include <stdint.h>

#include "transport/rdma/verbs_ops.h"

#define FF_MAX_QPS 64

/* Per QP, kept after the QP is destroyed (indexed by creation order). */
struct ff_qp_stats {
	bool used;
	bool active;	   /* created on the connecting side */
	unsigned int nth;  /* creation order on its side: active 0 is the control conn */
	uint64_t sends;	   /* SEND / SEND_WITH_IMM posted */
	uint64_t writes;   /* RDMA WRITEs with data */
	uint64_t nops;	   /* zero-length RDMA WRITEs */
	uint64_t reads;	   /* RDMA READs */
	uint64_t received; /* SENDs that landed in one of this QP's receives */
	/*
	 * Receives consumed by a SEND and not posted again yet: messages
	 * waiting to be read (or being read). The largest value seen, right
	 * after a SEND landed.
	 */
	unsigned int max_unread;
	unsigned int rq_cap;	   /* most receives ever posted at once */
	unsigned int min_rq_at_send; /* fewest receives posted when a SEND came (rq_cap if none) */
	unsigned int rnr;	   /* SENDs from the peer that found no receive */
	uint64_t max_sq;	   /* most WRs outstanding in the send queue */
	enum ibv_wc_status first_error; /* first error completion of its own WRs */
};

struct ff_stats {
	unsigned int rnr;	/* every RNR, all QPs */
	unsigned int access_err; /* remote access errors */
	unsigned int qps_errored;
	/* the first WR to fail anywhere (not flushed), and on which QP (index in qp[]) */
	enum ibv_wc_status first_error;
	unsigned int first_error_qp;
	unsigned int misuse;
	char misuse_msg[256]; /* the first one */
	struct ff_qp_stats qp[FF_MAX_QPS];
	unsigned int nqps;
};

/*
 * Faults, set by the test (under the fabric's lock, see ff_fault_set). Data
 * WRITEs are counted over the whole fabric from 1; 0 disables a fault.
 */
struct ff_faults {
	uint64_t bad_rkey_at;	 /* this WRITE carries a corrupted rkey */
	uint64_t peer_error_at;	 /* before this WRITE, the responder's QP goes to error */
	uint64_t revoke_at;	 /* before this WRITE, every remotely writable MR is revoked */
	/*
	 * Before this WRITE, the connecting side's QP number kill_nth (in
	 * creation order, from 0) and its peer go to error: a link under that
	 * connection alone died (with rails: which conn is which, rails.c).
	 */
	uint64_t kill_at;
	unsigned int kill_nth;
	/*
	 * A second such death (a conn that took the first one's place, say):
	 * before data WRITE kill2_at, or before that QP's own SEND number
	 * kill2_send (from 1) when kill2_send is set.
	 */
	uint64_t kill2_at;
	unsigned int kill2_nth;
	uint64_t kill2_send;
	/*
	 * A kill takes the killed conn's link down, not only its QP: later
	 * connects to the address it went to are unreachable.
	 */
	bool kill_downs_link;
};

/* The table to point rmig_rdma_verbs at, and its life cycle. */
extern const struct rmig_verbs_ops ff_verbs;
void ff_init(void);
/* 0 when every object the fabric handed out was released; else how many are live. */
unsigned int ff_live_objects(void);
void ff_fini(void);

void ff_fault_set(const struct ff_faults *f);
/* Data WRITEs executed so far, over the whole fabric. */
uint64_t ff_writes(void);
/*
 * Invalidate every MR that allows remote writes, as a deregistration the
 * owner did not see yet would: later WRITEs to them fail with
 * IBV_WC_REM_ACCESS_ERR.
 */
void ff_revoke_remote_mrs(void);
/*
 * ibv_reg_mr: fail with @err a registration starting at @fail_addr (NULL:
 * none), and take @delay_us for each. ff_init() clears both.
 */
void ff_reg_set(const void *fail_addr, int err, unsigned int delay_us);
/*
 * Type 2 memory windows (off after ff_init()): the device reports them,
 * BIND_MW binds one to the QP it is posted on, and its rkey works there
 * alone. @bind_fail_at: the n-th BIND_MW (from 1; 0: none) completes with
 * IBV_WC_MW_BIND_ERR.
 */
void ff_mw_set(bool on, unsigned int bind_fail_at);
/* A consistent copy of the statistics. */
void ff_stats_get(struct ff_stats *s);

#endif /* RMIG_TESTS_FAKE_FABRIC_H */
