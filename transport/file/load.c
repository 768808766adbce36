// SPDX-License-Identifier: MIT
/*
 * file transport, destination side. listen() opens the file and checks all
 * of its metadata (header checksum, version, COMPLETE flag, the block table
 * against the local blocks, every region inside the file and apart from the
 * others, bitmaps, the device-state index and records) before a byte of RAM
 * is touched. load() then reads the present pages with N threads and clears
 * the absent ones, and hands device state to the callback in order.
 *
 * Receive side sync (mapped-ram sync, docs/design.md): there are no rounds in a file, so the only
 * sync is the join of the load threads at the end.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/msgcheck.h"
#include "core/xport_util.h"
#include "file.h"

/* Pages are loaded in units of this many bytes of a block (or one page, if larger). */
#define LOAD_UNIT (4ull << 20)

#define fail(mb, ...) rmig_msg(mb, -EPROTO, __VA_ARGS__)

/* ---- validation ------------------------------------------------------------ */

struct region {
	uint64_t start, end;
	char what[RMIG_BLOCK_NAME_MAX + 16];
};

static int region_cmp(const void *a, const void *b)
{
	const struct region *ra = a, *rb = b;

	return ra->start < rb->start ? -1 : ra->start > rb->start;
}

/* Distinct areas of the file must not overlap, or a write to one was a write to another. */
static int check_overlaps(struct file_xport *x, struct rmig_msgbuf *mb)
{
	unsigned int n = 0;
	struct region *r = calloc(2 * (size_t)x->nblocks + 3, sizeof(*r));
	int ret = 0;

	if (!r)
		return rmig_msg(mb, -ENOMEM, "out of memory");
	r[n++] = (struct region){0, x->hdr_size, "header"};
	for (unsigned int i = 0; i < x->nblocks; i++) {
		const struct file_block *fb = &x->blocks[i];

		r[n] = (struct region){fb->bitmap_off, fb->bitmap_off + fb->bitmap_len};
		snprintf(r[n++].what, sizeof(r->what), "bitmap of '%s'", fb->b->name);
		r[n] = (struct region){fb->pages_off, fb->pages_off + fb->b->length};
		snprintf(r[n++].what, sizeof(r->what), "pages of '%s'", fb->b->name);
	}
	r[n++] = (struct region){x->dev_off, x->dev_off + x->hv.dev_len, "device-state area"};
	r[n++] = (struct region){x->hv.index_off,
				 x->hv.index_off + x->hv.dev_count * sizeof(struct rmig_file_index),
				 "device-state index"};
	qsort(r, n, sizeof(*r), region_cmp);
	for (unsigned int i = 0, last = 0; i < n && !ret; i++) {
		if (r[i].start == r[i].end)
			continue;
		if (i > last && r[i].start < r[last].end)
			ret = fail(mb, "the %s (at %llu) overlaps the %s (ends at %llu)", r[i].what,
				   (unsigned long long)r[i].start, r[last].what,
				   (unsigned long long)r[last].end);
		/* @last: the non-empty region seen so far that ends last */
		if (i == 0 || r[i].end > r[last].end)
			last = i;
	}
	free(r);
	return ret;
}

static int check_block(struct file_xport *x, unsigned int i, const uint8_t *e,
		       struct rmig_msgbuf *mb)
{
	struct file_block *fb = &x->blocks[i];
	const struct rmig_block *b = fb->b;
	const char *name = (const char *)e + RMIG_FILE_OFF(rmig_file_block, name);
	uint16_t nl = rmig_get_be16(e + RMIG_FILE_OFF(rmig_file_block, name_len));
	uint64_t length = rmig_get_be64(e + RMIG_FILE_OFF(rmig_file_block, length));
	uint32_t page_size = rmig_get_be32(e + RMIG_FILE_OFF(rmig_file_block, page_size));
	uint32_t version = rmig_get_be32(e + RMIG_FILE_OFF(rmig_file_block, version));

