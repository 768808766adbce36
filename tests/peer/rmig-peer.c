// SPDX-License-Identifier: MIT
/*
 * rmig-peer: one side of a scripted migration, for tests that run source and
 * destination as separate processes (or in separate QEMU guests over rxe).
 *
 * Both sides derive every page's content from (seed, page, round), so the
 * destination can check its whole RAM at every sync round without seeing the
 * source: round 1 sends every page; each later round rewrites about 1/8 of the
 * pages (a quarter of all versions are zero pages) and sends those again.
 * Device state comes from two threads at once, each numbering its chunks;
 * the destination checks global order, per-thread order and every byte.
 *
 *   rmig-peer dst URI [options]     listen on URI, check every round, verify
 *   rmig-peer src URI [options]     connect to URI and run the script
 *
 * Options: --size SIZE (MiB or with K/M/G), --rounds N, --channels N,
 * --seed N, --dev-chunks N (per thread per round), --die-after-mib N (exit
 * abruptly, as a killed process would, after that much data arrived (dst)
 * or was sent (src)), --check-delay-ms N (dst: wait
 * before checking each round, as a slow caller would), --quiet-rounds N (the
 * last N rounds send nothing but their sync), --pattern SPEC (what each
 * round carries, see parse_pattern(); both sides must be given the same),
 * --expect-fail (src: succeed only if the migration fails cleanly and source
 * RAM is intact; dst: only if no round and no finish ever succeeds after the
 * failure and the error says why), --timeout MS, --ib-dev NAME, --gid-index N.
 * Exit 0 on the expected outcome; prints "rmig-peer <role>: PASS ..." or FAIL.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <rmig/rmig.h>

#include "helpers.h"

#define PAGE 4096u

struct cfg {
	const char *role, *uri;
	uint64_t size;
	unsigned int rounds, channels, dev_chunks;
	unsigned int quiet; /* the last rounds send nothing: no page, no device state */
	char *kind;	    /* per round (1-based): 'B' busy, 'I' idle, 'D' device state only */
	uint64_t seed;
	uint64_t die_after;
	unsigned int check_delay_ms;
	bool expect_fail;
	int timeout_ms;
	const char *ib_dev;
	int gid_index;
	const char *psk_file; /* --psk-file: both sides authenticate */
};

static struct cfg cfg = {
	.size = 64ull << 20, .rounds = 4, .channels = 2, .dev_chunks = 8, .seed = 7,
	.timeout_ms = 30000, .gid_index = -1,
};

/*
 * What round @r carries: 'B' (busy: rewritten pages and device state),
 * 'I' (idle: nothing but the sync) or 'D' (device state, no page).
 */
static char round_kind(unsigned int r)
{
	return cfg.kind[r];
}

/* Rounds up to @r that carried device state: chunks are numbered across them. */
static unsigned int dev_rounds(unsigned int r)
{
	unsigned int n = 0;

	for (unsigned int k = 1; k <= r; k++)
		n += round_kind(k) != 'I';
	return n;
}

/* The round in which page @p was last written, as of round @r. */
static unsigned int page_version(uint64_t p, unsigned int r)
{
	for (unsigned int k = r; k > 1; k--)
		if (round_kind(k) == 'B' && h_mix64(cfg.seed ^ (p << 8) ^ k) % 8 == 0)
			return k;
	return 1;
}

static void fill_page(uint8_t *dst, uint64_t p, unsigned int version)
{
	uint64_t *w = (uint64_t *)dst, s = h_mix64(cfg.seed ^ (p << 20) ^ version);

	if (s % 4 == 0) {
		memset(dst, 0, PAGE);
		return;
	}
	for (unsigned int i = 0; i < PAGE / 8; i++)
		w[i] = h_mix64(s + i);
}

static void dev_bytes(uint8_t *buf, size_t len, unsigned int thread, uint64_t idx)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)h_mix64(cfg.seed ^ ((uint64_t)thread << 40) ^ (idx << 12) ^ i);
}

static size_t dev_len(unsigned int thread, uint64_t idx)
{
	/* mostly small, now and then larger than one wire chunk, sometimes empty */
	uint64_t h = h_mix64(idx * 31 + thread);

	if (h % 17 == 0)
		return 0;
	if (h % 29 == 0)
		return (1u << 20) + 12345;
	return h % 70000;
}

static uint64_t ram_digest(const uint8_t *ram, uint64_t size)
{
	const uint64_t *w = (const uint64_t *)ram;
	uint64_t h = 0;

	for (uint64_t i = 0; i < size / 8; i++)
		h = h_mix64(h ^ w[i]);
	return h;
}

