/* SPDX-License-Identifier: MIT */
/*
 * Multi-rail rdma (rails.c): "rdma:HOST1,HOST2,...:PORT", one rdma xport per
 * rail behind one ops table. Above rdma.c: it drives each rail through
 * rmig_rdma_ops and reads the rails' private structs only for statistics and
 * the listeners' event channels.
 */
#ifndef RMIG_TRANSPORT_RDMA_RAILS_H
#define RMIG_TRANSPORT_RDMA_RAILS_H

#include "rmig-config.h"
#include "core/xport.h"

/* Most rails of one migration. */
#define RD_RAILS_MAX 8u

extern const struct rmig_xport_ops rmig_rdma_rails_ops;

/* What one rail carried, for the statistics. */
struct rmig_rd_rail_info {
	char device[64];  /* RDMA device, "" before it is known */
	char addr[128];	  /* the rail's address as given (HOST:PORT) */
	int numa_node;	  /* the device's NUMA node, -1 if it has none */
	unsigned int channels; /* channel conns opened on it (source) or accepted (destination) */
	unsigned int threads_on_node; /* of them, channel threads last seen on numa_node's CPUs */
	unsigned int buffers_on_node; /* ... whose stream buffers are in numa_node's memory */
	uint64_t bytes;	  /* bytes this side moved on it: WRITEs and stream, both ways */
	uint64_t local_pages, remote_pages; /* source: data pages from memory on / off its node */
};

/*
 * The rails of @xp, an xport of @ops (rmig_rdma_ops: one rail;
 * rmig_rdma_rails_ops: each; any other transport: none), into @out (room
 * for @max). Returns how many rails there are (may exceed @max).
 */
int rmig_rd_rails_info(const struct rmig_xport_ops *ops, struct rmig_xport *xp,
		       struct rmig_rd_rail_info *out, unsigned int max);

#endif /* RMIG_TRANSPORT_RDMA_RAILS_H */
