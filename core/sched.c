// SPDX-License-Identifier: MIT
/*
 * multifd's slot swap, as the generic payload slot swap made it (any
 * payload type in one slot; docs/design.md names the QEMU changes). See
 * sched.h for the contract; the ordering argument is in the comments at
 * each acquire/release pair.
 *
 * pending_job moves IDLE -> CLAIMED (a producer's CAS) -> JOB (the
 * producer's store-release after the swap) -> IDLE (the channel's
 * store-release after transmitting). CLAIMED exists so that several
 * producers can race for channels without a lock: only the CAS winner
 * touches ch->data.
 *
 * channels_ready counts idle channels not yet claimed: a producer holding a
 * token is guaranteed to find one. Each channel's sem counts the items
 * (job or sync) posted to it; an item's flag is always set before its post,
 * so each wake-up finds at least one item.
 */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "barrier.h"
#include "sched.h"
#include "util.h"

enum { CH_IDLE = 0, CH_CLAIMED = 1, CH_JOB = 2 };

/*
 * How long to spin on a semaphore before sleeping in the kernel. A channel
 * waiting for work spins long: the next batch is usually microseconds away
 * and a futex wake per batch would cost the producer more than the batch.
 * A producer waiting for a busy channel spins briefly: the channel is in
 * the transport, and spinning would take the CPU it (or the receiver on the
 * same host) needs. Measured on 2 cores: docs/benchmarks.md.
 */
#define SPIN_CHANNEL 2048
#define SPIN_PRODUCER 256

struct sched_chan {
	_Atomic uint32_t pending_job;
	_Atomic uint32_t pending_sync; /* 0 or enum rmig_sched_sync */
	struct rmig_payload *data;     /* owned by whoever moved pending_job last */
	sem_t sem;
	pthread_t thread;
	struct rmig_sched *s;
	unsigned int id;
	bool started;
	_Atomic int node; /* NUMA node of the channel's data, -1 none */
} __attribute__((aligned(RMIG_CACHELINE)));

struct rmig_sched {
	struct sched_chan *ch;
	unsigned int nchan;
	const struct rmig_sched_cb *cb;
	void *ctx;
	/* written by the syncing thread before it releases pending_sync */
	uint64_t sync_round;
	sem_t channels_ready;
	sem_t sync_done;
	_Atomic uint32_t next_channel __attribute__((aligned(RMIG_CACHELINE)));
	_Atomic int error;
	_Atomic bool exiting;
	/* NUMA steering (rmig_sched_set_steer) */
	_Atomic bool steer;
	_Atomic uint64_t steer_wait_ns; /* 0: adaptive (tx_ns / 2) */
	_Atomic uint64_t tx_ns;	/* moving average of a transmit's duration */
	_Atomic uint64_t steered;
	_Atomic uint64_t fallbacks;
};

static void sem_wait_spin(sem_t *sem, int tries)
{
	for (int i = 0; i < tries; i++) {
		if (sem_trywait(sem) == 0)
			return;
		rmig_cpu_relax();
	}
	while (sem_wait(sem) && errno == EINTR)
		;
}

void rmig_sched_abort(struct rmig_sched *s, int err)
{
	int expected = 0;

	/*
	 * Release: whoever records the error's text does so before aborting;
	 * pairs with the load-acquire in rmig_sched_error(), so a caller that
	 * sees the code also sees the text.
	 */
	if (!atomic_compare_exchange_strong_explicit(&s->error, &expected, err, memory_order_release,
						     memory_order_relaxed))
		return;
	/*
	 * Wake any producer waiting for a channel; it sees the error and
	 * returns. Producers are few (RAM thread, device-state threads), so a
	 * generous batch of tokens is enough.
	 */
	for (unsigned int i = 0; i < s->nchan + 64; i++)
		sem_post(&s->channels_ready);
}

int rmig_sched_error(struct rmig_sched *s)
{
	/* Pairs with the CAS-release in rmig_sched_abort(). */
	return rmig_load_acquire(&s->error);
}

/* The transmit time's moving average (1/8 weight): races only lose a sample. */
static void note_tx(struct rmig_sched *s, uint64_t ns)
{
	uint64_t avg = rmig_load_relaxed(&s->tx_ns);

	rmig_store_relaxed(&s->tx_ns, avg ? avg - avg / 8 + ns / 8 : ns);
}

