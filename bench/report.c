/* SPDX-License-Identifier: MIT */
/*
 * Clocks, the result table / JSON object, and the progress bar.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "bench.h"

double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The whole process, user + system: channel threads included. */
double cpu_now_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

void json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static double safe_div(double a, double b)
{
	return b > 0 ? a / b : 0.0;
}

static void print_json(const struct bench_result *r)
{
	double gbs = safe_div((double)r->bytes, r->seconds) / 1e9;
	double pps = safe_div((double)r->pages, r->seconds);
	FILE *f = stdout;

	fprintf(f, "{\"role\":\"%s\",\"transport\":\"%s\",\"channels\":%u,", r->role, r->transport,
		r->channels);
	fprintf(f, "\"page_size\":%u,\"bytes\":%llu,\"seconds\":%.6f,", r->page_size,
		(unsigned long long)r->bytes, r->seconds);
	fprintf(f, "\"gbytes_per_s\":%.4f,\"gbits_per_s\":%.4f,", gbs, gbs * 8);
	/* the data phase alone, as perftest reports it (no connection set-up) */
	fprintf(f, "\"connect_s\":%.6f,\"transfer_gbits_per_s\":%.4f,", r->connect_s,
		safe_div((double)r->bytes * 8, r->seconds - r->connect_s) / 1e9);
	fprintf(f, "\"pages\":%llu,\"zero_pages\":%llu,", (unsigned long long)r->pages,
		(unsigned long long)r->zero_pages);
	fprintf(f, "\"pages_per_s\":%.1f,\"mpages_per_s\":%.4f,", pps, pps / 1e6);
	fprintf(f, "\"cpu_s\":%.4f,\"cpu_s_per_gb\":%.4f,", r->cpu_s,
		safe_div(r->cpu_s, (double)r->bytes / 1e9));
	fprintf(f, "\"wire_bytes\":%llu,\"rounds\":%u,", (unsigned long long)r->wire_bytes,
		r->rounds);
	fprintf(f, "\"zc_sends\":%llu,\"zc_copied\":%llu,", (unsigned long long)r->zc_sends,
		(unsigned long long)r->zc_copied);
	fprintf(f, "\"tls_channels\":%llu,\"ktls_channels\":%llu,\"mw_channels\":%llu,",
		(unsigned long long)r->tls_channels, (unsigned long long)r->ktls_channels,
		(unsigned long long)r->mw_channels);
	fprintf(f, "\"numa_local_pages\":%llu,\"numa_remote_pages\":%llu,",
		(unsigned long long)r->numa_local, (unsigned long long)r->numa_remote);
	fprintf(f, "\"zero_fraction\":%.4f,\"zero_copy\":%s,\"seed\":%llu,", r->zero_fraction,
		r->zero_copy ? "true" : "false", (unsigned long long)r->seed);
	/* rdma: what each rail carried (a plain address is one rail) */
	fputs("\"rails\":[", f);
	for (int k = 0; k < r->nrails && k < BENCH_RAILS_MAX; k++) {
		const struct rmig_rail_stats *rl = &r->rails[k];

		fprintf(f, "%s{\"device\":", k ? "," : "");
		json_string(f, rl->device);
		fputs(",\"address\":", f);
		json_string(f, rl->addr);
		fprintf(f,
			",\"numa_node\":%d,\"channels\":%u,\"threads_on_node\":%u,"
			"\"buffers_on_node\":%u,\"bytes\":%llu,\"local_pages\":%llu,"
			"\"remote_pages\":%llu}",
			rl->numa_node, rl->channels, rl->threads_on_node, rl->buffers_on_node,
			(unsigned long long)rl->bytes, (unsigned long long)rl->local_pages,
			(unsigned long long)rl->remote_pages);
	}
	fputs("],", f);
	fprintf(f, "\"verified\":%s,\"error\":",
		r->verified < 0 ? "null" : r->verified ? "true" : "false");
	if (r->error[0])
		json_string(f, r->error);
	else
		fputs("null", f);
	fputs("}\n", f);
	fflush(f);
}

