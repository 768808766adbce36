// SPDX-License-Identifier: MIT
/*
 * TLS sessions of the tcp transport: the handshake (with a deadline and a
 * cancel), kTLS detection, reads and writes on the non-blocking socket,
 * and failures told in words that name the problem on the side that sees
 * it (an expired or unknown certificate, a name that does not match, a key
 * that differs, a peer that does not speak TLS).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "tls.h"

/* A fatal protocol_version alert record, what a TLS peer understands as "no". */
static const unsigned char alert_protocol_version[] = { 0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 70 };

/* Bytes a failed destination reads before closing, so its close is no reset. */
#define LINGER_MS 200
/* OpenSSL writes each 16 KiB record by itself; gather this much per sendmsg */
#define WRITE_BUF (256 * 1024)

static void info_cb(const SSL *ssl, int where, int val)
{
	struct tcp_tls_sess *s = SSL_get_app_data(ssl);

	if (!s || !(where & SSL_CB_ALERT))
		return;
	snprintf((where & SSL_CB_READ) ? s->alert_in : s->alert_out, sizeof(s->alert_in), "%s",
		 SSL_alert_desc_string_long(val));
}

static int ms_left(uint64_t deadline)
{
	uint64_t now = rmig_now_ns();

	return now >= deadline ? 0 : (int)((deadline - now + 999999) / 1000000);
}

/* Wait for @events on @fd: 0, -ETIMEDOUT, -ECANCELED (@wake_fd), -errno. */
static int wait_fd(int fd, short events, int wake_fd, int timeout_ms)
{
	struct pollfd pfd[2] = {
		{ .fd = fd, .events = events },
		{ .fd = wake_fd, .events = POLLIN },
	};
	int n;

	do
		n = poll(pfd, wake_fd >= 0 ? 2 : 1, timeout_ms);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if (n == 0)
		return -ETIMEDOUT;
	if (wake_fd >= 0 && pfd[1].revents)
		return -ECANCELED;
	return 0;
}

/*
 * Why the last SSL call failed (@e: its SSL_get_error(), @sys: errno
 * right after it). Must hold s->lock.
 */
static int tls_fail(struct tcp_tls_sess *s, int e, int sys, bool handshake, const char *what,
		    struct rmig_msgbuf *mb)
{
	const char *peer = tcp_tls_peer_name(s->t);
	unsigned long err = ERR_peek_last_error();
	char why[256] = "";
	long v;
	int ret;

	if (err)
		ERR_error_string_n(err, why, sizeof(why));
	ERR_clear_error();
	if (e == SSL_ERROR_ZERO_RETURN || (s->alert_in[0] && !strcmp(s->alert_in, "close notify")))
		return rmig_msg(mb, -ECONNRESET, "connection closed by the %s (TLS close) %s",
				peer, what);
	if (e == SSL_ERROR_SYSCALL && !err) {
		if (handshake && (!sys || sys == ECONNRESET || sys == EPIPE))
			return rmig_msg(mb, -ECONNRESET,
					"the %s closed the connection during the TLS handshake (does it use TLS? both sides need it)",
					peer);
		if (!sys || sys == ECONNRESET)
			return rmig_msg(mb, -ECONNRESET, "connection closed by the %s %s", peer,
					what);
		return rmig_msg(mb, -sys, "TLS failed %s: %s", what, strerror(sys));
	}
	v = SSL_get_verify_result(s->ssl);
	if (v != X509_V_OK)
		return rmig_msg(mb, -EACCES, "TLS: the %s's certificate failed verification: %s",
				peer, X509_verify_cert_error_string(v));
	if (tcp_tls_is_psk(s->t) && tcp_tls_is_server(s->t) && strstr(why, "binder"))
		return rmig_msg(mb, -EACCES,
				"TLS authentication failed: the source proved no knowledge of this side's pre-shared key");
	if (s->alert_in[0]) {
		ret = strstr(s->alert_in, "certificate") || strstr(s->alert_in, "CA") ||
				      strstr(s->alert_in, "decrypt") || strstr(s->alert_in, "access")
			      ? -EACCES
			      : -EPROTO;
		/*
		 * A destination that cannot verify the source's PSK binder
		 * answers decrypt_error or illegal_parameter (OpenSSL 3.0).
		 */
		if (tcp_tls_is_psk(s->t) && !tcp_tls_is_server(s->t) && handshake &&
		    (strstr(s->alert_in, "decrypt") || strstr(s->alert_in, "illegal parameter")))
			return rmig_msg(mb, -EACCES,
					"TLS authentication failed: the destination refused this side's pre-shared key (alert \"%s\")",
					s->alert_in);
		return rmig_msg(mb, ret, "TLS: the %s refused the session with alert \"%s\" %s",
				peer, s->alert_in, what);
	}
	if (strstr(why, "wrong version number") || strstr(why, "packet length too long"))
		return rmig_msg(mb, -EPROTO, "TLS: the %s does not speak TLS (%s)", peer, why);
	return rmig_msg(mb, -EPROTO, "TLS failed %s with the %s: %s", what, peer,
			why[0] ? why : "unknown error");
}

