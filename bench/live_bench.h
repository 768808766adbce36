/* SPDX-License-Identifier: MIT */
/*
 * rmig-bench --live internals shared by the in-process run (live.c) and the
 * two-process runs (live_peer.c): the engine's hooks, the guest stand-ins,
 * and the source's report.
 */
#ifndef RMIG_BENCH_LIVE_H
#define RMIG_BENCH_LIVE_H

#include "bench.h"
#include "rmig/live.h"
#include "vdev.h"
#include "workload.h"

#define LIVE_DEV_ID "vdev0"

/* The source's side of the engine's hooks (struct rmig_live_hooks.arg). */
struct live_src {
	struct workload *wl;
	double t_stop; /* now_s() when stop_vcpus was called */
	uint32_t acks_at_stop;
	struct rmig_live *live;
	bool verbose;
};

/* What the source (or the in-process run) reports. */
struct live_result {
	const char *role; /* "in-process" or "source" */
	struct rmig_live_stats st;
	double dst_downtime_s; /* < 0: not measured */
	double wl_rate;	       /* bytes/s the workload wrote */
	uint64_t wl_writes;
	int verified; /* 1, 0, -1 n/a (a lone source: the destination verifies) */
	bool have_pc; /* pc and pc_touches hold the destination's figures */
	struct rmig_dst_postcopy_stats pc;
	uint64_t pc_touches;
	/* two-process source: building the manifest, in the downtime; < 0: none */
	double manifest_ms;
	char error[768];
};

int live_stop(void *arg);
void live_round(void *arg, const struct rmig_live_round *r);
/* The engine's options from the --live flags. */
void live_opts_from_cfg(const struct bench_cfg *cfg, struct rmig_live_opts *lo);
/* --device: register the synthetic device (@vdev's idstr and seed set). */
int live_add_vdev(const struct bench_cfg *cfg, struct rmig_live *live, struct vdev_src *vdev);
/* Start the workload on @reg, marking pages in ls->live (and in @touched if not NULL). */
int live_start_workload(const struct bench_cfg *cfg, struct live_src *ls,
			const struct region *reg, _Atomic uint64_t *touched);
/* After rmig_live_run(): stop the workload (also after a failure) and read the figures. */
void live_collect(struct live_src *ls, struct live_result *res, uint32_t page_size);
void live_err(struct live_result *r, const char *what, const char *msg, int ret);
void live_print(const struct bench_cfg *cfg, const struct live_result *r);
const char *live_xport(const struct bench_cfg *cfg);
double live_ms(uint64_t ns);

/* live_peer.c: --live with --connect / --listen */
int run_live_source(const struct bench_cfg *cfg);
int run_live_destination(const struct bench_cfg *cfg);

#endif
