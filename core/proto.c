// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

int rmig_msg_send(struct rmig_conn *c, uint16_t type, uint32_t flags, uint64_t seq,
		  const void *body, size_t len)
{
	uint8_t stackbuf[256];
	uint8_t *buf = stackbuf;
	size_t total = sizeof(struct rmig_wire_hdr) + len;
	int ret;

	if (len > RMIG_WIRE_BODY_MAX)
		return -EMSGSIZE;
	if (total > sizeof(stackbuf)) {
		buf = malloc(total);
		if (!buf)
			return -ENOMEM;
	}
	rmig_hdr_encode(buf, type, flags, (uint32_t)len, seq);
	if (len)
		memcpy(buf + sizeof(struct rmig_wire_hdr), body, len);
	ret = c->ops->send(c, buf, total, NULL, 0);
	if (buf != stackbuf)
		free(buf);
	return ret;
}

int rmig_msg_recv(struct rmig_conn *c, int timeout_ms, size_t max_body, struct rmig_hdr *h,
		  void **body, char *why, size_t whylen)
{
	uint8_t raw[sizeof(struct rmig_wire_hdr)];
	void *b = NULL;
	int ret;

	*body = NULL;
	ret = c->ops->recv(c, raw, sizeof(raw), timeout_ms);
	if (ret) {
		snprintf(why, whylen, "%s", c->recv_err.msg);
		return ret;
	}
	ret = rmig_hdr_decode(raw, h, why, whylen);
	if (ret)
		return ret;
	if (h->len > max_body) {
		snprintf(why, whylen, "%s message of %u bytes is larger than the %zu allowed",
			 rmig_msg_name(h->type), h->len, max_body);
		return -EPROTO;
	}
	if (h->len) {
		b = malloc(h->len);
		if (!b)
			return -ENOMEM;
		ret = c->ops->recv(c, b, h->len, timeout_ms);
		if (ret) {
			snprintf(why, whylen, "%s", c->recv_err.msg);
			free(b);
			return ret;
		}
	}
	*body = b;
	return 0;
}

int rmig_status_send(struct rmig_conn *c, uint16_t type, uint64_t seq, int status,
		     const char *msg, const void *info, size_t info_len)
{
	return rmig_status_send_flags(c, type, 0, seq, status, msg, info, info_len);
}

int rmig_status_send_flags(struct rmig_conn *c, uint16_t type, uint32_t flags, uint64_t seq,
			   int status, const char *msg, const void *info, size_t info_len)
{
	size_t mlen = msg ? strnlen(msg, 4096) : 0;
	size_t len = sizeof(struct rmig_wire_status) + rmig_pad8(mlen) + info_len;
	uint8_t *body;
	int ret;

	body = calloc(1, len);
	if (!body)
		return -ENOMEM;
	rmig_put_be32(body + RMIG_OFF(rmig_wire_status, status), (uint32_t)status);
	rmig_put_be32(body + RMIG_OFF(rmig_wire_status, msg_len), (uint32_t)mlen);
	rmig_put_be32(body + RMIG_OFF(rmig_wire_status, info_len), (uint32_t)info_len);
	if (mlen)
		memcpy(body + sizeof(struct rmig_wire_status), msg, mlen);
	if (info_len)
		memcpy(body + sizeof(struct rmig_wire_status) + rmig_pad8(mlen), info, info_len);
	ret = rmig_msg_send(c, type, flags, seq, body, len);
	free(body);
	return ret;
}

int rmig_status_parse(const void *body, size_t len, int *status, char *msg, size_t msglen,
		      const void **info, size_t *info_len)
{
	const uint8_t *b = body;
	uint32_t mlen, ilen;

	if (len < sizeof(struct rmig_wire_status)) {
		snprintf(msg, msglen, "status message truncated (%zu bytes)", len);
		return -EPROTO;
	}
	*status = (int32_t)rmig_get_be32(b + RMIG_OFF(rmig_wire_status, status));
	mlen = rmig_get_be32(b + RMIG_OFF(rmig_wire_status, msg_len));
	ilen = rmig_get_be32(b + RMIG_OFF(rmig_wire_status, info_len));
	if (mlen > 4096 || ilen > RMIG_PEER_INFO_MAX ||
	    sizeof(struct rmig_wire_status) + rmig_pad8(mlen) + ilen != len) {
		snprintf(msg, msglen, "status message lengths (text %u, info %u) do not add up to %zu",
			 mlen, ilen, len);
		return -EPROTO;
	}
	if (*status > 0 || *status < -4095) {
		snprintf(msg, msglen, "status %d is not an error code", *status);
		return -EPROTO;
	}
	snprintf(msg, msglen, "%.*s", (int)mlen, (const char *)b + sizeof(struct rmig_wire_status));
	*info = b + sizeof(struct rmig_wire_status) + rmig_pad8(mlen);
	*info_len = ilen;
	return 0;
}

