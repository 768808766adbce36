// SPDX-License-Identifier: MIT
/*
 * Unit tests of the slot-swap scheduler (core/sched.c): payload hand-off
 * under contention, sync fences behind earlier payloads, and abort.
 *
 * Channel and producer threads cannot use cmocka's asserts (they longjmp on
 * the main thread's stack), so they note violations in a log that the test
 * thread asserts empty.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "helpers.h"

#include "core/sched.h"

#define PPP 8		/* pages per packet of every payload in these tests */
#define MARK_CAP 128	/* bytes of dev.data: the owner marker, then test bytes */
#define HANG_GUARD_S 60 /* a thread that has not returned by then is stuck */

/* ---- shared helpers ------------------------------------------------------ */

struct fail_log {
	_Atomic unsigned int count;
	pthread_mutex_t lock;
	char first[256];
};

static void fail_init(struct fail_log *f)
{
	atomic_init(&f->count, 0);
	pthread_mutex_init(&f->lock, NULL);
	f->first[0] = '\0';
}

__attribute__((format(printf, 2, 3))) static void fail_note(struct fail_log *f, const char *fmt,
							      ...)
{
	va_list ap;

	if (atomic_fetch_add_explicit(&f->count, 1, memory_order_relaxed) == 0) {
		pthread_mutex_lock(&f->lock);
		va_start(ap, fmt);
		vsnprintf(f->first, sizeof(f->first), fmt, ap);
		va_end(ap);
		pthread_mutex_unlock(&f->lock);
	}
}

static void fail_check(struct fail_log *f)
{
	unsigned int n = atomic_load_explicit(&f->count, memory_order_relaxed);

	pthread_mutex_lock(&f->lock);
	if (n)
		fail_msg("%u violation(s); first: %s", n, f->first);
	pthread_mutex_unlock(&f->lock);
	pthread_mutex_destroy(&f->lock);
}

/* Vary the channel threads' timing: yield often, sleep now and then. */
static void jitter(uint64_t *rng)
{
	uint64_t r = h_xorshift(rng);

	if ((r & 7) == 0)
		sched_yield();
	else if ((r & 255) == 1)
		nanosleep(&(struct timespec){ .tv_nsec = 20000 }, NULL);
}

static void join_or_fail(pthread_t t, const char *what)
{
	/* HANG_GUARD_S, stretched for slow (sanitizer) builds as meson's timeouts are */
	if (h_timedjoin(t, HANG_GUARD_S))
		fail_msg("%s did not return within %d s (hung)", what, h_guard_s(HANG_GUARD_S));
}

/*
 * Each payload carries an owner marker at the start of dev.data (which the
 * scheduler never touches and rmig_payload_reset() keeps), so the test can
 * see two parties holding one payload at once.
 */
struct marker {
	_Atomic uint32_t owner;
};

enum { OWNER_FREE = 0 };
#define OWNER_PRODUCER(i) (0x1000u + (i))
#define OWNER_HANDED(i) (0x2000u + (i))
#define OWNER_CHANNEL(c) (0x3000u + (c))

static struct marker *marker_of(struct rmig_payload *p)
{
	if (!p->dev.data) {
		p->dev.data = calloc(1, MARK_CAP);
		p->dev.cap = MARK_CAP;
		atomic_init(&((struct marker *)p->dev.data)->owner, OWNER_FREE);
	}
	return (struct marker *)p->dev.data;
}

static bool slot_is_empty(const struct rmig_payload *p)
{
	return rmig_payload_empty(p) && p->ram.num == 0 && p->ram.normal == 0 && p->ram.zero == 0 &&
	       p->dev.len == 0;
}

