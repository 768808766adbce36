/* SPDX-License-Identifier: MIT */
/*
 * TLS 1.3 for the tcp transport (OpenSSL). One struct tcp_tls per xport
 * holds the SSL_CTX with its credentials: X.509 certificates from a
 * directory laid out as QEMU's tls-creds-x509 (ca-cert.pem, server-cert.pem,
 * server-key.pem, client-cert.pem, client-key.pem), verified both ways, or
 * an external pre-shared key. One struct tcp_tls_sess per connection.
 *
 * After the handshake the socket is non-blocking and every call into the
 * SSL object is made under sess->lock, because a conn may be used by a
 * receiving and a sending thread at once and an SSL object may not; waits
 * (poll) happen outside the lock. Where the kernel took over encryption of
 * sends (kTLS), the sender writes plain bytes with sendmsg on the socket
 * and never touches the SSL object.
 */
#ifndef RMIG_TRANSPORT_TCP_TLS_H
#define RMIG_TRANSPORT_TCP_TLS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "core/util.h"
#include "rmig/rmig.h"

typedef struct ssl_st SSL;
struct tcp_tls;

struct tcp_tls_sess {
	SSL *ssl;
	const struct tcp_tls *t;
	pthread_mutex_t lock; /* every call into ssl */
	bool ktls_send;	      /* the kernel encrypts what we sendmsg */
	bool ktls_recv;	      /* the kernel decrypts (SSL_read still used) */
	bool buffered;	      /* records gather in a buffer BIO: tcp_tls_flush() */
	/* last alerts, kept by the info callback; Must hold lock */
	char alert_in[64];
	char alert_out[64];
};

/*
 * Credentials for one xport: @server for the destination. @host is the
 * name or address the source connects to, checked against the
 * destination's certificate (NULL on the destination). The key for PSK
 * mode comes from @o (psk_file or psk) when @o->tls_creds is NULL.
 */
int tcp_tls_new(const struct rmig_opts *o, bool server, const char *host, struct tcp_tls **tp,
		struct rmig_msgbuf *mb);
void tcp_tls_free(struct tcp_tls *t);

/*
 * Handshake on the connected socket @fd within @timeout_ms; a write to
 * @wake_fd (eventfd) cancels it. On success @fd is non-blocking and *@sp
 * is the session; on failure the caller closes @fd.
 */
int tcp_tls_start(const struct tcp_tls *t, int fd, int wake_fd, int timeout_ms,
		  struct tcp_tls_sess **sp, struct rmig_msgbuf *mb);
void tcp_tls_end(struct tcp_tls_sess *s);

/* Write all @len bytes (maybe still buffered); 0 or -errno with the reason in @mb. */
int tcp_tls_write(struct tcp_tls_sess *s, int fd, const void *buf, size_t len,
		  struct rmig_msgbuf *mb);
/* Push out what tcp_tls_write() left buffered. */
int tcp_tls_flush(struct tcp_tls_sess *s, int fd, struct rmig_msgbuf *mb);
/*
 * Read up to @len bytes, waiting at most @timeout_ms for the first (< 0:
 * for ever). Returns the count (> 0) or -errno: -ETIMEDOUT, -ECONNRESET
 * when the peer closed.
 */
ssize_t tcp_tls_read(struct tcp_tls_sess *s, int fd, void *buf, size_t len, int timeout_ms,
		     struct rmig_msgbuf *mb);

/* ---- tls.c internals shared with tls_io.c ---- */

/* The side we talk to, for messages: "destination" or "source". */
const char *tcp_tls_peer_name(const struct tcp_tls *t);
bool tcp_tls_is_server(const struct tcp_tls *t);
bool tcp_tls_is_psk(const struct tcp_tls *t);
SSL *tcp_tls_ssl_new(const struct tcp_tls *t, struct rmig_msgbuf *mb);

#endif /* RMIG_TRANSPORT_TCP_TLS_H */