	if (nl == 0 || nl >= RMIG_BLOCK_NAME_MAX || memchr(name, 0, nl) || name[nl])
		return fail(mb, "block %u: name length %u invalid", i, nl);
	if (nl != strlen(b->name) || memcmp(name, b->name, nl))
		return fail(mb, "RAM layout differs: block %u is '%.*s' in the file, '%s' here", i,
			    (int)nl, name, b->name);
	if (length != b->length)
		return fail(mb,
			    "RAM layout differs: block '%s' is %llu bytes in the file, %llu here",
			    b->name, (unsigned long long)length, (unsigned long long)b->length);
	if (page_size != b->page_size)
		return fail(mb,
			    "RAM layout differs: block '%s' has page size %u in the file, %u here",
			    b->name, page_size, b->page_size);
	if (version != RMIG_FILE_BLOCK_VERSION)
		return fail(mb, "block '%s' has header version %u; this rmig reads version %u",
			    b->name, version, RMIG_FILE_BLOCK_VERSION);

	fb->npages = b->length >> b->page_shift;
	fb->nwords = (fb->npages + 63) / 64;
	fb->bitmap_off = rmig_get_be64(e + RMIG_FILE_OFF(rmig_file_block, bitmap_off));
	fb->bitmap_len = rmig_get_be64(e + RMIG_FILE_OFF(rmig_file_block, bitmap_len));
	fb->pages_off = rmig_get_be64(e + RMIG_FILE_OFF(rmig_file_block, pages_off));
	if (fb->bitmap_len != (fb->npages + 7) / 8)
		return fail(mb, "block '%s': bitmap of %llu bytes for %llu pages", b->name,
			    (unsigned long long)fb->bitmap_len, (unsigned long long)fb->npages);
	if (fb->bitmap_off < x->hdr_size || fb->bitmap_off > x->st_size ||
	    fb->bitmap_len > x->st_size - fb->bitmap_off)
		return fail(mb,
			    "block '%s': bitmap at [%llu, +%llu) lies past the end of the file "
			    "(%llu bytes) or inside the header",
			    b->name, (unsigned long long)fb->bitmap_off,
			    (unsigned long long)fb->bitmap_len, (unsigned long long)x->st_size);
	if (fb->pages_off < x->hdr_size || fb->pages_off % RMIG_FILE_META_ALIGN ||
	    fb->pages_off > (1ull << 62) || b->length > (1ull << 62))
		return fail(mb, "block '%s': pages area at %llu is misplaced", b->name,
			    (unsigned long long)fb->pages_off);
	return 0;
}

int file_bitmap_check(struct file_xport *x, struct file_block *fb, const uint8_t *e,
		      const uint8_t *buf, struct rmig_msgbuf *mb)
{
	uint32_t want = rmig_get_be32(e + RMIG_FILE_OFF(rmig_file_block, bitmap_crc)), crc;
	uint64_t last, need;

	crc = rmig_crc32c(0, buf, fb->bitmap_len);
	if (crc != want)
		return fail(mb, "bitmap of '%s' is corrupted (checksum 0x%08x, header says 0x%08x)",
			    fb->b->name, crc, want);
	if ((fb->npages & 7) && (buf[fb->bitmap_len - 1] >> (fb->npages & 7)))
		return fail(mb, "bitmap of '%s' marks pages past the end of the block",
			    fb->b->name);
	fb->present = calloc(fb->nwords ? fb->nwords : 1, sizeof(uint64_t));
	if (!fb->present)
		return rmig_msg(mb, -ENOMEM, "out of memory for the bitmaps");
	for (uint64_t k = 0; k < fb->bitmap_len; k++)
		fb->present[k / 8] |= (uint64_t)buf[k] << (8 * (k % 8));

	/* The last present page must lie inside the file, or the pages area was cut short. */
	for (last = fb->nwords; last && !fb->present[last - 1]; last--)
		;
	if (!last)
		return 0;
	last = (last - 1) * 64 + 63 - (uint64_t)__builtin_clzll(fb->present[last - 1]);
	need = fb->pages_off + ((last + 1) << fb->b->page_shift);
	if (need > x->st_size)
		return fail(mb,
			    "file is truncated: page 0x%llx of block '%s' (file bytes up to %llu) "
			    "lies past the end of the file (%llu bytes; the save wrote %llu)",
			    (unsigned long long)(last << fb->b->page_shift), fb->b->name,
			    (unsigned long long)need, (unsigned long long)x->st_size,
			    (unsigned long long)x->hv.file_size);
	return 0;
}

