// SPDX-License-Identifier: MIT
#include <endian.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vdev.h"

#define VDEV_MAGIC 0x56444556u /* "VDEV" */
enum { VDEV_DATA = 1, VDEV_FINAL = 2 };
#define VDEV_F_INITIAL_DONE 1u

struct vdev_hdr {
	uint32_t magic;
	uint32_t kind;
	uint64_t offset; /* DATA: stream offset; FINAL: stream total */
	uint64_t len;
	uint64_t flags;
};

static uint64_t vdev_word(uint64_t seed, uint64_t word)
{
	uint64_t x = word * 0x9e3779b97f4a7c15ull ^ seed;

	x ^= x >> 31;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 29;
	return x;
}

/* Stream bytes [off, off + len) into @out: byte o is byte o % 8 of word o / 8 (little-endian). */
static void vdev_fill(uint64_t seed, uint64_t off, uint8_t *out, uint64_t len)
{
	uint64_t i = 0;

	for (; i < len && (off + i) % 8; i++)
		out[i] = (uint8_t)(vdev_word(seed, (off + i) / 8) >> (8 * ((off + i) % 8)));
	for (; i + 8 <= len; i += 8) {
		uint64_t x = htole64(vdev_word(seed, (off + i) / 8));

		memcpy(out + i, &x, 8);
	}
	for (; i < len; i++)
		out[i] = (uint8_t)(vdev_word(seed, (off + i) / 8) >> (8 * ((off + i) % 8)));
}

static int vdev_queue(struct vdev_src *v, struct rmig_src *src, uint32_t kind, uint64_t len)
{
	struct vdev_hdr h = { .magic = VDEV_MAGIC, .kind = kind, .offset = v->queued, .len = len };

	if (kind == VDEV_FINAL) {
		h.offset = v->produced;
		h.len = 0;
	} else if (v->queued < v->initial && v->queued + len >= v->initial) {
		h.flags = VDEV_F_INITIAL_DONE;
	}
	memcpy(v->buf, &h, sizeof(h));
	vdev_fill(v->seed, v->queued, v->buf + sizeof(h), h.len);
	v->queued += h.len;
	return rmig_src_queue_device_state(src, v->idstr, v->instance, v->buf, sizeof(h) + h.len);
}

static uint64_t vdev_pending(void *arg)
{
	struct vdev_src *v = arg;

	return v->produced - v->queued;
}

static int64_t vdev_iterate(void *arg, struct rmig_src *src, uint64_t max_bytes)
{
	struct vdev_src *v = arg;
	uint64_t sent = 0;
	int ret;

	v->iterations++;
	while (v->queued < v->produced && sent < max_bytes) {
		uint64_t n = v->produced - v->queued;

		if (n > VDEV_RECORD_DATA)
			n = VDEV_RECORD_DATA;
		if (n > max_bytes - sent)
			n = max_bytes - sent;
		/* the initial data ends a record, so the ack is exact */
		if (v->queued < v->initial && v->queued + n > v->initial)
			n = v->initial - v->queued;
		ret = vdev_queue(v, src, VDEV_DATA, n);
		if (ret)
			return ret;
		sent += n;
	}
	v->produced += v->grow;
	return (int64_t)sent;
}

static int vdev_complete(void *arg, struct rmig_src *src)
{
	struct vdev_src *v = arg;
	int ret;

	v->completed++;
	v->produced += v->final_extra;
	while (v->queued < v->produced) {
		uint64_t n = v->produced - v->queued;

		if (n > VDEV_RECORD_DATA)
			n = VDEV_RECORD_DATA;
		if (v->queued < v->initial && v->queued + n > v->initial)
			n = v->initial - v->queued;
		ret = vdev_queue(v, src, VDEV_DATA, n);
		if (ret)
			return ret;
	}
	return vdev_queue(v, src, VDEV_FINAL, 0);
}

