/* SPDX-License-Identifier: MIT */
/*
 * rmig-bench --live internals shared by the in-process run (live.c) and the
 * two-process runs (live_peer.c): the engine's hooks, the guest stand-ins,
 * and the source's report.
 */
#ifndef RMIG_BENCH_LIVE_H
#define RMIG_BENCH_LIVE_H

#include <pthread.h>

#include "bench.h"
#include "rmig/live.h"
#include "vdev.h"
#include "workload.h"

#define LIVE_DEV_ID "vdev0"

enum live_view_phase { VIEW_ROUNDS, VIEW_SWITCHOVER, VIEW_POSTCOPY };

/* live_view.c: the rounds drawn as they happen (text lines, a status line, JSON lines). */
struct live_view {
	bool json, text, status, postcopy; /* what to draw */
	uint64_t total;			   /* bytes to migrate */
	uint32_t page_size;
	struct rmig_live *live;
	struct rmig_src *src;
	struct rmig_dst *dst; /* in-process: the destination's postcopy figures */
	double t0;
	pthread_t thread; /* the ticker: postcopy progress, the status line */
	bool running;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	/* Must hold lock */
	bool stop, drawn, header_done, pc_start_shown, pc_done_shown;
	enum live_view_phase phase;
	uint64_t remaining, pc_pulled_shown;
	struct rmig_dst_postcopy_stats pc;
};

void live_view_init(struct live_view *v, const struct bench_cfg *cfg, uint64_t total_bytes,
		    uint32_t page_size);
/* Just before rmig_live_run(); @dst NULL unless in-process. */
void live_view_start(struct live_view *v, struct rmig_live *live, struct rmig_src *src,
		     struct rmig_dst *dst);
void live_view_round(struct live_view *v, const struct rmig_live_round *r);
void live_view_switchover(struct live_view *v);
/* After the run (in-process: after the destination finished), before the summary. */
void live_view_stop(struct live_view *v, uint64_t src_postcopy_pages);

/* The source's side of the engine's hooks (struct rmig_live_hooks.arg). */
struct live_src {
	struct workload *wl;
	double t_stop; /* now_s() when stop_vcpus was called */
	uint32_t acks_at_stop;
	struct rmig_live *live;
	bool verbose;
	struct live_view *view; /* NULL: nothing drawn */
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
