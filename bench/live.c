/* SPDX-License-Identifier: MIT */
/*
 * rmig-bench --live: a live migration of the region while a workload keeps
 * rewriting it (rmig/live.h), source and destination in this process; with
 * --connect or --listen, one side per process (live_peer.c).
 *
 * Timeline: fill the region, start the destination thread, connect, start
 * the workload, rmig_live_run() (rounds, then stop_vcpus = stop the
 * workload, switchover, finish). The workload is stopped at the end, so the
 * source region is final: the destination must equal it byte for byte.
 *
 * Downtime is reported twice: the engine's (stop_vcpus called to the
 * destination's confirmation arriving at the source) and the destination's
 * (stop_vcpus called to rmig_dst_finish() returning on its thread, when a
 * VMM would start the guest there).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "live_bench.h"

struct live_dst {
	struct rmig_dst *dst;
	pthread_t thread;
	int accept_ret, finish_ret;
	double t_finish; /* now_s() when rmig_dst_finish() returned */
	struct vdev_dst vdev;
	bool has_vdev;
	char error[512];
	/* --postcopy: the destination's "vCPU" reads pages while they are pulled */
	bool postcopy;
	const uint8_t *src_ram; /* final once postcopy starts: the source's vCPUs stopped */
	uint8_t *dst_ram;
	uint64_t npages;
	uint32_t page_size;
	uint64_t seed;
	uint64_t touches, touch_bad;
	_Atomic bool vcpu_stop; /* the migration ended (failed) */
	struct rmig_dst_postcopy_stats pcs;
};

/* Random reads, each checked against the source's final page, until every page is in. */
static void *live_dst_vcpu(void *arg)
{
	struct live_dst *ld = arg;
	uint64_t x = ld->seed * 0x9e3779b97f4a7c15ull | 1;
	struct rmig_dst_postcopy_stats st = { .size = sizeof(st) };

	do {
		for (int i = 0; i < 64; i++) {
			uint64_t pg;

			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			pg = x % ld->npages;
			if (memcmp(ld->dst_ram + pg * ld->page_size, ld->src_ram + pg * ld->page_size,
				   ld->page_size))
				ld->touch_bad++;
			ld->touches++;
		}
		rmig_dst_postcopy_stats(ld->dst, &st);
	} while (!st.done_ns && !atomic_load(&ld->vcpu_stop));
	return NULL;
}

static int live_dev_cb(void *arg, const char *idstr, uint32_t instance, uint64_t seq,
		       const void *data, size_t len)
{
	struct live_dst *ld = arg;

	(void)seq;
	if (ld->has_vdev && vdev_dst_feed(&ld->vdev, idstr, instance, data, len) < 0)
		return -1;
	return 0;
}

static void *live_dst_main(void *arg)
{
	struct live_dst *ld = arg;

	pthread_t vcpu;
	bool vcpu_started = false;
	int ret;

	ld->accept_ret = rmig_dst_accept(ld->dst);
	ret = ld->accept_ret;
	while (ld->postcopy && !ret) {
		ret = rmig_dst_wait_sync(ld->dst, NULL);
		if (ret == RMIG_DST_POSTCOPY) {
			ld->t_finish = now_s(); /* the destination runs from here */
			vcpu_started = !pthread_create(&vcpu, NULL, live_dst_vcpu, ld);
			ret = 0;
		}
	}
	ld->finish_ret = ret < 0 ? ret : rmig_dst_finish(ld->dst);
	atomic_store(&ld->vcpu_stop, true);
	if (vcpu_started)
		pthread_join(vcpu, NULL);
	if (!ld->t_finish)
		ld->t_finish = now_s();
	ld->pcs.size = sizeof(ld->pcs);
	rmig_dst_postcopy_stats(ld->dst, &ld->pcs);
	snprintf(ld->error, sizeof(ld->error), "%s", rmig_dst_error(ld->dst));
	return NULL;
}

