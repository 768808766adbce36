// SPDX-License-Identifier: MIT
/*
 * Every way a saved file can be wrong (a flipped bit in the header, the
 * bitmap, a device record or the index; a wrong magic, version or flag;
 * overlapping regions; truncated, unfinished or of another layout), each of
 * which must fail with a sentence naming the problem and never touch the
 * destination's RAM.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/wire.h" /* crafting a bad DEV record: the wire layout it embeds */
#include "rmig/rmig.h"
#include "transport/file/format.h"

#include "file_fixture.h"
#include "helpers.h"

/* ---- bad files ------------------------------------------------------------------ */

static void expect_refused(const char *path, struct ram *r, int code, const char *words)
{
	char why[512];
	int ret;

	/* The destination must not be touched: fill with a marker and check it stays. */
	for (unsigned int i = 0; i < r->n; i++)
		memset(r->host[i], 0x77, r->l[i].length);
	ret = load(path, r, 2, 0, NULL, NULL, why, sizeof(why));
	print_message("    refused (%d): %s\n", ret, why);
	if (ret != code)
		fail_msg("load returned %d (%s), want %d", ret, why, code);
	if (!strstr(why, words))
		fail_msg("error '%s' does not mention '%s'", why, words);
	for (unsigned int i = 0; i < r->n; i++)
		for (uint64_t k = 0; k < r->l[i].length; k++)
			if (r->host[i][k] != 0x77)
				fail_msg("a refused load wrote block '%s' at 0x%llx", r->l[i].name,
					 (unsigned long long)k);
}

struct saved {
	struct ram a, b;
	char path[4200];
};

static void saved_make(struct saved *s, const char *name)
{
	path_for(s->path, sizeof(s->path), name);
	ram_pair(&s->a, &s->b, std_layout, 4, 5, 25);
	save_std(s->path, &s->a, 3, 0);
}

static void saved_free(struct saved *s)
{
	ram_unmap(&s->a);
	ram_unmap(&s->b);
	unlink(s->path);
}

static void file_rw(const char *path, void *buf, size_t len, uint64_t off, bool write)
{
	int fd = open(path, O_RDWR);

	assert_true(fd >= 0);
	if (write)
		assert_int_equal(pwrite(fd, buf, len, (off_t)off), (ssize_t)len);
	else
		assert_int_equal(pread(fd, buf, len, (off_t)off), (ssize_t)len);
	close(fd);
}

/* Read the header area, let @fn change it, write it back with a valid checksum. */
static uint8_t *hdr_read(const char *path, uint32_t *size)
{
	uint8_t fixed[128], *area;

	file_rw(path, fixed, sizeof(fixed), 0, false);
	*size = rmig_get_be32(fixed + RMIG_FILE_OFF(rmig_file_hdr, hdr_size));
	area = malloc(*size);
	file_rw(path, area, *size, 0, false);
	return area;
}

static void hdr_write_fixed(const char *path, uint8_t *area, uint32_t size)
{
	rmig_put_be32(area + RMIG_FILE_OFF(rmig_file_hdr, hdr_crc), rmig_file_hdr_crc(area, size));
	file_rw(path, area, size, 0, true);
	free(area);
}

static uint8_t *block_entry(uint8_t *area, unsigned int i)
{
	return area + sizeof(struct rmig_file_hdr) + (size_t)i * sizeof(struct rmig_file_block);
}

static void test_corrupt_header(void **state)
{
	struct saved s;
	uint8_t byte;

	saved_make(&s, "corrupt");
	/* one bit in block 1's name */
	file_rw(s.path, &byte, 1, 128 + 320 + 64, false);
	byte ^= 0x04;
	file_rw(s.path, &byte, 1, 128 + 320 + 64, true);
	expect_refused(s.path, &s.b, -EPROTO, "checksum");
	saved_free(&s);
}

