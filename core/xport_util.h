/* SPDX-License-Identifier: MIT */
/*
 * What a transport may use from the core besides the interface itself
 * (core/xport.h) and the small helpers in core/util.h: byte order for its
 * own handshake and file layouts, the memory-ordering primitives, and zero
 * detection. Nothing here knows the core's wire protocol or engines, so a
 * transport that includes only these cannot come to depend on them.
 *
 * The one exception is core/msgcheck.h, the core's decoder of channel
 * messages (whole messages, RAM and DEV bodies): the file transport stores
 * the stream the core sends it and checks it with the destination's own
 * code rather than a copy, without seeing the wire layout.
 *
 * Under transport/ include only core/xport.h, this header, core/util.h and
 * core/msgcheck.h from the core: tests/unit/transport-includes.sh checks it.
 */
#ifndef RMIG_CORE_XPORT_UTIL_H
#define RMIG_CORE_XPORT_UTIL_H

#include <stdbool.h>
#include <stddef.h>

#include "barrier.h"
#include "byteorder.h"

/* True if @len bytes at @buf are all zero. @len is a multiple of 64, @buf 8-byte aligned. */
bool rmig_is_zero(const void *buf, size_t len);

#endif /* RMIG_CORE_XPORT_UTIL_H */
