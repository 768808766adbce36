/* SPDX-License-Identifier: MIT */
/*
 * A synthetic iterable device, like a VFIO device with pre-copy data: an
 * initial blob, then more data that keeps appearing while the guest runs
 * (grow bytes after each iteration), then a final record at the switchover.
 *
 * On the wire it is one byte stream cut into records of at most
 * VDEV_RECORD_DATA bytes, each one device-state chunk: header (magic, kind,
 * stream offset, length, flags) then bytes that are a pure function of
 * (seed, stream offset). The destination half checks every byte and the
 * order, acknowledges the initial data with rmig_dst_switchover_ack() when
 * the record that completes it arrives, and knows the device is complete
 * when the final record's total matches what it received.
 *
 * Part of sim/ (the simulated guest), used by rmig-bench --live and by
 * tests/live.
 */
#ifndef RMIG_SIM_VDEV_H
#define RMIG_SIM_VDEV_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "rmig/live.h"

#define VDEV_RECORD_DATA (256u << 10)

struct vdev_src {
	/* set before vdev_register() */
	char idstr[64];
	uint32_t instance;
	uint64_t seed;
	uint64_t initial;	   /* bytes of initial pre-copy data */
	uint64_t grow;		   /* bytes that appear after each iteration */
	uint64_t final_extra;	   /* bytes that only the stopped device has */
	bool switchover_ack;	   /* RMIG_LIVE_DEV_SWITCHOVER_ACK */

	/* state, on the engine's thread; read by its round hooks */
	uint64_t produced; /* stream bytes that exist so far */
	uint64_t queued;   /* stream bytes queued so far */
	uint32_t iterations;
	uint32_t completed;
	uint8_t *buf;
};

/* Register @v with @live as an iterable device. 0 or a negative errno. */
int vdev_register(struct rmig_live *live, struct vdev_src *v);
void vdev_src_free(struct vdev_src *v);

struct vdev_dst {
	char idstr[64];
	uint32_t instance;
	uint64_t seed;
	struct rmig_dst *dst; /* where to send the switchover ack */
	bool want_ack;

	pthread_mutex_t lock;
	uint64_t received;  /* stream bytes received in order */
	uint64_t records;
	bool acked;	    /* rmig_dst_switchover_ack() called and returned 0 */
	bool complete;	    /* the final record arrived and matched */
	char error[256];    /* first problem, "" if none */
};

void vdev_dst_init(struct vdev_dst *v, const char *idstr, uint32_t instance, uint64_t seed,
		   struct rmig_dst *dst, bool want_ack);
void vdev_dst_destroy(struct vdev_dst *v);
/*
 * Feed one device-state chunk. Returns 1 if it was this device's, 0 if it
 * belongs to another device, a negative errno if it was malformed (the
 * reason is in v->error).
 */
int vdev_dst_feed(struct vdev_dst *v, const char *idstr, uint32_t instance, const void *data,
		  size_t len);

#endif
