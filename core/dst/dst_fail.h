/* SPDX-License-Identifier: MIT */
/*
 * A destination that fails (dst_fail.c), for every file of the destination
 * engine and postcopy's destination half.
 */
#ifndef RMIG_CORE_DST_FAIL_H
#define RMIG_CORE_DST_FAIL_H

#include "core/dst/dst_engine.h"

/*
 * Record the first failure, stop every channel, and wake the main thread,
 * which tells the source why. Any thread; returns the recorded code.
 */
int dst_fail(struct rmig_dst *d, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Main thread: tell the source why we stopped (best effort, once). */
void dst_send_abort(struct rmig_dst *d);

#endif