static void *chan_thread(void *arg)
{
	struct sched_chan *ch = arg;
	struct rmig_sched *s = ch->s;
	char name[16];
	uint32_t kind;
	int ret;

	/* named so that top, perf and gdb tell channels apart */
	snprintf(name, sizeof(name), "rmig-tx%u", ch->id);
	pthread_setname_np(pthread_self(), name);

	for (;;) {
		sem_wait_spin(&ch->sem, SPIN_CHANNEL);
		/* Pairs with the store-release in rmig_sched_destroy(). */
		if (rmig_load_acquire(&s->exiting))
			break;

		/* Pairs with the store-release of CH_JOB in rmig_sched_send(): see the filled slot. */
		if (rmig_load_acquire(&ch->pending_job) == CH_JOB) {
			if (!rmig_load_relaxed(&s->error)) {
				uint64_t t0 = rmig_load_relaxed(&s->steer) ? rmig_now_ns() : 0;

				ret = s->cb->transmit(s->ctx, ch->id, ch->data);
				if (ret)
					rmig_sched_abort(s, ret);
				if (t0)
					note_tx(s, rmig_now_ns() - t0);
			}
			rmig_payload_reset(ch->data);
			/*
			 * The emptied slot must be visible before the channel
			 * looks idle. Pairs with the CAS-acquire in
			 * rmig_sched_send().
			 */
			rmig_store_release(&ch->pending_job, CH_IDLE);
			sem_post(&s->channels_ready);
			continue;
		}

		/* Pairs with the store-release in rmig_sched_sync(): see sync_round. */
		kind = rmig_load_acquire(&ch->pending_sync);
		if (kind) {
			if (!rmig_load_relaxed(&s->error)) {
				ret = s->cb->sync(s->ctx, ch->id, kind, s->sync_round);
				if (ret)
					rmig_sched_abort(s, ret);
			}
			rmig_store_relaxed(&ch->pending_sync, 0);
			sem_post(&s->sync_done);
		}
	}
	return NULL;
}

/*
 * Take channel @ch if it is idle: swap the caller's full slot for its empty
 * one and publish the job. The caller holds a channels_ready token.
 */
static bool claim(struct sched_chan *ch, struct rmig_payload **slot)
{
	struct rmig_payload *tmp;
	uint32_t idle = CH_IDLE;

	/*
	 * Pairs with the store-release of CH_IDLE in chan_thread(): the
	 * channel's reset of its slot is visible before we hand that slot to
	 * our caller.
	 */
	if (!rmig_cas_acquire(&ch->pending_job, &idle, CH_CLAIMED))
		return false;
	tmp = *slot;
	*slot = ch->data;
	ch->data = tmp;
	/*
	 * The swapped-in payload must be visible before the channel sees the
	 * job. Pairs with the load-acquire of pending_job in chan_thread().
	 */
	rmig_store_release(&ch->pending_job, CH_JOB);
	sem_post(&ch->sem);
	return true;
}

/* Whether steering applies to a batch of @node: on, and a channel is on it. */
static bool steerable(struct rmig_sched *s, int node)
{
	if (node < 0 || !rmig_load_relaxed(&s->steer))
		return false;
	for (unsigned int i = 0; i < s->nchan; i++)
		if (rmig_load_relaxed(&s->ch[i].node) == node)
			return true;
	return false;
}

static uint64_t steer_wait(struct rmig_sched *s)
{
	uint64_t w = rmig_load_relaxed(&s->steer_wait_ns);

	if (w)
		return w;
	w = rmig_load_relaxed(&s->tx_ns) / 2;
	if (w < RMIG_SCHED_STEER_MIN_NS)
		return RMIG_SCHED_STEER_MIN_NS;
	return w > RMIG_SCHED_STEER_MAX_NS ? RMIG_SCHED_STEER_MAX_NS : w;
}

/*
 * Sleep until another channel turns idle (its token, which the caller then
 * holds too) or until @deadline (rmig_now_ns()). 1 for a token, else 0.
 */
static int wait_token(struct rmig_sched *s, uint64_t now, uint64_t deadline)
{
	struct timespec ts;
	uint64_t left = deadline - now;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += (time_t)(left / 1000000000ull);
	ts.tv_nsec += (long)(left % 1000000000ull);
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return sem_timedwait(&s->channels_ready, &ts) == 0;
}

/* Give back the tokens of idle channels taken while waiting for one on our node. */
static void put_tokens(struct rmig_sched *s, unsigned int n)
{
	while (n--)
		sem_post(&s->channels_ready);
}

int rmig_sched_send_node(struct rmig_sched *s, struct rmig_payload **slot, int node)
{
	bool local = steerable(s, node);
	unsigned int extra = 0;
	uint64_t deadline = 0;
	uint32_t start;
	int err;

	err = rmig_sched_error(s);
	if (err)
		return err;
	sem_wait_spin(&s->channels_ready, SPIN_PRODUCER);
	for (;;) {
		err = rmig_sched_error(s);
		if (err) {
			put_tokens(s, extra);
			return err;
		}
		start = atomic_fetch_add_explicit(&s->next_channel, 1, memory_order_relaxed);
		if (local) {
			uint64_t now;

			for (unsigned int i = 0; i < s->nchan; i++) {
				struct sched_chan *ch = &s->ch[(start + i) % s->nchan];

				if (rmig_load_relaxed(&ch->node) == node && claim(ch, slot)) {
					rmig_add_relaxed(&s->steered, 1);
					put_tokens(s, extra);
					return 0;
				}
			}
			/*
			 * None on the node is idle, though one elsewhere is
			 * (we hold a token): wait for the next channel to turn
			 * idle, up to the deadline, and look again.
			 */
			now = rmig_now_ns();
			if (!deadline)
				deadline = now + steer_wait(s);
			if (now < deadline) {
				extra += (unsigned int)wait_token(s, now, deadline);
				continue;
			}
			local = false;
			rmig_add_relaxed(&s->fallbacks, 1);
		}
		for (unsigned int i = 0; i < s->nchan; i++)
			if (claim(&s->ch[(start + i) % s->nchan], slot)) {
				put_tokens(s, extra);
				return 0;
			}
		/*
		 * We hold a token, so an unclaimed idle channel exists or is
		 * between its store-release and its post; look again.
		 */
		rmig_cpu_relax();
	}
}

