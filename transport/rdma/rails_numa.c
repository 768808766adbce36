// SPDX-License-Identifier: MIT
/*
 * NUMA placement of the rails (libnuma): each channel's thread, stream
 * buffers and completion queue on the NUMA node of its rail's device.
 *
 * A device's node is its own sysfs numa_node, or (rxe, a software device)
 * that of the netdev /sys/class/infiniband/<dev>/parent names. Placement is
 * on when the host has two nodes or more and the device has one (>= 0);
 * RMIG_RDMA_NUMA=off turns it off, RMIG_RDMA_NUMA=N,M,... gives each rail's
 * node by hand (-1: none); &rmig_opts.numa and numa_node come first, the
 * variable is their fallback. A rail's connections are set up with the calling
 * thread bound to the node and preferring its memory, so what they
 * allocate and first touch (the stream buffers, pinned by ibv_reg_mr; a
 * provider's user-space CQ and QP rings) lands there; a channel's thread
 * binds itself to the node at its first operation. libnuma's calls fail
 * soft: without it, nothing is placed and the figures say so.
 */
#include <errno.h>
#include <numa.h>
#include <numaif.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transport/rdma/rails_priv.h"

/* nodes a rail may be given by hand: &rmig_opts.numa_node is an int8_t */
#define RL_NODES_MAX 128

int rmig_rl_device_node(const char *dev)
{
	char path[256], parent[64] = "";
	int node = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/sys/class/infiniband/%s/device/numa_node", dev);
	f = fopen(path, "r");
	if (!f) {
		snprintf(path, sizeof(path), "/sys/class/infiniband/%s/parent", dev);
		f = fopen(path, "r");
		if (f && fscanf(f, "%63s", parent) != 1)
			parent[0] = 0;
		if (f)
			fclose(f);
		if (!parent[0])
			return -1;
		/* a virtio NIC's own device has no numa_node; its PCI parent does */
		snprintf(path, sizeof(path), "/sys/class/net/%s/device/numa_node", parent);
		f = fopen(path, "r");
		if (!f) {
			snprintf(path, sizeof(path), "/sys/class/net/%s/device/../numa_node",
				 parent);
			f = fopen(path, "r");
		}
		if (!f)
			return -1;
	}
	if (fscanf(f, "%d", &node) != 1)
		node = -1;
	fclose(f);
	return node;
}

/*
 * Rail nodes by hand: &rmig_opts.numa_node, else RMIG_RDMA_NUMA's "N,M,..."
 * (the fallback of the option). 0, or -EINVAL naming what is wrong.
 */
static int nodes_by_hand(struct rl_xport *r, const struct rmig_opts *o, const char *env,
			 struct rmig_msgbuf *err)
{
	const char *p = env, *what = o->numa_rails ? "numa_node" : "RMIG_RDMA_NUMA";
	unsigned int n = o->numa_rails;
	int node[RMIG_MAX_RAILS];

	if (n) {
		for (unsigned int k = 0; k < n; k++)
			node[k] = o->numa_node[k];
	} else {
		while (p && *p) {
			char *end;
			long v = strtol(p, &end, 10);

			if (end == p || v < -1 || v >= RL_NODES_MAX || (*end && *end != ','))
				return rmig_msg(err, -EINVAL,
						"RMIG_RDMA_NUMA='%s': want off, auto, place or rail "
						"nodes N,M,... (-1: none)",
						env);
			if (n == RMIG_MAX_RAILS)
				return rmig_msg(err, -EINVAL, "RMIG_RDMA_NUMA='%s': more than %u rails",
						env, RMIG_MAX_RAILS);
			node[n++] = (int)v;
			p = *end ? end + 1 : NULL;
		}
	}
	if (n != r->nrails)
		return rmig_msg(err, -EINVAL, "%s: %u NUMA nodes given for %u rails (%s)", what, n,
				r->nrails, r->list);
	for (unsigned int k = 0; k < n; k++) {
		if (node[k] > r->max_node || (node[k] >= 0 && !numa_bitmask_isbitset(
							       numa_nodes_ptr, (unsigned int)node[k])))
			return rmig_msg(err, -EINVAL,
					"%s: rail %u (%s) on NUMA node %d, which this host does not "
					"have (nodes 0-%d)",
					what, k, r->rail[k].addr, node[k], r->max_node);
		r->rail[k].node = node[k];
	}
	return 0;
}

/*
 * Everything libnuma is asked is asked here, once, before any channel thread
 * runs: its lookups fill caches without locks, so the channel threads use
 * only the tables made here and plain syscalls.
 */
