// SPDX-License-Identifier: MIT
/*
 * fuzz-seedgen DIR: writes DIR/<target>/seed-NNN, valid inputs for every
 * fuzz target, made with rmig's own encoders (rmig_hdr_encode,
 * rmig_hello_encode, rmig_status_send_flags, rmig_pc_words_head, the rdma
 * private data, MR table and rail hello encoders, a real "file:" save) or, where the
 * encoder sits inside a sending thread (RAM, DEV, PAGE_REQ, PAGE_DATA), laid
 * out as core/src/src_chan.c and core/postcopy/pc_parse.c lay them out. Regression inputs for
 * what fuzzing found are written here too.
 */
#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/postcopy/postcopy.h"
#include "core/proto.h"
#include "fuzz.h"
#include "rmig-config.h"
#include "transport/file/format.h"
#if RMIG_HAVE_RDMA
#include "transport/rdma/rails_fabric.h"
#include "transport/rdma/rdma.h"
#endif

static const char *outdir;
static unsigned int nseeds;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "fuzz-seedgen: ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

/* DIR/@target/seed-@n: @a then @b (either may be empty) */
static void put2(const char *target, const void *a, size_t alen, const void *b, size_t blen)
{
	static unsigned int n;
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", outdir, target);
	if (mkdir(path, 0755) && errno != EEXIST)
		die("mkdir %s: %s", path, strerror(errno));
	snprintf(path, sizeof(path), "%s/%s/seed-%03u", outdir, target, n++);
	f = fopen(path, "wb");
	if (!f || (alen && fwrite(a, alen, 1, f) != 1) || (blen && fwrite(b, blen, 1, f) != 1) ||
	    fclose(f))
		die("writing %s: %s", path, strerror(errno));
	nseeds++;
}

static void put(const char *target, const void *a, size_t alen)
{
	put2(target, a, alen, NULL, 0);
}

/* ---- wire header, HELLO, status ------------------------------------------ */

static void gen_wire(struct rmig_block *blocks)
{
	static const uint32_t lens[] = { 0, 8, 16, 24, 56, 4096, RMIG_WIRE_BODY_MAX };
	uint8_t h[sizeof(struct rmig_wire_hdr)];
	struct rmig_hello hello = { .uuid = "0123456789abcdef" };
	void *body;
	size_t len;

	for (unsigned int t = 1; t <= RMIG_MSG_MAX_TYPE; t++) {
		rmig_hdr_encode(h, (uint16_t)t, rmig_wf_allowed(t), lens[t % 7], t * 3);
		put("wire_hdr", h, sizeof(h));
	}
	for (unsigned int i = 0; i < 3; i++) {
		hello.channels = i == 0 ? 1 : i == 1 ? 4 : FUZZ_MAX_CHANNELS;
		hello.pages_per_packet = i == 0 ? 1 : i == 1 ? 128 : RMIG_MAX_PAGES_PER_PACKET;
		hello.flags = i;
		if (rmig_hello_encode(&hello, blocks, FUZZ_NBLOCKS, &body, &len))
			die("rmig_hello_encode");
		put("hello", body, len);
		free(body);
	}
}

struct cap_conn {
	struct rmig_conn base;
	uint8_t buf[1 << 16];
	size_t len;
};

static int cap_send(struct rmig_conn *c, const void *hdr, size_t hdr_len,
		    const struct rmig_seg *segs, unsigned int nsegs)
{
	struct cap_conn *cc = rmig_container_of(c, struct cap_conn, base);

	if (hdr_len > sizeof(cc->buf))
		return -EMSGSIZE;
	memcpy(cc->buf, hdr, hdr_len);
	cc->len = hdr_len;
	return 0;
}

static const struct rmig_conn_ops cap_ops = { .send = cap_send };