static struct rmig_opts make_opts(void)
{
	struct rmig_opts o;

	rmig_opts_init(&o);
	o.channels = cfg.channels;
	o.timeout_ms = cfg.timeout_ms;
	o.ib_dev = cfg.ib_dev;
	o.gid_index = cfg.gid_index;
	o.psk_file = cfg.psk_file;
	return o;
}

/* ---- source ------------------------------------------------------------ */

struct dev_thread {
	struct rmig_src *src;
	unsigned int thread, dev_round; /* the round's number among rounds with device state */
	int ret;
};

static void *dev_producer(void *arg)
{
	struct dev_thread *t = arg;
	char id[32];
	uint8_t *buf = malloc((1u << 20) + 20000);

	snprintf(id, sizeof(id), "dev%u", t->thread);
	for (unsigned int i = 0; i < cfg.dev_chunks && !t->ret; i++) {
		uint64_t idx = (uint64_t)(t->dev_round - 1) * cfg.dev_chunks + i;
		size_t len = dev_len(t->thread, idx);

		dev_bytes(buf, len, t->thread, idx);
		t->ret = rmig_src_queue_device_state(t->src, id, (uint32_t)idx, buf, len);
	}
	free(buf);
	return NULL;
}

/*
 * Die like a crash: exit_group straight away, past exit handlers and past
 * ThreadSanitizer's _exit() interceptor, which would report the migration
 * threads still running as leaked and turn the status 9 into its own 66.
 */
static void die_now(void)
{
	syscall(SYS_exit_group, 9);
}

static void *src_killer(void *arg)
{
	struct rmig_src *src = arg;
	struct rmig_stats st = { .size = sizeof(st) };

	do {
		usleep(1000);
		rmig_src_get_stats(src, &st);
	} while (st.data_bytes < cfg.die_after);
	fprintf(stderr, "rmig-peer src: dying on purpose after %" PRIu64 " bytes\n", st.data_bytes);
	die_now();
	return NULL;
}

static int run_src(void)
{
	uint64_t pages = cfg.size / PAGE, before, after;
	struct rmig_opts o = make_opts();
	struct rmig_src *src;
	uint8_t *ram = h_map_flags(cfg.size, MAP_POPULATE);
	int ret;

	for (uint64_t p = 0; p < pages; p++)
		fill_page(ram + p * PAGE, p, 1);
	if ((ret = rmig_src_create(&o, &src)) ||
	    (ret = rmig_src_add_block(src, &(struct rmig_block_desc){ "pc.ram", ram, cfg.size, PAGE })) < 0 ||
	    (ret = rmig_src_connect(src, cfg.uri))) {
		fprintf(stderr, "rmig-peer src: FAIL setting up: %s (%s)\n", rmig_src_error(src),
			strerror(-ret));
		return 1;
	}
	if (cfg.die_after) {
		pthread_t kt;

		pthread_create(&kt, NULL, src_killer, src);
	}
	for (unsigned int r = 1; r <= cfg.rounds; r++) {
		unsigned int dr = dev_rounds(r);
		struct dev_thread dt[2] = { { src, 0, dr, 0 }, { src, 1, dr, 0 } };
		pthread_t th[2];

		/*
		 * An idle round: every channel carries SYNC after SYNC with no
		 * data between, which a placing transport must still release
		 * round by round.
		 */
		if (round_kind(r) == 'I') {
			ret = rmig_src_sync(src, RMIG_SYNC_ALL);
			if (ret)
				break;
			continue;
		}

		/* The "vCPUs" rewrite their pages for this round before it is sent. */
		for (uint64_t p = 0; r > 1 && round_kind(r) == 'B' && p < pages; p++)
			if (page_version(p, r) == r)
				fill_page(ram + p * PAGE, p, r);
		for (int i = 0; i < 2; i++)
			pthread_create(&th[i], NULL, dev_producer, &dt[i]);
		for (uint64_t p = 0; round_kind(r) == 'B' && p < pages && !ret; p++)
			if (r == 1 || page_version(p, r) == r)
				ret = rmig_src_queue_page(src, 0, p * PAGE);
		for (int i = 0; i < 2; i++) {
			pthread_join(th[i], NULL);
			if (!ret)
				ret = dt[i].ret;
		}
		if (!ret)
			ret = rmig_src_sync(src, RMIG_SYNC_ALL);
		if (ret)
			break;
	}
	before = ram_digest(ram, cfg.size);
	if (!ret)
		ret = rmig_src_finish(src);
	after = ram_digest(ram, cfg.size);
	if (before != after) {
		fprintf(stderr, "rmig-peer src: FAIL source RAM changed during migration\n");
		return 1;
	}
	if (cfg.expect_fail) {
		if (ret == 0) {
			fprintf(stderr, "rmig-peer src: FAIL migration succeeded but was expected to fail\n");
			return 1;
		}
		if (!*rmig_src_error(src)) {
			fprintf(stderr, "rmig-peer src: FAIL no error message\n");
			return 1;
		}
		printf("rmig-peer src: PASS failed as expected (%s): %s; source RAM intact\n",
		       strerror(-ret), rmig_src_error(src));
		rmig_src_destroy(src);
		return 0;
	}
	if (ret) {
		fprintf(stderr, "rmig-peer src: FAIL %s (%s)\n", rmig_src_error(src), strerror(-ret));
		return 1;
	}
	printf("rmig-peer src: PASS %u rounds, %" PRIu64 " MiB, %u channels\n", cfg.rounds,
	       cfg.size >> 20, cfg.channels);
	rmig_src_destroy(src);
	return 0;
}

