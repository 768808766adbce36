// SPDX-License-Identifier: MIT
/*
 * Postcopy, destination: asking for the missing pages. By request (tcp):
 * the fault thread asks for the pages the caller's vCPUs touch, the
 * background thread for every other missing page in order, both with
 * PAGE_REQ. By the transport (rdma: RDMA READ of the source's RAM): one
 * pull thread reads runs of missing pages, faulting ones first, and reports
 * them to the source with PC_PULLED.
 */
#include <errno.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/barrier.h"
#include "core/dst/dst_fail.h"
#include "core/postcopy/pc_dst_place.h"
#include "core/postcopy/pc_dst_pull.h"
#include "core/zero.h"

/* A pull in flight: pages [first, first + n) of block bi (by read: landing in buf). */
struct pc_pull {
	unsigned int bi;
	uint64_t first, n;
	uint64_t ticket;
	uint8_t *buf;
};

static bool pc_wanted(struct rmig_dst *d, unsigned int bi, uint64_t pg)
{
	return !((d->pc_present[bi][pg / 64] | d->pc_requested[bi][pg / 64]) & (1ull << (pg % 64)));
}

/*
 * Under lock: claim the run of pages from @pg (wanted: missing and not asked
 * for), at most @max; returns its length (0 when @pg is not wanted).
 */
static uint64_t pc_claim_run(struct rmig_dst *d, unsigned int bi, uint64_t pg, uint64_t max)
{
	uint64_t np = blk_pages(&d->blocks[bi]), n = 0;

	while (n < max && pg + n < np && pc_wanted(d, bi, pg + n)) {
		d->pc_requested[bi][(pg + n) / 64] |= 1ull << ((pg + n) % 64);
		n++;
	}
	if (n) {
		d->pc_outstanding += n;
		d->pc_pulls++;
	}
	return n;
}

/* Most pages one pull of block @bi covers. */
static uint64_t pc_run_pages(struct rmig_dst *d, unsigned int bi)
{
	const struct rmig_block *b = &d->blocks[bi];

	if (d->pc_by_read)
		return d->pc_slot >> b->page_shift;
	return rmig_pc_run_max(b->page_size);
}

/*
 * Under lock: the next run to pull, faulting pages first (queued for the
 * pull thread), then the background order from *@cbi, *@cpg; its pages are
 * claimed. Returns false when nothing is left to ask for.
 */
static bool pc_next_run(struct rmig_dst *d, unsigned int *cbi, uint64_t *cpg, struct pc_pull *p)
{
	for (;;) {
		bool fault = d->pc_fq_tail != d->pc_fq_head;
		unsigned int bi;
		uint64_t pg;

		if (fault) {
			bi = d->pc_fq[d->pc_fq_tail % RMIG_PC_FAULT_QUEUE].block;
			pg = d->pc_fq[d->pc_fq_tail % RMIG_PC_FAULT_QUEUE].page;
			d->pc_fq_tail++;
		} else {
			while (*cbi < d->nblocks && *cpg >= blk_pages(&d->blocks[*cbi])) {
				(*cbi)++;
				*cpg = 0;
			}
			if (*cbi >= d->nblocks)
				return false;
			bi = *cbi;
			pg = (*cpg)++;
		}
		p->n = pc_claim_run(d, bi, pg, pc_run_pages(d, bi));
		if (!p->n)
			continue;
		p->bi = bi;
		p->first = pg;
		if (!fault)
			*cpg = pg + p->n; /* a fault's run leaves the background order alone */
		return true;
	}
}

static int pc_send_req(struct rmig_dst *d, unsigned int bi, uint64_t page, uint64_t n)
{
	uint8_t req[sizeof(struct rmig_wire_page)];

	rmig_put_be32(req + RMIG_OFF(rmig_wire_page, block), bi);
	rmig_put_be32(req + RMIG_OFF(rmig_wire_page, npages), (uint32_t)n);
	rmig_put_be64(req + RMIG_OFF(rmig_wire_page, offset), page << d->blocks[bi].page_shift);
	return dst_pc_send(d, RMIG_MSG_PAGE_REQ, req, sizeof(req));
}

