// SPDX-License-Identifier: MIT
/*
 * The rdma transport without hardware: stream and credits (the fake verbs are in
 * rdma_faults_fixture.c).
 *
 * The stream: credits bound the SENDs, received messages are reassembled,
 * credits return in their own message, protocol errors, a peer's close,
 * shutdown() failing later calls, recv_pages not offered.
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

/* ---------------------------------------------------------- stream */

void test_credits_bound_sends(void **state)
{
	struct rd_conn *c;
	uint8_t *big = malloc(2u << 20);

	/* a small window that returns credits rarely */
	fk.window = 6;
	fk.credit_batch = 3;
	c = conn_new(64, 8, 1u << 20);
	memset(big, 7, 2u << 20);
	assert_int_equal(rmig_rd_send(&c->base, big, 2u << 20, NULL, 0), 0);
	assert_int_equal(rmig_rd_flush(&c->base), 0);
	/* 2 MiB in 64 KiB SENDs; the fake asserted the window on each */
	assert_int_equal(fk.data_sends, 32);
	assert_int_equal(c->base.wire_bytes, 2u << 20);
	/* the SENDs carried the credits owed for the peer's credit messages */
	conn_free(c);
	free(big);
}

/* Deliver @len bytes as one receive into the next posted buffer. */
static void deliver(struct rd_conn *c, const void *data, uint32_t len, uint32_t imm)
{
	struct ibv_wc wc = {0};

	assert_true(fk.rq_head != fk.rq_tail);
	memcpy((void *)(uintptr_t)fk.rq[fk.rq_tail % FK_LOG].addr, data, len);
	wc.wr_id = fk.rq_id[fk.rq_tail++ % FK_LOG];
	wc.opcode = IBV_WC_RECV;
	wc.wc_flags = IBV_WC_WITH_IMM;
	wc.byte_len = len;
	wc.imm_data = htobe32(imm);
	fk_push_wc(&wc);
}

void test_recv_reassembles(void **state)
{
	struct rd_conn *c;
	uint8_t src[200000], dst[200000];
	uint32_t cuts[] = {1, 65536, 3, 100000 - 65540, 65536, 200000 - 100000 - 65536};
	uint32_t off = 0;

	for (size_t i = 0; i < sizeof(src); i++)
		src[i] = (uint8_t)(i * 7 + i / 251);
	c = conn_new(64, 8, 1u << 20);
	for (size_t i = 0; i < RMIG_ARRAY_SIZE(cuts); i++) {
		deliver(c, src + off, cuts[i], RD_IMM(RD_IMM_DATA, 0));
		off += cuts[i];
	}
	assert_int_equal(off, sizeof(src));
	/* read in sizes unrelated to the SENDs */
	assert_int_equal(rmig_rd_recv(&c->base, dst, 10, 1000), 0);
	assert_int_equal(rmig_rd_recv(&c->base, dst + 10, 70000, 1000), 0);
	assert_int_equal(rmig_rd_recv(&c->base, dst + 70010, sizeof(dst) - 70010, 1000), 0);
	assert_memory_equal(src, dst, sizeof(src));
	/* every consumed buffer went back to the receive queue */
	assert_int_equal(fk.recv_posts, RD_RECV_BUFS + 6);
	/* nothing more: a timeout, and the stream is still usable */
	assert_int_equal(rmig_rd_recv(&c->base, dst, 1, 50), -ETIMEDOUT);
	assert_int_equal(c->failed, 0);
	conn_free(c);
}

/* Consuming half the window without sending returns the credits in one credit-only SEND. */
void test_credit_return_message(void **state)
{
	struct rd_conn *c;
	uint8_t b[16] = {0};

	c = conn_new(64, 8, 1u << 20);
	for (unsigned int i = 0; i < RD_RECV_BUFS / 2; i++)
		deliver(c, b, sizeof(b), RD_IMM(RD_IMM_DATA, 0));
	for (unsigned int i = 0; i < RD_RECV_BUFS / 2; i++)
		assert_int_equal(rmig_rd_recv(&c->base, b, sizeof(b), 1000), 0);
	assert_int_equal(fk.credit_sends, 1);
	assert_int_equal(fk.log[0].len, 0);
	assert_int_equal(RD_IMM_TYPE(fk.log[0].imm), RD_IMM_CREDIT);
	assert_int_equal(RD_IMM_CREDITS(fk.log[0].imm), RD_RECV_BUFS / 2);
	assert_int_equal(c->owed, 0);
	conn_free(c);
}

