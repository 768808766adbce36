// SPDX-License-Identifier: MIT
/*
 * TCP transport: a control connection plus one connection per channel.
 * Page data goes out by writev straight from source RAM (or MSG_ZEROCOPY,
 * whose completions are drained at every sync as multifd zero-copy does:
 * docs/design.md) and comes in by readv straight into destination RAM
 * (each batch's pages populated in one call first while that RAM is still
 * untouched: prefault()).
 * With RMIG_F_TLS every connection is TLS 1.3 (tls.c, tls_io.c): sends go
 * by sendmsg when the kernel encrypts them (kTLS), else by SSL_write.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/errqueue.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/xport.h"
#include "core/xport_util.h"
#include "tls.h"

#ifndef SO_ZEROCOPY
#define SO_ZEROCOPY 60
#endif
#ifndef MSG_ZEROCOPY
#define MSG_ZEROCOPY 0x4000000
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

/*
 * A batch of scattered pages can need one iovec per page, plus the header;
 * the kernel takes at most UIO_MAXIOV (1024) per call, so calls are cut.
 */
#define TCP_IOV_MAX (RMIG_XPORT_SEGS_MAX + 1)
#define TCP_IOV_PER_CALL 1024u
/*
 * The longest a destination gives one connection's TLS handshake inside
 * accept(): a connection that stalls it is dropped as the core drops one
 * that does not authenticate in time (RMIG_AUTH_DEADLINE_MS, core/auth.h).
 */
#define TLS_ACCEPT_MS 3000

struct tcp_xport {
	struct rmig_xport base;
	const struct rmig_opts *opts;
	struct sockaddr_storage peer;
	socklen_t peer_len;
	int listen_fd;
	int wake_fd; /* eventfd: shutdown() wakes accept() */
	bool zero_copy;
	struct tcp_tls *tls; /* RMIG_F_TLS: credentials; NULL: plain tcp */
};

struct tcp_conn {
	struct rmig_conn base;
	struct tcp_xport *x;
	int fd;
	bool zero_copy;
	atomic_bool down;  /* shutdown() was called: waits must end */
	uint32_t zc_next; /* id the kernel gives our next zero-copy send */
	uint32_t zc_done; /* ids completed so far */
	uint8_t prefault; /* PF_*: populate destination RAM before readv */
	bool seen_bytes;  /* plain: the first bytes received were checked for TLS */
	size_t recv_done; /* bytes the last recv_iov() received, also when it failed */
	struct tcp_tls_sess *tls; /* NULL: plain */
	struct iovec iov[TCP_IOV_MAX];
};

enum { PF_OFF, PF_ON, PF_NEVER };

static const struct rmig_conn_ops tcp_conn_ops;

static struct tcp_conn *to_conn(struct rmig_conn *c)
{
	return rmig_container_of(c, struct tcp_conn, base);
}

static struct tcp_xport *to_x(struct rmig_xport *x)
{
	return rmig_container_of(x, struct tcp_xport, base);
}

static int sock_tune(int fd, const struct rmig_opts *o, struct rmig_msgbuf *mb)
{
	int one = 1;
	unsigned int user_timeout = (unsigned int)o->timeout_ms;
	int idle = o->timeout_ms / 3000 > 0 ? o->timeout_ms / 3000 : 1;
	int intvl = idle, cnt = 3;

	/*
	 * Headers are small and followed at once by page data or nothing;
	 * Nagle would hold SYNC fences back.
	 */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	/*
	 * A destination may legitimately wait a long time between rounds, so
	 * channel reads have no timeout; keepalive and TCP_USER_TIMEOUT are
	 * what notice a peer that vanished without a reset.
	 */
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
	setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout, sizeof(user_timeout));
	(void)mb;
	return 0;
}

/*
 * A conn for the connected socket @fd (closed on failure). With TLS the
 * handshake runs here, within @hs_ms; @mb takes the reason.
 */
