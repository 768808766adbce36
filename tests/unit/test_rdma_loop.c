// SPDX-License-Identifier: MIT
/*
 * The real engines (rmig_src_*, rmig_dst_*) over the real rdma transport,
 * in one process, on the fake fabric (fake_fabric.h): "rdma:127.0.0.1:PORT"
 * with no device. What it proves is the credit accounting over long runs
 * of rounds that carry no RAM (core/src/src_chan.c, "RELEASE flow"): each such round
 * still costs the destination one RELEASE message toward the source, and
 * a source that does not read them leaves the destination without credits.
 *
 * Each migration must verify (both finishes 0, RAM equal, every round's RAM
 * as expected on the destination) with no RNR anywhere (the fabric fails a
 * SEND that finds no receive, as rnr_retry 0 does) and at most
 * RMIG_RELEASE_WINDOW + 2 messages ever waiting unread on a source channel.
 * Faults (a wrong rkey, a revoked MR, a peer QP in error) must fail both
 * sides cleanly with a message, source RAM untouched.
 *
 * A hang is what the old RELEASE bug looked like: a watchdog cancels both
 * sides after a while and the test fails, naming it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <rmig/rmig.h>

#include "core/xport.h"
#include "fake_fabric.h"
#include "helpers.h"

#define PAGE	 4096u
#define RAM_SIZE (1u << 20)
#define NPAGES	 (RAM_SIZE / PAGE)
#define UNREAD_MAX (RMIG_RELEASE_WINDOW + 2)

/* ------------------------------------------------------ the script */

/* Round 1 sends every page; a later busy round rewrites about 1 page in 8. */
static bool rewritten(uint64_t p, unsigned int r)
{
	return r == 1 || h_mix64(((uint64_t)r << 32) ^ (p << 4) ^ 0x51) % 8 == 0;
}

/* A quarter of all page versions are zero pages, which travel as offsets only. */
static void fill_page(uint8_t *dst, uint64_t p, unsigned int version)
{
	uint64_t *w = (uint64_t *)dst, s = h_mix64((p << 20) ^ version);

	if (s % 4 == 0) {
		memset(dst, 0, PAGE);
		return;
	}
	for (unsigned int i = 0; i < PAGE / 8; i++)
		w[i] = h_mix64(s + i);
}

/* Device state of round @r: sometimes empty, sometimes several SENDs long. */
static size_t dev_len(unsigned int r)
{
	if (r % 11 == 0)
		return 0;
	if (r % 7 == 0)
		return 200000 + r;
	return (r * 37u) % 3000 + 1;
}

static uint8_t dev_byte(unsigned int r, size_t i)
{
	return (uint8_t)h_mix64(((uint64_t)r << 24) ^ i);
}

/* One migration: the script, both sides' outcome, what the fabric saw. */
struct loop {
	/* script: kind[r] for round r (1-based): 'B' busy, 'I' idle, 'D' device state only */
	char *kind;
	unsigned int rounds;
	unsigned int channels;
	unsigned int dst_delay_us; /* before each rmig_dst_wait_sync */
	/* the source calls it after round @r, e.g. to inject a fault */
	void (*after_round)(struct loop *l, unsigned int r);
	bool expect_fail;
	uint64_t mr_slice; /* both sides' opts.mr_slice; 0: the default */
	bool mw;	   /* the fabric has type 2 windows (ff_mw_set) */
	unsigned int bind_fail_at; /* and this BIND_MW fails */

	uint8_t *src_ram, *dst_ram;
	uint16_t version[NPAGES]; /* destination: the round each page was last written in */

	/* destination thread */
	pthread_t thread;
	struct rmig_dst *dst;
	int accept_ret, wait_ret, finish_ret;
	_Atomic unsigned int dst_round; /* rounds rmig_dst_wait_sync returned */
	unsigned int dev_next;		/* the next round whose device state is due */
	uint64_t dev_seq;
	char problem[256];
	char dst_err[512];

	/* source */
	struct rmig_src *src;
	int src_ret;
	unsigned int src_round;
	unsigned int max_lead; /* source rounds synced ahead of the destination's caller */
	char src_err[512];
	char live_fail[256]; /* a bound broken while running */
	struct rmig_stats src_stats, dst_stats; /* at the end */
};

