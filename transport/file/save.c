// SPDX-License-Identifier: MIT
/*
 * file transport, source side: multifd without packets. Each channel's
 * send() decodes the message the core framed and writes page data at the
 * page's fixed place in the file, so a page sent again in a later round
 * overwrites its earlier copy. Which pages hold data is kept in memory and
 * written, with the device-state index and finally the header's COMPLETE
 * flag, by finish().
 *
 * Ordering between rounds needs nothing here: pwrite() has finished when
 * send() returns, and the core's sync waits for every channel's send()
 * before the next round's pages are handed out (mapped-ram sync, docs/design.md: the send side
 * syncs each round).
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/msgcheck.h"
#include "file.h"

struct file_conn {
	struct rmig_conn base;
	struct file_xport *x;
	unsigned int id;
	uint64_t seq;
	bool hello;
	bool fin;
	_Atomic bool down;
	uint64_t *offsets; /* the offsets of the RAM message being written, decoded */
	/* what this channel wrote; checked against the FIN the core sends */
	uint64_t packets, normal_pages, zero_pages, data_bytes, dev_chunks, dev_bytes, syncs;
};

static struct file_conn *to_fc(struct rmig_conn *c)
{
	return rmig_container_of(c, struct file_conn, base);
}

/* ---- layout and header ------------------------------------------------- */

static int save_layout(struct file_xport *x, const struct rmig_xport_params *p,
		       struct rmig_msgbuf *mb)
{
	uint64_t off;

	x->hdr_size = rmig_file_hdr_size(p->nblocks);
	off = x->hdr_size;
	for (unsigned int i = 0; i < x->nblocks; i++) {
		struct file_block *fb = &x->blocks[i];

		fb->b = &p->blocks[i];
		fb->npages = fb->b->length >> fb->b->page_shift;
		fb->nwords = (fb->npages + 63) / 64;
		fb->bitmap_len = (fb->npages + 7) / 8;
		fb->bitmap_off = off;
		off = rmig_file_align_up(off + fb->bitmap_len, RMIG_FILE_META_ALIGN);
		fb->bits = calloc(fb->nwords, sizeof(*fb->bits));
		if (!fb->bits)
			return rmig_msg(mb, -ENOMEM, "out of memory for the page bitmaps");
	}
	off = rmig_file_align_up(off, RMIG_FILE_ALIGN);
	for (unsigned int i = 0; i < x->nblocks; i++) {
		struct file_block *fb = &x->blocks[i];

		/* Keep every offset far below 2^63 so off_t and the sums below cannot overflow. */
		if (fb->b->length > (1ull << 60) || off > (1ull << 61))
			return rmig_msg(mb, -EFBIG, "RAM blocks too large for one file");
		fb->pages_off = off;
		off = rmig_file_align_up(off + fb->b->length, RMIG_FILE_ALIGN);
	}
	x->dev_off = off;
	atomic_init(&x->dev_next, off);
	return 0;
}

/*
 * Writeback in whole windows. Without O_DIRECT, pwrite() only copies into the
 * page cache; the disk would get everything at the fdatasync() in finish()
 * unless writeback is started earlier. Starting it for each RAM message's
 * data (the obvious place) cuts the disk's work into pieces of one message
 * (128 pages, 512 KiB, by default), and with the channels writing
 * neighbouring messages at the same time the pieces never merge: 4096 write
 * requests for 2 GiB instead of about 512 of 4 MiB. So the file is cut into
 * windows of WB_WINDOW bytes and a channel starts writeback
 * (sync_file_range(SYNC_FILE_RANGE_WRITE), a hint that does not wait) of a
 * window only when the page bytes written into it add up to the window's
 * page bytes: the window is complete, whichever channels wrote it, and goes
 * to the disk as a few large requests while the channels copy the next
 * windows. Windows never completed (zero pages, partial rounds) are left to
 * finish()'s fdatasync(), which writes whatever is still dirty.
 */
