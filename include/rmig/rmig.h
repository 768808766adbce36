/* SPDX-License-Identifier: MIT */
/*
 * rmig: move a virtual machine's RAM and device state between hosts the way
 * QEMU's multifd live migration does, over RDMA, TCP or a file.
 *
 * This header is the manual. Conventions that hold for every function:
 *
 *  - Functions returning int return 0 (or a documented non-negative value) on
 *    success and a negative errno on failure. They never set errno for the
 *    caller and never return -1 with errno.
 *  - Handles are opaque and created/destroyed in pairs; every *_destroy()
 *    accepts NULL.
 *  - After a failure, rmig_src_error()/rmig_dst_error() return one line that
 *    names the problem (the first failure wins; later ones are consequences).
 *  - Once a handle has failed it stays failed: every later call returns the
 *    same negative errno. Destroy it and start again.
 *
 * Threads: a source or destination handle is driven by one "main" thread.
 * Exceptions are named on each function (device state may be queued from
 * other threads; cancel may be called from anywhere).
 */
#ifndef RMIG_RMIG_H
#define RMIG_RMIG_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RMIG_VERSION_MAJOR 0
#define RMIG_VERSION_MINOR 1

/** Largest number of channels a migration may use. */
#define RMIG_MAX_CHANNELS 64
/** Largest RAM block name, including the terminating NUL. */
#define RMIG_BLOCK_NAME_MAX 256
/** Largest device-state id string, including the terminating NUL. */
#define RMIG_IDSTR_MAX 256
/** Largest number of RAM blocks in one migration. */
#define RMIG_MAX_BLOCKS 1024
/** Device state larger than this is split into several chunks on the wire. */
#define RMIG_DEV_CHUNK_MAX (1u << 20)
/** Largest number of rails ("rdma:H1,H2,...:PORT") in one migration. */
#define RMIG_MAX_RAILS 8

struct rmig_src;
struct rmig_dst;

/**
 * struct rmig_block_desc - one region of guest RAM
 * @name: unique name, at most RMIG_BLOCK_NAME_MAX - 1 bytes (copied)
 * @host: the region's address in this process; must stay mapped and must not
 *        be unmapped until the handle is destroyed
 * @length: size in bytes, a non-zero multiple of @page_size
 * @page_size: power of two from 512 bytes to 1 GiB
 *
 * Source and destination describe the same blocks in the same order; the
 * destination refuses a migration whose table differs in any name, length or
 * page size.
 */
struct rmig_block_desc {
	const char *name;
	void *host;
	uint64_t length;
	uint32_t page_size;
};

/** enum rmig_flags - bits for &rmig_opts.flags */
enum rmig_flags {
	/** tcp: send pages with MSG_ZEROCOPY; completions are drained at every sync */
	RMIG_F_ZERO_COPY = 1u << 0,
	/** source: send every page as data, never as a zero-page offset */
	RMIG_F_NO_ZERO_DETECT = 1u << 1,
	/** file: move page data with O_DIRECT (bypassing the page cache) when its
	 *  memory, file offset and length are 4 KiB aligned; metadata still goes
	 *  through the page cache. Refused with -EINVAL where the filesystem
	 *  has no O_DIRECT (tmpfs before Linux 6.6), leaving an existing file
	 *  untouched. Other transports ignore it. */
	RMIG_F_DIRECT_IO = 1u << 2,
	/** source: it may switch to postcopy (RMIG_LIVE_POSTCOPY, rmig/live.h),
	 *  where the destination pulls the pages still missing from the
	 *  source's RAM. rdma registers the source's RAM for remote reads only
	 *  with this flag and needs it for postcopy: the destination then
	 *  pulls by one-sided RDMA READ. tcp pulls by request and ignores it. */
	RMIG_F_POSTCOPY = 1u << 3,
	/** destination: listen on an address other than loopback without a
	 *  pre-shared key (no authentication: anyone who can reach the port can
	 *  write guest RAM). Refused without this flag. */
	RMIG_F_INSECURE = 1u << 4,
	/** tcp: carry the control connection and every channel in TLS 1.3
	 *  (credentials from @tls_creds, or the pre-shared key); both sides
	 *  need it. Other transports, and RMIG_F_ZERO_COPY with it, are
	 *  refused with -EINVAL (docs/tls.md) */
	RMIG_F_TLS = 1u << 5,
};