static char *script(unsigned int rounds, char (*kind_of)(unsigned int r))
{
	char *k = calloc(rounds + 2, 1);

	assert_non_null(k);
	for (unsigned int r = 1; r <= rounds; r++)
		k[r] = kind_of(r);
	return k;
}

/* ------------------------------------------------ destination side */

static void problem(struct loop *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void problem(struct loop *l, const char *fmt, ...)
{
	va_list ap;

	if (l->problem[0])
		return;
	va_start(ap, fmt);
	vsnprintf(l->problem, sizeof(l->problem), fmt, ap);
	va_end(ap);
}

/* Device state must come in queue order, whole, each round's before its sync. */
static int on_dev(void *arg, const char *idstr, uint32_t instance, uint64_t seq, const void *data,
		  size_t len)
{
	struct loop *l = arg;
	const uint8_t *b = data;

	while (l->dev_next <= l->rounds && l->kind[l->dev_next] != 'D')
		l->dev_next++;
	if (seq != l->dev_seq || strcmp(idstr, "dev") || instance != l->dev_next ||
	    len != dev_len(instance)) {
		problem(l, "device state seq %" PRIu64 " '%s' %u (%zu bytes), expected seq %" PRIu64
			   " of round %u (%zu bytes)",
			seq, idstr, instance, len, l->dev_seq, l->dev_next, dev_len(l->dev_next));
		return -1;
	}
	for (size_t i = 0; i < len; i++)
		if (b[i] != dev_byte(instance, i)) {
			problem(l, "device state of round %u: byte %zu differs", instance, i);
			return -1;
		}
	l->dev_seq++;
	l->dev_next++;
	return 0;
}

/* Destination RAM against what the script wrote up to round @r. */
static void check_ram(struct loop *l, unsigned int r)
{
	uint8_t want[PAGE];

	for (uint64_t p = 0; p < NPAGES; p++) {
		fill_page(want, p, l->version[p]);
		if (memcmp(want, l->dst_ram + p * PAGE, PAGE)) {
			problem(l, "round %u: page %" PRIu64 " differs (version %u expected)", r, p,
				l->version[p]);
			return;
		}
	}
}

static void *dst_main(void *arg)
{
	struct loop *l = arg;
	uint64_t round;
	int ret = 0;

	l->accept_ret = rmig_dst_accept(l->dst);
	if (l->accept_ret)
		goto out;
	for (unsigned int r = 1; r <= l->rounds; r++) {
		if (l->dst_delay_us)
			usleep(l->dst_delay_us);
		ret = rmig_dst_wait_sync(l->dst, &round);
		if (ret || round != r) {
			if (!ret)
				problem(l, "rmig_dst_wait_sync gave round %" PRIu64 ", expected %u",
					round, r);
			break;
		}
		atomic_store(&l->dst_round, r);
		if (l->kind[r] == 'B') {
			for (uint64_t p = 0; p < NPAGES; p++)
				if (rewritten(p, r))
					l->version[p] = (uint16_t)r;
			check_ram(l, r);
		}
		/* every device state queued before the sync has been delivered */
		for (unsigned int k = l->dev_next; k <= r; k++)
			if (l->kind[k] == 'D')
				problem(l, "round %u: device state of round %u not delivered", r, k);
	}
	l->wait_ret = ret;
	l->finish_ret = rmig_dst_finish(l->dst);
	if (!l->finish_ret && !l->wait_ret)
		check_ram(l, l->rounds);
out:
	snprintf(l->dst_err, sizeof(l->dst_err), "%s", rmig_dst_error(l->dst));
	return NULL;
}

static void dst_start(struct loop *l, char *uri, size_t urilen)
{
	struct rmig_opts o;

	rmig_opts_init(&o);
	o.channels = 4;
	o.timeout_ms = 10000;
	if (l->mr_slice)
		o.mr_slice = l->mr_slice;
	assert_int_equal(rmig_dst_create(&o, &l->dst), 0);
	assert_int_equal(rmig_dst_add_block(l->dst, &(struct rmig_block_desc){"pc.ram", l->dst_ram,
									 RAM_SIZE, PAGE}),
			 0);
	assert_int_equal(rmig_dst_set_device_state_cb(l->dst, on_dev, l), 0);
	if (rmig_dst_listen(l->dst, "rdma:127.0.0.1:0"))
		fail_msg("listen: %s", rmig_dst_error(l->dst));
	snprintf(uri, urilen, "rdma:127.0.0.1:%d", rmig_dst_port(l->dst));
	l->accept_ret = l->wait_ret = l->finish_ret = 1; /* did not run */
	l->dev_next = 1;
	assert_int_equal(pthread_create(&l->thread, NULL, dst_main, l), 0);
}

/* --------------------------------------------------------- watchdog */

/*
 * A wedged migration blocks both sides for good (that was the RELEASE
 * bug). Cancelling both wakes every blocked call, so the test fails with
 * a message instead of hanging meson.
 */
static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct loop *l;
	bool done, fired;
	bool src_gone, dst_gone; /* destroyed: not to be cancelled any more */
	int seconds;
} wd = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void *wd_main(void *arg)
{
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += wd.seconds;
	pthread_mutex_lock(&wd.mu);
	while (!wd.done)
		if (pthread_cond_timedwait(&wd.cv, &wd.mu, &until) == ETIMEDOUT && !wd.done) {
			wd.fired = true;
			fprintf(stderr, "watchdog: still running after %d s (source at round %u, "
					"destination at %u): cancelling both sides\n",
				wd.seconds, wd.l->src_round, atomic_load(&wd.l->dst_round));
			if (!wd.src_gone)
				rmig_src_cancel(wd.l->src);
			if (!wd.dst_gone)
				rmig_dst_cancel(wd.l->dst);
			break;
		}
	pthread_mutex_unlock(&wd.mu);
	return NULL;
}