#define WB_WINDOW (8ull << 20)
/* More windows than this and they grow instead: the counters stay at most 8 MiB. */
#define WB_MAX_WINDOWS (1ull << 20)

static int wb_setup(struct file_xport *x, struct rmig_msgbuf *mb)
{
	uint64_t size = WB_WINDOW;

	if (x->direct)
		return 0;
	while (x->dev_off / size >= WB_MAX_WINDOWS)
		size *= 2;
	x->wb_size = size;
	x->wb_count = x->dev_off / size + 1;
	x->wb_fill = calloc(x->wb_count, sizeof(*x->wb_fill));
	if (!x->wb_fill)
		return rmig_msg(mb, -ENOMEM, "out of memory for the writeback windows");
	/* Every window starts full but for its page bytes (areas never overlap). */
	for (uint64_t w = 0; w < x->wb_count; w++)
		atomic_init(&x->wb_fill[w], size);
	for (unsigned int i = 0; i < x->nblocks; i++) {
		uint64_t off = x->blocks[i].pages_off, end = off + x->blocks[i].b->length;

		while (off < end) {
			uint64_t w = off / size, n = ((w + 1) * size < end ? (w + 1) * size : end) - off;

			atomic_fetch_sub_explicit(&x->wb_fill[w], n, memory_order_relaxed);
			off += n;
		}
	}
	return 0;
}

/* @len bytes were written at @off through the page cache: start writeback of completed windows. */
static void wb_note(struct file_xport *x, uint64_t off, uint64_t len)
{
	while (len) {
		uint64_t w = off / x->wb_size, end = (w + 1) * x->wb_size;
		uint64_t n = len < end - off ? len : end - off, old;

		/*
		 * Relaxed: the bytes counted were copied by pwrite() calls that
		 * returned before their counts were added, and a window's
		 * writeback is a hint either way. A page written twice counts
		 * twice, which only starts a window's writeback early.
		 */
		old = atomic_fetch_add_explicit(&x->wb_fill[w], n, memory_order_relaxed);
		if (old < x->wb_size && old + n >= x->wb_size) {
			/* Rearm for the next round's writes into this window. */
			atomic_fetch_sub_explicit(&x->wb_fill[w], x->wb_size, memory_order_relaxed);
			sync_file_range(x->fd, (off_t)(w * x->wb_size), (off_t)x->wb_size,
					SYNC_FILE_RANGE_WRITE);
		}
		off += n;
		len -= n;
	}
}

struct hdr_fields {
	uint32_t flags;
	uint64_t dev_len, index_off, dev_count, file_size;
	uint32_t index_crc;
	const uint32_t *bitmap_crc; /* per block, or NULL */
};