/* ---- destination ------------------------------------------------------- */

struct dst_check {
	uint64_t next_seq;
	uint64_t next_idx[2];
	uint64_t delivered;
	size_t got[2];
	uint8_t *expect[2];
	char problem[256];
};

static int on_dev(void *arg, const char *id, uint32_t instance, uint64_t seq, const void *data,
		  size_t len)
{
	struct dst_check *c = arg;
	unsigned int t;
	size_t want;

	if (seq != c->next_seq) {
		snprintf(c->problem, sizeof(c->problem), "device-state seq %" PRIu64 ", expected %" PRIu64,
			 seq, c->next_seq);
		return -1;
	}
	c->next_seq++;
	if (strcmp(id, "dev0") && strcmp(id, "dev1")) {
		snprintf(c->problem, sizeof(c->problem), "unknown device '%s'", id);
		return -1;
	}
	t = (unsigned int)(id[3] - '0');
	/* Each producer's states arrive in its order; a large one comes in pieces. */
	if (instance != c->next_idx[t]) {
		snprintf(c->problem, sizeof(c->problem), "%s state %u out of order (expected %" PRIu64 ")",
			 id, instance, c->next_idx[t]);
		return -1;
	}
	want = dev_len(t, instance);
	if (c->got[t] == 0)
		dev_bytes(c->expect[t], want, t, instance);
	if (c->got[t] + len > want || memcmp(c->expect[t] + c->got[t], data, len)) {
		snprintf(c->problem, sizeof(c->problem), "%s state %u: bytes %zu..%zu differ", id,
			 instance, c->got[t], c->got[t] + len);
		return -1;
	}
	c->got[t] += len;
	if (c->got[t] == want) {
		c->got[t] = 0;
		c->next_idx[t]++;
	}
	c->delivered++;
	return 0;
}

static uint64_t stats_bytes(struct rmig_dst *d)
{
	struct rmig_stats st = { .size = sizeof(st) };

	rmig_dst_get_stats(d, &st);
	return st.data_bytes;
}

static void *killer(void *arg)
{
	struct rmig_dst *d = arg;

	while (stats_bytes(d) < cfg.die_after)
		usleep(1000);
	fprintf(stderr, "rmig-peer dst: dying on purpose after %" PRIu64 " bytes\n", stats_bytes(d));
	die_now();
	return NULL;
}

static int check_round(const uint8_t *ram, unsigned int r, uint8_t *expect)
{
	for (uint64_t p = 0; p < cfg.size / PAGE; p++) {
		fill_page(expect, p, page_version(p, r));
		if (memcmp(expect, ram + p * PAGE, PAGE)) {
			fprintf(stderr, "rmig-peer dst: FAIL round %u: page %" PRIu64 " differs\n", r, p);
			return -1;
		}
	}
	return 0;
}

/*
 * The migration failed at @what. Expected (--expect-fail): pass if the error
 * says why. The destination never got to report success: that is checked by
 * the caller never reaching the end.
 */
/*
 * The end of run_dst() after a failure. Destroys @d, which joins its
 * threads: exiting with them unjoined is a thread leak to ThreadSanitizer.
 */
