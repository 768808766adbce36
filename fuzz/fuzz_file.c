// SPDX-License-Identifier: MIT
/*
 * A "file:" migration's metadata (transport/file/load.c): the fixed header,
 * the header area and block table, every block's bitmap, the device-state
 * index and each device-state record, in the order file_load_open() checks
 * them, through the same pure functions, with the file's reads served from
 * memory.
 *
 * Input, a sparse image of the file (its pages areas are megabytes of
 * nothing the checks read):
 *   u8  mode: bit 0 sets every checksum right before it is checked, so
 *       mutations reach the checks behind them
 *   u64 st_size, the file's size
 *   then extents until the input ends: u32 offset, u16 length, the bytes;
 *   the rest of the file reads as zeros.
 */
#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "transport/file/file.h"

#define MAX_EXTENTS 64
/* Most index entries and records a run looks at (a real index may be longer). */
#define MAX_INDEX 4096u
#define MAX_RECORDS 32u
/*
 * Largest header area a run reads. The checks are the same for any size up
 * to RMIG_FILE_HDR_MAX (1 MiB), but reading and checksumming a megabyte per
 * input slows a run twentyfold, so larger ones stop after the fixed header.
 */
#define MAX_HDR_AREA (64u << 10)

struct image {
	uint64_t st_size;
	unsigned int n;
	struct {
		uint64_t off;
		size_t len;
		const uint8_t *p;
	} ext[MAX_EXTENTS];
};

static void image_parse(struct image *img, const uint8_t *data, size_t size)
{
	size_t at = 9;

	img->st_size = rmig_get_be64(data + 1);
	img->n = 0;
	while (img->n < MAX_EXTENTS && size - at >= 6) {
		uint64_t off = rmig_get_be32(data + at);
		size_t len = rmig_get_be16(data + at + 4);

		at += 6;
		if (len > size - at)
			len = size - at;
		img->ext[img->n].off = off;
		img->ext[img->n].len = len;
		img->ext[img->n].p = data + at;
		img->n++;
		at += len;
	}
}

/* pread of exactly @len bytes at @off: -ENODATA past the end, as file_pread_all() */
static int image_read(const struct image *img, void *buf, size_t len, uint64_t off)
{
	uint8_t *out = buf;

	if (off > img->st_size || len > img->st_size - off)
		return -ENODATA;
	memset(buf, 0, len);
	for (unsigned int i = 0; i < img->n; i++) {
		uint64_t lo = img->ext[i].off, hi = lo + img->ext[i].len;
		uint64_t from = lo > off ? lo : off, to = hi < off + len ? hi : off + len;

		if (from < to)
			memcpy(out + (from - off), img->ext[i].p + (from - lo), to - from);
	}
	return 0;
}

struct span {
	uint64_t start, end;
};

/* What file_hdr_area_check() promises: every region where it belongs, none overlapping. */
static void check_layout(const struct file_xport *x)
{
	struct span s[2 * FUZZ_NBLOCKS + 3];
	unsigned int n = 0;

	s[n++] = (struct span){ 0, x->hdr_size };
	for (unsigned int i = 0; i < x->nblocks; i++) {
		const struct file_block *fb = &x->blocks[i];

		FUZZ_CHECK(fb->bitmap_off >= x->hdr_size && fb->bitmap_off <= x->st_size &&
				   fb->bitmap_len <= x->st_size - fb->bitmap_off,
			   "bitmap %u at [%llu, +%llu)", i, (unsigned long long)fb->bitmap_off,
			   (unsigned long long)fb->bitmap_len);
		FUZZ_CHECK(fb->bitmap_len == (fb->npages + 7) / 8, "bitmap %u length", i);
		FUZZ_CHECK(fb->pages_off >= x->hdr_size && !(fb->pages_off % RMIG_FILE_META_ALIGN),
			   "pages %u at %llu", i, (unsigned long long)fb->pages_off);
		s[n++] = (struct span){ fb->bitmap_off, fb->bitmap_off + fb->bitmap_len };
		s[n++] = (struct span){ fb->pages_off, fb->pages_off + fb->b->length };
	}
	FUZZ_CHECK(x->dev_off >= x->hdr_size && x->dev_off <= x->hv.file_size &&
			   x->hv.dev_len <= x->hv.file_size - x->dev_off,
		   "device-state area");
	FUZZ_CHECK(x->hv.index_off <= x->hv.file_size &&
			   x->hv.dev_count <= (x->hv.file_size - x->hv.index_off) /
						      sizeof(struct rmig_file_index),
		   "device-state index");
	s[n++] = (struct span){ x->dev_off, x->dev_off + x->hv.dev_len };
	s[n++] = (struct span){ x->hv.index_off,
				x->hv.index_off + x->hv.dev_count * sizeof(struct rmig_file_index) };
	for (unsigned int i = 0; i < n; i++)
		for (unsigned int j = i + 1; j < n; j++)
			FUZZ_CHECK(s[i].start == s[i].end || s[j].start == s[j].end ||
					   s[i].end <= s[j].start || s[j].end <= s[i].start,
				   "regions %u [%llu, %llu) and %u [%llu, %llu) overlap", i,
				   (unsigned long long)s[i].start, (unsigned long long)s[i].end, j,
				   (unsigned long long)s[j].start, (unsigned long long)s[j].end);
}

