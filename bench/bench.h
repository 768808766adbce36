/* SPDX-License-Identifier: MIT */
/*
 * rmig-bench internals: options, the RAM region (generation, mapping,
 * digests), the manifest the source sends as device state, and reporting.
 */
#ifndef RMIG_BENCH_H
#define RMIG_BENCH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "rmig/rmig.h"

#define BENCH_IDSTR "rmig-bench"
#define BENCH_BLOCK "pc.ram"
/* Digest granularity: a mismatch is pinpointed to one such chunk. */
#define BENCH_HASH_CHUNK (1u << 20)

enum bench_role {
	ROLE_INPROC,	  /* source and destination in this process */
	ROLE_SOURCE,	  /* --connect */
	ROLE_DESTINATION, /* --listen */
};

enum bench_transport {
	XPORT_TCP,
	XPORT_RDMA,
	XPORT_NULL,
	XPORT_FILE, /* save to --file, then restore from it (file.c) */
};

/* --live and the flags that go with it (live.c) */
struct bench_live {
	bool on;
	uint64_t dirty_rate; /* bytes/s the workload rewrites */
	int pattern;	     /* enum wl_pattern (workload.h) */
	unsigned int threads; /* workload threads ("vCPUs") */
	uint32_t downtime_limit_ms;
	uint32_t max_rounds;
	bool fail_on_max_rounds;
	bool legacy_sync;
	uint64_t dev_size; /* --device: initial data of a synthetic iterable device, 0: none */
	bool dev_ack;	   /* --switchover-ack: the switchover waits for its ack */
	bool verbose;	   /* --verbose: one line per round on stderr */
	bool postcopy;	   /* --postcopy: the destination runs and pulls what is left */
	uint32_t postcopy_after; /* --postcopy-after N: at the latest after N rounds */
	bool by_request;	 /* --postcopy-by-request: no RMIG_F_POSTCOPY */
	const char *postcopy_mark; /* --postcopy-mark FILE: made when the destination runs */
};

struct bench_cfg {
	enum bench_role role;
	enum bench_transport transport;
	const char *addr;   /* --listen / --connect argument, as given */
	const char *host;   /* in-process: address both sides use */
	const char *region; /* --region file, or NULL for generated RAM */
	uint64_t size;
	bool size_given;
	uint32_t page_size;
	bool channels_given;
	double zero_fraction;
	double dirty_fraction;
	uint32_t rounds;
	uint64_t seed;
	const char *file;  /* --transport file: the file to save to and restore from */
	bool drop_cache;   /* --drop-cache: evict it from the page cache before the restore */
	bool json;
	bool quiet;
	bool progress; /* stderr is a terminal and neither --json nor --quiet */
	struct rmig_opts opts;
	struct bench_live live;
};

/* One side's figures, filled by the run and printed by report.c. */
#define BENCH_RAILS_MAX 8

struct bench_result {
	const char *role;
	const char *transport;
	unsigned int channels;
	uint32_t page_size;
	uint64_t bytes; /* RAM covered: pages x page size */
	uint64_t pages;
	uint64_t zero_pages;
	uint64_t wire_bytes;
	uint64_t zc_sends, zc_copied; /* tcp --zero-copy: sends, and those the kernel copied */
	uint64_t tls_channels, ktls_channels; /* tcp --tls: channels in TLS, of them with kTLS */
	uint64_t mw_channels; /* rdma: channels reached through memory windows on their QP */
	uint64_t numa_local, numa_remote; /* source: data pages sent from their node / another */
	uint32_t rounds;
	double seconds;
	double connect_s; /* source: of seconds, the part spent in rmig_src_connect */
	double cpu_s;
	int verified; /* 1 yes, 0 no, -1 not applicable (null transport) */
	bool zero_copy;
	double zero_fraction;
	uint64_t seed;
	/* rdma: one entry per rail (rmig_src_get_rails / rmig_dst_get_rails) */
	struct rmig_rail_stats rails[BENCH_RAILS_MAX];
	int nrails;
	char error[512];
};

/* ---- region.c ---------------------------------------------------------- */

/*
 * The RAM being migrated. In generated mode the content of page p after
 * round r is a pure function of (seed, version(p, r), p), so a destination
 * can rebuild it from the manifest alone.
 */
