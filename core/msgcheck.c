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

/* ---- whole channel messages, for transports that store them ------------- */

_Static_assert(RMIG_DEV_HEAD_LEN == sizeof(struct rmig_wire_dev), "DEV head");
_Static_assert(RMIG_SESSION_ID_LEN == RMIG_UUID_LEN, "session id");
_Static_assert(RMIG_FIN_TOTALS * 8 == sizeof(struct rmig_wire_fin), "FIN totals");

const char *const rmig_fin_total_names[RMIG_FIN_TOTALS] = {
	"packets", "normal pages", "zero pages", "data bytes", "dev chunks", "dev bytes", "syncs",
};

int rmig_chan_msg_check(const void *msg, size_t len, struct rmig_chan_msg *m, char *why,
			size_t whylen)
{
	struct rmig_hdr h;
	int ret;

	if (len < sizeof(struct rmig_wire_hdr)) {
		snprintf(why, whylen, "message of %zu bytes has no header", len);
		return -EPROTO;
	}
	ret = rmig_hdr_decode(msg, &h, why, whylen);
	if (ret)
		return ret;
	m->name = rmig_msg_name(h.type);
	if (len != sizeof(struct rmig_wire_hdr) + h.len) {
		snprintf(why, whylen, "%s message: header says %u body bytes, got %zu", m->name,
			 h.len, len - sizeof(struct rmig_wire_hdr));
		return -EPROTO;
	}
	switch (h.type) {
	case RMIG_MSG_CHAN:
		m->kind = RMIG_CK_CHAN;
		break;
	case RMIG_MSG_RAM:
		m->kind = RMIG_CK_RAM;
		break;
	case RMIG_MSG_DEV:
		m->kind = RMIG_CK_DEV;
		break;
	case RMIG_MSG_SYNC:
		m->kind = RMIG_CK_SYNC;
		break;
	case RMIG_MSG_FIN:
		m->kind = RMIG_CK_FIN;
		break;
	default:
		m->kind = RMIG_CK_OTHER;
		break;
	}
	m->flags = h.flags;
	m->len = h.len;
	m->seq = h.seq;
	m->body = (const uint8_t *)msg + sizeof(struct rmig_wire_hdr);
	return 0;
}

int rmig_chan_hello_check(const struct rmig_chan_msg *m, uint32_t *channel,
			  const uint8_t **session, char *why, size_t whylen)
{
	if (m->kind != RMIG_CK_CHAN || m->len != sizeof(struct rmig_wire_chan)) {
		snprintf(why, whylen, "channel hello of %u bytes", m->len);
		return -EPROTO;
	}
	*channel = rmig_get_be32(m->body + RMIG_OFF(rmig_wire_chan, channel));
	*session = m->body + RMIG_OFF(rmig_wire_chan, uuid);
	return 0;
}

int rmig_sync_check(const struct rmig_chan_msg *m, uint64_t *round, char *why, size_t whylen)
{
	if (m->kind != RMIG_CK_SYNC || m->len != sizeof(struct rmig_wire_sync)) {
		snprintf(why, whylen, "SYNC of %u bytes", m->len);
		return -EPROTO;
	}
	*round = rmig_get_be64(m->body + RMIG_OFF(rmig_wire_sync, round));
	return 0;
}

int rmig_fin_check(const struct rmig_chan_msg *m, uint64_t totals[RMIG_FIN_TOTALS], char *why,
		   size_t whylen)
{
	if (m->kind != RMIG_CK_FIN || m->len != sizeof(struct rmig_wire_fin)) {
		snprintf(why, whylen, "FIN of %u bytes", m->len);
		return -EPROTO;
	}
	for (unsigned int i = 0; i < RMIG_FIN_TOTALS; i++)
		totals[i] = rmig_get_be64(m->body + (size_t)i * 8);
	return 0;
}