/**
 * enum rmig_numa - &rmig_opts.numa: NUMA placement and steering of an rdma
 * migration over several rails (docs/rdma.md, "NUMA")
 *
 * Placement: each channel's thread, stream buffers and completion queue on
 * the NUMA node of its rail's device. Steering (source): a batch of pages is
 * handed to an idle channel whose rail is on the node that holds the pages'
 * memory, found once at rmig_src_connect() (move_pages(2), one sampled page
 * per 64 KiB, or per 1/65536 of a block over 4 GiB); when no channel on that node turns idle
 * within about half a batch's transmit time (or no rail is on that node),
 * any idle channel takes it, so no rail waits for work its node lacks.
 * Both need two nodes or more and rails whose devices have a node (or nodes
 * given in &rmig_opts.numa_node); otherwise they are off at no cost.
 */
enum rmig_numa {
	/** placement and steering where the topology allows (default); the
	 *  environment variable RMIG_RDMA_NUMA (off, auto, place, or rail
	 *  nodes "N,M,...") is read only when &rmig_opts.numa is this and no
	 *  nodes are given */
	RMIG_NUMA_AUTO = 0,
	/** neither: channels run and allocate where the scheduler puts them */
	RMIG_NUMA_OFF = 1,
	/** placement only: batches go to the next idle channel as without
	 *  NUMA, while the local/remote page figures are still counted */
	RMIG_NUMA_PLACE = 2,
};

/**
 * struct rmig_opts - parameters shared by source and destination
 * @size: sizeof(struct rmig_opts); set by rmig_opts_init()
 * @flags: enum rmig_flags
 * @channels: source: channels to open (1..RMIG_MAX_CHANNELS, default 2);
 *            destination: the most it accepts (default RMIG_MAX_CHANNELS);
 *            file destination: threads that load the file (2 after
 *            rmig_opts_init(), RMIG_MAX_CHANNELS with NULL opts)
 * @pages_per_packet: pages in one RAM batch (1..4096, default 128, i.e.
 *                    512 KiB of 4 KiB pages); the destination takes the
 *                    source's value if it is within its own limit
 * @timeout_ms: limit for connecting, accepting, the handshake and the finish
 *              exchange, and for a peer that stops answering (default 30000)
 * @ib_dev: rdma: device name (NULL: the device that owns the address)
 * @ib_port: rdma: port number (0: the port that owns the address)
 * @gid_index: rdma: GID index (-1: resolved from the address)
 * @signal_every: rdma: request a completion every this many WRs (default 64)
 * @sq_depth: rdma: send queue depth per channel (default 512)
 * @mr_slice: rdma: largest memory region; larger blocks are registered as
 *            several MRs, in parallel (default 2 GiB)
 * @psk_file: path of a pre-shared key file (32 to 4096 bytes; refused if
 *            group or others have any access to it); NULL: none, or @psk.
 *            With a key both ends authenticate each other, and every
 *            channel, before any RAM is exposed or sent (docs/security.md);
 *            both ends need the same key. The file is read at listen or
 *            connect.
 * @psk: pre-shared key bytes (copied); used when @psk_file is NULL
 * @psk_len: bytes at @psk (at least 32 when @psk is set)
 * @tls_creds: tcp with RMIG_F_TLS: directory of X.509 credentials
 *             (NULL: TLS with the pre-shared key)
 * @numa: rdma with several rails: enum rmig_numa (default RMIG_NUMA_AUTO);
 *        a value past RMIG_NUMA_PLACE is refused with -EINVAL
 * @numa_rails: entries of @numa_node given (0: each rail's node is its
 *              device's); when non-zero it must equal the number of rails,
 *              or listen/connect fails with -EINVAL naming both counts
 * @numa_node: rail k's NUMA node by hand, -1 for none (0..127); a node this
 *             host does not have fails listen/connect with -EINVAL;
 *             entries past @numa_rails must be zero
 * @reserved: must be zero
 */