/* ------------------------------------------------------ source side */

static void print_qps(const struct ff_stats *s)
{
	for (unsigned int i = 0; i < s->nqps; i++) {
		const struct ff_qp_stats *q = &s->qp[i];

		fprintf(stderr,
			"  %s qp %u: sends %" PRIu64 ", writes %" PRIu64 ", nops %" PRIu64
			", received %" PRIu64 ", unread max %u, receives min %u of %u, rnr %u\n",
			q->active ? "source" : "destination", q->nth, q->sends, q->writes, q->nops,
			q->received, q->max_unread, q->min_rq_at_send, q->rq_cap, q->rnr);
	}
}

/* The bounds that must hold at every moment, checked after each round. */
static void check_live(struct loop *l)
{
	struct ff_stats s;

	ff_stats_get(&s);
	if (s.rnr && !l->live_fail[0])
		snprintf(l->live_fail, sizeof(l->live_fail), "%u RNR (a SEND found no receive)",
			 s.rnr);
	for (unsigned int i = 0; i < s.nqps && !l->live_fail[0]; i++)
		if (s.qp[i].active && s.qp[i].nth > 0 && s.qp[i].max_unread > UNREAD_MAX)
			snprintf(l->live_fail, sizeof(l->live_fail),
				 "source channel qp %u had %u messages unread (at most %u allowed)",
				 s.qp[i].nth, s.qp[i].max_unread, UNREAD_MAX);
}

static int src_round(struct loop *l, unsigned int r)
{
	uint8_t *buf;
	size_t len;
	int ret = 0;

	switch (l->kind[r]) {
	case 'B':
		for (uint64_t p = 0; p < NPAGES && !ret; p++) {
			if (!rewritten(p, r))
				continue;
			fill_page(l->src_ram + p * PAGE, p, r);
			ret = rmig_src_queue_page(l->src, 0, p * PAGE);
		}
		break;
	case 'D':
		len = dev_len(r);
		buf = malloc(len + 1);
		assert_non_null(buf);
		for (size_t i = 0; i < len; i++)
			buf[i] = dev_byte(r, i);
		ret = rmig_src_queue_device_state(l->src, "dev", r, buf, len);
		free(buf);
		break;
	}
	return ret ? ret : rmig_src_sync(l->src, RMIG_SYNC_ALL);
}

/* Run the script; returns with both sides finished and destroyed, and fabric idle. */
/*
 * @fail: the registration of (*@fail + @fail_off) fails (streamed
 * registration tests), NULL for none; each registration takes @reg_us.
 */
