/* SPDX-License-Identifier: MIT */
/*
 * The three ways to run: source and destination in one process, the source
 * alone (--connect), the destination alone (--listen).
 *
 * Source timeline: [manifest], connect, then per round [rewrite dirty pages],
 * queue, sync all; manifest as device state; finish. Bracketed steps are the
 * bench's own work and are left out of seconds and CPU: the manifest is built
 * before the clock starts, and rewrites run only after a sync all, when
 * nothing is in flight.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

#define CONNECT_RETRY_US 100000

static const char *const xport_names[] = {
	[XPORT_TCP] = "tcp",
	[XPORT_RDMA] = "rdma",
	[XPORT_NULL] = "null",
};

static void result_init(struct bench_result *res, const struct bench_cfg *cfg, const char *role)
{
	memset(res, 0, sizeof(*res));
	res->role = role;
	res->transport = xport_names[cfg->transport];
	res->channels = cfg->opts.channels;
	res->page_size = cfg->page_size;
	res->rounds = cfg->rounds;
	res->zero_copy = cfg->opts.flags & RMIG_F_ZERO_COPY;
	res->zero_fraction = cfg->zero_fraction;
	res->seed = cfg->seed;
	res->verified = -1;
}

static void set_error(struct bench_result *res, const char *what, const char *lib_msg, int ret)
{
	if (res->error[0])
		return; /* the first failure is the one to show */
	if (lib_msg && lib_msg[0])
		snprintf(res->error, sizeof(res->error), "%s: %s", what, lib_msg);
	else
		snprintf(res->error, sizeof(res->error), "%s: %s", what, strerror(-ret));
}

/* "HOST:PORT" as given, or a bare port on @default_host. */
void bench_make_uri(char *buf, size_t len, const struct bench_cfg *cfg, const char *addr,
		    const char *default_host)
{
	if (addr[strspn(addr, "0123456789")] == '\0')
		snprintf(buf, len, "%s:%s:%s", xport_names[cfg->transport], default_host, addr);
	else
		snprintf(buf, len, "%s:%s", xport_names[cfg->transport], addr);
}

static void make_host_uri(char *buf, size_t len, const struct bench_cfg *cfg, const char *host,
			  int port)
{
	bool v6 = strchr(host, ':') && host[0] != '[';

	snprintf(buf, len, "%s:%s%s%s:%d", xport_names[cfg->transport], v6 ? "[" : "", host,
		 v6 ? "]" : "", port);
}

/* Source RAM: the --region file (read only) or generated content. */
static int map_source(const struct bench_cfg *cfg, struct region *reg, char *err, size_t errlen)
{
	struct gen_params gp;
	bool null = cfg->transport == XPORT_NULL;
	int ret;

	if (cfg->region)
		return region_map_file(reg, cfg->region, cfg->page_size, false, !null, err, errlen);
	/* null never reads page contents: leave the mapping untouched */
	ret = region_map_anon(reg, cfg->size, cfg->page_size, !null, err, errlen);
	if (ret || null)
		return ret;
	gen_params_init(&gp, cfg);
	gen_fill_region(&gp, reg);
	return 0;
}

/* ---- source ---------------------------------------------------------------- */

static void bitmap_set(uint64_t *bm, uint64_t i)
{
	bm[i / 64] |= 1ull << (i % 64);
}

/*
 * The guest's share of round @round: pick pages, rewrite them when the
 * content is ours to change, and mark them in @bm as a dirty log would.
 */
static void dirty_pages(const struct bench_cfg *cfg, const struct gen_params *gp,
			struct region *reg, uint32_t round, uint64_t *bm)
{
	uint64_t npages = reg->size / reg->page_size;
	bool write = !cfg->region && cfg->transport != XPORT_NULL;

	memset(bm, 0, (npages + 63) / 64 * 8);
	for (uint64_t p = 0; p < npages; p++) {
		if (!gen_page_is_dirty(gp, round, p))
			continue;
		bitmap_set(bm, p);
		if (write)
			gen_fill_page(gp, round, p, reg->base + p * reg->page_size);
	}
}

