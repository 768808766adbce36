// SPDX-License-Identifier: MIT
/*
 * The 24-byte header every message starts with (core/wire.c): magic,
 * version, a known type, only the flags that type may carry, a body no
 * larger than RMIG_WIRE_BODY_MAX. An accepted header encodes back to the
 * same bytes; a refused one says why.
 */
#include <errno.h>
#include <string.h>

#include "core/wire.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t again[sizeof(struct rmig_wire_hdr)];
	char why[256];
	struct rmig_hdr h;
	int ret;

	if (size < sizeof(struct rmig_wire_hdr))
		return 0;
	why[0] = '\0';
	ret = rmig_hdr_decode(data, &h, why, sizeof(why));
	if (ret) {
		FUZZ_CHECK(ret == -EPROTO && why[0], "refused with %d, reason '%s'", ret, why);
		return 0;
	}
	FUZZ_CHECK(h.type >= 1 && h.type <= RMIG_MSG_MAX_TYPE, "type %u", h.type);
	FUZZ_CHECK(strcmp(rmig_msg_name(h.type), "unknown"), "type %u has no name", h.type);
	FUZZ_CHECK(!(h.flags & ~rmig_wf_allowed(h.type)), "flags 0x%x on %s", h.flags,
		   rmig_msg_name(h.type));
	/* the per-type flags: PLACED only on RAM, POSTCOPY only on WELCOME */
	FUZZ_CHECK(!(h.flags & RMIG_WF_PLACED) || h.type == RMIG_MSG_RAM, "PLACED on %u", h.type);
	FUZZ_CHECK(!(h.flags & RMIG_WF_POSTCOPY) || h.type == RMIG_MSG_WELCOME, "POSTCOPY on %u",
		   h.type);
	FUZZ_CHECK(h.len <= RMIG_WIRE_BODY_MAX, "body of %u bytes", h.len);
	rmig_hdr_encode(again, h.type, h.flags, h.len, h.seq);
	FUZZ_CHECK(!memcmp(again, data, sizeof(again)), "re-encoded header differs");
	return 0;
}