static int read_bitmap(struct file_xport *x, struct file_block *fb, const uint8_t *e, uint8_t *buf,
		       struct rmig_msgbuf *mb)
{
	int ret;

	ret = file_pread_all(x->fd, buf, fb->bitmap_len, fb->bitmap_off);
	if (ret)
		return rmig_msg(mb, ret == -ENODATA ? -EPROTO : ret,
				"reading the bitmap of '%s': %s", fb->b->name,
				ret == -ENODATA ? "file truncated" : strerror(-ret));
	return file_bitmap_check(x, fb, e, buf, mb);
}

/*
 * A record is an 8-byte prefix (magic, CRC) and then a DEV message body,
 * decoded by the core's own decoder (core/msgcheck.h).
 */
int file_dev_check(uint64_t seq, uint64_t offset, const uint8_t *buf, uint32_t length,
		   char id[RMIG_IDSTR_MAX], uint32_t *instance, const uint8_t **data, uint32_t *len,
		   struct rmig_msgbuf *mb)
{
	const size_t pre = RMIG_FILE_OFF(rmig_file_dev, dev);
	char why[RMIG_ERRMSG_MAX];
	struct rmig_dev_msg m;
	uint32_t crc;

	if (length < sizeof(struct rmig_file_dev))
		return fail(mb, "device-state record %llu is malformed: %u bytes",
			    (unsigned long long)seq, length);
	if (rmig_get_be32(buf) != RMIG_FILE_DEV_MAGIC)
		return fail(mb, "device-state record %llu (offset %llu) is malformed: bad magic",
			    (unsigned long long)seq, (unsigned long long)offset);
	crc = rmig_crc32c(0, buf + pre, length - pre);
	if (crc != rmig_get_be32(buf + 4))
		return fail(
		    mb, "device-state record %llu (offset %llu) is malformed: checksum mismatch",
		    (unsigned long long)seq, (unsigned long long)offset);
	if (rmig_dev_check(buf + pre, length - pre, &m, why, sizeof(why)))
		return fail(mb, "device-state record %llu is malformed: %s",
			    (unsigned long long)seq, why);
	if (m.seq != seq)
		return fail(mb, "device-state record %llu is malformed: it holds chunk %llu",
			    (unsigned long long)seq, (unsigned long long)m.seq);
	memcpy(id, m.id, strlen(m.id) + 1);
	*instance = m.instance;
	*len = m.len;
	*data = m.data;
	return 0;
}

/*
 * Read device-state record @seq into @buf (RMIG_FILE_DEV_MAX bytes) and check
 * it. On success @id holds the NUL-terminated id and *@data points into @buf.
 */
static int dev_read(struct file_xport *x, uint64_t seq, uint8_t *buf, char id[RMIG_IDSTR_MAX],
		    uint32_t *instance, const uint8_t **data, uint32_t *len, struct rmig_msgbuf *mb)
{
	const struct rmig_file_index *e = &x->index[seq];
	int ret;

	ret = file_pread_all(x->fd, buf, e->length, e->offset);
	if (ret)
		return rmig_msg(mb, ret == -ENODATA ? -EPROTO : ret,
				"reading device-state record %llu: %s", (unsigned long long)seq,
				ret == -ENODATA ? "file truncated" : strerror(-ret));
	return file_dev_check(seq, e->offset, buf, e->length, id, instance, data, len, mb);
}

/*
 * The device-state area and index lie inside the size the save recorded (so
 * their ends cannot overflow); whether the file really is that long is
 * checked later, once a more precise "truncated" message can be given.
 */
static int check_dev_bounds(struct file_xport *x, struct rmig_msgbuf *mb)
{
	uint64_t n = x->hv.dev_count, size = x->hv.file_size;

	if (size > (1ull << 62) || n > size / sizeof(struct rmig_file_index) ||
	    x->hv.index_off > size || n * sizeof(struct rmig_file_index) > size - x->hv.index_off)
		return fail(mb,
			    "header is inconsistent: device-state index (%llu entries at %llu) "
			    "ends past the file size it records (%llu bytes)",
			    (unsigned long long)n, (unsigned long long)x->hv.index_off,
			    (unsigned long long)size);
	if (x->dev_off < x->hdr_size || x->dev_off > size || x->hv.dev_len > size - x->dev_off)
		return fail(mb,
			    "header is inconsistent: device-state area [%llu, +%llu) ends past the "
			    "file size it records (%llu bytes)",
			    (unsigned long long)x->dev_off, (unsigned long long)x->hv.dev_len,
			    (unsigned long long)size);
	return 0;
}