static void gen_status(void)
{
	static struct cap_conn cc = { .base.ops = &cap_ops };
	static const uint8_t info[40] = "RMRT peer info stands in for a table";
	const struct {
		uint16_t type;
		uint32_t flags;
		int status;
		const char *msg;
		size_t info_len;
	} s[] = {
		{ RMIG_MSG_WELCOME, RMIG_WF_POSTCOPY, 0, NULL, sizeof(info) },
		{ RMIG_MSG_WELCOME, 0, 0, "welcome", 0 },
		{ RMIG_MSG_RESULT, 0, 0, NULL, 0 },
		{ RMIG_MSG_RESULT, 0, -EPROTO, "channel 0: RAM message truncated (8 bytes)", 0 },
		{ RMIG_MSG_ABORT, 0, -ECANCELED, "device-state callback refused 'cpu' instance 0", 3 },
	};

	for (unsigned int i = 0; i < sizeof(s) / sizeof(s[0]); i++) {
		if (rmig_status_send_flags(&cc.base, s[i].type, s[i].flags, i, s[i].status, s[i].msg,
					   info, s[i].info_len))
			die("rmig_status_send_flags");
		put("status", cc.buf + sizeof(struct rmig_wire_hdr),
		    cc.len - sizeof(struct rmig_wire_hdr));
	}
}

/* ---- channel bodies (core/src/src_chan.c's layout) ------------------------ */

static void gen_ram(uint8_t sel, uint16_t ppp, uint32_t block, uint32_t normal, uint32_t zero,
		    const struct rmig_block *b)
{
	uint8_t buf[3 + sizeof(struct rmig_wire_ram) + 64 * 8] = { 0 };
	uint8_t *body = buf + 3;

	buf[0] = sel;
	rmig_put_be16(buf + 1, (uint16_t)(ppp - 1));
	rmig_put_be32(body + RMIG_OFF(rmig_wire_ram, block), block);
	rmig_put_be32(body + RMIG_OFF(rmig_wire_ram, normal), normal);
	rmig_put_be32(body + RMIG_OFF(rmig_wire_ram, zero), zero);
	for (uint32_t i = 0; i < normal + zero; i++)
		rmig_put_be64(body + sizeof(struct rmig_wire_ram) + (size_t)i * 8,
			      ((uint64_t)(i * 7) % (b->length / b->page_size)) * b->page_size);
	put("chan", buf, 3 + sizeof(struct rmig_wire_ram) + (size_t)(normal + zero) * 8);
}

/* DEV body: header, id padded to 8, data; @dlen bytes of data follow in @tail */
static size_t dev_body(uint8_t *out, uint64_t seq, uint32_t inst, const char *id, uint32_t dlen)
{
	size_t idlen = strlen(id);

	memset(out, 0, sizeof(struct rmig_wire_dev) + rmig_pad8(idlen));
	rmig_put_be64(out + RMIG_OFF(rmig_wire_dev, seq), seq);
	rmig_put_be32(out + RMIG_OFF(rmig_wire_dev, instance), inst);
	rmig_put_be16(out + RMIG_OFF(rmig_wire_dev, idlen), (uint16_t)idlen);
	rmig_put_be32(out + RMIG_OFF(rmig_wire_dev, len), dlen);
	memcpy(out + sizeof(struct rmig_wire_dev), id, idlen);
	for (uint32_t i = 0; i < dlen; i++)
		out[sizeof(struct rmig_wire_dev) + rmig_pad8(idlen) + i] = (uint8_t)(i * 31 + 7);
	return sizeof(struct rmig_wire_dev) + rmig_pad8(idlen) + dlen;
}

static void gen_chan(const struct rmig_block *blocks)
{
	uint8_t buf[3 + 512];

	gen_ram(0, 128, 0, 3, 2, &blocks[0]);
	gen_ram(6, 64, 1, 0, 5, &blocks[1]);
	gen_ram(0, 1, 2, 1, 0, &blocks[2]);
	gen_ram(6, 4096, 0, 64, 0, &blocks[0]);
	buf[0] = 1;
	buf[1] = buf[2] = 0;
	put("chan", buf, 3 + dev_body(buf + 3, 0, 0, "cpu", 40));
	put("chan", buf, 3 + dev_body(buf + 3, 7, 3, "0000:00:02.0/virtio-net", 1));
	put("chan", buf, 3 + dev_body(buf + 3, 2, 1, "ram-manifest", 0));
}

/* ---- postcopy --------------------------------------------------------------- */

