/* SPDX-License-Identifier: MIT */
/*
 * rmig-bench --transport file --file PATH: save the region to PATH with the
 * source API ("file:PATH"), load it back into a second region with the
 * destination API, compare the two, and print one result for each phase.
 *
 * save: from rmig_src_connect() to the return of rmig_src_finish(), which
 * includes the library's fdatasync(), less page rewrites between rounds.
 * restore: from rmig_dst_listen() (which reads and checks the metadata) to
 * the return of rmig_dst_finish(). With --drop-cache the file is evicted
 * from the page cache in between (posix_fadvise DONTNEED; the save left it
 * clean), so the restore reads from the disk.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

static void file_result_init(struct bench_result *res, const struct bench_cfg *cfg,
			     const char *role)
{
	memset(res, 0, sizeof(*res));
	res->role = role;
	res->transport = cfg->opts.flags & RMIG_F_DIRECT_IO ? "file+direct" : "file";
	res->channels = cfg->opts.channels;
	res->page_size = cfg->page_size;
	res->rounds = cfg->rounds;
	res->zero_fraction = cfg->zero_fraction;
	res->seed = cfg->seed;
	res->verified = -1;
}

static void file_error(struct bench_result *res, const char *what, const char *msg, int ret)
{
	if (!res->error[0])
		snprintf(res->error, sizeof(res->error), "%s: %s", what,
			 msg && msg[0] ? msg : strerror(-ret));
}

static int file_save(const struct bench_cfg *cfg, const char *uri, struct region *reg,
		     struct bench_result *res)
{
	uint64_t npages = reg->size / reg->page_size, queued = 0;
	struct rmig_block_desc desc = {BENCH_BLOCK, reg->base, reg->size, reg->page_size};
	struct rmig_stats st = {.size = sizeof(st)};
	struct gen_params gp;
	struct rmig_src *src = NULL;
	double t0, cpu0, paused = 0, cpu_paused = 0;
	uint8_t *man = NULL, *dirty = NULL;
	size_t man_len;
	int ret;

	gen_params_init(&gp, cfg);
	/* a small manifest as device state, so the restore delivers some */
	man_len = manifest_encode(&man, &gp, reg->size, cfg->region ? 0 : MANIFEST_F_GENERATED,
				 BENCH_HASH_CHUNK, NULL, 0);
	dirty = calloc(1, npages);
	if (!man || !dirty) {
		ret = -ENOMEM;
		file_error(res, "save", NULL, ret);
		goto out;
	}
	ret = rmig_src_create(&cfg->opts, &src);
	if (ret) {
		file_error(res, "rmig_src_create", NULL, ret);
		goto out;
	}
	ret = rmig_src_add_block(src, &desc);
	if (ret < 0) {
		file_error(res, "rmig_src_add_block", rmig_src_error(src), ret);
		goto out;
	}
	cpu0 = cpu_now_s();
	t0 = now_s();
	ret = rmig_src_connect(src, uri);
	if (ret) {
		file_error(res, "save: connect", rmig_src_error(src), ret);
		goto out_timed;
	}
	for (uint32_t r = 0; r < cfg->rounds; r++) {
		if (r > 0) {
			double mark = now_s(), cmark = cpu_now_s();
			bool write = !cfg->region;

			/* the guest's share of the round: rewrite a fraction, as run.c does */
			for (uint64_t p = 0; p < npages; p++) {
				dirty[p] = gen_page_is_dirty(&gp, r, p);
				if (dirty[p] && write)
					gen_fill_page(&gp, r, p, reg->base + p * reg->page_size);
			}
			paused += now_s() - mark;
			cpu_paused += cpu_now_s() - cmark;
		}
		for (uint64_t p = 0; p < npages && !ret; p++) {
			if (r > 0 && !dirty[p])
				continue;
			ret = rmig_src_queue_page(src, 0, p * reg->page_size);
			queued++;
		}
		if (!ret)
			ret = rmig_src_sync(src, RMIG_SYNC_ALL);
		if (ret) {
			file_error(res, "save: round", rmig_src_error(src), ret);
			goto out_timed;
		}
	}
	ret = rmig_src_queue_device_state(src, BENCH_IDSTR, 0, man, man_len);
	if (!ret)
		ret = rmig_src_finish(src);
	if (ret)
		file_error(res, "save: finish", rmig_src_error(src), ret);
out_timed:
	res->seconds = now_s() - t0 - paused;
	res->cpu_s = cpu_now_s() - cpu0 - cpu_paused;
	rmig_src_get_stats(src, &st);
	res->pages = queued;
	res->bytes = queued * reg->page_size;
	res->zero_pages = st.zero_pages;
	res->wire_bytes = st.wire_bytes;
out:
	rmig_src_destroy(src);
	free(dirty);
	free(man);
	return ret;
}

