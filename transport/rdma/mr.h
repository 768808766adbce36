/* SPDX-License-Identifier: MIT */
/*
 * Memory registration (mr.c): the local RAM blocks as MRs, cut into slices
 * of at most mr_slice bytes and registered in parallel, and the MR table
 * a peer is given to place data into them (destination) or read them
 * (source, postcopy). Below every other file but verbs_ops.c: it knows no
 * xport or conn.
 */
#ifndef RMIG_TRANSPORT_RDMA_MR_H
#define RMIG_TRANSPORT_RDMA_MR_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/xport.h"
#include "transport/rdma/verbs_ops.h"

/*
 * A registered piece of a local block. With streamed registration
 * (mr_stream.c) a background thread sets mr, then ready (release); a
 * reader that saw ready (acquire) may use mr.
 */
struct rd_lslice {
	uint8_t *addr;
	uint64_t len;
	struct ibv_mr *mr;
	atomic_bool ready;
};

struct rd_lblock {
	uint8_t *host;
	uint64_t length;
	const char *name; /* the caller's block table's, for messages */
	unsigned int first; /* index of its first slice */
	unsigned int n;
};

struct rd_regstream;

/* The local blocks as MRs. */
struct rd_mrs {
	struct rd_lblock *blocks;
	unsigned int nblocks;
	struct rd_lslice *slices;
	unsigned int nslices;
	unsigned int *by_addr; /* slice indexes sorted by address, for lookups */
	/*
	 * Streamed registration (mr_stream.c): the threads registering the
	 * slices in address order, or NULL when every slice was registered
	 * before the table was handed out. all_ready: every slice is.
	 */
	struct rd_regstream *rs;
	atomic_bool all_ready;
	/*
	 * Destination: the registration status table the source reads
	 * (mr_stream.c); set, the MR table goes out as version 2.
	 */
	bool published;
	uint64_t status_addr;
	uint32_t status_rkey;
};

/*
 * A piece of a remote block, as the destination described it. In a
 * streamed table (version 2) a slice may be pending: rkey is set, then
 * ready (release), by the first channel that read it from the
 * destination's status table (regwait.c), under the xport's mr_lock.
 */
struct rd_rslice {
	uint64_t off; /* offset in the block */
	uint64_t len;
	uint64_t addr; /* remote virtual address */
	uint32_t rkey;
	atomic_bool ready;
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
	/* version 2: where the slices' status is (one u64 per slice), and whether all are ready */
	bool streamed;
	uint64_t status_addr;
	uint32_t status_rkey;
	atomic_bool all_ready;
};

/*
 * MR table encoding, all big-endian:
 *   u32 magic "RMRT", u16 version, u16 flags (0), u32 nblocks, u32 nslices
 *   version 2 only: u64 status table address, u32 its rkey, u32 pad (0)
 *   per block: u64 length, u32 nslices, u32 pad (0),
 *              then per slice: u64 addr, u64 len, u32 rkey, u32 state
 * Slices of a block are in offset order and cover it exactly. state is 0
 * in version 1; in version 2, RD_MRT_PENDING (with rkey 0) marks a slice
 * still being registered, whose rkey the status table gives once it is.
 * A destination sends version 2 only while some slice is pending, so a
 * source that speaks version 1 only still works with one that has finished.
 *
 * Status table (version 2): one big-endian u64 per slice, written by the
 * destination and read by the source with RDMA READ:
 *   0 pending; rkey << 32 | (~rkey ^ RD_ST_READY) registered;
 *   RD_ST_FAILED (upper half 0) the registration failed.
 * The lower half checks the upper, so a torn read is seen as pending.
 */
#define RD_MRT_MAGIC	 0x524d5254u /* "RMRT" */
#define RD_MRT_VERSION	 1u
#define RD_MRT_VERSION2	 2u
#define RD_MRT_HDR	 16u
#define RD_MRT_HDR2_EXT	 16u
#define RD_MRT_BLOCK	 16u
#define RD_MRT_SLICE	 24u
#define RD_MRT_PENDING	 1u
#define RD_ST_READY	 0x52454459u /* "REDY" */
#define RD_ST_FAILED	 0x4641494cu /* "FAIL" */

static inline uint64_t rd_st_ready(uint32_t rkey)
{
	return (uint64_t)rkey << 32 | (uint32_t)(~rkey ^ RD_ST_READY);
}

int rmig_rd_memlock_verdict(uint64_t need, uint64_t limit, bool cap_ipc_lock,
			    struct rmig_msgbuf *err);
int rmig_rd_memlock_check(uint64_t need, struct rmig_msgbuf *err);
int rmig_rd_reg_error(int ret, const char *what, const void *addr, uint64_t len, uint64_t total,
		      struct rmig_msgbuf *err);
int rmig_rd_mrs_register(struct rd_mrs *t, const struct rmig_verbs_ops *v, struct ibv_pd *pd,
			 const struct rmig_block *blocks, unsigned int nblocks, uint64_t slice,
			 int access, uint64_t *ns, struct rmig_msgbuf *err);