#define RULE                                                                                       \
	"-----------------------------------------------------------------------------------------" \
	"----------------"

static void print_table(const struct bench_result *r)
{
	double gbs = safe_div((double)r->bytes, r->seconds) / 1e9;
	double pps = safe_div((double)r->pages, r->seconds);
	const char *ver = r->verified < 0 ? (strcmp(r->role, "source") ? "n/a" : "see dst")
					  : r->verified ? "yes" : "NO";
	char tls[64] = "";

	/* who encrypts: the kernel (kTLS) or OpenSSL in this process */
	if (r->tls_channels)
		snprintf(tls, sizeof(tls), "  TLS 1.3, kTLS sends: %s",
			 r->ktls_channels == r->tls_channels ? "yes"
			 : r->ktls_channels		     ? "some channels"
							     : "no (OpenSSL)");
	if (!strncmp(r->transport, "rdma", 4))
		snprintf(tls, sizeof(tls), "  rkeys: %s",
			 r->mw_channels ? "memory windows per channel QP" : "MR, per migration PD");
	printf("%s\n", RULE);
	printf(" rmig-bench  role: %s  transport: %s  channels: %u  page size: %u  rounds: %u"
	       "  zero fraction: %.3g%s%s\n",
	       r->role, r->transport, r->channels, r->page_size, r->rounds, r->zero_fraction,
	       r->zero_copy ? "  zero-copy" : "", tls);
	printf("%s\n", RULE);
	printf(" %-13s %-9s %-8s %-8s %-11s %-11s %-9s %-9s %s\n", "#bytes", "#seconds", "GB/s",
	       "Gb/s", "#pages", "#zero", "Mpages/s", "CPU s/GB", "verified");
	printf(" %-13llu %-9.4f %-8.3f %-8.2f %-11llu %-11llu %-9.3f %-9.3f %s\n",
	       (unsigned long long)r->bytes, r->seconds, gbs, gbs * 8, (unsigned long long)r->pages,
	       (unsigned long long)r->zero_pages, pps / 1e6,
	       safe_div(r->cpu_s, (double)r->bytes / 1e9), ver);
	if (r->nrails > 1) {
		printf(" %-5s %-9s %-28s %-5s %-9s %-13s %-6s %-11s %s\n", "rail", "device",
		       "address", "node", "channels", "#bytes", "share", "#local", "#remote");
		for (int k = 0; k < r->nrails && k < BENCH_RAILS_MAX; k++) {
			const struct rmig_rail_stats *rl = &r->rails[k];
			uint64_t all = 0;

			for (int i = 0; i < r->nrails && i < BENCH_RAILS_MAX; i++)
				all += r->rails[i].bytes;
			printf(" %-5d %-9s %-28s %-5d %-9u %-13llu %-6.2f %-11llu %llu\n", k,
			       rl->device[0] ? rl->device : "-", rl->addr, rl->numa_node,
			       rl->channels, (unsigned long long)rl->bytes,
			       safe_div((double)rl->bytes, (double)all),
			       (unsigned long long)rl->local_pages,
			       (unsigned long long)rl->remote_pages);
		}
	}
	if (r->numa_local || r->numa_remote)
		printf(" NUMA: %llu data pages sent from their own node's rail, %llu from another's"
		       " (%.1f%% local)\n",
		       (unsigned long long)r->numa_local, (unsigned long long)r->numa_remote,
		       100.0 * safe_div((double)r->numa_local,
					(double)(r->numa_local + r->numa_remote)));
	printf("%s\n", RULE);
	fflush(stdout);
}