struct rmig_opts {
	uint32_t size;
	uint32_t flags;
	uint32_t channels;
	uint32_t pages_per_packet;
	int32_t timeout_ms;
	int32_t ib_port;
	const char *ib_dev;
	int32_t gid_index;
	uint32_t signal_every;
	uint32_t sq_depth;
	uint32_t pad0;
	uint64_t mr_slice;
	const char *psk_file;
	const void *psk;
	uint32_t psk_len;
	uint32_t pad1;
	const char *tls_creds;
	uint32_t numa;
	uint32_t numa_rails;
	int8_t numa_node[RMIG_MAX_RAILS];
	uint64_t reserved[2];
};

/**
 * rmig_opts_init() - fill @opts with the defaults
 * @opts: caller-owned structure
 */
void rmig_opts_init(struct rmig_opts *opts);

/**
 * struct rmig_stats - counters of one side of a migration
 * @size: sizeof(struct rmig_stats); the caller sets it
 * @packets: RAM and device-state packets sent or received
 * @normal_pages: pages carried as data
 * @zero_pages: pages carried as an offset only
 * @data_bytes: bytes of page data carried (normal_pages x page size)
 * @wire_bytes: every byte the transport carried, headers included
 * @dev_chunks: device-state chunks
 * @dev_bytes: device-state bytes
 * @sync_rounds: completed sync-all rounds
 * @zc_sends: tcp: sends made with MSG_ZEROCOPY
 * @zc_copied: tcp: zero-copy sends the kernel completed by copying
 * @reg_ns: time spent registering memory (rdma)
 * @rdma_writes: RDMA WRITE work requests posted (rdma)
 * @zero_pages_written: destination: zero pages that had to be cleared
 * @channels: channels in use (on the destination: as the source opened them)
 * @conns_dropped: destination: connections that did not get in (no valid
 *                 first message, failed authentication, not a channel of
 *                 the session) and were closed while it waited on
 * @tls_channels: tcp with RMIG_F_TLS: channels carried in TLS 1.3
 * @ktls_channels: ... of which the kernel encrypts the sends (kTLS);
 *                 the others go through OpenSSL in user space
 * @mw_channels: rdma: channels whose destination RAM is reachable only
 *               through type 2 memory windows bound to that channel's QP;
 *               0 over rdma means the device has none and the rkeys are
 *               the MRs' own, scoped by the migration's protection domain
 * @numa_local_pages: source, NUMA figures on (enum rmig_numa): data pages
 *                    whose memory is on the node of the rail that carried
 *                    them
 * @numa_remote_pages: ... on another node (pages whose node is not known,
 *                     e.g. never touched, count in neither)
 * @reserved: zero
 */
struct rmig_stats {
	uint32_t size;
	uint32_t pad0;
	uint64_t packets;
	uint64_t normal_pages;
	uint64_t zero_pages;
	uint64_t data_bytes;
	uint64_t wire_bytes;
	uint64_t dev_chunks;
	uint64_t dev_bytes;
	uint64_t sync_rounds;
	uint64_t zc_sends;
	uint64_t zc_copied;
	uint64_t reg_ns;
	uint64_t rdma_writes;
	uint64_t zero_pages_written;
	uint64_t channels;
	uint64_t conns_dropped;
	uint64_t tls_channels;
	uint64_t ktls_channels;
	uint64_t mw_channels;
	uint64_t numa_local_pages;
	uint64_t numa_remote_pages;
	uint64_t reserved[2];
};

/* ------------------------------------------------------------------------ */
/* Source                                                                     */
/* ------------------------------------------------------------------------ */

/**
 * rmig_src_create() - make a source handle
 * @opts: parameters (copied); NULL for the defaults
 * @srcp: receives the handle
 *
 * Return: 0, -EINVAL for bad parameters, -ENOMEM.
 */
int rmig_src_create(const struct rmig_opts *opts, struct rmig_src **srcp);

