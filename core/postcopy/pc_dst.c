// SPDX-License-Identifier: MIT
/*
 * Postcopy, the destination's half (postcopy.h, pc_dst.h): enabling it,
 * the control connection's reader (PC_DISCARD, PC_PULL_INFO, PC_START,
 * PAGE_DATA), the start once every channel passed the announced round
 * (drop what is stale, register with userfaultfd, start the threads that
 * ask for the rest: pc_dst_pull.c), and the finish.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "rmig/live.h"

#include "core/barrier.h"
#include "core/dst/dst_fail.h"
#include "core/postcopy/pc_dst.h"
#include "core/postcopy/pc_dst_place.h"
#include "core/postcopy/pc_dst_pull.h"

int rmig_dst_postcopy_enable(struct rmig_dst *d)
{
	if (!d)
		return -EINVAL;
	if (d->state != DST_LISTENING)
		return d->state == DST_NEW ? -EINVAL : -EBUSY;
	if (d->loading)
		return -ENOTSUP;
	if (d->pc_enabled)
		return 0;
	/* a page travels in one control message */
	for (unsigned int i = 0; i < d->nblocks; i++)
		if (d->blocks[i].page_size > RMIG_DEV_CHUNK_MAX)
			return -ENOTSUP;
	d->pc_recvd = dst_pc_bitmaps(d);
	d->pc_discard = dst_pc_bitmaps(d);
	d->pc_present = dst_pc_bitmaps(d);
	d->pc_requested = dst_pc_bitmaps(d);
	if (!d->pc_recvd || !d->pc_discard || !d->pc_present || !d->pc_requested) {
		dst_pc_bitmaps_free(d, d->pc_recvd);
		dst_pc_bitmaps_free(d, d->pc_discard);
		dst_pc_bitmaps_free(d, d->pc_present);
		dst_pc_bitmaps_free(d, d->pc_requested);
		d->pc_recvd = NULL;
		d->pc_discard = d->pc_present = d->pc_requested = NULL;
		return -ENOMEM;
	}
	d->pc_enabled = true;
	return 0;
}

int rmig_dst_postcopy_stats(struct rmig_dst *d, struct rmig_dst_postcopy_stats *st)
{
	struct rmig_dst_postcopy_stats s;

	if (!d || !st || st->size < offsetof(struct rmig_dst_postcopy_stats, missing))
		return -EINVAL;
	memset(&s, 0, sizeof(s));
	pthread_mutex_lock(&d->lock);
	s.active = d->pc_running;
	s.uffd = d->pc_uffd_used;
	s.by_read = d->pc_by_read;
	s.pulls = d->pc_pulls;
	s.missing = d->pc_missing;
	s.pulled = d->pc_pulled;
	s.start_ns = d->pc_start_ns;
	s.done_ns = d->pc_done_ns;
	pthread_mutex_unlock(&d->lock);
	s.faults = rmig_load_relaxed(&d->pc_faults);
	s.size = st->size < sizeof(s) ? st->size : (uint32_t)sizeof(s);
	memcpy(st, &s, s.size);
	return 0;
}

bool dst_pc_due(struct rmig_dst *d)
{
	return d->pc_announced && !d->pc_running && !d->held && d->reached >= d->pc_round;
}

static int pc_discard(struct rmig_dst *d, const struct rmig_hdr *h, const uint8_t *body)
{
	uint32_t bi = 0, n = 0;
	uint64_t first = 0;

	if (rmig_pc_words_parse(body, h->len, d->blocks, d->nblocks, &bi, &first, &n))
		return dst_fail(d, -EPROTO,
				"postcopy: PC_DISCARD for block %u words %llu+%u (%u bytes)", bi,
				(unsigned long long)first, n, h->len);
	pthread_mutex_lock(&d->lock);
	if (d->pc_announced) {
		pthread_mutex_unlock(&d->lock);
		return dst_fail(d, -EPROTO, "postcopy: PC_DISCARD after PC_START");
	}
	for (uint32_t k = 0; k < n; k++)
		d->pc_discard[bi][first + k] |= rmig_pc_word(body, k);
	pthread_mutex_unlock(&d->lock);
	return 0;
}