/* Fill @p for @tag of @producer: RAM batches mostly, device chunks sometimes. */
static void payload_fill(struct rmig_payload *p, unsigned int producer, uint64_t tag)
{
	uint8_t *bytes = p->dev.data + sizeof(struct marker);

	p->tag = tag;
	if (tag % 3 == 0) {
		p->type = RMIG_PAYLOAD_DEV;
		snprintf(p->dev.idstr, sizeof(p->dev.idstr), "producer-%u", producer);
		p->dev.instance = producer;
		p->dev.seq = tag;
		p->dev.len = 1 + tag % (MARK_CAP - sizeof(struct marker) - 1);
		for (size_t j = 0; j < p->dev.len; j++)
			bytes[j] = (uint8_t)(tag * 31 + j);
	} else {
		p->type = RMIG_PAYLOAD_RAM;
		p->ram.block = producer;
		p->ram.num = 1 + (uint32_t)(tag % PPP);
		for (uint32_t j = 0; j < p->ram.num; j++)
			p->ram.offsets[j] = tag * 4096 * PPP + j * 4096ull;
	}
}

/* Does @p still hold exactly what payload_fill() put there for @tag? */
static bool payload_intact(struct rmig_payload *p, unsigned int producer, uint64_t tag)
{
	const uint8_t *bytes = p->dev.data + sizeof(struct marker);
	char id[32];

	if (p->tag != tag)
		return false;
	if (tag % 3 == 0) {
		snprintf(id, sizeof(id), "producer-%u", producer);
		if (p->type != RMIG_PAYLOAD_DEV || strcmp(p->dev.idstr, id) ||
		    p->dev.instance != producer || p->dev.seq != tag ||
		    p->dev.len != 1 + tag % (MARK_CAP - sizeof(struct marker) - 1))
			return false;
		for (size_t j = 0; j < p->dev.len; j++)
			if (bytes[j] != (uint8_t)(tag * 31 + j))
				return false;
		return true;
	}
	if (p->type != RMIG_PAYLOAD_RAM || p->ram.block != producer ||
	    p->ram.num != 1 + (uint32_t)(tag % PPP))
		return false;
	for (uint32_t j = 0; j < p->ram.num; j++)
		if (p->ram.offsets[j] != tag * 4096 * PPP + j * 4096ull)
			return false;
	return true;
}

static unsigned int producer_of_payload(const struct rmig_payload *p)
{
	return p->type == RMIG_PAYLOAD_DEV ? p->dev.instance : p->ram.block;
}

static int sync_cb_unused(void *ctx, unsigned int ch, unsigned int kind, uint64_t round)
{
	return 0;
}

/* ---- contention: several producers, exactly-once delivery ---------------- */

#define NPROD 4
#define PER_PROD 4000

struct cont_ctx {
	struct rmig_sched *s;
	unsigned int nchan;
	struct fail_log log;
	_Atomic uint32_t delivered[NPROD * PER_PROD];
	_Atomic uint32_t busy[RMIG_MAX_CHANNELS];
	_Atomic uint32_t syncs[RMIG_MAX_CHANNELS];
	_Atomic uint64_t transmits;
};

struct producer_arg {
	struct cont_ctx *c;
	unsigned int id;
};

static int cont_transmit(void *ctx, unsigned int ch, struct rmig_payload *p)
{
	static _Thread_local uint64_t rng;
	struct cont_ctx *c = ctx;
	unsigned int producer = producer_of_payload(p);
	uint64_t tag = p->tag;
	uint32_t prev;

	if (!rng)
		rng = 0x1234567ull + ch;
	if (ch >= c->nchan)
		fail_note(&c->log, "transmit called for channel %u of %u", ch, c->nchan);
	if (atomic_exchange_explicit(&c->busy[ch], 1, memory_order_acq_rel))
		fail_note(&c->log, "channel %u transmits twice at once", ch);
	if (producer >= NPROD || tag >= NPROD * PER_PROD || !payload_intact(p, producer, tag)) {
		fail_note(&c->log, "channel %u got a damaged payload (tag %llu, type %d)", ch,
			  (unsigned long long)tag, p->type);
		goto out;
	}
	prev = atomic_exchange_explicit(&marker_of(p)->owner, OWNER_CHANNEL(ch),
					memory_order_acq_rel);
	if (prev != OWNER_HANDED(producer))
		fail_note(&c->log, "tag %llu reached channel %u while owned by 0x%x",
			  (unsigned long long)tag, ch, prev);
	jitter(&rng);
	/* Still ours after the pause: nobody wrote into it meanwhile. */
	if (!payload_intact(p, producer, tag))
		fail_note(&c->log, "tag %llu changed while channel %u held it",
			  (unsigned long long)tag, ch);
	if (atomic_fetch_add_explicit(&c->delivered[tag], 1, memory_order_relaxed))
		fail_note(&c->log, "tag %llu delivered twice", (unsigned long long)tag);
	atomic_fetch_add_explicit(&c->transmits, 1, memory_order_relaxed);
	atomic_store_explicit(&marker_of(p)->owner, OWNER_FREE, memory_order_release);
out:
	atomic_store_explicit(&c->busy[ch], 0, memory_order_release);
	return 0;
}