/**
 * rmig_src_add_block() - describe one RAM block to send pages from
 * @src: handle, before rmig_src_connect()
 * @desc: the block (name copied; memory referenced, not copied)
 *
 * Return: the block's index (used by rmig_src_queue_page()), or -EINVAL for a
 * bad description or duplicate name, -E2BIG past RMIG_MAX_BLOCKS, -EBUSY
 * after connect.
 */
int rmig_src_add_block(struct rmig_src *src, const struct rmig_block_desc *desc);

/**
 * rmig_src_connect() - open the control connection and every channel
 * @src: handle with its blocks added
 * @uri: "tcp:HOST:PORT", "rdma:HOST:PORT", "file:PATH" or "null:" (channels
 *       that complete every payload without I/O; for measuring the scheduler)
 *
 * Sends the RAM-block table; the destination refuses a table that differs
 * from its own, and that refusal is returned here with its reason.
 * Starts one thread per channel.
 *
 * "file:PATH" saves the migration to a file (created or truncated, mode
 * 0600) instead of a peer: every page has a fixed place in it
 * (docs/file-format.md), the channels write pages there in parallel, a page
 * sent again in a later round overwrites its earlier copy, and there is no
 * handshake. The file is marked complete, and synced to disk, only by a
 * successful rmig_src_finish(); a file whose save stopped earlier is refused
 * when loaded. See RMIG_F_DIRECT_IO.
 *
 * Return: 0; -EINVAL bad URI; -EPROTONOSUPPORT transport not built;
 * -ECONNREFUSED, -ETIMEDOUT, -EPROTO (handshake refused), -ENOMEM, or the
 * transport's error. rmig_src_error() names it.
 */
int rmig_src_connect(struct rmig_src *src, const char *uri);

/**
 * rmig_src_queue_page() - queue one page for sending
 * @src: connected handle
 * @block: index from rmig_src_add_block()
 * @offset: byte offset of the page in the block, a multiple of its page size
 *
 * Pages are batched per block; a full batch (or a page of another block) is
 * handed to the next idle channel without copying. The page's memory is read
 * when the channel transmits, so a page rewritten after this call may travel
 * with either content: queue it again in a later round (as a dirty log does).
 * Call from the main thread only.
 *
 * Return: 0; -EINVAL bad block or offset; the migration's error if it failed.
 */
int rmig_src_queue_page(struct rmig_src *src, unsigned int block, uint64_t offset);

/**
 * rmig_src_queue_device_state() - queue a device's state
 * @src: connected handle
 * @idstr: device id, at most RMIG_IDSTR_MAX - 1 bytes
 * @instance: device instance id
 * @data: the bytes (copied before return)
 * @len: number of bytes; may be 0
 *
 * The destination delivers device state to its callback in the order it was
 * queued on the source, whatever channels it travelled on. Thread safety:
 * may be called from threads other than the main one (calls from several
 * threads are serialized among themselves, and run concurrently with RAM).
 *
 * Return: 0, -EINVAL, -ENOMEM, or the migration's error.
 */
int rmig_src_queue_device_state(struct rmig_src *src, const char *idstr, uint32_t instance,
				const void *data, size_t len);

/** enum rmig_sync_kind - what rmig_src_sync() waits for */
enum rmig_sync_kind {
	/** everything queued so far has been handed to the transport, and the
	 *  transport no longer references source memory (zero-copy flush,
	 *  RDMA WRITE completions) */
	RMIG_SYNC_LOCAL = 0,
	/** LOCAL, plus a fence on every channel behind its data: when the
	 *  destination's rmig_dst_wait_sync() returns this round, every page
	 *  queued before it is in destination RAM */
	RMIG_SYNC_ALL = 1,
};

/**
 * rmig_src_sync() - end a round
 * @src: connected handle
 * @kind: enum rmig_sync_kind
 *
 * Main thread only.
 *
 * Return: 0 or the migration's error.
 */
int rmig_src_sync(struct rmig_src *src, enum rmig_sync_kind kind);

