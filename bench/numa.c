// SPDX-License-Identifier: MIT
/*
 * rmig-bench's NUMA options: --numa (the library's &rmig_opts.numa and
 * rail nodes) and --ram-nodes (generated RAM bound, one batch or @SIZE at a
 * time, to the nodes given in turn, so that a run has RAM on each node and
 * the library's steering has something to steer).
 */
#include <errno.h>
#include <linux/mempolicy.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bench.h"

#define NODES_MAX 128

/* "N,M,..." (each -1..NODES_MAX-1 when @none_ok, else 0..), at most @max: count or -1 */
static int parse_nodes(const char *s, bool none_ok, int *out, unsigned int max)
{
	const char *p = s;
	unsigned int n = 0;

	while (*p) {
		char *end;
		long v;

		errno = 0;
		v = strtol(p, &end, 10);
		if (end == p || errno || v < (none_ok ? -1 : 0) || v >= NODES_MAX ||
		    (*end && *end != ',') || n == max)
			return -1;
		out[n++] = (int)v;
		p = *end ? end + 1 : end;
		if (*end && !*p)
			return -1; /* a trailing comma */
	}
	return n ? (int)n : -1;
}

int bench_parse_numa(const char *arg, struct rmig_opts *o, char *err, size_t errlen)
{
	int nodes[RMIG_MAX_RAILS + 1], n;

	o->numa_rails = 0;
	memset(o->numa_node, 0, sizeof(o->numa_node));
	if (!strcmp(arg, "auto")) {
		o->numa = RMIG_NUMA_AUTO;
		return 0;
	}
	if (!strcmp(arg, "off")) {
		o->numa = RMIG_NUMA_OFF;
		return 0;
	}
	if (!strcmp(arg, "place")) {
		o->numa = RMIG_NUMA_PLACE;
		return 0;
	}
	n = parse_nodes(arg, true, nodes, RMIG_MAX_RAILS + 1);
	if (n > RMIG_MAX_RAILS) {
		snprintf(err, errlen, "--numa: '%s' names more than %d rails", arg, RMIG_MAX_RAILS);
		return -EINVAL;
	}
	if (n < 0) {
		snprintf(err, errlen,
			 "--numa: '%s' is not off, auto, place or one NUMA node per rail "
			 "(N,M,...; each -1 for none or 0 to %d)",
			 arg, NODES_MAX - 1);
		return -EINVAL;
	}
	o->numa = RMIG_NUMA_AUTO;
	o->numa_rails = (uint32_t)n;
	for (int k = 0; k < n; k++)
		o->numa_node[k] = (int8_t)nodes[k];
	return 0;
}

/* --ram-nodes */
static int ram_nodes[NODES_MAX];
static unsigned int ram_nnodes;
static uint64_t ram_stripe, ram_stripe_given;

/* "SIZE" with K, M or G (binary), a non-zero multiple of 4 KiB: bytes, or 0 */
static uint64_t parse_stripe(const char *s)
{
	char *end;
	unsigned long long v;
	unsigned int shift = 0;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (end == s || errno)
		return 0;
	if (*end == 'K' || *end == 'k')
		shift = 10;
	else if (*end == 'M' || *end == 'm')
		shift = 20;
	else if (*end == 'G' || *end == 'g')
		shift = 30;
	if ((shift && end[1]) || (!shift && *end) || v > (UINT64_MAX >> 30))
		return 0;
	v <<= shift;
	return v && !(v % 4096) ? v : 0;
}

int bench_parse_ram_nodes(const char *arg, char *err, size_t errlen)
{
	char list[256], path[64], *at;
	int n;

	snprintf(list, sizeof(list), "%s", arg);
	at = strchr(list, '@');
	if (at) {
		*at = 0;
		ram_stripe_given = parse_stripe(at + 1);
		if (!ram_stripe_given) {
			snprintf(err, errlen, "--ram-nodes: '%s' is not a stripe size (a multiple "
				 "of 4K, suffixes K, M, G)", at + 1);
			return -EINVAL;
		}
	}
	n = parse_nodes(list, false, ram_nodes, NODES_MAX);
	if (n < 0) {
		snprintf(err, errlen, "--ram-nodes: '%s' is not a list of NUMA nodes N,M,...[@SIZE]",
			 arg);
		return -EINVAL;
	}
	for (int i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "/sys/devices/system/node/node%d", ram_nodes[i]);
		if (access(path, F_OK)) {
			snprintf(err, errlen, "--ram-nodes: this host has no NUMA node %d (%s)",
				 ram_nodes[i], path);
			return -EINVAL;
		}
	}
	ram_nnodes = (unsigned int)n;
	return 0;
}

void bench_ram_stripe(uint64_t bytes)
{
	uint64_t pg = (uint64_t)sysconf(_SC_PAGESIZE);

	ram_stripe = ram_stripe_given ? ram_stripe_given : (bytes + pg - 1) / pg * pg;
}

bool region_nodes_bound(void)
{
	return ram_nnodes > 0;
}

/*
 * Bound before any page exists: a page faulted in earlier (MAP_POPULATE, a
 * transparent huge page across stripes) would stay where it was.
 */
int region_bind_nodes(void *base, uint64_t size, bool populate, char *err, size_t errlen)
{
	uint64_t stripe = ram_stripe ? ram_stripe : 2u << 20;
	uint64_t pg = (uint64_t)sysconf(_SC_PAGESIZE);

	for (uint64_t off = 0, i = 0; ram_nnodes && off < size; off += stripe, i++) {
		unsigned long mask[NODES_MAX / (8 * sizeof(unsigned long))] = { 0 };
		int node = ram_nodes[i % ram_nnodes];
		uint64_t len = size - off < stripe ? size - off : stripe;

		mask[node / (8 * sizeof(unsigned long))] |= 1ul << (node % (8 * sizeof(unsigned long)));
		if (syscall(SYS_mbind, (char *)base + off, len, MPOL_BIND, mask, NODES_MAX + 1,
			    MPOL_MF_MOVE)) {
			int e = errno;

			snprintf(err, errlen, "--ram-nodes: mbind of %llu bytes at %llu to node %d: %s",
				 (unsigned long long)len, (unsigned long long)off, node, strerror(e));
			return -e;
		}
	}
	for (uint64_t off = 0; ram_nnodes && populate && off < size; off += pg)
		((volatile uint8_t *)base)[off] = 0;
	return 0;
}