/* The source stopped and said why (core/src/src_fail.c, src_tell_peer): that is the failure. */
static void dst_pc_source_abort(struct rmig_dst *d, const struct rmig_hdr *h, const void *body)
{
	char msg[RMIG_ERRMSG_MAX];
	const void *info;
	size_t info_len;
	int status;

	if (rmig_status_parse(body, h->len, &status, msg, sizeof(msg), &info, &info_len) ||
	    status >= 0)
		dst_fail(d, -EPROTO, "source sent a malformed ABORT");
	else
		dst_fail(d, status, "source aborted: %.400s", msg);
}

/*
 * The control connection's reader once accepted (postcopy enabled): takes the
 * postcopy messages; anything else (DONE) or a failure is left for the main
 * thread, and ends it.
 */
void *dst_pc_ctl_thread(void *arg)
{
	struct rmig_dst *d = arg;
	uint8_t raw[sizeof(struct rmig_wire_hdr)];
	char why[RMIG_ERRMSG_MAX];
	struct rmig_hdr h;
	uint8_t *body;
	uint64_t idle_ms = 0;
	int ret;

	pthread_setname_np(pthread_self(), "rmig-pcctl");
	for (;;) {
		bool running;

		body = NULL;
		/* Consume nothing until a message has begun: stopping keeps the stream in step. */
		ret = d->ctl->ops->recv(d->ctl, raw, 1, 200);
		if (ret == -ETIMEDOUT) {
			bool waiting_done;

			idle_ms += 200;
			pthread_mutex_lock(&d->lock);
			running = !d->failed && !d->pc_stop;
			/* every channel finished: DONE is due within the handle's timeout */
			waiting_done = d->nchan && d->at_fin == d->nchan;
			pthread_mutex_unlock(&d->lock);
			if (running && !(waiting_done && d->opts.timeout_ms > 0 &&
					 idle_ms >= (uint64_t)d->opts.timeout_ms))
				continue;
			ret = running ? -ETIMEDOUT : -ECANCELED;
			snprintf(why, sizeof(why), running ? "no DONE within %d ms" : "stopped",
				 d->opts.timeout_ms);
			goto stash;
		}
		idle_ms = 0;
		if (!ret)
			ret = d->ctl->ops->recv(d->ctl, raw + 1, sizeof(raw) - 1, d->opts.timeout_ms);
		if (ret) {
			snprintf(why, sizeof(why), "%s", d->ctl->recv_err.msg);
			goto stash;
		}
		ret = rmig_hdr_decode(raw, &h, why, sizeof(why));
		if (ret)
			goto stash;
		if (h.len) {
			body = malloc(h.len);
			if (!body) {
				ret = -ENOMEM;
				snprintf(why, sizeof(why), "out of memory");
				goto stash;
			}
			ret = d->ctl->ops->recv(d->ctl, body, h.len, d->opts.timeout_ms);
			if (ret) {
				snprintf(why, sizeof(why), "%s", d->ctl->recv_err.msg);
				goto stash;
			}
		}
		if (h.type != RMIG_MSG_PC_DISCARD && h.type != RMIG_MSG_PC_START &&
		    h.type != RMIG_MSG_PAGE_DATA && h.type != RMIG_MSG_PC_PULL_INFO) {
			/* DONE (or ABORT ...): the main thread's, with its seq unchecked */
			d->stash_h = h;
			d->stash_body = body;
			d->stash_set = true;
			d->stash_ret = 0;
			pthread_mutex_lock(&d->lock);
			/* announced counts: a postcopy that never started has pages stale */
			running = d->pc_announced && !d->pc_complete;
			pthread_mutex_unlock(&d->lock);
			if (h.type == RMIG_MSG_ABORT)
				dst_pc_source_abort(d, &h, body);
			else if (running)
				dst_fail(d, -EPROTO, "postcopy: source sent %s before every page was pulled",
					 rmig_msg_name(h.type));
			return NULL;
		}
		if (h.seq != d->ctl_seq_in) {
			dst_fail(d, -EPROTO, "control message %llu arrived where %llu was expected",
				 (unsigned long long)h.seq, (unsigned long long)d->ctl_seq_in);
			free(body);
			return NULL;
		}
		d->ctl_seq_in++;
		if (h.type == RMIG_MSG_PC_DISCARD) {
			ret = pc_discard(d, &h, body);
		} else if (h.type == RMIG_MSG_PC_PULL_INFO) {
			ret = dst_pc_pull_open(d, &h, body);
		} else if (h.type == RMIG_MSG_PC_START) {
			pthread_mutex_lock(&d->lock);
			if (h.len != sizeof(struct rmig_wire_pc_start) || d->pc_announced) {
				ret = -EPROTO;
			} else {
				d->pc_round = rmig_get_be64(body + RMIG_OFF(rmig_wire_pc_start, round));
				d->pc_announced = true;
				pthread_cond_broadcast(&d->cond);
			}
			pthread_mutex_unlock(&d->lock);
			if (ret)
				dst_fail(d, ret, "postcopy: unexpected PC_START of %u bytes", h.len);
		} else {
			pthread_mutex_lock(&d->lock);
			running = d->pc_running;
			pthread_mutex_unlock(&d->lock);
			ret = running ? dst_pc_place(d, &h, body)
				      : dst_fail(d, -EPROTO, "postcopy: PAGE_DATA before postcopy started");
		}
		free(body);
		if (ret)
			return NULL;
	}
stash:
	free(body);
	pthread_mutex_lock(&d->lock);
	{
		bool running = d->pc_running && !d->pc_complete;

		pthread_mutex_unlock(&d->lock);
		if (running)
			dst_fail(d, ret, "postcopy: control connection: %s", why);
	}
	d->stash_ret = ret;
	snprintf(d->stash_why, sizeof(d->stash_why), "%s", why);
	d->stash_set = true;
	return NULL;
}

