/* SPDX-License-Identifier: MIT */
/*
 * Every memory-ordering primitive rmig uses, on C11 atomics.
 *
 * Rules: no bare volatile, no __sync builtins, no implicit seq_cst. Each
 * acquire names the release it pairs with, and the other way round, in a
 * comment at the call site.
 */
#ifndef RMIG_CORE_BARRIER_H
#define RMIG_CORE_BARRIER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define RMIG_CACHELINE 64

/* Publish everything written before this store to whoever load-acquires it. */
#define rmig_store_release(p, v) atomic_store_explicit((p), (v), memory_order_release)

/* See everything the matching store-release published. */
#define rmig_load_acquire(p) atomic_load_explicit((p), memory_order_acquire)

/* A value read or written for its own sake: counters, hints, flags checked again later. */
#define rmig_load_relaxed(p) atomic_load_explicit((p), memory_order_relaxed)
#define rmig_store_relaxed(p, v) atomic_store_explicit((p), (v), memory_order_relaxed)
#define rmig_add_relaxed(p, v) atomic_fetch_add_explicit((p), (v), memory_order_relaxed)
/* Bit updates whose result is read only after a sync that orders them (file bitmaps). */
#define rmig_or_relaxed(p, v) atomic_fetch_or_explicit((p), (v), memory_order_relaxed)
#define rmig_and_relaxed(p, v) atomic_fetch_and_explicit((p), (v), memory_order_relaxed)

/* Set bits and publish what was written before (a page before its dirty bit). */
#define rmig_or_release(p, v) atomic_fetch_or_explicit((p), (v), memory_order_release)
/* Take a word of bits, seeing what their setters published with rmig_or_release(). */
#define rmig_xchg_acquire(p, v) atomic_exchange_explicit((p), (v), memory_order_acquire)

/*
 * Claim a slot: on success, acquire what the previous owner released when it
 * gave the slot back; on failure nothing is learnt, so relaxed.
 */
#define rmig_cas_acquire(p, expected, desired)                                                   \
	atomic_compare_exchange_strong_explicit((p), (expected), (desired), memory_order_acquire, \
						memory_order_relaxed)

static inline void rmig_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#endif
}

#endif /* RMIG_CORE_BARRIER_H */
