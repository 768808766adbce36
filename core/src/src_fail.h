/* SPDX-License-Identifier: MIT */
/*
 * A source that fails (src_fail.c), for every file of the source engine:
 * record the failure and stop, tell the destination why, read its reason.
 */
#ifndef RMIG_CORE_SRC_FAIL_H
#define RMIG_CORE_SRC_FAIL_H

#include <errno.h>

#include "core/src/src_engine.h"

/* Record a failure and stop everything; returns the recorded code. */
int src_fail(struct rmig_src *src, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Shut every channel's conn and the transport down. Main thread, or under conn_lock. */
void src_shutdown_conns(struct rmig_src *src);
/*
 * Main thread: tell the destination why this source stopped (ABORT), once;
 * @msg NULL: the recorded failure's text.
 */
void src_tell_peer(struct rmig_src *src, int code, const char *msg);
/*
 * Main thread: the source's error code, reading the destination's reason
 * for it once if it sent one, and telling it ours.
 */
int src_error(struct rmig_src *src);

/* Main thread: connected and no channel failed, or the error code. */
static inline int src_check(struct rmig_src *src)
{
	if (unlikely(src->state != SRC_CONNECTED)) {
		int code = rmig_err_code(&src->err);

		return code ? code : -ENOTCONN;
	}
	/* A channel may have failed since the last hand-over: stay failed. */
	if (unlikely(rmig_sched_error(src->sched)))
		return src_error(src);
	return 0;
}

#endif