static int queue_round(struct rmig_src *src, int blk, const struct region *reg,
		       const uint64_t *bm, uint64_t *queued)
{
	uint64_t npages = reg->size / reg->page_size;
	int ret;

	if (!bm) {
		for (uint64_t p = 0; p < npages; p++) {
			ret = rmig_src_queue_page(src, (unsigned int)blk, p * reg->page_size);
			if (ret)
				return ret;
			(*queued)++;
		}
		return 0;
	}
	for (uint64_t w = 0; w < (npages + 63) / 64; w++) {
		for (uint64_t bits = bm[w]; bits; bits &= bits - 1) {
			uint64_t p = w * 64 + (uint64_t)__builtin_ctzll(bits);

			ret = rmig_src_queue_page(src, (unsigned int)blk, p * reg->page_size);
			if (ret)
				return ret;
			(*queued)++;
		}
	}
	return 0;
}

/*
 * The manifest, built before the clock starts. The digest is of the content
 * the region will hold after the last round: the region itself when nothing
 * rewrites it, else regenerated.
 */
static int build_manifest(const struct bench_cfg *cfg, const struct gen_params *gp,
			  const struct region *reg, bool digest, uint8_t **bufp, size_t *lenp)
{
	uint64_t n = digest ? region_nchunks(reg) : 0;
	uint64_t *d = NULL;
	int ret = 0;

	if (n) {
		d = malloc(n * sizeof(*d));
		if (!d)
			return -ENOMEM;
		if (cfg->region || cfg->rounds == 1 || !gp->dirty_thr)
			region_digest(reg, d);
		else
			ret = gen_digest_final(gp, reg->size, d);
	}
	if (!ret) {
		*lenp = manifest_encode(bufp, gp, reg->size, cfg->region ? 0 : MANIFEST_F_GENERATED,
					BENCH_HASH_CHUNK, d, n);
		if (!*bufp)
			ret = -ENOMEM;
	}
	free(d);
	return ret;
}

void bench_mismatch_hint(char *msg, size_t len)
{
	size_t n = strlen(msg);

	if (strstr(msg, "block table"))
		snprintf(msg + n, len - n, " (give both sides the same --size and --page-size)");
}

int bench_src_connect(const struct bench_cfg *cfg, const struct rmig_opts *opts, const char *uri,
		      const struct rmig_block_desc *desc, struct rmig_src **srcp, double *t0,
		      double *cpu0, char *err, size_t errlen)
{
	double deadline = now_s() + opts->timeout_ms / 1e3;
	int ret;

	for (;;) {
		ret = rmig_src_create(opts, srcp);
		if (ret) {
			snprintf(err, errlen, "rmig_src_create: %s", strerror(-ret));
			return ret;
		}
		ret = rmig_src_add_block(*srcp, desc);
		if (ret < 0) {
			snprintf(err, errlen, "rmig_src_add_block: %s", rmig_src_error(*srcp));
			return ret;
		}
		*cpu0 = cpu_now_s();
		*t0 = now_s();
		ret = rmig_src_connect(*srcp, uri);
		if (ret != -ECONNREFUSED || cfg->role != ROLE_SOURCE || *t0 >= deadline)
			break;
		rmig_src_destroy(*srcp);
		*srcp = NULL;
		usleep(CONNECT_RETRY_US);
	}
	if (ret) {
		const char *msg = rmig_src_error(*srcp);

		snprintf(err, errlen, "connect: %s", msg[0] ? msg : strerror(-ret));
		bench_mismatch_hint(err, errlen);
	}
	return ret;
}

void bench_listening(const struct bench_cfg *cfg, const char *uri, int port,
		     const struct region *reg)
{
	if (!cfg->quiet)
		fprintf(stderr, "rmig-bench: destination listening on %s (port %d), %" PRIu64
			" bytes of %u-byte pages\n", uri, port, reg->size, reg->page_size);
}

