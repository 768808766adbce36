// SPDX-License-Identifier: MIT
/*
 * NUMA steering, the core's half: the node map of RAM blocks (core/numa.c)
 * with a fake query (fake nodes, pages not present, nodes out of range, a
 * failing query) and the kernel's own, and the scheduler's choice of channel
 * (core/sched.c, rmig_sched_send_node): a batch goes to an idle channel on
 * its node, falls back to another once the wait runs out or when no channel
 * is on that node, and is not steered at all with steering off.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/numa.h"
#include "core/sched.h"
#include "core/util.h"

/* ---- the node map ---------------------------------------------------------- */

/* A block that is never touched: the fake query only looks at addresses. */
#define FAKE_BASE ((uint8_t *)(uintptr_t)0x40000000u)
#define MIB (1ull << 20)

static unsigned int fake_calls;

/*
 * The fake topology: 64 KiB chunk c on node c % 2, except chunk 3 (its first
 * page not present, its middle on node 1), chunk 5 (never present), chunk 6
 * (node 200: out of the map's range).
 */
#define CH (64 * 1024ull)
static int fake_query(unsigned long count, void **pages, int *status)
{
	fake_calls++;
	for (unsigned long i = 0; i < count; i++) {
		uint64_t off = (uint64_t)((uint8_t *)pages[i] - FAKE_BASE);
		uint64_t c = off / CH, in = off % CH;

		if (c == 5 || (c == 3 && in == 0))
			status[i] = -ENOENT;
		else if (c == 6)
			status[i] = 200;
		else
			status[i] = (int)(c % 2);
	}
	return 0;
}

static int failing_query(unsigned long count, void **pages, int *status)
{
	(void)count;
	(void)pages;
	(void)status;
	return -ENOSYS;
}

static void fake_block(struct rmig_block *b, uint64_t length, uint32_t page_shift)
{
	memset(b, 0, sizeof(*b));
	b->host = FAKE_BASE;
	b->length = length;
	b->page_shift = page_shift;
	b->page_size = 1u << page_shift;
}

static void test_chunk_shift(void **state)
{
	(void)state;
	assert_int_equal(rmig_numa_chunk_shift(64 * MIB, 12), 16);
	assert_int_equal(rmig_numa_chunk_shift(4096, 12), 16);
	assert_int_equal(rmig_numa_chunk_shift(4ull << 30, 12), 16);
	assert_int_equal(rmig_numa_chunk_shift((4ull << 30) + 4096, 12), 17);
	assert_int_equal(rmig_numa_chunk_shift(64 * MIB, 21), 21);
	/* larger pages: a chunk is a page */
	assert_int_equal(rmig_numa_chunk_shift(4ull << 30, 30), 30);
	/* 1 TiB: 64 Ki chunks of 16 MiB */
	assert_int_equal(rmig_numa_chunk_shift(1ull << 40, 12), 24);
	/* at most RMIG_NUMA_CHUNKS chunks, whatever the size */
	assert_true((((1ull << 40) + 4096) >> rmig_numa_chunk_shift((1ull << 40) + 4096, 12)) <=
		    RMIG_NUMA_CHUNKS);
}

static void test_map_fake_nodes(void **state)
{
	struct rmig_block b[2];
	struct rmig_numa_map *m = NULL;
	uint64_t offs[6], local, remote;

	(void)state;
	fake_block(&b[0], 16 * CH, 12);
	fake_block(&b[1], 4096, 12); /* one page: one chunk */
	fake_calls = 0;
	assert_int_equal(rmig_numa_map_build(b, 2, fake_query, &m), 0);
	assert_non_null(m);
	assert_int_equal(m->chunks, 16 + 1);
	/* 16 chunks of block 0 but 5 (never present) and 6 (node 200); block 1's page */
	assert_int_equal(m->chunks_known, 14 + 1);
	assert_int_equal(rmig_numa_node_of(m, 0, 0), 0);
	assert_int_equal(rmig_numa_node_of(m, 0, CH + 4096), 1);
	assert_int_equal(rmig_numa_node_of(m, 0, 3 * CH), 1); /* from its middle page */
	assert_int_equal(rmig_numa_node_of(m, 0, 5 * CH), -1);
	assert_int_equal(rmig_numa_node_of(m, 0, 6 * CH), -1);
	assert_int_equal(rmig_numa_node_of(m, 0, 16 * CH - 4096), 1);
	assert_int_equal(rmig_numa_node_of(m, 0, 16 * CH), -1); /* past the end */
	assert_int_equal(rmig_numa_node_of(m, 1, 0), 0);
	/* two batches per block: first pages, then the middles of the chunks still unknown */
	assert_int_equal(fake_calls, 2 + 1);

	offs[0] = 0;	  /* node 0 */
	offs[1] = 4096;	  /* node 0 */
	offs[2] = CH;	  /* node 1 */
	offs[3] = 5 * CH; /* unknown */
	offs[4] = 6 * CH; /* unknown */
	offs[5] = 4 * CH; /* node 0 */
	rmig_numa_count(m, 0, offs, 6, 0, &local, &remote);
	assert_int_equal(local, 3);
	assert_int_equal(remote, 1);
	rmig_numa_count(m, 0, offs, 6, 1, &local, &remote);
	assert_int_equal(local, 1);
	assert_int_equal(remote, 3);
	rmig_numa_map_free(m);

	m = NULL;
	assert_int_equal(rmig_numa_map_build(b, 2, failing_query, &m), -ENOSYS);
	assert_null(m);
	rmig_numa_map_free(NULL);
}

