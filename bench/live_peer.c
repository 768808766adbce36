/* SPDX-License-Identifier: MIT */
/*
 * rmig-bench --live with one side per process: --connect runs the source
 * (region, workload, live engine), --listen the destination.
 *
 * The destination cannot look at the source's RAM, and the source knows its
 * final content only once stop_vcpus has returned. So the source keeps a
 * digest of every page up to date while the workload runs (digest.c: the
 * workload flags each page it wrote, a thread hashes those again) and
 * registers one more device, "rmig-bench", with no pre-copy data: its
 * complete(), called after stop_vcpus, stops that thread, hashes the pages
 * written since its last pass and queues the manifest (a digest per chunk of page digests)
 * as device state, with the rest of the switchover. The destination
 * collects it as run.c's destination does and, once every page is in
 * (after rmig_dst_finish, so after every postcopy pull), checks its whole
 * region against it.
 *
 * With the manifest goes the time stop_vcpus was called on the source's
 * CLOCK_MONOTONIC and the boot it belongs to: a destination on the same
 * host (same boot id) reports the downtime as it saw it, up to the moment
 * it may run (finish returned, or postcopy started).
 */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "live_bench.h"

#define STOP_CLOCK_IDSTR "rmig-bench-clock"
#define STOP_CLOCK_MAGIC 0x43424d52u /* "RMBC" little-endian */
#define BOOT_ID_LEN 40

/* On the wire, little-endian: magic u32, zero u32, boot id (NUL-padded), stop time ns u64. */
struct stop_clock {
	uint32_t magic;
	uint32_t zero;
	char boot_id[BOOT_ID_LEN];
	uint64_t t_stop_ns;
};

/* This boot's id ("" if unknown): CLOCK_MONOTONIC readings compare only within one boot. */
static void boot_id(char *buf)
{
	FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");

	memset(buf, 0, BOOT_ID_LEN);
	if (!f)
		return;
	if (!fgets(buf, BOOT_ID_LEN, f))
		buf[0] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	fclose(f);
}

/* ---- source ---------------------------------------------------------------- */

/* The manifest device: no pre-copy data, the final digests at the switchover. */
struct live_manifest {
	struct page_digests pd;
	struct gen_params gp;
	struct rmig_live *live;
	const struct live_src *ls; /* its t_stop */
	bool built;
	double ms; /* building it (the last hashes, the fold), inside the downtime */
};

static int queue_stop_clock(const struct live_manifest *lm, struct rmig_src *src)
{
	struct stop_clock c = { .magic = htole32(STOP_CLOCK_MAGIC) };

	boot_id(c.boot_id);
	c.t_stop_ns = htole64((uint64_t)(lm->ls->t_stop * 1e9));
	return rmig_src_queue_device_state(src, STOP_CLOCK_IDSTR, 0, &c, sizeof(c));
}

static int manifest_complete(void *arg, struct rmig_src *src)
{
	struct live_manifest *lm = arg;
	struct rmig_live_stats st = { .size = sizeof(st) };
	double t0 = now_s();
	uint8_t *buf = NULL;
	size_t len = 0;
	int ret;

	rmig_live_get_stats(lm->live, &st);
	lm->gp.rounds = st.rounds ? st.rounds : 1;
	/* the workload is stopped (joined): the digests become exact */
	ret = page_digests_manifest(&lm->pd, &lm->gp, &buf, &len);
	lm->ms = (now_s() - t0) * 1e3;
	lm->built = !ret;
	/* queueing waits for a channel that the last pages keep busy anyway */
	if (!ret)
		ret = rmig_src_queue_device_state(src, BENCH_IDSTR, 0, buf, len);
	if (!ret)
		ret = queue_stop_clock(lm, src);
	free(buf);
	return ret;
}

static int source_engine(const struct bench_cfg *cfg, struct rmig_src *src, struct live_src *ls,
			 struct live_manifest *lm, struct vdev_src *vdev, struct live_result *res)
{
	struct rmig_live_hooks hooks = {
		.size = sizeof(hooks),
		.arg = ls,
		.stop_vcpus = live_stop,
		.round_done = live_round,
	};
	struct rmig_live_device mdev = {
		.size = sizeof(mdev),
		.idstr = BENCH_IDSTR,
		.arg = lm,
		.complete = manifest_complete,
	};
	struct rmig_live_opts lo;
	int ret;