static int conn_new(struct tcp_xport *x, int fd, struct rmig_conn **cp, struct rmig_msgbuf *mb,
		    int hs_ms)
{
	struct tcp_conn *c = calloc(1, sizeof(*c));
	int ret;

	if (!c) {
		close(fd);
		return rmig_msg(mb, -ENOMEM, "out of memory");
	}
	if (x->tls) {
		ret = tcp_tls_start(x->tls, fd, x->wake_fd, hs_ms, &c->tls, mb);
		if (ret) {
			close(fd);
			free(c);
			return ret;
		}
		atomic_init(&c->base.tls, RMIG_CONN_TLS | (c->tls->ktls_send ? RMIG_CONN_KTLS : 0));
	}
	c->base.ops = &tcp_conn_ops;
	c->x = x;
	c->fd = fd;
	*cp = &c->base;
	return 0;
}

static int tcp_dial(struct tcp_xport *x, struct rmig_msgbuf *mb, int *fdp)
{
	struct pollfd pfd;
	int fd, ret, err = 0;
	socklen_t errlen = sizeof(err);

	fd = socket(x->peer.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return rmig_msg(mb, -errno, "socket: %s", strerror(errno));
	if (connect(fd, (struct sockaddr *)&x->peer, x->peer_len) < 0 && errno != EINPROGRESS) {
		ret = -errno;
		goto err_close;
	}
	pfd = (struct pollfd){ .fd = fd, .events = POLLOUT };
	ret = poll(&pfd, 1, x->opts->timeout_ms);
	if (ret == 0) {
		ret = -ETIMEDOUT;
		goto err_close;
	}
	if (ret < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &errlen) < 0) {
		ret = -errno;
		goto err_close;
	}
	if (err) {
		ret = -err;
		goto err_close;
	}
	/* Blocking from here on: each conn is used by one thread. */
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	sock_tune(fd, x->opts, mb);
	*fdp = fd;
	return 0;

err_close:
	close(fd);
	return rmig_msg(mb, ret, "connect: %s", strerror(-ret));
}