struct region {
	uint8_t *base;
	uint64_t size;
	uint32_t page_size;
	bool mapped_file;
};

struct gen_params {
	uint64_t seed;
	uint32_t page_size;
	uint64_t zero_thr;  /* page is zero when draw32 < zero_thr (0..2^32) */
	uint64_t dirty_thr; /* page is rewritten in a round when draw32 < dirty_thr */
	uint32_t rounds;
};

uint64_t frac_to_thr(double f);
void gen_params_init(struct gen_params *gp, const struct bench_cfg *cfg);

int region_map_anon(struct region *r, uint64_t size, uint32_t page_size, bool populate,
		    char *err, size_t errlen);
int region_map_file(struct region *r, const char *path, uint32_t page_size, bool writable,
		    bool populate, char *err, size_t errlen);
void region_unmap(struct region *r);
/* --hugepages: region_map_anon() maps 2 MiB hugepages (MAP_HUGETLB) */
void region_use_hugepages(bool on);

/* ---- numa.c -------------------------------------------------------------- */

/* --numa off|auto|place|N,M,...: into @o; 0, or -EINVAL with @err saying why */
int bench_parse_numa(const char *arg, struct rmig_opts *o, char *err, size_t errlen);
/* --ram-nodes N,M,...: nodes that exist on this host; 0, or -EINVAL with @err */
int bench_parse_ram_nodes(const char *arg, char *err, size_t errlen);
/* the stripe --ram-nodes binds to one node: one batch of pages */
void bench_ram_stripe(uint64_t bytes);
/* whether --ram-nodes gave nodes: region_map_anon() then populates after binding */
bool region_nodes_bound(void);
/*
 * region_map_anon(): bind [base, base + size) to the --ram-nodes in stripes,
 * then (@populate) fault every page in, so each lands on its stripe's node
 */
int region_bind_nodes(void *base, uint64_t size, bool populate, char *err, size_t errlen);

bool gen_page_is_zero(const struct gen_params *gp, uint32_t version, uint64_t page);
bool gen_page_is_dirty(const struct gen_params *gp, uint32_t round, uint64_t page);
void gen_fill_page(const struct gen_params *gp, uint32_t version, uint64_t page, uint8_t *dst);
uint32_t gen_final_version(const struct gen_params *gp, uint64_t page);
void gen_fill_region(const struct gen_params *gp, struct region *r);

uint64_t hash_chunk(const void *p, size_t len);
uint64_t hash_words(const uint64_t *w, uint64_t n);
uint64_t region_nchunks(const struct region *r);
void region_digest(const struct region *r, uint64_t *out);
int gen_digest_final(const struct gen_params *gp, uint64_t size, uint64_t *out);

/* ---- manifest (region.c) ------------------------------------------------- */

#define MANIFEST_MAGIC 0x4d424d52u /* "RMBM" little-endian */
#define MANIFEST_VERSION 1u
#define MANIFEST_F_GENERATED (1u << 0)
/* digests are of page digests, chunks of fold_pages() pages (digest.c) */
#define MANIFEST_F_PAGE_FOLD (1u << 1)
#define MANIFEST_HDR_LEN 64u

struct manifest {
	uint32_t version;
	uint32_t flags;
	uint32_t rounds;
	uint32_t page_size;
	uint64_t seed;
	uint64_t size;
	uint64_t zero_thr;
	uint64_t dirty_thr;
	uint32_t hash_chunk;
	uint64_t nchunks;
	const uint8_t *digests; /* nchunks little-endian u64, inside the buffer */
};

size_t manifest_encode(uint8_t **bufp, const struct gen_params *gp, uint64_t size, uint32_t flags,
		       uint32_t hash_chunk_len, const uint64_t *digests, uint64_t nchunks);
int manifest_decode(struct manifest *m, const uint8_t *buf, size_t len, char *err,
		    size_t errlen);
uint64_t manifest_digest(const struct manifest *m, uint64_t i);

/* ---- digest.c ------------------------------------------------------------ */

/* The destination's collector of the manifest, fed by its device-state callback. */
struct manifest_rx {
	uint8_t *buf;
	size_t len, cap;
	uint64_t chunks;	 /* device-state chunks seen, the manifest's and others' */
	uint64_t foreign_chunks; /* of them, not the manifest's */
	uint64_t last_seq;
	bool order_broken;
};

