// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

void rmig_opts_init(struct rmig_opts *opts)
{
	memset(opts, 0, sizeof(*opts));
	opts->size = sizeof(*opts);
	opts->channels = 2;
	opts->pages_per_packet = 128;
	opts->timeout_ms = 30000;
	opts->gid_index = -1;
	opts->signal_every = 64;
	opts->sq_depth = 512;
	opts->mr_slice = 2ull << 30;
}

int rmig_opts_copy(struct rmig_opts *dst, const struct rmig_opts *src, bool is_source)
{
	rmig_opts_init(dst);
	if (!src) {
		if (!is_source)
			dst->channels = RMIG_MAX_CHANNELS;
		return 0;
	}
	/* the shortest prefix a caller may give: the structure before its first reserved slots */
	if (src->size < offsetof(struct rmig_opts, numa) || src->size > sizeof(*src))
		return -EINVAL;
	memcpy(dst, src, src->size);
	dst->size = sizeof(*dst);
	if (dst->flags & ~(uint32_t)(RMIG_F_ZERO_COPY | RMIG_F_NO_ZERO_DETECT | RMIG_F_DIRECT_IO |
				     RMIG_F_POSTCOPY | RMIG_F_INSECURE | RMIG_F_TLS))
		return -EINVAL;
	if (dst->channels == 0 || dst->channels > RMIG_MAX_CHANNELS)
		return -EINVAL;
	if (dst->pages_per_packet == 0 || dst->pages_per_packet > 4096)
		return -EINVAL;
	if (dst->timeout_ms <= 0)
		dst->timeout_ms = 30000;
	if (!dst->signal_every)
		dst->signal_every = 64;
	if (!dst->sq_depth)
		dst->sq_depth = 512;
	if (!dst->mr_slice)
		dst->mr_slice = 2ull << 30;
	if (dst->numa > RMIG_NUMA_PLACE || dst->numa_rails > RMIG_MAX_RAILS)
		return -EINVAL;
	for (unsigned int k = 0; k < RMIG_MAX_RAILS; k++)
		if (k < dst->numa_rails ? dst->numa_node[k] < -1 : dst->numa_node[k] != 0)
			return -EINVAL;
	for (size_t i = 0; i < RMIG_ARRAY_SIZE(dst->reserved); i++)
		if (dst->reserved[i])
			return -EINVAL;
	return 0;
}

int rmig_blocks_add(struct rmig_block **blocks, unsigned int *nblocks,
		    const struct rmig_block_desc *d)
{
	struct rmig_block *nb, *b;
	size_t nl;

	if (!d || !d->name || !d->host || !d->length || !rmig_is_pow2(d->page_size) ||
	    d->page_size < 512 || d->page_size > (1u << 30) || d->length % d->page_size)
		return -EINVAL;
	nl = strlen(d->name);
	if (nl == 0 || nl >= RMIG_BLOCK_NAME_MAX)
		return -EINVAL;
	if ((uintptr_t)d->host % 8)
		return -EINVAL;
	if (*nblocks >= RMIG_MAX_BLOCKS)
		return -E2BIG;
	for (unsigned int i = 0; i < *nblocks; i++)
		if (!strcmp((*blocks)[i].name, d->name))
			return -EINVAL;
	nb = realloc(*blocks, sizeof(*nb) * (*nblocks + 1));
	if (!nb)
		return -ENOMEM;
	*blocks = nb;
	b = &nb[*nblocks];
	memset(b, 0, sizeof(*b));
	memcpy(b->name, d->name, nl + 1);
	b->host = d->host;
	b->length = d->length;
	b->page_size = d->page_size;
	b->page_shift = (uint32_t)__builtin_ctz(d->page_size);
	return (int)(*nblocks)++;
}
