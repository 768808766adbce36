// SPDX-License-Identifier: MIT
/*
 * Every slot of every registered ops table is filled (core/xport_stubs.c has
 * the defaults), because the core calls ops without checking for NULL. The
 * tables are walked slot by slot rather than field by field, so an op added
 * to core/xport.h is checked here without touching this file.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "rmig-config.h"
#include "core/xport.h"
#include "rmig/rmig.h"
#ifdef RMIG_HAVE_RDMA
#include "transport/rdma/rdma.h"
#endif

typedef void (*op_fn)(void);

/* Everything from the first op to the end of each table is function pointers. */
#define FIRST_XPORT_OP offsetof(struct rmig_xport_ops, connect)
_Static_assert((sizeof(struct rmig_xport_ops) - FIRST_XPORT_OP) % sizeof(op_fn) == 0,
	       "rmig_xport_ops ends in function pointers only");
_Static_assert(sizeof(struct rmig_conn_ops) % sizeof(op_fn) == 0,
	       "rmig_conn_ops is function pointers only");

static void assert_slots_filled(const char *what, const void *table, size_t from, size_t size)
{
	for (size_t off = from; off < size; off += sizeof(op_fn)) {
		op_fn fn;

		memcpy(&fn, (const char *)table + off, sizeof(fn));
		if (!fn)
			fail_msg("%s: the op at byte %zu is NULL (use a core/xport_stubs.c default)",
				 what, off);
	}
}

/* ---- a connection of each transport, to reach its (static) conn ops -------- */

static struct rmig_opts opts;
static uint8_t ram[16 * 4096] __attribute__((aligned(4096)));
static const struct rmig_block block = {
	.name = "ram", .host = ram, .length = sizeof(ram), .page_size = 4096, .page_shift = 12,
};
static const struct rmig_xport_params params = {
	.opts = &opts, .blocks = &block, .nblocks = 1, .channels = 1,
};

/* A source-side channel of a transport without a peer (null, file). */
static const struct rmig_conn_ops *sink_conn_ops(const struct rmig_xport_ops *ops,
						 const char *addr)
{
	const struct rmig_conn_ops *cops;
	struct rmig_xport *x = NULL;
	struct rmig_conn *ctl = NULL, *c = NULL;
	struct rmig_msgbuf mb;

	if (ops->connect(&params, addr, &x, &ctl, &mb))
		fail_msg("%s: connect: %s", ops->name, mb.msg);
	if (ops->connect_channel(x, 0, &c))
		fail_msg("%s: channel: %s", ops->name, x->err.msg);
	cops = c->ops;
	c->ops->close(c);
	if (ctl)
		ctl->ops->close(ctl);
	ops->destroy(x);
	return cops;
}

static const struct rmig_conn_ops *null_conn_ops(const struct rmig_xport_ops *ops)
{
	return sink_conn_ops(ops, "");
}

static const struct rmig_conn_ops *file_conn_ops(const struct rmig_xport_ops *ops)
{
	char path[] = "/tmp/rmig-test-xport-ops-XXXXXX";
	const struct rmig_conn_ops *cops;
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	close(fd);
	cops = sink_conn_ops(ops, path);
	unlink(path);
	return cops;
}

static const struct rmig_conn_ops *tcp_conn_ops(const struct rmig_xport_ops *ops)
{
	const struct rmig_conn_ops *cops;
	struct rmig_xport *lx = NULL, *x = NULL;
	struct rmig_conn *ctl = NULL;
	struct rmig_msgbuf mb;
	char addr[32];

	if (ops->listen(&params, "127.0.0.1:0", &lx, &mb))
		fail_msg("tcp: listen: %s", mb.msg);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", ops->port(lx));
	if (ops->connect(&params, addr, &x, &ctl, &mb))
		fail_msg("tcp: connect: %s", mb.msg);
	cops = ctl->ops;
	ctl->ops->close(ctl);
	ops->destroy(x);
	ops->destroy(lx);
	return cops;
}

#ifdef RMIG_HAVE_RDMA
static const struct rmig_conn_ops *rdma_conn_ops(const struct rmig_xport_ops *ops)
{
	return &rmig_rd_conn_ops; /* no device needed to see the table */
}
#endif

static const struct {
	const char *name;
	const struct rmig_conn_ops *(*conn_ops)(const struct rmig_xport_ops *ops);
} openers[] = {
	{ "tcp", tcp_conn_ops },
	{ "null", null_conn_ops },
	{ "file", file_conn_ops },
#ifdef RMIG_HAVE_RDMA
	{ "rdma", rdma_conn_ops },
#endif
};

static void test_every_slot_filled(void **state)
{
	const struct rmig_xport_ops *ops;
	unsigned int n = 0;

	rmig_opts_init(&opts);
	for (unsigned int i = 0; rmig_xport_registered(i, &ops) == 0; i++) {
		const struct rmig_conn_ops *cops = NULL;

		if (!ops)
			continue; /* not built */
		assert_non_null(ops->name);
		assert_slots_filled(ops->name, ops, FIRST_XPORT_OP, sizeof(*ops));
		for (unsigned int j = 0; j < RMIG_ARRAY_SIZE(openers); j++)
			if (!strcmp(openers[j].name, ops->name))
				cops = openers[j].conn_ops(ops);
		if (!cops)
			fail_msg("%s: no way to reach its conn ops here; add one to openers[]",
				 ops->name);
		assert_slots_filled(ops->name, cops, 0, sizeof(*cops));
		n++;
	}
	/* tcp, null and file are always built */
	assert_true(n >= 3);
}

/* The stubs keep the ops' contract: 0 or -errno, and a reason when they fail. */
static void test_stubs(void **state)
{
	struct rmig_xport x = { .ops = &rmig_null_ops };
	struct rmig_conn c = { 0 };
	struct rmig_msgbuf mb = { "" };
	struct rmig_stats s = { 0 };
	size_t len = 99;
	uint64_t ticket;

	assert_int_equal(rmig_xport_no_listen(&params, "", NULL, &mb), -ENOSYS);
	assert_true(mb.msg[0]);
	assert_int_equal(rmig_xport_no_port(&x), -ENOSYS);
	assert_non_null(strstr(x.err.msg, "null"));
	assert_int_equal(rmig_xport_no_pull_info(&x, NULL, &len), -ENOSYS);
	assert_int_equal(rmig_xport_nop_local_info(&x, NULL, &len), 0);
	assert_int_equal(len, 0);
	assert_int_equal(rmig_xport_nop_set_peer_info(&x, "x", 1), 0);
	assert_int_equal(rmig_xport_nop_finish(&x), 0);
	assert_int_equal(rmig_xport_nop_reg_ns(&x), 0);
	rmig_xport_nop_load_stats(&x, &s);
	assert_int_equal(s.normal_pages, 0);
	assert_int_equal(rmig_conn_no_pull(&c, NULL, 0, 0, 4096, &ticket), -ENOSYS);
	assert_true(c.err.msg[0]);
	assert_int_equal(rmig_conn_no_recv_pages(&c, NULL, 0), -ENOSYS);
	assert_true(c.recv_err.msg[0]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_slot_filled),
		cmocka_unit_test(test_stubs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
