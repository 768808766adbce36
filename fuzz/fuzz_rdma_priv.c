// SPDX-License-Identifier: MIT
/*
 * rdma_cm connection private data (transport/rdma/conn.c
 * rmig_rd_cm_priv_decode): magic, version, credits and receive buffer size
 * in range. rdma_cm pads private data, so longer input is normal; an
 * accepted one encodes back to its first 16 bytes (magic, version, flags,
 * buffers), and to the rail's vid in bytes 16-19 when the peer sent them.
 */
#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "transport/rdma/rdma.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t again[RD_CM_PRIV_WIRE];
	struct rd_cm_priv p;
	uint8_t *in = NULL;
	int ret;

	/* an exact copy, so a read past @size is caught; size 0 as the NULL rdma_cm gives */
	if (size) {
		in = malloc(size);
		FUZZ_CHECK(in, "out of memory");
		memcpy(in, data, size);
	}
	ret = rmig_rd_cm_priv_decode(in, size, &p);
	if (ret) {
		FUZZ_CHECK(ret == -EPROTO || ret == -EPROTONOSUPPORT, "refused with %d", ret);
		goto out;
	}
	FUZZ_CHECK(size >= RD_CM_PRIV_LEN, "accepted %zu bytes", size);
	FUZZ_CHECK(p.nbufs >= 4 && p.nbufs <= 0xffff, "%u receive buffers", p.nbufs);
	FUZZ_CHECK(p.buf_size >= 4096 && p.buf_size <= (16u << 20), "buffers of %u bytes",
		   p.buf_size);
	rmig_rd_cm_priv_encode(again, &p);
	FUZZ_CHECK(!memcmp(again, in, RD_CM_PRIV_LEN), "re-encoded private data differs");
	if (size >= RD_CM_PRIV_WIRE)
		FUZZ_CHECK(!memcmp(again + RD_CM_PRIV_LEN, in + RD_CM_PRIV_LEN,
				   RD_CM_PRIV_WIRE - RD_CM_PRIV_LEN),
			   "re-encoded vid differs");
	else
		FUZZ_CHECK(p.vid == 0, "vid %u from %zu bytes", p.vid, size);
out:
	free(in);
	return 0;
}