/**
 * rmig_src_finish() - send everything left, end the migration, and wait for
 * the destination to confirm that it received and verified all of it
 * @src: connected handle
 *
 * With "file:", returns 0 only once the page bitmaps, the device state and
 * the header with its "complete" flag are written and fdatasync()ed.
 *
 * Return: 0 only if the destination confirmed; otherwise the error
 * (-EPROTO when the destination found a mismatch; rmig_src_error() says
 * which). Main thread only.
 */
int rmig_src_finish(struct rmig_src *src);

/**
 * rmig_src_cancel() - abort the migration from any thread
 * @src: handle
 *
 * Wakes every blocked call, which then returns -ECANCELED. Source RAM is
 * never written by rmig, cancelled or not.
 */
void rmig_src_cancel(struct rmig_src *src);

/**
 * rmig_src_get_stats() - read the counters
 * @src: handle
 * @stats: caller-owned; set stats->size first (older callers get a prefix)
 *
 * Thread safe; counters are read without stopping the channels.
 *
 * Return: 0 or -EINVAL.
 */
int rmig_src_get_stats(struct rmig_src *src, struct rmig_stats *stats);

/**
 * rmig_src_error() - the first failure, in words
 * @src: handle
 *
 * Return: a string owned by @src, "" when nothing has failed.
 */
const char *rmig_src_error(struct rmig_src *src);

/**
 * rmig_src_destroy() - cancel if still running, join threads, free
 * @src: handle or NULL
 */
void rmig_src_destroy(struct rmig_src *src);

/* ------------------------------------------------------------------------ */
/* Destination                                                                */
/* ------------------------------------------------------------------------ */

/**
 * typedef rmig_dev_state_fn - receives one device-state chunk
 * @arg: the pointer given to rmig_dst_set_device_state_cb()
 * @idstr: device id
 * @instance: instance id
 * @seq: position of this chunk in the source's queue order (0, 1, 2, ...)
 * @data: the bytes, valid only during the call
 * @len: number of bytes
 *
 * Called from a channel thread, never concurrently with itself, in @seq
 * order. A non-zero return aborts the migration.
 */
typedef int (*rmig_dev_state_fn)(void *arg, const char *idstr, uint32_t instance, uint64_t seq,
				 const void *data, size_t len);

/**
 * rmig_dst_create() - make a destination handle
 * @opts: parameters (copied); NULL for the defaults
 * @dstp: receives the handle
 *
 * Return: 0, -EINVAL, -ENOMEM.
 */
int rmig_dst_create(const struct rmig_opts *opts, struct rmig_dst **dstp);

/**
 * rmig_dst_add_block() - describe one RAM block that pages land in
 * @dst: handle, before rmig_dst_listen()
 * @desc: the block; only pages inside it are ever written
 *
 * Return: the block's index, or as rmig_src_add_block().
 */
int rmig_dst_add_block(struct rmig_dst *dst, const struct rmig_block_desc *desc);

/**
 * rmig_dst_set_device_state_cb() - where device state goes
 * @dst: handle, before rmig_dst_accept()
 * @fn: callback, or NULL to drop device state
 * @arg: passed to @fn
 *
 * Return: 0 or -EBUSY after accept.
 */
int rmig_dst_set_device_state_cb(struct rmig_dst *dst, rmig_dev_state_fn fn, void *arg);

/**
 * rmig_dst_listen() - start listening
 * @dst: handle with its blocks added
 * @uri: "tcp:HOST:PORT" or "rdma:HOST:PORT"; PORT 0 picks a free port
 *       (see rmig_dst_port()); or "file:PATH" to load a saved migration
 *
 * "file:PATH" opens the file and checks everything but the page data before
 * any RAM is touched: magic, format version, header checksum, the complete
 * flag, the RAM-block table against the local blocks (names, lengths, page
 * sizes), every area lying inside the file and apart from the others, the
 * bitmaps (checksums), that no page the bitmap marks present lies past the
 * end of the file, and every device-state record (checksums, sequence).
 * Then rmig_dst_accept() returns at once, rmig_dst_wait_sync() returns 1
 * (a file has no rounds), and rmig_dst_finish() loads it.
 * rmig_dst_port() returns -ENOSYS.
 *
 * A peer-facing transport (tcp, rdma) on an address other than loopback
 * (127.x.x.x, ::1, localhost) needs a pre-shared key (&rmig_opts.psk_file
 * or &rmig_opts.psk) or RMIG_F_INSECURE; without either it is refused with
 * -EPERM. The key file is read and checked here.
 *
 * Return: 0, -EINVAL, -EPROTONOSUPPORT, -EADDRINUSE, -ENODEV (no RDMA device
 * for the address), -EPERM (see above), a key file's error (-ENOENT,
 * -EPERM for one others may read, -EINVAL for a short one), or the
 * transport's error; for "file:", -ENOENT and
 * other open() errors, or -EPROTO for a file that is not a complete rmig
 * save matching the local blocks (rmig_dst_error() names the problem).
 */