static int cont_sync(void *ctx, unsigned int ch, unsigned int kind, uint64_t round)
{
	struct cont_ctx *c = ctx;

	if (kind != RMIG_SCHED_SYNC_LOCAL || round != 7)
		fail_note(&c->log, "sync kind %u round %llu, expected LOCAL round 7", kind,
			  (unsigned long long)round);
	atomic_fetch_add_explicit(&c->syncs[ch], 1, memory_order_relaxed);
	return 0;
}

static void *producer_main(void *arg)
{
	struct producer_arg *a = arg;
	struct cont_ctx *c = a->c;
	struct rmig_payload *slot = rmig_payload_alloc(PPP), *old;
	uint32_t prev;
	int ret;

	if (!slot) {
		fail_note(&c->log, "producer %u: no memory", a->id);
		return NULL;
	}
	for (unsigned int k = 0; k < PER_PROD; k++) {
		uint64_t tag = (uint64_t)a->id * PER_PROD + k;

		if (!slot_is_empty(slot))
			fail_note(&c->log, "producer %u got a non-empty slot back (type %d, num %u)",
				  a->id, slot->type, slot->ram.num);
		prev = atomic_exchange_explicit(&marker_of(slot)->owner, OWNER_PRODUCER(a->id),
						memory_order_acq_rel);
		if (prev != OWNER_FREE)
			fail_note(&c->log, "producer %u got a slot still owned by 0x%x", a->id, prev);
		payload_fill(slot, a->id, tag);
		atomic_store_explicit(&marker_of(slot)->owner, OWNER_HANDED(a->id),
				      memory_order_release);
		old = slot;
		ret = rmig_sched_send(c->s, &slot);
		if (ret) {
			fail_note(&c->log, "producer %u: send returned %d", a->id, ret);
			break;
		}
		if (slot == old)
			fail_note(&c->log, "producer %u got its full slot back", a->id);
	}
	rmig_payload_free(slot);
	return NULL;
}

static void test_contention(void **state)
{
	static const struct rmig_sched_cb cb = { .transmit = cont_transmit, .sync = cont_sync };
	unsigned int nchan = *(unsigned int *)*state;
	struct producer_arg args[NPROD];
	pthread_t threads[NPROD];
	struct cont_ctx *c = calloc(1, sizeof(*c));

	assert_non_null(c);
	fail_init(&c->log);
	c->nchan = nchan;
	assert_int_equal(rmig_sched_create(nchan, PPP, &cb, c, &c->s), 0);
	for (unsigned int i = 0; i < NPROD; i++) {
		args[i] = (struct producer_arg){ .c = c, .id = i };
		assert_int_equal(pthread_create(&threads[i], NULL, producer_main, &args[i]), 0);
	}
	for (unsigned int i = 0; i < NPROD; i++)
		join_or_fail(threads[i], "a producer");
	/* Everything handed over has been transmitted once sync returns. */
	assert_int_equal(rmig_sched_sync(c->s, RMIG_SCHED_SYNC_LOCAL, 7), 0);
	assert_int_equal(rmig_sched_error(c->s), 0);
	fail_check(&c->log);
	assert_int_equal(atomic_load(&c->transmits), NPROD * PER_PROD);
	for (unsigned int t = 0; t < NPROD * PER_PROD; t++)
		if (atomic_load(&c->delivered[t]) != 1)
			fail_msg("tag %u delivered %u times", t, atomic_load(&c->delivered[t]));
	for (unsigned int ch = 0; ch < nchan; ch++)
		assert_int_equal(atomic_load(&c->syncs[ch]), 1);
	rmig_sched_destroy(c->s);
	free(c);
}