static void hdr_encode(struct file_xport *x, uint8_t *area, const struct hdr_fields *f)
{
	memset(area, 0, x->hdr_size);
	memcpy(area, RMIG_FILE_MAGIC, 8);
	rmig_put_be32(area + RMIG_FILE_OFF(rmig_file_hdr, version), RMIG_FILE_VERSION);
	rmig_put_be32(area + RMIG_FILE_OFF(rmig_file_hdr, flags),
		      f->flags | (x->direct ? RMIG_FILE_F_DIRECT : 0));
	rmig_put_be32(area + RMIG_FILE_OFF(rmig_file_hdr, nblocks), x->nblocks);
	rmig_put_be32(area + RMIG_FILE_OFF(rmig_file_hdr, hdr_size), x->hdr_size);
	rmig_put_be32(area + RMIG_FILE_OFF(rmig_file_hdr, entry_size),
		      sizeof(struct rmig_file_block));
	rmig_put_be64(area + RMIG_FILE_OFF(rmig_file_hdr, align), RMIG_FILE_ALIGN);
	rmig_put_be64(area + RMIG_FILE_OFF(rmig_file_hdr, dev_off), x->dev_off);
	rmig_put_be64(area + RMIG_FILE_OFF(rmig_file_hdr, dev_len), f->dev_len);
	rmig_put_be64(area + RMIG_FILE_OFF(rmig_file_hdr, index_off), f->index_off);
	rmig_put_be64(area + RMIG_FILE_OFF(rmig_file_hdr, dev_count), f->dev_count);
	rmig_put_be32(area + RMIG_FILE_OFF(rmig_file_hdr, index_crc), f->index_crc);
	rmig_put_be64(area + RMIG_FILE_OFF(rmig_file_hdr, file_size), f->file_size);
	memcpy(area + RMIG_FILE_OFF(rmig_file_hdr, session), x->session, RMIG_SESSION_ID_LEN);

	for (unsigned int i = 0; i < x->nblocks; i++) {
		const struct file_block *fb = &x->blocks[i];
		uint8_t *e = area + sizeof(struct rmig_file_hdr) +
			     (size_t)i * sizeof(struct rmig_file_block);
		size_t nl = strlen(fb->b->name);

		rmig_put_be64(e + RMIG_FILE_OFF(rmig_file_block, length), fb->b->length);
		rmig_put_be32(e + RMIG_FILE_OFF(rmig_file_block, page_size), fb->b->page_size);
		rmig_put_be32(e + RMIG_FILE_OFF(rmig_file_block, version), RMIG_FILE_BLOCK_VERSION);
		rmig_put_be64(e + RMIG_FILE_OFF(rmig_file_block, bitmap_off), fb->bitmap_off);
		rmig_put_be64(e + RMIG_FILE_OFF(rmig_file_block, bitmap_len), fb->bitmap_len);
		rmig_put_be64(e + RMIG_FILE_OFF(rmig_file_block, pages_off), fb->pages_off);
		rmig_put_be32(e + RMIG_FILE_OFF(rmig_file_block, bitmap_crc),
			      f->bitmap_crc ? f->bitmap_crc[i] : 0);
		rmig_put_be16(e + RMIG_FILE_OFF(rmig_file_block, name_len), (uint16_t)nl);
		memcpy(e + RMIG_FILE_OFF(rmig_file_block, name), fb->b->name, nl);
	}
	rmig_put_be32(area + RMIG_FILE_OFF(rmig_file_hdr, hdr_crc),
		      rmig_file_hdr_crc(area, x->hdr_size));
}

static int hdr_write(struct file_xport *x, const struct hdr_fields *f, struct rmig_msgbuf *mb)
{
	uint8_t *area = malloc(x->hdr_size);
	int ret;

	if (!area)
		return rmig_msg(mb, -ENOMEM, "out of memory");
	hdr_encode(x, area, f);
	ret = file_pwrite_all(x->fd, area, x->hdr_size, 0);
	free(area);
	if (ret)
		return rmig_msg(mb, ret, "writing the header of %s: %s", x->path, strerror(-ret));
	return 0;
}

/* ---- open ---------------------------------------------------------------- */

int file_save_open(const struct rmig_xport_params *p, const char *path, struct rmig_xport **xp,
		   struct rmig_conn **ctl, struct rmig_msgbuf *mb)
{
	struct file_xport *x;
	struct hdr_fields f = {0};
	bool created = false;
	int ret;

	ret = file_xport_new(p, path, true, &x, mb);
	if (ret)
		return ret;
	ret = save_layout(x, p, mb);
	if (!ret)
		ret = wb_setup(x, mb);
	if (ret)
		goto err_free;

	/*
	 * Guest RAM is private: a new file is readable by its owner only. An
	 * existing file is emptied only once both descriptors are open, so a
	 * refused O_DIRECT leaves it as it was (and a file we made is removed).
	 */
	x->fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	created = x->fd >= 0;
	if (x->fd < 0 && errno == EEXIST)
		x->fd = open(path, O_RDWR | O_CLOEXEC);
	if (x->fd < 0) {
		ret = rmig_msg(mb, -errno, "cannot create: %s", strerror(errno));
		goto err_free;
	}
	x->dfd = x->fd;
	if (x->direct) {
		x->dfd = file_open_direct(path, O_WRONLY, mb);
		if (x->dfd < 0) {
			ret = x->dfd;
			x->dfd = x->fd;
			goto err_unlink;
		}
	}
	if (ftruncate(x->fd, 0) < 0) {
		ret = rmig_msg(mb, -errno, "cannot truncate: %s", strerror(errno));
		goto err_unlink;
	}

