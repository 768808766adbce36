// SPDX-License-Identifier: MIT
/*
 * Postcopy, destination: pages in place. Arrived pages (PAGE_DATA, or a
 * pull by read) are placed with UFFDIO_COPY / UFFDIO_ZEROPAGE, which wake
 * the threads faulting there (without userfaultfd, by copying), and counted
 * until the last one, when PC_DONE goes to the source.
 */
#include <errno.h>
#include <linux/userfaultfd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "core/barrier.h"
#include "core/dst/dst_fail.h"
#include "core/postcopy/pc_dst_place.h"

void *dst_pc_bitmaps(struct rmig_dst *d)
{
	uint64_t **maps = calloc(d->nblocks, sizeof(*maps));

	for (unsigned int i = 0; maps && i < d->nblocks; i++) {
		maps[i] = calloc(blk_words(&d->blocks[i]), sizeof(uint64_t));
		if (!maps[i]) {
			while (i--)
				free(maps[i]);
			free(maps);
			return NULL;
		}
	}
	return maps;
}

void dst_pc_bitmaps_free(struct rmig_dst *d, void *p)
{
	uint64_t **maps = p;

	for (unsigned int i = 0; maps && i < d->nblocks; i++)
		free(maps[i]);
	free(maps);
}

int dst_pc_send(struct rmig_dst *d, uint16_t type, const void *body, size_t len)
{
	int ret;

	pthread_mutex_lock(&d->ctl_send_lock);
	ret = rmig_msg_send(d->ctl, type, 0, d->ctl_seq_out++, body, len);
	pthread_mutex_unlock(&d->ctl_send_lock);
	if (ret)
		return dst_fail(d, ret, "postcopy: sending %s: %s", rmig_msg_name(type),
				d->ctl->err.msg);
	return 0;
}

bool dst_pc_should_stop(struct rmig_dst *d)
{
	bool stop;

	pthread_mutex_lock(&d->lock);
	stop = d->failed || d->pc_complete || d->pc_stop;
	pthread_mutex_unlock(&d->lock);
	return stop;
}

void dst_pc_unregister(struct rmig_dst *d)
{
	for (unsigned int i = 0; d->pc_uffd >= 0 && i < d->nblocks; i++) {
		struct uffdio_range r = { .start = (uintptr_t)d->blocks[i].host,
					  .len = d->blocks[i].length };

		/* wakes every thread still waiting in a fault of the range */
		ioctl(d->pc_uffd, UFFDIO_UNREGISTER, &r);
	}
}

/*
 * Put @len bytes of final content (@src; NULL: zeroes) at @off of block @b:
 * with userfaultfd atomically (waking the threads faulting there), else by
 * copying. Returns 0 or a negative errno (d failed, or stopping).
 */
int dst_pc_put(struct rmig_dst *d, struct rmig_block *b, uint64_t off, const uint8_t *src,
		  uint64_t len)
{
	int ret;

	if (d->pc_uffd < 0) {
		if (src)
			memcpy(b->host + off, src, len);
		else
			memset(b->host + off, 0, len);
		return 0;
	}
	while (len) {
		int r;
		uint64_t done;

		if (!src) {
			struct uffdio_zeropage z = {
				.range = { .start = (uintptr_t)(b->host + off), .len = len },
			};
			r = ioctl(d->pc_uffd, UFFDIO_ZEROPAGE, &z);
			done = z.zeropage > 0 ? (uint64_t)z.zeropage : 0;
		} else {
			struct uffdio_copy c = { .dst = (uintptr_t)(b->host + off),
						 .src = (uintptr_t)src,
						 .len = len };
			r = ioctl(d->pc_uffd, UFFDIO_COPY, &c);
			done = c.copy > 0 ? (uint64_t)c.copy : 0;
		}
		if (!r)
			return 0;
		if (errno == EAGAIN && done < len) { /* partial: go on after what was placed */
			off += done;
			len -= done;
			if (src)
				src += done;
			continue;
		}
		if (errno == EEXIST && len > b->page_size) {
			/* one page is there already: page by page, skipping it */
			for (uint64_t k = 0; k < len; k += b->page_size) {
				ret = dst_pc_put(d, b, off + k, src ? src + k : NULL, b->page_size);
				if (ret)
					return ret;
			}
			return 0;
		}
		if (errno == EEXIST)
			return 0;
		ret = -errno;
		if (dst_pc_should_stop(d))
			return ret; /* unregistered after a failure */
		return dst_fail(d, ret, "postcopy: placing %llu bytes at '%s'+0x%llx: %s",
				(unsigned long long)len, b->name, (unsigned long long)off,
				strerror(-ret));
	}
	return 0;
}