int file_index_check(struct file_xport *x, const uint8_t *area, const uint8_t *raw,
		     struct rmig_msgbuf *mb)
{
	uint32_t want = rmig_get_be32(area + RMIG_FILE_OFF(rmig_file_hdr, index_crc));
	uint64_t n = x->hv.dev_count, dev_end = x->dev_off + x->hv.dev_len;

	if (rmig_crc32c(0, raw, n * sizeof(struct rmig_file_index)) != want)
		return fail(mb, "the device-state index is corrupted (checksum mismatch)");
	for (uint64_t i = 0; i < n; i++) {
		const uint8_t *e = raw + i * sizeof(struct rmig_file_index);
		uint64_t off = rmig_get_be64(e + RMIG_FILE_OFF(rmig_file_index, offset));
		uint32_t len = rmig_get_be32(e + RMIG_FILE_OFF(rmig_file_index, length));

		if (len < sizeof(struct rmig_file_dev) + 8 || len > RMIG_FILE_DEV_MAX ||
		    off < x->dev_off || off > dev_end || len > dev_end - off)
			return fail(mb,
				    "device-state record %llu is malformed: [%llu, +%u) is not "
				    "inside the device-state area [%llu, %llu)",
				    (unsigned long long)i, (unsigned long long)off, len,
				    (unsigned long long)x->dev_off, (unsigned long long)dev_end);
		x->index[i].offset = off;
		x->index[i].length = len;
	}
	return 0;
}

static int check_index(struct file_xport *x, const uint8_t *area, struct rmig_msgbuf *mb)
{
	uint64_t n = x->hv.dev_count, bytes;
	uint8_t *raw;
	int ret;

	bytes = n * sizeof(struct rmig_file_index);
	raw = malloc(bytes + 1);
	x->index = calloc(n + 1, sizeof(*x->index));
	if (!raw || !x->index) {
		free(raw);
		return rmig_msg(mb, -ENOMEM, "out of memory for the device-state index");
	}
	ret = file_pread_all(x->fd, raw, bytes, x->hv.index_off);
	if (ret) {
		free(raw);
		return rmig_msg(mb, ret == -ENODATA ? -EPROTO : ret,
				"reading the device-state index: %s",
				ret == -ENODATA ? "file truncated" : strerror(-ret));
	}
	ret = file_index_check(x, area, raw, mb);
	free(raw);
	return ret;
}

/* Every record is read and checked now, so load() never starts on a file it must refuse. */
static int check_records(struct file_xport *x, struct rmig_msgbuf *mb)
{
	uint8_t *buf;
	int ret = 0;

	if (!x->hv.dev_count)
		return 0;
	buf = malloc(RMIG_FILE_DEV_MAX);
	if (!buf)
		return rmig_msg(mb, -ENOMEM, "out of memory");
	for (uint64_t i = 0; i < x->hv.dev_count && !ret; i++) {
		char id[RMIG_IDSTR_MAX];
		const uint8_t *data;
		uint32_t inst, len;

		ret = dev_read(x, i, buf, id, &inst, &data, &len, mb);
	}
	free(buf);
	return ret;
}

int file_hdr_fixed_check(struct file_xport *x, const uint8_t *fixed, uint32_t *nblocksp,
			 struct rmig_msgbuf *mb)
{
	uint32_t version, nblocks, entry;

