/* SPDX-License-Identifier: MIT */
/*
 * The on-disk layout of a "file:" migration (mapped-ram style: every page
 * has a fixed place in the file). docs/file-format.md describes each field;
 * the structs here only fix offsets and sizes. Every integer is big-endian
 * and read or written with the rmig_get_be* / rmig_put_be* helpers; the
 * bitmaps are byte arrays (page i is bit i % 8 of byte i / 8).
 *
 *   [0, hdr_size)            file header + block table (checksummed)
 *   bitmaps                  one per block, each 4 KiB aligned
 *   pages areas              one per block, each RMIG_FILE_ALIGN aligned;
 *                            page at offset o of a block lives at pages_off + o
 *   device-state area        records, 8-byte aligned, in no particular order
 *   device-state index       one entry per record, in sequence order
 */
#ifndef RMIG_TRANSPORT_FILE_FORMAT_H
#define RMIG_TRANSPORT_FILE_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#include "core/msgcheck.h"
#include "core/xport_util.h"

#define RMIG_FILE_MAGIC		"RMIGFILE"
#define RMIG_FILE_VERSION	1u
#define RMIG_FILE_BLOCK_VERSION 1u

/* Header flags */
#define RMIG_FILE_F_COMPLETE (1u << 0) /* set last, after everything else is on disk */
#define RMIG_FILE_F_DIRECT   (1u << 1) /* informational: pages were written with O_DIRECT */
#define RMIG_FILE_F_KNOWN    (RMIG_FILE_F_COMPLETE | RMIG_FILE_F_DIRECT)

/* Pages areas start on this boundary, so O_DIRECT can move them. */
#define RMIG_FILE_ALIGN (1ull << 20)
/* Bitmaps, the header area and the index start on this boundary. */
#define RMIG_FILE_META_ALIGN 4096ull
/* Largest header area a reader accepts (RMIG_MAX_BLOCKS entries fit). */
#define RMIG_FILE_HDR_MAX (1u << 20)

struct rmig_file_hdr {
	uint8_t magic[8]; /* RMIG_FILE_MAGIC, no NUL */
	uint32_t version; /* RMIG_FILE_VERSION */
	uint32_t flags;	  /* RMIG_FILE_F_* */
	uint32_t hdr_crc; /* CRC-32C of [0, hdr_size) with this field zero */
	uint32_t nblocks;
	uint32_t hdr_size;   /* bytes of header + block table, padded */
	uint32_t entry_size; /* sizeof(struct rmig_file_block) */
	uint64_t align;	     /* alignment of the pages areas */
	uint64_t dev_off;    /* device-state area */
	uint64_t dev_len;
	uint64_t index_off; /* device-state index: dev_count entries */
	uint64_t dev_count;
	uint32_t index_crc; /* CRC-32C of the index entries */
	uint32_t reserved0;
	uint64_t file_size; /* size the save left the file at */
	uint8_t session[RMIG_SESSION_ID_LEN];
	uint8_t reserved[24];
} __attribute__((packed));
_Static_assert(sizeof(struct rmig_file_hdr) == 128, "file header is 128 bytes");

struct rmig_file_block {
	uint64_t length;
	uint32_t page_size;
	uint32_t version; /* RMIG_FILE_BLOCK_VERSION */
	uint64_t bitmap_off;
	uint64_t bitmap_len; /* ceil(pages / 8) bytes */
	uint64_t pages_off;
	uint32_t bitmap_crc; /* CRC-32C of the bitmap_len bitmap bytes */
	uint16_t name_len;   /* without NUL */
	uint16_t reserved0;
	uint8_t reserved[16];
	char name[RMIG_BLOCK_NAME_MAX]; /* NUL padded */
} __attribute__((packed));
_Static_assert(sizeof(struct rmig_file_block) == 320, "block entry is 320 bytes");

/*
 * Device-state record: this 8-byte prefix, then exactly the body of the
 * DEV wire message (its RMIG_DEV_HEAD_LEN-byte head, id padded to 8,
 * data), read back with the core's decoder (rmig_dev_check).
 */
#define RMIG_FILE_DEV_MAGIC 0x52444556u /* "RDEV" */
struct rmig_file_dev {
	uint32_t magic;
	uint32_t crc; /* CRC-32C of the record from byte 8 to its end */
	uint8_t dev[RMIG_DEV_HEAD_LEN];
} __attribute__((packed));
_Static_assert(sizeof(struct rmig_file_dev) == 32, "device-state record header is 32 bytes");

/* Largest record: header, longest id, largest chunk. */
#define RMIG_FILE_DEV_MAX                                                                          \
	(sizeof(struct rmig_file_dev) + RMIG_IDSTR_MAX + (size_t)RMIG_DEV_CHUNK_MAX)

/* Index entry i describes the record of sequence number i. */
struct rmig_file_index {
	uint64_t offset;
	uint32_t length; /* record bytes, without padding */
	uint32_t reserved;
} __attribute__((packed));
_Static_assert(sizeof(struct rmig_file_index) == 16, "index entry is 16 bytes");

#define RMIG_FILE_OFF(type, field) offsetof(struct type, field)

static inline uint64_t rmig_file_align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

/* CRC-32C (Castagnoli), starting value 0; chain by passing the last result. */
uint32_t rmig_crc32c(uint32_t crc, const void *buf, size_t len);

/* Header area bytes for @nblocks blocks. */
static inline uint32_t rmig_file_hdr_size(unsigned int nblocks)
{
	return (uint32_t)rmig_file_align_up(sizeof(struct rmig_file_hdr) +
						(uint64_t)nblocks * sizeof(struct rmig_file_block),
					    RMIG_FILE_META_ALIGN);
}

/* CRC of a header area of @size bytes at @area, its own crc field counted as zero. */
uint32_t rmig_file_hdr_crc(const uint8_t *area, size_t size);

#endif /* RMIG_TRANSPORT_FILE_FORMAT_H */
