// SPDX-License-Identifier: MIT
/*
 * HELLO, the source's handshake (core/proto.c rmig_hello_check): channel
 * and packet limits, then the block table against the destination's own.
 * An accepted HELLO is what rmig_hello_encode() writes for the same fields,
 * byte for byte outside the padding.
 */
#include <errno.h>
#include <string.h>

#include "core/proto.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rmig_block blocks[FUZZ_NBLOCKS];
	struct rmig_hello h;
	const uint8_t *p, *q;
	size_t len = 0;
	void *out = NULL;
	char why[512];
	int ret;

	fuzz_blocks(blocks);
	why[0] = '\0';
	ret = rmig_hello_check(data, size, blocks, FUZZ_NBLOCKS, FUZZ_MAX_CHANNELS, &h, why,
			       sizeof(why));
	if (ret) {
		FUZZ_CHECK(ret == -EPROTO && why[0], "refused with %d, reason '%s'", ret, why);
		return 0;
	}
	FUZZ_CHECK(h.channels >= 1 && h.channels <= FUZZ_MAX_CHANNELS, "%u channels", h.channels);
	FUZZ_CHECK(h.pages_per_packet >= 1 && h.pages_per_packet <= RMIG_MAX_PAGES_PER_PACKET,
		   "%u pages per packet", h.pages_per_packet);
	FUZZ_CHECK(h.nblocks == FUZZ_NBLOCKS, "%u blocks", h.nblocks);

	FUZZ_CHECK(!rmig_hello_encode(&h, blocks, FUZZ_NBLOCKS, &out, &len), "encode failed");
	FUZZ_CHECK(len == size, "accepted %zu bytes, the encoder writes %zu", size, len);
	FUZZ_CHECK(!memcmp(out, data, sizeof(struct rmig_wire_hello)), "fixed part differs");
	p = data + sizeof(struct rmig_wire_hello);
	q = (const uint8_t *)out + sizeof(struct rmig_wire_hello);
	for (unsigned int i = 0; i < FUZZ_NBLOCKS; i++) {
		size_t nl = strlen(blocks[i].name);

		/* all but the entry's pad field and the name's padding */
		FUZZ_CHECK(!memcmp(p, q, RMIG_OFF(rmig_wire_block, pad)), "block %u entry differs",
			   i);
		p += sizeof(struct rmig_wire_block);
		q += sizeof(struct rmig_wire_block);
		FUZZ_CHECK(!memcmp(p, q, nl), "block %u name differs", i);
		p += rmig_pad8(nl);
		q += rmig_pad8(nl);
	}
	FUZZ_CHECK(p == data + size, "layout walk ended %td bytes off", p - (data + size));
	free(out);
	return 0;
}