/*
 * Pages [@page, @page + @n) of block @bi are in place: count them. Returns
 * true when they were the last ones (the caller sends PC_DONE).
 */
bool dst_pc_mark_present(struct rmig_dst *d, unsigned int bi, uint64_t page, uint64_t n)
{
	bool done = false;

	pthread_mutex_lock(&d->lock);
	for (uint64_t p = page; p < page + n; p++) {
		d->pc_present[bi][p / 64] |= 1ull << (p % 64);
		if (d->pc_unreported)
			d->pc_unreported[bi][p / 64] |= 1ull << (p % 64);
	}
	if (d->pc_unreported && n) {
		if (page / 64 < d->pc_unrep_lo[bi])
			d->pc_unrep_lo[bi] = page / 64;
		if ((page + n - 1) / 64 > d->pc_unrep_hi[bi] ||
		    d->pc_unrep_lo[bi] > d->pc_unrep_hi[bi])
			d->pc_unrep_hi[bi] = (page + n - 1) / 64;
	}
	d->pc_outstanding -= n;
	d->pc_pulled += n;
	d->pc_left -= n;
	if (!d->pc_left) {
		d->pc_complete = true;
		d->pc_done_ns = rmig_now_ns();
		done = true;
	}
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
	return done;
}

int dst_pc_send_done(struct rmig_dst *d)
{
	uint8_t msg[sizeof(struct rmig_wire_pc_done)];

	pthread_mutex_lock(&d->lock);
	rmig_put_be64(msg, d->pc_pulled);
	pthread_mutex_unlock(&d->lock);
	return dst_pc_send(d, RMIG_MSG_PC_DONE, msg, sizeof(msg));
}

/* pc_ctl: PAGE_DATA arrived, by request. */
int dst_pc_place(struct rmig_dst *d, const struct rmig_hdr *h, const uint8_t *body)
{
	const uint8_t *flags = body + sizeof(struct rmig_wire_page), *data;
	char why[RMIG_ERRMSG_MAX];
	struct rmig_pc_run r;
	uint32_t bi, n, ndata;
	uint64_t off, page;
	struct rmig_block *b;
	bool ok = true;
	int ret;

	if (h->len < sizeof(struct rmig_wire_page))
		return dst_fail(d, -EPROTO, "postcopy: PAGE_DATA of %u bytes", h->len);
	if (d->pc_by_read) /* set before PC_START, by this thread */
		return dst_fail(d, -EPROTO, "postcopy: PAGE_DATA, but pages are read, not requested");
	if (rmig_pc_data_parse(body, h->len, d->blocks, d->nblocks, &r, &ndata, why,
			       sizeof(why)))
		return dst_fail(d, -EPROTO, "%s", why);
	bi = r.block;
	n = r.n;
	off = r.off;
	b = &d->blocks[bi];
	page = off >> b->page_shift;
	pthread_mutex_lock(&d->lock);
	for (uint64_t p = page; p < page + n; p++)
		if (!(d->pc_requested[bi][p / 64] & (1ull << (p % 64))) ||
		    (d->pc_present[bi][p / 64] & (1ull << (p % 64))))
			ok = false;
	pthread_mutex_unlock(&d->lock);
	if (!ok)
		return dst_fail(d, -EPROTO,
				"postcopy: PAGE_DATA for '%s'+0x%llx (%u pages), not all requested "
				"and missing",
				b->name, (unsigned long long)off, n);
	/* runs of data pages are contiguous in the body; zero runs have none */
	data = flags + rmig_pad8(n);
	for (uint32_t k = 0; k < n;) {
		bool zero = flags[k];
		uint32_t run = 1;

		while (k + run < n && (bool)flags[k + run] == zero)
			run++;
		ret = dst_pc_put(d, b, off + ((uint64_t)k << b->page_shift), zero ? NULL : data,
			     (uint64_t)run << b->page_shift);
		if (ret)
			return ret;
		if (!zero)
			data += (size_t)run << b->page_shift;
		k += run;
	}
	return dst_pc_mark_present(d, bi, page, n) ? dst_pc_send_done(d) : 0;
}
