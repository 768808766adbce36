// SPDX-License-Identifier: MIT
/*
 * Memory, generated contents and hang guards for every test program (see
 * helpers.h). Plain C and pthreads only.
 */
#include <sys/time.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"

/* ---- memory ----------------------------------------------------------------- */

void *h_map_flags(size_t len, int flags)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | flags,
		       -1, 0);

	if (p == MAP_FAILED) {
		fprintf(stderr, "helpers: mmap of %zu bytes failed\n", len);
		abort();
	}
	return p;
}

void *h_map(size_t len)
{
	return h_map_flags(len, 0);
}

void h_unmap(void *p, size_t len)
{
	if (p)
		munmap(p, len);
}

/* ---- generated contents ------------------------------------------------------ */

#define H_GOLDEN 0x9e3779b97f4a7c15ull

uint64_t h_mix64(uint64_t x)
{
	x += H_GOLDEN;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

uint64_t h_rand(uint64_t *state)
{
	/* splitmix64: good enough spread, and any seed (even 0) works */
	uint64_t x = *state;

	*state += H_GOLDEN;
	return h_mix64(x);
}

uint64_t h_xorshift(uint64_t *state)
{
	uint64_t x = *state ? *state : H_GOLDEN;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*state = x;
	return x;
}

void h_fill_random(void *p, size_t len, uint64_t seed)
{
	uint64_t *w = p, st = seed;
	size_t n = len / 8;

	for (size_t i = 0; i < n; i++) {
		w[i] = h_rand(&st);
		/* one word in 512 being exactly 0 is fine; a whole page never is */
	}
	for (size_t i = n * 8; i < len; i++)
		((uint8_t *)p)[i] = (uint8_t)h_rand(&st);
}

void h_fill_byte(void *p, size_t len, uint8_t v)
{
	memset(p, v, len);
}

uint64_t h_hash(const void *p, size_t len)
{
	const uint64_t *w = p;
	uint64_t h = 0xcbf29ce484222325ull ^ len;

	for (size_t i = 0; i < len / 8; i++)
		h = (h ^ w[i]) * 0x100000001b3ull + (h >> 29);
	for (size_t i = len / 8 * 8; i < len; i++)
		h = (h ^ ((const uint8_t *)p)[i]) * 0x100000001b3ull;
	return h;
}

long h_first_diff(const void *a, const void *b, size_t len)
{
	const uint8_t *x = a, *y = b;
	size_t chunk = 1 << 16;

	for (size_t off = 0; off < len; off += chunk) {
		size_t n = len - off < chunk ? len - off : chunk;

		if (memcmp(x + off, y + off, n) == 0)
			continue;
		for (size_t i = off; i < off + n; i++)
			if (x[i] != y[i])
				return (long)i;
	}
	return -1;
}

/* ---- hang guards ------------------------------------------------------------- */

int h_guard_s(int seconds)
{
	const char *m = getenv("RMIG_TEST_TIMEOUT_MULT");
	int mult = m ? atoi(m) : 1;

	return seconds * (mult > 1 ? mult : 1);
}

void h_alarm(int seconds)
{
	alarm(seconds ? (unsigned int)h_guard_s(seconds) : 0);
}

int h_timedjoin(pthread_t t, int seconds)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += h_guard_s(seconds);
	return pthread_timedjoin_np(t, NULL, &ts) ? ETIMEDOUT : 0;
}

static pthread_mutex_t wd_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wd_cond;
static bool wd_started;
static struct timespec wd_deadline;
static char wd_what[128];
static bool wd_armed;

static void *wd_thread(void *arg)
{
	pthread_mutex_lock(&wd_lock);
	for (;;) {
		struct timespec now;

		if (!wd_armed) {
			pthread_cond_wait(&wd_cond, &wd_lock);
			continue;
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec > wd_deadline.tv_sec ||
		    (now.tv_sec == wd_deadline.tv_sec && now.tv_nsec >= wd_deadline.tv_nsec)) {
			fprintf(stderr, "watchdog: '%s' still running after its limit: hung\n",
				wd_what);
			fflush(stderr);
			abort();
		}
		pthread_cond_timedwait(&wd_cond, &wd_lock, &wd_deadline);
	}
	return NULL;
}

void h_watchdog_arm(int seconds, const char *what)
{
	pthread_mutex_lock(&wd_lock);
	if (!wd_started) {
		pthread_condattr_t ca;
		pthread_t t;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&wd_cond, &ca);
		pthread_condattr_destroy(&ca);
		if (pthread_create(&t, NULL, wd_thread, NULL) == 0) {
			pthread_detach(t);
			wd_started = true;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &wd_deadline);
	wd_deadline.tv_sec += h_guard_s(seconds);
	snprintf(wd_what, sizeof(wd_what), "%s", what);
	wd_armed = true;
	pthread_cond_broadcast(&wd_cond);
	pthread_mutex_unlock(&wd_lock);
}

void h_watchdog_disarm(void)
{
	pthread_mutex_lock(&wd_lock);
	wd_armed = false;
	pthread_cond_broadcast(&wd_cond);
	pthread_mutex_unlock(&wd_lock);
}

int h_raw_dial(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct timeval tv = { .tv_sec = 10 };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		close(fd);
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	return fd;
}