int rmig_hello_encode(const struct rmig_hello *h, const struct rmig_block *blocks,
		      unsigned int nblocks, void **out, size_t *lenp)
{
	size_t len = sizeof(struct rmig_wire_hello);
	uint8_t *buf, *p;

	for (unsigned int i = 0; i < nblocks; i++)
		len += sizeof(struct rmig_wire_block) + rmig_pad8(strlen(blocks[i].name));
	buf = calloc(1, len);
	if (!buf)
		return -ENOMEM;
	memcpy(buf + RMIG_OFF(rmig_wire_hello, uuid), h->uuid, RMIG_UUID_LEN);
	rmig_put_be32(buf + RMIG_OFF(rmig_wire_hello, channels), h->channels);
	rmig_put_be32(buf + RMIG_OFF(rmig_wire_hello, pages_per_packet), h->pages_per_packet);
	rmig_put_be32(buf + RMIG_OFF(rmig_wire_hello, nblocks), nblocks);
	rmig_put_be32(buf + RMIG_OFF(rmig_wire_hello, flags), h->flags);
	p = buf + sizeof(struct rmig_wire_hello);
	for (unsigned int i = 0; i < nblocks; i++) {
		size_t nl = strlen(blocks[i].name);

		rmig_put_be64(p + RMIG_OFF(rmig_wire_block, length), blocks[i].length);
		rmig_put_be32(p + RMIG_OFF(rmig_wire_block, page_size), blocks[i].page_size);
		rmig_put_be16(p + RMIG_OFF(rmig_wire_block, name_len), (uint16_t)nl);
		p += sizeof(struct rmig_wire_block);
		memcpy(p, blocks[i].name, nl);
		p += rmig_pad8(nl);
	}
	*out = buf;
	*lenp = len;
	return 0;
}

int rmig_hello_check(const void *body, size_t len, const struct rmig_block *blocks,
		     unsigned int nblocks, unsigned int max_channels, struct rmig_hello *out,
		     char *why, size_t whylen)
{
	const uint8_t *b = body, *p, *end = b + len;

	if (len < sizeof(struct rmig_wire_hello)) {
		snprintf(why, whylen, "HELLO truncated: %zu bytes", len);
		return -EPROTO;
	}
	memcpy(out->uuid, b + RMIG_OFF(rmig_wire_hello, uuid), RMIG_UUID_LEN);
	out->channels = rmig_get_be32(b + RMIG_OFF(rmig_wire_hello, channels));
	out->pages_per_packet = rmig_get_be32(b + RMIG_OFF(rmig_wire_hello, pages_per_packet));
	out->nblocks = rmig_get_be32(b + RMIG_OFF(rmig_wire_hello, nblocks));
	out->flags = rmig_get_be32(b + RMIG_OFF(rmig_wire_hello, flags));

	if (out->channels == 0 || out->channels > max_channels) {
		snprintf(why, whylen, "source asks for %u channels; this destination accepts 1 to %u",
			 out->channels, max_channels);
		return -EPROTO;
	}
	if (out->pages_per_packet == 0 || out->pages_per_packet > RMIG_MAX_PAGES_PER_PACKET) {
		snprintf(why, whylen, "pages per packet %u outside 1..%u", out->pages_per_packet,
			 RMIG_MAX_PAGES_PER_PACKET);
		return -EPROTO;
	}
	if (out->nblocks != nblocks) {
		snprintf(why, whylen, "RAM block table mismatch: source has %u blocks, destination has %u",
			 out->nblocks, nblocks);
		return -EPROTO;
	}
	p = b + sizeof(struct rmig_wire_hello);
	for (unsigned int i = 0; i < nblocks; i++) {
		uint64_t length;
		uint32_t page_size;
		uint16_t nl;

		if ((size_t)(end - p) < sizeof(struct rmig_wire_block)) {
			snprintf(why, whylen, "HELLO truncated in block %u", i);
			return -EPROTO;
		}
		length = rmig_get_be64(p + RMIG_OFF(rmig_wire_block, length));
		page_size = rmig_get_be32(p + RMIG_OFF(rmig_wire_block, page_size));
		nl = rmig_get_be16(p + RMIG_OFF(rmig_wire_block, name_len));
		p += sizeof(struct rmig_wire_block);
		if (nl >= RMIG_BLOCK_NAME_MAX || (size_t)(end - p) < rmig_pad8(nl)) {
			snprintf(why, whylen, "HELLO block %u: name length %u invalid or truncated", i,
				 nl);
			return -EPROTO;
		}
		if (nl != strlen(blocks[i].name) || memcmp(p, blocks[i].name, nl)) {
			snprintf(why, whylen,
				 "RAM block table mismatch: block %u is '%.*s' on the source, '%s' on the destination",
				 i, (int)nl, (const char *)p, blocks[i].name);
			return -EPROTO;
		}
		if (length != blocks[i].length) {
			snprintf(why, whylen,
				 "RAM block table mismatch: block '%s' is %llu bytes on the source, %llu on the destination",
				 blocks[i].name, (unsigned long long)length,
				 (unsigned long long)blocks[i].length);
			return -EPROTO;
		}
		if (page_size != blocks[i].page_size) {
			snprintf(why, whylen,
				 "RAM block table mismatch: block '%s' has page size %u on the source, %u on the destination",
				 blocks[i].name, page_size, blocks[i].page_size);
			return -EPROTO;
		}
		p += rmig_pad8(nl);
	}
	if (p != end) {
		snprintf(why, whylen, "HELLO has %zu trailing bytes", (size_t)(end - p));
		return -EPROTO;
	}
	return 0;
}