static void run_with(struct loop *l, int guard, uint8_t **fail, size_t fail_off,
		     unsigned int reg_us)
{
	struct rmig_opts o;
	pthread_t wdt;
	char uri[64];
	int ret = 0;

	ff_init();
	l->src_ram = h_map(RAM_SIZE);
	l->dst_ram = h_map(RAM_SIZE);
	memset(l->dst_ram, 0xa5, RAM_SIZE); /* pages that must become zero really are cleared */
	ff_reg_set(fail ? *fail + fail_off : NULL, -EFAULT, reg_us);
	ff_mw_set(l->mw, l->bind_fail_at);
	dst_start(l, uri, sizeof(uri));

	rmig_opts_init(&o);
	o.channels = l->channels;
	o.timeout_ms = 10000;
	if (l->mr_slice)
		o.mr_slice = l->mr_slice;
	assert_int_equal(rmig_src_create(&o, &l->src), 0);
	assert_int_equal(rmig_src_add_block(l->src, &(struct rmig_block_desc){"pc.ram", l->src_ram,
									   RAM_SIZE, PAGE}),
			 0);
	wd.l = l;
	wd.done = wd.fired = wd.src_gone = wd.dst_gone = false;
	wd.seconds = h_guard_s(guard);
	assert_int_equal(pthread_create(&wdt, NULL, wd_main, NULL), 0);

	ret = rmig_src_connect(l->src, uri);
	for (unsigned int r = 1; !ret && r <= l->rounds; r++) {
		ret = src_round(l, r);
		l->src_round = r;
		if (r > atomic_load(&l->dst_round) && r - atomic_load(&l->dst_round) > l->max_lead)
			l->max_lead = r - atomic_load(&l->dst_round);
		check_live(l);
		if (l->live_fail[0]) {
			/* a credit bug wedges both sides soon after: stop now, and say why */
			rmig_src_cancel(l->src);
			rmig_dst_cancel(l->dst);
			ret = -ECANCELED;
		}
		if (!ret && l->after_round)
			l->after_round(l, r);
	}
	if (!ret)
		ret = rmig_src_finish(l->src);
	l->src_ret = ret;
	snprintf(l->src_err, sizeof(l->src_err), "%s", rmig_src_error(l->src));
	l->src_stats.size = sizeof(l->src_stats);
	rmig_src_get_stats(l->src, &l->src_stats);
	if (ret)
		rmig_dst_cancel(l->dst); /* the destination may still wait for a round */
	pthread_mutex_lock(&wd.mu);
	wd.src_gone = true;
	pthread_mutex_unlock(&wd.mu);
	rmig_src_destroy(l->src);
	/* the watchdog still guards this join: a destination that hangs gets cancelled */
	assert_int_equal(pthread_join(l->thread, NULL), 0);
	pthread_mutex_lock(&wd.mu);
	wd.dst_gone = true;
	pthread_mutex_unlock(&wd.mu);
	l->dst_stats.size = sizeof(l->dst_stats);
	rmig_dst_get_stats(l->dst, &l->dst_stats);
	rmig_dst_destroy(l->dst);

	pthread_mutex_lock(&wd.mu);
	wd.done = true;
	pthread_cond_signal(&wd.cv);
	pthread_mutex_unlock(&wd.mu);
	pthread_join(wdt, NULL);
	check_live(l);
}

static void run(struct loop *l, int guard)
{
	run_with(l, guard, NULL, 0, 0);
}

static void loop_free(struct loop *l)
{
	h_unmap(l->src_ram, RAM_SIZE);
	h_unmap(l->dst_ram, RAM_SIZE);
	free(l->kind);
}

/* Source RAM holds exactly what the script wrote up to the last round it ran. */
static void assert_src_ram_intact(struct loop *l)
{
	uint8_t want[PAGE];

	for (uint64_t p = 0; p < NPAGES; p++) {
		unsigned int v = 1;

		for (unsigned int r = l->src_round; r > 1; r--)
			if (l->kind[r] == 'B' && rewritten(p, r)) {
				v = r;
				break;
			}
		fill_page(want, p, v);
		if (memcmp(want, l->src_ram + p * PAGE, PAGE))
			fail_msg("source page %" PRIu64 " changed (version %u expected)", p, v);
	}
}

