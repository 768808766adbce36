// SPDX-License-Identifier: MIT
/*
 * The rdma transport without hardware: connection manager and devices (the fake verbs are in
 * rdma_faults_fixture.c).
 *
 * Setting up: no RDMA device, rdma_cm event errors, the private data of
 * the connect request.
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

/* ------------------------------------------------------- setup paths */

void test_no_device(void **state)
{
	struct rmig_opts o;
	struct rmig_xport_params p = {&o, blocks, NB, 2};
	struct rmig_xport *x = NULL;
	struct rmig_conn *ctl = NULL;
	struct rmig_msgbuf err = {""};

	rmig_opts_init(&o);
	assert_int_equal(rmig_rdma_ops.connect(&p, "10.0.0.1:4444", &x, &ctl, &err), -ENODEV);
	assert_non_null(strstr(err.msg, "no RDMA device for address 10.0.0.1:4444"));
	assert_non_null(strstr(err.msg, "devices found: none"));
	assert_int_equal(rmig_rdma_ops.listen(&p, "10.0.0.1:0", &x, &err), -ENODEV);
	assert_non_null(strstr(err.msg, "devices found: none"));
	/* devices exist, but not for this address */
	fk.devname = "mlx5_0";
	assert_int_equal(rmig_rdma_ops.listen(&p, "10.0.0.1:0", &x, &err), -ENODEV);
	assert_non_null(strstr(err.msg, "devices found: mlx5_0"));
	assert_int_equal(rmig_rdma_ops.connect(&p, "nonsense", &x, &ctl, &err), -EINVAL);
}

void test_cm_event_errors(void **state)
{
	struct rdma_cm_event ev = {0};
	struct rmig_msgbuf err = {""};

	ev.event = RDMA_CM_EVENT_REJECTED;
	ev.status = 8;
	assert_int_equal(rmig_rd_cm_event_error(&ev, "connecting", &err), -ECONNREFUSED);
	assert_non_null(strstr(err.msg, "nothing listens"));
	ev.event = RDMA_CM_EVENT_UNREACHABLE;
	ev.status = -ETIMEDOUT;
	assert_int_equal(rmig_rd_cm_event_error(&ev, "connecting", &err), -ETIMEDOUT);
	assert_non_null(strstr(err.msg, "RDMA_CM_EVENT_UNREACHABLE"));
	ev.event = RDMA_CM_EVENT_ADDR_ERROR;
	ev.status = -ENODEV;
	assert_int_equal(rmig_rd_cm_event_error(&ev, "resolving", &err), -ENODEV);
	ev.event = RDMA_CM_EVENT_ROUTE_ERROR;
	ev.status = -ENETUNREACH;
	assert_int_equal(rmig_rd_cm_event_error(&ev, "route", &err), -EHOSTUNREACH);
	ev.event = RDMA_CM_EVENT_DISCONNECTED;
	assert_int_equal(rmig_rd_cm_event_error(&ev, "x", &err), -ECONNRESET);
	ev.event = RDMA_CM_EVENT_CONNECT_ERROR;
	ev.status = -ECONNRESET;
	assert_int_equal(rmig_rd_cm_event_error(&ev, "x", &err), -ECONNABORTED);
}

void test_cm_private_data(void **state)
{
	struct rd_cm_priv in = {32, 65536}, out;
	uint8_t b[RD_CM_PRIV_LEN + 40] = {0};

	rmig_rd_cm_priv_encode(b, &in);
	/* IB CM pads private data: longer is fine */
	assert_int_equal(rmig_rd_cm_priv_decode(b, sizeof(b), &out), 0);
	assert_int_equal(out.nbufs, 32);
	assert_int_equal(out.buf_size, 65536);
	assert_int_equal(rmig_rd_cm_priv_decode(b, RD_CM_PRIV_LEN - 1, &out), -EPROTO);
	assert_int_equal(rmig_rd_cm_priv_decode(NULL, 0, &out), -EPROTO);
	b[0] ^= 1;
	assert_int_equal(rmig_rd_cm_priv_decode(b, sizeof(b), &out), -EPROTO);
	b[0] ^= 1;
	rmig_put_be16(b + 4, 9);
	assert_int_equal(rmig_rd_cm_priv_decode(b, sizeof(b), &out), -EPROTONOSUPPORT);
	in.nbufs = 2; /* too small a window for a reserved credit */
	rmig_rd_cm_priv_encode(b, &in);
	assert_int_equal(rmig_rd_cm_priv_decode(b, sizeof(b), &out), -EPROTO);
}
