/* SPDX-License-Identifier: MIT */
/*
 * The fixture of the file transport tests (test_file*.c): guest RAM whose
 * every block sits between PROT_NONE guard pages (a load that wrote outside
 * a block crashes the test), page contents that are a function of (seed,
 * block, page), a standard set of device state, and save/load through the
 * public API to "file:PATH".
 *
 * Files go to RMIG_TEST_DIR (see meson.build); file_fixture_init() reads it.
 */
#ifndef RMIG_TESTS_FILE_FIXTURE_H
#define RMIG_TESTS_FILE_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rmig/rmig.h"

#define MAX_BLOCKS    4
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

struct layout {
	const char *name;
	uint64_t length;
	uint32_t page_size;
};

struct ram {
	unsigned int n;
	struct layout l[MAX_BLOCKS];
	uint8_t *host[MAX_BLOCKS];
	uint8_t *map[MAX_BLOCKS];
	size_t maplen[MAX_BLOCKS];
};

/* pc.ram 24 MiB of 4 KiB pages, vga.vram, pc.rom of 2 MiB pages, tiny of 512 bytes */
extern const struct layout std_layout[4];

/* The directory the files go to (RMIG_TEST_DIR, else "."). */
extern char dir[4096];

void file_fixture_init(void);
/* @buf: DIR/NAME-PID.rmig */
void path_for(char *buf, size_t len, const char *name);

/* ---- RAM with guard pages ------------------------------------------------ */

void ram_map(struct ram *r, const struct layout *l, unsigned int n);
void ram_unmap(struct ram *r);
/* Page content is a function of (seed, block, page); pages drawn below @zero_pct% are zero. */
void fill_page(uint8_t *p, uint32_t ps, uint64_t seed, unsigned int b, uint64_t page,
	       unsigned int zero_pct);
void ram_fill(struct ram *r, uint64_t seed, unsigned int zero_pct);
void ram_garbage(struct ram *r);
/* Map @a and @b with the @n blocks of @l and fill @a (@seed, @zero_pct). */
void ram_pair(struct ram *a, struct ram *b, const struct layout *l, unsigned int n,
	      uint64_t seed, unsigned int zero_pct);
void ram_equal(const struct ram *a, const struct ram *b);
uint64_t total_pages(const struct ram *r);

/* ---- save and load ---------------------------------------------------------- */

struct dev_item {
	const char *id;
	uint32_t instance;
	size_t len;
	uint64_t seed;
};

/* What the device-state callback saw, concatenated per chunk in arrival order. */
struct dev_seen {
	uint64_t next_seq;
	unsigned int chunks;
	char ids[16][RMIG_IDSTR_MAX];
	uint32_t inst[16];
	uint8_t *data;
	size_t len, cap;
	bool refuse;
};

/* cpu 0, virtio-net 3 (empty), vga 1 (2.5 MiB: three chunks), cpu 1 */
extern const struct dev_item std_dev[4];

/* The bytes of @d (malloc'ed). */
uint8_t *dev_bytes(const struct dev_item *d);
struct rmig_opts opts_with(unsigned int channels, uint32_t flags);
/* A source with @r's blocks, connected to file:@path. */
struct rmig_src *src_open(const char *path, struct ram *r, unsigned int channels,
			  uint32_t flags);
void queue_all(struct rmig_src *src, struct ram *r);
void queue_devs(struct rmig_src *src, const struct dev_item *d, unsigned int n);
/* One-round save of @r with the standard device state. */
void save_std(const char *path, struct ram *r, unsigned int channels, uint32_t flags);
int dev_cb(void *arg, const char *id, uint32_t instance, uint64_t seq, const void *data,
	   size_t len);
/* Load @path into @r. Returns 0 or the error, with the message in @why. */
int load(const char *path, struct ram *r, unsigned int threads, uint32_t flags,
	 struct dev_seen *seen, struct rmig_stats *st, char *why, size_t whylen);
void check_devs(const struct dev_seen *s, const struct dev_item *d, unsigned int n);

#endif