/* Drop the pages not received (or stale) and catch their faults. 0, or -errno (degraded). */
static int pc_uffd_setup(struct rmig_dst *d, char *why, size_t whylen)
{
	struct uffdio_api api = { .api = UFFD_API };
	long sys_page = sysconf(_SC_PAGESIZE);
	unsigned int i;
	int fd;

	fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		snprintf(why, whylen, "userfaultfd: %s", strerror(errno));
		return -errno;
	}
	if (ioctl(fd, UFFDIO_API, &api)) {
		snprintf(why, whylen, "UFFDIO_API: %s", strerror(errno));
		close(fd);
		return -ENOTSUP;
	}
	for (i = 0; i < d->nblocks; i++) {
		struct rmig_block *b = &d->blocks[i];
		struct uffdio_register reg = {
			.range = { .start = (uintptr_t)b->host, .len = b->length },
			.mode = UFFDIO_REGISTER_MODE_MISSING,
		};

		if (((uintptr_t)b->host | b->length | b->page_size) & (uint64_t)(sys_page - 1)) {
			snprintf(why, whylen, "block '%s' is not aligned to system pages", b->name);
			break;
		}
		if (ioctl(fd, UFFDIO_REGISTER, &reg)) {
			snprintf(why, whylen, "UFFDIO_REGISTER '%s': %s", b->name, strerror(errno));
			break;
		}
		if ((reg.ioctls & ((1ull << _UFFDIO_COPY) | (1ull << _UFFDIO_ZEROPAGE))) !=
		    ((1ull << _UFFDIO_COPY) | (1ull << _UFFDIO_ZEROPAGE))) {
			snprintf(why, whylen, "block '%s': no UFFDIO_COPY/ZEROPAGE", b->name);
			i++;
			break;
		}
	}
	if (i < d->nblocks || why[0]) {
		for (unsigned int k = 0; k < i; k++) {
			struct uffdio_range r = { .start = (uintptr_t)d->blocks[k].host,
						  .len = d->blocks[k].length };

			ioctl(fd, UFFDIO_UNREGISTER, &r);
		}
		close(fd);
		return -ENOTSUP;
	}
	/* Registered: now the missing pages must be absent so that they fault. */
	for (i = 0; i < d->nblocks; i++) {
		struct rmig_block *b = &d->blocks[i];
		uint64_t np = blk_pages(b), pg = 0;

		while (pg < np) {
			uint64_t run;

			if (d->pc_present[i][pg / 64] & (1ull << (pg % 64))) {
				pg++;
				continue;
			}
			for (run = pg; run < np && !(d->pc_present[i][run / 64] & (1ull << (run % 64)));
			     run++)
				;
			if (madvise(b->host + (pg << b->page_shift), (run - pg) << b->page_shift,
				    MADV_DONTNEED)) {
				snprintf(why, whylen, "MADV_DONTNEED: %s", strerror(errno));
				d->pc_uffd = fd;
				dst_pc_unregister(d);
				d->pc_uffd = -1;
				close(fd);
				return -ENOTSUP;
			}
			pg = run;
		}
	}
	d->pc_uffd = fd;
	return 0;
}