/*
 * A vCPU faulted on @page: ask for it, with the missing pages right after it
 * (up to RMIG_PC_FAULT_RUN: a guest touching a page often touches the next),
 * unless it is there or asked for already.
 */
static int pc_request(struct rmig_dst *d, unsigned int bi, uint64_t page)
{
	uint64_t max = pc_run_pages(d, bi), n = 0;

	if (max > RMIG_PC_FAULT_RUN)
		max = RMIG_PC_FAULT_RUN;
	pthread_mutex_lock(&d->lock);
	if (!d->failed && pc_wanted(d, bi, page)) {
		if (!d->pc_by_read) {
			n = pc_claim_run(d, bi, page, max);
		} else if (d->pc_fq_head - d->pc_fq_tail < RMIG_PC_FAULT_QUEUE) {
			/* the pull thread reads it next; a full queue leaves it to the background */
			d->pc_fq[d->pc_fq_head % RMIG_PC_FAULT_QUEUE].block = bi;
			d->pc_fq[d->pc_fq_head % RMIG_PC_FAULT_QUEUE].page = page;
			d->pc_fq_head++;
			pthread_cond_broadcast(&d->cond);
		}
	}
	pthread_mutex_unlock(&d->lock);
	return n ? pc_send_req(d, bi, page, n) : 0;
}

/* Reads faults: the caller's vCPUs touched a page that is not there yet. */
void *dst_pc_fault_thread(void *arg)
{
	struct rmig_dst *d = arg;

	pthread_setname_np(pthread_self(), "rmig-pcfault");
	while (!dst_pc_should_stop(d)) {
		struct pollfd p = { .fd = d->pc_uffd, .events = POLLIN };
		struct uffd_msg msg;
		uintptr_t addr;

		if (poll(&p, 1, 50) <= 0)
			continue;
		if (read(d->pc_uffd, &msg, sizeof(msg)) != (ssize_t)sizeof(msg))
			continue;
		if (msg.event != UFFD_EVENT_PAGEFAULT)
			continue;
		addr = (uintptr_t)msg.arg.pagefault.address;
		for (unsigned int i = 0; i < d->nblocks; i++) {
			struct rmig_block *b = &d->blocks[i];

			if (addr < (uintptr_t)b->host || addr >= (uintptr_t)b->host + b->length)
				continue;
			rmig_add_relaxed(&d->pc_faults, 1);
			pc_request(d, i, (addr - (uintptr_t)b->host) >> b->page_shift);
			break;
		}
	}
	/* Failed: let nobody wait for a page that will not come (it reads as zero). */
	bool complete;

	pthread_mutex_lock(&d->lock);
	complete = d->pc_complete;
	if (!complete)
		dst_pc_unregister(d);
	pthread_mutex_unlock(&d->lock);
	/*
	 * Complete: faults the last pulls answered before this thread read them
	 * are still queued; count them (the descriptor does not block).
	 */
	for (struct uffd_msg msg;
	     complete && read(d->pc_uffd, &msg, sizeof(msg)) == (ssize_t)sizeof(msg);)
		if (msg.event == UFFD_EVENT_PAGEFAULT)
			rmig_add_relaxed(&d->pc_faults, 1);
	return NULL;
}

/* Requests every missing page in order, in runs, a window at a time, so postcopy ends. */
void *dst_pc_bg_thread(void *arg)
{
	struct rmig_dst *d = arg;
	unsigned int cbi = 0;
	uint64_t cpg = 0;

	pthread_setname_np(pthread_self(), "rmig-pcbg");
	for (;;) {
		struct pc_pull p;
		bool more;

		pthread_mutex_lock(&d->lock);
		while (!d->failed && !d->pc_stop && d->pc_outstanding >= RMIG_PC_BG_WINDOW)
			pthread_cond_wait(&d->cond, &d->lock);
		more = !d->failed && !d->pc_stop && !d->pc_complete &&
		       pc_next_run(d, &cbi, &cpg, &p);
		pthread_mutex_unlock(&d->lock);
		if (!more || pc_send_req(d, p.bi, p.first, p.n))
			return NULL;
	}
}

/* ---------------------------------------------- pulls by the transport */