	/* A header without COMPLETE first: a save that stops here is recognisably unfinished. */
	f.file_size = x->dev_off;
	ret = hdr_write(x, &f, mb);
	if (ret)
		goto err_free;
	/* Sparse up to the device-state area: pages never written read back as holes. */
	if (ftruncate(x->fd, (off_t)x->dev_off) < 0) {
		ret = rmig_msg(mb, -errno, "cannot size the file to %llu bytes: %s",
			       (unsigned long long)x->dev_off, strerror(errno));
		goto err_free;
	}
	*xp = &x->base;
	*ctl = NULL;
	return 0;

err_unlink:
	if (created)
		unlink(path);
err_free:
	file_xport_free(x);
	return ret;
}

/* ---- channels ------------------------------------------------------------ */

static int conn_fail(struct file_conn *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int conn_fail(struct file_conn *c, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->base.err.msg, sizeof(c->base.err.msg), fmt, ap);
	va_end(ap);
	return code;
}

/*
 * A RAM message: its body decoded and checked by the core's own decoder
 * (core/msgcheck.h, the one the destination runs), then each segment checked
 * against the data pages it must carry: the segments are exactly the runs of
 * the message's normal offsets, in order, so what lands in the file is what
 * the bitmap will say is there.
 */
static int write_pages(struct file_conn *c, const struct rmig_chan_msg *h,
		       const struct rmig_seg *segs, unsigned int nsegs)
{
	struct file_xport *x = c->x;
	const struct rmig_block *b;
	struct rmig_ram_msg m;
	struct file_block *fb;
	char why[RMIG_ERRMSG_MAX];
	uint32_t n, i = 0;
	int ret;

	const uint8_t *body = h->body;

	if (rmig_ram_check_head(body, h->len, h->flags, x->rblocks, x->nblocks,
				x->opts->pages_per_packet, false, rmig_file_ops.name, &m, why,
				sizeof(why)))
		return conn_fail(c, -EPROTO, "%s", why);
	fb = &x->blocks[m.block];
	b = fb->b;
	if (rmig_ram_check_offsets(body, b, &m, c->offsets, why, sizeof(why)))
		return conn_fail(c, -EPROTO, "%s", why);
	n = m.normal + m.zero;

	for (unsigned int k = 0; k < nsegs; k++) {
		const struct rmig_seg *s = &segs[k];
		bool ok = s->block == m.block && s->len && !(s->len & (b->page_size - 1));

		/* bounded by the offsets: at most normal + 1 steps */
		for (uint64_t o = 0; ok && o < s->len; o += b->page_size, i++)
			ok = i < m.normal && c->offsets[i] == s->offset + o;
		if (!ok)
			return conn_fail(c, -EPROTO,
					 "page data [0x%llx, +0x%llx) for block %u does not match the "
					 "data pages of the RAM message for block '%s'",
					 (unsigned long long)s->offset, (unsigned long long)s->len,
					 s->block, b->name);
	}
	if (i != m.normal)
		return conn_fail(c, -EPROTO, "RAM message for %u pages carries %u pages of data",
				 m.normal, i);

	for (unsigned int k = 0; k < nsegs; k++) {
		const struct rmig_seg *s = &segs[k];
		uint64_t foff = fb->pages_off + s->offset;
		int fd = x->fd;

		if (x->direct &&
		    !(((uintptr_t)s->local | foff | s->len) & (RMIG_FILE_DIO_ALIGN - 1)))
			fd = x->dfd;
		ret = file_pwrite_all(fd, s->local, s->len, foff);
		if (ret)
			return conn_fail(c, ret, "%s: writing %llu bytes at offset %llu: %s",
					 x->path, (unsigned long long)s->len,
					 (unsigned long long)foff, strerror(-ret));
		c->base.wire_bytes += s->len;
		/* A hint only: errors show at finish()'s fdatasync(). */
		if (fd == x->fd && x->wb_fill)
			wb_note(x, foff, s->len);
	}

	/*
	 * Relaxed is enough: the bits are read only by finish(), after the
	 * core's FIN sync has waited for this channel (its semaphore hand-off
	 * orders our stores before that read).
	 */
	for (i = 0; i < n; i++) {
		uint64_t page = c->offsets[i] >> b->page_shift;
		uint64_t mask = 1ull << (page & 63);

		if (i < m.normal)
			rmig_or_relaxed(&fb->bits[page >> 6], mask);
		else
			rmig_and_relaxed(&fb->bits[page >> 6], ~mask);
	}
	c->packets++;
	c->normal_pages += m.normal;
	c->zero_pages += m.zero;
	c->data_bytes += (uint64_t)m.normal * b->page_size;
	return 0;
}

