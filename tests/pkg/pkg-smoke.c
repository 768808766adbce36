// SPDX-License-Identifier: MIT
/*
 * Built against the installed librmig-dev with
 * `cc pkg-smoke.c $(pkg-config --cflags --libs rmig) -lpthread`: migrate
 * 8 MiB of patterned RAM over loopback tcp (destination on a thread, port
 * picked by the kernel), then compare both regions. Exit 0 when they match.
 */
#include <pthread.h>
#include <rmig/rmig.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define LEN (8u << 20)
#define PAGE 4096u

struct dst_run {
	struct rmig_dst *dst;
	int rc;
};

static void *dst_main(void *arg)
{
	struct dst_run *d = arg;

	d->rc = rmig_dst_accept(d->dst);
	if (!d->rc)
		d->rc = rmig_dst_finish(d->dst);
	return NULL;
}

static void *map(void)
{
	void *p = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

int main(void)
{
	unsigned char *sram = map(), *dram = map();
	struct rmig_block_desc b = { .name = "pc.ram", .length = LEN, .page_size = PAGE };
	struct dst_run d = { 0 };
	struct rmig_src *src = NULL;
	struct rmig_opts o;
	pthread_t t;
	char uri[64];
	int rc, blk = 0, port;

	if (!sram || !dram)
		return 2;
	for (size_t i = 0; i < LEN; i++)
		sram[i] = (unsigned char)(i * 2654435761u >> 13);
	memset(sram + 5 * PAGE, 0, PAGE); /* one zero page */

	rmig_opts_init(&o);
	o.channels = 2;
	b.host = dram;
	if ((rc = rmig_dst_create(&o, &d.dst)) || (rc = rmig_dst_add_block(d.dst, &b)) < 0 ||
	    (rc = rmig_dst_listen(d.dst, "tcp:127.0.0.1:0"))) {
		fprintf(stderr, "destination: %s (%d)\n", d.dst ? rmig_dst_error(d.dst) : "", rc);
		return 1;
	}
	port = rmig_dst_port(d.dst);
	if (port <= 0 || pthread_create(&t, NULL, dst_main, &d))
		return 1;

	b.host = sram;
	snprintf(uri, sizeof(uri), "tcp:127.0.0.1:%d", port);
	rc = rmig_src_create(&o, &src);
	if (!rc && (blk = rmig_src_add_block(src, &b)) < 0)
		rc = blk;
	if (!rc)
		rc = rmig_src_connect(src, uri);
	for (size_t off = 0; !rc && off < LEN; off += PAGE)
		rc = rmig_src_queue_page(src, (unsigned int)blk, off);
	if (!rc)
		rc = rmig_src_sync(src, RMIG_SYNC_ALL);
	if (!rc)
		rc = rmig_src_finish(src);
	if (rc) {
		fprintf(stderr, "source: %s (%d)\n", src ? rmig_src_error(src) : "", rc);
		rmig_dst_cancel(d.dst);
	}
	pthread_join(t, NULL);
	if (!rc && d.rc) {
		fprintf(stderr, "destination: %s (%d)\n", rmig_dst_error(d.dst), d.rc);
		rc = d.rc;
	}
	if (!rc && memcmp(sram, dram, LEN)) {
		fprintf(stderr, "the destination's RAM differs from the source's\n");
		rc = 1;
	}
	if (!rc)
		printf("pkg-smoke: %u bytes over %s, verified\n", LEN, uri);
	rmig_src_destroy(src);
	rmig_dst_destroy(d.dst);
	return rc ? 1 : 0;
}
