/* SPDX-License-Identifier: MIT */
/*
 * What the fuzz targets and the seed generator share: the local RAM block
 * table every target checks peer bytes against (the generator's messages
 * describe the same blocks, so seeds reach past the table checks), and a
 * check that aborts, so libFuzzer reports a property that failed as a crash.
 */
#ifndef RMIG_FUZZ_FUZZ_H
#define RMIG_FUZZ_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/xport.h"

#define FUZZ_NBLOCKS 3
/* The most channels a destination accepts, as the targets configure it. */
#define FUZZ_MAX_CHANNELS 64

/*
 * Three blocks with what breaks arithmetic: a plain one, one whose page
 * count is no multiple of 64 (bitmaps end inside a word) and one of huge
 * pages (a PAGE_DATA run of one page).
 */
static const struct {
	const char *name;
	uint64_t length;
	uint32_t page_size;
} fuzz_block_desc[FUZZ_NBLOCKS] = {
	{ "pc.ram", 1ull << 20, 4096 },
	{ "rom", 70ull * 4096, 4096 },
	{ "huge", 4ull << 20, 2u << 20 },
};

/* The table with no host memory: no parser may touch it. */
static inline void fuzz_blocks(struct rmig_block *b)
{
	for (unsigned int i = 0; i < FUZZ_NBLOCKS; i++) {
		snprintf(b[i].name, sizeof(b[i].name), "%s", fuzz_block_desc[i].name);
		b[i].host = NULL;
		b[i].length = fuzz_block_desc[i].length;
		b[i].page_size = fuzz_block_desc[i].page_size;
		b[i].page_shift = (uint32_t)__builtin_ctz(fuzz_block_desc[i].page_size);
	}
}

#define FUZZ_CHECK(cond, ...)                                                              \
	do {                                                                               \
		if (!(cond)) {                                                             \
			fprintf(stderr, "fuzz: property failed at %s:%d: %s: ", __FILE__, \
				__LINE__, #cond);                                          \
			fprintf(stderr, __VA_ARGS__);                                      \
			fputc('\n', stderr);                                               \
			abort();                                                           \
		}                                                                          \
	} while (0)

/* libFuzzer's entry point, declared for -Wmissing-prototypes. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif /* RMIG_FUZZ_FUZZ_H */
