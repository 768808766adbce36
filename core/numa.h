/* SPDX-License-Identifier: MIT */
/*
 * NUMA steering, the core's half (core/numa.c): which node holds each part
 * of the source's RAM blocks. The transport says which node each channel's
 * data leaves from (rmig_conn_node(), core/xport.h); the source hands a
 * batch to a channel on the node of the batch's first page when one is idle
 * (core/sched.c, rmig_sched_send_node) and counts every data page as local
 * or remote to the channel that carried it.
 *
 * The map is made once, at connect, by asking the kernel where one page of
 * each chunk lives (move_pages(2) with no target nodes: a query, nothing
 * moves; a page not yet touched is asked again at the chunk's middle, then
 * left unknown). A chunk is 64 KiB, or the block's page if larger, or
 * 1/RMIG_NUMA_CHUNKS of a block too large for that many 64 KiB chunks
 * (over 4 GiB), so a block's map is at most 64 KiB and 64 Ki queries (a
 * 1 TiB block: 16 MiB chunks). Finer than a batch of 4 KiB pages (512 KiB
 * by default), so memory interleaved by the batch is still told apart.
 */
#ifndef RMIG_CORE_NUMA_H
#define RMIG_CORE_NUMA_H

#include <stdint.h>

#include "xport.h"

#define RMIG_NUMA_CHUNKS (1u << 16)	/* most chunks per block, but for huge pages */
#define RMIG_NUMA_CHUNK_SHIFT 16u	/* smallest chunk: 64 KiB */
#define RMIG_NUMA_NODES_MAX 128		/* nodes 0..127 are kept; others count as unknown */

struct rmig_numa_blk {
	int8_t *node;	  /* per chunk: its node, -1 unknown */
	uint64_t nchunks;
	uint32_t shift;	  /* chunk = 1 << shift bytes */
};

struct rmig_numa_map {
	unsigned int nblocks;
	uint64_t chunks_known; /* chunks whose node was found */
	uint64_t chunks;
	struct rmig_numa_blk blk[];
};

/*
 * Where @count pages at @pages live: status[i] is the node or a negative
 * errno (-ENOENT: not present). 0 or a negative errno for the whole call.
 * The default asks the kernel (move_pages with no nodes); unit tests pass
 * their own.
 */
typedef int (*rmig_numa_query_fn)(unsigned long count, void **pages, int *status);

int rmig_numa_query_kernel(unsigned long count, void **pages, int *status);

/* The chunk size (a shift) of a block of @length bytes in pages of 1 << @page_shift. */
uint32_t rmig_numa_chunk_shift(uint64_t length, uint32_t page_shift);

/*
 * The map of @nblocks blocks, asking @query (NULL: the kernel). 0 and the
 * map in *@mapp, -ENOMEM, or the query's error.
 */
int rmig_numa_map_build(const struct rmig_block *blocks, unsigned int nblocks,
			rmig_numa_query_fn query, struct rmig_numa_map **mapp);
void rmig_numa_map_free(struct rmig_numa_map *m);

/* The node of the byte at @off of block @block, -1 unknown. */
static inline int rmig_numa_node_of(const struct rmig_numa_map *m, unsigned int block,
				    uint64_t off)
{
	const struct rmig_numa_blk *b = &m->blk[block];
	uint64_t c = off >> b->shift;

	return c < b->nchunks ? b->node[c] : -1;
}

/*
 * Of the @n pages at @offsets in block @block, how many are on node @node
 * (*@local) and how many on a known other node (*@remote).
 */
void rmig_numa_count(const struct rmig_numa_map *m, unsigned int block, const uint64_t *offsets,
		     uint32_t n, int node, uint64_t *local, uint64_t *remote);

/*
 * Whether steering can help: at least two channels, of @n with nodes
 * @nodes (-1 none), are on different nodes.
 */
int rmig_numa_distinct_nodes(const int *nodes, unsigned int n);

#endif /* RMIG_CORE_NUMA_H */