/*
 * Destination: a source that sends anything but a TLS handshake record
 * first is not a TLS client. Tell it so in TLS's own terms (a plain rmig
 * source recognises the alert record) rather than feed it to OpenSSL.
 */
static int check_first_byte(int fd, int wake_fd, uint64_t deadline, struct rmig_msgbuf *mb)
{
	unsigned char b;
	ssize_t n;
	int ret;

	for (;;) {
		ret = wait_fd(fd, POLLIN, wake_fd, ms_left(deadline));
		if (ret == -ETIMEDOUT)
			return rmig_msg(mb, ret, "the source sent nothing (no TLS handshake)");
		if (ret == -ECANCELED)
			return rmig_msg(mb, ret, "cancelled");
		if (ret)
			return rmig_msg(mb, ret, "poll: %s", strerror(-ret));
		n = recv(fd, &b, 1, MSG_PEEK);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0)
			return rmig_msg(mb, -errno, "receiving: %s", strerror(errno));
		if (n == 0)
			return rmig_msg(mb, -ECONNRESET,
					"the source closed the connection before the TLS handshake");
		break;
	}
	if (b == 0x16) /* handshake record */
		return 0;
	if (send(fd, alert_protocol_version, sizeof(alert_protocol_version),
		 MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
		/* it is going away anyway */
	}
	return rmig_msg(mb, -EPROTO,
			"the source does not speak TLS (first byte 0x%02x): this destination requires TLS on both sides",
			b);
}

/* Read what the peer still sends (briefly), so that closing sends FIN, not RST. */
static void linger_drain(int fd)
{
	uint64_t deadline = rmig_now_ns() + LINGER_MS * 1000000ull;
	char buf[4096];
	ssize_t n;

	shutdown(fd, SHUT_WR);
	while (wait_fd(fd, POLLIN, -1, ms_left(deadline)) == 0) {
		n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			break;
	}
}

static int handshake(struct tcp_tls_sess *s, int fd, int wake_fd, uint64_t deadline,
		     struct rmig_msgbuf *mb)
{
	bool server = tcp_tls_is_server(s->t);
	int r, e, sys, ret;

	for (;;) {
		ERR_clear_error();
		errno = 0;
		r = server ? SSL_accept(s->ssl) : SSL_connect(s->ssl);
		if (r == 1)
			return 0;
		sys = errno;
		e = SSL_get_error(s->ssl, r);
		if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
			return tls_fail(s, e, sys, true, "during the handshake", mb);
		ret = wait_fd(fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, wake_fd,
			      ms_left(deadline));
		if (ret == -ETIMEDOUT)
			return rmig_msg(mb, ret, "TLS handshake with the %s: no answer in time",
					tcp_tls_peer_name(s->t));
		if (ret == -ECANCELED)
			return rmig_msg(mb, ret, "cancelled");
		if (ret)
			return rmig_msg(mb, ret, "poll: %s", strerror(-ret));
	}
}

/*
 * Without kTLS every record would be a write of its own (one syscall per
 * 16 KiB): put a buffer between the session and the socket, which
 * tcp_tls_flush() empties at the end of each send. Only after the
 * handshake, whose flights OpenSSL flushes itself.
 */
static int buffer_writes(struct tcp_tls_sess *s, struct rmig_msgbuf *mb)
{
	BIO *sock = SSL_get_wbio(s->ssl), *buf = BIO_new(BIO_f_buffer());

	if (!buf || BIO_set_write_buffer_size(buf, WRITE_BUF) <= 0 || !BIO_up_ref(sock)) {
		BIO_free(buf);
		return rmig_msg(mb, -ENOMEM, "out of memory");
	}
	BIO_push(buf, sock);
	/* the session drops its own reference to the socket BIO as its wbio */
	SSL_set0_wbio(s->ssl, buf);
	s->buffered = true;
	return 0;
}

int tcp_tls_start(const struct tcp_tls *t, int fd, int wake_fd, int timeout_ms,
		  struct tcp_tls_sess **sp, struct rmig_msgbuf *mb)
{
	uint64_t deadline = rmig_now_ns() + (uint64_t)timeout_ms * 1000000ull;
	struct tcp_tls_sess *s;
	int ret;

