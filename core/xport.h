/* SPDX-License-Identifier: MIT */
/*
 * The transport interface. core/ knows nothing of sockets or verbs; each
 * transport in transport/<name>/ fills one struct rmig_xport_ops.
 *
 * Model: a transport instance (struct rmig_xport) connects or listens, and
 * yields connections (struct rmig_conn). Each connection is a reliable,
 * ordered byte stream: the first one a source opens is the control
 * connection, then one per channel. The core frames its own protocol
 * (core/wire.h) on these streams.
 *
 * Page data travels in one of two ways, told by the transport's caps:
 *  - in the stream (tcp): send() carries header then page bytes; the
 *    destination core reads the header, validates it, and calls recv_pages()
 *    with iovecs pointing straight into destination RAM;
 *  - placed (RMIG_XCAP_PLACES_DATA, rdma): send() writes each segment
 *    straight into the destination's RAM (remote addresses from the info the
 *    destination gave in the handshake), then sends the header behind it on
 *    the same ordered connection, so the header's arrival proves the data
 *    landed. The destination core never calls recv_pages().
 *
 * Threads: a conn may be used by two threads at once, one receiving (recv,
 * recv_pages) and one sending (send, flush, pull, pull_wait); shutdown() may
 * be called by any thread to make blocked calls fail promptly.
 *
 * Errors: every op returns 0 (or a byte count where said) or a negative
 * errno, and writes a one-line reason into the conn's or xport's msgbuf (a
 * conn's receiving ops into recv_err, its other ops into err).
 */
#ifndef RMIG_CORE_XPORT_H
#define RMIG_CORE_XPORT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "rmig/rmig.h"
#include "util.h"

/* One local RAM block as the core and transports see it. */
struct rmig_block {
	char name[RMIG_BLOCK_NAME_MAX];
	uint8_t *host;
	uint64_t length;
	uint32_t page_size;
	uint32_t page_shift;
};

/* What a transport is told when it is created. */
struct rmig_xport_params {
	const struct rmig_opts *opts;
	const struct rmig_block *blocks; /* the local RAM blocks */
	unsigned int nblocks;
	unsigned int channels; /* source: channels it will open */
};

/*
 * A run of page data: @len bytes at @local in this process, which belong at
 * @offset in RAM block @block on the destination (both contiguous).
 */
struct rmig_seg {
	void *local;
	uint64_t offset;
	uint64_t len;
	uint32_t block;
	uint32_t pad;
};

enum rmig_xport_caps {
	RMIG_XCAP_PLACES_DATA = 1u << 0, /* send() places segments in remote RAM */
	RMIG_XCAP_SINK = 1u << 1,	 /* no peer at all (null): no handshake */
	RMIG_XCAP_ZERO_COPY = 1u << 2,	 /* honours RMIG_F_ZERO_COPY */
	RMIG_XCAP_LOAD = 1u << 3,	 /* destination loads from storage (file): no peer */
	RMIG_XCAP_PULL = 1u << 4,	 /* the destination reads the source's RAM (postcopy) */
	RMIG_XCAP_TLS = 1u << 5,	 /* honours RMIG_F_TLS */
};

struct rmig_conn;
struct rmig_xport;

/*
 * Most segments one send() is given: one per run of a RAM message's pages,
 * and a message has at most RMIG_MAX_PAGES_PER_PACKET (core/wire.c checks).
 */
#define RMIG_XPORT_SEGS_MAX 4096u