int rmig_rl_numa_setup(struct rl_xport *r, const struct rmig_opts *o, struct rmig_msgbuf *err)
{
	const char *env = o->numa == RMIG_NUMA_AUTO && !o->numa_rails ? getenv("RMIG_RDMA_NUMA")
								       : NULL;
	bool off = o->numa == RMIG_NUMA_OFF || (env && !strcmp(env, "off"));
	bool by_hand = o->numa_rails ||
		       (env && *env && strcmp(env, "auto") && strcmp(env, "off") &&
			strcmp(env, "place"));
	bool have = numa_available() >= 0;
	int ret;

	r->numa = have && numa_num_configured_nodes() > 1 && !off;
	r->max_node = -1;
	if (have) {
		int n = numa_num_possible_cpus();

		r->cpu_node = n > 0 ? calloc((size_t)n, sizeof(*r->cpu_node)) : NULL;
		if (r->cpu_node) {
			r->ncpus = n;
			for (int c = 0; c < n; c++)
				r->cpu_node[c] = numa_node_of_cpu(c);
		}
		r->max_node = numa_max_node();
	}
	for (unsigned int k = 0; k < r->nrails; k++) {
		struct rd_xport *x = rd_xport_of(r->rail[k].xp);

		r->rail[k].node = x->ctx ? rmig_rl_device_node(ibv_get_device_name(x->ctx->device))
					 : -1;
	}
	if (by_hand && !off) {
		ret = nodes_by_hand(r, o, env, err);
		if (ret)
			return ret;
	}
	for (unsigned int k = 0; k < r->nrails; k++) {
		if (r->numa && r->rail[k].node >= 0) {
			r->rail[k].cpus = numa_allocate_cpumask();
			if (r->rail[k].cpus &&
			    numa_node_to_cpus(r->rail[k].node, r->rail[k].cpus)) {
				numa_free_cpumask(r->rail[k].cpus);
				r->rail[k].cpus = NULL;
			}
		}
	}
	return 0;
}

void rmig_rl_numa_free(struct rl_xport *r)
{
	for (unsigned int k = 0; k < r->nrails; k++)
		if (r->rail[k].cpus)
			numa_free_cpumask(r->rail[k].cpus);
	free(r->cpu_node);
}

/* Run on rail @rail's node's CPUs and prefer its memory: syscalls only. */
static void bind_to(const struct rl_xport *r, unsigned int rail)
{
	const struct bitmask *cpus = r->rail[rail].cpus;
	unsigned long nodes[4] = {0};
	int node = r->rail[rail].node;

	sched_setaffinity(0, numa_bitmask_nbytes((struct bitmask *)cpus),
			  (cpu_set_t *)cpus->maskp);
	if (node < (int)(sizeof(nodes) * 8)) {
		nodes[node / (8 * sizeof(nodes[0]))] = 1ul << (node % (8 * sizeof(nodes[0])));
		set_mempolicy(MPOL_PREFERRED, nodes, sizeof(nodes) * 8);
	}
}

static bool placing(const struct rl_xport *r, unsigned int rail)
{
	return r->numa && r->rail[rail].node >= 0 && r->rail[rail].cpus;
}

int rmig_rl_numa_node(const struct rl_xport *r, unsigned int rail)
{
	return placing(r, rail) ? r->rail[rail].node : -1;
}

void rmig_rl_numa_enter(struct rl_xport *r, unsigned int rail, struct rl_numa_saved *s)
{
	s->on = placing(r, rail);
	if (!s->on)
		return;
	s->cpus = numa_allocate_cpumask();
	s->mode_ok = get_mempolicy(&s->mode, s->nodes, sizeof(s->nodes) * 8, NULL, 0) == 0;
	if (!s->cpus || sched_getaffinity(0, numa_bitmask_nbytes(s->cpus),
					  (cpu_set_t *)s->cpus->maskp)) {
		if (s->cpus)
			numa_free_cpumask(s->cpus);
		s->on = false;
		return;
	}
	bind_to(r, rail);
}

void rmig_rl_numa_leave(struct rl_numa_saved *s)
{
	if (!s->on)
		return;
	sched_setaffinity(0, numa_bitmask_nbytes(s->cpus), (cpu_set_t *)s->cpus->maskp);
	numa_free_cpumask(s->cpus);
	if (s->mode_ok)
		set_mempolicy(s->mode, s->mode == MPOL_DEFAULT ? NULL : s->nodes,
			      sizeof(s->nodes) * 8);
	else
		set_mempolicy(MPOL_DEFAULT, NULL, 0);
}

void rmig_rl_numa_thread(struct rl_xport *r, unsigned int rail)
{
	if (placing(r, rail))
		bind_to(r, rail);
}

int rmig_rl_cpu_node(const struct rl_xport *r)
{
	int cpu = sched_getcpu();

	return cpu < 0 || cpu >= r->ncpus ? -1 : r->cpu_node[cpu];
}

int rmig_rl_mem_node(const void *addr)
{
	int node = -1;

	if (!addr || get_mempolicy(&node, NULL, 0, (void *)addr, MPOL_F_NODE | MPOL_F_ADDR))
		return -1;
	return node;
}