static int check_bitmaps(struct file_xport *x, const struct image *img, uint8_t *area,
			 bool fix)
{
	for (unsigned int i = 0; i < x->nblocks; i++) {
		struct file_block *fb = &x->blocks[i];
		uint8_t *e = area + sizeof(struct rmig_file_hdr) + (size_t)i * sizeof(struct rmig_file_block);
		uint8_t *buf = malloc(fb->bitmap_len ? fb->bitmap_len : 1);
		struct rmig_msgbuf mb;
		int ret;

		FUZZ_CHECK(buf, "out of memory");
		ret = image_read(img, buf, fb->bitmap_len, fb->bitmap_off);
		if (!ret && fix)
			rmig_put_be32(e + RMIG_FILE_OFF(rmig_file_block, bitmap_crc),
				      rmig_crc32c(0, buf, fb->bitmap_len));
		if (!ret)
			ret = file_bitmap_check(x, fb, e, buf, &mb);
		free(buf);
		if (ret)
			return ret;
		for (uint64_t p = fb->npages; p < fb->nwords * 64; p++)
			FUZZ_CHECK(!(fb->present[p / 64] & (1ull << (p % 64))),
				   "page %llu past the end of block %u", (unsigned long long)p, i);
		for (uint64_t p = fb->npages; p-- > 0;) {
			if (!(fb->present[p / 64] & (1ull << (p % 64))))
				continue;
			FUZZ_CHECK(fb->pages_off + ((p + 1) << fb->b->page_shift) <= x->st_size,
				   "page %llu of block %u lies past the file",
				   (unsigned long long)p, i);
			break;
		}
	}
	return 0;
}

