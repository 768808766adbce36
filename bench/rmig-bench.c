/* SPDX-License-Identifier: MIT */
/*
 * rmig-bench: migrate a RAM region with librmig and report how fast it went.
 * This file holds the flags; run.c does the work.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"
#include "workload.h"

#define DEFAULT_SIZE (1ull << 30)
#define DEFAULT_NULL_SIZE (16ull << 30)
#define DEFAULT_PAGE 4096u
#define DEFAULT_DIRTY 0.125

static void usage(FILE *f)
{
	fprintf(f,
"Usage: rmig-bench [OPTION]...\n"
"Migrate a RAM region with librmig, check it arrived intact, and print the\n"
"throughput. With no options: 1 GiB of random pages over loopback TCP with 2\n"
"channels, source and destination in this process, compared byte for byte.\n"
"\n"
"What to send:\n"
"  -s, --size SIZE          region size; suffixes K, M, G, T (binary)\n"
"                           [1G; 16G with --transport null]\n"
"      --page-size SIZE     page size, a power of two, 512 to 1G  [4096]\n"
"      --zero-fraction F    fraction of pages left zero (sent as offsets only) [0]\n"
"      --rounds N           sync-all rounds; before each round after the first,\n"
"                           rewrite a fraction of pages and queue them again [1]\n"
"      --dirty-fraction F   fraction of pages rewritten per extra round  [0.125]\n"
"      --seed N             seed of the generated content  [1]\n"
"      --region PATH        migrate an existing file instead (e.g. a VM's\n"
"                           file-backed RAM in /dev/shm), mapped MAP_SHARED: the\n"
"                           source reads it (never writes it, also not between\n"
"                           rounds); the destination receives into it. Its size\n"
"                           is the region size and must match on both sides.\n"
"      --hugepages          generated RAM in 2 MiB hugepages (MAP_HUGETLB; the\n"
"                           pages must be reserved: vm.nr_hugepages)\n"
"      --ram-nodes N,M,...[@SIZE]  generated RAM bound (mbind) to these NUMA\n"
"                           nodes in turn, SIZE each  [one batch:\n"
"                           --pages-per-packet pages]\n"
"\n"
"How to send:\n"
"  -t, --transport NAME     tcp, rdma, null or file  [tcp]. null: source only, no\n"
"                           I/O, zero detection off, pages never touched;\n"
"                           measures the scheduler (see Mpages/s). file: save to\n"
"                           --file, restore from it, compare; one result each\n"
"      --file PATH          file: where to save (created or overwritten, left\n"
"                           in place); --channels is also the restore's threads\n"
"      --direct-io          file: RMIG_F_DIRECT_IO (O_DIRECT page data)\n"
"      --drop-cache         file: evict PATH from the page cache before the\n"
"                           restore, so it reads from the disk\n"
"  -c, --channels N         channels, 1 to %d  [2]; with --listen: the most\n"
"                           accepted  [%d]\n"
"      --pages-per-packet N pages per RAM packet, 1 to 4096  [128]\n"
"      --zero-copy          tcp: send with MSG_ZEROCOPY\n"
"      --tls                tcp: TLS 1.3 on the control connection and every\n"
"                           channel, authenticated by --tls-creds or by the\n"
"                           pre-shared key (--psk-file); give it on both sides.\n"
"                           The result says whether the kernel encrypts (kTLS)\n"
"      --tls-creds DIR      X.509 credentials for --tls (implies it): DIR holds\n"
"                           ca-cert.pem, server-cert.pem and server-key.pem\n"
"                           (destination), client-cert.pem and client-key.pem\n"
"                           (source); each side checks the other's against\n"
"                           ca-cert.pem, the source also the name it connects to\n"
"      --no-zero-detect     send zero pages as data\n"
"      --timeout MS         connect/accept/handshake/finish limit  [30000]\n"
"      --host ADDR          in-process mode: address to listen on and connect\n"
"                           to  [127.0.0.1] (rdma: an address of the RDMA device)\n"
"\n"
"RDMA tuning (passed to the library as they are):\n"
"  -d, --ib-dev NAME        device  [the one owning the address]\n"
"      --ib-port N          port  [the one owning the address]\n"
"  -x, --gid-index N        GID index  [resolved from the address]\n"
"      --signal-every N     signal a completion every N work requests  [64]\n"
"      --sq-depth N         send queue depth per channel  [512]\n"
"      --mr-slice SIZE      largest memory region  [2G]\n"
"      --numa MODE          several rails: auto (channels on their rail's NUMA\n"
"                           node, batches steered to the rail on their pages'\n"
"                           node), place (channels only), off, or one node per\n"
"                           rail N,M,... (-1: none) with auto  [auto, or the\n"
"                           environment's RMIG_RDMA_NUMA]\n"
"\n"
"Two processes or hosts:\n"
"      --listen ADDR        run only the destination, on HOST:PORT or PORT\n"
"                           (all addresses); waits --timeout for the source\n"
"      --connect ADDR       run only the source, to HOST:PORT or PORT (local)\n"
"      --psk-file PATH      pre-shared key file (32 to 4096 random bytes, mode\n"
"                           0600; make one: head -c 32 /dev/urandom): source\n"
"                           and destination, and each channel, prove they hold\n"
"                           it before any RAM moves; give it to both sides\n"
"      --insecure           let the destination listen on an address other\n"
"                           than loopback without --psk-file (anyone who\n"
"                           reaches the port could write its RAM)\n"
"  Give both the same --size and --page-size (or --region files of one size);\n"
"  the handshake refuses a mismatch. The source sends a manifest (seed, sizes,\n"
"  a 64-bit digest per MiB of its final RAM) as device state \"%s\"; the\n"
"  destination checks every digest and, for generated content, regenerates\n"
"  the pages from the seed and compares them byte for byte. Each side prints\n"
"  its own result; the destination's says whether the data verified.\n"
"\n"
"Live migration (in-process, or two processes; see bench/README.md):\n"
"      --live               migrate while a workload rewrites pages and marks\n"
"                           them dirty (rmig/live.h); rounds until the expected\n"
"                           downtime fits, then stop the workload, switch over,\n"
"                           and compare the destination with the final source\n"

"      --dirty-rate RATE    bytes/s rewritten, suffixes as --size; 0: flat out\n"
"                           [200M]\n"
"      --pattern NAME       random, seq or hot (90%% of writes in 1/16)  [random]\n"
"      --vcpus N            workload threads  [1]\n"
"      --downtime-limit MS  switch over when the expected downtime fits  [300]\n"
"      --max-rounds N       then force the switchover ...  [30]\n"
"      --fail-on-max-rounds ... or fail instead\n"
"      --legacy-sync        sync after each section, not once per round\n"
"      --device SIZE        also an iterable device with SIZE of pre-copy data\n"
"                           that keeps growing (like VFIO)\n"
"      --switchover-ack     the switchover waits for the destination's ack of\n"
"                           the device's initial data\n"
"      --verbose            one more line per round on stderr (the engine's\n"
"                           figures and decision)\n"
"      --postcopy           switch over to postcopy: the destination runs (a\n"
"                           vCPU thread reads random pages, two processes: 1 MiB\n"
"                           chunks, and checks them against the final source)\n"
"                           and pulls what is left: over tcp by request, over\n"
"                           rdma by RDMA READ of the source's RAM\n"
"      --postcopy-after N   ... at the latest after N rounds (implies --postcopy)\n"
"      --postcopy-by-request  over rdma too, request pages on the control\n"
"                           connection instead of reading them (to compare)\n"
"      --postcopy-mark FILE  (--listen) create FILE when the destination starts\n"
"                           running, for a script to act at that moment\n"
"  With --listen/--connect the source runs the workload and the engine; once\n"
"  the workload stopped it sends a digest of its final RAM (per MiB, from a\n"
"  digest per page kept up to date as it runs) as device state \"%s\",\n"
"  which the destination checks after finish (with --postcopy: after every\n"
"  page was pulled). Give both sides the same --size, --page-size, --seed,\n"
"  --device, --switchover-ack and --postcopy; the other live flags are the\n"
"  source's. The source reports the engine's figures; the destination its\n"
"  check and, when on the source's host, its own downtime.\n"
"\n"
"Output:\n"
"      --json               one JSON object on stdout instead of the table\n"
"                           (--live: JSON lines, one per round and event, the\n"
"                           summary last)\n"
"  -q, --quiet              one summary line; no progress bar or notices\n"
"  -h, --help               this text\n"
"\n"
"Measurement: the source's seconds run from connect to the return of finish,\n"
"less the time spent rewriting pages between rounds (after a sync, so nothing\n"
"is in flight); the manifest is built before the clock starts. The\n"
"destination's run from accept to finish; it verifies after that. GB/s =\n"
"pages queued x page size / seconds / 1e9, zero pages included. CPU is the\n"
"whole process (user + system, all threads) over the same interval; in\n"
"in-process mode that is both sides. Source and destination regions are\n"
"prefaulted (MAP_POPULATE) before timing starts, as a VMM's RAM is already\n"
"allocated. A lone source retries a refused connect until --timeout.\n"
"A progress bar appears on stderr when it is a terminal and a run passes 2 s.\n"
"With --live a line per round is printed as it ends, and a status line is\n"
"redrawn in place on stderr when it is a terminal.\n"
"\n"
"Exit status: 0 success, 1 migration or verification failed, 2 usage error.\n"
"\n"
"Examples:\n"
"  rmig-bench\n"
"  rmig-bench --channels 4 --size 4G --zero-fraction 0.3 --rounds 3\n"
"  rmig-bench --transport null --size 64G        # scheduler pages/s\n"
"  rmig-bench --listen 4444 --size 2G --json     # host B (destination)\n"
"  rmig-bench --connect hostB:4444 --size 2G --json   # host A (source)\n"
"  rmig-bench --listen 4444 --region /dev/shm/vm-ram-copy &\n"
"  rmig-bench --connect 4444 --region /dev/shm/vm-ram\n"
"  rmig-bench --transport rdma --host 10.0.2.15 -d rxe0 -x 1\n"
"  rmig-bench --transport file --file /var/tmp/vm.rmig --size 2G --drop-cache\n"
"  rmig-bench --live --dirty-rate 200M --downtime-limit 300\n"
"  rmig-bench --listen 4444 --live --size 2G --postcopy          # host B\n"
"  rmig-bench --connect hostB:4444 --live --size 2G --postcopy-after 2   # host A\n",
		RMIG_MAX_CHANNELS, RMIG_MAX_CHANNELS, BENCH_IDSTR, BENCH_IDSTR);
}

static void __attribute__((noreturn, format(printf, 1, 2))) usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("rmig-bench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'rmig-bench --help'.\n", stderr);
	exit(2);
}

static uint64_t parse_u64(const char *opt, const char *s, uint64_t min, uint64_t max)
{
	unsigned long long v;
	char *end;

	errno = 0;
	if (!*s || *s == '-' || *s == '+' || *s == ' ')
		usage_error("%s: '%s' is not a non-negative integer", opt, s);
	v = strtoull(s, &end, 10);
	if (*end)
		usage_error("%s: '%s' is not a non-negative integer", opt, s);
	if (errno == ERANGE)
		usage_error("%s: '%s' is too large", opt, s);
	if (v < min || v > max)
		usage_error("%s: %s is out of range %llu..%llu", opt, s, (unsigned long long)min,
			    (unsigned long long)max);
	return v;
}

static int64_t parse_s64(const char *opt, const char *s, int64_t min, int64_t max)
{
	long long v;
	char *end;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (!*s || *end || *s == ' ')
		usage_error("%s: '%s' is not an integer", opt, s);
	if (errno == ERANGE || v < min || v > max)
		usage_error("%s: %s is out of range %lld..%lld", opt, s, (long long)min,
			    (long long)max);
	return v;
}

/* A byte count with an optional binary suffix: 4096, 512K, 1G, 2GiB. */
static uint64_t parse_size(const char *opt, const char *s)
{
	static const char units[] = "KMGTP";
	unsigned long long v;
	const char *u;
	char *end;
	unsigned int shift = 0;

	errno = 0;
	if (*s < '0' || *s > '9')
		usage_error("%s: '%s' is not a size (e.g. 4096, 512K, 1G)", opt, s);
	v = strtoull(s, &end, 10);
	if (errno == ERANGE)
		usage_error("%s: '%s' is too large", opt, s);
	if (*end) {
		u = strchr(units, end[0] & ~0x20);
		if (!end[0] || !u)
			usage_error("%s: '%s' has an unknown suffix (use K, M, G, T)", opt, s);
		shift = 10 * (unsigned int)(u - units + 1);
		end++;
		if (*end == 'i' || *end == 'I')
			end++;
		if (*end == 'B' || *end == 'b')
			end++;
		if (*end)
			usage_error("%s: '%s' has an unknown suffix (use K, M, G, T)", opt, s);
	}
	if (shift && v > (UINT64_MAX >> shift))
		usage_error("%s: '%s' is too large", opt, s);
	return (uint64_t)v << shift;
}