static void test_corrupt_header_size_field(void **state)
{
	struct saved s;
	uint8_t be[8];

	saved_make(&s, "corrupt2");
	/* the pages offset of block 0, without fixing the checksum */
	file_rw(s.path, be, 8, 128 + RMIG_FILE_OFF(rmig_file_block, pages_off), false);
	be[6] ^= 0x10;
	file_rw(s.path, be, 8, 128 + RMIG_FILE_OFF(rmig_file_block, pages_off), true);
	expect_refused(s.path, &s.b, -EPROTO, "header is corrupted");
	saved_free(&s);
}

static void test_wrong_magic(void **state)
{
	struct saved s;

	saved_make(&s, "magic");
	file_rw(s.path, "QEMUFILE", 8, 0, true);
	expect_refused(s.path, &s.b, -EPROTO, "magic");
	saved_free(&s);
}

static void test_not_a_file(void **state)
{
	struct ram r;
	char path[4200], why[512];

	ram_map(&r, std_layout, 1);
	path_for(path, sizeof(path), "does-not-exist");
	unlink(path);
	assert_int_equal(load(path, &r, 1, 0, NULL, NULL, why, sizeof(why)), -ENOENT);
	assert_non_null(strstr(why, "cannot open"));
	path_for(path, sizeof(path), "short");
	{
		int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);

		assert_true(write(fd, "RMIG", 4) == 4);
		close(fd);
	}
	expect_refused(path, &r, -EPROTO, "too short");
	unlink(path);
	ram_unmap(&r);
}

static void test_wrong_version(void **state)
{
	struct saved s;
	uint32_t size;
	uint8_t *area;

	saved_make(&s, "version");
	area = hdr_read(s.path, &size);
	rmig_put_be32(area + RMIG_FILE_OFF(rmig_file_hdr, version), 2);
	hdr_write_fixed(s.path, area, size);
	expect_refused(s.path, &s.b, -EPROTO, "version 2");
	saved_free(&s);
}

static void test_unknown_flag(void **state)
{
	struct saved s;
	uint32_t size;
	uint8_t *area;

	saved_make(&s, "flags");
	area = hdr_read(s.path, &size);
	rmig_put_be32(area + RMIG_FILE_OFF(rmig_file_hdr, flags), RMIG_FILE_F_COMPLETE | 0x80);
	hdr_write_fixed(s.path, area, size);
	expect_refused(s.path, &s.b, -EPROTO, "unknown header flags");
	saved_free(&s);
}

static void test_bitmap_past_end(void **state)
{
	struct saved s;
	struct stat st;
	uint32_t size;
	uint8_t *area;

	saved_make(&s, "bitmap-end");
	assert_int_equal(stat(s.path, &st), 0);
	area = hdr_read(s.path, &size);
	/* block 0's bitmap (768 bytes) would end 668 bytes past the end */
	rmig_put_be64(block_entry(area, 0) + RMIG_FILE_OFF(rmig_file_block, bitmap_off),
		      (uint64_t)st.st_size - 100);
	hdr_write_fixed(s.path, area, size);
	expect_refused(s.path, &s.b, -EPROTO, "past the end of the file");
	saved_free(&s);
}

static void test_bitmap_corrupt(void **state)
{
	struct saved s;
	uint32_t size;
	uint8_t *area, byte;
	uint64_t off;

	saved_make(&s, "bitmap-bad");
	area = hdr_read(s.path, &size);
	off = rmig_get_be64(block_entry(area, 0) + RMIG_FILE_OFF(rmig_file_block, bitmap_off));
	free(area);
	file_rw(s.path, &byte, 1, off + 3, false);
	byte ^= 0x81;
	file_rw(s.path, &byte, 1, off + 3, true);
	expect_refused(s.path, &s.b, -EPROTO, "bitmap of 'pc.ram' is corrupted");
	saved_free(&s);
}

static void test_regions_overlap(void **state)
{
	struct saved s;
	uint32_t size;
	uint8_t *area;
	uint64_t p0;

	saved_make(&s, "overlap");
	area = hdr_read(s.path, &size);
	p0 = rmig_get_be64(block_entry(area, 0) + RMIG_FILE_OFF(rmig_file_block, pages_off));
	/* block 1's pages moved into the middle of block 0's */
	rmig_put_be64(block_entry(area, 1) + RMIG_FILE_OFF(rmig_file_block, pages_off),
		      p0 + (1u << 20));
	hdr_write_fixed(s.path, area, size);
	expect_refused(s.path, &s.b, -EPROTO, "overlaps");
	saved_free(&s);
}

