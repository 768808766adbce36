/* SPDX-License-Identifier: MIT */
/*
 * file transport internals. save.c is the source side (channels write
 * pages at fixed offsets, finish() completes the file), load.c the
 * destination side (open and validate, then load with N threads), file.c the
 * ops table and the I/O helpers both use.
 *
 * Two descriptors: @fd goes through the page cache and carries every
 * metadata read and write (header, bitmaps, device state, index); @dfd is
 * opened with O_DIRECT when RMIG_F_DIRECT_IO asks for it and carries page
 * data whose memory, file offset and length are all RMIG_FILE_DIO_ALIGN
 * aligned (otherwise @dfd == @fd). Metadata and pages never share a 4 KiB
 * file page, so the kernel keeps the two views coherent.
 */
#ifndef RMIG_TRANSPORT_FILE_FILE_H
#define RMIG_TRANSPORT_FILE_FILE_H

#include <pthread.h>
#include <stdbool.h>

#include "core/xport.h"
#include "core/xport_util.h"
#include "format.h"

/* Alignment O_DIRECT is given (memory, file offset, length); safe for 512 and 4K sectors. */
#define RMIG_FILE_DIO_ALIGN 4096u

/* Per block: where it lives in the file, and (source) which pages hold data. */
struct file_block {
	const struct rmig_block *b;
	uint64_t npages;
	uint64_t bitmap_off;
	uint64_t bitmap_len;
	uint64_t pages_off;
	/* bit p of word p / 64: page p holds data. Source: set/cleared by channels. */
	_Atomic uint64_t *bits;
	/* destination: the same, read from the file; read-only while loading */
	uint64_t *present;
	uint64_t nwords;
};

struct file_conn;

struct file_xport {
	struct rmig_xport base;
	const struct rmig_opts *opts;
	char *path;
	int fd;
	int dfd;
	bool direct;
	bool source;
	_Atomic bool cancelled;
	const struct rmig_block *rblocks; /* the local blocks, as the core keeps them */
	struct file_block *blocks;
	unsigned int nblocks;
	uint32_t hdr_size;
	uint64_t dev_off; /* start of the device-state area */

	/* source */
	unsigned int nchan;
	struct file_conn **conns;
	_Atomic uint64_t dev_next;     /* next free byte of the device-state area */
	/*
	 * Writeback windows (save.c): the file cut into wb_size-byte windows;
	 * wb_fill[w] counts the bytes written into window w, starting from
	 * wb_size less the page bytes the window holds, so it reaches wb_size
	 * when the window is complete. NULL: no writeback hints (O_DIRECT).
	 */
	_Atomic uint64_t *wb_fill;
	uint64_t wb_size;
	uint64_t wb_count;
	pthread_mutex_t lock;	       /* guards the device-state index and session */
	struct rmig_file_index *index; /* by seq; length 0: not written (yet) */
	uint64_t index_cap;
	uint64_t dev_count; /* records written */
	uint8_t session[RMIG_SESSION_ID_LEN];
	bool have_session;
	bool finished;

	/* destination */
	struct rmig_file_hdr_view {
		uint32_t flags;
		uint64_t dev_len;
		uint64_t index_off;
		uint64_t dev_count;
		uint64_t file_size;
	} hv;
	uint64_t st_size;
	struct file_load_stats {
		_Atomic uint64_t reads;
		_Atomic uint64_t normal_pages;
		_Atomic uint64_t zero_pages;
		_Atomic uint64_t data_bytes;
		_Atomic uint64_t read_bytes;
		_Atomic uint64_t zero_written;
		_Atomic uint64_t dev_chunks;
		_Atomic uint64_t dev_bytes;
	} ls;
};

static inline struct file_xport *to_fx(struct rmig_xport *x)
{
	return rmig_container_of(x, struct file_xport, base);
}

/* file.c */
/* Write or read all @len bytes at @off (retrying short transfers and EINTR); 0 or -errno. */
int file_pwrite_all(int fd, const void *buf, size_t len, uint64_t off);
/* -ENODATA when the file ends first. */
int file_pread_all(int fd, void *buf, size_t len, uint64_t off);
/*
 * A file xport with what saving and loading share set up (path, options,
 * block and, for a source, conn tables); -EINVAL without a path.
 */
int file_xport_new(const struct rmig_xport_params *p, const char *path, bool source,
		   struct file_xport **xp, struct rmig_msgbuf *mb);
void file_xport_free(struct file_xport *x);

/* save.c */
int file_save_open(const struct rmig_xport_params *p, const char *path, struct rmig_xport **xp,
		   struct rmig_conn **ctl, struct rmig_msgbuf *err);
int file_save_channel(struct rmig_xport *x, unsigned int ch, struct rmig_conn **c);
int file_save_finish(struct rmig_xport *x);
void file_save_shutdown(struct file_xport *fx);

/* load.c */
int file_load_open(const struct rmig_xport_params *p, const char *path, struct rmig_xport **xp,
		   struct rmig_msgbuf *err);
int file_load(struct rmig_xport *x, unsigned int threads, rmig_dev_state_fn fn, void *arg);
/*
 * The checks file_load_open() runs on the file's metadata, pure (no I/O) so
 * the fuzz targets run the same code; @x needs only nblocks, blocks[].b,
 * st_size (and what earlier steps filled in). Each returns 0 or -EPROTO
 * (-ENOMEM) with a sentence in @mb, in this order:
 *  - the fixed 128-byte header: magic, version, sizes (sets hdr_size);
 *  - the header area (hdr_size bytes): checksum, flags, the block table
 *    against the local blocks, every region inside the file size recorded
 *    and apart from the others (fills blocks[], dev_off, hv);
 *  - each block's bitmap (bitmap_len bytes; @e its table entry; allocates
 *    fb->present, which the caller frees);
 *  - the device-state index (hv.dev_count entries, into x->index, which the
 *    caller allocated with room for them);
 *  - each device-state record (@length bytes read from @offset).
 */
int file_hdr_fixed_check(struct file_xport *x, const uint8_t *fixed, uint32_t *nblocks,
			 struct rmig_msgbuf *mb);
int file_hdr_area_check(struct file_xport *x, const uint8_t *area, uint32_t nblocks,
			uint64_t *bmmax, struct rmig_msgbuf *mb);
int file_bitmap_check(struct file_xport *x, struct file_block *fb, const uint8_t *e,
		      const uint8_t *buf, struct rmig_msgbuf *mb);
int file_index_check(struct file_xport *x, const uint8_t *area, const uint8_t *raw,
		     struct rmig_msgbuf *mb);
int file_dev_check(uint64_t seq, uint64_t offset, const uint8_t *buf, uint32_t length,
		   char id[RMIG_IDSTR_MAX], uint32_t *instance, const uint8_t **data, uint32_t *len,
		   struct rmig_msgbuf *mb);

void file_load_stats(struct rmig_xport *x, struct rmig_stats *s);

/*
 * Open @path a second time with O_DIRECT (plus @flags) for page data.
 * Returns the fd, or -errno with a message that names a filesystem without
 * O_DIRECT.
 */
int file_open_direct(const char *path, int flags, struct rmig_msgbuf *mb);

#endif /* RMIG_TRANSPORT_FILE_FILE_H */
