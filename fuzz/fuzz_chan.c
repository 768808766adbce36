// SPDX-License-Identifier: MIT
/*
 * Channel message bodies as the destination checks them before it touches
 * RAM (core/msgcheck.c, called by core/dst/dst_chan.c): RAM (counts, length, block,
 * the PLACED flag against the transport, every offset) and DEV chunk
 * headers (id and data lengths, an id without NUL).
 *
 * Input: byte 0 picks the message and the setting (bit 0: DEV, bit 1: the
 * transport places data, bit 2: the header says PLACED), bytes 1-2 the
 * pages per packet HELLO agreed on (1..4096); the body follows.
 */
#include <errno.h>
#include <string.h>

#include "core/msgcheck.h"
#include "core/wire.h"
#include "fuzz.h"

static void fuzz_ram(const uint8_t *body, uint32_t len, uint8_t sel, uint32_t ppp)
{
	uint32_t flags = (sel & 4) ? RMIG_WF_PLACED : 0;
	struct rmig_block blocks[FUZZ_NBLOCKS];
	bool placed = sel & 2;
	struct rmig_ram_msg m;
	const struct rmig_block *b;
	uint64_t *offs;
	char why[RMIG_ERRMSG_MAX];
	uint8_t *again;
	uint32_t n;

	fuzz_blocks(blocks);
	why[0] = '\0';
	if (rmig_ram_check_head(body, len, flags, blocks, FUZZ_NBLOCKS, ppp, placed, "fuzz", &m,
				why, sizeof(why))) {
		FUZZ_CHECK(why[0], "RAM refused without a reason");
		return;
	}
	n = m.normal + m.zero;
	FUZZ_CHECK(m.normal <= ppp && m.zero <= ppp && n <= ppp, "%u+%u pages, limit %u",
		   m.normal, m.zero, ppp);
	FUZZ_CHECK(len == sizeof(struct rmig_wire_ram) + (size_t)n * 8, "%u offsets in %u bytes", n,
		   len);
	FUZZ_CHECK(m.block < FUZZ_NBLOCKS, "block %u", m.block);
	FUZZ_CHECK(!!(flags & RMIG_WF_PLACED) == placed, "PLACED flag accepted on the wrong transport");
	b = &blocks[m.block];
	/* as core/dst/dst.c sizes it: room for pages_per_packet offsets, no more */
	offs = calloc(ppp, sizeof(*offs));
	FUZZ_CHECK(offs, "out of memory");
	why[0] = '\0';
	if (rmig_ram_check_offsets(body, b, &m, offs, why, sizeof(why))) {
		FUZZ_CHECK(why[0], "offset refused without a reason");
		free(offs);
		return;
	}
	again = calloc(1, len);
	FUZZ_CHECK(again, "out of memory");
	rmig_put_be32(again + RMIG_OFF(rmig_wire_ram, block), m.block);
	rmig_put_be32(again + RMIG_OFF(rmig_wire_ram, normal), m.normal);
	rmig_put_be32(again + RMIG_OFF(rmig_wire_ram, zero), m.zero);
	for (uint32_t i = 0; i < n; i++) {
		/* the page lies wholly inside the block: dst_chan.c writes page_size bytes there */
		FUZZ_CHECK(offs[i] < b->length && b->length - offs[i] >= b->page_size &&
				   !(offs[i] % b->page_size),
			   "offset 0x%llx in '%s'", (unsigned long long)offs[i], b->name);
		rmig_put_be64(again + sizeof(struct rmig_wire_ram) + (size_t)i * 8, offs[i]);
	}
	/* all but the pad field */
	FUZZ_CHECK(!memcmp(again, body, RMIG_OFF(rmig_wire_ram, pad)) &&
			   !memcmp(again + sizeof(struct rmig_wire_ram),
				   body + sizeof(struct rmig_wire_ram), (size_t)n * 8),
		   "re-encoded RAM body differs");
	free(again);
	free(offs);
}

static void fuzz_dev(const uint8_t *body, uint32_t len)
{
	char why[RMIG_ERRMSG_MAX];
	struct rmig_dev_msg m;
	size_t idlen, at;
	uint8_t *again;
	uint32_t sum = 0;

	why[0] = '\0';
	if (rmig_dev_check(body, len, &m, why, sizeof(why))) {
		FUZZ_CHECK(why[0], "DEV refused without a reason");
		return;
	}
	idlen = strlen(m.id);
	FUZZ_CHECK(idlen >= 1 && idlen < RMIG_IDSTR_MAX, "id of %zu bytes", idlen);
	FUZZ_CHECK(m.len <= RMIG_DEV_CHUNK_MAX, "chunk of %u bytes", m.len);
	FUZZ_CHECK(m.data == body + sizeof(struct rmig_wire_dev) + rmig_pad8(idlen) &&
			   m.data + m.len == body + len,
		   "data [%td, +%u) is not the rest of a %u-byte body", m.data - body, m.len, len);
	/* the callback reads every byte */
	for (uint32_t i = 0; i < m.len; i++)
		sum += m.data[i];
	(void)sum;
	/* src_chan.c's layout: header, id padded to 8, data */
	again = calloc(1, len);
	FUZZ_CHECK(again, "out of memory");
	rmig_put_be64(again + RMIG_OFF(rmig_wire_dev, seq), m.seq);
	rmig_put_be32(again + RMIG_OFF(rmig_wire_dev, instance), m.instance);
	rmig_put_be16(again + RMIG_OFF(rmig_wire_dev, idlen), (uint16_t)idlen);
	rmig_put_be32(again + RMIG_OFF(rmig_wire_dev, len), m.len);
	at = sizeof(struct rmig_wire_dev);
	memcpy(again + at, m.id, idlen);
	at += rmig_pad8(idlen);
	memcpy(again + at, m.data, m.len);
	FUZZ_CHECK(!memcmp(again, body, RMIG_OFF(rmig_wire_dev, pad)) &&
			   !memcmp(again + RMIG_OFF(rmig_wire_dev, len),
				   body + RMIG_OFF(rmig_wire_dev, len), 4) &&
			   !memcmp(again + sizeof(struct rmig_wire_dev),
				   body + sizeof(struct rmig_wire_dev), idlen) &&
			   !memcmp(again + at, body + at, m.len),
		   "re-encoded DEV body differs");
	free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint32_t ppp;
	uint8_t *body;
	size_t len;

	if (size < 3 || size - 3 > RMIG_WIRE_BODY_MAX)
		return 0;
	ppp = rmig_get_be16(data + 1) % RMIG_MAX_PAGES_PER_PACKET + 1;
	/* a body of exactly its length, so a read past it is caught */
	len = size - 3;
	body = malloc(len ? len : 1);
	FUZZ_CHECK(body, "out of memory");
	memcpy(body, data + 3, len);
	if (data[0] & 1)
		fuzz_dev(body, (uint32_t)len);
	else
		fuzz_ram(body, (uint32_t)len, data[0], ppp);
	free(body);
	return 0;
}
