// SPDX-License-Identifier: MIT
/*
 * rmig-connect-time: what authentication adds to connecting. In one
 * process, over loopback tcp, it times rmig_src_connect() (control
 * connection, handshake, every channel, the destination's "channels
 * accepted") against a destination on a thread, N times without a key and
 * N times with one, interleaved (ABAB...) so both see the same machine, and
 * prints the medians and the difference.
 *
 *   rmig-connect-time [N] [CHANNELS]      (defaults 200 and 2)
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rmig/rmig.h"

#define PAGE 4096u
#define LEN (64u * PAGE)

static uint8_t src_ram[LEN] __attribute__((aligned(PAGE)));
static uint8_t dst_ram[LEN] __attribute__((aligned(PAGE)));
static const uint8_t key[32] = "rmig-connect-time-key-0123456789";

struct dst_run {
	struct rmig_dst *dst;
	int ret;
};

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static void *dst_main(void *arg)
{
	struct dst_run *r = arg;

	r->ret = rmig_dst_accept(r->dst);
	if (!r->ret)
		r->ret = rmig_dst_finish(r->dst);
	return NULL;
}

static void die(const char *what, int ret, const char *msg)
{
	fprintf(stderr, "rmig-connect-time: %s: %d %s\n", what, ret, msg);
	exit(1);
}

/* One migration of nothing; returns microseconds spent in rmig_src_connect(). */
static double one(unsigned int channels, bool auth)
{
	struct rmig_block_desc sb = { "pc.ram", src_ram, LEN, PAGE }, db = { "pc.ram", dst_ram, LEN, PAGE };
	struct dst_run r = { 0 };
	struct rmig_src *src;
	struct rmig_opts o;
	pthread_t t;
	char uri[64];
	double t0, t1;
	int ret;

	rmig_opts_init(&o);
	o.channels = channels;
	if (auth) {
		o.psk = key;
		o.psk_len = sizeof(key);
	}
	if ((ret = rmig_dst_create(&o, &r.dst)) || (ret = rmig_dst_add_block(r.dst, &db)) < 0)
		die("destination", ret, "");
	ret = rmig_dst_listen(r.dst, "tcp:127.0.0.1:0");
	if (ret)
		die("listen", ret, rmig_dst_error(r.dst));
	snprintf(uri, sizeof(uri), "tcp:127.0.0.1:%d", rmig_dst_port(r.dst));
	pthread_create(&t, NULL, dst_main, &r);
	if ((ret = rmig_src_create(&o, &src)) || (ret = rmig_src_add_block(src, &sb)) < 0)
		die("source", ret, "");
	t0 = now_us();
	ret = rmig_src_connect(src, uri);
	t1 = now_us();
	if (ret)
		die("connect", ret, rmig_src_error(src));
	ret = rmig_src_finish(src);
	if (ret)
		die("finish", ret, rmig_src_error(src));
	pthread_join(t, NULL);
	if (r.ret)
		die("destination", r.ret, rmig_dst_error(r.dst));
	rmig_src_destroy(src);
	rmig_dst_destroy(r.dst);
	return t1 - t0;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, unsigned int n)
{
	qsort(v, n, sizeof(*v), cmp);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
	unsigned int n = argc > 1 ? (unsigned int)atoi(argv[1]) : 200;
	unsigned int ch = argc > 2 ? (unsigned int)atoi(argv[2]) : 2;
	double *plain, *auth, mp, ma;

	if (!n || !ch || ch > RMIG_MAX_CHANNELS) {
		fprintf(stderr, "usage: rmig-connect-time [N] [CHANNELS]\n");
		return 2;
	}
	plain = calloc(n, sizeof(*plain));
	auth = calloc(n, sizeof(*auth));
	if (!plain || !auth)
		return 1;
	one(ch, false); /* warm-up */
	one(ch, true);
	for (unsigned int i = 0; i < n; i++) {
		plain[i] = one(ch, false);
		auth[i] = one(ch, true);
	}
	mp = median(plain, n);
	ma = median(auth, n);
	printf("connects: %u each, %u channels, loopback tcp\n", n, ch);
	printf("median connect without a key: %.1f us\n", mp);
	printf("median connect with a key:    %.1f us\n", ma);
	printf("added by authentication:      %.1f us\n", ma - mp);
	free(plain);
	free(auth);
	return 0;
}
