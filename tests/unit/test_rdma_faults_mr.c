// SPDX-License-Identifier: MIT
/*
 * The rdma transport without hardware: registration and MR tables (the fake verbs are in
 * rdma_faults_fixture.c).
 *
 * Memory registration (ENOMEM naming RLIMIT_MEMLOCK, the memlock verdict,
 * slices and lookup) and the MR table exchanged at connect: malformed
 * tables rejected with a reason, encoding without room.
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

/* ------------------------------------------------------ registration */

void test_reg_enomem_names_memlock(void **state)
{
	struct rd_mrs t;
	struct rmig_msgbuf err = {""};
	uint64_t ns = 0;
	int ret;

	fk.reg_fail_at = 3; /* two slices registered, the third fails */
	fk.reg_ret = -ENOMEM;
	ret = rmig_rd_mrs_register(&t, &fake_ops, &fk_pd, blocks, NB, 256 << 10,
				   IBV_ACCESS_LOCAL_WRITE, &ns, &err);
	assert_int_equal(ret, -ENOMEM);
	assert_non_null(strstr(err.msg, "RLIMIT_MEMLOCK"));
	assert_non_null(strstr(err.msg, "ibv_reg_mr"));
	assert_int_equal(fk.deregs, 2); /* what was registered is undone */

	fk.regs = fk.deregs = 0;
	fk.reg_ret = -EPERM; /* also a pinning limit: same kind of message */
	ret = rmig_rd_mrs_register(&t, &fake_ops, &fk_pd, blocks, NB, 256 << 10,
				   IBV_ACCESS_LOCAL_WRITE, &ns, &err);
	assert_int_equal(ret, -ENOMEM);
	assert_non_null(strstr(err.msg, "RLIMIT_MEMLOCK"));

	fk.regs = fk.deregs = 0;
	fk.reg_ret = -EFAULT;
	ret = rmig_rd_mrs_register(&t, &fake_ops, &fk_pd, blocks, NB, 256 << 10,
				   IBV_ACCESS_LOCAL_WRITE, &ns, &err);
	assert_int_equal(ret, -EFAULT);
	assert_null(strstr(err.msg, "RLIMIT_MEMLOCK"));
}

void test_memlock_verdict(void **state)
{
	struct rmig_msgbuf err = {""};

	assert_int_equal(rmig_rd_memlock_verdict(1u << 30, 8u << 20, false, &err), -ENOMEM);
	assert_non_null(strstr(err.msg, "RLIMIT_MEMLOCK is 8388608 bytes"));
	assert_non_null(strstr(err.msg, "1073741824"));
	assert_int_equal(rmig_rd_memlock_verdict(1u << 30, 8u << 20, true, &err), 0);
	assert_int_equal(rmig_rd_memlock_verdict(1u << 30, (uint64_t)RLIM_INFINITY, false, &err),
			 0);
	assert_int_equal(rmig_rd_memlock_verdict(4096, 8192, false, &err), 0);
}

void test_slices_and_lookup(void **state)
{
	const struct rd_lslice *ls;
	const struct rd_rslice *rs;

	tables(300 << 10, 256 << 10);
	/* 1 MiB in 300 KiB slices: 4; 40 KiB: 1 */
	assert_int_equal(fx.local.nslices, 5);
	assert_int_equal(fx.remote.nslices, 4 + 1);
	ls = rmig_rd_mrs_find(&fx.local, mem[0] + (300 << 10));
	assert_ptr_equal(ls->addr, mem[0] + (300 << 10));
	ls = rmig_rd_mrs_find(&fx.local, mem[0] + (300 << 10) - 1);
	assert_ptr_equal(ls->addr, mem[0]);
	assert_non_null(rmig_rd_mrs_find(&fx.local, mem[1] + 40959));
	assert_null(rmig_rd_mrs_find(&fx.local, mem[1] + 40960));
	rs = rmig_rd_remote_find(&fx.remote, 0, (512 << 10) + 5);
	assert_int_equal(rs->off, 512 << 10);
	assert_int_equal(rs->len, 256 << 10);
	assert_null(rmig_rd_remote_find(&fx.remote, 0, 1u << 20));
	assert_null(rmig_rd_remote_find(&fx.remote, 2, 0));
}