int live_stop(void *arg)
{
	struct live_src *ls = arg;
	struct rmig_live_stats st = { .size = sizeof(st) };
	int ret;

	ls->t_stop = now_s();
	rmig_live_get_stats(ls->live, &st);
	ls->acks_at_stop = st.acks_received;
	ret = wl_stop(ls->wl);
	if (!ret && ls->view)
		live_view_switchover(ls->view);
	return ret;
}

static const char *const decisions[] = { "continue", "switchover", "force", "fail" };

void live_round(void *arg, const struct rmig_live_round *r)
{
	struct live_src *ls = arg;

	if (ls->view)
		live_view_round(ls->view, r);
	if (!ls->verbose)
		return;
	fprintf(stderr,
		"rmig-bench: round %u: %.1f ms, %.1f MB, %llu pages, dev %.1f MB, "
		"left %.1f MB at %.2f GB/s -> %.2f ms expected, acks missing %u: %s\n",
		r->round, (double)r->ns / 1e6, (double)r->bytes / 1e6,
		(unsigned long long)r->ram_pages, (double)r->dev_bytes / 1e6,
		(double)r->remaining_bytes / 1e6, (double)r->bandwidth_bps / 1e9,
		r->expected_downtime_ns == UINT64_MAX ? -1.0
						      : (double)r->expected_downtime_ns / 1e6,
		r->acks_outstanding, r->decision < 4 ? decisions[r->decision] : "?");
}

const char *live_xport(const struct bench_cfg *cfg)
{
	if (cfg->transport == XPORT_RDMA)
		return "rdma";
	return cfg->transport == XPORT_NULL ? "null" : "tcp";
}

double live_ms(uint64_t ns)
{
	return ns == UINT64_MAX ? -1.0 : (double)ns / 1e6;
}

static void live_print_json(const struct bench_cfg *cfg, const struct live_result *r)
{
	const struct rmig_live_stats *s = &r->st;
	const struct bench_live *l = &cfg->live;

	/* the last of the JSON lines (live_view.c), named as QEMU's final status */
	printf("{\"event\":\"%s\",\"status\":\"%s\",", r->error[0] ? "failed" : "completed",
	       r->error[0] ? "failed" : "completed");
	printf("\"mode\":\"live\",\"role\":\"%s\",\"transport\":\"%s\",\"channels\":%u,",
	       r->role, live_xport(cfg), cfg->opts.channels);
	printf("\"bytes\":%" PRIu64 ",\"page_size\":%u,", cfg->size, cfg->page_size);
	printf("\"dirty_rate_target\":%" PRIu64 ",\"pattern\":\"%s\",\"vcpus\":%u,",
	       l->dirty_rate, wl_pattern_name((enum wl_pattern)l->pattern), l->threads);
	printf("\"downtime_limit_ms\":%u,\"max_rounds\":%u,", l->downtime_limit_ms,
	       l->max_rounds);
	printf("\"fail_on_max_rounds\":%s,\"legacy_sync\":%s,",
	       l->fail_on_max_rounds ? "true" : "false", l->legacy_sync ? "true" : "false");
	printf("\"rounds\":%u,\"total_s\":%.6f,\"downtime_ms\":%.3f,", s->rounds,
	       (double)s->total_ns / 1e9, live_ms(s->downtime_ns));
	if (r->dst_downtime_s >= 0)
		printf("\"dst_downtime_ms\":%.3f,", r->dst_downtime_s * 1e3);
	else
		printf("\"dst_downtime_ms\":null,");
	printf("\"expected_downtime_ms\":%.3f,\"bandwidth_bps\":%" PRIu64 ",\"forced\":%s,",
	       live_ms(s->expected_downtime_ns), s->bandwidth_bps, s->forced ? "true" : "false");
	printf("\"round_bytes\":[");
	for (uint32_t i = 0; i < s->round_bytes_count; i++)
		printf("%s%" PRIu64, i ? "," : "", s->round_bytes[i]);
	printf("],\"switchover_bytes\":%" PRIu64 ",", s->switchover_bytes);
	printf("\"dirty_rate_bps\":%" PRIu64 ",\"workload_bps\":%.0f,", s->dirty_rate_bps,
	       r->wl_rate);
	printf("\"pages_sent\":%" PRIu64 ",\"pages_unique\":%" PRIu64 ",", s->pages_sent,
	       s->pages_unique);
	printf("\"pages_resent\":%" PRIu64 ",\"dev_bytes\":%" PRIu64 ",", s->pages_resent,
	       s->dev_bytes);
	printf("\"acks\":%u,\"postcopy_pages\":%" PRIu64 ",", s->acks_received,
	       s->postcopy_pages);
	if (r->manifest_ms >= 0)
		printf("\"manifest_ms\":%.3f,", r->manifest_ms);
	if (l->postcopy && r->have_pc)
		printf("\"postcopy_faults\":%" PRIu64 ",\"postcopy_uffd\":%s,\"postcopy_pull\":\"%s\","
		       "\"postcopy_pulls\":%" PRIu64 ",\"postcopy_ms\":%.3f,"
		       "\"postcopy_vcpu_reads\":%" PRIu64 ",",
		       r->pc.faults, r->pc.uffd ? "true" : "false",
		       r->pc.by_read ? "read" : "request", r->pc.pulls,
		       r->pc.done_ns ? (double)(r->pc.done_ns - r->pc.start_ns) / 1e6 : -1.0,
		       r->pc_touches);
	printf("\"verified\":%s,\"error\":",
	       r->verified < 0 ? "null" : r->verified ? "true" : "false");
	if (!r->error[0]) {
		printf("null}\n");
		return;
	}
	putchar('"');
	for (const char *p = r->error; *p; p++) {
		if (*p == '"' || *p == '\\')
			printf("\\%c", *p);
		else if ((unsigned char)*p >= 0x20)
			putchar(*p);
	}
	printf("\"}\n");
}

