// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdio.h>

#include "wire.h"
#include "xport.h"

/* A RAM message's runs of pages are the segments of one send(). */
_Static_assert(RMIG_MAX_PAGES_PER_PACKET <= RMIG_XPORT_SEGS_MAX,
	       "a transport's send() takes every run of a RAM message");

static const char *const msg_names[] = {
	[RMIG_MSG_HELLO] = "HELLO", [RMIG_MSG_WELCOME] = "WELCOME", [RMIG_MSG_CHAN] = "CHAN",
	[RMIG_MSG_RAM] = "RAM",	    [RMIG_MSG_DEV] = "DEV",	    [RMIG_MSG_SYNC] = "SYNC",
	[RMIG_MSG_FIN] = "FIN",	    [RMIG_MSG_DONE] = "DONE",	    [RMIG_MSG_RESULT] = "RESULT",
	[RMIG_MSG_ABORT] = "ABORT",   [RMIG_MSG_SWITCHOVER_ACK] = "SWITCHOVER_ACK",
	[RMIG_MSG_RELEASE] = "RELEASE",
	[RMIG_MSG_PC_DISCARD] = "PC_DISCARD",
	[RMIG_MSG_PC_START] = "PC_START",
	[RMIG_MSG_PAGE_REQ] = "PAGE_REQ",
	[RMIG_MSG_PAGE_DATA] = "PAGE_DATA",
	[RMIG_MSG_PC_DONE] = "PC_DONE",
	[RMIG_MSG_PC_PULL_INFO] = "PC_PULL_INFO",
	[RMIG_MSG_PC_PULLED] = "PC_PULLED",
	[RMIG_MSG_AUTH_HELLO] = "AUTH_HELLO",
	[RMIG_MSG_AUTH_CHALLENGE] = "AUTH_CHALLENGE",
	[RMIG_MSG_AUTH_PROOF] = "AUTH_PROOF",
};

const char *rmig_msg_name(unsigned int type)
{
	if (type == 0 || type > RMIG_MSG_MAX_TYPE)
		return "unknown";
	return msg_names[type];
}

void rmig_hdr_encode(void *out, uint16_t type, uint32_t flags, uint32_t len, uint64_t seq)
{
	uint8_t *b = out;

	rmig_put_be32(b + RMIG_OFF(rmig_wire_hdr, magic), RMIG_WIRE_MAGIC);
	rmig_put_be16(b + RMIG_OFF(rmig_wire_hdr, version), RMIG_WIRE_VERSION);
	rmig_put_be16(b + RMIG_OFF(rmig_wire_hdr, type), type);
	rmig_put_be32(b + RMIG_OFF(rmig_wire_hdr, flags), flags);
	rmig_put_be32(b + RMIG_OFF(rmig_wire_hdr, len), len);
	rmig_put_be64(b + RMIG_OFF(rmig_wire_hdr, seq), seq);
}

int rmig_hdr_decode(const void *in, struct rmig_hdr *h, char *why, size_t whylen)
{
	const uint8_t *b = in;
	uint32_t magic = rmig_get_be32(b + RMIG_OFF(rmig_wire_hdr, magic));
	uint16_t version = rmig_get_be16(b + RMIG_OFF(rmig_wire_hdr, version));

	if (magic != RMIG_WIRE_MAGIC) {
		snprintf(why, whylen, "bad magic 0x%08x (expected 0x%08x)", magic, RMIG_WIRE_MAGIC);
		return -EPROTO;
	}
	if (version != RMIG_WIRE_VERSION) {
		snprintf(why, whylen, "unsupported protocol version %u (this side speaks %u)", version,
			 RMIG_WIRE_VERSION);
		return -EPROTO;
	}
	h->type = rmig_get_be16(b + RMIG_OFF(rmig_wire_hdr, type));
	h->flags = rmig_get_be32(b + RMIG_OFF(rmig_wire_hdr, flags));
	h->len = rmig_get_be32(b + RMIG_OFF(rmig_wire_hdr, len));
	h->seq = rmig_get_be64(b + RMIG_OFF(rmig_wire_hdr, seq));
	if (h->type == 0 || h->type > RMIG_MSG_MAX_TYPE) {
		snprintf(why, whylen, "unknown message type %u", h->type);
		return -EPROTO;
	}
	if (h->flags & ~rmig_wf_allowed(h->type)) {
		snprintf(why, whylen, "unknown flags 0x%x in %s", h->flags & ~rmig_wf_allowed(h->type),
			 rmig_msg_name(h->type));
		return -EPROTO;
	}
	if (h->len > RMIG_WIRE_BODY_MAX) {
		snprintf(why, whylen, "%s body of %u bytes exceeds the limit of %u",
			 rmig_msg_name(h->type), h->len, RMIG_WIRE_BODY_MAX);
		return -EPROTO;
	}
	return 0;
}