static double parse_fraction(const char *opt, const char *s)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (!*s || *end || errno || !isfinite(v) || v < 0.0 || v > 1.0)
		usage_error("%s: '%s' is not a fraction between 0 and 1", opt, s);
	return v;
}

static enum bench_transport parse_transport(const char *s)
{
	if (!strcmp(s, "tcp"))
		return XPORT_TCP;
	if (!strcmp(s, "rdma"))
		return XPORT_RDMA;
	if (!strcmp(s, "null"))
		return XPORT_NULL;
	if (!strcmp(s, "file"))
		return XPORT_FILE;
	usage_error("--transport: '%s' is not one of tcp, rdma, null, file", s);
}

enum {
	OPT_PAGE_SIZE = 256,
	OPT_ZERO_FRACTION,
	OPT_DIRTY_FRACTION,
	OPT_ZERO_COPY,
	OPT_NO_ZERO_DETECT,
	OPT_ROUNDS,
	OPT_LISTEN,
	OPT_CONNECT,
	OPT_JSON,
	OPT_REGION,
	OPT_HUGEPAGES,
	OPT_IB_PORT,
	OPT_SIGNAL_EVERY,
	OPT_SQ_DEPTH,
	OPT_MR_SLICE,
	OPT_PPP,
	OPT_TIMEOUT,
	OPT_SEED,
	OPT_HOST,
	OPT_FILE,
	OPT_DIRECT_IO,
	OPT_DROP_CACHE,
	OPT_LIVE,
	OPT_DIRTY_RATE,
	OPT_PATTERN,
	OPT_VCPUS,
	OPT_DOWNTIME_LIMIT,
	OPT_MAX_ROUNDS,
	OPT_FAIL_ON_MAX_ROUNDS,
	OPT_LEGACY_SYNC,
	OPT_DEVICE,
	OPT_SWITCHOVER_ACK,
	OPT_VERBOSE,
	OPT_POSTCOPY,
	OPT_POSTCOPY_AFTER,
	OPT_POSTCOPY_BY_REQUEST,
	OPT_POSTCOPY_MARK,
	OPT_TLS,
	OPT_TLS_CREDS,
	OPT_PSK_FILE,
	OPT_INSECURE,
	OPT_NUMA,
	OPT_RAM_NODES,
};