/* ---------------------------------------------------------- MR table */

static size_t good_table(uint8_t *buf, size_t cap)
{
	struct rd_mrs t;
	struct rmig_msgbuf err;
	uint64_t ns = 0;
	size_t len = cap;

	assert_int_equal(rmig_rd_mrs_register(&t, &fake_ops, &fk_pd, blocks, NB, 512 << 10,
					      IBV_ACCESS_REMOTE_WRITE, &ns, &err),
			 0);
	assert_int_equal(rmig_rd_mrt_encode(&t, NULL, buf, &len, &err), 0);
	rmig_rd_mrs_release(&t, &fake_ops);
	return len;
}

static void expect_reject(const uint8_t *buf, size_t len, const char *words)
{
	struct rd_remote r;
	struct rmig_msgbuf err = {""};

	assert_int_equal(rmig_rd_mrt_decode(buf, len, blocks, NB, &r, &err), -EPROTO);
	if (!strstr(err.msg, words))
		fail_msg("expected '%s' in: %s", words, err.msg);
	assert_null(r.slices);
}

void test_mrt_rejects_malformed(void **state)
{
	uint8_t good[1024], b[1024];
	size_t len = good_table(good, sizeof(good));
	struct rd_remote r;
	struct rmig_msgbuf err;
	size_t slice0 = RD_MRT_HDR + RD_MRT_BLOCK;

	/* 2 blocks, 2 + 1 slices */
	assert_int_equal(len, RD_MRT_HDR + 2 * RD_MRT_BLOCK + 3 * RD_MRT_SLICE);
	assert_int_equal(rmig_rd_mrt_decode(good, len, blocks, NB, &r, &err), 0);
	rmig_rd_remote_release(&r);

	/* every truncation */
	for (size_t n = 0; n < len; n++) {
		assert_int_equal(rmig_rd_mrt_decode(good, n, blocks, NB, &r, &err), -EPROTO);
		assert_null(r.slices);
	}
	expect_reject(NULL, 0, "truncated");
	memcpy(b, good, len);
	b[len] = 0;
	expect_reject(b, len + 1, "counts say");
	memcpy(b, good, len);
	b[0] ^= 1;
	expect_reject(b, len, "magic");
	memcpy(b, good, len);
	rmig_put_be16(b + 4, 3);
	expect_reject(b, len, "version 3");
	memcpy(b, good, len);
	rmig_put_be16(b + 6, 1);
	expect_reject(b, len, "flags");
	memcpy(b, good, len);
	rmig_put_be32(b + 8, 3);
	expect_reject(b, len, "3 blocks, the source has 2");
	memcpy(b, good, len);
	rmig_put_be32(b + 12, 0xffffffff);
	expect_reject(b, len, "slices cannot fit");
	/* a block length that differs from ours */
	memcpy(b, good, len);
	rmig_put_be64(b + RD_MRT_HDR, mem_len[0] + 4096);
	expect_reject(b, len, "block 0 (ram0) is");
	/* a slice count of zero, or past the total */
	memcpy(b, good, len);
	rmig_put_be32(b + RD_MRT_HDR + 8, 0);
	expect_reject(b, len, "bad slice count");
	memcpy(b, good, len);
	rmig_put_be32(b + RD_MRT_HDR + 8, 4);
	expect_reject(b, len, "bad slice count");
	/* a slice running past its block, a zero-length one, one short of covering */
	memcpy(b, good, len);
	rmig_put_be64(b + slice0 + 8, mem_len[0] + 1);
	expect_reject(b, len, "overruns the block");
	memcpy(b, good, len);
	rmig_put_be64(b + slice0 + 8, 0);
	expect_reject(b, len, "overruns the block");
	memcpy(b, good, len);
	rmig_put_be64(b + slice0 + 8, (512 << 10) - 4096);
	expect_reject(b, len, "slices cover");
	/* an address that wraps, non-zero padding */
	memcpy(b, good, len);
	rmig_put_be64(b + slice0, UINT64_MAX - 10);
	expect_reject(b, len, "wraps");
	memcpy(b, good, len);
	rmig_put_be32(b + slice0 + 20, 1);
	expect_reject(b, len, "bad state"); /* pending only in version 2 */
	memcpy(b, good, len);
	rmig_put_be32(b + RD_MRT_HDR + 12, 1);
	expect_reject(b, len, "padding");
}