struct file_dev {
	uint64_t chunks, bytes;
};

static int file_dev_cb(void *arg, const char *idstr, uint32_t instance, uint64_t seq,
		       const void *data, size_t len)
{
	struct file_dev *fd = arg;

	(void)instance;
	(void)data;
	if (strcmp(idstr, BENCH_IDSTR) || seq != fd->chunks)
		return -EPROTO;
	fd->chunks++;
	fd->bytes += len;
	return 0;
}

static int file_restore(const struct bench_cfg *cfg, const char *uri, struct region *reg,
			struct bench_result *res, struct file_dev *dev)
{
	struct rmig_block_desc desc = {BENCH_BLOCK, reg->base, reg->size, reg->page_size};
	struct rmig_stats st = {.size = sizeof(st)};
	struct rmig_dst *dst = NULL;
	double t0, cpu0;
	int ret;

	ret = rmig_dst_create(&cfg->opts, &dst);
	if (ret) {
		file_error(res, "rmig_dst_create", NULL, ret);
		goto out;
	}
	ret = rmig_dst_add_block(dst, &desc);
	if (ret < 0) {
		file_error(res, "rmig_dst_add_block", rmig_dst_error(dst), ret);
		goto out;
	}
	ret = rmig_dst_set_device_state_cb(dst, file_dev_cb, dev);
	if (ret) {
		file_error(res, "rmig_dst_set_device_state_cb", rmig_dst_error(dst), ret);
		goto out;
	}
	cpu0 = cpu_now_s();
	t0 = now_s();
	ret = rmig_dst_listen(dst, uri);
	if (!ret)
		ret = rmig_dst_accept(dst);
	if (!ret)
		ret = rmig_dst_finish(dst);
	res->seconds = now_s() - t0;
	res->cpu_s = cpu_now_s() - cpu0;
	if (ret)
		file_error(res, "restore", rmig_dst_error(dst), ret);
	rmig_dst_get_stats(dst, &st);
	res->pages = st.normal_pages + st.zero_pages;
	res->zero_pages = st.zero_pages;
	res->bytes = res->pages * reg->page_size;
	res->wire_bytes = st.wire_bytes;
out:
	rmig_dst_destroy(dst);
	return ret;
}

static void drop_cache(const char *path)
{
	int fd = open(path, O_RDONLY);

	if (fd < 0)
		return;
	/* the save ended with fdatasync, so every page is clean and can go */
	posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	close(fd);
}

int run_file(const struct bench_cfg *cfg)
{
	struct region sreg = {0}, dreg = {0};
	struct bench_result save, restore;
	struct file_dev dev = {0};
	struct gen_params gp;
	char uri[4200], err[256];
	int ret;

	file_result_init(&save, cfg, "save");
	file_result_init(&restore, cfg, "restore");
	snprintf(uri, sizeof(uri), "file:%s", cfg->file);
	if (cfg->region) {
		ret = region_map_file(&sreg, cfg->region, cfg->page_size, false, true, err,
				      sizeof(err));
	} else {
		ret = region_map_anon(&sreg, cfg->size, cfg->page_size, true, err, sizeof(err));
		if (!ret) {
			gen_params_init(&gp, cfg);
			gen_fill_region(&gp, &sreg);
		}
	}
	if (ret) {
		fprintf(stderr, "rmig-bench: %s\n", err);
		return 1;
	}
	/* a VMM's RAM is allocated before the restore starts: populate it untimed */
	ret = region_map_anon(&dreg, sreg.size, sreg.page_size, true, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "rmig-bench: restore: %s\n", err);
		region_unmap(&sreg);
		return 1;
	}

	ret = file_save(cfg, uri, &sreg, &save);
	save.verified = ret ? 0 : -1;
	report_print(cfg, &save);
	if (ret)
		goto out;
	if (cfg->drop_cache)
		drop_cache(cfg->file);
	ret = file_restore(cfg, uri, &dreg, &restore, &dev);
	if (!ret) {
		uint64_t p;

		restore.verified = 1;
		for (p = 0; p < sreg.size / sreg.page_size; p++)
			if (memcmp(sreg.base + p * sreg.page_size, dreg.base + p * sreg.page_size,
				   sreg.page_size))
				break;
		if (p < sreg.size / sreg.page_size) {
			restore.verified = 0;
			snprintf(restore.error, sizeof(restore.error),
				 "restored RAM differs from the saved RAM; first at page %" PRIu64,
				 p);
		} else if (dev.chunks == 0) {
			restore.verified = 0;
			snprintf(restore.error, sizeof(restore.error),
				 "the device state (manifest) was not delivered");
		}
	} else {
		restore.verified = 0;
	}
	report_print(cfg, &restore);
out:
	region_unmap(&dreg);
	region_unmap(&sreg);
	return ret || restore.verified != 1 ? 1 : 0;
}
