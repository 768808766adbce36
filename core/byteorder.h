/* SPDX-License-Identifier: MIT */
/*
 * Big-endian loads and stores on unaligned memory, for the wire format
 * (core/wire.h), the file format (transport/file/format.h) and the rdma
 * transport's handshake blobs. Standalone on purpose: a transport gets byte
 * order from here without seeing the core's protocol.
 *
 * Byte by byte rather than htobe32() on a cast pointer: the fields sit at
 * any offset in a received buffer, and compilers turn these into one load
 * and a bswap where the target allows it.
 */
#ifndef RMIG_CORE_BYTEORDER_H
#define RMIG_CORE_BYTEORDER_H

#include <stddef.h>
#include <stdint.h>

static inline void rmig_put_be16(void *p, uint16_t v)
{
	uint8_t *b = p;
	b[0] = (uint8_t)(v >> 8);
	b[1] = (uint8_t)v;
}
static inline void rmig_put_be32(void *p, uint32_t v)
{
	uint8_t *b = p;
	b[0] = (uint8_t)(v >> 24);
	b[1] = (uint8_t)(v >> 16);
	b[2] = (uint8_t)(v >> 8);
	b[3] = (uint8_t)v;
}
static inline void rmig_put_be64(void *p, uint64_t v)
{
	rmig_put_be32(p, (uint32_t)(v >> 32));
	rmig_put_be32((uint8_t *)p + 4, (uint32_t)v);
}
static inline uint16_t rmig_get_be16(const void *p)
{
	const uint8_t *b = p;
	return (uint16_t)((b[0] << 8) | b[1]);
}
static inline uint32_t rmig_get_be32(const void *p)
{
	const uint8_t *b = p;
	return ((uint32_t)b[0] << 24) | ((uint32_t)b[1] << 16) | ((uint32_t)b[2] << 8) | b[3];
}
static inline uint64_t rmig_get_be64(const void *p)
{
	return ((uint64_t)rmig_get_be32(p) << 32) | rmig_get_be32((const uint8_t *)p + 4);
}

/* Offset of a field in a packed layout struct, for the helpers above. */
#define RMIG_OFF(type, field) offsetof(struct type, field)

/* @n rounded up to a multiple of 8: variable fields of messages and records are padded so. */
static inline size_t rmig_pad8(size_t n)
{
	return (n + 7u) & ~(size_t)7u;
}

#endif /* RMIG_CORE_BYTEORDER_H */