/* ---- sync: a fence runs after every payload handed over before it -------- */

#define ROUNDS 20
#define MAIN_PER_ROUND 40
#define BG_PROD 2
#define BG_CAP 20000
#define MAIN_TAGS (ROUNDS * MAIN_PER_ROUND)
#define ALL_TAGS (MAIN_TAGS + BG_PROD * BG_CAP)

struct sync_ctx {
	struct rmig_sched *s;
	unsigned int nchan;
	struct fail_log log;
	_Atomic uint64_t clock; /* one global order of events */
	uint64_t tx_at[ALL_TAGS];
	uint64_t ret_at[ALL_TAGS];
	uint32_t tx_count[ALL_TAGS];
	uint8_t tx_ch[ALL_TAGS];
	unsigned int bg_sent[BG_PROD];
	uint64_t sync_at[ROUNDS + 1][RMIG_MAX_CHANNELS];
	uint32_t sync_calls[ROUNDS + 1][RMIG_MAX_CHANNELS];
	uint64_t call_at[ROUNDS + 1], done_at[ROUNDS + 1];
	_Atomic bool stop;
};

static uint64_t tick(struct sync_ctx *c)
{
	/* acq_rel: the clock also orders what each thread recorded around it */
	return atomic_fetch_add_explicit(&c->clock, 1, memory_order_acq_rel);
}

static int sync_transmit(void *ctx, unsigned int ch, struct rmig_payload *p)
{
	static _Thread_local uint64_t rng;
	struct sync_ctx *c = ctx;

	if (!rng)
		rng = 0xabcdefull + ch;
	jitter(&rng);
	if (p->tag >= ALL_TAGS) {
		fail_note(&c->log, "unknown tag %llu", (unsigned long long)p->tag);
		return 0;
	}
	c->tx_at[p->tag] = tick(c);
	c->tx_ch[p->tag] = (uint8_t)ch;
	c->tx_count[p->tag]++;
	return 0;
}

static int sync_sync(void *ctx, unsigned int ch, unsigned int kind, uint64_t round)
{
	struct sync_ctx *c = ctx;

	if (kind == RMIG_SCHED_SYNC_LOCAL)
		return 0;
	if (kind != RMIG_SCHED_SYNC_FENCE || round == 0 || round > ROUNDS) {
		fail_note(&c->log, "sync kind %u round %llu", kind, (unsigned long long)round);
		return 0;
	}
	c->sync_at[round][ch] = tick(c);
	c->sync_calls[round][ch]++;
	return 0;
}

struct bg_arg {
	struct sync_ctx *c;
	unsigned int id;
};

static void *bg_producer(void *arg)
{
	struct bg_arg *a = arg;
	struct sync_ctx *c = a->c;
	struct rmig_payload *slot = rmig_payload_alloc(PPP);
	unsigned int k;

	for (k = 0; slot && k < BG_CAP && !atomic_load_explicit(&c->stop, memory_order_relaxed);
	     k++) {
		uint64_t tag = MAIN_TAGS + (uint64_t)a->id * BG_CAP + k;

		slot->type = RMIG_PAYLOAD_RAM;
		slot->tag = tag;
		slot->ram.num = 1;
		if (rmig_sched_send(c->s, &slot)) {
			fail_note(&c->log, "background producer %u: send failed", a->id);
			break;
		}
		c->ret_at[tag] = tick(c);
	}
	c->bg_sent[a->id] = k;
	rmig_payload_free(slot);
	return NULL;
}