static void gen_postcopy(const struct rmig_block *blocks)
{
	uint8_t buf[1 + sizeof(struct rmig_wire_pc_discard) + 8 * 8];
	size_t len;
	uint8_t *d;

	/* PC_DISCARD / PC_PULLED: the whole of "rom" (70 pages, a partial last word), a window */
	buf[0] = 0;
	len = rmig_pc_words_head(buf + 1, 1, 0, 2);
	rmig_put_be64(buf + 1 + sizeof(struct rmig_wire_pc_discard), 0x8000000000000001ull);
	rmig_put_be64(buf + 1 + sizeof(struct rmig_wire_pc_discard) + 8, 0x3full);
	put("postcopy", buf, 1 + len);
	len = rmig_pc_words_head(buf + 1, 0, 2, 2);
	rmig_put_be64(buf + 1 + sizeof(struct rmig_wire_pc_discard), ~0ull);
	rmig_put_be64(buf + 1 + sizeof(struct rmig_wire_pc_discard) + 8, 0x10ull);
	put("postcopy", buf, 1 + len);
	len = rmig_pc_words_head(buf + 1, 2, 0, 1);
	rmig_put_be64(buf + 1 + sizeof(struct rmig_wire_pc_discard), 3ull);
	put("postcopy", buf, 1 + len);

	/* PAGE_REQ */
	for (unsigned int i = 0; i < FUZZ_NBLOCKS; i++) {
		buf[0] = 1;
		rmig_put_be32(buf + 1 + RMIG_OFF(rmig_wire_page, block), i);
		rmig_put_be32(buf + 1 + RMIG_OFF(rmig_wire_page, npages), i == 2 ? 1 : 16);
		rmig_put_be64(buf + 1 + RMIG_OFF(rmig_wire_page, offset), blocks[i].page_size);
		put("postcopy", buf, 1 + sizeof(struct rmig_wire_page));
	}

	/* PAGE_DATA as pc_answer() writes it: 4 pages of "pc.ram", pages 1 and 3 zero */
	len = rmig_pc_data_len(4, 2, 4096);
	d = calloc(1, 1 + len);
	if (!d)
		die("out of memory");
	d[0] = 2;
	rmig_put_be32(d + 1 + RMIG_OFF(rmig_wire_page, block), 0);
	rmig_put_be32(d + 1 + RMIG_OFF(rmig_wire_page, npages), 4);
	rmig_put_be64(d + 1 + RMIG_OFF(rmig_wire_page, offset), 8 * 4096);
	d[1 + sizeof(struct rmig_wire_page) + 1] = RMIG_PC_ZERO;
	d[1 + sizeof(struct rmig_wire_page) + 3] = RMIG_PC_ZERO;
	memset(d + 1 + sizeof(struct rmig_wire_page) + 8, 0x5a, 2 * 4096);
	put("postcopy", d, 1 + len);
	/* one zero page of "huge" */
	memset(d, 0, 1 + len);
	d[0] = 2;
	rmig_put_be32(d + 1 + RMIG_OFF(rmig_wire_page, block), 2);
	rmig_put_be32(d + 1 + RMIG_OFF(rmig_wire_page, npages), 1);
	rmig_put_be64(d + 1 + RMIG_OFF(rmig_wire_page, offset), 2u << 20);
	d[1 + sizeof(struct rmig_wire_page)] = RMIG_PC_ZERO;
	put("postcopy", d, 1 + rmig_pc_data_len(1, 0, 2u << 20));
	free(d);
}

/* ---- rdma ------------------------------------------------------------------- */