/* Main thread, every channel past the announced round and idle. */
int dst_pc_start(struct rmig_dst *d)
{
	char why[RMIG_ERRMSG_MAX] = "";
	uint64_t missing = 0;
	int ret;

	/* no channel may write RAM from here on */
	rmig_store_relaxed(&d->pc_live, true);
	/*
	 * Nor may the source: every WRITE it made has landed (each channel
	 * passed the announced round), and dropping pages below from memory a
	 * NIC still has pinned would leave it with stale copies (rdma).
	 */
	if (d->placed)
		d->xops->revoke(d->xp);
	pthread_mutex_lock(&d->lock);
	for (unsigned int i = 0; i < d->nblocks; i++) {
		uint64_t np = blk_pages(&d->blocks[i]), nw = blk_words(&d->blocks[i]);

		for (uint64_t w = 0; w < nw; w++) {
			uint64_t mask = (w + 1) * 64 <= np ? ~0ull : (1ull << (np % 64)) - 1;
			uint64_t have = rmig_load_relaxed(&d->pc_recvd[i][w]) & ~d->pc_discard[i][w];

			d->pc_present[i][w] = have & mask;
			missing += (uint64_t)__builtin_popcountll(~have & mask);
		}
	}
	d->pc_missing = d->pc_left = missing;
	d->pc_start_ns = rmig_now_ns();
	pthread_mutex_unlock(&d->lock);

	if (missing && pc_uffd_setup(d, why, sizeof(why)))
		d->pc_uffd = -1; /* degraded: fetch everything before the caller runs */

	pthread_mutex_lock(&d->lock);
	d->pc_running = true;
	d->pc_uffd_used = d->pc_uffd >= 0;
	if (!missing) {
		d->pc_complete = true;
		d->pc_done_ns = d->pc_start_ns;
	}
	pthread_mutex_unlock(&d->lock);
	if (!missing) {
		uint8_t msg[sizeof(struct rmig_wire_pc_done)] = { 0 };

		ret = dst_pc_send(d, RMIG_MSG_PC_DONE, msg, sizeof(msg));
		return ret ? ret : RMIG_DST_POSTCOPY;
	}
	if (d->pc_uffd >= 0) {
		ret = -pthread_create(&d->pc_fault, NULL, dst_pc_fault_thread, d);
		if (ret)
			return dst_fail(d, ret, "postcopy: starting the fault thread: %s",
					strerror(-ret));
		d->pc_fault_started = true;
	}
	ret = -pthread_create(&d->pc_bg, NULL, d->pc_by_read ? dst_pc_pull_thread : dst_pc_bg_thread,
			      d);
	if (ret)
		return dst_fail(d, ret, "postcopy: starting the pull thread: %s", strerror(-ret));
	d->pc_bg_started = true;
	if (d->pc_uffd < 0) {
		pthread_mutex_lock(&d->lock);
		while (!d->failed && !d->pc_complete)
			pthread_cond_wait(&d->cond, &d->lock);
		ret = d->failed ? rmig_err_code(&d->err) : 0;
		pthread_mutex_unlock(&d->lock);
		if (ret)
			return ret;
	}
	return RMIG_DST_POSTCOPY;
}