static const struct option long_opts[] = {
	{ "transport", required_argument, NULL, 't' },
	{ "channels", required_argument, NULL, 'c' },
	{ "size", required_argument, NULL, 's' },
	{ "page-size", required_argument, NULL, OPT_PAGE_SIZE },
	{ "zero-fraction", required_argument, NULL, OPT_ZERO_FRACTION },
	{ "dirty-fraction", required_argument, NULL, OPT_DIRTY_FRACTION },
	{ "zero-copy", no_argument, NULL, OPT_ZERO_COPY },
	{ "no-zero-detect", no_argument, NULL, OPT_NO_ZERO_DETECT },
	{ "rounds", required_argument, NULL, OPT_ROUNDS },
	{ "listen", required_argument, NULL, OPT_LISTEN },
	{ "connect", required_argument, NULL, OPT_CONNECT },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "region", required_argument, NULL, OPT_REGION },
	{ "hugepages", no_argument, NULL, OPT_HUGEPAGES },
	{ "ib-dev", required_argument, NULL, 'd' },
	{ "ib-port", required_argument, NULL, OPT_IB_PORT },
	{ "gid-index", required_argument, NULL, 'x' },
	{ "signal-every", required_argument, NULL, OPT_SIGNAL_EVERY },
	{ "sq-depth", required_argument, NULL, OPT_SQ_DEPTH },
	{ "mr-slice", required_argument, NULL, OPT_MR_SLICE },
	{ "pages-per-packet", required_argument, NULL, OPT_PPP },
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "seed", required_argument, NULL, OPT_SEED },
	{ "host", required_argument, NULL, OPT_HOST },
	{ "file", required_argument, NULL, OPT_FILE },
	{ "direct-io", no_argument, NULL, OPT_DIRECT_IO },
	{ "drop-cache", no_argument, NULL, OPT_DROP_CACHE },
	{ "live", no_argument, NULL, OPT_LIVE },
	{ "dirty-rate", required_argument, NULL, OPT_DIRTY_RATE },
	{ "pattern", required_argument, NULL, OPT_PATTERN },
	{ "vcpus", required_argument, NULL, OPT_VCPUS },
	{ "downtime-limit", required_argument, NULL, OPT_DOWNTIME_LIMIT },
	{ "max-rounds", required_argument, NULL, OPT_MAX_ROUNDS },
	{ "fail-on-max-rounds", no_argument, NULL, OPT_FAIL_ON_MAX_ROUNDS },
	{ "legacy-sync", no_argument, NULL, OPT_LEGACY_SYNC },
	{ "device", required_argument, NULL, OPT_DEVICE },
	{ "switchover-ack", no_argument, NULL, OPT_SWITCHOVER_ACK },
	{ "verbose", no_argument, NULL, OPT_VERBOSE },
	{ "postcopy", no_argument, NULL, OPT_POSTCOPY },
	{ "postcopy-after", required_argument, NULL, OPT_POSTCOPY_AFTER },
	{ "postcopy-by-request", no_argument, NULL, OPT_POSTCOPY_BY_REQUEST },
	{ "postcopy-mark", required_argument, NULL, OPT_POSTCOPY_MARK },
	{ "tls", no_argument, NULL, OPT_TLS },
	{ "tls-creds", required_argument, NULL, OPT_TLS_CREDS },
	{ "psk-file", required_argument, NULL, OPT_PSK_FILE },
	{ "insecure", no_argument, NULL, OPT_INSECURE },
	{ "numa", required_argument, NULL, OPT_NUMA },
	{ "ram-nodes", required_argument, NULL, OPT_RAM_NODES },
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static void parse_args(int argc, char **argv, struct bench_cfg *cfg)
{
	const char *listen = NULL, *connect = NULL;
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":t:c:s:d:x:qh", long_opts, NULL)) != -1) {
		const char *name = optind > 1 ? argv[optind - 1] : "";

		switch (c) {
		case 't':
			cfg->transport = parse_transport(optarg);
			break;
		case 'c':
			cfg->opts.channels = (uint32_t)parse_u64("--channels", optarg, 1,
								  RMIG_MAX_CHANNELS);
			cfg->channels_given = true;
			break;
		case 's':
			cfg->size = parse_size("--size", optarg);
			cfg->size_given = true;
			break;
		case OPT_PAGE_SIZE: {
			uint64_t ps = parse_size("--page-size", optarg);

			if (ps < 512 || ps > (1u << 30) || (ps & (ps - 1)))
				usage_error("--page-size: '%s' is not a power of two from 512 to 1G",
					    optarg);
			cfg->page_size = (uint32_t)ps;
			break;
		}
		case OPT_ZERO_FRACTION:
			cfg->zero_fraction = parse_fraction("--zero-fraction", optarg);
			break;
		case OPT_DIRTY_FRACTION:
			cfg->dirty_fraction = parse_fraction("--dirty-fraction", optarg);
			break;
		case OPT_ZERO_COPY:
			cfg->opts.flags |= RMIG_F_ZERO_COPY;
			break;
		case OPT_NO_ZERO_DETECT:
			cfg->opts.flags |= RMIG_F_NO_ZERO_DETECT;
			break;
		case OPT_ROUNDS:
			cfg->rounds = (uint32_t)parse_u64("--rounds", optarg, 1, 1000000);
			break;
		case OPT_LISTEN:
			listen = optarg;
			break;
		case OPT_CONNECT:
			connect = optarg;
			break;
		case OPT_JSON:
			cfg->json = true;
			break;
		case OPT_REGION:
			cfg->region = optarg;
			break;
		case OPT_HUGEPAGES:
			region_use_hugepages(true);
			break;
		case OPT_NUMA:
		case OPT_RAM_NODES: {
			char why[256];

			if (c == OPT_NUMA ? bench_parse_numa(optarg, &cfg->opts, why, sizeof(why))
					  : bench_parse_ram_nodes(optarg, why, sizeof(why)))
				usage_error("%s", why);
			break;
		}
		case 'd':
			cfg->opts.ib_dev = optarg;
			break;
		case OPT_IB_PORT:
			cfg->opts.ib_port = (int32_t)parse_u64("--ib-port", optarg, 0, 255);
			break;
		case 'x':
			cfg->opts.gid_index = (int32_t)parse_s64("--gid-index", optarg, -1, 65535);
			break;
		case OPT_SIGNAL_EVERY:
			cfg->opts.signal_every = (uint32_t)parse_u64("--signal-every", optarg, 1,
								      UINT32_MAX);
			break;
		case OPT_SQ_DEPTH:
			cfg->opts.sq_depth = (uint32_t)parse_u64("--sq-depth", optarg, 1, UINT32_MAX);
			break;
		case OPT_MR_SLICE:
			cfg->opts.mr_slice = parse_size("--mr-slice", optarg);
			if (!cfg->opts.mr_slice)
				usage_error("--mr-slice: must be larger than 0");
			break;
		case OPT_PPP:
			cfg->opts.pages_per_packet = (uint32_t)parse_u64("--pages-per-packet",
									  optarg, 1, 4096);
			break;
		case OPT_TIMEOUT:
			cfg->opts.timeout_ms = (int32_t)parse_u64("--timeout", optarg, 1, INT32_MAX);
			break;
		case OPT_SEED:
			cfg->seed = parse_u64("--seed", optarg, 0, UINT64_MAX);
			break;
		case OPT_HOST:
			cfg->host = optarg;
			break;
		case OPT_FILE:
			cfg->file = optarg;
			break;
		case OPT_DIRECT_IO:
			cfg->opts.flags |= RMIG_F_DIRECT_IO;
			break;
		case OPT_DROP_CACHE:
			cfg->drop_cache = true;
			break;
		case OPT_LIVE:
			cfg->live.on = true;
			break;
		case OPT_DIRTY_RATE:
			cfg->live.dirty_rate = parse_size("--dirty-rate", optarg);
			break;
		case OPT_PATTERN:
			cfg->live.pattern = wl_pattern_parse(optarg);
			if (cfg->live.pattern < 0)
				usage_error("--pattern: '%s' is not one of random, seq, hot", optarg);
			break;
		case OPT_VCPUS:
			cfg->live.threads = (unsigned int)parse_u64("--vcpus", optarg, 1, 256);
			break;
		case OPT_DOWNTIME_LIMIT:
			cfg->live.downtime_limit_ms = (uint32_t)parse_u64("--downtime-limit", optarg,
									   0, UINT32_MAX / 2);
			break;
		case OPT_MAX_ROUNDS:
			cfg->live.max_rounds = (uint32_t)parse_u64("--max-rounds", optarg, 1, 1000000);
			break;
		case OPT_FAIL_ON_MAX_ROUNDS:
			cfg->live.fail_on_max_rounds = true;
			break;
		case OPT_LEGACY_SYNC:
			cfg->live.legacy_sync = true;
			break;
		case OPT_DEVICE:
			cfg->live.dev_size = parse_size("--device", optarg);
			break;
		case OPT_SWITCHOVER_ACK:
			cfg->live.dev_ack = true;
			break;
		case OPT_VERBOSE:
			cfg->live.verbose = true;
			break;
		case OPT_POSTCOPY:
			cfg->live.postcopy = true;
			break;
		case OPT_POSTCOPY_BY_REQUEST:
			cfg->live.postcopy = true;
			cfg->live.by_request = true;
			break;
		case OPT_POSTCOPY_MARK:
			cfg->live.postcopy_mark = optarg;
			break;
		case OPT_POSTCOPY_AFTER:
			cfg->live.postcopy = true;
			cfg->live.postcopy_after =
				(uint32_t)parse_u64("--postcopy-after", optarg, 1, 1000000);
			break;
		case OPT_TLS:
			cfg->opts.flags |= RMIG_F_TLS;
			break;
		case OPT_TLS_CREDS:
			cfg->opts.flags |= RMIG_F_TLS;
			cfg->opts.tls_creds = optarg;
			break;
		case OPT_PSK_FILE:
			cfg->opts.psk_file = optarg;
			break;
		case OPT_INSECURE:
			cfg->opts.flags |= RMIG_F_INSECURE;
			break;
		case 'q':
			cfg->quiet = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case ':':
			usage_error("option '%s' needs an argument", name);
		default:
			if (optopt && optopt < 256)
				usage_error("unknown option '-%c'", optopt);
			usage_error("unknown option '%s'", name);
		}
	}
	if (optind < argc)
		usage_error("unexpected argument '%s'", argv[optind]);
	if (listen && connect)
		usage_error("--listen and --connect exclude each other (one process per side)");
	if (listen) {
		cfg->role = ROLE_DESTINATION;
		cfg->addr = listen;
	} else if (connect) {
		cfg->role = ROLE_SOURCE;
		cfg->addr = connect;
	}
	if (cfg->addr && !cfg->addr[0])
		usage_error("--%s needs HOST:PORT or PORT", listen ? "listen" : "connect");
}