#define LIVE_RULE                                                                          \
	"------------------------------------------------------------------------------------" \
	"-----"

static void live_print_table(const struct bench_cfg *cfg, const struct live_result *r,
			     const char *ver)
{
	const struct rmig_live_stats *s = &r->st;
	const struct bench_live *l = &cfg->live;

	printf("%s\n", LIVE_RULE);
	printf(" rmig-bench --live  role: %s  transport: %s  channels: %u  size: %" PRIu64, r->role,
	       live_xport(cfg), cfg->opts.channels, cfg->size);
	printf("  dirty: %.1f MB/s %s  limit: %u ms  max rounds: %u%s\n",
	       (double)l->dirty_rate / 1e6, wl_pattern_name((enum wl_pattern)l->pattern),
	       l->downtime_limit_ms, l->max_rounds, l->legacy_sync ? "  legacy sync" : "");
	printf("%s\n", LIVE_RULE);
	printf(" %-7s %-9s %-12s %-9s %-12s %-7s %-10s %-10s %-9s %-8s %s\n", "#rounds",
	       "total s", "downtime ms", "dst ms", "expected ms", "forced", "dirty MB/s",
	       "pages sent", "resent", "postcopy", "verified");
	printf(" %-7u %-9.4f %-12.2f ", s->rounds, (double)s->total_ns / 1e9,
	       live_ms(s->downtime_ns));
	if (r->dst_downtime_s >= 0)
		printf("%-9.2f ", r->dst_downtime_s * 1e3);
	else
		printf("%-9s ", "n/a");
	printf("%-12.2f %-7s %-10.1f ", live_ms(s->expected_downtime_ns), s->forced ? "yes" : "no",
	       (double)s->dirty_rate_bps / 1e6);
	printf("%-10" PRIu64 " %-9" PRIu64 " %-8" PRIu64 " %s\n", s->pages_sent, s->pages_resent,
	       s->postcopy_pages, ver);
	printf(" MB per round:");
	for (uint32_t i = 0; i < s->round_bytes_count; i++)
		printf(" %.1f", (double)s->round_bytes[i] / 1e6);
	if (s->rounds > s->round_bytes_count)
		printf(" ... (%u more)", s->rounds - s->round_bytes_count);
	printf("; switchover %.2f MB\n", (double)s->switchover_bytes / 1e6);
	printf(" workload wrote %.1f MB/s (%" PRIu64 " pages); bandwidth estimate %.2f GB/s",
	       r->wl_rate / 1e6, r->wl_writes, (double)s->bandwidth_bps / 1e9);
	if (s->acks_required)
		printf("; switchover acks %u/%u", s->acks_received, s->acks_required);
	if (r->manifest_ms >= 0)
		printf("\n manifest (digests of the final RAM) built in %.2f ms of the downtime",
		       r->manifest_ms);
	if (l->postcopy && !r->have_pc)
		printf("\n postcopy pages pulled: %" PRIu64 " (the destination reports the rest)",
		       s->postcopy_pages);
	if (l->postcopy && r->have_pc)
		printf("\n postcopy pages pulled: %" PRIu64 " (of %" PRIu64 " missing) in %.2f ms"
		       " by %" PRIu64 " %s; faults %" PRIu64 " (%s); destination vCPU reads"
		       " checked %" PRIu64,
		       s->postcopy_pages, r->pc.missing,
		       r->pc.done_ns ? (double)(r->pc.done_ns - r->pc.start_ns) / 1e6 : -1.0,
		       r->pc.pulls, r->pc.by_read ? "reads" : "requests",
		       r->pc.faults, r->pc.uffd ? "userfaultfd" : "degraded: pulled before running",
		       r->pc_touches);
	printf("\n%s\n", LIVE_RULE);
}

