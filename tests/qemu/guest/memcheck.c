// SPDX-License-Identifier: MIT
/*
 * memcheck: /init of the QEMU test guest (tests/qemu/README.md).
 *
 * Linked statically and run as PID 1 from an initramfs. It maps a region of
 * guest RAM and keeps rewriting it with contents it can check, so that a
 * page lost or left stale by a migration shows up on the serial console:
 *
 *   every page:  { index, generation, checksum, magic } then 508 words
 *                derived from (index, generation) alone;
 *   gen[]:       the generation each page must carry, itself in guest RAM.
 *
 * A pass rewrites every page (generation + 1) and then verifies every page
 * against gen[]: header, fill and checksum. It prints one line per pass
 * ("memcheck: pass N ok ...") and, more often, "memcheck: tick" lines so the
 * host can see the guest make progress. On any mismatch it prints a FAIL
 * line naming the page and stops (sleeps forever; PID 1 must not exit).
 *
 * Settings come from the kernel command line, which hands unknown
 * NAME=VALUE words to init as environment variables:
 *   mc_mb=N      size of the region in MiB (default 256)
 *   mc_ticks=N   tick lines per phase (default 8, 0 for none)
 *
 * Self-test (run as an ordinary process on the host, where a FAIL exits 1
 * instead of stopping, tests/qemu/qemu-test.py selftest):
 *   mc_passes=N  exit 0 after N passes
 *   mc_stale=N   in pass N, put back one page's previous contents after the
 *                write phase, as a migration that lost the last write would
 *   mc_flip=N    in pass N, flip one bit of one page's fill
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define MC_PAGE 4096u
#define MC_WORDS (MC_PAGE / sizeof(uint64_t))
#define MC_HDR 4u
#define MC_MAGIC 0x6d656d636865636bULL /* "memcheck" */

struct mc_page {
	uint64_t index;
	uint64_t gen;
	uint64_t csum;
	uint64_t magic;
	uint64_t fill[MC_WORDS - MC_HDR];
};

_Static_assert(sizeof(struct mc_page) == MC_PAGE, "one page per struct");

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 31;
	x *= 0x7fb5d329728ea185ULL;
	x ^= x >> 27;
	x *= 0x81dadef4bc2dd44dULL;
	x ^= x >> 33;
	return x;
}

static uint64_t fill_seed(uint64_t index, uint64_t gen)
{
	return mix64(index * 0x9e3779b97f4a7c15ULL + gen);
}

/* Word k of a page: cheap under TCG, yet different for every (index, gen, k). */
static uint64_t fill_word(uint64_t seed, uint64_t k)
{
	return seed ^ (k * 0xd6e8feb86659fd93ULL);
}