static int write_dev(struct file_conn *c, const struct rmig_chan_msg *h)
{
	const uint8_t *body = h->body;
	struct file_xport *x = c->x;
	struct rmig_dev_msg m;
	char why[RMIG_ERRMSG_MAX];
	uint8_t prefix[8];
	uint64_t seq, off;
	uint32_t rec_len;
	int ret;

	if (rmig_dev_check(body, h->len, &m, why, sizeof(why)))
		return conn_fail(c, -EPROTO, "%s", why);
	seq = m.seq;

	/* The record is the wire body behind an 8-byte prefix, in space reserved here. */
	rec_len = 8 + h->len;
	off = atomic_fetch_add_explicit(&x->dev_next, rmig_pad8(rec_len), memory_order_relaxed);
	rmig_put_be32(prefix, RMIG_FILE_DEV_MAGIC);
	rmig_put_be32(prefix + 4, rmig_crc32c(0, body, h->len));
	ret = file_pwrite_all(x->fd, prefix, sizeof(prefix), off);
	if (!ret)
		ret = file_pwrite_all(x->fd, body, h->len, off + sizeof(prefix));
	if (ret)
		return conn_fail(c, ret, "%s: writing device state at offset %llu: %s", x->path,
				 (unsigned long long)off, strerror(-ret));
	c->base.wire_bytes += rec_len;

	pthread_mutex_lock(&x->lock);
	/* The core numbers chunks from 0 and holds at most one per channel in flight. */
	if (seq >= x->dev_count + 65536) {
		ret = conn_fail(c, -EPROTO,
				"device-state chunk %llu is far ahead of the %llu written",
				(unsigned long long)seq, (unsigned long long)x->dev_count);
	} else if (seq >= x->index_cap) {
		uint64_t cap = x->index_cap ? x->index_cap : 64;
		struct rmig_file_index *ni;

		while (cap <= seq)
			cap *= 2;
		ni = realloc(x->index, cap * sizeof(*ni));
		if (!ni) {
			ret = conn_fail(c, -ENOMEM, "out of memory for the device-state index");
		} else {
			memset(ni + x->index_cap, 0, (cap - x->index_cap) * sizeof(*ni));
			x->index = ni;
			x->index_cap = cap;
		}
	}
	if (!ret && x->index[seq].length)
		ret = conn_fail(c, -EPROTO, "device-state chunk %llu sent twice",
				(unsigned long long)seq);
	if (!ret) {
		x->index[seq].offset = off;
		x->index[seq].length = rec_len;
		x->dev_count++;
	}
	pthread_mutex_unlock(&x->lock);
	if (ret)
		return ret;
	c->packets++;
	c->dev_chunks++;
	c->dev_bytes += m.len;
	return 0;
}

