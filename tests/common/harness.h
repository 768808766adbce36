/* SPDX-License-Identifier: MIT */
/*
 * The cmocka fixture of the tests that migrate over loopback TCP: a
 * destination that runs on its own thread (create, add blocks, listen on
 * tcp:127.0.0.1:0, accept, optional hook, finish, destroy) and a source on
 * the test thread. Memory, generated contents and hang guards are in
 * helpers.h, which this includes.
 *
 * Only the public API (rmig/rmig.h) is used here, so the tests that link
 * the shared library exercise its exported symbols.
 */
#ifndef RMIG_TESTS_HARNESS_H
#define RMIG_TESTS_HARNESS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rmig/rmig.h"

#include "helpers.h"

#define H_MAX_BLOCKS 8
#define H_TIMEOUT_MS 20000 /* rmig's own limit for each step in these tests */

#define h_assert_contains(hay, needle)                                                  \
	do {                                                                            \
		if (!strstr((hay), (needle)))                                           \
			fail_msg("\"%s\" does not mention \"%s\"", (hay), (needle));    \
	} while (0)

/* ---- destination on a thread ------------------------------------------------ */

struct h_dst;
/* Runs on the destination thread after a successful accept; its return is kept. */
typedef int (*h_dst_hook)(struct h_dst *d);

struct h_dst {
	/* set by the caller before h_dst_start() */
	struct rmig_opts opts;
	struct rmig_block_desc blocks[H_MAX_BLOCKS];
	unsigned int nblocks;
	rmig_dev_state_fn dev_fn;
	void *dev_arg;
	h_dst_hook hook; /* NULL: straight to finish */
	void *arg;	 /* for the hook */
	bool skip_finish;
	bool postcopy; /* rmig_dst_postcopy_enable() before accept */

	/* set by h_dst_start() */
	struct rmig_dst *dst;
	int port;
	pthread_t thread;

	/* results, valid after h_dst_join() */
	int accept_ret;
	int hook_ret;
	int finish_ret;
	char error[512];
	struct rmig_stats stats;
};

/* Defaults: opts with H_TIMEOUT_MS and no blocks. */
void h_dst_init(struct h_dst *d);
void h_dst_add(struct h_dst *d, const char *name, void *host, uint64_t length,
	       uint32_t page_size);
/* Create, add blocks, listen, start the thread. Fails the test on error. */
void h_dst_start(struct h_dst *d);
/* Join the thread (the handle is destroyed on it); fails the test on a hang. */
void h_dst_join(struct h_dst *d);
/* h_dst_join(), then the watchdog disarmed. */
void h_dst_end(struct h_dst *d);

/* ---- source on the test thread ---------------------------------------------- */

/* Create a source with @opts (NULL: defaults with H_TIMEOUT_MS) and @d's block table. */
struct rmig_src *h_src_new(const struct rmig_opts *opts, const struct h_dst *d);
int h_src_connect_port(struct rmig_src *src, int port);
/* Queue every page of block @b (@len bytes, @page each) in order. */
int h_src_queue_all(struct rmig_src *src, unsigned int b, uint64_t len, uint32_t page);
struct rmig_stats h_src_stats(struct rmig_src *src);

/*
 * The source's side is over with @ret. A failed source keeps its sockets
 * until it is destroyed (and the destination waits on them), so on failure
 * save its error and destroy it now; *@srcp becomes NULL.
 */
void h_src_settle(struct rmig_src **srcp, int ret, char *err, size_t errlen);
/* The end of a migration on the test thread: h_src_settle(), then h_dst_end(). */
void h_end(struct rmig_src **srcp, int ret, char *err, size_t errlen, struct h_dst *d);

/*
 * The common set-up: one block "pc.ram" of @len bytes, @page each, the
 * source reading @src_mem and the destination (not started) landing in
 * @dst_mem. Returns the source (@opts NULL: defaults).
 */
struct rmig_src *h_pair_one_block(struct h_dst *d, const struct rmig_opts *opts, void *src_mem,
				  void *dst_mem, uint64_t len, uint32_t page);

/* Source and destination counters of one migration agree. */
void h_check_stats_match(const struct rmig_stats *s, const struct rmig_stats *d);

/* Default source/destination options for the tests. */
void h_opts(struct rmig_opts *o, unsigned int channels);

#endif
