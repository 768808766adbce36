/* SPDX-License-Identifier: MIT */
/*
 * Postcopy, the destination's half (postcopy.h has the protocol), as
 * core/dst/ calls it: enabling (include/rmig/live.h), the control
 * connection's reader thread, the start once every channel passed the
 * announced round (userfaultfd), the finish. It works on struct rmig_dst
 * (core/dst/dst_engine.h), with pc_dst_pull.h asking for the missing pages
 * and pc_dst_place.h putting them in place: calls go pc_dst.c ->
 * pc_dst_pull.c -> pc_dst_place.c, never back.
 */
#ifndef RMIG_CORE_PC_DST_H
#define RMIG_CORE_PC_DST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/dst/dst_engine.h"

/* Under lock: postcopy was announced and every channel has passed its round. */
bool dst_pc_due(struct rmig_dst *d);
/*
 * Main thread, every channel past the announced round and idle: start
 * postcopy. RMIG_DST_POSTCOPY, or a negative errno (d failed).
 */
int dst_pc_start(struct rmig_dst *d);
/* Main thread, every channel finished: postcopy must be over. 0 or the failure. */
int dst_pc_finish(struct rmig_dst *d);
/* Stop and join postcopy's threads, free its state. */
void dst_pc_destroy(struct rmig_dst *d);
/* The control connection's reader once accepted, postcopy enabled (@arg: d). */
void *dst_pc_ctl_thread(void *arg);

#endif