static int tcp_resolve(const char *addr, bool passive, struct sockaddr_storage *ss,
		       socklen_t *len, struct rmig_msgbuf *mb)
{
	char host[256], port[16];
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res;
	int ret;

	if (rmig_split_hostport(addr, host, sizeof(host), port, sizeof(port)))
		return rmig_msg(mb, -EINVAL, "'%s' is not HOST:PORT", addr);
	hints.ai_flags = passive ? AI_PASSIVE : 0;
	ret = getaddrinfo(host, port, &hints, &res);
	if (ret)
		return rmig_msg(mb, -EHOSTUNREACH, "cannot resolve '%s': %s", host, gai_strerror(ret));
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

static struct tcp_xport *xport_new(const struct rmig_xport_params *p, struct rmig_msgbuf *mb)
{
	struct tcp_xport *x = calloc(1, sizeof(*x));

	if (!x)
		return NULL;
	x->base.ops = &rmig_tcp_ops;
	x->opts = p->opts;
	x->listen_fd = -1;
	x->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	x->zero_copy = p->opts->flags & RMIG_F_ZERO_COPY;
	if (x->wake_fd < 0) {
		rmig_msg(mb, -errno, "eventfd: %s", strerror(errno));
		free(x);
		return NULL;
	}
	return x;
}

static void tcp_destroy(struct rmig_xport *xp)
{
	struct tcp_xport *x = to_x(xp);

	if (x->listen_fd >= 0)
		close(x->listen_fd);
	close(x->wake_fd);
	tcp_tls_free(x->tls);
	free(x);
}

/*
 * RMIG_F_TLS: the xport's credentials. @addr: the source's connect address,
 * whose host the destination's certificate must name.
 */
static int tls_setup(struct tcp_xport *x, const struct rmig_xport_params *p, const char *addr,
		     struct rmig_msgbuf *mb)
{
	char host[256], port[16];

	if (!(p->opts->flags & RMIG_F_TLS))
		return 0;
	if (addr && rmig_split_hostport(addr, host, sizeof(host), port, sizeof(port)))
		return rmig_msg(mb, -EINVAL, "'%s' is not HOST:PORT", addr);
	return tcp_tls_new(p->opts, !addr, addr ? host : NULL, &x->tls, mb);
}

/*
 * MSG_ZEROCOPY pins the pages in flight against RLIMIT_MEMLOCK (unless the
 * process has CAP_IPC_LOCK). A batch is at most a few MiB per channel, so ask
 * for that much and say which limit is short if it is not there.
 */
static int zc_check_memlock(const struct rmig_xport_params *p, struct rmig_msgbuf *mb)
{
	uint64_t need = (uint64_t)p->channels * p->opts->pages_per_packet * 4096u * 4u;
	struct rlimit rl;

	if (getrlimit(RLIMIT_MEMLOCK, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur < need && geteuid() != 0)
		return rmig_msg(mb, -ENOMEM,
				"zero copy needs RLIMIT_MEMLOCK of at least %llu KiB for %u channels, the limit is %llu KiB (raise it with ulimit -l or limits.conf)",
				(unsigned long long)(need >> 10), p->channels,
				(unsigned long long)(rl.rlim_cur >> 10));
	return 0;
}

static int tcp_connect(const struct rmig_xport_params *p, const char *addr,
		       struct rmig_xport **xpp, struct rmig_conn **ctl, struct rmig_msgbuf *mb)
{
	struct tcp_xport *x;
	int fd, ret;

	if ((p->opts->flags & RMIG_F_ZERO_COPY) && (p->opts->flags & RMIG_F_TLS))
		return rmig_msg(mb, -EINVAL,
				"zero copy (MSG_ZEROCOPY) cannot be combined with TLS: the data is encrypted into new buffers (kernel TLS has no MSG_ZEROCOPY); drop one of them");
	if (p->opts->flags & RMIG_F_ZERO_COPY) {
		ret = zc_check_memlock(p, mb);
		if (ret)
			return ret;
	}
	x = xport_new(p, mb);
	if (!x)
		return -ENOMEM;
	ret = tls_setup(x, p, addr, mb);
	if (ret)
		goto err_destroy;
	ret = tcp_resolve(addr, false, &x->peer, &x->peer_len, mb);
	if (ret)
		goto err_destroy;
	ret = tcp_dial(x, mb, &fd);
	if (ret)
		goto err_destroy;
	ret = conn_new(x, fd, ctl, mb, x->opts->timeout_ms);
	if (ret)
		goto err_destroy;
	*xpp = &x->base;
	return 0;

err_destroy:
	tcp_destroy(&x->base);
	return ret;
}

static int tcp_connect_channel(struct rmig_xport *xp, unsigned int ch, struct rmig_conn **cp)
{
	struct tcp_xport *x = to_x(xp);
	struct tcp_conn *c;
	int fd, ret, one = 1;

	ret = tcp_dial(x, &x->base.err, &fd);
	if (ret)
		return ret;
	if (x->zero_copy && setsockopt(fd, SOL_SOCKET, SO_ZEROCOPY, &one, sizeof(one)) < 0) {
		ret = -errno;
		close(fd);
		return rmig_msg(&x->base.err, ret, "SO_ZEROCOPY: %s (kernel without MSG_ZEROCOPY?)",
				strerror(-ret));
	}
	ret = conn_new(x, fd, cp, &x->base.err, x->opts->timeout_ms);
	if (ret)
		return ret;
	c = to_conn(*cp);
	c->zero_copy = x->zero_copy;
	return 0;
}

static int tcp_listen(const struct rmig_xport_params *p, const char *addr,
		      struct rmig_xport **xpp, struct rmig_msgbuf *mb)
{
	struct sockaddr_storage ss;
	struct tcp_xport *x;
	socklen_t len;
	int ret, one = 1;

	x = xport_new(p, mb);
	if (!x)
		return -ENOMEM;
	ret = tls_setup(x, p, NULL, mb);
	if (ret)
		goto err_destroy;
	ret = tcp_resolve(addr, true, &ss, &len, mb);
	if (ret)
		goto err_destroy;
	x->listen_fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (x->listen_fd < 0) {
		ret = rmig_msg(mb, -errno, "socket: %s", strerror(errno));
		goto err_destroy;
	}
	setsockopt(x->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(x->listen_fd, (struct sockaddr *)&ss, len) < 0) {
		ret = rmig_msg(mb, -errno, "bind %s: %s", addr, strerror(errno));
		goto err_destroy;
	}
	if (listen(x->listen_fd, RMIG_MAX_CHANNELS + 4) < 0) {
		ret = rmig_msg(mb, -errno, "listen: %s", strerror(errno));
		goto err_destroy;
	}
	*xpp = &x->base;
	return 0;

err_destroy:
	tcp_destroy(&x->base);
	return ret;
}

static int tcp_port(struct rmig_xport *xp)
{
	struct tcp_xport *x = to_x(xp);
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (x->listen_fd < 0 || getsockname(x->listen_fd, (struct sockaddr *)&ss, &len) < 0)
		return -ENOTCONN;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

static int tcp_accept(struct rmig_xport *xp, int timeout_ms, struct rmig_conn **cp)
{
	struct tcp_xport *x = to_x(xp);
	struct pollfd pfd[2] = {
		{ .fd = x->listen_fd, .events = POLLIN },
		{ .fd = x->wake_fd, .events = POLLIN },
	};
	int fd, ret;

	ret = poll(pfd, 2, timeout_ms);
	if (ret == 0)
		return rmig_msg(&x->base.err, -ETIMEDOUT, "no connection within %d ms", timeout_ms);
	if (ret < 0)
		return rmig_msg(&x->base.err, -errno, "poll: %s", strerror(errno));
	if (pfd[1].revents)
		return rmig_msg(&x->base.err, -ECANCELED, "cancelled");
	fd = accept4(x->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return rmig_msg(&x->base.err, -errno, "accept: %s", strerror(errno));
	sock_tune(fd, x->opts, &x->base.err);
	ret = conn_new(x, fd, cp, &x->base.err,
		       timeout_ms >= 0 && timeout_ms < TLS_ACCEPT_MS ? timeout_ms : TLS_ACCEPT_MS);
	/*
	 * A connection came and failed its handshake: not "nobody came"
	 * (-ETIMEDOUT), after which the core would stop waiting.
	 */
	return ret == -ETIMEDOUT ? -ECONNABORTED : ret;
}

static void tcp_xshutdown(struct rmig_xport *xp)
{
	uint64_t one = 1;

	if (write(to_x(xp)->wake_fd, &one, sizeof(one)) < 0) {
		/* already signalled */
	}
}

/* ---- conn data path ---------------------------------------------------- */

/* @mb: the conn's err or recv_err, by the op's role */
static int io_error(struct tcp_conn *c, struct rmig_msgbuf *mb, int err, const char *what,
		    size_t done, size_t total)
{
	if (err == 0)
		return rmig_msg(mb, -ECONNRESET,
				"connection closed by the peer while %s (%zu of %zu bytes)", what,
				done, total);
	if (err == ENOBUFS && c->zero_copy)
		return rmig_msg(mb, -ENOBUFS,
				"zero-copy send refused (ENOBUFS): locked memory exhausted; raise RLIMIT_MEMLOCK or net.core.optmem_max");
	return rmig_msg(mb, -err, "%s: %s (%zu of %zu bytes)", what, strerror(err), done, total);
}

/* Advance @iov/@cnt past @n bytes. */
static void iov_advance(struct iovec **iov, unsigned int *cnt, size_t n)
{
	while (n && *cnt) {
		if (n < (*iov)->iov_len) {
			(*iov)->iov_base = (uint8_t *)(*iov)->iov_base + n;
			(*iov)->iov_len -= n;
			return;
		}
		n -= (*iov)->iov_len;
		(*iov)++;
		(*cnt)--;
	}
	/* skip empty trailing entries */
	while (*cnt && (*iov)->iov_len == 0) {
		(*iov)++;
		(*cnt)--;
	}
}

static int send_iov(struct tcp_conn *c, struct iovec *iov, unsigned int cnt, size_t total,
		    int flags)
{
	struct msghdr mh = { 0 };
	size_t done = 0;
	ssize_t n;

	while (cnt) {
		mh.msg_iov = iov;
		mh.msg_iovlen = cnt < TCP_IOV_PER_CALL ? cnt : TCP_IOV_PER_CALL;
		n = sendmsg(c->fd, &mh, MSG_NOSIGNAL | flags);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			/* kTLS: the socket is non-blocking (tls_io.c); wait as a blocking send would */
			if (errno == EAGAIN) {
				struct pollfd pfd = { .fd = c->fd, .events = POLLOUT };

				poll(&pfd, 1, -1);
				continue;
			}
			return io_error(c, &c->base.err, errno, "sending", done, total);
		}
		if (flags & MSG_ZEROCOPY) {
			/* every successful zero-copy sendmsg gets one notification id */
			c->zc_next++;
			rmig_count(&c->base.zc_sends, 1);
		}
		done += (size_t)n;
		iov_advance(&iov, &cnt, (size_t)n);
	}
	rmig_count(&c->base.wire_bytes, total);
	return 0;
}

/* TLS in user space: each buffer through SSL_write. */
static int send_tls(struct tcp_conn *c, const struct iovec *iov, unsigned int cnt, size_t total)
{
	int ret;

	for (unsigned int i = 0; i < cnt; i++) {
		ret = tcp_tls_write(c->tls, c->fd, iov[i].iov_base, iov[i].iov_len, &c->base.err);
		if (ret)
			return ret;
	}
	/* every message leaves now: the peer may be waiting for it */
	ret = tcp_tls_flush(c->tls, c->fd, &c->base.err);
	if (ret)
		return ret;
	rmig_count(&c->base.wire_bytes, total);
	return 0;
}

static int tcp_send(struct rmig_conn *cb, const void *hdr, size_t hdr_len,
		    const struct rmig_seg *segs, unsigned int nsegs)
{
	struct tcp_conn *c = to_conn(cb);
	size_t total = hdr_len, data = 0;
	unsigned int cnt = 0;
	int ret;

	if (nsegs + 1 > TCP_IOV_MAX)
		return rmig_msg(&c->base.err, -E2BIG, "%u segments in one send", nsegs);
	c->iov[cnt++] = (struct iovec){ .iov_base = (void *)hdr, .iov_len = hdr_len };
	for (unsigned int i = 0; i < nsegs; i++) {
		c->iov[cnt++] = (struct iovec){ .iov_base = segs[i].local, .iov_len = segs[i].len };
		data += segs[i].len;
	}
	total += data;
	if (c->tls && !c->tls->ktls_send)
		return send_tls(c, c->iov, cnt, total);
	if (!c->zero_copy || !nsegs)
		return send_iov(c, c->iov, cnt, total, 0);

	/*
	 * With zero copy the kernel keeps referencing what we send until the
	 * completion arrives. The header buffer is reused at once, so it goes
	 * by a normal copying send; only page data goes zero-copy.
	 */
	ret = send_iov(c, c->iov, 1, hdr_len, MSG_MORE);
	if (ret)
		return ret;
	return send_iov(c, c->iov + 1, cnt - 1, data, MSG_ZEROCOPY);
}

/* Read zero-copy completions; @block waits for at least one. */
static int zc_reap(struct tcp_conn *c, bool block)
{
	char control[256];
	struct msghdr mh;
	struct cmsghdr *cm;
	struct sock_extended_err *ee;
	struct pollfd pfd = { .fd = c->fd, .events = 0 };
	uint32_t n;

	for (;;) {
		mh = (struct msghdr){ .msg_control = control, .msg_controllen = sizeof(control) };
		if (recvmsg(c->fd, &mh, MSG_ERRQUEUE | MSG_DONTWAIT) < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				return io_error(c, &c->base.err, errno, "reading zero-copy completions",
						0, 0);
			if (!block)
				return 0;
			/* relaxed: shutdown() also makes poll() return (POLLHUP) */
			if (rmig_load_relaxed(&c->down))
				return rmig_msg(&c->base.err, -ECANCELED,
						"shut down with %u zero-copy sends outstanding",
						c->zc_next - c->zc_done);
			/* POLLERR is always reported; it says the error queue has something */
			if (poll(&pfd, 1, c->x->opts->timeout_ms) == 0)
				return rmig_msg(&c->base.err, -ETIMEDOUT,
						"zero-copy completions did not arrive within %d ms",
						c->x->opts->timeout_ms);
			/* a hung-up socket with nothing queued would spin here for ever */
			if ((pfd.revents & POLLHUP) && !(pfd.revents & POLLERR))
				return rmig_msg(&c->base.err, -ECONNRESET,
						"connection closed with %u zero-copy sends outstanding",
						c->zc_next - c->zc_done);
			continue;
		}
		for (cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
			if (!((cm->cmsg_level == SOL_IP && cm->cmsg_type == IP_RECVERR) ||
			      (cm->cmsg_level == SOL_IPV6 && cm->cmsg_type == IPV6_RECVERR)))
				continue;
			ee = (struct sock_extended_err *)CMSG_DATA(cm);
			if (ee->ee_origin != SO_EE_ORIGIN_ZEROCOPY) {
				return io_error(c, &c->base.err, ee->ee_errno ? (int)ee->ee_errno : EIO,
						"zero-copy send", 0, 0);
			}
			/* [ee_info, ee_data] is an inclusive range of completed sends */
			n = ee->ee_data - ee->ee_info + 1;
			c->zc_done += n;
			if (ee->ee_code & SO_EE_CODE_ZEROCOPY_COPIED)
				rmig_count(&c->base.zc_copied, n);
		}
		return 0;
	}
}

static int tcp_flush(struct rmig_conn *cb)
{
	struct tcp_conn *c = to_conn(cb);
	int ret;

	while (c->zero_copy && c->zc_done != c->zc_next) {
		ret = zc_reap(c, true);
		if (ret)
			return ret;
	}
	return 0;
}

static int wait_readable(struct tcp_conn *c, int timeout_ms)
{
	struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
	int ret;

	if (timeout_ms < 0)
		return 0;
	do
		ret = poll(&pfd, 1, timeout_ms);
	while (ret < 0 && errno == EINTR);
	if (ret == 0)
		return rmig_msg(&c->base.recv_err, -ETIMEDOUT, "peer sent nothing for %d ms",
				timeout_ms);
	if (ret < 0)
		return rmig_msg(&c->base.recv_err, -errno, "poll: %s", strerror(errno));
	return 0;
}

static int recv_tls(struct tcp_conn *c, struct iovec *iov, unsigned int cnt, size_t total,
		    int timeout_ms)
{
	ssize_t n;

	while (cnt) {
		n = tcp_tls_read(c->tls, c->fd, iov->iov_base, iov->iov_len, timeout_ms,
				 &c->base.recv_err);
		if (n < 0)
			return (int)n;
		iov_advance(&iov, &cnt, (size_t)n);
	}
	rmig_count(&c->base.wire_bytes, total);
	return 0;
}

static int recv_iov(struct tcp_conn *c, struct iovec *iov, unsigned int cnt, size_t total,
		    int timeout_ms)
{
	struct msghdr mh = { 0 };
	size_t done = 0;
	ssize_t n;
	int ret;

	while (cnt) {
		ret = wait_readable(c, timeout_ms);
		if (ret)
			return ret;
		mh.msg_iov = iov;
		mh.msg_iovlen = cnt < TCP_IOV_PER_CALL ? cnt : TCP_IOV_PER_CALL;
		n = recvmsg(c->fd, &mh, timeout_ms < 0 ? MSG_WAITALL : 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return io_error(c, &c->base.recv_err, errno, "receiving", done, total);
		}
		if (n == 0)
			return io_error(c, &c->base.recv_err, 0, "receiving", done, total);
		done += (size_t)n;
		c->recv_done = done;
		iov_advance(&iov, &cnt, (size_t)n);
	}
	rmig_count(&c->base.wire_bytes, total);
	return 0;
}

static int tcp_recv(struct rmig_conn *cb, void *buf, size_t len, int timeout_ms)
{
	struct tcp_conn *c = to_conn(cb);
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	const uint8_t *b = buf;
	int ret;

	if (c->tls)
		return recv_tls(c, &iov, 1, len, timeout_ms);
	c->recv_done = 0;
	ret = recv_iov(c, &iov, 1, len, timeout_ms);
	if (c->seen_bytes || c->recv_done < 3)
		return ret;
	/*
	 * The first bytes of a plain conn (also of a receive the peer's close
	 * cut short): a TLS record header (handshake 0x16 or alert 0x15,
	 * version 3.x) means the peer uses TLS and we do not; say that rather
	 * than "bad magic" or "closed".
	 */
	c->seen_bytes = true;
	if ((b[0] == 0x16 || b[0] == 0x15) && b[1] == 0x03 && b[2] <= 0x04)
		return rmig_msg(&c->base.recv_err, -EPROTO,
				b[0] == 0x16 ? "the peer started a TLS handshake: it uses TLS and this side does not (both sides need TLS)"
					     : "the peer answered with a TLS alert: it requires TLS and this side does not use it (both sides need TLS)");
	return ret;
}

static long thread_minflt(void)
{
	struct rusage ru;

	return getrusage(RUSAGE_THREAD, &ru) ? -1 : ru.ru_minflt;
}

/*
 * Destination RAM that was never touched (a fresh VMM's) faults page by
 * page inside readv: an exception, an allocation and a clear per page.
 * MADV_POPULATE_WRITE does the same allocation and clear for the whole
 * batch in one call, without the exceptions (docs/benchmarks.md has the
 * measurements). On RAM that is already there it would only walk page
 * tables, so it starts once readv faulted in most of a batch, and stops at
 * the first batch it finds nothing to populate in.
 */
static void prefault(struct tcp_conn *c, const struct iovec *iov, unsigned int iovcnt)
{
	long before = thread_minflt(), after;

	for (unsigned int i = 0; i < iovcnt; i++) {
		if (madvise(iov[i].iov_base, iov[i].iov_len, MADV_POPULATE_WRITE)) {
			/* before Linux 5.14, or not populatable: let readv fault */
			c->prefault = PF_NEVER;
			return;
		}
	}
	after = thread_minflt();
	if (before < 0 || after == before)
		c->prefault = PF_OFF;
}

static int tcp_recv_pages(struct rmig_conn *cb, const struct iovec *iov, unsigned int iovcnt)
{
	struct tcp_conn *c = to_conn(cb);
	size_t total = 0;
	long before = -1, after;
	int ret;

	if (iovcnt > TCP_IOV_MAX)
		return rmig_msg(&c->base.recv_err, -E2BIG, "%u iovecs in one receive", iovcnt);
	for (unsigned int i = 0; i < iovcnt; i++) {
		c->iov[i] = iov[i];
		total += iov[i].iov_len;
	}
	if (c->prefault == PF_ON)
		prefault(c, iov, iovcnt);
	else if (c->prefault == PF_OFF)
		before = thread_minflt();
	ret = c->tls ? recv_tls(c, c->iov, iovcnt, total, -1)
		     : recv_iov(c, c->iov, iovcnt, total, -1);
	if (before >= 0) {
		/* most of the batch's pages faulted in: populate the next batches */
		after = thread_minflt();
		if (after >= 0 && (uint64_t)(after - before) * 8192 >= total)
			c->prefault = PF_ON;
	}
	return ret;
}

static void tcp_shutdown(struct rmig_conn *cb)
{
	struct tcp_conn *c = to_conn(cb);

	rmig_store_relaxed(&c->down, true);
	shutdown(c->fd, SHUT_RDWR);
}

static void tcp_close(struct rmig_conn *cb)
{
	struct tcp_conn *c = to_conn(cb);

	tcp_tls_end(c->tls);
	close(c->fd);
	free(c);
}

static const struct rmig_conn_ops tcp_conn_ops = {
	.send = tcp_send,
	.flush = tcp_flush,
	.recv = tcp_recv,
	.recv_pages = tcp_recv_pages,
	.pull = rmig_conn_no_pull,
	.pull_wait = rmig_conn_no_pull_wait,
	.chan_open = rmig_conn_nop_chan_open,
	.shutdown = tcp_shutdown,
	.close = tcp_close,
};

const struct rmig_xport_ops rmig_tcp_ops = {
	.name = "tcp",
	.caps = RMIG_XCAP_ZERO_COPY | RMIG_XCAP_TLS,
	.connect = tcp_connect,
	.set_peer_info = rmig_xport_nop_set_peer_info, /* data travels in the stream */
	.connect_channel = tcp_connect_channel,
	.listen = tcp_listen,
	.port = tcp_port,
	.accept = tcp_accept,
	.local_info = rmig_xport_nop_local_info,
	.pull_info = rmig_xport_no_pull_info, /* postcopy pulls by PAGE_REQ instead */
	.pull_open = rmig_xport_no_pull_open,
	.shutdown = tcp_xshutdown,
	.revoke = rmig_xport_nop_revoke,
	.destroy = tcp_destroy,
	.reg_ns = rmig_xport_nop_reg_ns,
	.finish = rmig_xport_nop_finish, /* the peer confirms the end */
	.load = rmig_xport_no_load,
	.load_stats = rmig_xport_nop_load_stats,
};