static void test_sync_order(void **state)
{
	static const struct rmig_sched_cb cb = { .transmit = sync_transmit, .sync = sync_sync };
	unsigned int nchan = *(unsigned int *)*state;
	struct sync_ctx *c = calloc(1, sizeof(*c));
	struct bg_arg args[BG_PROD];
	pthread_t bg[BG_PROD];
	struct rmig_payload *slot = rmig_payload_alloc(PPP);

	assert_non_null(c);
	assert_non_null(slot);
	fail_init(&c->log);
	c->nchan = nchan;
	assert_int_equal(rmig_sched_create(nchan, PPP, &cb, c, &c->s), 0);
	for (unsigned int i = 0; i < BG_PROD; i++) {
		args[i] = (struct bg_arg){ .c = c, .id = i };
		assert_int_equal(pthread_create(&bg[i], NULL, bg_producer, &args[i]), 0);
	}
	for (unsigned int r = 1; r <= ROUNDS; r++) {
		for (unsigned int k = 0; k < MAIN_PER_ROUND; k++) {
			uint64_t tag = (uint64_t)(r - 1) * MAIN_PER_ROUND + k;

			assert_true(slot_is_empty(slot));
			slot->type = RMIG_PAYLOAD_RAM;
			slot->tag = tag;
			slot->ram.num = 1;
			assert_int_equal(rmig_sched_send(c->s, &slot), 0);
			c->ret_at[tag] = tick(c);
		}
		c->call_at[r] = tick(c);
		assert_int_equal(rmig_sched_sync(c->s, RMIG_SCHED_SYNC_FENCE, r), 0);
		c->done_at[r] = tick(c);
	}
	atomic_store_explicit(&c->stop, true, memory_order_relaxed);
	for (unsigned int i = 0; i < BG_PROD; i++)
		join_or_fail(bg[i], "a background producer");
	assert_int_equal(rmig_sched_sync(c->s, RMIG_SCHED_SYNC_LOCAL, ROUNDS), 0);
	fail_check(&c->log);

	/*
	 * Each channel's sync point runs behind everything that channel was
	 * handed before the sync call (the contract in sched.h: its fence
	 * follows its own data), and every such payload is out before
	 * rmig_sched_sync() returns.
	 */
	for (unsigned int r = 1; r <= ROUNDS; r++) {
		for (unsigned int ch = 0; ch < nchan; ch++) {
			uint64_t at = c->sync_at[r][ch];

			assert_int_equal(c->sync_calls[r][ch], 1);
			assert_true(at > c->call_at[r] && at < c->done_at[r]);
		}
		for (uint64_t t = 0; t < ALL_TAGS; t++) {
			bool sent = t < MAIN_TAGS ||
				    (t - MAIN_TAGS) % BG_CAP < c->bg_sent[(t - MAIN_TAGS) / BG_CAP];
			unsigned int ch = c->tx_ch[t];

			if (!sent || c->ret_at[t] > c->call_at[r])
				continue;
			if (c->tx_at[t] > c->sync_at[r][ch])
				fail_msg("round %u: channel %u synced at %llu before its tag %llu (handed over at %llu) was sent at %llu",
					 r, ch, (unsigned long long)c->sync_at[r][ch],
					 (unsigned long long)t, (unsigned long long)c->ret_at[t],
					 (unsigned long long)c->tx_at[t]);
			if (c->tx_at[t] > c->done_at[r])
				fail_msg("round %u: sync returned before tag %llu was sent", r,
					 (unsigned long long)t);
		}
		/* The main producer's next round goes out after this sync returned. */
		if (r < ROUNDS)
			assert_true(c->tx_at[r * MAIN_PER_ROUND] > c->done_at[r]);
	}
	for (uint64_t t = 0; t < ALL_TAGS; t++) {
		bool sent = t < MAIN_TAGS ||
			    (t - MAIN_TAGS) % BG_CAP < c->bg_sent[(t - MAIN_TAGS) / BG_CAP];

		assert_int_equal(c->tx_count[t], sent ? 1 : 0);
	}
	rmig_payload_free(slot);
	rmig_sched_destroy(c->s);
	free(c);
}

/* ---- abort ---------------------------------------------------------------- */

#define TAG_BLOCK 1000
#define TAG_FAIL 1001
#define NWAITERS 3

