// SPDX-License-Identifier: MIT
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "rmig/live.h"

#include "harness.h"

/* ---- options ---------------------------------------------------------------- */

void h_opts(struct rmig_opts *o, unsigned int channels)
{
	rmig_opts_init(o);
	o->timeout_ms = H_TIMEOUT_MS;
	if (channels)
		o->channels = channels;
}

/* ---- destination on a thread ------------------------------------------------ */

void h_dst_init(struct h_dst *d)
{
	memset(d, 0, sizeof(*d));
	h_opts(&d->opts, 0);
	d->opts.channels = RMIG_MAX_CHANNELS;
	d->port = -1;
}

void h_dst_add(struct h_dst *d, const char *name, void *host, uint64_t length,
	       uint32_t page_size)
{
	assert_true(d->nblocks < H_MAX_BLOCKS);
	d->blocks[d->nblocks++] = (struct rmig_block_desc){
		.name = name, .host = host, .length = length, .page_size = page_size,
	};
}

static void *dst_thread(void *arg)
{
	struct h_dst *d = arg;

	d->accept_ret = rmig_dst_accept(d->dst);
	if (d->accept_ret == 0) {
		if (d->hook)
			d->hook_ret = d->hook(d);
		if (!d->skip_finish)
			d->finish_ret = rmig_dst_finish(d->dst);
	}
	snprintf(d->error, sizeof(d->error), "%s", rmig_dst_error(d->dst));
	d->stats.size = sizeof(d->stats);
	rmig_dst_get_stats(d->dst, &d->stats);
	/* Destroying here, not on the test thread, lets a source blocked on us move on. */
	rmig_dst_destroy(d->dst);
	d->dst = NULL;
	return NULL;
}

void h_dst_start(struct h_dst *d)
{
	int ret;

	assert_int_equal(rmig_dst_create(&d->opts, &d->dst), 0);
	for (unsigned int i = 0; i < d->nblocks; i++)
		assert_int_equal(rmig_dst_add_block(d->dst, &d->blocks[i]), (int)i);
	assert_int_equal(rmig_dst_set_device_state_cb(d->dst, d->dev_fn, d->dev_arg), 0);
	ret = rmig_dst_listen(d->dst, "tcp:127.0.0.1:0");
	if (ret)
		fail_msg("listen: %d %s", ret, rmig_dst_error(d->dst));
	d->port = rmig_dst_port(d->dst);
	assert_in_range(d->port, 1, 65535);
	if (d->postcopy)
		assert_int_equal(rmig_dst_postcopy_enable(d->dst), 0);
	d->finish_ret = d->hook_ret = d->accept_ret = 1; /* "did not run" */
	assert_int_equal(pthread_create(&d->thread, NULL, dst_thread, d), 0);
}

void h_dst_join(struct h_dst *d)
{
	if (h_timedjoin(d->thread, H_TIMEOUT_MS / 1000 * 3))
		fail_msg("the destination thread did not finish (hung)");
}

void h_dst_end(struct h_dst *d)
{
	h_dst_join(d);
	h_watchdog_disarm();
}

/* ---- source ----------------------------------------------------------------- */

struct rmig_src *h_src_new(const struct rmig_opts *opts, const struct h_dst *d)
{
	struct rmig_opts def;
	struct rmig_src *src = NULL;

	if (!opts) {
		h_opts(&def, 0);
		opts = &def;
	}
	assert_int_equal(rmig_src_create(opts, &src), 0);
	for (unsigned int i = 0; i < d->nblocks; i++)
		assert_int_equal(rmig_src_add_block(src, &d->blocks[i]), (int)i);
	return src;
}

int h_src_connect_port(struct rmig_src *src, int port)
{
	char uri[64];

	snprintf(uri, sizeof(uri), "tcp:127.0.0.1:%d", port);
	return rmig_src_connect(src, uri);
}

int h_src_queue_all(struct rmig_src *src, unsigned int b, uint64_t len, uint32_t page)
{
	int ret;

	for (uint64_t off = 0; off < len; off += page) {
		ret = rmig_src_queue_page(src, b, off);
		if (ret)
			return ret;
	}
	return 0;
}

struct rmig_stats h_src_stats(struct rmig_src *src)
{
	struct rmig_stats st = { .size = sizeof(st) };

	assert_int_equal(rmig_src_get_stats(src, &st), 0);
	return st;
}

void h_src_settle(struct rmig_src **srcp, int ret, char *err, size_t errlen)
{
	snprintf(err, errlen, "%s", rmig_src_error(*srcp));
	if (ret) {
		rmig_src_destroy(*srcp);
		*srcp = NULL;
	}
}

void h_end(struct rmig_src **srcp, int ret, char *err, size_t errlen, struct h_dst *d)
{
	h_src_settle(srcp, ret, err, errlen);
	h_dst_end(d);
}

void h_check_stats_match(const struct rmig_stats *s, const struct rmig_stats *d)
{
	assert_int_equal(s->packets, d->packets);
	assert_int_equal(s->normal_pages, d->normal_pages);
	assert_int_equal(s->zero_pages, d->zero_pages);
	assert_int_equal(s->data_bytes, d->data_bytes);
	assert_int_equal(s->dev_chunks, d->dev_chunks);
	assert_int_equal(s->dev_bytes, d->dev_bytes);
	assert_int_equal(s->sync_rounds, d->sync_rounds);
	/* Every byte one side's channels sent, the other side's received. */
	assert_int_equal(s->wire_bytes, d->wire_bytes);
}

struct rmig_src *h_pair_one_block(struct h_dst *d, const struct rmig_opts *opts, void *src_mem,
				  void *dst_mem, uint64_t len, uint32_t page)
{
	struct rmig_src *src;

	h_dst_init(d);
	/* the source copies the table with the source's memory in it ... */
	h_dst_add(d, "pc.ram", src_mem, len, page);
	src = h_src_new(opts, d);
	/* ... then the destination's own block points at its RAM */
	d->blocks[0].host = dst_mem;
	return src;
}