	live_opts_from_cfg(cfg, &lo);
	ret = rmig_live_create(src, &lo, &hooks, &ls->live);
	if (ret) {
		live_err(res, "rmig_live_create",
			 ret == -ENOTSUP ? "the destination does not accept postcopy (run it with "
					   "--postcopy too)"
					 : NULL,
			 ret);
		return ret;
	}
	lm->live = ls->live;
	lm->ls = ls;
	/* first, so its complete() runs right after the last pages are queued */
	ret = rmig_live_add_device(ls->live, &mdev);
	if (ret) {
		live_err(res, "manifest device", NULL, ret);
		return ret;
	}
	if (cfg->live.dev_size && (ret = live_add_vdev(cfg, ls->live, vdev))) {
		live_err(res, "device", NULL, ret);
		return ret;
	}
	ret = page_digests_start(&lm->pd);
	if (ret) {
		live_err(res, "digest thread", NULL, ret);
		return ret;
	}
	ret = live_start_workload(cfg, ls, lm->pd.reg, lm->pd.touched);
	if (ret) {
		live_err(res, "workload", NULL, ret);
		return ret;
	}
	if (ls->view)
		live_view_start(ls->view, ls->live, src, NULL);
	ret = rmig_live_run(ls->live);
	if (ret)
		live_err(res, "live migration", rmig_live_error(ls->live), ret);
	live_collect(ls, res, lm->pd.reg->page_size);
	if (!ret && cfg->live.dev_ack && ls->acks_at_stop != 1) {
		ret = -EPROTO;
		live_err(res, "device", "the switchover came before the destination's ack", ret);
	}
	return ret;
}

int run_live_source(const struct bench_cfg *cfg)
{
	struct region reg = { 0 };
	struct live_view view;
	struct live_src ls = { .verbose = cfg->live.verbose, .view = &view };
	struct live_result res = { .role = "source", .dst_downtime_s = -1, .verified = -1,
				   .manifest_ms = -1 };
	struct live_manifest lm = { 0 };
	struct vdev_src vdev = { .idstr = LIVE_DEV_ID, .seed = cfg->seed };
	struct rmig_block_desc bd = { .name = BENCH_BLOCK, .page_size = cfg->page_size };
	struct rmig_src *src = NULL;
	double t0 = 0, cpu0 = 0;
	char uri[512], err[sizeof(res.error)];
	int ret;

	ret = region_map_anon(&reg, cfg->size, cfg->page_size, true, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "rmig-bench: %s\n", err);
		return 1;
	}
	live_view_init(&view, cfg, cfg->size, cfg->page_size);
	gen_params_init(&lm.gp, cfg);
	gen_fill_region(&lm.gp, &reg);
	/* every page's digest, before connecting: not part of any figure */
	ret = page_digests_init(&lm.pd, &reg);
	if (ret) {
		live_err(&res, "page digests", NULL, ret);
		goto out;
	}
	bd.host = reg.base;
	bd.length = reg.size;
	bench_make_uri(uri, sizeof(uri), cfg, cfg->addr, "127.0.0.1");
	ret = bench_src_connect(cfg, &cfg->opts, uri, &bd, &src, &t0, &cpu0, err, sizeof(err));
	if (ret) {
		snprintf(res.error, sizeof(res.error), "%s", err);
		goto out;
	}
	ret = source_engine(cfg, src, &ls, &lm, &vdev, &res);
	if (lm.built)
		res.manifest_ms = lm.ms;
out:
	if (ret)
		res.verified = 0;
	live_view_stop(&view, res.st.postcopy_pages);
	live_print(cfg, &res);
	wl_destroy(ls.wl);
	rmig_live_destroy(ls.live);
	rmig_src_destroy(src);
	vdev_src_free(&vdev);
	page_digests_free(&lm.pd);
	region_unmap(&reg);
	return ret ? 1 : 0;
}

/* ---- destination ------------------------------------------------------------- */