static int dst_failed(struct rmig_dst *d, const char *what, int ret, struct dst_check *chk)
{
	int rc = 1;

	if (cfg.expect_fail && ret < 0 && *rmig_dst_error(d)) {
		printf("rmig-peer dst: PASS failed as expected at %s (%s): %s\n", what,
		       strerror(-ret), rmig_dst_error(d));
		rc = 0;
	} else {
		fprintf(stderr, "rmig-peer dst: FAIL %s: ret %d: %s %s\n", what, ret,
			rmig_dst_error(d), chk->problem);
	}
	rmig_dst_destroy(d);
	free(chk->expect[0]);
	free(chk->expect[1]);
	return rc;
}

static int run_dst(void)
{
	struct rmig_opts o = make_opts();
	struct dst_check chk = { 0 };
	uint8_t *ram = h_map_flags(cfg.size, MAP_POPULATE), expect[PAGE];
	struct rmig_dst *d;
	uint64_t round = 0;
	pthread_t kt;
	int ret;

	chk.expect[0] = malloc((1u << 20) + 20000);
	chk.expect[1] = malloc((1u << 20) + 20000);
	/* garbage, so pages that must become zero are really cleared */
	memset(ram, 0xa5, cfg.size);
	o.channels = RMIG_MAX_CHANNELS;
	if ((ret = rmig_dst_create(&o, &d)) ||
	    (ret = rmig_dst_add_block(d, &(struct rmig_block_desc){ "pc.ram", ram, cfg.size, PAGE })) < 0 ||
	    (ret = rmig_dst_set_device_state_cb(d, on_dev, &chk)) ||
	    (ret = rmig_dst_listen(d, cfg.uri))) {
		fprintf(stderr, "rmig-peer dst: FAIL setting up: %s\n", rmig_dst_error(d));
		return 1;
	}
	printf("rmig-peer dst: listening on %s\n", cfg.uri);
	fflush(stdout);
	ret = rmig_dst_accept(d);
	if (ret) {
		fprintf(stderr, "rmig-peer dst: FAIL accept: %s\n", rmig_dst_error(d));
		return 1;
	}
	if (cfg.die_after)
		pthread_create(&kt, NULL, killer, d);
	for (unsigned int r = 1; r <= cfg.rounds; r++) {
		ret = rmig_dst_wait_sync(d, &round);
		if (ret < 0)
			return dst_failed(d, "a sync round", ret, &chk);
		if (ret != 0 || round != r) {
			fprintf(stderr, "rmig-peer dst: FAIL waiting for round %u: ret %d round %" PRIu64 ": %s %s\n",
				r, ret, round, rmig_dst_error(d), chk.problem);
			return 1;
		}
		/*
		 * A slow look at RAM: the channels stay at the fence meanwhile,
		 * and over a placing transport the source must not write the
		 * next round before this returns.
		 */
		if (cfg.check_delay_ms)
			usleep(cfg.check_delay_ms * 1000u);
		/* RAM changes only in busy rounds; the last round is checked below */
		if (round_kind(r) == 'B' && check_round(ram, r, expect))
			return 1;
		if (chk.next_idx[0] != (uint64_t)dev_rounds(r) * cfg.dev_chunks ||
		    chk.next_idx[1] != (uint64_t)dev_rounds(r) * cfg.dev_chunks) {
			fprintf(stderr, "rmig-peer dst: FAIL round %u: device state of the round not all delivered\n", r);
			return 1;
		}
	}
	ret = rmig_dst_finish(d);
	if (ret)
		return dst_failed(d, "finish", ret, &chk);
	if (cfg.expect_fail) {
		fprintf(stderr, "rmig-peer dst: FAIL the migration verified but was expected to fail\n");
		return 1;
	}
	if (check_round(ram, cfg.rounds, expect))
		return 1;
	printf("rmig-peer dst: PASS %u rounds verified, %" PRIu64 " device-state chunks in order\n",
	       cfg.rounds, chk.delivered);
	rmig_dst_destroy(d);
	free(chk.expect[0]);
	free(chk.expect[1]);
	return 0;
}

static uint64_t parse_size(const char *s)
{
	char *end;
	uint64_t v = strtoull(s, &end, 10);

	switch (*end) {
	case 'G': case 'g': return v << 30;
	case 'K': case 'k': return v << 10;
	case 'M': case 'm': case '\0': return v << 20;
	default:
		fprintf(stderr, "rmig-peer: bad size '%s'\n", s);
		exit(2);
	}
}

