// SPDX-License-Identifier: MIT
/*
 * The rdma transport without hardware: send queue and WRITEs (the fake verbs are in
 * rdma_faults_fixture.c).
 *
 * The data path: the send queue never holds more WRs than its depth,
 * WRITEs are cut at MR slices and the port's max message and gathered,
 * segments are checked, every failed work completion and a failed
 * ibv_post_send() end the conn with the status named.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

#include "rmig-config.h"
#include "core/wire.h"
#include "core/xport.h"
#include "transport/rdma/rdma.h"

#include "rdma_faults_fixture.h"

/* ------------------------------------------------------- data path */

void test_sq_depth_never_exceeded(void **state)
{
	struct rd_conn *c;
	struct rmig_seg seg[3];
	uint8_t hdr[100] = {1, 2, 3};
	uint64_t total = 0;

	tables(1u << 20, 1u << 20);
	/* 16 entries, a completion every 4, 4 KiB messages: hundreds of WRs per send() */
	c = conn_new(16, 4, 4096);
	seg[0] = (struct rmig_seg){mem[0], 0, 1u << 20, 0, 0};
	seg[1] = (struct rmig_seg){mem[1], 0, 40960, 1, 0};
	seg[2] = (struct rmig_seg){mem[0] + 8192, 8192, 4096, 0, 0};
	for (int round = 0; round < 3; round++) {
		assert_int_equal(rmig_rd_send(&c->base, hdr, sizeof(hdr), seg, 3), 0);
		assert_true(fk.max_outstanding <= 16);
	}
	assert_int_equal(rmig_rd_flush(&c->base), 0);
	assert_int_equal(fk.completed, fk.posted);
	assert_true(fk.max_outstanding <= 16);
	assert_true(fk.max_outstanding >= 12); /* it did fill up */
	/* WRITEs cover the segments exactly; the SEND of each round comes after them */
	for (unsigned int i = 0; i < fk.nlog; i++) {
		if (fk.log[i].opcode == IBV_WR_RDMA_WRITE) {
			assert_true(fk.log[i].len <= 4096);
			total += fk.log[i].len;
		}
	}
	assert_int_equal(total, 3 * ((1u << 20) + 40960 + 4096));
	assert_int_equal(c->base.rdma_writes, 3 * (256 + 10 + 1));
	conn_free(c);
}

/*
 * WRITE payload outstanding never exceeds the conn's inflight_max, whatever
 * the queue depth allows; a WRITE larger than the bound goes out alone.
 */
void test_inflight_bytes_bounded(void **state)
{
	struct rd_conn *c;
	struct rmig_seg seg = {NULL, 0, 1u << 20, 0, 0};
	uint8_t hdr[64] = {7};
	uint64_t total = 0;

	tables(1u << 20, 1u << 20);
	seg.local = mem[0];
	/* 512 WRs of room, 64 KiB WRITEs, 256 KiB in flight at most */
	c = conn_new(512, 64, 64u << 10);
	c->inflight_max = 256u << 10;
	for (int round = 0; round < 4; round++)
		assert_int_equal(rmig_rd_send(&c->base, hdr, sizeof(hdr), &seg, 1), 0);
	assert_int_equal(rmig_rd_flush(&c->base), 0);
	assert_true(fk.max_out_bytes <= 256u << 10);
	assert_true(fk.max_out_bytes >= 192u << 10); /* it did fill up to the bound */
	for (unsigned int i = 0; i < fk.nlog; i++)
		if (fk.log[i].opcode == IBV_WR_RDMA_WRITE)
			total += fk.log[i].len;
	assert_int_equal(total, 4u << 20);
	assert_int_equal(fk.cum_done, fk.cum_posted);
	/* page data is counted once its WRITEs completed: all of it after the flush */
	assert_int_equal(c->base.wire_bytes, (4u << 20) + 4 * sizeof(hdr));
	conn_free(c);
}