struct rmig_conn_ops {
	/*
	 * Send @hdr (copied or fully sent before return, so the caller may
	 * reuse it) and then @nsegs segments of page data. Without
	 * PLACES_DATA the segments follow the header in the stream; with
	 * zero copy the segment memory may still be referenced after return,
	 * until flush(). With PLACES_DATA the segments are written to the
	 * destination and @hdr is sent after them in order.
	 */
	int (*send)(struct rmig_conn *c, const void *hdr, size_t hdr_len, const struct rmig_seg *segs,
		    unsigned int nsegs);
	/*
	 * Wait until no segment memory given to send() is still referenced
	 * (zero-copy completions, RDMA WRITE completions).
	 */
	int (*flush)(struct rmig_conn *c);
	/*
	 * Receive exactly @len stream bytes. @timeout_ms < 0 waits forever
	 * (the transport still notices a dead peer). -ECONNRESET when the
	 * peer closed, -ETIMEDOUT on timeout.
	 */
	int (*recv)(struct rmig_conn *c, void *buf, size_t len, int timeout_ms);
	/* Receive page data straight into @iov (destination RAM). Not used with PLACES_DATA. */
	int (*recv_pages)(struct rmig_conn *c, const struct iovec *iov, unsigned int iovcnt);
	/*
	 * destination, RMIG_XCAP_PULL, after the xport's pull_open() (control
	 * connection only): start reading @len bytes at @off of the source's
	 * RAM block @block into @local, which lies in the pull area. Returns
	 * at once; *@ticket is what pull_wait() takes. Pulls complete in the
	 * order they were started. A sending op: it may run while another
	 * thread receives on @c, never while another sends.
	 */
	int (*pull)(struct rmig_conn *c, void *local, unsigned int block, uint64_t off, uint64_t len,
		    uint64_t *ticket);
	/*
	 * Wait until the pull of @ticket (and so every earlier one) has
	 * landed. -ETIMEDOUT after @timeout_ms (>= 0), nothing lost: wait again.
	 */
	int (*pull_wait)(struct rmig_conn *c, uint64_t ticket, int timeout_ms);
	/*
	 * A channel connection has proved it belongs to the session
	 * (destination: its CHAN checked; source: its CHAN sent). Before any
	 * page data, the transport may scope remote access to this very
	 * connection: rdma with memory windows binds windows to the channel's
	 * QP on the destination and hands their rkeys to the source over @c
	 * (transport/rdma/mw.h); the source waits up to @timeout_ms for them.
	 * rmig_conn_nop_chan_open when there is nothing to do.
	 */
	int (*chan_open)(struct rmig_conn *c, int timeout_ms);
	/* Any thread: make blocked and future calls on @c fail. */
	void (*shutdown)(struct rmig_conn *c);
	void (*close)(struct rmig_conn *c);
};

/* Base of every connection; transports embed it and use container_of. */
struct rmig_conn {
	const struct rmig_conn_ops *ops;
	/*
	 * Why the last failed op failed: recv_err for the receiving ops (recv,
	 * recv_pages), err for every other. Two buffers because a conn may be
	 * used by one receiving and one sending thread at once (the
	 * destination's control connection in postcopy): each thread reads
	 * only the text its own ops write, so neither overwrites the other's
	 * failure with, say, a receive timeout, and there is no data race.
	 */
	struct rmig_msgbuf err;
	struct rmig_msgbuf recv_err;
	/*
	 * Counters: written only by the thread that uses the conn, read by
	 * rmig_*_get_stats() from any thread; bump them with rmig_count().
	 */
	_Atomic uint64_t wire_bytes;
	_Atomic uint64_t zc_sends;
	_Atomic uint64_t zc_copied;
	_Atomic uint64_t rdma_writes;
	/*
	 * RMIG_CONN_*: TLS and KTLS set by the transport before it returns the
	 * conn, MW by chan_open()
	 */
	_Atomic uint32_t tls;
	/*
	 * NUMA (core/numa.h): the node the conn's data leaves from, plus one
	 * (0: none), set with rmig_conn_set_node() by a transport that places
	 * its channels (rdma rails), before it returns the conn and again when
	 * the conn moves; the source core steers batches by it and counts its
	 * data pages as local or remote to it (its channel thread only).
	 */
	_Atomic uint32_t node1;
	_Atomic uint64_t numa_local;
	_Atomic uint64_t numa_remote;
};

static inline void rmig_conn_set_node(struct rmig_conn *c, int node)
{
	atomic_store_explicit(&c->node1, node >= 0 ? (uint32_t)node + 1 : 0, memory_order_relaxed);
}

/* The node set by the transport, -1 for none. */
static inline int rmig_conn_node(struct rmig_conn *c)
{
	return (int)atomic_load_explicit(&c->node1, memory_order_relaxed) - 1;
}