	if (memcmp(fixed, RMIG_FILE_MAGIC, 8))
		return fail(mb, "not an rmig migration file (wrong magic)");
	version = rmig_get_be32(fixed + RMIG_FILE_OFF(rmig_file_hdr, version));
	if (version != RMIG_FILE_VERSION)
		return fail(mb, "file format version %u; this rmig reads version %u", version,
			    RMIG_FILE_VERSION);
	nblocks = rmig_get_be32(fixed + RMIG_FILE_OFF(rmig_file_hdr, nblocks));
	entry = rmig_get_be32(fixed + RMIG_FILE_OFF(rmig_file_hdr, entry_size));
	x->hdr_size = rmig_get_be32(fixed + RMIG_FILE_OFF(rmig_file_hdr, hdr_size));
	if (nblocks > RMIG_MAX_BLOCKS || entry != sizeof(struct rmig_file_block) ||
	    x->hdr_size < sizeof(struct rmig_file_hdr) + (uint64_t)nblocks * entry ||
	    x->hdr_size > RMIG_FILE_HDR_MAX)
		return fail(mb, "header is corrupted (%u blocks of %u bytes in a %u-byte header)",
			    nblocks, entry, x->hdr_size);
	if (x->hdr_size > x->st_size)
		return fail(mb, "file is truncated: %llu bytes, the header alone is %u",
			    (unsigned long long)x->st_size, x->hdr_size);
	*nblocksp = nblocks;
	return 0;
}

int file_hdr_area_check(struct file_xport *x, const uint8_t *area, uint32_t nblocks,
			uint64_t *bmmax, struct rmig_msgbuf *mb)
{
	const uint32_t entry = sizeof(struct rmig_file_block);
	uint32_t stored, crc, flags;
	uint64_t align;
	int ret;

	stored = rmig_get_be32(area + RMIG_FILE_OFF(rmig_file_hdr, hdr_crc));
	crc = rmig_file_hdr_crc(area, x->hdr_size);
	if (stored != crc)
		return fail(mb, "header is corrupted (checksum 0x%08x, stored 0x%08x)", crc, stored);
	flags = rmig_get_be32(area + RMIG_FILE_OFF(rmig_file_hdr, flags));
	if (flags & ~RMIG_FILE_F_KNOWN)
		return fail(mb, "unknown header flags 0x%x", flags & ~RMIG_FILE_F_KNOWN);
	if (!(flags & RMIG_FILE_F_COMPLETE))
		return fail(mb, "the save that wrote this file did not finish (complete flag not set)");
	if (nblocks != x->nblocks)
		return fail(mb, "RAM layout differs: the file has %u blocks, this side has %u",
			    nblocks, x->nblocks);
	x->hv.flags = flags;
	align = rmig_get_be64(area + RMIG_FILE_OFF(rmig_file_hdr, align));
	x->dev_off = rmig_get_be64(area + RMIG_FILE_OFF(rmig_file_hdr, dev_off));
	x->hv.dev_len = rmig_get_be64(area + RMIG_FILE_OFF(rmig_file_hdr, dev_len));
	x->hv.index_off = rmig_get_be64(area + RMIG_FILE_OFF(rmig_file_hdr, index_off));
	x->hv.dev_count = rmig_get_be64(area + RMIG_FILE_OFF(rmig_file_hdr, dev_count));
	x->hv.file_size = rmig_get_be64(area + RMIG_FILE_OFF(rmig_file_hdr, file_size));
	if (!rmig_is_pow2(align) || align < RMIG_FILE_META_ALIGN)
		return fail(mb, "header gives alignment %llu", (unsigned long long)align);

	*bmmax = 0;
	for (unsigned int i = 0; i < nblocks; i++) {
		const uint8_t *e = area + sizeof(struct rmig_file_hdr) + (size_t)i * entry;

		ret = check_block(x, i, e, mb);
		if (ret)
			return ret;
		if (x->blocks[i].pages_off % align)
			return fail(mb, "pages of '%s' at %llu are not %llu-byte aligned",
				    x->blocks[i].b->name, (unsigned long long)x->blocks[i].pages_off,
				    (unsigned long long)align);
		if (x->blocks[i].bitmap_len > *bmmax)
			*bmmax = x->blocks[i].bitmap_len;
	}
	ret = check_dev_bounds(x, mb);
	if (!ret)
		ret = check_overlaps(x, mb);
	return ret;
}