/* The kernel's answer: a touched page is on some node; an untouched one on none. */
static void test_map_kernel(void **state)
{
	size_t len = 8 * MIB;
	struct rmig_numa_map *m = NULL;
	struct rmig_block b;
	uint8_t *p;

	(void)state;
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(p != MAP_FAILED);
	memset(p, 1, 64 * 1024); /* chunk 0 only */
	fake_block(&b, len, 12);
	b.host = p;
	assert_int_equal(rmig_numa_map_build(&b, 1, NULL, &m), 0);
	print_message("chunk 0 on node %d, chunk 3 on %d\n", rmig_numa_node_of(m, 0, 0),
		      rmig_numa_node_of(m, 0, 6 * MIB));
	assert_true(rmig_numa_node_of(m, 0, 0) >= 0);
	assert_int_equal(rmig_numa_node_of(m, 0, 6 * MIB), -1);
	assert_int_equal(m->chunks, 8 * MIB / (64 * 1024));
	/* chunk 0, or the transparent huge page its first touch made (2 MiB) */
	assert_true(m->chunks_known >= 1 && m->chunks_known <= 2 * MIB / (64 * 1024));
	rmig_numa_map_free(m);
	munmap(p, len);
}

static void test_distinct_nodes(void **state)
{
	int none[3] = { -1, -1, -1 }, one[4] = { 0, -1, 0, 0 }, two[4] = { 0, 1, 0, 1 },
	    three[5] = { 2, -1, 0, 2, 7 };

	(void)state;
	assert_int_equal(rmig_numa_distinct_nodes(none, 3), 0);
	assert_int_equal(rmig_numa_distinct_nodes(one, 4), 1);
	assert_int_equal(rmig_numa_distinct_nodes(two, 4), 2);
	assert_int_equal(rmig_numa_distinct_nodes(three, 5), 3);
	assert_int_equal(rmig_numa_distinct_nodes(two, 0), 0);
}

/* ---- the scheduler's choice --------------------------------------------------- */

#define NCHAN 4
#define NTAGS 256
#define TAG_BLOCK 1000 /* payloads with a tag from here hold their channel until released */

struct steer_ctx {
	_Atomic int chan_of[NTAGS]; /* tag -> the channel that transmitted it, + 1 */
	_Atomic bool release;
	_Atomic unsigned int blocked;
};

static int steer_transmit(void *arg, unsigned int ch, struct rmig_payload *p)
{
	struct steer_ctx *c = arg;

	if (p->tag >= TAG_BLOCK) {
		atomic_fetch_add(&c->blocked, 1);
		atomic_store(&c->chan_of[p->tag - TAG_BLOCK], (int)ch + 1);
		while (!atomic_load(&c->release))
			usleep(200);
		return 0;
	}
	atomic_store(&c->chan_of[p->tag], (int)ch + 1);
	return 0;
}

static int steer_sync(void *arg, unsigned int ch, unsigned int kind, uint64_t round)
{
	(void)arg;
	(void)ch;
	(void)kind;
	(void)round;
	return 0;
}

static const struct rmig_sched_cb steer_cb = { .transmit = steer_transmit, .sync = steer_sync };

/* Channels 0 and 2 on node 0, 1 and 3 on node 1. */
static struct rmig_sched *steer_sched(struct steer_ctx *c)
{
	struct rmig_sched *s = NULL;

	memset(c, 0, sizeof(*c));
	assert_int_equal(rmig_sched_create(NCHAN, 8, &steer_cb, c, &s), 0);
	for (unsigned int i = 0; i < NCHAN; i++)
		rmig_sched_set_node(s, i, (int)(i % 2));
	return s;
}

static int send_tagged(struct rmig_sched *s, struct rmig_payload **slot, uint64_t tag, int node)
{
	(*slot)->type = RMIG_PAYLOAD_RAM;
	(*slot)->tag = tag;
	return rmig_sched_send_node(s, slot, node);
}