static void test_truncated(void **state)
{
	struct saved s;
	uint32_t size;
	uint8_t *area;
	uint64_t p0;

	saved_make(&s, "truncated");
	area = hdr_read(s.path, &size);
	p0 = rmig_get_be64(block_entry(area, 0) + RMIG_FILE_OFF(rmig_file_block, pages_off));
	free(area);
	/* cut block 0's pages area in half: present pages now lie past the end */
	assert_int_equal(truncate(s.path, (off_t)(p0 + std_layout[0].length / 2)), 0);
	expect_refused(s.path, &s.b, -EPROTO, "file is truncated");
	saved_free(&s);
}

static void test_truncated_tail(void **state)
{
	struct saved s;
	struct stat st;

	saved_make(&s, "truncated-tail");
	/* only the device-state index is cut */
	assert_int_equal(stat(s.path, &st), 0);
	assert_int_equal(truncate(s.path, st.st_size - 8), 0);
	expect_refused(s.path, &s.b, -EPROTO, "file is truncated");
	saved_free(&s);
}

static void test_unfinished(void **state)
{
	struct ram a, b;
	struct rmig_src *src;
	char path[4200];

	path_for(path, sizeof(path), "unfinished");
	ram_pair(&a, &b, std_layout, 4, 8, 20);
	src = src_open(path, &a, 2, 0);
	queue_all(src, &a);
	queue_devs(src, std_dev, 1);
	assert_int_equal(rmig_src_sync(src, RMIG_SYNC_ALL), 0);
	rmig_src_destroy(src); /* never finished */
	expect_refused(path, &b, -EPROTO, "did not finish");

	/* cancelled, too */
	src = src_open(path, &a, 2, 0);
	queue_all(src, &a);
	rmig_src_cancel(src);
	assert_int_equal(rmig_src_finish(src), -ECANCELED);
	rmig_src_destroy(src);
	expect_refused(path, &b, -EPROTO, "did not finish");
	ram_unmap(&a);
	ram_unmap(&b);
	unlink(path);
}

static void test_different_layout(void **state)
{
	struct saved s;
	struct layout l[4];
	struct ram r;

	saved_make(&s, "layout");

	memcpy(l, std_layout, sizeof(l));
	l[1].length *= 2;
	ram_map(&r, l, 4);
	expect_refused(s.path, &r, -EPROTO, "RAM layout differs: block 'vga.vram' is");
	ram_unmap(&r);

	memcpy(l, std_layout, sizeof(l));
	l[2].name = "pc.bios";
	ram_map(&r, l, 4);
	expect_refused(s.path, &r, -EPROTO, "RAM layout differs: block 2 is 'pc.rom'");
	ram_unmap(&r);

	memcpy(l, std_layout, sizeof(l));
	l[0].page_size = 8192;
	ram_map(&r, l, 4);
	expect_refused(s.path, &r, -EPROTO, "page size");
	ram_unmap(&r);

	ram_map(&r, std_layout, 3);
	expect_refused(s.path, &r, -EPROTO, "the file has 4 blocks, this side has 3");
	ram_unmap(&r);
	saved_free(&s);
}

static void test_dev_record_corrupt(void **state)
{
	struct saved s;
	uint32_t size;
	uint8_t *area, ent[16], byte;
	uint64_t idx, off;

	saved_make(&s, "devbad");
	area = hdr_read(s.path, &size);
	idx = rmig_get_be64(area + RMIG_FILE_OFF(rmig_file_hdr, index_off));
	free(area);
	/* a data byte of record 2 */
	file_rw(s.path, ent, sizeof(ent), idx + 2 * sizeof(ent), false);
	off = rmig_get_be64(ent) + 40;
	file_rw(s.path, &byte, 1, off, false);
	byte ^= 1;
	file_rw(s.path, &byte, 1, off, true);
	expect_refused(s.path, &s.b, -EPROTO, "device-state record 2");
	saved_free(&s);
}