/* What every run must leave: no misuse of verbs, nothing left allocated, no hang. */
static void assert_clean(struct loop *l, const struct ff_stats *s)
{
	if (wd.fired)
		fail_msg("hung: the watchdog cancelled both sides (source: %s; destination: %s)",
			 l->src_err, l->dst_err);
	if (s->misuse)
		fail_msg("verbs misuse (%u): %s", s->misuse, s->misuse_msg);
	assert_int_equal(ff_live_objects(), 0);
}

static void assert_verified(struct loop *l)
{
	struct ff_stats s;
	unsigned int chans = 0;

	ff_stats_get(&s);
	if (l->src_ret || l->finish_ret || l->wait_ret || l->accept_ret || l->problem[0] ||
	    l->live_fail[0] || s.rnr)
		print_qps(&s);
	assert_clean(l, &s);
	if (l->live_fail[0])
		fail_msg("%s", l->live_fail);
	if (l->src_ret)
		fail_msg("source: %d %s", l->src_ret, l->src_err);
	if (l->accept_ret || l->wait_ret || l->finish_ret)
		fail_msg("destination: accept %d wait %d finish %d: %s %s", l->accept_ret,
			 l->wait_ret, l->finish_ret, l->dst_err, l->problem);
	if (l->problem[0])
		fail_msg("destination: %s", l->problem);
	assert_int_equal(atomic_load(&l->dst_round), l->rounds);
	assert_memory_equal(l->src_ram, l->dst_ram, RAM_SIZE);
	assert_src_ram_intact(l);

	assert_int_equal(s.rnr, 0);
	for (unsigned int i = 0; i < s.nqps; i++) {
		const struct ff_qp_stats *q = &s.qp[i];

		assert_int_equal(q->rnr, 0);
		if (!q->active || q->nth == 0)
			continue;
		chans++;
		/* RELEASEs it did not read yet, plus the odd credit return */
		assert_in_range(q->max_unread, 1, UNREAD_MAX);
		assert_true(q->min_rq_at_send >= q->rq_cap - UNREAD_MAX + 1);
	}
	assert_int_equal(chans, l->channels);
}

static void assert_failed_cleanly(struct loop *l, const char *want)
{
	struct ff_stats s;

	ff_stats_get(&s);
	print_message("    source: %s\n    destination: %s\n", l->src_err, l->dst_err);
	assert_clean(l, &s);
	assert_int_not_equal(l->src_ret, 0);
	assert_true(l->src_err[0]);
	assert_true(l->accept_ret == 0 && (l->wait_ret < 0 || l->finish_ret < 0));
	assert_true(l->dst_err[0]);
	/*
	 * Which message the source keeps is a race: the first failure its
	 * threads record. The WR that failed names its status; but the
	 * responder's QP went to error too, so the destination saw its
	 * receives flushed ("peer closed") and may abort first: then the
	 * source reports the destination's reason (src_error() prefers it),
	 * or another channel's WR failing on a destination that has shut down.
	 * So the message must name a work-completion status or the
	 * destination's reason; the fabric's statistics say which WR failed
	 * first (fault_run).
	 */
	if (!strstr(l->src_err, "IBV_WC_") && !strstr(l->src_err, "destination aborted"))
		fail_msg("the source's error names no cause");
	if (!strstr(l->src_err, want))
		print_message("    (the source reports a consequence, not %s)\n", want);
	assert_src_ram_intact(l);
}

/* ------------------------------------------------------------ tests */

static void print_unread(const struct loop *l)
{
	struct ff_stats s;

	ff_stats_get(&s);
	print_message("    %u rounds, source ahead by at most %u; unread on source channels at most",
		      l->rounds, l->max_lead);
	for (unsigned int i = 0; i < s.nqps; i++)
		if (s.qp[i].active && s.qp[i].nth)
			print_message(" %u", s.qp[i].max_unread);
	print_message(" (bound %u)\n", UNREAD_MAX);
}

/*
 * Long stretches without RAM: busy rounds every 20 rounds, but none from
 * 100 to 300, and busy rounds rewrite few pages, so a channel goes
 * hundreds of rounds with nothing but SYNCs, each answered by a RELEASE.
 */