/* Every batch of a node goes to a channel on it while one turns idle in time. */
static void test_steer_local(void **state)
{
	struct rmig_payload *slot = rmig_payload_alloc(8);
	struct steer_ctx c;
	struct rmig_sched *s = steer_sched(&c);
	uint64_t steered, fallbacks;

	(void)state;
	rmig_sched_set_steer(s, true, 10ull * 1000 * 1000 * 1000); /* 10 s: never runs out */
	for (uint64_t t = 0; t < NTAGS; t++)
		assert_int_equal(send_tagged(s, &slot, t, (int)(t % 3 == 0)), 0);
	assert_int_equal(rmig_sched_sync(s, RMIG_SCHED_SYNC_LOCAL, 0), 0);
	for (uint64_t t = 0; t < NTAGS; t++) {
		int ch = atomic_load(&c.chan_of[t]) - 1;

		assert_true(ch >= 0);
		assert_int_equal(ch % 2, t % 3 == 0);
	}
	rmig_sched_steer_stats(s, &steered, &fallbacks);
	assert_int_equal(steered, NTAGS);
	assert_int_equal(fallbacks, 0);
	rmig_sched_destroy(s);
	rmig_payload_free(slot);
}

/*
 * Both channels of node 0 busy: a node-0 batch waits the steering wait, then
 * takes an idle channel of node 1. A node no channel is on is not waited for.
 */
static void test_steer_fallback(void **state)
{
	struct rmig_payload *slot = rmig_payload_alloc(8);
	struct steer_ctx c;
	struct rmig_sched *s = steer_sched(&c);
	uint64_t steered, fallbacks, t0, waited;
	int a, b;

	(void)state;
	rmig_sched_set_steer(s, true, 10ull * 1000 * 1000 * 1000);
	assert_int_equal(send_tagged(s, &slot, TAG_BLOCK + 0, 0), 0);
	assert_int_equal(send_tagged(s, &slot, TAG_BLOCK + 1, 0), 0);
	while (atomic_load(&c.blocked) < 2)
		usleep(100);
	a = atomic_load(&c.chan_of[0]) - 1;
	b = atomic_load(&c.chan_of[1]) - 1;
	assert_true(a % 2 == 0 && b % 2 == 0 && a != b);

	rmig_sched_set_steer(s, true, 30ull * 1000 * 1000); /* 30 ms */
	t0 = rmig_now_ns();
	assert_int_equal(send_tagged(s, &slot, 2, 0), 0);
	waited = rmig_now_ns() - t0;
	rmig_sched_steer_stats(s, &steered, &fallbacks);
	assert_int_equal(fallbacks, 1);
	assert_true(waited >= 30ull * 1000 * 1000);
	/* node 5 has no channel: any idle one at once, no fallback counted */
	assert_int_equal(send_tagged(s, &slot, 3, 5), 0);
	rmig_sched_steer_stats(s, &steered, &fallbacks);
	assert_int_equal(fallbacks, 1);
	assert_int_equal(steered, 2);

	atomic_store(&c.release, true);
	assert_int_equal(rmig_sched_sync(s, RMIG_SCHED_SYNC_LOCAL, 0), 0);
	assert_int_equal((atomic_load(&c.chan_of[2]) - 1) % 2, 1);
	assert_int_equal((atomic_load(&c.chan_of[3]) - 1) % 2, 1);
	rmig_sched_destroy(s);
	rmig_payload_free(slot);
}

/* Steering off (a single node, or RMIG_NUMA_PLACE): the node is ignored. */
static void test_steer_off(void **state)
{
	struct rmig_payload *slot = rmig_payload_alloc(8);
	struct steer_ctx c;
	struct rmig_sched *s = steer_sched(&c);
	unsigned int on_other = 0;
	uint64_t steered, fallbacks;

	(void)state;
	for (uint64_t t = 0; t < NTAGS; t++)
		assert_int_equal(send_tagged(s, &slot, t, 0), 0);
	assert_int_equal(rmig_sched_sync(s, RMIG_SCHED_SYNC_LOCAL, 0), 0);
	for (uint64_t t = 0; t < NTAGS; t++)
		on_other += (atomic_load(&c.chan_of[t]) - 1) % 2 == 1;
	/* the channels take turns: about half on node 1 */
	assert_true(on_other > 0);
	rmig_sched_steer_stats(s, &steered, &fallbacks);
	assert_int_equal(steered + fallbacks, 0);
	rmig_sched_destroy(s);
	rmig_payload_free(slot);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_chunk_shift),
		cmocka_unit_test(test_map_fake_nodes),
		cmocka_unit_test(test_map_kernel),
		cmocka_unit_test(test_distinct_nodes),
		cmocka_unit_test(test_steer_local),
		cmocka_unit_test(test_steer_fallback),
		cmocka_unit_test(test_steer_off),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