/* 1: the chunk was the manifest's; 0: another device's (left to the caller); -errno. */
int manifest_rx_feed(struct manifest_rx *mr, const char *idstr, uint64_t seq, const void *data,
		     size_t len);
void manifest_rx_free(struct manifest_rx *mr);
/*
 * Decode what arrived into @m and check it describes @reg; with @full also
 * check every digest and, for generated content, every byte. 0 or -errno
 * with the reason in @err.
 */
int manifest_verify(const struct manifest_rx *mr, const struct region *reg, bool full,
		    struct manifest *m, char *err, size_t errlen);

/* Page-fold digests: pages per chunk, and chunks of @npages pages. */
uint64_t fold_pages(uint32_t page_size);
uint64_t fold_nchunks(uint64_t npages, uint32_t page_size);
/* Whether chunk @i of @reg matches a page-fold manifest; @scratch: fold_pages() values. */
bool manifest_chunk_ok(const struct manifest *m, const struct region *reg, uint64_t i,
		       uint64_t *scratch);

/*
 * The source's page digests of a region that is being rewritten: a writer
 * sets the page's bit in @touched (release) after each write;
 * page_digests_update() hashes those pages again, from one thread at a time:
 * the caller's, or the background thread between page_digests_start() and
 * page_digests_stop().
 */
struct page_digests {
	const struct region *reg;
	uint64_t npages;
	uint64_t *hash;		   /* per page */
	_Atomic uint64_t *touched; /* a bit per page */
	uint64_t rehashed;	   /* pages hashed again so far */
	pthread_t thread;
	bool running;
	_Atomic bool stop;
};

int page_digests_init(struct page_digests *pd, const struct region *r);
uint64_t page_digests_update(struct page_digests *pd);
/* Keep the digests current in a background thread, so little is left at the end. */
int page_digests_start(struct page_digests *pd);
void page_digests_stop(struct page_digests *pd);
/* Update, then encode a page-fold manifest of the region into *@bufp (malloc'd). */
int page_digests_manifest(struct page_digests *pd, const struct gen_params *gp, uint8_t **bufp,
			  size_t *lenp);
void page_digests_free(struct page_digests *pd);

/* ---- report.c ---------------------------------------------------------- */

double now_s(void);
double cpu_now_s(void);
void report_print(const struct bench_cfg *cfg, const struct bench_result *res);
/* @s as a JSON string, quotes included. */
void json_string(FILE *f, const char *s);

struct progress;
struct progress *progress_start(struct rmig_src *src, struct rmig_dst *dst, uint64_t total_pages,
				uint32_t page_size);
void progress_stop(struct progress *p);

/* ---- run.c ------------------------------------------------------------- */

int run_inproc(const struct bench_cfg *cfg);

/* The transport URI for --listen/--connect ADDR: "HOST:PORT", or a bare port on @default_host. */
void bench_make_uri(char *buf, size_t len, const struct bench_cfg *cfg, const char *addr,
		    const char *default_host);
/*
 * Create a source with the one block @desc and connect it to @uri. A lone
 * source (--connect) may start before its destination: a refused connect is
 * retried until the timeout. @t0 and @cpu0 receive the clocks at the start of the
 * attempt that counted (left alone when none was made). On failure *@srcp
 * may still hold a handle for the caller to destroy, and @err names the step
 * and the reason.
 */
int bench_src_connect(const struct bench_cfg *cfg, const struct rmig_opts *opts, const char *uri,
		      const struct rmig_block_desc *desc, struct rmig_src **srcp, double *t0,
		      double *cpu0, char *err, size_t errlen);
/* Appends what to do about a refused block table to a library message. */
void bench_mismatch_hint(char *msg, size_t len);
/* The destination's "listening on" line on stderr (scripts wait for it). */
void bench_listening(const struct bench_cfg *cfg, const char *uri, int port,
		     const struct region *reg);
int run_source(const struct bench_cfg *cfg);
int run_destination(const struct bench_cfg *cfg);

/* ---- file.c ------------------------------------------------------------ */

int run_file(const struct bench_cfg *cfg);

/* ---- live.c ------------------------------------------------------------ */

int run_live(const struct bench_cfg *cfg);

#endif /* RMIG_BENCH_H */
