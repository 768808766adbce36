/* SPDX-License-Identifier: MIT */
/*
 * Postcopy, destination (pc_dst_pull.c): the threads that ask for the
 * missing pages, started by dst_pc_start(), and the setup of pulls by the
 * transport when the source offers them (PC_PULL_INFO).
 */
#ifndef RMIG_CORE_PC_DST_PULL_H
#define RMIG_CORE_PC_DST_PULL_H

#include <stdint.h>

#include "core/dst/dst_engine.h"

void *dst_pc_fault_thread(void *arg);
void *dst_pc_bg_thread(void *arg);
void *dst_pc_pull_thread(void *arg);
/* pc_ctl: PC_PULL_INFO, the source lets the transport read its RAM. */
int dst_pc_pull_open(struct rmig_dst *d, const struct rmig_hdr *h, const uint8_t *body);

#endif
