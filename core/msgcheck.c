// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "msgcheck.h"
#include "wire.h"

int rmig_ram_check_head(const uint8_t *body, uint32_t len, uint32_t flags,
			const struct rmig_block *blocks, unsigned int nblocks, uint32_t ppp,
			bool placed, const char *xname, struct rmig_ram_msg *m, char *why,
			size_t whylen)
{
	uint32_t n;

	if (len < sizeof(struct rmig_wire_ram)) {
		snprintf(why, whylen, "RAM message truncated (%u bytes)", len);
		return -EPROTO;
	}
	m->block = rmig_get_be32(body + RMIG_OFF(rmig_wire_ram, block));
	m->normal = rmig_get_be32(body + RMIG_OFF(rmig_wire_ram, normal));
	m->zero = rmig_get_be32(body + RMIG_OFF(rmig_wire_ram, zero));
	/* each count is bounded first, so the sum cannot wrap */
	n = m->normal + m->zero;
	if (m->normal > ppp || m->zero > ppp || n > ppp) {
		snprintf(why, whylen, "RAM message with %u+%u pages, limit %u", m->normal, m->zero,
			 ppp);
		return -EPROTO;
	}
	if (len != sizeof(struct rmig_wire_ram) + (size_t)n * 8) {
		snprintf(why, whylen, "RAM message length %u does not fit %u offsets", len, n);
		return -EPROTO;
	}
	if (m->block >= nblocks) {
		snprintf(why, whylen, "RAM message for unknown block %u (have %u)", m->block,
			 nblocks);
		return -EPROTO;
	}
	if (!!(flags & RMIG_WF_PLACED) != placed) {
		snprintf(why, whylen, "RAM message says its data is %s, but the %s transport %s",
			 (flags & RMIG_WF_PLACED) ? "already placed" : "in the stream", xname,
			 placed ? "places data" : "carries data in the stream");
		return -EPROTO;
	}
	return 0;
}

int rmig_ram_check_offsets(const uint8_t *body, const struct rmig_block *b,
			   const struct rmig_ram_msg *m, uint64_t *offsets, char *why,
			   size_t whylen)
{
	uint32_t n = m->normal + m->zero;

	for (uint32_t i = 0; i < n; i++) {
		uint64_t off = rmig_get_be64(body + sizeof(struct rmig_wire_ram) + (size_t)i * 8);

		if (off >= b->length || (off & (b->page_size - 1))) {
			snprintf(why, whylen,
				 "offset 0x%llx outside block '%s' (%llu bytes, page %u) or not page aligned",
				 (unsigned long long)off, b->name, (unsigned long long)b->length,
				 b->page_size);
			return -EPROTO;
		}
		offsets[i] = off;
	}
	return 0;
}

int rmig_dev_check(const uint8_t *body, uint32_t len, struct rmig_dev_msg *m, char *why,
		   size_t whylen)
{
	uint16_t idlen;

	if (len < sizeof(struct rmig_wire_dev)) {
		snprintf(why, whylen, "device-state message truncated");
		return -EPROTO;
	}
	m->seq = rmig_get_be64(body + RMIG_OFF(rmig_wire_dev, seq));
	m->instance = rmig_get_be32(body + RMIG_OFF(rmig_wire_dev, instance));
	idlen = rmig_get_be16(body + RMIG_OFF(rmig_wire_dev, idlen));
	m->len = rmig_get_be32(body + RMIG_OFF(rmig_wire_dev, len));
	if (idlen == 0 || idlen >= RMIG_IDSTR_MAX || m->len > RMIG_DEV_CHUNK_MAX ||
	    len != sizeof(struct rmig_wire_dev) + rmig_pad8(idlen) + (size_t)m->len) {
		snprintf(why, whylen,
			 "device-state message lengths (id %u, data %u) do not fit %u bytes", idlen,
			 m->len, len);
		return -EPROTO;
	}
	memcpy(m->id, body + sizeof(struct rmig_wire_dev), idlen);
	m->id[idlen] = '\0';
	if (strlen(m->id) != idlen) {
		snprintf(why, whylen, "device id contains a NUL byte");
		return -EPROTO;
	}
	m->data = body + sizeof(struct rmig_wire_dev) + rmig_pad8(idlen);
	return 0;
}