	s = calloc(1, sizeof(*s));
	if (!s)
		return rmig_msg(mb, -ENOMEM, "out of memory");
	s->t = t;
	pthread_mutex_init(&s->lock, NULL);
	s->ssl = tcp_tls_ssl_new(t, mb);
	if (!s->ssl) {
		ret = -ENOMEM;
		goto err_free;
	}
	SSL_set_app_data(s->ssl, s);
	SSL_set_info_callback(s->ssl, info_cb);
	if (SSL_set_fd(s->ssl, fd) != 1) {
		ret = rmig_msg(mb, -ENOMEM, "TLS: cannot attach the socket");
		goto err_free;
	}
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) {
		ret = rmig_msg(mb, -errno, "fcntl: %s", strerror(errno));
		goto err_free;
	}
	if (tcp_tls_is_server(t)) {
		ret = check_first_byte(fd, wake_fd, deadline, mb);
		if (ret)
			goto err_linger;
	}
	ret = handshake(s, fd, wake_fd, deadline, mb);
	if (ret)
		goto err_linger;
	/* OpenSSL handed the keys to the kernel if it could (SSL_OP_ENABLE_KTLS) */
	s->ktls_send = BIO_get_ktls_send(SSL_get_wbio(s->ssl));
	s->ktls_recv = BIO_get_ktls_recv(SSL_get_rbio(s->ssl));
	if (!s->ktls_send) {
		ret = buffer_writes(s, mb);
		if (ret)
			goto err_free;
	}
	*sp = s;
	return 0;

err_linger:
	if (tcp_tls_is_server(t) && ret != -ECANCELED)
		linger_drain(fd);
err_free:
	tcp_tls_end(s);
	return ret;
}

void tcp_tls_end(struct tcp_tls_sess *s)
{
	if (!s)
		return;
	SSL_free(s->ssl);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

int tcp_tls_write(struct tcp_tls_sess *s, int fd, const void *buf, size_t len,
		  struct rmig_msgbuf *mb)
{
	size_t done = 0, n;
	int r, e, sys, ret;

	while (done < len) {
		pthread_mutex_lock(&s->lock);
		ERR_clear_error();
		errno = 0;
		r = SSL_write_ex(s->ssl, (const char *)buf + done, len - done, &n);
		if (r > 0) {
			pthread_mutex_unlock(&s->lock);
			done += n;
			continue;
		}
		sys = errno;
		e = SSL_get_error(s->ssl, r);
		if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
			ret = tls_fail(s, e, sys, false, "while sending", mb);
			pthread_mutex_unlock(&s->lock);
			return ret;
		}
		pthread_mutex_unlock(&s->lock);
		/* a blocking send has no limit either; a dead peer ends it (TCP_USER_TIMEOUT) */
		ret = wait_fd(fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, -1, -1);
		if (ret)
			return rmig_msg(mb, ret, "poll: %s", strerror(-ret));
	}
	return 0;
}

int tcp_tls_flush(struct tcp_tls_sess *s, int fd, struct rmig_msgbuf *mb)
{
	BIO *b;
	int r, ret;

	if (!s->buffered)
		return 0;
	for (;;) {
		pthread_mutex_lock(&s->lock);
		b = SSL_get_wbio(s->ssl);
		errno = 0;
		r = BIO_flush(b);
		if (r > 0 || !BIO_should_retry(b)) {
			ret = r > 0 ? 0 : errno ? -errno : -EIO;
			pthread_mutex_unlock(&s->lock);
			if (ret)
				return rmig_msg(mb, ret, "TLS failed while sending: %s", strerror(-ret));
			return 0;
		}
		pthread_mutex_unlock(&s->lock);
		ret = wait_fd(fd, POLLOUT, -1, -1);
		if (ret)
			return rmig_msg(mb, ret, "poll: %s", strerror(-ret));
	}
}

ssize_t tcp_tls_read(struct tcp_tls_sess *s, int fd, void *buf, size_t len, int timeout_ms,
		     struct rmig_msgbuf *mb)
{
	size_t n;
	int r, e, sys, ret;

	for (;;) {
		pthread_mutex_lock(&s->lock);
		ERR_clear_error();
		errno = 0;
		r = SSL_read_ex(s->ssl, buf, len, &n);
		if (r > 0) {
			pthread_mutex_unlock(&s->lock);
			return (ssize_t)n;
		}
		sys = errno;
		e = SSL_get_error(s->ssl, r);
		if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
			ret = tls_fail(s, e, sys, false, "while receiving", mb);
			pthread_mutex_unlock(&s->lock);
			return ret;
		}
		pthread_mutex_unlock(&s->lock);
		ret = wait_fd(fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, -1, timeout_ms);
		if (ret == -ETIMEDOUT)
			return rmig_msg(mb, ret, "peer sent nothing for %d ms", timeout_ms);
		if (ret)
			return rmig_msg(mb, ret, "poll: %s", strerror(-ret));
	}
}