int rmig_dst_listen(struct rmig_dst *dst, const char *uri);

/**
 * rmig_dst_port() - the port rmig_dst_listen() bound
 * @dst: listening handle
 *
 * Return: the port, or a negative errno if not listening.
 */
int rmig_dst_port(struct rmig_dst *dst);

/**
 * rmig_dst_accept() - accept one migration: control connection, handshake,
 * then every channel; starts one receive thread per channel
 * @dst: listening handle
 *
 * With a key, the source must authenticate first (and so must each
 * channel); without one, its first message must be HELLO. A connection
 * that fails there (garbage, a wrong or missing key, one that sends
 * nothing for 3 s, a channel that does not prove it belongs to the
 * session) is closed and counted (&rmig_stats.conns_dropped) and the
 * destination waits on; if no source gets through within
 * &rmig_opts.timeout_ms, the error names the last one dropped, and the
 * code is its code (-EACCES when it failed authentication). An
 * authenticated source is refused, and told why, for a RAM-block table that
 * differs from the local one; that failure is final.
 *
 * Return: 0 or a negative errno, with rmig_dst_error() naming the problem.
 */
int rmig_dst_accept(struct rmig_dst *dst);

/**
 * rmig_dst_wait_sync() - wait for the next sync round
 * @dst: accepted handle
 * @round: receives the round number (1, 2, ...); may be NULL
 *
 * Returns when every channel has reached the source's next SYNC_ALL fence;
 * at that point every page queued before that sync on the source is in
 * destination RAM, and every device-state chunk queued before it has been
 * delivered. The channels then stay stopped at the fence until the next call
 * (or rmig_dst_finish()), so RAM does not change under the caller.
 *
 * Return: 0 for a round, 1 when the source finished instead (call
 * rmig_dst_finish()), RMIG_DST_POSTCOPY (2, rmig/live.h) when postcopy
 * started (only after rmig_dst_postcopy_enable()), or a negative errno.
 */
int rmig_dst_wait_sync(struct rmig_dst *dst, uint64_t *round);

/**
 * rmig_dst_finish() - run to the end of the migration and verify it
 * @dst: accepted handle
 *
 * Lets the channels run through any remaining rounds until the source
 * finishes, then checks the source's per-channel totals (packets, pages,
 * bytes, device-state chunks) against what arrived, and confirms to the
 * source.
 *
 * "file:": loads the file with &rmig_opts.channels threads (of this
 * destination's options): each reads the pages the file holds straight into
 * the blocks (pread, a run of present pages in one call) and clears the pages
 * the file marks absent unless they are already zero; nothing outside the
 * blocks is written. Then device state goes to the callback in sequence
 * order, from the calling thread.
 *
 * When it returns, verified or not, the source can no longer write into
 * destination RAM: over rdma the RAM's memory regions are deregistered (a
 * later WRITE fails at the source with a remote access error).
 *
 * Return: 0 only if every byte arrived and the totals match (file: every
 * page and record was read and checked); otherwise a negative errno
 * (-EPROTO for a mismatch or a malformed file, -ECONNRESET if the source went
 * away) with rmig_dst_error() naming it.
 */
int rmig_dst_finish(struct rmig_dst *dst);

/**
 * rmig_dst_cancel() - abort from any thread; blocked calls return -ECANCELED
 * @dst: handle
 *
 * Also revokes the source's access to destination RAM at once (rdma:
 * deregisters it), like any failure of the migration.
 */