static int check_header(struct file_xport *x, struct rmig_msgbuf *mb)
{
	uint8_t fixed[sizeof(struct rmig_file_hdr)], *area = NULL, *bm = NULL;
	const uint32_t entry = sizeof(struct rmig_file_block);
	uint64_t bmmax = 0;
	uint32_t nblocks;
	int ret;

	if (x->st_size < sizeof(fixed))
		return fail(mb, "the file is %llu bytes, too short for an rmig file header",
			    (unsigned long long)x->st_size);
	ret = file_pread_all(x->fd, fixed, sizeof(fixed), 0);
	if (ret)
		return rmig_msg(mb, ret, "reading the header: %s", strerror(-ret));
	ret = file_hdr_fixed_check(x, fixed, &nblocks, mb);
	if (ret)
		return ret;
	area = malloc(x->hdr_size);
	if (!area)
		return rmig_msg(mb, -ENOMEM, "out of memory");
	ret = file_pread_all(x->fd, area, x->hdr_size, 0);
	if (ret) {
		ret = rmig_msg(mb, ret == -ENODATA ? -EPROTO : ret, "reading the header: %s",
			       ret == -ENODATA ? "file truncated" : strerror(-ret));
		goto out;
	}
	ret = file_hdr_area_check(x, area, nblocks, &bmmax, mb);
	if (ret)
		goto out;
	bm = malloc(bmmax ? bmmax : 1);
	if (!bm) {
		ret = rmig_msg(mb, -ENOMEM, "out of memory");
		goto out;
	}
	for (unsigned int i = 0; i < nblocks; i++) {
		ret = read_bitmap(x, &x->blocks[i],
				  area + sizeof(struct rmig_file_hdr) + (size_t)i * entry, bm, mb);
		if (ret)
			goto out;
	}
	if (x->st_size < x->hv.file_size) {
		ret = fail(mb, "file is truncated: %llu bytes, the save wrote %llu",
			   (unsigned long long)x->st_size, (unsigned long long)x->hv.file_size);
		goto out;
	}
	ret = check_index(x, area, mb);
	if (!ret)
		ret = check_records(x, mb);
out:
	free(bm);
	free(area);
	return ret;
}

int file_load_open(const struct rmig_xport_params *p, const char *path, struct rmig_xport **xp,
		   struct rmig_msgbuf *mb)
{
	struct file_xport *x;
	struct stat st;
	int ret;

	ret = file_xport_new(p, path, false, &x, mb);
	if (ret)
		return ret;
	for (unsigned int i = 0; i < p->nblocks; i++)
		x->blocks[i].b = &p->blocks[i];

	x->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (x->fd < 0) {
		ret = rmig_msg(mb, -errno, "cannot open: %s", strerror(errno));
		goto err_free;
	}
	if (fstat(x->fd, &st) < 0) {
		ret = rmig_msg(mb, -errno, "fstat: %s", strerror(errno));
		goto err_free;
	}
	if (!S_ISREG(st.st_mode)) {
		ret = rmig_msg(mb, -EINVAL, "not a regular file");
		goto err_free;
	}
	x->st_size = (uint64_t)st.st_size;
	x->dfd = x->fd;
	if (x->direct) {
		x->dfd = file_open_direct(path, O_RDONLY, mb);
		if (x->dfd < 0) {
			ret = x->dfd;
			x->dfd = x->fd;
			goto err_free;
		}
	}
	ret = check_header(x, mb);
	if (ret)
		goto err_free;
	*xp = &x->base;
	return 0;

err_free:
	file_xport_free(x);
	return ret;
}

/* ---- load ---------------------------------------------------------------- */

struct load_run {
	struct file_xport *x;
	uint64_t *unit_start; /* per block: index of its first unit; [nblocks] = total */
	uint64_t *unit_pages; /* per block: pages per unit */
	_Atomic uint64_t next;
	_Atomic int err;
};