#if RMIG_HAVE_RDMA
/* Rail hellos: RoCE v2 over IPv4, InfiniBand, IPv6 with nothing else known. */
static void gen_rail_hellos(void)
{
	static const uint8_t v4[4] = { 10, 99, 0, 2 }, v6[16] = { 0xfd, 0, 0, 0, 0, 0, 0, 0,
								     0, 0, 0, 0, 0, 0, 0, 2 };
	struct rl_hello h[3] = {
		{ .rail = 0, .nrails = 2, .attempt = 0x0123456789abcdefull,
		  .fab = { .dev = "rxe0", .port = 1, .link = RL_LINK_ETH,
			   .gid_type = RL_GID_ROCE_V2, .family = 4, .prefix = 24,
			   .netdev = "eth0" } },
		{ .rail = 3, .nrails = 4, .allow = RL_ALLOW_ALL, .attempt = 1,
		  .fab = { .dev = "mlx5_3", .port = 2, .link = RL_LINK_IB,
			   .gid_type = RL_GID_IB, .subnet = { 0xfe, 0x80 } } },
		{ .rail = 0, .nrails = 1,
		  .fab = { .family = 6, .prefix = 64, .netdev = "ens1f0np0" } },
	};
	uint8_t buf[RL_HELLO_LEN];

	memcpy(h[0].fab.ip, v4, sizeof(v4));
	memcpy(h[2].fab.ip, v6, sizeof(v6));
	for (unsigned int i = 0; i < 3; i++) {
		rmig_rl_hello_encode(buf, &h[i]);
		put("rdma_rail_hello", buf, sizeof(buf));
	}
	/* a version 1 hello, as sources before the fabric checks sent it */
	put("rdma_rail_hello", "RMRH\x00\x01\x00\x00\x00\x02\x00\x00", RL_HELLO_HEAD);
}

static void gen_rdma(const struct rmig_block *blocks)
{
	struct rd_cm_priv p[] = { { 4, 4096 }, { 256, 64 * 1024 }, { 0xffff, 16u << 20 } };
	/* rdma_cm pads REQ private data to 56 bytes */
	uint8_t priv[56] = { 0 };
	struct rd_lblock lb[FUZZ_NBLOCKS];
	struct rd_lslice sl[8];
	struct ibv_mr mr[8];
	struct rd_mrs t = { .blocks = lb, .nblocks = FUZZ_NBLOCKS, .slices = sl };
	struct rmig_msgbuf mb;
	uint8_t buf[1024];
	size_t len;

	for (unsigned int i = 0; i < 3; i++) {
		rmig_rd_cm_priv_encode(priv, &p[i]);
		put("rdma_priv", priv, i == 1 ? sizeof(priv) : RD_CM_PRIV_LEN);
	}
	/* one slice per block, then blocks cut in 1, 2 and 3 slices */
	for (unsigned int cut = 0; cut < 2; cut++) {
		unsigned int n = 0;

		for (unsigned int i = 0; i < FUZZ_NBLOCKS; i++) {
			unsigned int parts = cut ? i + 1 : 1;
			uint64_t off = 0, base = 0x7f0000000000ull + ((uint64_t)i << 32);

			lb[i].length = blocks[i].length;
			lb[i].first = n;
			lb[i].n = parts;
			for (unsigned int k = 0; k < parts; k++, n++) {
				uint64_t l = k + 1 < parts ? blocks[i].length / parts / 4096 * 4096
							   : blocks[i].length - off;

				mr[n].rkey = 0x1000u + n;
				sl[n].addr = (uint8_t *)(uintptr_t)(base + off);
				sl[n].len = l;
				sl[n].mr = &mr[n];
				off += l;
			}
		}
		t.nslices = n;
		len = sizeof(buf);
		if (rmig_rd_mrt_encode(&t, NULL, buf, &len, &mb))
			die("rmig_rd_mrt_encode: %s", mb.msg);
		put("rdma_mrt", buf, len);
	}
	gen_rail_hellos();
}
#endif

/* ---- file: a real save, as a sparse image (fuzz_file.c) -------------------- */

