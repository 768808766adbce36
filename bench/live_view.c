/* SPDX-License-Identifier: MIT */
/*
 * rmig-bench --live: the migration drawn as it happens.
 *
 * Text (neither --json nor --quiet): one line per round on stdout, as the
 * engine's round_done hook reports it, a line at the switchover and, with
 * postcopy, at its start and end; when stderr is a terminal, a status line
 * on stderr redrawn in place every 200 ms (round, data transferred and
 * remaining, dirty rate, expected downtime; during postcopy the pages
 * pulled), cleared before each printed line and at the end.
 *
 * --json: one JSON object per line on stdout for each event, with the names
 * of QEMU's query-migrate / virsh domjobinfo where there is one ("status",
 * "transferred", "remaining", "total", "dirty-rate", "dirty-pages-rate",
 * "mbps", "expected-downtime", "dirty-sync-count", "postcopy-requests"); the
 * run's summary object follows as the last line.
 *
 * The ticker thread reads only counters the library publishes for any
 * thread (rmig_live_get_stats, rmig_src_get_stats, rmig_dst_postcopy_stats).
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "live_bench.h"

#define VIEW_TICK_NS 200000000L
#define RULE                                                                               \
	"------------------------------------------------------------------------------------" \
	"-----"

static const char *const decision_names[] = { "continue", "switchover", "force", "fail" };

static double view_ms(const struct live_view *v)
{
	return (now_s() - v->t0) * 1e3;
}

/* A CLOCK_MONOTONIC time in ns (the library's postcopy stamps) on the view's clock. */
static double clock_ms(const struct live_view *v, uint64_t ns)
{
	return (double)ns / 1e6 - v->t0 * 1e3;
}

/* Must hold v->lock */
static void status_clear(struct live_view *v)
{
	if (v->drawn) {
		fputs("\r\033[K", stderr);
		fflush(stderr);
		v->drawn = false;
	}
}

/* Must hold v->lock */
static void status_draw(struct live_view *v)
{
	struct rmig_stats ss = { .size = sizeof(ss) };
	double t = view_ms(v) / 1e3;

	if (v->phase == VIEW_POSTCOPY && v->pc.active) {
		fprintf(stderr, "\r\033[K postcopy-active  %.1f s  pulled %" PRIu64 " of %" PRIu64
			" pages (%.0f%%)  %" PRIu64 " faults",
			t, v->pc.pulled, v->pc.missing,
			v->pc.missing ? 100.0 * (double)v->pc.pulled / (double)v->pc.missing : 100.0,
			v->pc.faults);
	} else if (v->phase == VIEW_SWITCHOVER || v->phase == VIEW_POSTCOPY) {
		rmig_src_get_stats(v->src, &ss);
		fprintf(stderr, "\r\033[K switchover  %.1f s  vCPUs stopped  transferred %.1f MB", t,
			(double)ss.wire_bytes / 1e6);
	} else {
		struct rmig_live_stats ls = { .size = sizeof(ls) };

		rmig_live_get_stats(v->live, &ls);
		rmig_src_get_stats(v->src, &ss);
		fprintf(stderr, "\r\033[K round %u  %.1f s  transferred %.1f MB  remaining %.1f MB",
			ls.rounds + 1, t, (double)ss.wire_bytes / 1e6, (double)v->remaining / 1e6);
		if (ls.rounds) /* nothing measured before the first round ends */
			fprintf(stderr, "  dirty %.1f MB/s  expected %.1f ms",
				(double)ls.dirty_rate_bps / 1e6, live_ms(ls.expected_downtime_ns));
	}
	fflush(stderr);
	v->drawn = true;
}