/* Runs the whole source side over @uri and fills @res. Returns 0 or -errno. */
static int source_migrate(const struct bench_cfg *cfg, const char *uri, struct region *reg,
			  bool digest, struct bench_result *res)
{
	uint64_t npages = reg->size / reg->page_size, queued = 0;
	struct rmig_stats st = { .size = sizeof(st) };
	struct rmig_opts opts = cfg->opts;
	struct rmig_block_desc desc = {
		.name = BENCH_BLOCK,
		.host = reg->base,
		.length = reg->size,
		.page_size = reg->page_size,
	};
	struct progress *prog = NULL;
	double t0 = 0, cpu0 = 0, paused = 0, cpu_paused = 0, mark, cmark;
	struct gen_params gp;
	struct rmig_src *src = NULL;
	uint64_t *bm = NULL;
	uint8_t *man = NULL;
	size_t man_len = 0;
	char err[sizeof(res->error)];
	int blk = 0, ret;

	gen_params_init(&gp, cfg);
	if (cfg->transport == XPORT_NULL)
		opts.flags |= RMIG_F_NO_ZERO_DETECT;
	if (cfg->rounds > 1) {
		bm = malloc((npages + 63) / 64 * 8);
		if (!bm) {
			ret = -ENOMEM;
			set_error(res, "dirty bitmap", NULL, ret);
			goto out;
		}
	}
	if (cfg->transport != XPORT_NULL) {
		ret = build_manifest(cfg, &gp, reg, digest, &man, &man_len);
		if (ret) {
			set_error(res, "manifest", NULL, ret);
			goto out;
		}
	}

	/* a lone source may start first: a refused connect is retried until the timeout */
	ret = bench_src_connect(cfg, &opts, uri, &desc, &src, &t0, &cpu0, err, sizeof(err));
	res->connect_s = t0 ? now_s() - t0 : 0;
	if (ret) {
		if (!res->error[0])
			snprintf(res->error, sizeof(res->error), "%s", err);
		if (!t0)
			goto out;
		goto out_timed;
	}
	if (cfg->progress)
		prog = progress_start(src, NULL,
				      npages + (uint64_t)((double)npages * cfg->dirty_fraction *
							  (cfg->rounds - 1)),
				      reg->page_size);
	for (uint32_t r = 0; r < cfg->rounds; r++) {
		if (r > 0) {
			mark = now_s(), cmark = cpu_now_s();
			dirty_pages(cfg, &gp, reg, r, bm);
			paused += now_s() - mark, cpu_paused += cpu_now_s() - cmark;
		}
		ret = queue_round(src, blk, reg, r ? bm : NULL, &queued);
		if (ret) {
			set_error(res, "queue page", rmig_src_error(src), ret);
			goto out_timed;
		}
		ret = rmig_src_sync(src, RMIG_SYNC_ALL);
		if (ret) {
			set_error(res, "sync", rmig_src_error(src), ret);
			goto out_timed;
		}
	}
	if (man) {
		ret = rmig_src_queue_device_state(src, BENCH_IDSTR, 0, man, man_len);
		if (ret) {
			set_error(res, "device state", rmig_src_error(src), ret);
			goto out_timed;
		}
	}
	ret = rmig_src_finish(src);
	if (ret)
		set_error(res, "finish", rmig_src_error(src), ret);

out_timed:
	res->seconds = now_s() - t0 - paused;
	res->cpu_s = cpu_now_s() - cpu0 - cpu_paused;
	progress_stop(prog);
	rmig_src_get_stats(src, &st);
	res->nrails = rmig_src_get_rails(src, res->rails, BENCH_RAILS_MAX);
	res->pages = queued;
	res->bytes = queued * reg->page_size;
	res->zero_pages = st.zero_pages;
	res->wire_bytes = st.wire_bytes;
	res->zc_sends = st.zc_sends;
	res->zc_copied = st.zc_copied;
	res->tls_channels = st.tls_channels;
	res->ktls_channels = st.ktls_channels;
	res->mw_channels = st.mw_channels;
	res->numa_local = st.numa_local_pages;
	res->numa_remote = st.numa_remote_pages;
out:
	free(man);
	free(bm);
	rmig_src_destroy(src);
	return ret;
}

/* ---- destination ------------------------------------------------------------ */

struct dst_side {
	struct rmig_dst *dst;
	pthread_t thread;
	int ret;
	const char *failed_step;
	struct manifest_rx man; /* device state from anyone else: counted, ignored */
};

static int dev_state_cb(void *arg, const char *idstr, uint32_t instance, uint64_t seq,
			const void *data, size_t len)
{
	struct dst_side *ds = arg;
	int ret;

	(void)instance;
	ret = manifest_rx_feed(&ds->man, idstr, seq, data, len);
	return ret < 0 ? ret : 0;
}

