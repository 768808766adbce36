// SPDX-License-Identifier: MIT
/*
 * The node map of the source's RAM blocks (numa.h): one sampled page per
 * chunk, asked of the kernel in batches with move_pages(2) and no target
 * nodes, which moves nothing and only reports. Syscalls only: the core does
 * not link libnuma.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "numa.h"

/* addresses per move_pages call */
#define QUERY_BATCH 512u

int rmig_numa_query_kernel(unsigned long count, void **pages, int *status)
{
#ifdef SYS_move_pages
	if (syscall(SYS_move_pages, 0, count, pages, NULL, status, 0) < 0)
		return -errno;
	return 0;
#else
	(void)count;
	(void)pages;
	(void)status;
	return -ENOSYS;
#endif
}

uint32_t rmig_numa_chunk_shift(uint64_t length, uint32_t page_shift)
{
	uint32_t shift = page_shift > RMIG_NUMA_CHUNK_SHIFT ? page_shift : RMIG_NUMA_CHUNK_SHIFT;

	/* chunks: ((length - 1) >> shift) + 1 */
	while (length && shift < 63 && ((length - 1) >> shift) >= RMIG_NUMA_CHUNKS)
		shift++;
	return shift;
}

/*
 * Ask where the page at @frac of each chunk [first, first + n) lives, for
 * the chunks still unknown (@frac 0: the chunk's first page; 1: its middle).
 */
static int query_chunks(const struct rmig_block *b, struct rmig_numa_blk *nb, uint64_t first,
			unsigned int n, int frac, rmig_numa_query_fn query)
{
	void *pages[QUERY_BATCH];
	int status[QUERY_BATCH];
	uint64_t idx[QUERY_BATCH];
	unsigned int k = 0;
	int ret;

	for (unsigned int i = 0; i < n; i++) {
		uint64_t c = first + i, off = c << nb->shift;

		if (nb->node[c] >= 0)
			continue;
		if (frac)
			off += (((uint64_t)1 << nb->shift) / 2) & ~((uint64_t)b->page_size - 1);
		if (off >= b->length)
			continue;
		pages[k] = b->host + off;
		idx[k++] = c;
	}
	if (!k)
		return 0;
	ret = query(k, pages, status);
	if (ret)
		return ret;
	for (unsigned int i = 0; i < k; i++)
		if (status[i] >= 0 && status[i] < RMIG_NUMA_NODES_MAX)
			nb->node[idx[i]] = (int8_t)status[i];
	return 0;
}

int rmig_numa_map_build(const struct rmig_block *blocks, unsigned int nblocks,
			rmig_numa_query_fn query, struct rmig_numa_map **mapp)
{
	struct rmig_numa_map *m;
	int ret = 0;

	if (!query)
		query = rmig_numa_query_kernel;
	m = calloc(1, sizeof(*m) + (size_t)nblocks * sizeof(m->blk[0]));
	if (!m)
		return -ENOMEM;
	m->nblocks = nblocks;
	for (unsigned int i = 0; i < nblocks && !ret; i++) {
		const struct rmig_block *b = &blocks[i];
		struct rmig_numa_blk *nb = &m->blk[i];

		nb->shift = rmig_numa_chunk_shift(b->length, b->page_shift);
		nb->nchunks = ((b->length - 1) >> nb->shift) + 1;
		nb->node = malloc(nb->nchunks);
		if (!nb->node) {
			ret = -ENOMEM;
			break;
		}
		memset(nb->node, -1, nb->nchunks);
		for (uint64_t c = 0; c < nb->nchunks && !ret; c += QUERY_BATCH) {
			unsigned int n = nb->nchunks - c < QUERY_BATCH ? (unsigned int)(nb->nchunks - c)
								       : QUERY_BATCH;

			ret = query_chunks(b, nb, c, n, 0, query);
			if (!ret)
				ret = query_chunks(b, nb, c, n, 1, query);
		}
		m->chunks += nb->nchunks;
		for (uint64_t c = 0; c < nb->nchunks; c++)
			m->chunks_known += nb->node[c] >= 0;
	}
	if (ret) {
		rmig_numa_map_free(m);
		return ret;
	}
	*mapp = m;
	return 0;
}

void rmig_numa_map_free(struct rmig_numa_map *m)
{
	if (!m)
		return;
	for (unsigned int i = 0; i < m->nblocks; i++)
		free(m->blk[i].node);
	free(m);
}

void rmig_numa_count(const struct rmig_numa_map *m, unsigned int block, const uint64_t *offsets,
		     uint32_t n, int node, uint64_t *local, uint64_t *remote)
{
	const struct rmig_numa_blk *b = &m->blk[block];
	uint64_t l = 0, r = 0;

	for (uint32_t i = 0; i < n; i++) {
		uint64_t c = offsets[i] >> b->shift;
		int pn = c < b->nchunks ? b->node[c] : -1;

		if (pn < 0)
			continue;
		if (pn == node)
			l++;
		else
			r++;
	}
	*local = l;
	*remote = r;
}

int rmig_numa_distinct_nodes(const int *nodes, unsigned int n)
{
	int seen = 0;

	for (unsigned int i = 0; i < n; i++) {
		bool fresh = nodes[i] >= 0;

		for (unsigned int j = 0; j < i && fresh; j++)
			fresh = nodes[j] != nodes[i];
		seen += fresh;
	}
	return seen;
}