/* Must hold v->lock. Postcopy start, progress and end, from the destination's figures. */
static void view_postcopy(struct live_view *v)
{
	struct rmig_dst_postcopy_stats pc = { .size = sizeof(pc) };

	if (!v->dst || !v->postcopy || rmig_dst_postcopy_stats(v->dst, &pc) || !pc.active)
		return;
	v->pc = pc;
	v->phase = VIEW_POSTCOPY;
	if (!v->pc_start_shown) {
		v->pc_start_shown = true;
		status_clear(v);
		if (v->json)
			printf("{\"event\":\"postcopy-active\",\"status\":\"postcopy-active\","
			       "\"time-ms\":%.3f,\"pages-missing\":%" PRIu64 ",\"uffd\":%s,"
			       "\"pull\":\"%s\"}\n",
			       clock_ms(v, pc.start_ns), pc.missing, pc.uffd ? "true" : "false",
			       pc.by_read ? "read" : "request");
		else if (v->text)
			printf(" postcopy: the destination runs at %.3f s; %" PRIu64
			       " pages missing, pulled by %s\n",
			       clock_ms(v, pc.start_ns) / 1e3, pc.missing, pc.by_read ? "reads" : "requests");
		fflush(stdout);
	}
	if (v->json) {
		bool done = pc.done_ns != 0;

		if (v->pc_done_shown || (!done && pc.pulled == v->pc_pulled_shown))
			return;
		v->pc_pulled_shown = pc.pulled;
		v->pc_done_shown = done;
		printf("{\"event\":\"%s\",\"status\":\"postcopy-active\",\"time-ms\":%.3f,"
		       "\"pages-missing\":%" PRIu64 ",\"pages-pulled\":%" PRIu64 ","
		       "\"postcopy-requests\":%" PRIu64 ",\"postcopy-faults\":%" PRIu64,
		       done ? "postcopy-done" : "postcopy", done ? clock_ms(v, pc.done_ns) : view_ms(v),
		       pc.missing, pc.pulled,
		       pc.pulls, pc.faults);
		if (done)
			printf(",\"postcopy-ms\":%.3f", (double)(pc.done_ns - pc.start_ns) / 1e6);
		printf("}\n");
		fflush(stdout);
	} else if (v->text && pc.done_ns && !v->pc_done_shown) {
		v->pc_done_shown = true;
		status_clear(v);
		printf(" postcopy: %" PRIu64 " of %" PRIu64 " pages pulled in %.2f ms by %" PRIu64
		       " %s, %" PRIu64 " faults\n",
		       pc.pulled, pc.missing, (double)(pc.done_ns - pc.start_ns) / 1e6, pc.pulls,
		       pc.by_read ? "reads" : "requests", pc.faults);
		fflush(stdout);
	}
}

static void *view_main(void *arg)
{
	struct live_view *v = arg;
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	pthread_mutex_lock(&v->lock);
	if (v->status && !v->stop)
		status_draw(v); /* at once: round 1 alone can take seconds */
	while (!v->stop) {
		ts.tv_nsec += VIEW_TICK_NS;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_nsec -= 1000000000L;
			ts.tv_sec++;
		}
		pthread_cond_timedwait(&v->cond, &v->lock, &ts);
		if (v->stop)
			break;
		view_postcopy(v);
		if (v->status)
			status_draw(v);
	}
	pthread_mutex_unlock(&v->lock);
	return NULL;
}

void live_view_init(struct live_view *v, const struct bench_cfg *cfg, uint64_t total_bytes,
		    uint32_t page_size)
{
	memset(v, 0, sizeof(*v));
	v->json = cfg->json;
	v->text = !cfg->json && !cfg->quiet;
	v->status = v->text && cfg->progress;
	v->postcopy = cfg->live.postcopy;
	v->total = total_bytes;
	v->page_size = page_size;
	v->remaining = total_bytes;
	pthread_mutex_init(&v->lock, NULL);
}

void live_view_start(struct live_view *v, struct rmig_live *live, struct rmig_src *src,
		     struct rmig_dst *dst)
{
	pthread_condattr_t ca;

	v->live = live;
	v->src = src;
	v->dst = dst;
	v->t0 = now_s();
	if (v->json)
		printf("{\"event\":\"setup\",\"status\":\"active\",\"time-ms\":0,\"total\":%" PRIu64
		       "}\n", v->total);
	fflush(stdout);
	if (!v->status && !(v->dst && v->postcopy && (v->json || v->text)))
		return;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&v->cond, &ca);
	pthread_condattr_destroy(&ca);
	/* a run without the view is still a run */
	v->running = !pthread_create(&v->thread, NULL, view_main, v);
	if (!v->running)
		pthread_cond_destroy(&v->cond);
}

