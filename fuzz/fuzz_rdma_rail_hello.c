// SPDX-License-Identifier: MIT
/*
 * A rail's hello (transport/rdma/rails_fabric.c rmig_rl_hello_decode): the
 * destination reads it from a source that has not authenticated yet, and
 * its device names go into error messages. A refusal is -EPROTO or, for
 * another version, -EPROTONOSUPPORT, always with a reason; an accepted
 * hello is exactly RL_HELLO_LEN bytes, describes a rail inside the count,
 * and encodes back to the same bytes (so no field is read loosely).
 */
#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "transport/rdma/rails_fabric.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t again[RL_HELLO_LEN];
	struct rl_hello h;
	char why[160] = "";
	uint8_t *in = NULL;
	int ret;

	/* an exact copy, so that a read past @size is caught */
	if (size) {
		in = malloc(size);
		FUZZ_CHECK(in, "out of memory");
		memcpy(in, data, size);
	}
	ret = rmig_rl_hello_decode(in, size, &h, why, sizeof(why));
	if (ret) {
		FUZZ_CHECK(ret == -EPROTO || ret == -EPROTONOSUPPORT, "refused with %d", ret);
		FUZZ_CHECK(why[0], "refused without a reason");
		goto out;
	}
	FUZZ_CHECK(size == RL_HELLO_LEN, "accepted %zu bytes", size);
	FUZZ_CHECK(h.nrails >= 1 && h.nrails <= RD_RAILS_MAX && h.rail < h.nrails,
		   "rail %u of %u", h.rail, h.nrails);
	FUZZ_CHECK(strlen(h.fab.dev) < sizeof(h.fab.dev) &&
		       strlen(h.fab.netdev) < sizeof(h.fab.netdev),
		   "names not terminated");
	rmig_rl_hello_encode(again, &h);
	FUZZ_CHECK(!memcmp(again, in, RL_HELLO_LEN), "re-encoded hello differs");
out:
	free(in);
	return 0;
}
