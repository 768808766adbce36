// SPDX-License-Identifier: MIT
#include <stdint.h>

#include "zero.h"

bool rmig_is_zero(const void *buf, size_t len)
{
	const uint64_t *p = buf;
	size_t n = len / sizeof(uint64_t);

	/*
	 * Random data almost always differs in the first word; check it alone
	 * so the common "not zero" answer costs one load.
	 */
	if (n && p[0])
		return false;
	for (size_t i = 0; i < n; i += 8) {
		uint64_t acc = p[i] | p[i + 1] | p[i + 2] | p[i + 3] | p[i + 4] | p[i + 5] |
			       p[i + 6] | p[i + 7];

		if (acc)
			return false;
	}
	return true;
}

void rmig_zero_detect(struct rmig_ram_batch *b, const unsigned char *block_host, size_t page_size)
{
	uint32_t normal = 0;

	/*
	 * Invariant after step i: offsets[0, normal) are data pages in queue
	 * order and offsets[normal, i] are zero pages. A data page found at i
	 * swaps with the first zero page, which keeps data pages in order (so
	 * runs still coalesce) without a scratch array.
	 */
	for (uint32_t i = 0; i < b->num; i++) {
		uint64_t off = b->offsets[i];

		if (rmig_is_zero(block_host + off, page_size))
			continue;
		b->offsets[i] = b->offsets[normal];
		b->offsets[normal++] = off;
	}
	b->normal = normal;
	b->zero = b->num - normal;
}