struct peer_dst {
	struct rmig_dst *dst;
	struct region reg;
	struct manifest_rx man;
	struct vdev_dst vdev;
	bool has_vdev;
	char unexpected[RMIG_IDSTR_MAX + 32]; /* device state nobody here expects */
	char boot_id[BOOT_ID_LEN]; /* ours */
	double t_src_stop; /* the source's stop_vcpus, on our clock; 0: unknown (other host) */
	/* --postcopy: a "vCPU" reads whole chunks while pages are pulled */
	struct manifest m;
	_Atomic bool vcpu_stop;
	uint64_t seed;
	uint64_t reads, bad_reads, first_bad;
	double t_accept, t_run, t_finish;
	bool finished; /* rmig_dst_finish() returned 0 */
	struct rmig_dst_postcopy_stats pcs;
	struct rmig_stats st;
	int verified; /* 1, 0, -1 not reached */
	char error[768];
};

static void peer_err(struct peer_dst *pd, const char *what, const char *msg, int ret)
{
	if (pd->error[0])
		return;
	snprintf(pd->error, sizeof(pd->error), "%s: %s", what,
		 msg && msg[0] ? msg : strerror(-ret));
}

/* The source's stop time counts only if its clock is ours: same boot. */
static void peer_stop_clock(struct peer_dst *pd, const void *data, size_t len)
{
	struct stop_clock c;

	if (len != sizeof(c))
		return;
	memcpy(&c, data, sizeof(c));
	if (le32toh(c.magic) != STOP_CLOCK_MAGIC || !pd->boot_id[0] ||
	    strncmp(pd->boot_id, c.boot_id, BOOT_ID_LEN))
		return;
	pd->t_src_stop = (double)le64toh(c.t_stop_ns) / 1e9;
}

static int peer_dev_cb(void *arg, const char *idstr, uint32_t instance, uint64_t seq,
		       const void *data, size_t len)
{
	struct peer_dst *pd = arg;
	int ret = manifest_rx_feed(&pd->man, idstr, seq, data, len);

	if (ret)
		return ret < 0 ? ret : 0;
	if (!strcmp(idstr, STOP_CLOCK_IDSTR)) {
		peer_stop_clock(pd, data, len);
		return 0;
	}
	if (pd->has_vdev) {
		ret = vdev_dst_feed(&pd->vdev, idstr, instance, data, len);
		if (ret)
			return ret < 0 ? ret : 0;
	}
	if (!pd->unexpected[0])
		snprintf(pd->unexpected, sizeof(pd->unexpected), "'%s' instance %u", idstr,
			 instance);
	return -ENOENT;
}

/* Random chunks, each checked against the source's final digest, until every page is in. */
static void *peer_vcpu(void *arg)
{
	struct peer_dst *pd = arg;
	struct rmig_dst_postcopy_stats st = { .size = sizeof(st) };
	uint64_t x = pd->seed * 0x9e3779b97f4a7c15ull | 1;
	uint64_t *scratch = malloc(fold_pages(pd->reg.page_size) * sizeof(*scratch));

	if (!scratch)
		return NULL;
	do {
		uint64_t i;

		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		i = x % pd->m.nchunks;
		if (!manifest_chunk_ok(&pd->m, &pd->reg, i, scratch) && !pd->bad_reads++)
			pd->first_bad = i;
		pd->reads++;
		rmig_dst_postcopy_stats(pd->dst, &st);
	} while (!st.done_ns && !atomic_load(&pd->vcpu_stop));
	free(scratch);
	return NULL;
}

/* The destination "runs" from postcopy start: read RAM if the manifest allows checking it. */
static bool peer_start_vcpu(struct peer_dst *pd, pthread_t *t)
{
	char err[256];

	if (manifest_verify(&pd->man, &pd->reg, false, &pd->m, err, sizeof(err)) ||
	    !(pd->m.flags & MANIFEST_F_PAGE_FOLD) || !pd->m.nchunks)
		return false; /* the check after finish names the problem */
	return !pthread_create(t, NULL, peer_vcpu, pd);
}

/* --postcopy-mark: say the destination runs now (an empty file). */
static void postcopy_mark(const char *path)
{
	FILE *f = path ? fopen(path, "w") : NULL;

	if (path && (!f || fclose(f)))
		fprintf(stderr, "rmig-bench: --postcopy-mark %s: %s\n", path, strerror(errno));
}