int vdev_register(struct rmig_live *live, struct vdev_src *v)
{
	struct rmig_live_device d = {
		.size = sizeof(d),
		.flags = v->switchover_ack ? RMIG_LIVE_DEV_SWITCHOVER_ACK : 0,
		.idstr = v->idstr,
		.instance = v->instance,
		.arg = v,
		.pending = vdev_pending,
		.iterate = vdev_iterate,
		.complete = vdev_complete,
	};

	v->produced = v->initial;
	v->queued = 0;
	if (!v->buf)
		v->buf = malloc(sizeof(struct vdev_hdr) + VDEV_RECORD_DATA);
	if (!v->buf)
		return -ENOMEM;
	return rmig_live_add_device(live, &d);
}

void vdev_src_free(struct vdev_src *v)
{
	free(v->buf);
	v->buf = NULL;
}

/* ---- destination half ---------------------------------------------------- */

void vdev_dst_init(struct vdev_dst *v, const char *idstr, uint32_t instance, uint64_t seed,
		   struct rmig_dst *dst, bool want_ack)
{
	memset(v, 0, sizeof(*v));
	snprintf(v->idstr, sizeof(v->idstr), "%s", idstr);
	v->instance = instance;
	v->seed = seed;
	v->dst = dst;
	v->want_ack = want_ack;
	pthread_mutex_init(&v->lock, NULL);
}

void vdev_dst_destroy(struct vdev_dst *v)
{
	pthread_mutex_destroy(&v->lock);
}

static int vdev_bad(struct vdev_dst *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int vdev_bad(struct vdev_dst *v, const char *fmt, ...)
{
	va_list ap;

	if (!v->error[0]) {
		va_start(ap, fmt);
		vsnprintf(v->error, sizeof(v->error), fmt, ap);
		va_end(ap);
	}
	return -EPROTO;
}

int vdev_dst_feed(struct vdev_dst *v, const char *idstr, uint32_t instance, const void *data,
		  size_t len)
{
	const uint8_t *d = data;
	struct vdev_hdr h;
	uint64_t n;
	int ret = 1;

	if (instance != v->instance || strcmp(idstr, v->idstr))
		return 0;
	pthread_mutex_lock(&v->lock);
	if (len < sizeof(h)) {
		ret = vdev_bad(v, "record of %zu bytes (header is %zu)", len, sizeof(h));
		goto out;
	}
	memcpy(&h, d, sizeof(h));
	if (h.magic != VDEV_MAGIC || (h.kind != VDEV_DATA && h.kind != VDEV_FINAL) ||
	    h.len != len - sizeof(h)) {
		ret = vdev_bad(v, "malformed record (kind %u, len %llu)", h.kind,
			       (unsigned long long)h.len);
		goto out;
	}
	if (v->complete) {
		ret = vdev_bad(v, "record after the final one (offset %llu)",
			       (unsigned long long)h.offset);
		goto out;
	}
	if (h.kind == VDEV_FINAL) {
		if (h.offset != v->received)
			ret = vdev_bad(v, "final record says %llu bytes, %llu arrived",
				       (unsigned long long)h.offset,
				       (unsigned long long)v->received);
		else
			v->complete = true;
		v->records++;
		goto out;
	}
	if (h.offset != v->received) {
		ret = vdev_bad(v, "record at stream offset %llu, expected %llu",
			       (unsigned long long)h.offset, (unsigned long long)v->received);
		goto out;
	}
	for (uint64_t i = 0; i < h.len; i += n) {
		uint8_t want[4096];

		n = h.len - i < sizeof(want) ? h.len - i : sizeof(want);
		vdev_fill(v->seed, h.offset + i, want, n);
		if (memcmp(d + sizeof(h) + i, want, n)) {
			ret = vdev_bad(v, "stream bytes %llu..%llu differ",
				       (unsigned long long)(h.offset + i),
				       (unsigned long long)(h.offset + i + n - 1));
			goto out;
		}
	}
	v->received += h.len;
	v->records++;
	if ((h.flags & VDEV_F_INITIAL_DONE) && v->want_ack && !v->acked) {
		/* from the channel thread: the library queues it for its main thread */
		if (rmig_dst_switchover_ack(v->dst, v->idstr, v->instance) == 0)
			v->acked = true;
		else
			ret = vdev_bad(v, "rmig_dst_switchover_ack failed");
	}
out:
	pthread_mutex_unlock(&v->lock);
	return ret;
}