static char idle_mixed_kind(unsigned int r)
{
	return r == 1 || (r % 20 == 0 && (r < 100 || r > 300)) ? 'B' : 'I';
}

static void test_idle_rounds(void **state)
{
	struct loop l = {.rounds = 500, .channels = 2};

	l.kind = script(l.rounds, idle_mixed_kind);
	run(&l, 20);
	assert_verified(&l);
	print_unread(&l);
	/*
	 * The fake fabric has no memory windows (no IBV_DEVICE_MEM_WINDOW_TYPE_2*;
	 * its ibv_alloc_mw is a misuse): the fallback, MR rkeys in the
	 * migration's PD, carried this migration, and both sides say so.
	 */
	assert_int_equal(l.src_stats.channels, 2);
	assert_int_equal(l.src_stats.mw_channels, 0);
	assert_int_equal(l.dst_stats.mw_channels, 0);
	loop_free(&l);
}

/* Device state only (after round 1 sent RAM), in order, each round's before its sync. */
static char devstate_kind(unsigned int r)
{
	return r == 1 ? 'B' : 'D';
}

static void test_devstate_rounds(void **state)
{
	struct loop l = {.rounds = 301, .channels = 2};

	l.kind = script(l.rounds, devstate_kind);
	run(&l, 20);
	assert_verified(&l);
	print_unread(&l);
	assert_int_equal(l.dev_seq, 300);
	loop_free(&l);
}

/*
 * A destination caller that takes its time over every round: the source
 * runs ahead until the RELEASE window is full, then waits; it must not
 * fail, and must not run further ahead than the window.
 */
static char slow_kind(unsigned int r)
{
	return r == 1 ? 'B' : 'I';
}

static void test_slow_destination(void **state)
{
	struct loop l = {.rounds = 101, .channels = 2, .dst_delay_us = 3000};

	l.kind = script(l.rounds, slow_kind);
	run(&l, 20);
	assert_verified(&l);
	print_unread(&l);
	assert_in_range(l.max_lead, 2, RMIG_RELEASE_WINDOW + 2);
	loop_free(&l);
}

/* ----------------------------------------------------------- faults */

static char busy_kind(unsigned int r)
{
	return 'B';
}

static void bad_rkey_after(struct loop *l, unsigned int r)
{
	if (r == 2)
		ff_fault_set(&(struct ff_faults){.bad_rkey_at = ff_writes() + 2});
}

static void revoke_after(struct loop *l, unsigned int r)
{
	if (r == 2)
		ff_revoke_remote_mrs();
}

static void peer_error_after(struct loop *l, unsigned int r)
{
	if (r == 2)
		ff_fault_set(&(struct ff_faults){.peer_error_at = ff_writes() + 2});
}

/* Busy rounds, a fault after round 2; the first source WR to fail must have failed with @st. */
static void fault_run(void (*after)(struct loop *, unsigned int), enum ibv_wc_status st,
		      unsigned int access_errors)
{
	struct loop l = {.rounds = 8, .channels = 2, .after_round = after, .expect_fail = true};
	const char *want = rmig_rd_wc_status_name(st);
	const struct ff_qp_stats *q;
	struct ff_stats s;

	l.kind = script(l.rounds, busy_kind);
	run(&l, 20);
	assert_failed_cleanly(&l, want);
	/* the fault fired, once, on a source channel, in round 3 */
	ff_stats_get(&s);
	assert_int_equal(s.access_err, access_errors);
	assert_int_equal(s.first_error, st);
	q = &s.qp[s.first_error_qp];
	assert_true(q->active && q->nth > 0);
	assert_int_equal(l.src_round, 3);
	assert_int_equal(s.rnr, 0);
	loop_free(&l);
}

static void test_fault_bad_rkey(void **state)
{
	fault_run(bad_rkey_after, IBV_WC_REM_ACCESS_ERR, 1);
}

static void test_fault_revoked_mr(void **state)
{
	fault_run(revoke_after, IBV_WC_REM_ACCESS_ERR, 1);
}

static void test_fault_peer_qp_error(void **state)
{
	fault_run(peer_error_after, IBV_WC_REM_OP_ERR, 0);
}