void live_print(const struct bench_cfg *cfg, const struct live_result *r)
{
	const struct rmig_live_stats *s = &r->st;
	const char *ver = r->verified < 0 ? (cfg->transport == XPORT_NULL ? "n/a" : "see dst")
					  : r->verified ? "yes" : "NO";

	if (cfg->json)
		live_print_json(cfg, r);
	else if (cfg->quiet)
		printf("live %s %s %uch %" PRIu64 " B rounds %u total %.4f s downtime %.2f ms%s"
		       " verified %s\n",
		       r->role, live_xport(cfg), cfg->opts.channels, cfg->size, s->rounds,
		       (double)s->total_ns / 1e9, live_ms(s->downtime_ns),
		       s->forced ? " (forced)" : "",
		       ver);
	else
		live_print_table(cfg, r, ver);
	fflush(stdout);
	if (r->error[0])
		fprintf(stderr, "rmig-bench: live %s: %s\n", r->role, r->error);
}

void live_err(struct live_result *r, const char *what, const char *msg, int ret)
{
	if (r->error[0])
		return;
	snprintf(r->error, sizeof(r->error), "%s: %s", what, msg && msg[0] ? msg : strerror(-ret));
}

static void live_uri(char *buf, size_t len, const struct bench_cfg *cfg, int port)
{
	bool v6 = strchr(cfg->host, ':') && cfg->host[0] != '[';

	if (cfg->transport == XPORT_NULL)
		snprintf(buf, len, "null:");
	else
		snprintf(buf, len, "%s:%s%s%s:%d", live_xport(cfg), v6 ? "[" : "", cfg->host,
			 v6 ? "]" : "", port);
}

void live_opts_from_cfg(const struct bench_cfg *cfg, struct rmig_live_opts *lo)
{
	rmig_live_opts_init(lo);
	lo->downtime_limit_ms = cfg->live.downtime_limit_ms;
	lo->max_rounds = cfg->live.max_rounds;
	if (cfg->live.fail_on_max_rounds)
		lo->flags |= RMIG_LIVE_FAIL_ON_MAX_ROUNDS;
	if (cfg->live.legacy_sync)
		lo->flags |= RMIG_LIVE_SYNC_EACH_SECTION;
	if (cfg->live.postcopy) {
		lo->flags |= RMIG_LIVE_POSTCOPY;
		lo->postcopy_after_rounds = cfg->live.postcopy_after;
	}
}

int live_add_vdev(const struct bench_cfg *cfg, struct rmig_live *live, struct vdev_src *vdev)
{
	vdev->initial = cfg->live.dev_size;
	vdev->grow = cfg->live.dev_size / 64;
	vdev->switchover_ack = cfg->live.dev_ack;
	return vdev_register(live, vdev);
}