static int note_hello(struct file_conn *c, const struct rmig_chan_msg *h)
{
	struct file_xport *x = c->x;
	const uint8_t *session;
	char why[128];
	uint32_t id;
	int ret = 0;

	if (rmig_chan_hello_check(h, &id, &session, why, sizeof(why)))
		return conn_fail(c, -EPROTO, "%s", why);
	if (id != c->id)
		return conn_fail(c, -EPROTO, "channel %u introduced itself as channel %u", c->id,
				 id);
	pthread_mutex_lock(&x->lock);
	if (!x->have_session) {
		memcpy(x->session, session, RMIG_SESSION_ID_LEN);
		x->have_session = true;
	} else if (memcmp(x->session, session, RMIG_SESSION_ID_LEN)) {
		ret = conn_fail(c, -EPROTO, "channel %u belongs to another session", c->id);
	}
	pthread_mutex_unlock(&x->lock);
	c->hello = !ret;
	return ret;
}

static int note_sync(struct file_conn *c, const struct rmig_chan_msg *h)
{
	char why[128];
	uint64_t round;

	if (rmig_sync_check(h, &round, why, sizeof(why)))
		return conn_fail(c, -EPROTO, "%s", why);
	if (round != c->syncs + 1)
		return conn_fail(c, -EPROTO, "SYNC for round %llu, expected %llu",
				 (unsigned long long)round, (unsigned long long)c->syncs + 1);
	c->syncs++;
	return 0;
}

static int note_fin(struct file_conn *c, const struct rmig_chan_msg *h)
{
	const uint64_t mine[RMIG_FIN_TOTALS] = {c->packets,    c->normal_pages, c->zero_pages,
						c->data_bytes, c->dev_chunks,	c->dev_bytes,
						c->syncs};
	uint64_t theirs[RMIG_FIN_TOTALS];
	char why[128];

	if (rmig_fin_check(h, theirs, why, sizeof(why)))
		return conn_fail(c, -EPROTO, "%s", why);
	for (unsigned int i = 0; i < RMIG_FIN_TOTALS; i++) {
		if (theirs[i] != mine[i])
			return conn_fail(c, -EPROTO,
					 "channel %u: source counted %llu %s, the file got %llu",
					 c->id, (unsigned long long)theirs[i],
					 rmig_fin_total_names[i], (unsigned long long)mine[i]);
	}
	c->fin = true;
	return 0;
}

static int file_send(struct rmig_conn *conn, const void *hdr, size_t hdr_len,
		     const struct rmig_seg *segs, unsigned int nsegs)
{
	struct file_conn *c = to_fc(conn);
	char why[256];
	struct rmig_chan_msg h;
	int ret;

	if (rmig_load_relaxed(&c->down) || rmig_load_relaxed(&c->x->cancelled))
		return conn_fail(c, -ECANCELED, "channel shut down");
	/* header and body decoded by the core's decoder (core/msgcheck.h) */
	ret = rmig_chan_msg_check(hdr, hdr_len, &h, why, sizeof(why));
	if (ret)
		return conn_fail(c, ret, "%s", why);
	if (h.seq != c->seq)
		return conn_fail(c, -EPROTO, "message %llu where %llu was expected",
				 (unsigned long long)h.seq, (unsigned long long)c->seq);
	if (c->fin)
		return conn_fail(c, -EPROTO, "%s after FIN", h.name);
	if (!c->hello && h.kind != RMIG_CK_CHAN)
		return conn_fail(c, -EPROTO, "%s before the channel hello", h.name);
	if (h.flags || (nsegs && h.kind != RMIG_CK_RAM))
		return conn_fail(c, -EPROTO, "%s message with flags 0x%x and %u segments", h.name,
				 h.flags, nsegs);
	c->seq++;

	switch (h.kind) {
	case RMIG_CK_CHAN:
		if (c->hello)
			return conn_fail(c, -EPROTO, "second channel hello");
		return note_hello(c, &h);
	case RMIG_CK_RAM:
		return write_pages(c, &h, segs, nsegs);
	case RMIG_CK_DEV:
		return write_dev(c, &h);
	case RMIG_CK_SYNC:
		return note_sync(c, &h);
	case RMIG_CK_FIN:
		return note_fin(c, &h);
	case RMIG_CK_OTHER:
		break;
	}
	return conn_fail(c, -EPROTO, "unexpected %s message on a channel", h.name);
}