/* accept returned: rounds (postcopy: until it starts, then the vCPU), finish. */
static int peer_run(struct peer_dst *pd, bool postcopy, const char *mark)
{
	bool vcpu_started = false;
	pthread_t vcpu;
	int ret = 0;

	while (postcopy && ret == 0) {
		ret = rmig_dst_wait_sync(pd->dst, NULL);
		if (ret == RMIG_DST_POSTCOPY) {
			pd->t_run = now_s();
			postcopy_mark(mark);
			vcpu_started = peer_start_vcpu(pd, &vcpu);
			ret = 0;
		}
	}
	if (ret >= 0)
		ret = rmig_dst_finish(pd->dst);
	pd->t_finish = now_s();
	pd->finished = !ret;
	atomic_store(&pd->vcpu_stop, true);
	if (vcpu_started)
		pthread_join(vcpu, NULL);
	if (ret)
		peer_err(pd, "migration", rmig_dst_error(pd->dst), ret);
	return ret;
}

/* Every page is in: the region against the manifest, the vCPU's reads, the device. */
static int peer_verify(struct peer_dst *pd, const struct bench_cfg *cfg)
{
	char err[512];
	int ret;

	ret = manifest_verify(&pd->man, &pd->reg, true, &pd->m, err, sizeof(err));
	if (ret) {
		peer_err(pd, "verification", err, ret);
		return ret;
	}
	if (pd->bad_reads) {
		snprintf(err, sizeof(err),
			 "%" PRIu64 " of %" PRIu64 " vCPU reads during postcopy saw "
			 "other data than the source's final state; first: chunk %" PRIu64,
			 pd->bad_reads, pd->reads, pd->first_bad);
		peer_err(pd, "verification", err, -EPROTO);
		return -EPROTO;
	}
	if (pd->has_vdev && (pd->vdev.error[0] || !pd->vdev.complete)) {
		peer_err(pd, "device " LIVE_DEV_ID,
			 pd->vdev.error[0]   ? pd->vdev.error
			 : pd->vdev.records ? "its final record never arrived"
					    : "nothing arrived (give both sides the same --device)",
			 -EPROTO);
		return -EPROTO;
	}
	if (cfg->live.dev_ack && !pd->vdev.acked) {
		peer_err(pd, "device " LIVE_DEV_ID, "its initial data was never acknowledged",
			 -EPROTO);
		return -EPROTO;
	}
	return 0;
}

static int peer_setup(struct peer_dst *pd, const struct bench_cfg *cfg)
{
	struct rmig_block_desc desc = {
		.name = BENCH_BLOCK,
		.host = pd->reg.base,
		.length = pd->reg.size,
		.page_size = pd->reg.page_size,
	};
	struct rmig_opts opts = cfg->opts;
	char uri[512];
	int ret;

	if (!cfg->channels_given)
		opts.channels = RMIG_MAX_CHANNELS;
	boot_id(pd->boot_id);
	ret = rmig_dst_create(&opts, &pd->dst);
	if (ret) {
		peer_err(pd, "rmig_dst_create", NULL, ret);
		return ret;
	}
	if (cfg->live.dev_size) {
		vdev_dst_init(&pd->vdev, LIVE_DEV_ID, 0, cfg->seed, pd->dst, cfg->live.dev_ack);
		pd->has_vdev = true;
	}
	bench_make_uri(uri, sizeof(uri), cfg, cfg->addr, "0.0.0.0");
	if ((ret = rmig_dst_add_block(pd->dst, &desc)) < 0 ||
	    (ret = rmig_dst_set_device_state_cb(pd->dst, peer_dev_cb, pd)) ||
	    (ret = rmig_dst_listen(pd->dst, uri))) {
		peer_err(pd, "listen", rmig_dst_error(pd->dst), ret);
		return ret;
	}
	if (cfg->live.postcopy && (ret = rmig_dst_postcopy_enable(pd->dst))) {
		peer_err(pd, "rmig_dst_postcopy_enable", rmig_dst_error(pd->dst), ret);
		return ret;
	}
	bench_listening(cfg, uri, rmig_dst_port(pd->dst), &pd->reg);
	return 0;
}