static void gen_file(unsigned int ndev, bool fix, const char *tmp)
{
	uint8_t *ram[FUZZ_NBLOCKS], *file, *img;
	struct rmig_src *src = NULL;
	char uri[4200], id[32];
	size_t at = 0, cap;
	struct stat st;
	FILE *f;

	snprintf(uri, sizeof(uri), "file:%s", tmp);
	unlink(tmp);
	if (rmig_src_create(NULL, &src))
		die("rmig_src_create");
	for (unsigned int i = 0; i < FUZZ_NBLOCKS; i++) {
		const struct rmig_block_desc d = { fuzz_block_desc[i].name, NULL,
						   fuzz_block_desc[i].length,
						   fuzz_block_desc[i].page_size };
		struct rmig_block_desc dd = d;

		ram[i] = aligned_alloc(fuzz_block_desc[i].page_size, fuzz_block_desc[i].length);
		if (!ram[i])
			die("out of memory");
		memset(ram[i], 0, fuzz_block_desc[i].length);
		/* three pages with data (the first, the second, the last), the rest zero */
		ram[i][0] = 1;
		ram[i][fuzz_block_desc[i].page_size] = 2;
		ram[i][fuzz_block_desc[i].length - 1] = 3;
		dd.host = ram[i];
		if (rmig_src_add_block(src, &dd) < 0)
			die("rmig_src_add_block: %s", rmig_src_error(src));
	}
	if (rmig_src_connect(src, uri))
		die("rmig_src_connect %s: %s", uri, rmig_src_error(src));
	for (unsigned int i = 0; i < FUZZ_NBLOCKS; i++)
		for (uint64_t o = 0; o < fuzz_block_desc[i].length; o += fuzz_block_desc[i].page_size)
			if (rmig_src_queue_page(src, i, o))
				die("rmig_src_queue_page: %s", rmig_src_error(src));
	if (rmig_src_sync(src, RMIG_SYNC_ALL))
		die("rmig_src_sync: %s", rmig_src_error(src));
	for (unsigned int k = 0; k < ndev; k++) {
		uint8_t state[100];

		memset(state, (int)k + 1, sizeof(state));
		snprintf(id, sizeof(id), k % 2 ? "cpu" : "0000:00:03.0/virtio-blk");
		if (rmig_src_queue_device_state(src, id, k, state, 10 + 30 * k))
			die("rmig_src_queue_device_state: %s", rmig_src_error(src));
	}
	if (rmig_src_finish(src))
		die("rmig_src_finish: %s", rmig_src_error(src));
	rmig_src_destroy(src);
	for (unsigned int i = 0; i < FUZZ_NBLOCKS; i++)
		free(ram[i]);

	/* the image: mode, size, then every 4 KiB piece that is not all zero */
	f = fopen(tmp, "rb");
	if (!f || fstat(fileno(f), &st))
		die("%s: %s", tmp, strerror(errno));
	file = malloc((size_t)st.st_size);
	cap = 9 + (size_t)st.st_size + (size_t)st.st_size / 4096 * 6 + 64;
	img = malloc(cap);
	if (!file || !img || fread(file, (size_t)st.st_size, 1, f) != 1)
		die("reading %s", tmp);
	fclose(f);
	unlink(tmp);
	img[at++] = fix;
	rmig_put_be64(img + at, (uint64_t)st.st_size);
	at += 8;
	for (size_t o = 0; o < (size_t)st.st_size; o += 4096) {
		size_t l = (size_t)st.st_size - o < 4096 ? (size_t)st.st_size - o : 4096;
		bool zero = true;

		for (size_t k = 0; k < l && zero; k++)
			zero = !file[o + k];
		if (zero)
			continue;
		while (l && !file[o + l - 1])
			l--;
		rmig_put_be32(img + at, (uint32_t)o);
		rmig_put_be16(img + at + 4, (uint16_t)l);
		memcpy(img + at + 6, file + o, l);
		at += 6 + l;
	}
	put("file", img, at);
	free(img);
	free(file);
}

int main(int argc, char **argv)
{
	struct rmig_block blocks[FUZZ_NBLOCKS];
	char tmp[4096];

	if (argc != 2 || !strcmp(argv[1], "--help")) {
		fprintf(stderr, "usage: fuzz-seedgen DIR\n"
				"writes DIR/<target>/seed-NNN: valid inputs for each fuzz target\n");
		return argc == 2 ? 0 : 2;
	}
	outdir = argv[1];
	if (mkdir(outdir, 0755) && errno != EEXIST)
		die("mkdir %s: %s", outdir, strerror(errno));
	fuzz_blocks(blocks);
	gen_wire(blocks);
	gen_status();
	gen_chan(blocks);
	gen_postcopy(blocks);
#if RMIG_HAVE_RDMA
	gen_rdma(blocks);
#endif
	snprintf(tmp, sizeof(tmp), "%s/.seedgen-save.rmig", outdir);
	gen_file(0, false, tmp);
	gen_file(3, false, tmp);
	gen_file(3, true, tmp);
	gen_file(1, true, tmp);
	printf("fuzz-seedgen: %u seeds in %s\n", nseeds, outdir);
	return 0;
}
