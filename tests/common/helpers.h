/* SPDX-License-Identifier: MIT */
/*
 * Helpers every test program shares, whatever it links: page-aligned
 * memory, deterministic pseudo-random generators and fillers, a digest,
 * hang guards stretched for slow builds, and a watchdog.
 *
 * No cmocka and no rmig here, so plain programs (tests/peer/rmig-peer.c,
 * tests/rxe/test_rdma_rxe.c) link them too; the cmocka pieces are in
 * harness.h. Names carry the h_ prefix.
 */
#ifndef RMIG_TESTS_HELPERS_H
#define RMIG_TESTS_HELPERS_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

/* ---- memory ----------------------------------------------------------------- */

/* Page-aligned anonymous memory (zero-filled); aborts on failure. */
void *h_map(size_t len);
/* The same with extra mmap flags (e.g. MAP_POPULATE). */
void *h_map_flags(size_t len, int flags);
void h_unmap(void *p, size_t len);

/* ---- generated contents ------------------------------------------------------ */

/* The splitmix64 output function of @x: a fixed mix, for content that is a
 * pure function of (page, version, seed). */
uint64_t h_mix64(uint64_t x);
/* splitmix64 step: any seed (even 0) works. */
uint64_t h_rand(uint64_t *state);
/* xorshift64 (13, 7, 17) step, for cheap jitter; a zero state is replaced. */
uint64_t h_xorshift(uint64_t *state);
/* Deterministic pseudo-random bytes; pages are never all zero unless len < 8. */
void h_fill_random(void *p, size_t len, uint64_t seed);
void h_fill_byte(void *p, size_t len, uint8_t v);
/* A 64-bit digest of @len bytes. */
uint64_t h_hash(const void *p, size_t len);
/* First differing byte, or -1. */
long h_first_diff(const void *a, const void *b, size_t len);

/* ---- hang guards --------------------------------------------------------------- */

/*
 * Hang guards (never timing assertions) are stretched by the integer in
 * RMIG_TEST_TIMEOUT_MULT, as meson's own test timeouts are for slow
 * sanitizer builds. Returns @seconds times it.
 */
int h_guard_s(int seconds);
/* SIGALRM (which kills the test) after h_guard_s(@seconds); 0 disarms. */
void h_alarm(int seconds);
/* Join @t within h_guard_s(@seconds): 0, or ETIMEDOUT (hung). */
int h_timedjoin(pthread_t t, int seconds);
/* Abort the whole program with @what if not disarmed within h_guard_s(@seconds). */
void h_watchdog_arm(int seconds, const char *what);
void h_watchdog_disarm(void);

/*
 * h_raw_dial() - a plain TCP connection to 127.0.0.1:@port, as a raw (hostile
 * or hand-written) client would open it, with a 10 s send timeout so a peer
 * that stops reading cannot hang the test. Returns the fd, or -1 if the
 * connect failed (a destination that gave up has closed its listener).
 */
int h_raw_dial(int port);

#endif