/* Deregisters every MR of @t; a streamed table must be stopped first (rmig_rd_mrs_stop_release). */
void rmig_rd_mrs_release(struct rd_mrs *t, const struct rmig_verbs_ops *v);
/*
 * The slicing alone (no MR): fixed slices of @slice bytes, or with @first
 * non-zero, per block @first bytes, then each slice twice the one before
 * up to @slice (mr_stream.c says why).
 */
int rmig_rd_mrs_plan(struct rd_mrs *t, const struct rmig_block *blocks, unsigned int nblocks,
		     uint64_t slice, uint64_t first, uint64_t *total, struct rmig_msgbuf *err);
const char *rmig_rd_access_name(int access);

/*
 * Streamed registration (mr_stream.c, above this file). rmig_rd_mrs_stream() plans the
 * slices and starts threads that register them in address order; it
 * returns at once; with @publish_status (destination) it first registers the
 * status table the source reads rkeys from (t->published). rmig_rd_mrs_wait() returns 0 once slice @s (NULL: every
 * slice) is registered, the background failure if there was one (naming
 * the block and slice), or -ECANCELED once *@down or *@down2 is set or the
 * table was released. Without a stream (t->rs NULL) it returns 0 at once.
 */
struct rd_stream_params {
	uint64_t slice; /* the largest slice (mr_slice) */
	int access;
	bool publish_status;
	_Atomic uint64_t *ns; /* gets the time from the start to the last slice */
	/* called once, from a registration thread, with the failure's message */
	void (*on_fail)(void *arg, int ret, const char *msg);
	void *arg;
};
int rmig_rd_mrs_stream(struct rd_mrs *t, const struct rmig_verbs_ops *v, struct ibv_pd *pd,
		       const struct rmig_block *blocks, unsigned int nblocks,
		       const struct rd_stream_params *sp, struct rmig_msgbuf *err);
/* Must not run while another thread may still call it: see rmig_rd_mrs_stop_release(). */
int rmig_rd_mrs_wait(struct rd_mrs *t, const struct rd_lslice *s, const atomic_bool *down,
		     const atomic_bool *down2, struct rmig_msgbuf *err);
/*
 * Until the number of registered slices differs from *@done (which it
 * updates), the stream failed or stopped, *@down is set or @ms passed.
 * 0, or the failure as rmig_rd_mrs_wait() gives it; -ETIMEDOUT.
 */
int rmig_rd_mrs_wait_more(struct rd_mrs *t, unsigned int *done, int ms, const atomic_bool *down,
			  struct rmig_msgbuf *err);
/* The slice whose registration failed (its index in @t), or -1 (none, or not streamed). */
int rmig_rd_mrs_failed_slice(struct rd_mrs *t);
/*
 * Stops a streamed registration's threads and joins them (a thread inside
 * ibv_reg_mr finishes that slice), then releases @t like
 * rmig_rd_mrs_release(): what they registered and the status table.
 */
void rmig_rd_mrs_stop_release(struct rd_mrs *t, const struct rmig_verbs_ops *v);
/* Fast path for the datapath: nothing to wait for. */
static inline bool rmig_rd_mrs_all_ready(const struct rd_mrs *t)
{
	return !t->rs || atomic_load_explicit(&t->all_ready, memory_order_acquire);
}
/* The slice holding @p, or NULL. */
const struct rd_lslice *rmig_rd_mrs_find(const struct rd_mrs *t, const void *p);
size_t rmig_rd_mrt_size(const struct rd_mrs *t);
/* The size of a table of @t in version 2 (@v2) or 1, whatever @t's state. */
size_t rmig_rd_mrt_size_v(const struct rd_mrs *t, bool v2);
/* @rkeys: one per slice of @t, or NULL for the MRs' own */
int rmig_rd_mrt_encode(const struct rd_mrs *t, const uint32_t *rkeys, void *buf, size_t *len,
		       struct rmig_msgbuf *err);
/*
 * A channel's table (mw.c): slice k has rkey @rkeys[k], or is pending when
 * @pending[k]. Version 2 with the status table at @st_addr / @st_rkey when
 * any slice is pending, else version 1 (and @st_* unused).
 */
int rmig_rd_mrt_encode_chan(const struct rd_mrs *t, const uint32_t *rkeys,
			    const uint8_t *pending, uint64_t st_addr, uint32_t st_rkey, void *buf,
			    size_t *len, struct rmig_msgbuf *err);
int rmig_rd_mrt_decode(const void *buf, size_t len, const struct rmig_block *blocks,
		       unsigned int nblocks, struct rd_remote *r, struct rmig_msgbuf *err);
void rmig_rd_remote_release(struct rd_remote *r);
/* Remote address for (@block, @off): slice, with bytes left in it in *@avail. */
const struct rd_rslice *rmig_rd_remote_find(const struct rd_remote *r, unsigned int block,
					    uint64_t off);

#endif /* RMIG_TRANSPORT_RDMA_MR_H */