static int dst_setup(struct dst_side *ds, const struct bench_cfg *cfg, struct region *reg,
		     const char *uri, struct bench_result *res)
{
	struct rmig_opts opts = cfg->opts;
	struct rmig_block_desc desc = {
		.name = BENCH_BLOCK,
		.host = reg->base,
		.length = reg->size,
		.page_size = reg->page_size,
	};
	int ret;

	if (cfg->role == ROLE_DESTINATION && !cfg->channels_given)
		opts.channels = RMIG_MAX_CHANNELS;
	ret = rmig_dst_create(&opts, &ds->dst);
	if (ret) {
		set_error(res, "rmig_dst_create", NULL, ret);
		return ret;
	}
	ret = rmig_dst_add_block(ds->dst, &desc);
	if (ret < 0) {
		set_error(res, "rmig_dst_add_block", rmig_dst_error(ds->dst), ret);
		return ret;
	}
	ret = rmig_dst_set_device_state_cb(ds->dst, dev_state_cb, ds);
	if (ret) {
		set_error(res, "rmig_dst_set_device_state_cb", rmig_dst_error(ds->dst), ret);
		return ret;
	}
	ret = rmig_dst_listen(ds->dst, uri);
	if (ret)
		set_error(res, "listen", rmig_dst_error(ds->dst), ret);
	return ret;
}

static int dst_accept_finish(struct dst_side *ds)
{
	ds->failed_step = "accept";
	ds->ret = rmig_dst_accept(ds->dst);
	if (ds->ret)
		return ds->ret;
	ds->failed_step = "finish";
	ds->ret = rmig_dst_finish(ds->dst);
	if (!ds->ret)
		ds->failed_step = NULL;
	return ds->ret;
}

static void *dst_thread(void *arg)
{
	dst_accept_finish(arg);
	return NULL;
}

static void dst_result(struct dst_side *ds, struct bench_result *res, uint32_t page_size)
{
	struct rmig_stats st = { .size = sizeof(st) };

	rmig_dst_get_stats(ds->dst, &st);
	res->nrails = rmig_dst_get_rails(ds->dst, res->rails, BENCH_RAILS_MAX);
	res->pages = st.normal_pages + st.zero_pages;
	res->zero_pages = st.zero_pages;
	if (st.channels)
		res->channels = (unsigned int)st.channels;
	res->bytes = res->pages * page_size;
	res->wire_bytes = st.wire_bytes;
	res->tls_channels = st.tls_channels;
	res->ktls_channels = st.ktls_channels;
	res->mw_channels = st.mw_channels;
	res->numa_local = st.numa_local_pages;
	res->numa_remote = st.numa_remote_pages;
}

/* ---- the three modes ----------------------------------------------------------- */

static int first_diff_page(const struct region *a, const struct region *b, uint64_t *page)
{
	uint64_t npages = a->size / a->page_size;

	for (uint64_t p = 0; p < npages; p++) {
		if (memcmp(a->base + p * a->page_size, b->base + p * a->page_size, a->page_size)) {
			*page = p;
			return 1;
		}
	}
	return 0;
}

int run_inproc(const struct bench_cfg *cfg)
{
	struct region sreg = { 0 }, dreg = { 0 };
	struct dst_side ds = { 0 };
	struct bench_result res;
	char uri[512], err[256];
	int ret, port;

	result_init(&res, cfg, "in-process");
	ret = map_source(cfg, &sreg, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "rmig-bench: %s\n", err);
		return 1;
	}
	if (cfg->transport == XPORT_NULL) {
		ret = source_migrate(cfg, "null:", &sreg, false, &res);
		if (ret)
			res.verified = 0;
		report_print(cfg, &res);
		region_unmap(&sreg);
		return ret ? 1 : 0;
	}
	/* a VMM's RAM is allocated before migration starts: populate it untimed */
	ret = region_map_anon(&dreg, sreg.size, sreg.page_size, true, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "rmig-bench: destination: %s\n", err);
		goto out_src;
	}
	make_host_uri(uri, sizeof(uri), cfg, cfg->host, 0);
	ret = dst_setup(&ds, cfg, &dreg, uri, &res);
	if (ret)
		goto out_report;
	port = rmig_dst_port(ds.dst);
	if (port < 0) {
		ret = port;
		set_error(&res, "rmig_dst_port", rmig_dst_error(ds.dst), ret);
		goto out_report;
	}
	make_host_uri(uri, sizeof(uri), cfg, cfg->host, port);
	ret = pthread_create(&ds.thread, NULL, dst_thread, &ds);
	if (ret) {
		ret = -ret;
		set_error(&res, "destination thread", NULL, ret);
		goto out_report;
	}
	ret = source_migrate(cfg, uri, &sreg, false, &res);
	if (ret)
		rmig_dst_cancel(ds.dst); /* it may still wait in accept */
	pthread_join(ds.thread, NULL);
	if (ds.ret) {
		/* the source's view comes first; this adds what the destination saw */
		size_t n = strlen(res.error);
		const char *msg = rmig_dst_error(ds.dst);

		snprintf(res.error + n, sizeof(res.error) - n, "%sdestination %s: %s",
			 n ? "; " : "", ds.failed_step, msg[0] ? msg : strerror(-ds.ret));
		ret = ds.ret;
	}
	if (!ret) {
		struct manifest m;
		uint64_t page;

		res.verified = 1;
		if (memcmp(sreg.base, dreg.base, sreg.size) && first_diff_page(&sreg, &dreg, &page)) {
			res.verified = 0;
			snprintf(res.error, sizeof(res.error),
				 "destination RAM differs from the source; first at page %" PRIu64
				 " (offset %" PRIu64 ")", page, page * sreg.page_size);
		} else if (manifest_verify(&ds.man, &dreg, false, &m, err, sizeof(err))) {
			res.verified = 0;
			snprintf(res.error, sizeof(res.error), "device state: %s", err);
		}
	} else {
		res.verified = 0;
	}