/*
 * --pattern: comma-separated items, each a kind letter with an optional
 * count: "B,I300,D100,B" is one busy round, 300 idle, 100 with device state
 * only, one busy. Round 1 must be busy (it sends every page). Without it:
 * --rounds busy rounds, the last --quiet-rounds of them idle.
 */
static int parse_pattern(const char *spec)
{
	unsigned int n = 0;

	if (!spec) {
		cfg.kind = malloc(cfg.rounds + 1u);
		for (unsigned int r = 1; r <= cfg.rounds; r++)
			cfg.kind[r] = r <= cfg.rounds - cfg.quiet ? 'B' : 'I';
		return 0;
	}
	cfg.kind = malloc(strlen(spec) * 10000u + 2u);
	for (const char *p = spec; *p;) {
		char k = *p++;
		unsigned long cnt = 1;

		if (k != 'B' && k != 'I' && k != 'D') {
			fprintf(stderr, "rmig-peer: --pattern: '%c' is not B, I or D\n", k);
			return -1;
		}
		if (*p >= '0' && *p <= '9') {
			char *end;

			cnt = strtoul(p, &end, 10);
			p = end;
		}
		if (!cnt || cnt > 10000 || (*p && *p != ',')) {
			fprintf(stderr, "rmig-peer: --pattern: bad item near '%s'\n", p);
			return -1;
		}
		if (*p == ',')
			p++;
		while (cnt--)
			cfg.kind[++n] = k;
	}
	if (!n || cfg.kind[1] != 'B') {
		fprintf(stderr, "rmig-peer: --pattern must start with B (round 1 sends every page)\n");
		return -1;
	}
	cfg.rounds = n;
	return 0;
}

int main(int argc, char **argv)
{
	const char *pattern = NULL;

	if (argc < 3 || (strcmp(argv[1], "src") && strcmp(argv[1], "dst"))) {
		fprintf(stderr, "usage: rmig-peer src|dst URI [--size MIB] [--rounds N] [--channels N]\n"
				"       [--seed N] [--dev-chunks N] [--die-after-mib N] [--expect-fail]\n"
				"       [--timeout MS] [--ib-dev NAME] [--gid-index N] [--check-delay-ms N]\n"
				"       [--quiet-rounds N] [--pattern SPEC] [--psk-file PATH]\n");
		return 2;
	}
	cfg.role = argv[1];
	cfg.uri = argv[2];
	for (int i = 3; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--expect-fail")) {
			cfg.expect_fail = true;
			continue;
		}
		if (!v) {
			fprintf(stderr, "rmig-peer: %s needs a value\n", a);
			return 2;
		}
		i++;
		if (!strcmp(a, "--size"))
			cfg.size = parse_size(v);
		else if (!strcmp(a, "--rounds"))
			cfg.rounds = (unsigned int)atoi(v);
		else if (!strcmp(a, "--channels"))
			cfg.channels = (unsigned int)atoi(v);
		else if (!strcmp(a, "--seed"))
			cfg.seed = strtoull(v, NULL, 0);
		else if (!strcmp(a, "--dev-chunks"))
			cfg.dev_chunks = (unsigned int)atoi(v);
		else if (!strcmp(a, "--die-after-mib"))
			cfg.die_after = strtoull(v, NULL, 0) << 20;
		else if (!strcmp(a, "--quiet-rounds"))
			cfg.quiet = (unsigned int)atoi(v);
		else if (!strcmp(a, "--pattern"))
			pattern = v;
		else if (!strcmp(a, "--check-delay-ms"))
			cfg.check_delay_ms = (unsigned int)atoi(v);
		else if (!strcmp(a, "--timeout"))
			cfg.timeout_ms = atoi(v);
		else if (!strcmp(a, "--ib-dev"))
			cfg.ib_dev = v;
		else if (!strcmp(a, "--gid-index"))
			cfg.gid_index = atoi(v);
		else if (!strcmp(a, "--psk-file"))
			cfg.psk_file = v;
		else {
			fprintf(stderr, "rmig-peer: unknown option %s\n", a);
			return 2;
		}
	}
	if (!cfg.size || cfg.size % PAGE || !cfg.rounds || !cfg.channels || cfg.quiet >= cfg.rounds) {
		fprintf(stderr, "rmig-peer: size must be a non-zero multiple of 4 KiB; rounds and channels > 0\n");
		return 2;
	}
	if (parse_pattern(pattern))
		return 2;
	return !strcmp(cfg.role, "src") ? run_src() : run_dst();
}
