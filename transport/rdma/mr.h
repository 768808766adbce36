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

#include <stdbool.h>
#include <stdint.h>

#include "core/xport.h"
#include "transport/rdma/verbs_ops.h"

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
/* @rkeys: one per slice of @t, or NULL for the MRs' own */
int rmig_rd_mrt_encode(const struct rd_mrs *t, const uint32_t *rkeys, void *buf, size_t *len,
		       struct rmig_msgbuf *err);
int rmig_rd_mrt_decode(const void *buf, size_t len, const struct rmig_block *blocks,
		       unsigned int nblocks, struct rd_remote *r, struct rmig_msgbuf *err);
void rmig_rd_remote_release(struct rd_remote *r);
/* Remote address for (@block, @off): slice, with bytes left in it in *@avail. */
const struct rd_rslice *rmig_rd_remote_find(const struct rd_remote *r, unsigned int block,
					    uint64_t off);

#endif /* RMIG_TRANSPORT_RDMA_MR_H */