/* good as version 2 (streamed registration): status table at 0x5000, rkey 0x77; slice 0 pending */
static size_t streamed_table(const uint8_t *good, size_t len, uint8_t *b)
{
	memcpy(b, good, RD_MRT_HDR);
	rmig_put_be16(b + 4, RD_MRT_VERSION2);
	rmig_put_be64(b + RD_MRT_HDR, 0x5000);
	rmig_put_be32(b + RD_MRT_HDR + 8, 0x77);
	rmig_put_be32(b + RD_MRT_HDR + 12, 0);
	memcpy(b + RD_MRT_HDR + RD_MRT_HDR2_EXT, good + RD_MRT_HDR, len - RD_MRT_HDR);
	rmig_put_be32(b + RD_MRT_HDR + RD_MRT_HDR2_EXT + RD_MRT_BLOCK + 16, 0);
	rmig_put_be32(b + RD_MRT_HDR + RD_MRT_HDR2_EXT + RD_MRT_BLOCK + 20, RD_MRT_PENDING);
	return len + RD_MRT_HDR2_EXT;
}

void test_mrt_streamed(void **state)
{
	uint8_t good[1024], v2[1024], b[1024];
	size_t len = good_table(good, sizeof(good)), n = streamed_table(good, len, v2);
	size_t slice0 = RD_MRT_HDR + RD_MRT_HDR2_EXT + RD_MRT_BLOCK;
	struct rd_remote r;
	struct rmig_msgbuf err;

	assert_int_equal(rmig_rd_mrt_decode(v2, n, blocks, NB, &r, &err), 0);
	assert_true(r.streamed);
	assert_int_equal(r.status_addr, 0x5000);
	assert_int_equal(r.status_rkey, 0x77);
	assert_false(atomic_load(&r.slices[0].ready));
	assert_true(atomic_load(&r.slices[1].ready));
	assert_false(atomic_load(&r.all_ready));
	rmig_rd_remote_release(&r);
	/* every truncation, the header's extension included */
	for (size_t k = 0; k < n; k++) {
		assert_int_equal(rmig_rd_mrt_decode(v2, k, blocks, NB, &r, &err), -EPROTO);
		assert_null(r.slices);
	}
	/* a pending slice with an rkey, an unknown state, padding in the extension */
	memcpy(b, v2, n);
	rmig_put_be32(b + slice0 + 16, 5);
	expect_reject(b, n, "bad state");
	memcpy(b, v2, n);
	rmig_put_be32(b + slice0 + 20, 2);
	expect_reject(b, n, "bad state");
	memcpy(b, v2, n);
	rmig_put_be32(b + RD_MRT_HDR + 12, 1);
	expect_reject(b, n, "header padding");
	/* the status entries: a registered slice's, and what reads as pending */
	assert_int_equal(rd_st_ready(0x1234) >> 32, 0x1234);
	assert_int_not_equal(rd_st_ready(0) , 0);
	assert_int_not_equal(rd_st_ready(0), RD_ST_FAILED);
	assert_int_not_equal(rd_st_ready(0x1234) & 0xffffffffu, 0);
}

void test_mrt_encode_no_room(void **state)
{
	struct rd_mrs t;
	struct rmig_msgbuf err;
	uint8_t buf[32];
	size_t len = sizeof(buf);
	uint64_t ns = 0;

	assert_int_equal(rmig_rd_mrs_register(&t, &fake_ops, &fk_pd, blocks, NB, 0,
					      IBV_ACCESS_REMOTE_WRITE, &ns, &err),
			 0);
	assert_int_equal(rmig_rd_mrt_encode(&t, NULL, buf, &len, &err), -ENOSPC);
	rmig_rd_mrs_release(&t, &fake_ops);
}