/* When our device-state callback refused a chunk, say why instead of that it refused. */
static void peer_explain(struct peer_dst *pd)
{
	if (pd->unexpected[0])
		snprintf(pd->error, sizeof(pd->error),
			 "device state from %s, which this destination does not expect"
			 " (give both sides the same --device and --seed)", pd->unexpected);
	else if (pd->has_vdev && pd->vdev.error[0])
		snprintf(pd->error, sizeof(pd->error), "device %s: %s (give both sides the same "
			 "--device and --seed)", LIVE_DEV_ID, pd->vdev.error);
}

/* ---- the destination's report ------------------------------------------------ */

/* The source's stop_vcpus to the moment we may run; < 0: not known (another host). */
static double peer_downtime_ms(const struct peer_dst *pd)
{
	double end = pd->t_run ? pd->t_run : pd->t_finish;

	if (!pd->finished || !pd->t_src_stop || end < pd->t_src_stop)
		return -1;
	return (end - pd->t_src_stop) * 1e3;
}

static double peer_pull_ms(const struct peer_dst *pd)
{
	return pd->pcs.done_ns ? (double)(pd->pcs.done_ns - pd->pcs.start_ns) / 1e6 : -1;
}

static const char *peer_ver(const struct peer_dst *pd)
{
	return pd->verified < 0 ? "n/a" : pd->verified ? "yes" : "NO";
}

static void peer_print_json(const struct bench_cfg *cfg, const struct peer_dst *pd)
{
	const struct rmig_stats *s = &pd->st;
	double dt = peer_downtime_ms(pd);

	printf("{\"event\":\"%s\",\"status\":\"%s\",", pd->error[0] ? "failed" : "completed",
	       pd->error[0] ? "failed" : "completed");
	printf("\"mode\":\"live\",\"role\":\"destination\",\"transport\":\"%s\",",
	       live_xport(cfg));
	printf("\"channels\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"page_size\":%u,", s->channels,
	       pd->reg.size, pd->reg.page_size);
	printf("\"pages\":%" PRIu64 ",\"zero_pages\":%" PRIu64 ",\"wire_bytes\":%" PRIu64 ",",
	       s->normal_pages + s->zero_pages, s->zero_pages, s->wire_bytes);
	printf("\"sync_rounds\":%" PRIu64 ",\"dev_bytes\":%" PRIu64 ",", s->sync_rounds,
	       s->dev_bytes);
	printf("\"seconds\":%.6f,", pd->t_accept ? pd->t_finish - pd->t_accept : 0.0);
	if (dt >= 0)
		printf("\"downtime_ms\":%.3f,", dt);
	else
		printf("\"downtime_ms\":null,");
	printf("\"postcopy\":%s,", pd->pcs.active ? "true" : "false");
	if (cfg->live.postcopy)
		printf("\"postcopy_uffd\":%s,\"postcopy_pull\":\"%s\",\"postcopy_pulls\":%" PRIu64
		       ",\"postcopy_missing\":%" PRIu64 ",\"postcopy_pulled\":%" PRIu64
		       ",\"postcopy_faults\":%" PRIu64 ",\"postcopy_ms\":%.3f,"
		       "\"postcopy_vcpu_reads\":%" PRIu64 ",",
		       pd->pcs.uffd ? "true" : "false", pd->pcs.by_read ? "read" : "request",
		       pd->pcs.pulls, pd->pcs.missing, pd->pcs.pulled,
		       pd->pcs.faults, peer_pull_ms(pd), pd->reads);
	if (pd->has_vdev)
		printf("\"device_bytes\":%" PRIu64 ",\"device_acked\":%s,", pd->vdev.received,
		       pd->vdev.acked ? "true" : "false");
	printf("\"verified\":%s,\"error\":",
	       pd->verified < 0 ? "null" : pd->verified ? "true" : "false");
	if (pd->error[0])
		json_string(stdout, pd->error);
	else
		fputs("null", stdout);
	fputs("}\n", stdout);
}