static void test_dev_record_lengths(void **state)
{
	struct saved s;
	uint32_t size;
	uint8_t *area, ent[16], rec[40];
	uint64_t idx, off;
	uint32_t len;

	saved_make(&s, "devlen");
	area = hdr_read(s.path, &size);
	idx = rmig_get_be64(area + RMIG_FILE_OFF(rmig_file_hdr, index_off));
	free(area);
	/* record 0 claims more data than it holds; its checksum is made to match */
	file_rw(s.path, ent, sizeof(ent), idx, false);
	off = rmig_get_be64(ent);
	len = rmig_get_be32(ent + 8);
	area = malloc(len);
	file_rw(s.path, area, len, off, false);
	rmig_put_be32(area + 8 + RMIG_OFF(rmig_wire_dev, len), 99999);
	rmig_put_be32(area + 4, rmig_crc32c(0, area + 8, len - 8));
	file_rw(s.path, area, len, off, true);
	free(area);
	(void)rec;
	expect_refused(s.path, &s.b, -EPROTO, "device-state record 0 is malformed");
	saved_free(&s);
}

static void test_dev_index_corrupt(void **state)
{
	struct saved s;
	uint32_t size;
	uint8_t *area, byte;
	uint64_t idx;

	saved_make(&s, "devindex");
	area = hdr_read(s.path, &size);
	idx = rmig_get_be64(area + RMIG_FILE_OFF(rmig_file_hdr, index_off));
	free(area);
	file_rw(s.path, &byte, 1, idx + 17, false);
	byte ^= 0x40;
	file_rw(s.path, &byte, 1, idx + 17, true);
	expect_refused(s.path, &s.b, -EPROTO, "index is corrupted");
	saved_free(&s);
}

/* A bitmap bit past the end of the last page (crafted, checksums made valid). */
static void test_bitmap_tail_bits(void **state)
{
	static const struct layout l[] = {{"odd", 13 * 4096, 4096}};
	struct ram a, b;
	char path[4200];
	uint32_t size;
	uint8_t *area, bm[2];
	uint64_t off;

	path_for(path, sizeof(path), "tailbits");
	ram_pair(&a, &b, l, 1, 2, 0);
	save_std(path, &a, 1, 0);
	area = hdr_read(path, &size);
	off = rmig_get_be64(block_entry(area, 0) + RMIG_FILE_OFF(rmig_file_block, bitmap_off));
	file_rw(path, bm, 2, off, false);
	bm[1] |= 0x80; /* page 15 of a 13-page block */
	file_rw(path, bm, 2, off, true);
	rmig_put_be32(block_entry(area, 0) + RMIG_FILE_OFF(rmig_file_block, bitmap_crc),
		      rmig_crc32c(0, bm, 2));
	hdr_write_fixed(path, area, size);
	expect_refused(path, &b, -EPROTO, "past the end of the block");
	ram_unmap(&a);
	ram_unmap(&b);
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_corrupt_header),
	    cmocka_unit_test(test_corrupt_header_size_field),
	    cmocka_unit_test(test_wrong_magic),
	    cmocka_unit_test(test_not_a_file),
	    cmocka_unit_test(test_wrong_version),
	    cmocka_unit_test(test_unknown_flag),
	    cmocka_unit_test(test_bitmap_past_end),
	    cmocka_unit_test(test_bitmap_corrupt),
	    cmocka_unit_test(test_bitmap_tail_bits),
	    cmocka_unit_test(test_regions_overlap),
	    cmocka_unit_test(test_truncated),
	    cmocka_unit_test(test_truncated_tail),
	    cmocka_unit_test(test_unfinished),
	    cmocka_unit_test(test_different_layout),
	    cmocka_unit_test(test_dev_record_corrupt),
	    cmocka_unit_test(test_dev_record_lengths),
	    cmocka_unit_test(test_dev_index_corrupt),
	};

	file_fixture_init();
	return cmocka_run_group_tests_name("file transport: bad files", tests, NULL, NULL);
}
