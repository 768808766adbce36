// SPDX-License-Identifier: MIT
/*
 * Per-rail figures (rmig_src_get_rails, rmig_dst_get_rails): only the rdma
 * transport has rails (transport/rdma/rails.c), one per address of
 * "rdma:H1,H2:PORT", or one for a plain rdma address.
 */
#include <errno.h>
#include <string.h>

#include "rmig-config.h"
#include "core/dst/dst_engine.h"
#include "core/src/src_engine.h"
#ifdef RMIG_HAVE_RDMA
#include "transport/rdma/rails.h"
#endif

static int rails_get(const struct rmig_xport_ops *ops, struct rmig_xport *xp,
		     struct rmig_rail_stats *out, unsigned int max)
{
#ifdef RMIG_HAVE_RDMA
	struct rmig_rd_rail_info info[RD_RAILS_MAX];
	int n = rmig_rd_rails_info(ops, xp, info, RD_RAILS_MAX);

	for (int k = 0; k < n && (unsigned int)k < max; k++) {
		memset(&out[k], 0, sizeof(out[k]));
		memcpy(out[k].device, info[k].device, sizeof(out[k].device));
		memcpy(out[k].addr, info[k].addr, sizeof(out[k].addr));
		out[k].device[sizeof(out[k].device) - 1] = 0;
		out[k].addr[sizeof(out[k].addr) - 1] = 0;
		out[k].numa_node = info[k].numa_node;
		out[k].channels = info[k].channels;
		out[k].threads_on_node = info[k].threads_on_node;
		out[k].buffers_on_node = info[k].buffers_on_node;
		out[k].bytes = info[k].bytes;
		out[k].local_pages = info[k].local_pages;
		out[k].remote_pages = info[k].remote_pages;
	}
	return n;
#else
	return 0;
#endif
}

int rmig_src_get_rails(struct rmig_src *src, struct rmig_rail_stats *rails, unsigned int max)
{
	if (!src || (!rails && max))
		return -EINVAL;
	return src->xp ? rails_get(src->xops, src->xp, rails, max) : 0;
}

int rmig_dst_get_rails(struct rmig_dst *dst, struct rmig_rail_stats *rails, unsigned int max)
{
	if (!dst || (!rails && max))
		return -EINVAL;
	return dst->xp ? rails_get(dst->xops, dst->xp, rails, max) : 0;
}
