/* SPDX-License-Identifier: MIT */
/* Small helpers shared by core and transports: error text, time, sizes. */
#ifndef RMIG_CORE_UTIL_H
#define RMIG_CORE_UTIL_H

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define RMIG_ERRMSG_MAX 512

#define RMIG_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define rmig_container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#ifndef likely
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#endif

/*
 * The first failure of a handle, in words. Later failures are usually
 * consequences of the first (a cancelled channel, a reset socket), so only
 * the first one is kept. Safe from any thread.
 */
struct rmig_err {
	pthread_mutex_t lock;
	int code; /* negative errno of the first failure, 0 if none */
	char msg[RMIG_ERRMSG_MAX];
};

void rmig_err_init(struct rmig_err *e);
void rmig_err_destroy(struct rmig_err *e);
/* Record @code with a message unless a failure is already recorded; returns the recorded code. */
int rmig_err_set(struct rmig_err *e, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int rmig_err_vset(struct rmig_err *e, int code, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));
/*
 * Replace the text of the recorded failure (the code stays): when the
 * failure seen first turns out to be a consequence of the peer's, whose
 * reason arrived later.
 */
void rmig_err_reword(struct rmig_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/*
 * A failure that only says the other side went away (closed, reset): its
 * peer's own reason, if one arrives, names the cause better.
 */
static inline bool rmig_err_peer_gone(int code)
{
	return code == -ECONNRESET || code == -EPIPE || code == -ECONNABORTED || code == -ENOTCONN;
}
int rmig_err_code(struct rmig_err *e);
/* Copy of the message into @buf. */
void rmig_err_msg(struct rmig_err *e, char *buf, size_t len);

/*
 * A transport's own one-line message for its last failure; core prefixes it
 * with the context ("channel 2: ") when it records it in the handle.
 * Not thread safe: each conn/xport is used by one thread at a time.
 */
struct rmig_msgbuf {
	char msg[RMIG_ERRMSG_MAX];
};

/* Format into @mb and return @code, so transports can write `return rmig_msg(mb, -EIO, ...)`. */
int rmig_msg(struct rmig_msgbuf *mb, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static inline uint64_t rmig_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline int rmig_is_pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

/* Parse "HOST:PORT" (HOST may be [v6]); host and port are written NUL-terminated. */
int rmig_split_hostport(const char *addr, char *host, size_t hostlen, char *port, size_t portlen);

#endif /* RMIG_CORE_UTIL_H */