void test_recv_protocol_errors(void **state)
{
	struct rd_conn *c;
	uint8_t b[16] = {0};

	/* a data message with the credit type */
	c = conn_new(64, 8, 1u << 20);
	deliver(c, b, sizeof(b), RD_IMM(RD_IMM_CREDIT, 0));
	assert_int_equal(rmig_rd_recv(&c->base, b, 1, 1000), -EPROTO);
	assert_non_null(strstr(c->base.recv_err.msg, "malformed"));
	conn_free(c);
	/* more credits back than were lent */
	c = conn_new(64, 8, 1u << 20);
	deliver(c, b, 0, RD_IMM(RD_IMM_CREDIT, 1));
	assert_int_equal(rmig_rd_recv(&c->base, b, 1, 1000), -EPROTO);
	assert_non_null(strstr(c->base.recv_err.msg, "returned 1 credits"));
	conn_free(c);
	/* a receive error names its status */
	c = conn_new(64, 8, 1u << 20);
	{
		struct ibv_wc wc = {.wr_id = RD_WRID_RECV | 0, .status = IBV_WC_LOC_LEN_ERR};

		fk_push_wc(&wc);
	}
	assert_int_equal(rmig_rd_recv(&c->base, b, 1, 1000), -EPROTO);
	assert_non_null(strstr(c->base.recv_err.msg, "IBV_WC_LOC_LEN_ERR"));
	conn_free(c);
}

/* A flushed receive queue (peer gone) ends recv with -ECONNRESET, after the data before it. */
void test_recv_after_peer_close(void **state)
{
	struct rd_conn *c;
	uint8_t b[8];
	struct ibv_wc wc = {.status = IBV_WC_WR_FLUSH_ERR};

	c = conn_new(64, 8, 1u << 20);
	deliver(c, "last", 4, RD_IMM(RD_IMM_DATA, 0));
	wc.wr_id = fk.rq_id[fk.rq_tail % FK_LOG];
	fk_push_wc(&wc);
	assert_int_equal(rmig_rd_recv(&c->base, b, 4, 1000), 0);
	assert_memory_equal(b, "last", 4);
	assert_int_equal(rmig_rd_recv(&c->base, b, 4, 1000), -ECONNRESET);
	assert_non_null(strstr(c->base.recv_err.msg, "peer closed"));
	conn_free(c);
}

void test_shutdown_fails_calls(void **state)
{
	struct rd_conn *c;
	uint8_t b[8];

	c = conn_new(64, 8, 1u << 20);
	rmig_rd_conn_shutdown(c);
	assert_int_equal(rmig_rd_recv(&c->base, b, sizeof(b), -1), -ECANCELED);
	assert_int_equal(rmig_rd_send(&c->base, "x", 1, NULL, 0), -ECANCELED);
	assert_int_equal(rmig_rd_flush(&c->base), -ECANCELED);
	conn_free(c);
	/* the xport's shutdown reaches its conns too */
	c = conn_new(64, 8, 1u << 20);
	atomic_store(&fx.down, true);
	assert_int_equal(rmig_rd_recv(&c->base, b, sizeof(b), -1), -ECANCELED);
	atomic_store(&fx.down, false);
	conn_free(c);
}

void test_recv_pages_is_enosys(void **state)
{
	struct rd_conn *c = conn_new(64, 8, 1u << 20);
	struct iovec iov = {mem[0], 4096};

	assert_int_equal(c->base.ops->recv_pages(&c->base, &iov, 1), -ENOSYS);
	assert_non_null(strstr(c->base.recv_err.msg, "recv_pages"));
	conn_free(c);
}