/* 512 KiB WRITEs against a 256 KiB bound: one at a time. */
void test_inflight_big_write_alone(void **state)
{
	struct rd_conn *c;
	struct rmig_seg seg = {NULL, 0, 1u << 20, 0, 0};
	uint8_t hdr[64] = {7};

	tables(1u << 20, 1u << 20);
	seg.local = mem[0];
	c = conn_new(512, 64, 512u << 10);
	c->inflight_max = 256u << 10;
	assert_int_equal(rmig_rd_send(&c->base, hdr, sizeof(hdr), &seg, 1), 0);
	assert_int_equal(rmig_rd_flush(&c->base), 0);
	assert_int_equal(fk.max_out_bytes, 512u << 10);
	assert_int_equal(fk.cum_posted, 1u << 20);
	conn_free(c);
}

/* WRITEs are cut where a slice ends on either side, and gather pieces whose remote range continues.
 */
void test_write_cuts_and_gathers(void **state)
{
	struct rd_conn *c;
	struct rmig_seg seg[3];
	uint64_t lslice = 5 * 4096, rslice = 3 * 4096, expect_off = 0;
	unsigned int i, writes = 0;

	tables(lslice, rslice);
	c = conn_new(64, 8, 1u << 20);
	seg[0] = (struct rmig_seg){mem[0], 0, 16 * 4096, 0, 0};
	assert_int_equal(rmig_rd_send(&c->base, "h", 1, seg, 1), 0);
	for (i = 0; i < fk.nlog && fk.log[i].opcode == IBV_WR_RDMA_WRITE; i++) {
		const struct fk_wr *w = &fk.log[i];
		const struct rd_rslice *rs = rmig_rd_remote_find(&fx.remote, 0, expect_off);
		uint64_t a = 0;

		/* inside one remote slice */
		assert_int_equal(w->raddr, rs->addr + (expect_off - rs->off));
		assert_int_equal(w->rkey, rs->rkey);
		assert_true(expect_off + w->len <= rs->off + rs->len);
		/* each SGE inside one local slice, with its lkey */
		for (unsigned int k = 0; k < w->nsge; k++) {
			const struct rd_lslice *ls =
			    rmig_rd_mrs_find(&fx.local, mem[0] + expect_off + a);

			assert_int_equal(w->sge[k].addr, (uintptr_t)(mem[0] + expect_off + a));
			assert_int_equal(w->sge[k].lkey, ls->mr->lkey);
			assert_true(expect_off + a + w->sge[k].length <=
				    (uint64_t)(ls->addr - mem[0]) + ls->len);
			a += w->sge[k].length;
		}
		expect_off += w->len;
		writes++;
	}
	assert_int_equal(expect_off, 16 * 4096);
	/* remote slices of 3 pages: 16 pages need 6 WRITEs, some with 2 SGEs (local cut at 5) */
	assert_int_equal(writes, 6);
	assert_int_equal(fk.log[i].opcode, IBV_WR_SEND_WITH_IMM);

	/* two local runs landing back to back remotely: one WRITE, two SGEs */
	fk.nlog = 0;
	seg[0] = (struct rmig_seg){mem[0] + 4096, 0, 4096, 0, 0};
	seg[1] = (struct rmig_seg){mem[1], 4096, 4096, 0, 0};
	assert_int_equal(rmig_rd_send(&c->base, "h", 1, seg, 2), 0);
	assert_int_equal(fk.log[0].opcode, IBV_WR_RDMA_WRITE);
	assert_int_equal(fk.log[0].nsge, 2);
	assert_int_equal(fk.log[0].len, 8192);
	assert_int_equal(rmig_rd_flush(&c->base), 0);
	conn_free(c);
}