/* pwrite() is synchronous: once send() returned, no page memory is referenced. */
static int file_flush(struct rmig_conn *conn)
{
	struct file_conn *c = to_fc(conn);

	if (rmig_load_relaxed(&c->down))
		return conn_fail(c, -ECANCELED, "channel shut down");
	return 0;
}

static int file_recv(struct rmig_conn *conn, void *buf, size_t len, int timeout_ms)
{
	return rmig_msg(&conn->recv_err, -ENOSYS, "a file channel has nothing to receive");
}

static int file_recv_pages(struct rmig_conn *conn, const struct iovec *iov, unsigned int iovcnt)
{
	return rmig_msg(&conn->recv_err, -ENOSYS, "a file channel has nothing to receive");
}

static void file_conn_shutdown(struct rmig_conn *conn)
{
	rmig_store_relaxed(&to_fc(conn)->down, true);
}

static void file_conn_close(struct rmig_conn *conn)
{
	struct file_conn *c = to_fc(conn);

	c->x->conns[c->id] = NULL;
	free(c->offsets);
	free(c);
}

static const struct rmig_conn_ops file_conn_ops = {
    .send = file_send,
    .flush = file_flush,
    .recv = file_recv,
    .recv_pages = file_recv_pages,
    .pull = rmig_conn_no_pull,
    .pull_wait = rmig_conn_no_pull_wait,
    .chan_open = rmig_conn_nop_chan_open,
    .shutdown = file_conn_shutdown,
    .close = file_conn_close,
};

int file_save_channel(struct rmig_xport *xb, unsigned int ch, struct rmig_conn **cp)
{
	struct file_xport *x = to_fx(xb);
	struct file_conn *c;

	if (!x->source)
		return rmig_msg(&x->base.err, -EINVAL, "%s was opened for loading", x->path);
	if (ch >= x->nchan || x->conns[ch])
		return rmig_msg(&x->base.err, -EINVAL,
				"channel %u of %u opened twice or out of range", ch, x->nchan);
	c = calloc(1, sizeof(*c));
	if (c)
		c->offsets = calloc(x->opts->pages_per_packet, sizeof(*c->offsets));
	if (!c || !c->offsets) {
		free(c);
		return rmig_msg(&x->base.err, -ENOMEM, "out of memory");
	}
	c->base.ops = &file_conn_ops;
	c->x = x;
	c->id = ch;
	atomic_init(&c->down, false);
	x->conns[ch] = c;
	*cp = &c->base;
	return 0;
}

void file_save_shutdown(struct file_xport *x)
{
	for (unsigned int i = 0; x->conns && i < x->nchan; i++)
		if (x->conns[i])
			rmig_store_relaxed(&x->conns[i]->down, true);
}

/* ---- finish ---------------------------------------------------------------- */

static int write_bitmaps(struct file_xport *x, uint32_t *crcs)
{
	uint64_t max = 0;
	uint8_t *buf;
	int ret = 0;

	for (unsigned int i = 0; i < x->nblocks; i++)
		if (x->blocks[i].bitmap_len > max)
			max = x->blocks[i].bitmap_len;
	buf = malloc(max ? max : 1);
	if (!buf)
		return rmig_msg(&x->base.err, -ENOMEM, "out of memory");
	for (unsigned int i = 0; i < x->nblocks && !ret; i++) {
		struct file_block *fb = &x->blocks[i];

		/* Bytes in file order: page p is bit p % 8 of byte p / 8, whatever the host. */
		for (uint64_t k = 0; k < fb->bitmap_len; k++)
			buf[k] = (uint8_t)(rmig_load_relaxed(&fb->bits[k / 8]) >> (8 * (k % 8)));
		crcs[i] = rmig_crc32c(0, buf, fb->bitmap_len);
		ret = file_pwrite_all(x->fd, buf, fb->bitmap_len, fb->bitmap_off);
		if (ret)
			rmig_msg(&x->base.err, ret, "%s: writing the bitmap of '%s': %s", x->path,
				 fb->b->name, strerror(-ret));
	}
	free(buf);
	return ret;
}