/* MemAvailable from /proc/meminfo in bytes, or 0 when unknown. */
static uint64_t mem_available(void)
{
	unsigned long long kib = 0;
	char line[256];
	FILE *f = fopen("/proc/meminfo", "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "MemAvailable: %llu kB", &kib) == 1)
			break;
	fclose(f);
	return (uint64_t)kib * 1024;
}

/*
 * Anonymous regions are populated up front; asking for more than the
 * machine has would end in the OOM killer rather than an error message.
 */
static void check_memory(const struct bench_cfg *cfg)
{
	uint64_t need = 0, avail = mem_available();

	if (cfg->transport == XPORT_NULL)
		return; /* never touched */
	if (!cfg->region)
		need += cfg->size;
	if (cfg->role == ROLE_INPROC)
		need += cfg->size; /* the destination's copy */
	if (avail && need > avail)
		usage_error("this run needs %.1f GiB of RAM (%s), only %.1f GiB is available",
			    (double)need / (1 << 30),
			    cfg->role == ROLE_INPROC ? "source and destination in one process"
						     : "the region",
			    (double)avail / (1 << 30));
}

static void check_cfg(struct bench_cfg *cfg)
{
	static const char *const names[] = { "tcp", "rdma", "null", "file" };

	if (cfg->transport == XPORT_NULL && cfg->role != ROLE_INPROC)
		usage_error("--transport null has no destination: drop --listen/--connect");
	if (cfg->transport == XPORT_FILE && cfg->role != ROLE_INPROC)
		usage_error("--transport file saves and restores in one process: drop --listen/--connect");
	if ((cfg->transport == XPORT_FILE) != !!cfg->file)
		usage_error(cfg->file ? "--file needs --transport file"
				      : "--transport file needs --file PATH");
	if (cfg->drop_cache && cfg->transport != XPORT_FILE)
		usage_error("--drop-cache needs --transport file");
	if ((cfg->opts.flags & RMIG_F_TLS) && cfg->transport != XPORT_TCP)
		usage_error("--tls and --tls-creds are for --transport tcp");
	if ((cfg->opts.flags & RMIG_F_TLS) && (cfg->opts.flags & RMIG_F_ZERO_COPY))
		usage_error("--zero-copy cannot be combined with --tls (TLS encrypts into new buffers)");
	if (cfg->live.on && (cfg->transport == XPORT_FILE || cfg->region))
		usage_error("--live migrates generated RAM over tcp, rdma or null:"
			    " drop --region/--transport file");
	if (!cfg->live.on && cfg->live.postcopy)
		usage_error("--postcopy needs --live");
	if (cfg->live.postcopy_mark && (!cfg->live.postcopy || cfg->role != ROLE_DESTINATION))
		usage_error("--postcopy-mark is the destination's (--listen) and needs --postcopy");
	if (cfg->live.postcopy && cfg->transport == XPORT_NULL)
		usage_error("--postcopy needs a destination (not --transport null)");
	/* rdma: the source's RAM readable by the destination, which pulls by RDMA READ */
	if (cfg->live.postcopy && !cfg->live.by_request)
		cfg->opts.flags |= RMIG_F_POSTCOPY;
	if (!cfg->live.on && (cfg->live.fail_on_max_rounds || cfg->live.legacy_sync ||
			      cfg->live.dev_size || cfg->live.dev_ack || cfg->live.verbose))
		usage_error("--fail-on-max-rounds, --legacy-sync, --device, --switchover-ack and"
			    " --verbose need --live");
	if (cfg->live.dev_ack && !cfg->live.dev_size)
		usage_error("--switchover-ack needs --device SIZE");
	if (!rmig_transport_available(names[cfg->transport]))
		usage_error("--transport %s: not built into this librmig%s", names[cfg->transport],
			    cfg->transport == XPORT_RDMA
				    ? " (rebuild with libibverbs and librdmacm headers installed)"
				    : "");
	if (cfg->region) {
		struct stat st;

		if (stat(cfg->region, &st) < 0)
			usage_error("--region %s: %s", cfg->region, strerror(errno));
		if (!S_ISREG(st.st_mode))
			usage_error("--region %s: not a regular file", cfg->region);
		if (st.st_size == 0)
			usage_error("--region %s: the file is empty", cfg->region);
		if ((uint64_t)st.st_size % cfg->page_size)
			usage_error("--region %s: its size %lld is not a multiple of the page size %u"
				    " (see --page-size)",
				    cfg->region, (long long)st.st_size, cfg->page_size);
		if (cfg->size_given && cfg->size != (uint64_t)st.st_size)
			usage_error("--size %llu differs from the size of --region %s (%lld);"
				    " leave --size out",
				    (unsigned long long)cfg->size, cfg->region, (long long)st.st_size);
		cfg->size = (uint64_t)st.st_size;
	}
	if (cfg->transport == XPORT_NULL && !cfg->size_given && !cfg->region)
		cfg->size = DEFAULT_NULL_SIZE; /* never touched; enough pages to time */
	if (!cfg->size)
		usage_error("--size: must be larger than 0");
	if (cfg->size % cfg->page_size)
		usage_error("--size %llu is not a multiple of the page size %u",
			    (unsigned long long)cfg->size, cfg->page_size);
	if (cfg->size > (uint64_t)SIZE_MAX / 2)
		usage_error("--size %llu is too large for this machine",
			    (unsigned long long)cfg->size);
	check_memory(cfg);
}

int main(int argc, char **argv)
{
	struct bench_cfg cfg = {
		.role = ROLE_INPROC,
		.transport = XPORT_TCP,
		.host = "127.0.0.1",
		.size = DEFAULT_SIZE,
		.page_size = DEFAULT_PAGE,
		.dirty_fraction = DEFAULT_DIRTY,
		.rounds = 1,
		.seed = 1,
	};

	rmig_opts_init(&cfg.opts);
	cfg.live = (struct bench_live){ .dirty_rate = 200ull << 20, .pattern = WL_RANDOM,
					.threads = 1, .downtime_limit_ms = 300, .max_rounds = 30 };
	parse_args(argc, argv, &cfg);
	check_cfg(&cfg);
	bench_ram_stripe((uint64_t)cfg.opts.pages_per_packet * cfg.page_size);
	cfg.progress = isatty(STDERR_FILENO) && !cfg.json && !cfg.quiet;

	if (cfg.live.on)
		return run_live(&cfg);
	if (cfg.transport == XPORT_FILE)
		return run_file(&cfg);
	switch (cfg.role) {
	case ROLE_SOURCE:
		return run_source(&cfg);
	case ROLE_DESTINATION:
		return run_destination(&cfg);
	case ROLE_INPROC:
	default:
		return run_inproc(&cfg);
	}
}
