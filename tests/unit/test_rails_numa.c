// SPDX-License-Identifier: MIT
/*
 * The rails' NUMA override (transport/rdma/rails_numa.c): &rmig_opts.numa and
 * numa_node[] first, RMIG_RDMA_NUMA as their fallback; nodes by hand that do
 * not fit (a count other than the rails', a node this host lacks, garbage in
 * the variable) are refused with a message naming the problem. Two rails
 * without devices (as before connect), so each rail's own node is -1.
 */
#include <errno.h>
#include <numa.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "transport/rdma/rails_priv.h"

struct rig {
	struct rl_xport r;
	struct rd_xport x[2];
	struct rmig_opts o;
	struct rmig_msgbuf err;
};

static int setup(struct rig *g, const char *env)
{
	memset(g, 0, sizeof(*g));
	g->r.nrails = 2;
	for (unsigned int k = 0; k < 2; k++) {
		g->r.rail[k].xp = &g->x[k].base;
		snprintf(g->r.rail[k].addr, sizeof(g->r.rail[k].addr), "10.0.%u.1:4444", k);
	}
	snprintf(g->r.list, sizeof(g->r.list), "10.0.0.1,10.0.1.1:4444");
	rmig_opts_init(&g->o);
	if (env)
		setenv("RMIG_RDMA_NUMA", env, 1);
	else
		unsetenv("RMIG_RDMA_NUMA");
	return 0;
}

static int run(struct rig *g)
{
	int ret = rmig_rl_numa_setup(&g->r, &g->o, &g->err);

	unsetenv("RMIG_RDMA_NUMA");
	if (ret)
		print_message("refused: %s\n", g->err.msg);
	return ret;
}

static void done(struct rig *g)
{
	rmig_rl_numa_free(&g->r);
}

static void test_defaults(void **state)
{
	struct rig g;

	(void)state;
	setup(&g, NULL);
	assert_int_equal(run(&g), 0);
	assert_int_equal(g.r.rail[0].node, -1);
	assert_int_equal(g.r.rail[1].node, -1);
	assert_int_equal(rmig_rl_numa_node(&g.r, 0), -1);
	done(&g);
}

static void test_by_hand(void **state)
{
	bool multi = numa_available() >= 0 && numa_num_configured_nodes() > 1;
	struct rig g;

	(void)state;
	/* the option */
	setup(&g, "1,1"); /* ignored: the option comes first */
	g.o.numa_rails = 2;
	g.o.numa_node[0] = 0;
	g.o.numa_node[1] = -1;
	assert_int_equal(run(&g), 0);
	assert_int_equal(g.r.rail[0].node, 0);
	assert_int_equal(g.r.rail[1].node, -1);
	/* placing (and so steering by) node 0 only where the host has two nodes */
	assert_int_equal(rmig_rl_numa_node(&g.r, 0), multi ? 0 : -1);
	assert_int_equal(rmig_rl_numa_node(&g.r, 1), -1);
	done(&g);

	/* the variable, when the option is left alone */
	setup(&g, "-1,0");
	assert_int_equal(run(&g), 0);
	assert_int_equal(g.r.rail[0].node, -1);
	assert_int_equal(g.r.rail[1].node, 0);
	done(&g);

	/* off: nothing placed, whatever the nodes */
	setup(&g, "0,0");
	g.o.numa = RMIG_NUMA_OFF;
	assert_int_equal(run(&g), 0);
	assert_false(g.r.numa);
	assert_int_equal(rmig_rl_numa_node(&g.r, 0), -1);
	done(&g);
	setup(&g, "off");
	assert_int_equal(run(&g), 0);
	assert_false(g.r.numa);
	done(&g);
	setup(&g, "place");
	assert_int_equal(run(&g), 0);
	assert_int_equal(g.r.numa, multi);
	done(&g);
}

static void test_refused(void **state)
{
	struct rig g;

	(void)state;
	setup(&g, NULL);
	g.o.numa_rails = 1;
	assert_int_equal(run(&g), -EINVAL);
	assert_non_null(strstr(g.err.msg, "numa_node: 1 NUMA nodes given for 2 rails"));
	done(&g);

	setup(&g, NULL);
	g.o.numa_rails = 2;
	g.o.numa_node[1] = 99;
	assert_int_equal(run(&g), -EINVAL);
	assert_non_null(strstr(g.err.msg, "rail 1 (10.0.1.1:4444) on NUMA node 99"));
	assert_non_null(strstr(g.err.msg, "does not"));
	done(&g);

	setup(&g, "0,0,0");
	assert_int_equal(run(&g), -EINVAL);
	assert_non_null(strstr(g.err.msg, "RMIG_RDMA_NUMA: 3 NUMA nodes given for 2 rails"));
	done(&g);

	setup(&g, "0,x");
	assert_int_equal(run(&g), -EINVAL);
	assert_non_null(strstr(g.err.msg, "RMIG_RDMA_NUMA='0,x'"));
	done(&g);

	setup(&g, "0,1000");
	assert_int_equal(run(&g), -EINVAL);
	done(&g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_by_hand),
		cmocka_unit_test(test_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