struct abort_ctx {
	struct rmig_sched *s;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool gate_open;
	int fail_code;			/* what TAG_FAIL's transmit returns (0: not used) */
	_Atomic unsigned int entered;	/* waiters about to call send */
	_Atomic unsigned int transmits; /* of ordinary tags */
	_Atomic unsigned int syncs;
	int sync_fail_round;
	int sync_fail_code;
};

static void gate_wait(struct abort_ctx *a)
{
	pthread_mutex_lock(&a->lock);
	while (!a->gate_open)
		pthread_cond_wait(&a->cond, &a->lock);
	pthread_mutex_unlock(&a->lock);
}

static void gate_open(struct abort_ctx *a)
{
	pthread_mutex_lock(&a->lock);
	a->gate_open = true;
	pthread_cond_broadcast(&a->cond);
	pthread_mutex_unlock(&a->lock);
}

static int abort_transmit(void *ctx, unsigned int ch, struct rmig_payload *p)
{
	struct abort_ctx *a = ctx;

	if (p->tag == TAG_BLOCK) {
		gate_wait(a);
		return 0;
	}
	if (p->tag == TAG_FAIL) {
		/*
		 * Fail once the waiters are (very likely) blocked for a channel.
		 * If one is not blocked yet it must see the error on entry; the
		 * outcome the test checks is the same either way.
		 */
		for (int i = 0; i < h_guard_s(HANG_GUARD_S) * 1000 &&
				atomic_load_explicit(&a->entered, memory_order_acquire) < NWAITERS;
		     i++)
			usleep(1000);
		usleep(30000);
		return a->fail_code;
	}
	atomic_fetch_add_explicit(&a->transmits, 1, memory_order_relaxed);
	return 0;
}

static int abort_sync(void *ctx, unsigned int ch, unsigned int kind, uint64_t round)
{
	struct abort_ctx *a = ctx;

	atomic_fetch_add_explicit(&a->syncs, 1, memory_order_relaxed);
	if (a->sync_fail_code && (int)round == a->sync_fail_round && ch == 1)
		return a->sync_fail_code;
	return 0;
}

static const struct rmig_sched_cb abort_cb = { .transmit = abort_transmit, .sync = abort_sync };

struct waiter {
	struct abort_ctx *a;
	struct rmig_payload *slot, *orig;
	uint64_t tag;
	int ret;
};

static void *waiter_main(void *arg)
{
	struct waiter *w = arg;

	w->slot->type = RMIG_PAYLOAD_RAM;
	w->slot->tag = w->tag;
	w->slot->ram.num = 1;
	atomic_fetch_add_explicit(&w->a->entered, 1, memory_order_release);
	w->ret = rmig_sched_send(w->a->s, &w->slot);
	return NULL;
}

static struct abort_ctx *abort_ctx_new(void)
{
	struct abort_ctx *a = calloc(1, sizeof(*a));

	assert_non_null(a);
	pthread_mutex_init(&a->lock, NULL);
	pthread_cond_init(&a->cond, NULL);
	return a;
}

static void abort_ctx_free(struct abort_ctx *a)
{
	pthread_cond_destroy(&a->cond);
	pthread_mutex_destroy(&a->lock);
	free(a);
}

/* Start NWAITERS producers that will find every channel busy. */
static void waiters_start(struct abort_ctx *a, struct waiter *w, pthread_t *t)
{
	for (unsigned int i = 0; i < NWAITERS; i++) {
		w[i] = (struct waiter){ .a = a, .slot = rmig_payload_alloc(PPP), .tag = 2000 + i };
		assert_non_null(w[i].slot);
		w[i].orig = w[i].slot;
		assert_int_equal(pthread_create(&t[i], NULL, waiter_main, &w[i]), 0);
	}
}

/* Every waiter returned @code with its own full slot still in hand. */
static void waiters_check(struct waiter *w, pthread_t *t, int code)
{
	for (unsigned int i = 0; i < NWAITERS; i++)
		join_or_fail(t[i], "a producer blocked waiting for a channel");
	for (unsigned int i = 0; i < NWAITERS; i++) {
		assert_int_equal(w[i].ret, code);
		assert_ptr_equal(w[i].slot, w[i].orig);
		assert_int_equal(w[i].slot->type, RMIG_PAYLOAD_RAM);
		assert_int_equal(w[i].slot->tag, w[i].tag);
		rmig_payload_free(w[i].slot);
	}
}