out_report:
	if (ret && res.verified < 0)
		res.verified = 0;
	report_print(cfg, &res);
	rmig_dst_destroy(ds.dst);
	manifest_rx_free(&ds.man);
	region_unmap(&dreg);
out_src:
	region_unmap(&sreg);
	return ret || res.verified != 1 ? 1 : 0;
}

int run_source(const struct bench_cfg *cfg)
{
	struct region reg = { 0 };
	struct bench_result res;
	char uri[512], err[256];
	int ret;

	result_init(&res, cfg, "source");
	ret = map_source(cfg, &reg, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "rmig-bench: %s\n", err);
		return 1;
	}
	bench_make_uri(uri, sizeof(uri), cfg, cfg->addr, "127.0.0.1");
	ret = source_migrate(cfg, uri, &reg, true, &res);
	report_print(cfg, &res);
	region_unmap(&reg);
	return ret ? 1 : 0;
}

int run_destination(const struct bench_cfg *cfg)
{
	struct region reg = { 0 };
	struct dst_side ds = { 0 };
	struct bench_result res;
	struct progress *prog = NULL;
	struct manifest m;
	double t0 = 0, cpu0 = 0;
	char uri[512], err[256];
	int ret;

	result_init(&res, cfg, "destination");
	if (cfg->region)
		ret = region_map_file(&reg, cfg->region, cfg->page_size, true, true, err,
				      sizeof(err));
	else
		ret = region_map_anon(&reg, cfg->size, cfg->page_size, true, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "rmig-bench: %s\n", err);
		return 1;
	}
	bench_make_uri(uri, sizeof(uri), cfg, cfg->addr, "0.0.0.0");
	ret = dst_setup(&ds, cfg, &reg, uri, &res);
	if (ret)
		goto out;
	bench_listening(cfg, uri, rmig_dst_port(ds.dst), &reg);

	ret = rmig_dst_accept(ds.dst);
	if (ret) {
		set_error(&res, "accept", rmig_dst_error(ds.dst), ret);
		bench_mismatch_hint(res.error, sizeof(res.error));
		goto out;
	}
	cpu0 = cpu_now_s();
	t0 = now_s();
	if (cfg->progress)
		prog = progress_start(NULL, ds.dst, reg.size / reg.page_size, reg.page_size);
	ret = rmig_dst_finish(ds.dst);
	res.seconds = now_s() - t0;
	res.cpu_s = cpu_now_s() - cpu0;
	progress_stop(prog);
	dst_result(&ds, &res, reg.page_size);
	if (ret) {
		set_error(&res, "finish", rmig_dst_error(ds.dst), ret);
		goto out;
	}
	ret = manifest_verify(&ds.man, &reg, true, &m, err, sizeof(err));
	res.verified = !ret;
	if (ret) {
		snprintf(res.error, sizeof(res.error), "verification: %s", err);
	} else {
		res.rounds = m.rounds;
		res.seed = m.seed;
		res.zero_fraction = (double)m.zero_thr / 4294967296.0;
	}
out:
	if (ret && res.verified < 0)
		res.verified = 0;
	report_print(cfg, &res);
	rmig_dst_destroy(ds.dst);
	manifest_rx_free(&ds.man);
	region_unmap(&reg);
	return ret ? 1 : 0;
}