int rmig_sched_send(struct rmig_sched *s, struct rmig_payload **slot)
{
	return rmig_sched_send_node(s, slot, -1);
}

void rmig_sched_set_node(struct rmig_sched *s, unsigned int ch, int node)
{
	if (ch < s->nchan && rmig_load_relaxed(&s->ch[ch].node) != node)
		rmig_store_relaxed(&s->ch[ch].node, node);
}

void rmig_sched_set_steer(struct rmig_sched *s, bool on, uint64_t wait_ns)
{
	rmig_store_relaxed(&s->steer, on);
	rmig_store_relaxed(&s->steer_wait_ns, wait_ns);
}

void rmig_sched_steer_stats(struct rmig_sched *s, uint64_t *steered, uint64_t *fallbacks)
{
	*steered = rmig_load_relaxed(&s->steered);
	*fallbacks = rmig_load_relaxed(&s->fallbacks);
}

int rmig_sched_sync(struct rmig_sched *s, unsigned int kind, uint64_t round)
{
	s->sync_round = round;
	for (unsigned int i = 0; i < s->nchan; i++) {
		/* Publish sync_round. Pairs with the load-acquire of pending_sync in chan_thread(). */
		rmig_store_release(&s->ch[i].pending_sync, kind);
		sem_post(&s->ch[i].sem);
	}
	for (unsigned int i = 0; i < s->nchan; i++)
		while (sem_wait(&s->sync_done) && errno == EINTR)
			;
	return rmig_sched_error(s);
}

int rmig_sched_create(unsigned int channels, unsigned int pages_per_packet,
		      const struct rmig_sched_cb *cb, void *ctx, struct rmig_sched **sp)
{
	struct rmig_sched *s;
	int ret = -ENOMEM;

	if (!channels || channels > RMIG_MAX_CHANNELS || !cb || !cb->transmit || !cb->sync)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->ch = aligned_alloc(RMIG_CACHELINE, sizeof(*s->ch) * channels);
	if (!s->ch)
		goto err_free_s;
	memset(s->ch, 0, sizeof(*s->ch) * channels);
	s->nchan = channels;
	s->cb = cb;
	s->ctx = ctx;
	sem_init(&s->channels_ready, 0, channels);
	sem_init(&s->sync_done, 0, 0);
	atomic_init(&s->next_channel, 0);
	atomic_init(&s->error, 0);
	atomic_init(&s->exiting, false);
	atomic_init(&s->tx_ns, 0);
	atomic_init(&s->steer, false);
	atomic_init(&s->steer_wait_ns, 0);
	atomic_init(&s->steered, 0);
	atomic_init(&s->fallbacks, 0);

	for (unsigned int i = 0; i < channels; i++) {
		struct sched_chan *ch = &s->ch[i];

		atomic_init(&ch->pending_job, CH_IDLE);
		atomic_init(&ch->pending_sync, 0);
		atomic_init(&ch->node, -1);
		ch->s = s;
		ch->id = i;
		ch->started = false;
		sem_init(&ch->sem, 0, 0);
		ch->data = rmig_payload_alloc(pages_per_packet);
		if (!ch->data) {
			ret = -ENOMEM;
			goto err_destroy;
		}
	}
	for (unsigned int i = 0; i < channels; i++) {
		ret = -pthread_create(&s->ch[i].thread, NULL, chan_thread, &s->ch[i]);
		if (ret)
			goto err_destroy;
		s->ch[i].started = true;
	}
	*sp = s;
	return 0;

err_destroy:
	rmig_sched_destroy(s);
	return ret;
err_free_s:
	free(s);
	return ret;
}

void rmig_sched_destroy(struct rmig_sched *s)
{
	if (!s)
		return;
	/* Pairs with the load-acquire of exiting in chan_thread(). */
	rmig_store_release(&s->exiting, true);
	for (unsigned int i = 0; i < s->nchan; i++) {
		if (!s->ch[i].started)
			continue;
		sem_post(&s->ch[i].sem);
		pthread_join(s->ch[i].thread, NULL);
	}
	for (unsigned int i = 0; i < s->nchan; i++) {
		rmig_payload_free(s->ch[i].data);
		sem_destroy(&s->ch[i].sem);
	}
	sem_destroy(&s->channels_ready);
	sem_destroy(&s->sync_done);
	free(s->ch);
	free(s);
}