static void peer_print_table(const struct bench_cfg *cfg, const struct peer_dst *pd)
{
	static const char rule[] = "---------------------------------------------------------"
				   "----------------------------------";
	const struct rmig_stats *s = &pd->st;
	double dt = peer_downtime_ms(pd);
	char dts[32] = "n/a";

	if (dt >= 0)
		snprintf(dts, sizeof(dts), "%.2f", dt);
	printf("%s\n", rule);
	printf(" rmig-bench --live  role: destination  transport: %s  channels: %" PRIu64
	       "  size: %" PRIu64 "  page size: %u\n",
	       live_xport(cfg), s->channels, pd->reg.size, pd->reg.page_size);
	printf("%s\n", rule);
	printf(" %-10s %-10s %-10s %-7s %-9s %-12s %-9s %s\n", "#pages", "#zero", "MB wire",
	       "rounds", "seconds", "downtime ms", "pulled", "verified");
	printf(" %-10" PRIu64 " %-10" PRIu64 " %-10.1f %-7" PRIu64 " %-9.4f %-12s %-9" PRIu64
	       " %s\n",
	       s->normal_pages + s->zero_pages, s->zero_pages, (double)s->wire_bytes / 1e6,
	       s->sync_rounds, pd->t_accept ? pd->t_finish - pd->t_accept : 0.0, dts,
	       pd->pcs.pulled, peer_ver(pd));
	if (dt >= 0)
		printf(" downtime: the source's stop_vcpus (same host, same clock) to %s\n",
		       pd->pcs.active ? "postcopy start (the vCPUs may run)"
				      : "the return of finish");
	else if (pd->finished)
		printf(" downtime: n/a (the source's clock is another host's; see its report)\n");
	if (cfg->live.postcopy)
		printf(" postcopy: %" PRIu64 " pages missing at start, %" PRIu64
		       " pulled in %.2f ms;"
		       " faults %" PRIu64 " (%s); vCPU chunk reads checked %" PRIu64 "\n",
		       pd->pcs.missing, pd->pcs.pulled, peer_pull_ms(pd), pd->pcs.faults,
		       pd->pcs.uffd ? "userfaultfd" : "degraded: pulled before running", pd->reads);
	if (pd->has_vdev)
		printf(" device %s: %" PRIu64 " bytes, %s\n", LIVE_DEV_ID, pd->vdev.received,
		       pd->vdev.acked ? "initial data acknowledged" : "no switchover ack");
	printf("%s\n", rule);
}

static void peer_print(const struct bench_cfg *cfg, const struct peer_dst *pd)
{
	if (cfg->json)
		peer_print_json(cfg, pd);
	else if (cfg->quiet)
		printf("live destination %s %" PRIu64 "ch %" PRIu64 " B rounds %" PRIu64
		       " downtime %.2f ms pulled %" PRIu64 " verified %s\n",
		       live_xport(cfg), pd->st.channels, pd->reg.size, pd->st.sync_rounds,
		       peer_downtime_ms(pd), pd->pcs.pulled, peer_ver(pd));
	else
		peer_print_table(cfg, pd);
	fflush(stdout);
	if (pd->error[0])
		fprintf(stderr, "rmig-bench: live destination: %s\n", pd->error);
}

int run_live_destination(const struct bench_cfg *cfg)
{
	struct peer_dst pd = { .verified = -1, .seed = cfg->seed + 7 };
	char err[256];
	int ret;

	ret = region_map_anon(&pd.reg, cfg->size, cfg->page_size, true, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "rmig-bench: %s\n", err);
		return 1;
	}
	ret = peer_setup(&pd, cfg);
	if (ret)
		goto out;
	ret = rmig_dst_accept(pd.dst);
	if (ret) {
		peer_err(&pd, "accept", rmig_dst_error(pd.dst), ret);
		bench_mismatch_hint(pd.error, sizeof(pd.error));
		goto out;
	}
	pd.t_accept = now_s();
	ret = peer_run(&pd, cfg->live.postcopy, cfg->live.postcopy_mark);
	if (!ret)
		ret = peer_verify(&pd, cfg);
	pd.verified = !ret;
out:
	if (ret) {
		peer_explain(&pd);
		pd.verified = 0;
	}
	pd.st.size = sizeof(pd.st);
	pd.pcs.size = sizeof(pd.pcs);
	if (pd.dst) {
		rmig_dst_get_stats(pd.dst, &pd.st);
		rmig_dst_postcopy_stats(pd.dst, &pd.pcs);
	}
	peer_print(cfg, &pd);
	rmig_dst_destroy(pd.dst);
	if (pd.has_vdev)
		vdev_dst_destroy(&pd.vdev);
	manifest_rx_free(&pd.man);
	region_unmap(&pd.reg);
	return ret ? 1 : 0;
}