void live_view_round(struct live_view *v, const struct rmig_live_round *r)
{
	struct rmig_live_stats ls = { .size = sizeof(ls) };
	struct rmig_stats ss = { .size = sizeof(ss) };
	const char *dec = r->decision < 4 ? decision_names[r->decision] : "?";
	double exp_ms = live_ms(r->expected_downtime_ns);

	if (!v->json && !v->text)
		return;
	/* the engine published this round's figures before calling the hook */
	rmig_live_get_stats(v->live, &ls);
	rmig_src_get_stats(v->src, &ss);
	pthread_mutex_lock(&v->lock);
	v->remaining = r->remaining_bytes;
	status_clear(v);
	if (v->json) {
		printf("{\"event\":\"round\",\"status\":\"active\",\"round\":%u,"
		       "\"dirty-sync-count\":%u,\"time-ms\":%.3f,\"round-ms\":%.3f,",
		       r->round, r->round, view_ms(v), (double)r->ns / 1e6);
		printf("\"round-bytes\":%" PRIu64 ",\"transferred\":%" PRIu64 ",\"remaining\":%" PRIu64
		       ",\"total\":%" PRIu64 ",",
		       r->bytes, ss.wire_bytes, r->remaining_bytes, v->total);
		printf("\"ram-pages\":%" PRIu64 ",\"device-bytes\":%" PRIu64 ",", r->ram_pages,
		       r->dev_bytes);
		printf("\"dirty-rate\":%" PRIu64 ",\"dirty-pages-rate\":%" PRIu64 ",",
		       ls.dirty_rate_bps, v->page_size ? ls.dirty_rate_bps / v->page_size : 0);
		printf("\"mbps\":%.3f,\"expected-downtime\":", (double)r->bandwidth_bps * 8 / 1e6);
		if (exp_ms < 0)
			printf("null,");
		else
			printf("%.3f,", exp_ms);
		printf("\"acks-outstanding\":%u,\"decision\":\"%s\"}\n", r->acks_outstanding, dec);
	} else {
		if (!v->header_done) {
			v->header_done = true;
			printf("%s\n %-6s %-9s %-10s %-15s %-13s %-11s %-12s %s\n", RULE, "round",
			       "time s", "round MB", "transferred MB", "remaining MB", "dirty MB/s",
			       "expected ms", "decision");
		}
		printf(" %-6u %-9.3f %-10.2f %-15.2f %-13.2f %-11.1f ", r->round, view_ms(v) / 1e3,
		       (double)r->bytes / 1e6, (double)ss.wire_bytes / 1e6,
		       (double)r->remaining_bytes / 1e6, (double)ls.dirty_rate_bps / 1e6);
		if (exp_ms < 0)
			printf("%-12s %s\n", "n/a", dec);
		else
			printf("%-12.2f %s\n", exp_ms, dec);
	}
	fflush(stdout);
	pthread_mutex_unlock(&v->lock);
}

void live_view_switchover(struct live_view *v)
{
	if (!v->json && !v->text)
		return;
	pthread_mutex_lock(&v->lock);
	status_clear(v);
	v->phase = VIEW_SWITCHOVER;
	if (v->json)
		printf("{\"event\":\"switchover\",\"status\":\"device\",\"time-ms\":%.3f,"
		       "\"remaining\":%" PRIu64 "}\n", view_ms(v), v->remaining);
	else
		printf(" switchover at %.3f s: vCPUs stopped, %.2f MB left to send\n",
		       view_ms(v) / 1e3, (double)v->remaining / 1e6);
	fflush(stdout);
	pthread_mutex_unlock(&v->lock);
}

void live_view_stop(struct live_view *v, uint64_t src_postcopy_pages)
{
	if (v->running) {
		pthread_mutex_lock(&v->lock);
		v->stop = true;
		pthread_cond_signal(&v->cond);
		pthread_mutex_unlock(&v->lock);
		pthread_join(v->thread, NULL);
		pthread_cond_destroy(&v->cond);
		v->running = false;
	}
	pthread_mutex_lock(&v->lock);
	status_clear(v);
	view_postcopy(v);
	/* a lone source learns the pages pulled only at the end */
	if (!v->dst && v->postcopy && src_postcopy_pages && v->phase == VIEW_SWITCHOVER) {
		if (v->json)
			printf("{\"event\":\"postcopy-done\",\"status\":\"postcopy-active\","
			       "\"time-ms\":%.3f,\"pages-pulled\":%" PRIu64 "}\n",
			       view_ms(v), src_postcopy_pages);
		else if (v->text)
			printf(" postcopy: the destination pulled %" PRIu64 " pages\n",
			       src_postcopy_pages);
	}
	fflush(stdout);
	pthread_mutex_unlock(&v->lock);
	pthread_mutex_destroy(&v->lock);
}