static int check_records(struct file_xport *x, const struct image *img, uint8_t *area,
			 bool fix)
{
	uint64_t n = x->hv.dev_count, dev_end = x->dev_off + x->hv.dev_len;
	struct rmig_msgbuf mb;
	uint8_t *raw;
	int ret;

	if (n > MAX_INDEX)
		return -E2BIG;
	raw = malloc(n * sizeof(struct rmig_file_index) + 1);
	x->index = calloc(n + 1, sizeof(*x->index));
	FUZZ_CHECK(raw && x->index, "out of memory");
	ret = image_read(img, raw, n * sizeof(struct rmig_file_index), x->hv.index_off);
	if (!ret && fix)
		rmig_put_be32(area + RMIG_FILE_OFF(rmig_file_hdr, index_crc),
			      rmig_crc32c(0, raw, n * sizeof(struct rmig_file_index)));
	if (!ret)
		ret = file_index_check(x, area, raw, &mb);
	free(raw);
	if (ret)
		return ret;
	for (uint64_t i = 0; i < n && i < MAX_RECORDS; i++) {
		const struct rmig_file_index *e = &x->index[i];
		char id[RMIG_IDSTR_MAX];
		const uint8_t *data;
		uint32_t inst, len;
		uint8_t *buf;

		FUZZ_CHECK(e->offset >= x->dev_off && e->length >= sizeof(struct rmig_file_dev) + 8 &&
				   e->length <= RMIG_FILE_DEV_MAX && e->offset <= dev_end &&
				   e->length <= dev_end - e->offset,
			   "index entry %llu [%llu, +%u)", (unsigned long long)i,
			   (unsigned long long)e->offset, e->length);
		/* exactly the record, so a read past it is caught */
		buf = malloc(e->length);
		FUZZ_CHECK(buf, "out of memory");
		ret = image_read(img, buf, e->length, e->offset);
		if (!ret && fix)
			rmig_put_be32(buf + 4, rmig_crc32c(0, buf + 8, e->length - 8));
		if (!ret)
			ret = file_dev_check(i, e->offset, buf, e->length, id, &inst, &data, &len,
					     &mb);
		if (!ret) {
			size_t idlen = strlen(id);

			FUZZ_CHECK(idlen >= 1 && idlen < RMIG_IDSTR_MAX && len <= RMIG_DEV_CHUNK_MAX,
				   "record %llu: id %zu, data %u", (unsigned long long)i, idlen,
				   len);
			FUZZ_CHECK(data + len == buf + e->length,
				   "record %llu: data [%td, +%u) of %u bytes", (unsigned long long)i,
				   data - buf, len, e->length);
		}
		free(buf);
		if (ret)
			return ret;
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t fixed[sizeof(struct rmig_file_hdr)], *area = NULL;
	struct rmig_block blocks[FUZZ_NBLOCKS];
	struct file_block fbs[FUZZ_NBLOCKS];
	struct file_xport x;
	struct rmig_msgbuf mb;
	struct image img;
	uint64_t bmmax;
	uint32_t nblocks;
	bool fix;

	if (size < 9)
		return 0;
	fix = data[0] & 1;
	image_parse(&img, data, size);
	fuzz_blocks(blocks);
	memset(&x, 0, sizeof(x));
	memset(fbs, 0, sizeof(fbs));
	x.fd = x.dfd = -1;
	x.blocks = fbs;
	x.nblocks = FUZZ_NBLOCKS;
	for (unsigned int i = 0; i < FUZZ_NBLOCKS; i++)
		fbs[i].b = &blocks[i];
	x.st_size = img.st_size;

	if (x.st_size < sizeof(fixed) || image_read(&img, fixed, sizeof(fixed), 0))
		return 0;
	if (file_hdr_fixed_check(&x, fixed, &nblocks, &mb))
		return 0;
	FUZZ_CHECK(x.hdr_size >= sizeof(struct rmig_file_hdr) +
					  (uint64_t)nblocks * sizeof(struct rmig_file_block) &&
			   x.hdr_size <= RMIG_FILE_HDR_MAX && x.hdr_size <= x.st_size,
		   "header area of %u bytes for %u blocks", x.hdr_size, nblocks);
	if (x.hdr_size > MAX_HDR_AREA)
		return 0;
	area = malloc(x.hdr_size);
	FUZZ_CHECK(area, "out of memory");
	if (image_read(&img, area, x.hdr_size, 0))
		goto out;
	if (fix)
		rmig_put_be32(area + RMIG_FILE_OFF(rmig_file_hdr, hdr_crc),
			      rmig_file_hdr_crc(area, x.hdr_size));
	if (file_hdr_area_check(&x, area, nblocks, &bmmax, &mb))
		goto out;
	FUZZ_CHECK(nblocks == FUZZ_NBLOCKS, "%u blocks", nblocks);
	check_layout(&x);
	if (check_bitmaps(&x, &img, area, fix))
		goto out;
	if (x.st_size < x.hv.file_size)
		goto out;
	check_records(&x, &img, area, fix);
out:
	for (unsigned int i = 0; i < FUZZ_NBLOCKS; i++)
		free(fbs[i].present);
	free(x.index);
	free(area);
	return 0;
}