void rmig_dst_cancel(struct rmig_dst *dst);

/**
 * rmig_dst_get_stats() - as rmig_src_get_stats()
 * @dst: handle
 * @stats: caller-owned, size set
 *
 * "file:": normal_pages/data_bytes count pages read from the file,
 * zero_pages the pages it marks absent, packets the read calls plus the
 * device-state records, wire_bytes every byte read.
 *
 * Return: 0 or -EINVAL.
 */
int rmig_dst_get_stats(struct rmig_dst *dst, struct rmig_stats *stats);

/**
 * rmig_dst_error() - the first failure, in words
 * @dst: handle
 *
 * Return: a string owned by @dst, "" when nothing has failed.
 */
const char *rmig_dst_error(struct rmig_dst *dst);

/**
 * rmig_dst_destroy() - cancel if running, join threads, release transport
 * resources (for rdma: deregister memory and destroy QPs, so the peer can no
 * longer write), free
 * @dst: handle or NULL
 */
void rmig_dst_destroy(struct rmig_dst *dst);

/**
 * struct rmig_rail_stats - one rail of an rdma migration
 * @device: the RDMA device ("" until it is known)
 * @addr: the rail's address as given ("HOST:PORT")
 * @numa_node: the device's NUMA node, -1 when it has none
 * @channels: channel connections on the rail (the control connection is on
 *            rail 0 and not counted); a channel whose rail died counts on the
 *            rail it moved to
 * @threads_on_node: of them, channels whose thread last ran on a CPU of
 *                   @numa_node (placement: see rmig(7), RMIG_RDMA_NUMA)
 * @buffers_on_node: of them, channels whose stream buffers are in @numa_node's
 *                   memory
 * @bytes: bytes this side moved on the rail: page data written and stream
 *         bytes, sent and received (on the destination page data lands
 *         without it, so mostly stream bytes)
 * @local_pages: source: data pages the rail carried whose memory is on
 *               @numa_node (&rmig_stats.numa_local_pages, per rail)
 * @remote_pages: source: ... whose memory is on another node; a channel
 *                that moved to another rail counts on the rail it moved to
 *
 * "rdma:HOST1,HOST2,...:PORT" migrates over one rail per address (up to 8):
 * the control connection on the first, channel c on rail c % rails. Both
 * sides list the same rails in the same order; the destination checks it.
 */
struct rmig_rail_stats {
	char device[64];
	char addr[128];
	int32_t numa_node;
	uint32_t channels;
	uint64_t bytes;
	uint32_t threads_on_node;
	uint32_t buffers_on_node;
	uint64_t local_pages;
	uint64_t remote_pages;
	uint64_t reserved[3];
};

/**
 * rmig_src_get_rails() - per-rail figures of an rdma migration
 * @src: handle
 * @rails: array of @max entries, filled from the first rail
 * @max: entries in @rails
 *
 * Any thread, once rmig_src_connect() has returned 0 and until the handle is
 * destroyed.
 *
 * Return: the number of rails (which may exceed @max: only @max are
 * filled), 0 for a transport without rails (tcp, file, null) or before
 * connect, -EINVAL for a NULL @src, or @rails NULL with @max > 0.
 */
int rmig_src_get_rails(struct rmig_src *src, struct rmig_rail_stats *rails, unsigned int max);

/**
 * rmig_dst_get_rails() - as rmig_src_get_rails(), for a destination
 * @dst: handle, after rmig_dst_listen()
 * @rails: array of @max entries
 * @max: entries in @rails
 *
 * Return: as rmig_src_get_rails().
 */
int rmig_dst_get_rails(struct rmig_dst *dst, struct rmig_rail_stats *rails, unsigned int max);

/**
 * rmig_transport_available() - whether a transport was built in
 * @name: "tcp", "rdma", "file", "null"
 *
 * Return: 1 if built in, 0 if not.
 */
int rmig_transport_available(const char *name);

#ifdef __cplusplus
}
#endif

#endif /* RMIG_RMIG_H */