/* ------------------------------------------ streamed registration */

/* RDMA READs on the source's channel QPs: reads of the destination's status table. */
static uint64_t channel_reads(void)
{
	struct ff_stats s;
	uint64_t n = 0;

	ff_stats_get(&s);
	for (unsigned int i = 0; i < s.nqps; i++)
		if (s.qp[i].active && s.qp[i].nth)
			n += s.qp[i].reads;
	return n;
}

/*
 * 64 KiB slices (16 per side) and 3 ms per registration: both sides are
 * still registering when the first pages go, the destination's MR table
 * marks slices pending, and the source's channels read the rkeys from the
 * destination's status table. Every round must verify.
 */
static void test_streamed_registration(void **state)
{
	struct loop l = {.rounds = 6, .channels = 3, .mr_slice = 64 << 10};
	uint64_t reads;

	l.kind = script(l.rounds, busy_kind);
	unsetenv("RMIG_RDMA_REG");
	run_with(&l, 30, NULL, 0, 3000);
	assert_verified(&l);
	reads = channel_reads();
	print_message("    %" PRIu64 " status table reads on the channels\n", reads);
	assert_true(reads > 0);
	loop_free(&l);
}

/* RMIG_RDMA_REG=upfront: as before, no slice pending, no status read. */
static void test_upfront_registration(void **state)
{
	struct loop l = {.rounds = 4, .channels = 2, .mr_slice = 64 << 10};

	l.kind = script(l.rounds, busy_kind);
	setenv("RMIG_RDMA_REG", "upfront", 1);
	run_with(&l, 30, NULL, 0, 1000);
	unsetenv("RMIG_RDMA_REG");
	assert_verified(&l);
	assert_int_equal(channel_reads(), 0);
	loop_free(&l);
}

/*
 * The destination's registration of its 9th slice fails in the background:
 * both sides fail, the destination naming the block and the slice, the
 * source the slice it could not write; nothing is reported verified.
 */
static void reg_fails_dst(bool mw)
{
	struct loop l = {.rounds = 4, .channels = 2, .mr_slice = 64 << 10, .mw = mw,
			 .expect_fail = true};
	struct ff_stats s;

	l.kind = script(l.rounds, busy_kind);
	run_with(&l, 30, &l.dst_ram, 8 * (64 << 10), 1000);
	print_message("    source: %s\n    destination: %s\n", l.src_err, l.dst_err);
	ff_stats_get(&s);
	assert_clean(&l, &s);
	assert_int_not_equal(l.src_ret, 0);
	assert_true(l.src_err[0]);
	assert_true(l.accept_ret || l.wait_ret < 0 || l.finish_ret < 0);
	/*
	 * Which side names it is a race: the destination fails its conns at
	 * once ("registering RAM in the background: block pc.ram slice 9 of
	 * 16"), the source may read the slice's failure in the status table
	 * first ("could not register block pc.ram slice 9"), or, when the
	 * failure comes while channels are still being opened, lose a channel
	 * first and cancel a destination still waiting in accept.
	 */
	if (!strstr(l.dst_err, "block pc.ram slice 9 of 16") &&
	    !strstr(l.src_err, "block pc.ram slice 9"))
		print_message("    (neither side names the slice: it failed during channel set-up)\n");
	loop_free(&l);
}

static void test_streamed_registration_fails_dst(void **state)
{
	reg_fails_dst(false);
}

/* The same with windows: every channel's status table marks the slice failed. */
static void test_streamed_registration_fails_dst_mw(void **state)
{
	reg_fails_dst(true);
}

/* The source's own registration of its 5th slice fails: it names it. */
static void test_streamed_registration_fails_src(void **state)
{
	struct loop l = {.rounds = 4, .channels = 2, .mr_slice = 64 << 10, .expect_fail = true};
	struct ff_stats s;

	l.kind = script(l.rounds, busy_kind);
	run_with(&l, 30, &l.src_ram, 4 * (64 << 10), 1000);
	print_message("    source: %s\n    destination: %s\n", l.src_err, l.dst_err);
	ff_stats_get(&s);
	assert_clean(&l, &s);
	assert_int_not_equal(l.src_ret, 0);
	assert_non_null(
	    strstr(l.src_err, "registering RAM in the background: block pc.ram slice 5 of 16"));
	/* it may fail before its channels are up: the destination then never accepts them */
	assert_true(l.accept_ret || l.wait_ret < 0 || l.finish_ret < 0);
	loop_free(&l);
}