int live_start_workload(const struct bench_cfg *cfg, struct live_src *ls,
			const struct region *reg, _Atomic uint64_t *touched)
{
	struct wl_cfg wc = {
		.base = reg->base,
		.size = reg->size,
		.page_size = reg->page_size,
		.block = 0,
		.rate = cfg->live.dirty_rate,
		.pattern = (enum wl_pattern)cfg->live.pattern,
		.threads = cfg->live.threads,
		.seed = cfg->seed,
		.touched = touched,
	};

	return wl_start(&wc, ls->live, &ls->wl);
}

void live_collect(struct live_src *ls, struct live_result *res, uint32_t page_size)
{
	wl_stop(ls->wl); /* also when the run failed before the switchover */
	res->st.size = sizeof(res->st);
	rmig_live_get_stats(ls->live, &res->st);
	res->wl_writes = wl_writes(ls->wl);
	res->wl_rate = (double)res->wl_writes * page_size / wl_seconds(ls->wl);
}

static int run_live_inproc(const struct bench_cfg *cfg)
{
	struct region sreg = { 0 }, dreg = { 0 };
	struct live_dst ld = { 0 };
	struct live_view view;
	struct live_src ls = { .verbose = cfg->live.verbose, .view = &view };
	struct live_result res = { .role = "in-process", .dst_downtime_s = -1, .verified = -1,
				   .manifest_ms = -1 };
	struct vdev_src vdev = { .idstr = LIVE_DEV_ID, .seed = cfg->seed };
	struct rmig_block_desc bd = { .name = BENCH_BLOCK, .page_size = cfg->page_size };
	struct rmig_live_hooks hooks = {
		.size = sizeof(hooks),
		.arg = &ls,
		.stop_vcpus = live_stop,
		.round_done = live_round,
	};
	struct rmig_live_opts lo;
	struct gen_params gp;
	struct rmig_src *src = NULL;
	bool null = cfg->transport == XPORT_NULL, dst_started = false;
	char uri[512], err[256];
	int ret, port = 0;

	ret = region_map_anon(&sreg, cfg->size, cfg->page_size, true, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "rmig-bench: %s\n", err);
		return 1;
	}
	live_view_init(&view, cfg, cfg->size, cfg->page_size);
	gen_params_init(&gp, cfg);
	gen_fill_region(&gp, &sreg);
	bd.host = sreg.base;
	bd.length = sreg.size;

	if (!null) {
		struct rmig_block_desc dd = bd;
		struct rmig_opts o = cfg->opts;

		ret = region_map_anon(&dreg, cfg->size, cfg->page_size, true, err, sizeof(err));
		if (ret) {
			fprintf(stderr, "rmig-bench: destination: %s\n", err);
			goto out;
		}
		dd.host = dreg.base;
		ret = rmig_dst_create(&o, &ld.dst);
		if (ret) {
			live_err(&res, "rmig_dst_create", NULL, ret);
			goto out;
		}
		if (cfg->live.dev_size) {
			vdev_dst_init(&ld.vdev, LIVE_DEV_ID, 0, cfg->seed, ld.dst,
				      cfg->live.dev_ack);
			ld.has_vdev = true;
		}
		if ((ret = rmig_dst_add_block(ld.dst, &dd)) < 0 ||
		    (ret = rmig_dst_set_device_state_cb(ld.dst, live_dev_cb, &ld)) ||
		    (live_uri(uri, sizeof(uri), cfg, 0), ret = rmig_dst_listen(ld.dst, uri))) {
			live_err(&res, "destination", rmig_dst_error(ld.dst), ret);
			goto out;
		}
		if (cfg->live.postcopy) {
			ld.postcopy = true;
			ld.src_ram = sreg.base;
			ld.dst_ram = dreg.base;
			ld.npages = sreg.size / sreg.page_size;
			ld.page_size = sreg.page_size;
			ld.seed = cfg->seed + 7;
			ret = rmig_dst_postcopy_enable(ld.dst);
			if (ret) {
				live_err(&res, "rmig_dst_postcopy_enable", NULL, ret);
				goto out;
			}
		}
		port = rmig_dst_port(ld.dst);
		ret = -pthread_create(&ld.thread, NULL, live_dst_main, &ld);
		if (ret) {
			live_err(&res, "destination thread", NULL, ret);
			goto out;
		}
		dst_started = true;
	}

	live_uri(uri, sizeof(uri), cfg, port);
	ret = rmig_src_create(&cfg->opts, &src);
	if (ret) {
		live_err(&res, "rmig_src_create", NULL, ret);
		goto out;
	}
	if ((ret = rmig_src_add_block(src, &bd)) < 0 || (ret = rmig_src_connect(src, uri))) {
		live_err(&res, "connect", rmig_src_error(src), ret);
		goto out;
	}
	live_opts_from_cfg(cfg, &lo);
	ret = rmig_live_create(src, &lo, &hooks, &ls.live);
	if (ret) {
		live_err(&res, "rmig_live_create", NULL, ret);
		goto out;
	}
	if (cfg->live.dev_size && (ret = live_add_vdev(cfg, ls.live, &vdev))) {
		live_err(&res, "device", NULL, ret);
		goto out;
	}
	ret = live_start_workload(cfg, &ls, &sreg, NULL);
	if (ret) {
		live_err(&res, "workload", NULL, ret);
		goto out;
	}

	live_view_start(&view, ls.live, src, null ? NULL : ld.dst);
	ret = rmig_live_run(ls.live);
	if (ret)
		live_err(&res, "live migration", rmig_live_error(ls.live), ret);
	live_collect(&ls, &res, sreg.page_size);