static void send_tag(struct rmig_sched *s, struct rmig_payload **slot, uint64_t tag, int expect)
{
	struct rmig_payload *before = *slot;

	(*slot)->type = RMIG_PAYLOAD_RAM;
	(*slot)->tag = tag;
	(*slot)->ram.num = 1;
	assert_int_equal(rmig_sched_send(s, slot), expect);
	if (expect)
		assert_ptr_equal(*slot, before); /* unchanged after an error */
}

/* A transmit error stops the scheduler and wakes producers waiting for a channel. */
static void test_abort_transmit_error(void **state)
{
	struct abort_ctx *a = abort_ctx_new();
	struct rmig_payload *slot = rmig_payload_alloc(PPP);
	struct waiter w[NWAITERS];
	pthread_t t[NWAITERS];

	a->fail_code = -EIO;
	assert_non_null(slot);
	assert_int_equal(rmig_sched_create(2, PPP, &abort_cb, a, &a->s), 0);
	send_tag(a->s, &slot, TAG_BLOCK, 0); /* channel A: stuck until the gate opens */
	send_tag(a->s, &slot, TAG_FAIL, 0);  /* channel B: fails once waiters wait */
	waiters_start(a, w, t);
	waiters_check(w, t, -EIO);
	assert_int_equal(rmig_sched_error(a->s), -EIO);

	/* Later sends fail at once, even with channel A still busy. */
	send_tag(a->s, &slot, 3000, -EIO);
	/* The first error wins. */
	rmig_sched_abort(a->s, -EPIPE);
	assert_int_equal(rmig_sched_error(a->s), -EIO);

	gate_open(a);
	assert_int_equal(rmig_sched_sync(a->s, RMIG_SCHED_SYNC_FENCE, 1), -EIO);
	/* No sync point runs after the failure, and no further payload went out. */
	assert_int_equal(atomic_load(&a->syncs), 0);
	assert_int_equal(atomic_load(&a->transmits), 0);
	rmig_payload_free(slot);
	rmig_sched_destroy(a->s);
	abort_ctx_free(a);
}

/* rmig_sched_abort() from another thread wakes blocked producers too. */
static void test_abort_external(void **state)
{
	struct abort_ctx *a = abort_ctx_new();
	struct rmig_payload *slot = rmig_payload_alloc(PPP);
	struct waiter w[NWAITERS];
	pthread_t t[NWAITERS];

	assert_non_null(slot);
	assert_int_equal(rmig_sched_create(1, PPP, &abort_cb, a, &a->s), 0);
	send_tag(a->s, &slot, TAG_BLOCK, 0);
	waiters_start(a, w, t);
	for (int i = 0; i < h_guard_s(HANG_GUARD_S) * 1000 && atomic_load(&a->entered) < NWAITERS; i++)
		usleep(1000);
	usleep(30000);
	rmig_sched_abort(a->s, -ECONNRESET);
	waiters_check(w, t, -ECONNRESET);
	gate_open(a);
	assert_int_equal(rmig_sched_sync(a->s, RMIG_SCHED_SYNC_LOCAL, 0), -ECONNRESET);
	assert_int_equal(atomic_load(&a->transmits), 0);
	rmig_payload_free(slot);
	rmig_sched_destroy(a->s);
	abort_ctx_free(a);
}