/* Record the first failure of any load thread. */
static int run_fail(struct load_run *r, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int run_fail(struct load_run *r, int code, const char *fmt, ...)
{
	int expected = 0;
	va_list ap;

	pthread_mutex_lock(&r->x->lock);
	if (atomic_compare_exchange_strong_explicit(&r->err, &expected, code, memory_order_relaxed,
						    memory_order_relaxed)) {
		va_start(ap, fmt);
		vsnprintf(r->x->base.err.msg, sizeof(r->x->base.err.msg), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&r->x->lock);
	return code;
}

/* First page in [p, end) whose bit equals @set, or end. */
static uint64_t next_bit(const uint64_t *w, uint64_t p, uint64_t end, bool set)
{
	while (p < end) {
		uint64_t word = set ? w[p >> 6] : ~w[p >> 6];

		word &= ~0ull << (p & 63);
		if (word) {
			uint64_t q = (p & ~63ull) + (uint64_t)__builtin_ctzll(word);

			return q < end ? q : end;
		}
		p = (p | 63) + 1;
	}
	return end;
}

static int load_range(struct load_run *r, struct file_block *fb, uint64_t p, uint64_t end)
{
	struct file_xport *x = r->x;
	const struct rmig_block *b = fb->b;
	uint32_t sh = b->page_shift;

	while (p < end) {
		bool present = fb->present[p >> 6] >> (p & 63) & 1;
		uint64_t q = next_bit(fb->present, p, end, !present);

		if (present) {
			uint8_t *dst = b->host + (p << sh);
			uint64_t foff = fb->pages_off + (p << sh), len = (q - p) << sh;
			int fd = x->fd, ret;

			if (x->direct &&
			    !(((uintptr_t)dst | foff | len) & (RMIG_FILE_DIO_ALIGN - 1)))
				fd = x->dfd;
			ret = file_pread_all(fd, dst, len, foff);
			if (ret)
				return run_fail(
				    r, ret == -ENODATA ? -EPROTO : ret,
				    "%s: reading pages [0x%llx, +0x%llx) of '%s': %s", x->path,
				    (unsigned long long)(p << sh), (unsigned long long)len, b->name,
				    ret == -ENODATA ? "file truncated" : strerror(-ret));
			rmig_add_relaxed(&x->ls.reads, 1);
			rmig_add_relaxed(&x->ls.normal_pages, q - p);
			rmig_add_relaxed(&x->ls.data_bytes, len);
			rmig_add_relaxed(&x->ls.read_bytes, len);
		} else {
			uint64_t cleared = 0;

			/* Pages absent from the file are zero; clearing an already-zero page would
			 * only allocate it. */
			for (uint64_t i = p; i < q; i++) {
				uint8_t *page = b->host + (i << sh);

				if (!rmig_is_zero(page, b->page_size)) {
					memset(page, 0, b->page_size);
					cleared++;
				}
			}
			rmig_add_relaxed(&x->ls.zero_pages, q - p);
			rmig_add_relaxed(&x->ls.zero_written, cleared);
		}
		p = q;
	}
	return 0;
}

static void *load_thread(void *arg)
{
	struct load_run *r = arg;
	struct file_xport *x = r->x;
	uint64_t total = r->unit_start[x->nblocks];

	for (;;) {
		uint64_t u, p0;
		unsigned int lo = 0, hi = x->nblocks;

		if (rmig_load_relaxed(&r->err))
			break;
		if (rmig_load_relaxed(&x->cancelled)) {
			run_fail(r, -ECANCELED, "load cancelled");
			break;
		}
		/* Units are claimed in order but their I/O is independent: relaxed is enough. */
		u = atomic_fetch_add_explicit(&r->next, 1, memory_order_relaxed);
		if (u >= total)
			break;
		while (hi - lo > 1) {
			unsigned int mid = (lo + hi) / 2;

			if (r->unit_start[mid] <= u)
				lo = mid;
			else
				hi = mid;
		}
		p0 = (u - r->unit_start[lo]) * r->unit_pages[lo];
		if (load_range(r, &x->blocks[lo], p0,
			       p0 + r->unit_pages[lo] < x->blocks[lo].npages
				   ? p0 + r->unit_pages[lo]
				   : x->blocks[lo].npages))
			break;
	}
	return NULL;
}

static int deliver_dev(struct file_xport *x, rmig_dev_state_fn fn, void *arg)
{
	uint8_t *buf;
	int ret = 0;

	if (!x->hv.dev_count)
		return 0;
	buf = malloc(RMIG_FILE_DEV_MAX);
	if (!buf)
		return rmig_msg(&x->base.err, -ENOMEM, "out of memory");
	for (uint64_t i = 0; i < x->hv.dev_count && !ret; i++) {
		char id[RMIG_IDSTR_MAX];
		const uint8_t *data;
		uint32_t inst, len;

		if (rmig_load_relaxed(&x->cancelled)) {
			ret = rmig_msg(&x->base.err, -ECANCELED, "load cancelled");
			break;
		}
		ret = dev_read(x, i, buf, id, &inst, &data, &len, &x->base.err);
		if (ret)
			break;
		if (fn && fn(arg, id, inst, i, data, len))
			ret = rmig_msg(&x->base.err, -ECANCELED,
				       "device-state callback refused '%s' instance %u", id, inst);
		rmig_add_relaxed(&x->ls.dev_chunks, 1);
		rmig_add_relaxed(&x->ls.dev_bytes, len);
		rmig_add_relaxed(&x->ls.read_bytes, x->index[i].length);
	}
	free(buf);
	return ret;
}

int file_load(struct rmig_xport *xb, unsigned int threads, rmig_dev_state_fn fn, void *arg)
{
	struct file_xport *x = to_fx(xb);
	struct load_run r = {.x = x};
	pthread_t *tids = NULL;
	unsigned int started = 0;
	uint64_t total = 0;
	int ret = 0;

	if (x->source)
		return rmig_msg(&x->base.err, -EINVAL, "%s was opened for saving", x->path);
	r.unit_start = calloc(x->nblocks + 1, sizeof(uint64_t));
	r.unit_pages = calloc(x->nblocks + 1, sizeof(uint64_t));
	if (!r.unit_start || !r.unit_pages) {
		ret = rmig_msg(&x->base.err, -ENOMEM, "out of memory");
		goto out;
	}
	for (unsigned int i = 0; i < x->nblocks; i++) {
		const struct file_block *fb = &x->blocks[i];
		uint64_t up = LOAD_UNIT >> fb->b->page_shift;

		r.unit_pages[i] = up ? up : 1;
		r.unit_start[i] = total;
		total += (fb->npages + r.unit_pages[i] - 1) / r.unit_pages[i];
	}
	r.unit_start[x->nblocks] = total;
	atomic_init(&r.next, 0);
	atomic_init(&r.err, 0);

	if (threads == 0)
		threads = 1;
	if (threads > total)
		threads = total ? (unsigned int)total : 1;
	tids = calloc(threads, sizeof(*tids));
	if (!tids) {
		ret = rmig_msg(&x->base.err, -ENOMEM, "out of memory");
		goto out;
	}
	/* The caller's thread is one of the loaders. */
	for (unsigned int i = 1; i < threads; i++) {
		ret = -pthread_create(&tids[i], NULL, load_thread, &r);
		if (ret) {
			run_fail(&r, ret, "starting load threads: %s", strerror(-ret));
			break;
		}
		started++;
	}
	load_thread(&r);
	for (unsigned int i = 1; i <= started; i++)
		pthread_join(tids[i], NULL);
	/* The joins are the receive side's one sync: every page read has completed. */
	ret = rmig_load_relaxed(&r.err);
	if (!ret)
		ret = deliver_dev(x, fn, arg);
out:
	free(tids);
	free(r.unit_start);
	free(r.unit_pages);
	return ret;
}

void file_load_stats(struct rmig_xport *xb, struct rmig_stats *s)
{
	struct file_xport *x = to_fx(xb);

	s->normal_pages += rmig_load_relaxed(&x->ls.normal_pages);
	s->zero_pages += rmig_load_relaxed(&x->ls.zero_pages);
	s->data_bytes += rmig_load_relaxed(&x->ls.data_bytes);
	s->wire_bytes += rmig_load_relaxed(&x->ls.read_bytes);
	s->packets += rmig_load_relaxed(&x->ls.reads) + rmig_load_relaxed(&x->ls.dev_chunks);
	s->dev_chunks += rmig_load_relaxed(&x->ls.dev_chunks);
	s->dev_bytes += rmig_load_relaxed(&x->ls.dev_bytes);
	s->zero_pages_written += rmig_load_relaxed(&x->ls.zero_written);
}