static void pc_join(struct rmig_dst *d)
{
	if (d->pc_fault_started) {
		pthread_join(d->pc_fault, NULL);
		d->pc_fault_started = false;
	}
	if (d->pc_bg_started) {
		pthread_join(d->pc_bg, NULL);
		d->pc_bg_started = false;
	}
}

/* Main thread, every channel finished: postcopy must be over; the reader ends with DONE. */
int dst_pc_finish(struct rmig_dst *d)
{
	bool incomplete, started;
	uint64_t left;

	if (!d->pc_enabled)
		return 0;
	pthread_mutex_lock(&d->lock);
	/* announced, not only running: discarded pages are stale until pulled */
	incomplete = d->pc_announced && !d->pc_complete;
	started = d->pc_running;
	left = d->pc_left;
	pthread_mutex_unlock(&d->lock);
	if (incomplete && !started)
		return dst_fail(d, -EPROTO,
				"postcopy: source finished after PC_START without the destination "
				"reaching round %llu (announced pages never pulled)",
				(unsigned long long)d->pc_round);
	if (incomplete)
		return dst_fail(d, -EPROTO, "postcopy: source finished with %llu pages not pulled",
				(unsigned long long)left);
	pc_join(d);
	if (d->pc_uffd >= 0) {
		dst_pc_unregister(d);
		close(d->pc_uffd);
		d->pc_uffd = -1;
	}
	if (d->pc_ctl_started) {
		pthread_join(d->pc_ctl, NULL); /* ends with DONE, or fails on the timeout */
		d->pc_ctl_started = false;
	}
	/*
	 * The channels' FIN may overtake PC_START on the control connection:
	 * look again now that the reader has read everything up to DONE.
	 */
	pthread_mutex_lock(&d->lock);
	incomplete = d->pc_announced && !d->pc_complete;
	pthread_mutex_unlock(&d->lock);
	if (incomplete)
		return dst_fail(d, -EPROTO,
				"postcopy: source finished after PC_START with announced pages never "
				"pulled");
	return rmig_err_code(&d->err);
}

void dst_pc_destroy(struct rmig_dst *d)
{
	pthread_mutex_lock(&d->lock);
	d->pc_stop = true;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
	if (d->ctl && (d->pc_ctl_started || d->pc_bg_started))
		d->ctl->ops->shutdown(d->ctl);
	pc_join(d);
	if (d->pc_ctl_started)
		pthread_join(d->pc_ctl, NULL);
	if (d->pc_uffd >= 0) {
		dst_pc_unregister(d);
		close(d->pc_uffd);
	}
	dst_pc_bitmaps_free(d, d->pc_recvd);
	dst_pc_bitmaps_free(d, d->pc_discard);
	dst_pc_bitmaps_free(d, d->pc_present);
	dst_pc_bitmaps_free(d, d->pc_requested);
	dst_pc_bitmaps_free(d, d->pc_unreported);
	free(d->pc_unrep_lo);
	free(d->pc_unrep_hi);
	free(d->stash_body);
}