/* Tell the source which pages arrived since the last report (PC_PULLED). */
static int pc_report(struct rmig_dst *d)
{
	uint8_t msg[sizeof(struct rmig_wire_pc_discard) + RMIG_PC_DISCARD_WORDS * 8];
	int ret;

	/* only the words marked since the last report: the range dst_pc_mark_present() kept */
	for (unsigned int i = 0; i < d->nblocks; i++) {
		for (;;) {
			uint64_t w, n, any = 0;

			pthread_mutex_lock(&d->lock);
			if (d->pc_unrep_lo[i] > d->pc_unrep_hi[i]) {
				pthread_mutex_unlock(&d->lock);
				break;
			}
			w = d->pc_unrep_lo[i];
			n = d->pc_unrep_hi[i] - w + 1;
			if (n > RMIG_PC_DISCARD_WORDS)
				n = RMIG_PC_DISCARD_WORDS;
			for (uint64_t k = 0; k < n; k++) {
				any |= d->pc_unreported[i][w + k];
				rmig_put_be64(msg + sizeof(struct rmig_wire_pc_discard) + k * 8,
					      d->pc_unreported[i][w + k]);
				d->pc_unreported[i][w + k] = 0;
			}
			d->pc_unrep_lo[i] = w + n;
			if (d->pc_unrep_lo[i] > d->pc_unrep_hi[i]) {
				d->pc_unrep_lo[i] = UINT64_MAX;
				d->pc_unrep_hi[i] = 0;
			}
			pthread_mutex_unlock(&d->lock);
			if (!any)
				continue;
			ret = dst_pc_send(d, RMIG_MSG_PC_PULLED, msg,
				      rmig_pc_words_head(msg, i, w, (uint32_t)n));
			if (ret)
				return ret;
		}
	}
	return 0;
}

/* A read landed: place its pages, zero runs without copying. true: the last ones. */
static int pc_pull_place(struct rmig_dst *d, const struct pc_pull *p, bool *done)
{
	struct rmig_block *b = &d->blocks[p->bi];
	uint64_t ps = b->page_size, k = 0;
	int ret;

	while (k < p->n) {
		const uint8_t *src = p->buf + k * ps;
		bool zero = rmig_is_zero(src, ps);
		uint64_t run = 1;

		while (k + run < p->n && rmig_is_zero(p->buf + (k + run) * ps, ps) == zero)
			run++;
		ret = dst_pc_put(d, b, (p->first + k) << b->page_shift, zero ? NULL : src, run * ps);
		if (ret)
			return ret;
		k += run;
	}
	*done = dst_pc_mark_present(d, p->bi, p->first, p->n);
	return 0;
}

/* ctl_send_lock: the pull ops are sending ops on the control connection. */
static int pc_pull_post(struct rmig_dst *d, struct pc_pull *p)
{
	const struct rmig_block *b = &d->blocks[p->bi];
	int ret;

	pthread_mutex_lock(&d->ctl_send_lock);
	ret = d->ctl->ops->pull(d->ctl, p->buf, p->bi, p->first << b->page_shift,
				p->n << b->page_shift, &p->ticket);
	pthread_mutex_unlock(&d->ctl_send_lock);
	if (ret && !dst_pc_should_stop(d))
		return dst_fail(d, ret, "postcopy: reading '%s'+0x%llx from the source: %s", b->name,
				(unsigned long long)(p->first << b->page_shift), d->ctl->err.msg);
	return ret;
}

/*
 * Pulls by the transport: keeps RMIG_PC_PULL_SLOTS reads in flight (faulting
 * pages first, then every missing page in order), places what lands, reports
 * to the source every RMIG_PC_REPORT_MS, and sends PC_DONE after the last
 * page. The only thread that uses the control connection's sending side
 * for long, so it takes ctl_send_lock per call.
 */