enum {
	RMIG_CONN_TLS = 1u << 0,  /* the conn is carried in TLS */
	RMIG_CONN_KTLS = 1u << 1, /* ... and the kernel encrypts its sends */
	RMIG_CONN_MW = 1u << 2,	  /* rdma: remote writes only through windows on its QP */
};

/* A statistics counter: nothing is ordered by it, so relaxed. */
#define rmig_count(ctr, n) atomic_fetch_add_explicit((ctr), (n), memory_order_relaxed)

struct rmig_xport_ops {
	const char *name;
	unsigned int caps;
	/* source: connect the control connection to @addr ("HOST:PORT") */
	int (*connect)(const struct rmig_xport_params *p, const char *addr, struct rmig_xport **xp,
		       struct rmig_conn **ctl, struct rmig_msgbuf *err);
	/* source: take the destination's placement info (may be empty) */
	int (*set_peer_info)(struct rmig_xport *x, const void *info, size_t len);
	/* source: open channel @ch (after the handshake) */
	int (*connect_channel)(struct rmig_xport *x, unsigned int ch, struct rmig_conn **c);
	/* destination: bind @addr; port 0 picks one */
	int (*listen)(const struct rmig_xport_params *p, const char *addr, struct rmig_xport **xp,
		      struct rmig_msgbuf *err);
	int (*port)(struct rmig_xport *x);
	/* destination: next incoming connection */
	int (*accept)(struct rmig_xport *x, int timeout_ms, struct rmig_conn **c);
	/*
	 * destination: placement info for the source (rdma: MR addresses and
	 * rkeys), written to @buf (capacity *@len), size returned in *@len.
	 * Called only after the source's block table has been validated.
	 */
	int (*local_info)(struct rmig_xport *x, void *buf, size_t *len);
	/*
	 * source, RMIG_XCAP_PULL: what the destination needs to read local RAM
	 * (rdma: the MR table, registered with remote read), written to @buf
	 * (capacity *@len), size in *@len. -ENOTSUP when the source was not
	 * set up for it (rdma: without RMIG_F_POSTCOPY).
	 */
	int (*pull_info)(struct rmig_xport *x, void *buf, size_t *len);
	/*
	 * destination, RMIG_XCAP_PULL: take the source's pull_info(), checked
	 * against the local blocks, and set up an area of @size bytes that
	 * pulls may land in (rdma: registered); its address in *@area, owned
	 * by the xport. Once only.
	 */
	int (*pull_open)(struct rmig_xport *x, const void *info, size_t len, size_t size,
			 void **area);
	/* Any thread: fail every blocked call on the xport and its conns. */
	void (*shutdown)(struct rmig_xport *x);
	/*
	 * Any thread: from now on no peer can write into (or read from) local
	 * RAM; rdma deregisters it. The destination calls it when the
	 * migration ends, verified or not, and at postcopy start; the source
	 * when postcopy ends (no page data is sent after that).
	 * rmig_xport_nop_revoke when no peer ever touches RAM itself (tcp, file).
	 */
	void (*revoke)(struct rmig_xport *x);
	/* Closes what is left; for rdma deregisters memory. Conns are closed first. */
	void (*destroy)(struct rmig_xport *x);
	/* memory-registration time so far, for the statistics */
	uint64_t (*reg_ns)(struct rmig_xport *x);
	/*
	 * source, transports without a peer (RMIG_XCAP_SINK): called by
	 * rmig_src_finish() after every channel's FIN; a file transport
	 * completes its file here. Nothing to do: rmig_xport_nop_finish.
	 */
	int (*finish)(struct rmig_xport *x);
	/*
	 * destination, RMIG_XCAP_LOAD transports (file): load everything into
	 * the local blocks with @threads threads and hand device state to @fn
	 * in order. Called by rmig_dst_finish(). Returns 0 only when every
	 * byte was read and checked.
	 */
	int (*load)(struct rmig_xport *x, unsigned int threads, rmig_dev_state_fn fn, void *arg);
	/*
	 * destination, RMIG_XCAP_LOAD transports: add what load() has done so
	 * far (pages, bytes, device state) to @s. Any thread. Others:
	 * rmig_xport_nop_load_stats.
	 */
	void (*load_stats)(struct rmig_xport *x, struct rmig_stats *s);
};