void test_segment_checks(void **state)
{
	struct rd_conn *c;
	struct rmig_seg seg;
	uint8_t other[4096];

	c = conn_new(64, 8, 1u << 20);
	seg = (struct rmig_seg){mem[0], 0, 4096, 0, 0};
	/* before the MR table arrived */
	assert_int_equal(rmig_rd_send(&c->base, "h", 1, &seg, 1), -EINVAL);
	assert_non_null(strstr(c->base.err.msg, "MR table"));
	conn_free(c);

	tables(1u << 20, 1u << 20);
	c = conn_new(64, 8, 1u << 20);
	seg = (struct rmig_seg){mem[0], (1u << 20) - 4096, 8192, 0, 0};
	assert_int_equal(rmig_rd_send(&c->base, "h", 1, &seg, 1), -EINVAL);
	assert_non_null(strstr(c->base.err.msg, "outside"));
	conn_free(c);
	c = conn_new(64, 8, 1u << 20);
	seg = (struct rmig_seg){other, 0, 4096, 0, 0};
	assert_int_equal(rmig_rd_send(&c->base, "h", 1, &seg, 1), -EINVAL);
	assert_non_null(strstr(c->base.err.msg, "not in a registered block"));
	conn_free(c);
}

static void check_wc_error(enum ibv_wc_status st, int code, const char *name, const char *prose)
{
	struct rd_conn *c;
	struct rmig_seg seg = {mem[0], 0, 65536, 0, 0};

	fk_reset();
	fx.remote = (struct rd_remote){0};
	tables(1u << 20, 1u << 20);
	c = conn_new(64, 8, 1u << 20);
	fk.fail_status = st;
	assert_int_equal(rmig_rd_send(&c->base, "hdr", 3, &seg, 1), 0);
	assert_int_equal(rmig_rd_flush(&c->base), code);
	if (!strstr(c->base.err.msg, name) || !strstr(c->base.err.msg, prose) ||
	    !strstr(c->base.err.msg, "test conn"))
		fail_msg("status %d: message '%s'", st, c->base.err.msg);
	/* sticky: every later call fails the same way */
	assert_int_equal(rmig_rd_send(&c->base, "x", 1, NULL, 0), code);
	assert_int_equal(rmig_rd_flush(&c->base), code);
	conn_free(c);
	rmig_rd_mrs_release(&fx.local, &fake_ops);
	rmig_rd_remote_release(&fx.remote);
}

void test_wc_errors(void **state)
{
	check_wc_error(IBV_WC_RETRY_EXC_ERR, -ECONNRESET, "IBV_WC_RETRY_EXC_ERR",
		       ibv_wc_status_str(IBV_WC_RETRY_EXC_ERR));
	check_wc_error(IBV_WC_REM_ACCESS_ERR, -EACCES, "IBV_WC_REM_ACCESS_ERR",
		       ibv_wc_status_str(IBV_WC_REM_ACCESS_ERR));
	check_wc_error(IBV_WC_WR_FLUSH_ERR, -ECONNRESET, "IBV_WC_WR_FLUSH_ERR", "RDMA_WRITE");
	check_wc_error(IBV_WC_RNR_RETRY_EXC_ERR, -EIO, "IBV_WC_RNR_RETRY_EXC_ERR", "RDMA_WRITE");
}

void test_post_send_failure(void **state)
{
	struct rd_conn *c;
	struct rmig_seg seg = {mem[0], 0, 65536, 0, 0};

	tables(1u << 20, 1u << 20);
	c = conn_new(64, 8, 1u << 20);
	fk.post_send_fail_at = 1;
	fk.post_send_ret = -ENOMEM;
	assert_int_equal(rmig_rd_send(&c->base, "hdr", 3, &seg, 1), -ENOMEM);
	assert_non_null(strstr(c->base.err.msg, "ibv_post_send failed"));
	assert_non_null(strstr(c->base.err.msg, "RDMA_WRITE"));
	assert_int_equal(rmig_rd_flush(&c->base), -ENOMEM);
	assert_int_equal(fk.posted, 0);
	conn_free(c);
}