out:
	if (dst_started) {
		if (ret)
			rmig_dst_cancel(ld.dst);
		pthread_join(ld.thread, NULL);
		if (!ret && ld.finish_ret) {
			ret = ld.finish_ret;
			live_err(&res, "destination", ld.error, ret);
		}
		if (!ret && ls.t_stop > 0)
			res.dst_downtime_s = ld.t_finish - ls.t_stop;
	}
	if (!ret && !null) {
		uint64_t n = sreg.size / sreg.page_size, bad = 0, first = 0;

		for (uint64_t p = 0; p < n; p++)
			if (memcmp(sreg.base + p * sreg.page_size, dreg.base + p * sreg.page_size,
				   sreg.page_size) && !bad++)
				first = p;
		res.verified = !bad && !ld.touch_bad;
		if (!bad && ld.touch_bad)
			snprintf(res.error, sizeof(res.error),
				 "%" PRIu64 " of %" PRIu64 " postcopy vCPU reads saw other data than the source's",
				 ld.touch_bad, ld.touches);
		if (bad)
			snprintf(res.error, sizeof(res.error),
				 "%" PRIu64 " destination pages differ from the source's final"
				 " state; first: page %" PRIu64,
				 bad, first);
		if (!bad && ld.has_vdev && (!ld.vdev.complete || ld.vdev.error[0] ||
					    (cfg->live.dev_ack && ls.acks_at_stop != 1))) {
			res.verified = 0;
			snprintf(res.error, sizeof(res.error), "device: %s",
				 ld.vdev.error[0] ? ld.vdev.error
				 : !ld.vdev.complete ? "incomplete on the destination"
						     : "switchover before its ack");
		}
	} else if (ret) {
		res.verified = 0;
	}
	res.have_pc = true;
	res.pc = ld.pcs;
	res.pc_touches = ld.touches;
	live_view_stop(&view, res.st.postcopy_pages);
	live_print(cfg, &res);
	wl_destroy(ls.wl);
	rmig_live_destroy(ls.live);
	rmig_src_destroy(src);
	rmig_dst_destroy(ld.dst);
	if (ld.has_vdev)
		vdev_dst_destroy(&ld.vdev);
	vdev_src_free(&vdev);
	region_unmap(&dreg);
	region_unmap(&sreg);
	return ret || res.verified == 0 ? 1 : 0;
}

int run_live(const struct bench_cfg *cfg)
{
	switch (cfg->role) {
	case ROLE_SOURCE:
		return run_live_source(cfg);
	case ROLE_DESTINATION:
		return run_live_destination(cfg);
	case ROLE_INPROC:
	default:
		return run_live_inproc(cfg);
	}
}