static uint64_t csum_step(uint64_t c, uint64_t w)
{
	return ((c << 7) | (c >> 57)) ^ w;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static unsigned long env_ulong(const char *name, unsigned long def)
{
	const char *s = getenv(name);
	char *end;
	unsigned long v;

	if (!s || !*s)
		return def;
	errno = 0;
	v = strtoul(s, &end, 0);
	if (errno || *end)
		return def;
	return v;
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void say(const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(buf) - 2)
		n = sizeof(buf) - 2;
	buf[n++] = '\n';
	/* Unbuffered on purpose: the host reads the console while we run. */
	if (write(STDOUT_FILENO, buf, (size_t)n) < 0)
		return;
}

static void __attribute__((noreturn)) halt(void)
{
	/* PID 1 must not exit (the kernel would panic); a host self-test must. */
	if (getpid() != 1)
		exit(1);
	for (;;)
		pause();
}

static void write_page(struct mc_page *p, uint64_t index, uint64_t gen)
{
	uint64_t seed = fill_seed(index, gen), c = 0, w;
	size_t k;

	for (k = 0; k < MC_WORDS - MC_HDR; k++) {
		w = fill_word(seed, k);
		p->fill[k] = w;
		c = csum_step(c, w);
	}
	p->index = index;
	p->gen = gen;
	p->csum = c;
	p->magic = MC_MAGIC;
}

/* Returns 0 if page @index holds generation @gen intact, else prints FAIL. */
static int check_page(const struct mc_page *p, uint64_t index, uint64_t gen, unsigned long pass)
{
	uint64_t seed = fill_seed(index, gen), c = 0, w;
	size_t k;

	if (p->magic != MC_MAGIC || p->index != index || p->gen != gen) {
		say("memcheck: FAIL pass %lu page %llu: header magic=%#llx index=%llu gen=%llu, "
		    "expected index=%llu gen=%llu",
		    pass, (unsigned long long)index, (unsigned long long)p->magic,
		    (unsigned long long)p->index, (unsigned long long)p->gen,
		    (unsigned long long)index, (unsigned long long)gen);
		return -1;
	}
	for (k = 0; k < MC_WORDS - MC_HDR; k++) {
		w = p->fill[k];
		if (w != fill_word(seed, k)) {
			say("memcheck: FAIL pass %lu page %llu gen %llu: word %zu is %#llx, expected %#llx",
			    pass, (unsigned long long)index, (unsigned long long)gen, k,
			    (unsigned long long)w, (unsigned long long)fill_word(seed, k));
			return -1;
		}
		c = csum_step(c, w);
	}
	if (c != p->csum) {
		say("memcheck: FAIL pass %lu page %llu gen %llu: checksum %#llx, expected %#llx",
		    pass, (unsigned long long)index, (unsigned long long)gen,
		    (unsigned long long)p->csum, (unsigned long long)c);
		return -1;
	}
	return 0;
}

int main(void)
{
	unsigned long mb = env_ulong("mc_mb", 256), ticks = env_ulong("mc_ticks", 8);
	unsigned long max_passes = env_ulong("mc_passes", 0);
	unsigned long stale = env_ulong("mc_stale", 0), flip = env_ulong("mc_flip", 0);
	unsigned long pass, tick_every;
	static struct mc_page saved;
	size_t npages, i;
	struct mc_page *pages;
	uint32_t *gen;
	uint64_t t0, t1, t2, boot = now_ms();

	if (mb == 0)
		mb = 1;
	npages = (size_t)mb * (1024 * 1024 / MC_PAGE);
	tick_every = ticks ? (npages + ticks - 1) / ticks : 0;
	pages = mmap(NULL, npages * MC_PAGE, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	gen = mmap(NULL, npages * sizeof(*gen), PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (pages == MAP_FAILED || gen == MAP_FAILED) {
		say("memcheck: FAIL cannot map %lu MiB: %s", mb, strerror(errno));
		halt();
	}
	memset(gen, 0, npages * sizeof(*gen));
	say("memcheck: start pages=%zu mb=%lu ticks=%lu", npages, mb, ticks);

	for (pass = 1;; pass++) {
		t0 = now_ms();
		for (i = 0; i < npages; i++) {
			if (pass == stale && i == npages / 2)
				saved = pages[i];
			gen[i]++;
			write_page(&pages[i], i, gen[i]);
			if (tick_every && (i + 1) % tick_every == 0)
				say("memcheck: tick pass %lu write %zu/%zu", pass, i + 1, npages);
		}
		if (pass == stale)
			pages[npages / 2] = saved;
		if (pass == flip)
			pages[npages / 3].fill[17] ^= 1ULL << 40;
		t1 = now_ms();
		for (i = 0; i < npages; i++) {
			if (check_page(&pages[i], i, gen[i], pass))
				halt();
			if (tick_every && (i + 1) % tick_every == 0)
				say("memcheck: tick pass %lu verify %zu/%zu", pass, i + 1, npages);
		}
		t2 = now_ms();
		say("memcheck: pass %lu ok pages=%zu gen=%u write_ms=%llu verify_ms=%llu uptime_ms=%llu",
		    pass, npages, gen[0], (unsigned long long)(t1 - t0),
		    (unsigned long long)(t2 - t1), (unsigned long long)(t2 - boot));
		if (pass == max_passes)
			return 0;
	}
}