/* Make the file's name durable too; not every filesystem can sync a directory. */
static void sync_parent_dir(const char *path)
{
	char *copy = strdup(path);
	int fd;

	if (!copy)
		return;
	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
	free(copy);
}

int file_save_finish(struct rmig_xport *xb)
{
	struct file_xport *x = to_fx(xb);
	struct hdr_fields f = {.flags = RMIG_FILE_F_COMPLETE};
	uint32_t *crcs = NULL;
	uint8_t *idx = NULL;
	uint64_t dev_end;
	int ret;

	if (!x->source || x->finished)
		return rmig_msg(&x->base.err, -EINVAL, "%s: nothing to finish", x->path);
	for (unsigned int i = 0; i < x->nchan; i++)
		if (!x->conns[i] || !x->conns[i]->fin)
			return rmig_msg(&x->base.err, -EPROTO, "channel %u did not finish", i);

	/* Every chunk 0..count-1 written exactly once (write_dev refused repeats). */
	for (uint64_t s = 0; s < x->dev_count; s++)
		if (!x->index[s].length)
			return rmig_msg(&x->base.err, -EPROTO,
					"device-state chunk %llu never arrived",
					(unsigned long long)s);

	crcs = calloc(x->nblocks, sizeof(*crcs));
	idx = malloc(x->dev_count * sizeof(struct rmig_file_index) + 1);
	if (!crcs || !idx) {
		ret = rmig_msg(&x->base.err, -ENOMEM, "out of memory");
		goto out;
	}
	ret = write_bitmaps(x, crcs);
	if (ret)
		goto out;

	dev_end = rmig_load_relaxed(&x->dev_next);
	f.dev_len = dev_end - x->dev_off;
	f.dev_count = x->dev_count;
	f.index_off = rmig_file_align_up(dev_end, RMIG_FILE_META_ALIGN);
	for (uint64_t s = 0; s < x->dev_count; s++) {
		uint8_t *e = idx + s * sizeof(struct rmig_file_index);

		rmig_put_be64(e + RMIG_FILE_OFF(rmig_file_index, offset), x->index[s].offset);
		rmig_put_be32(e + RMIG_FILE_OFF(rmig_file_index, length), x->index[s].length);
		rmig_put_be32(e + RMIG_FILE_OFF(rmig_file_index, reserved), 0);
	}
	f.index_crc = rmig_crc32c(0, idx, x->dev_count * sizeof(struct rmig_file_index));
	f.file_size = f.index_off + x->dev_count * sizeof(struct rmig_file_index);
	f.bitmap_crc = crcs;
	ret =
	    file_pwrite_all(x->fd, idx, x->dev_count * sizeof(struct rmig_file_index), f.index_off);
	if (ret) {
		rmig_msg(&x->base.err, ret, "%s: writing the device-state index: %s", x->path,
			 strerror(-ret));
		goto out;
	}
	if (ftruncate(x->fd, (off_t)f.file_size) < 0) {
		ret = rmig_msg(&x->base.err, -errno, "%s: truncating to %llu bytes: %s", x->path,
			       (unsigned long long)f.file_size, strerror(errno));
		goto out;
	}
	/*
	 * Pages, bitmaps and index reach the disk before the header that says
	 * COMPLETE, so a crash in between leaves a file that is refused, never
	 * one that loads stale data.
	 */
	if (fdatasync(x->fd) < 0) {
		ret = rmig_msg(&x->base.err, -errno, "%s: fdatasync: %s", x->path, strerror(errno));
		goto out;
	}
	ret = hdr_write(x, &f, &x->base.err);
	if (ret)
		goto out;
	if (fdatasync(x->fd) < 0) {
		ret = rmig_msg(&x->base.err, -errno, "%s: fdatasync: %s", x->path, strerror(errno));
		goto out;
	}
	sync_parent_dir(x->path);
	x->finished = true;
out:
	free(idx);
	free(crcs);
	return ret;
}