/*
 * Windows, streamed (mw.c): channel tables mark slices pending, windows are
 * bound as slices appear, the source reads rkeys from the channel's status
 * table through a window of its QP. Up front nothing is pending or read.
 */
static void windows_run(const char *reg, unsigned int reg_us, bool reads)
{
	struct loop l = {.rounds = 6, .channels = 3, .mr_slice = 64 << 10, .mw = true};

	l.kind = script(l.rounds, busy_kind);
	reg ? setenv("RMIG_RDMA_REG", reg, 1) : unsetenv("RMIG_RDMA_REG");
	run_with(&l, 30, NULL, 0, reg_us);
	unsetenv("RMIG_RDMA_REG");
	assert_verified(&l);
	assert_int_equal(l.dst_stats.mw_channels, 3);
	assert_int_equal(l.src_stats.mw_channels, 3);
	print_message("    %" PRIu64 " status table reads on the channels\n", channel_reads());
	assert_true(reads ? channel_reads() > 0 : channel_reads() == 0);
	loop_free(&l);
}

static void test_streamed_windows(void **state)
{
	windows_run(NULL, 3000, true);
}

static void test_upfront_windows(void **state)
{
	windows_run("upfront", 1000, false);
}

/*
 * A BIND_MW fails (the 20th of the fabric, while slices still appear):
 * both sides fail, the destination naming the block and slice of the
 * window; nothing is reported verified.
 */
static void test_window_bind_fails(void **state)
{
	struct loop l = {.rounds = 4, .channels = 2, .mr_slice = 64 << 10, .mw = true,
			 .bind_fail_at = 20, .expect_fail = true};
	struct ff_stats s;

	l.kind = script(l.rounds, busy_kind);
	unsetenv("RMIG_RDMA_REG");
	run_with(&l, 30, NULL, 0, 3000);
	print_message("    source: %s\n    destination: %s\n", l.src_err, l.dst_err);
	ff_stats_get(&s);
	assert_clean(&l, &s);
	assert_int_not_equal(l.src_ret, 0);
	assert_true(l.accept_ret || l.wait_ret < 0 || l.finish_ret < 0);
	assert_non_null(strstr(l.dst_err, "BIND_MW"));
	assert_non_null(strstr(l.dst_err, "block pc.ram slice"));
	loop_free(&l);
}

/* ------------------------------------------------------------- main */

static const struct rmig_verbs_ops *saved_verbs;

static int group_setup(void **state)
{
	struct rlimit rl;

	/* registration checks RLIMIT_MEMLOCK even on a fake device: raise it if allowed */
	if (!getrlimit(RLIMIT_MEMLOCK, &rl) && rl.rlim_cur != RLIM_INFINITY) {
		rl.rlim_cur = rl.rlim_max = RLIM_INFINITY;
		setrlimit(RLIMIT_MEMLOCK, &rl);
	}
	saved_verbs = rmig_rdma_verbs;
	rmig_rdma_verbs = &ff_verbs;
	return 0;
}

static int group_teardown(void **state)
{
	rmig_rdma_verbs = saved_verbs;
	ff_fini();
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_idle_rounds),
		cmocka_unit_test(test_devstate_rounds),
		cmocka_unit_test(test_slow_destination),
		cmocka_unit_test(test_fault_bad_rkey),
		cmocka_unit_test(test_fault_revoked_mr),
		cmocka_unit_test(test_fault_peer_qp_error),
		cmocka_unit_test(test_streamed_registration),
		cmocka_unit_test(test_upfront_registration),
		cmocka_unit_test(test_streamed_registration_fails_dst),
		cmocka_unit_test(test_streamed_registration_fails_src),
		cmocka_unit_test(test_streamed_registration_fails_dst_mw),
		cmocka_unit_test(test_streamed_windows),
		cmocka_unit_test(test_upfront_windows),
		cmocka_unit_test(test_window_bind_fails),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