/* --quiet: one line, for logs */
static void print_brief(const struct bench_result *r)
{
	double gbs = safe_div((double)r->bytes, r->seconds) / 1e9;

	printf("%s %s %uch %llu B %.4f s %.3f GB/s %.3f Mpages/s verified %s\n", r->role,
	       r->transport, r->channels, (unsigned long long)r->bytes, r->seconds, gbs,
	       safe_div((double)r->pages, r->seconds) / 1e6,
	       r->verified < 0 ? "n/a" : r->verified ? "yes" : "NO");
	if (r->tls_channels)
		printf("%s tls: %llu of %llu channels with kTLS sends\n", r->role,
		       (unsigned long long)r->ktls_channels, (unsigned long long)r->tls_channels);
	if (!strncmp(r->transport, "rdma", 4))
		printf("%s rdma rkeys: %s\n", r->role,
		       r->mw_channels ? "memory windows bound to each channel's QP"
				      : "MR rkeys in the migration's protection domain");
	fflush(stdout);
}

void report_print(const struct bench_cfg *cfg, const struct bench_result *res)
{
	if (cfg->json)
		print_json(res);
	else if (cfg->quiet)
		print_brief(res);
	else
		print_table(res);
	if (res->error[0])
		fprintf(stderr, "rmig-bench: %s: %s\n", res->role, res->error);
}

/* ---- progress bar ---------------------------------------------------------- */

#define PROGRESS_TICK_NS 200000000L
#define PROGRESS_DELAY_S 2.0
#define BAR_WIDTH 30

struct progress {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stop; /* Must hold lock */
	bool drawn;
	struct rmig_src *src;
	struct rmig_dst *dst;
	uint64_t total_pages;
	uint32_t page_size;
	double t0;
};

static void progress_draw(struct progress *p, double elapsed)
{
	struct rmig_stats st = { .size = sizeof(st) };
	char bar[BAR_WIDTH + 1];
	uint64_t done;
	double pct;
	int fill;

	if (p->src)
		rmig_src_get_stats(p->src, &st);
	else
		rmig_dst_get_stats(p->dst, &st);
	done = st.normal_pages + st.zero_pages;
	pct = p->total_pages ? 100.0 * (double)done / (double)p->total_pages : 0;
	if (pct > 100)
		pct = 100;
	fill = (int)(pct * BAR_WIDTH / 100);
	memset(bar, '#', (size_t)fill);
	memset(bar + fill, ' ', (size_t)(BAR_WIDTH - fill));
	bar[BAR_WIDTH] = '\0';
	fprintf(stderr, "\r[%s] %5.1f%%  %7.3f GB/s  %7.3f Mpages/s  %5.1f s", bar, pct,
		(double)done * p->page_size / elapsed / 1e9, (double)done / elapsed / 1e6, elapsed);
	p->drawn = true;
}

static void *progress_main(void *arg)
{
	struct progress *p = arg;
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	pthread_mutex_lock(&p->lock);
	while (!p->stop) {
		double elapsed;

		ts.tv_nsec += PROGRESS_TICK_NS;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_nsec -= 1000000000L;
			ts.tv_sec++;
		}
		pthread_cond_timedwait(&p->cond, &p->lock, &ts);
		if (p->stop)
			break;
		elapsed = now_s() - p->t0;
		if (elapsed >= PROGRESS_DELAY_S)
			progress_draw(p, elapsed);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

struct progress *progress_start(struct rmig_src *src, struct rmig_dst *dst, uint64_t total_pages,
				uint32_t page_size)
{
	struct progress *p = calloc(1, sizeof(*p));
	pthread_condattr_t ca;

	if (!p)
		return NULL;
	p->src = src;
	p->dst = dst;
	p->total_pages = total_pages;
	p->page_size = page_size;
	p->t0 = now_s();
	pthread_mutex_init(&p->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->cond, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&p->thread, NULL, progress_main, p)) {
		pthread_cond_destroy(&p->cond);
		pthread_mutex_destroy(&p->lock);
		free(p);
		return NULL; /* a run without a bar is still a run */
	}
	return p;
}

void progress_stop(struct progress *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->lock);
	pthread_join(p->thread, NULL);
	if (p->drawn)
		fputs("\r\033[K", stderr);
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
	free(p);
}