/* A failing sync callback fails that sync and everything after it. */
static void test_abort_sync_error(void **state)
{
	struct abort_ctx *a = abort_ctx_new();
	struct rmig_payload *slot = rmig_payload_alloc(PPP);

	assert_non_null(slot);
	a->sync_fail_round = 2;
	a->sync_fail_code = -EPIPE;
	assert_int_equal(rmig_sched_create(4, PPP, &abort_cb, a, &a->s), 0);
	send_tag(a->s, &slot, 1, 0);
	assert_int_equal(rmig_sched_sync(a->s, RMIG_SCHED_SYNC_FENCE, 1), 0);
	assert_int_equal(atomic_load(&a->transmits), 1);
	send_tag(a->s, &slot, 2, 0);
	assert_int_equal(rmig_sched_sync(a->s, RMIG_SCHED_SYNC_FENCE, 2), -EPIPE);
	assert_int_equal(rmig_sched_error(a->s), -EPIPE);
	send_tag(a->s, &slot, 3, -EPIPE);
	assert_int_equal(rmig_sched_sync(a->s, RMIG_SCHED_SYNC_FENCE, 3), -EPIPE);
	assert_int_equal(atomic_load(&a->transmits), 2);
	rmig_payload_free(slot);
	rmig_sched_destroy(a->s);
	abort_ctx_free(a);
}

static void test_create_invalid(void **state)
{
	static const struct rmig_sched_cb ok = { .transmit = cont_transmit, .sync = sync_cb_unused };
	static const struct rmig_sched_cb no_sync = { .transmit = cont_transmit };
	static const struct rmig_sched_cb no_tx = { .sync = sync_cb_unused };
	struct rmig_sched *s = NULL;

	assert_int_equal(rmig_sched_create(0, PPP, &ok, NULL, &s), -EINVAL);
	assert_int_equal(rmig_sched_create(RMIG_MAX_CHANNELS + 1, PPP, &ok, NULL, &s), -EINVAL);
	assert_int_equal(rmig_sched_create(2, PPP, NULL, NULL, &s), -EINVAL);
	assert_int_equal(rmig_sched_create(2, PPP, &no_sync, NULL, &s), -EINVAL);
	assert_int_equal(rmig_sched_create(2, PPP, &no_tx, NULL, &s), -EINVAL);
	assert_null(s);
	/* The largest channel count works, and destroy right after create is clean. */
	assert_int_equal(rmig_sched_create(RMIG_MAX_CHANNELS, PPP, &ok, NULL, &s), 0);
	rmig_sched_destroy(s);
	rmig_sched_destroy(NULL);
}

static void test_payload_reset(void **state)
{
	struct rmig_payload *p = rmig_payload_alloc(PPP);

	assert_non_null(p);
	assert_true(slot_is_empty(p));
	marker_of(p);
	payload_fill(p, 1, 4);
	assert_false(rmig_payload_empty(p));
	rmig_payload_reset(p);
	assert_true(slot_is_empty(p));
	payload_fill(p, 2, 3);
	rmig_payload_reset(p);
	assert_true(slot_is_empty(p));
	assert_non_null(p->dev.data); /* the buffer is kept for reuse */
	rmig_payload_free(p);
	rmig_payload_free(NULL);
}

static unsigned int ch1 = 1, ch2 = 2, ch4 = 4, ch8 = 8;

int main(void)
{
	const struct CMUnitTest tests[] = {
		{ "contention_1ch", test_contention, NULL, NULL, &ch1 },
		{ "contention_2ch", test_contention, NULL, NULL, &ch2 },
		{ "contention_4ch", test_contention, NULL, NULL, &ch4 },
		{ "contention_8ch", test_contention, NULL, NULL, &ch8 },
		{ "sync_order_1ch", test_sync_order, NULL, NULL, &ch1 },
		{ "sync_order_2ch", test_sync_order, NULL, NULL, &ch2 },
		{ "sync_order_4ch", test_sync_order, NULL, NULL, &ch4 },
		{ "sync_order_8ch", test_sync_order, NULL, NULL, &ch8 },
		cmocka_unit_test(test_abort_transmit_error),
		cmocka_unit_test(test_abort_external),
		cmocka_unit_test(test_abort_sync_error),
		cmocka_unit_test(test_create_invalid),
		cmocka_unit_test(test_payload_reset),
	};

	/* unbuffered: a crash must not swallow the report in the test log */
	setvbuf(stdout, NULL, _IONBF, 0);
	return cmocka_run_group_tests_name("sched", tests, NULL, NULL);
}