void *dst_pc_pull_thread(void *arg)
{
	struct rmig_dst *d = arg;
	struct pc_pull q[RMIG_PC_PULL_SLOTS];
	unsigned int head = 0, tail = 0, cbi = 0;
	uint64_t cpg = 0, last_report = rmig_now_ns();
	bool done = false;
	int ret = 0;

	pthread_setname_np(pthread_self(), "rmig-pcpull");
	while (!ret && !done) {
		bool more = true;

		while (head - tail < RMIG_PC_PULL_SLOTS && more) {
			struct pc_pull *p = &q[head % RMIG_PC_PULL_SLOTS];

			pthread_mutex_lock(&d->lock);
			more = !d->failed && !d->pc_stop && pc_next_run(d, &cbi, &cpg, p);
			pthread_mutex_unlock(&d->lock);
			if (!more)
				break;
			p->buf = d->pc_area + (head % RMIG_PC_PULL_SLOTS) * d->pc_slot;
			ret = pc_pull_post(d, p);
			if (ret)
				break;
			head++;
		}
		if (ret || dst_pc_should_stop(d))
			break;
		if (head == tail) {
			/* nothing asked and nothing in flight, yet pages are missing */
			uint64_t left;

			pthread_mutex_lock(&d->lock);
			left = d->pc_left;
			pthread_mutex_unlock(&d->lock);
			ret = dst_fail(d, -EIO, "postcopy: %llu pages missing with nothing to pull",
				       (unsigned long long)left);
			break;
		}
		/* short waits: a page a vCPU faults on is read without waiting for the window */
		pthread_mutex_lock(&d->ctl_send_lock);
		ret = d->ctl->ops->pull_wait(d->ctl, q[tail % RMIG_PC_PULL_SLOTS].ticket, 1);
		pthread_mutex_unlock(&d->ctl_send_lock);
		if (ret == -ETIMEDOUT) {
			ret = 0;
			continue;
		}
		if (ret) {
			if (!dst_pc_should_stop(d))
				dst_fail(d, ret, "postcopy: reading from the source: %s",
					 d->ctl->err.msg);
			break;
		}
		ret = pc_pull_place(d, &q[tail % RMIG_PC_PULL_SLOTS], &done);
		tail++;
		if (!ret && (done || rmig_now_ns() - last_report >= RMIG_PC_REPORT_MS * 1000000ull)) {
			last_report = rmig_now_ns();
			ret = pc_report(d);
		}
	}
	if (!ret && done)
		dst_pc_send_done(d);
	return NULL;
}

/* pc_ctl: PC_PULL_INFO, the source lets the transport read its RAM. */
int dst_pc_pull_open(struct rmig_dst *d, const struct rmig_hdr *h, const uint8_t *body)
{
	uint64_t slot = RMIG_PC_PULL_RUN;
	void *area = NULL;
	uint64_t **unrep;
	bool again;
	int ret;

	if (!(d->xops->caps & RMIG_XCAP_PULL))
		return dst_fail(d, -EPROTO, "postcopy: source offered pulls over %s, which cannot read",
				d->xops->name);
	pthread_mutex_lock(&d->lock);
	again = d->pc_by_read || d->pc_announced;
	pthread_mutex_unlock(&d->lock);
	if (again)
		return dst_fail(d, -EPROTO, "postcopy: PC_PULL_INFO %s",
				d->pc_by_read ? "twice" : "after PC_START");
	for (unsigned int i = 0; i < d->nblocks; i++)
		if (d->blocks[i].page_size > slot)
			slot = d->blocks[i].page_size;
	unrep = dst_pc_bitmaps(d);
	d->pc_unrep_lo = calloc(d->nblocks, sizeof(uint64_t));
	d->pc_unrep_hi = calloc(d->nblocks, sizeof(uint64_t));
	if (!unrep || !d->pc_unrep_lo || !d->pc_unrep_hi) {
		dst_pc_bitmaps_free(d, unrep);
		return dst_fail(d, -ENOMEM, "postcopy: out of memory");
	}
	for (unsigned int i = 0; i < d->nblocks; i++)
		d->pc_unrep_lo[i] = UINT64_MAX; /* nothing to report yet */
	ret = d->xops->pull_open(d->xp, body, h->len, slot * RMIG_PC_PULL_SLOTS, &area);
	if (ret) {
		dst_pc_bitmaps_free(d, unrep);
		return dst_fail(d, ret, "postcopy: the source's pull info: %s", d->xp->err.msg);
	}
	pthread_mutex_lock(&d->lock);
	d->pc_area = area;
	d->pc_slot = slot;
	d->pc_unreported = (void *)unrep;
	d->pc_by_read = true;
	pthread_mutex_unlock(&d->lock);
	return 0;
}