/* Base of every transport instance. */
struct rmig_xport {
	const struct rmig_xport_ops *ops;
	struct rmig_msgbuf err;
};

/*
 * Placing transports: the source lets at most this many rounds go
 * unreleased per channel (core/src/src_chan.c, "RELEASE flow"), so at most this many
 * RELEASE messages wait unread on a source's channel. A placing transport
 * must be able to hold RMIG_RELEASE_WINDOW + 2 small messages toward a
 * receiver that is not reading (rdma: RD_RECV_BUFS receive buffers).
 */
#define RMIG_RELEASE_WINDOW 8u

/* Largest placement-info blob carried in the handshake. */
#define RMIG_PEER_INFO_MAX (1u << 19)

/*
 * Defaults for the slots a transport has nothing for (core/xport_stubs.c).
 * Every slot of every ops table is filled, and the core calls ops without
 * checking for NULL. rmig_*_nop_* succeed and do nothing: the op has no work
 * for that transport. rmig_*_no_* fail with -ENOSYS: the transport cannot do
 * it (the core checks the caps first, or treats -ENOSYS as "cannot").
 */
int rmig_xport_no_listen(const struct rmig_xport_params *p, const char *addr,
			 struct rmig_xport **xp, struct rmig_msgbuf *err);
int rmig_xport_no_port(struct rmig_xport *x);
int rmig_xport_no_accept(struct rmig_xport *x, int timeout_ms, struct rmig_conn **c);
int rmig_xport_nop_set_peer_info(struct rmig_xport *x, const void *info, size_t len);
int rmig_xport_nop_local_info(struct rmig_xport *x, void *buf, size_t *len);
int rmig_xport_no_pull_info(struct rmig_xport *x, void *buf, size_t *len);
int rmig_xport_no_pull_open(struct rmig_xport *x, const void *info, size_t len, size_t size,
			    void **area);
void rmig_xport_nop_shutdown(struct rmig_xport *x);
void rmig_xport_nop_revoke(struct rmig_xport *x);
uint64_t rmig_xport_nop_reg_ns(struct rmig_xport *x);
int rmig_xport_nop_finish(struct rmig_xport *x);
int rmig_xport_no_load(struct rmig_xport *x, unsigned int threads, rmig_dev_state_fn fn,
		       void *arg);
void rmig_xport_nop_load_stats(struct rmig_xport *x, struct rmig_stats *s);
int rmig_conn_no_recv_pages(struct rmig_conn *c, const struct iovec *iov, unsigned int iovcnt);
int rmig_conn_no_pull(struct rmig_conn *c, void *local, unsigned int block, uint64_t off,
		      uint64_t len, uint64_t *ticket);
int rmig_conn_no_pull_wait(struct rmig_conn *c, uint64_t ticket, int timeout_ms);
int rmig_conn_nop_chan_open(struct rmig_conn *c, int timeout_ms);

/* Registered transports (NULL entries for those not built). */
extern const struct rmig_xport_ops rmig_tcp_ops;
extern const struct rmig_xport_ops rmig_null_ops;
extern const struct rmig_xport_ops rmig_file_ops;
#ifdef RMIG_HAVE_RDMA
extern const struct rmig_xport_ops rmig_rdma_ops;
#endif

/* "tcp:H:P" -> ops and "H:P". Returns 0, -EINVAL or -EPROTONOSUPPORT. */
int rmig_uri_parse(const char *uri, const struct rmig_xport_ops **ops, const char **addr);

/*
 * The @i-th entry of the transport table behind rmig_uri_parse(): 0 and its
 * ops in *@ops (NULL when not built), or -ENOENT past the last one.
 */
int rmig_xport_registered(unsigned int i, const struct rmig_xport_ops **ops);

#endif /* RMIG_CORE_XPORT_H */
