// SPDX-License-Identifier: MIT
/*
 * TLS 1.3 contexts for the tcp transport: X.509 credentials from a
 * directory (mutual verification against its ca-cert.pem, and the
 * destination's name or address checked by the source), or an external
 * pre-shared key. Handshake and I/O are in tls_io.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "tls.h"

#define PSK_MIN 32u
#define PSK_FILE_MAX 4096u
#define PSK_KEY_LEN 32u /* the derived TLS key: SHA-256 sized, as the PSK's cipher suite */

/* Both sides name the one external PSK the same; it is not a secret. */
static const unsigned char psk_identity[] = "rmig-tls13-psk";
/* TLS_AES_128_GCM_SHA256: the PSK's hash must be the suite's */
static const unsigned char psk_suite[2] = { 0x13, 0x01 };

struct tcp_tls {
	SSL_CTX *ctx;
	bool server;
	bool psk_mode;
	char host[256]; /* source: the destination's name or address, as connected to */
	bool host_is_ip;
	unsigned char key[PSK_KEY_LEN];
};

const char *tcp_tls_peer_name(const struct tcp_tls *t)
{
	return t->server ? "source" : "destination";
}

bool tcp_tls_is_server(const struct tcp_tls *t)
{
	return t->server;
}

bool tcp_tls_is_psk(const struct tcp_tls *t)
{
	return t->psk_mode;
}

/* The newest OpenSSL error as text ("" when none), and the queue cleared. */
static const char *ossl_reason(char *buf, size_t len)
{
	unsigned long e = ERR_peek_last_error();

	buf[0] = 0;
	if (e)
		ERR_error_string_n(e, buf, len);
	ERR_clear_error();
	return buf[0] ? buf : "unknown OpenSSL error";
}

/* ---- pre-shared key ------------------------------------------------------------ */

/*
 * The key file is a secret: refused unless only its owner can read it, and
 * it must hold at least PSK_MIN bytes (any bytes: raw or text).
 */
static int psk_read_file(const char *path, unsigned char *buf, size_t *len,
			 struct rmig_msgbuf *mb)
{
	struct stat st;
	ssize_t n;
	size_t got = 0;
	int fd, ret = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return rmig_msg(mb, -errno, "pre-shared key file %s: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0) {
		ret = rmig_msg(mb, -errno, "pre-shared key file %s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		ret = rmig_msg(mb, -EINVAL, "pre-shared key file %s: not a regular file", path);
		goto out;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		ret = rmig_msg(mb, -EACCES,
			       "pre-shared key file %s is accessible to group or others (mode %03o): chmod 600 it",
			       path, (unsigned int)(st.st_mode & 0777));
		goto out;
	}
	while (got <= PSK_FILE_MAX) {
		n = read(fd, buf + got, PSK_FILE_MAX + 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = rmig_msg(mb, -errno, "pre-shared key file %s: %s", path,
				       strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	if (got > PSK_FILE_MAX) {
		ret = rmig_msg(mb, -EINVAL, "pre-shared key file %s: longer than %u bytes", path,
			       PSK_FILE_MAX);
		goto out;
	}
	if (got < PSK_MIN) {
		ret = rmig_msg(mb, -EINVAL, "pre-shared key file %s: %zu bytes, at least %u needed",
			       path, got, PSK_MIN);
		goto out;
	}
	*len = got;
out:
	close(fd);
	return ret;
}

/*
 * The TLS key is derived from the shared secret (HKDF-SHA256 with a label
 * of its own), so the bytes TLS uses are never the ones another use of the
 * same secret (the protocol's own authentication) works with.
 */
static int psk_derive(const unsigned char *secret, size_t len, unsigned char *out,
		      struct rmig_msgbuf *mb)
{
	static const unsigned char salt[] = "rmig tcp TLS 1.3 external PSK v1";
	EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, NULL);
	size_t outlen = PSK_KEY_LEN;
	char why[256];
	int ok;

	ok = pc && EVP_PKEY_derive_init(pc) > 0 && EVP_PKEY_CTX_set_hkdf_md(pc, EVP_sha256()) > 0 &&
	     EVP_PKEY_CTX_set1_hkdf_salt(pc, salt, sizeof(salt) - 1) > 0 &&
	     EVP_PKEY_CTX_set1_hkdf_key(pc, secret, (int)len) > 0 &&
	     EVP_PKEY_derive(pc, out, &outlen) > 0 && outlen == PSK_KEY_LEN;
	EVP_PKEY_CTX_free(pc);
	if (!ok)
		return rmig_msg(mb, -EIO, "deriving the TLS key: %s", ossl_reason(why, sizeof(why)));
	return 0;
}

/*
 * The core loads the key file at listen and connect and leaves the bytes in
 * @o->psk (core/auth.h); the file is read here only when they are not there.
 */
static int psk_load(struct tcp_tls *t, const struct rmig_opts *o, struct rmig_msgbuf *mb)
{
	unsigned char *buf;
	size_t len = 0;
	int ret;

	if (!o->psk_file && !o->psk)
		return rmig_msg(mb, -EINVAL,
				"TLS needs credentials: a directory of certificates (tls_creds, --tls-creds) or a pre-shared key (psk, psk_file)");
	buf = malloc(PSK_FILE_MAX + 1);
	if (!buf)
		return rmig_msg(mb, -ENOMEM, "out of memory");
	if (!o->psk) {
		ret = psk_read_file(o->psk_file, buf, &len, mb);
	} else if (o->psk_len < PSK_MIN || o->psk_len > PSK_FILE_MAX) {
		ret = rmig_msg(mb, -EINVAL, "pre-shared key of %u bytes: %u to %u needed",
			       o->psk_len, PSK_MIN, PSK_FILE_MAX);
	} else {
		len = o->psk_len;
		memcpy(buf, o->psk, len);
		ret = 0;
	}
	if (!ret)
		ret = psk_derive(buf, len, t->key, mb);
	OPENSSL_cleanse(buf, PSK_FILE_MAX + 1);
	free(buf);
	return ret;
}

static SSL_SESSION *psk_session(SSL *ssl, const struct tcp_tls *t)
{
	const SSL_CIPHER *cipher = SSL_CIPHER_find(ssl, psk_suite);
	SSL_SESSION *sess;

	if (!cipher)
		return NULL;
	sess = SSL_SESSION_new();
	if (!sess)
		return NULL;
	if (!SSL_SESSION_set1_master_key(sess, t->key, sizeof(t->key)) ||
	    !SSL_SESSION_set_cipher(sess, cipher) ||
	    !SSL_SESSION_set_protocol_version(sess, TLS1_3_VERSION)) {
		SSL_SESSION_free(sess);
		return NULL;
	}
	return sess;
}

/* source: offer the key; @md is set when a HelloRetryRequest fixed the hash */
static int psk_use_cb(SSL *ssl, const EVP_MD *md, const unsigned char **id, size_t *idlen,
		      SSL_SESSION **sessp)
{
	const struct tcp_tls_sess *s = SSL_get_app_data(ssl);
	SSL_SESSION *sess;

	*sessp = NULL;
	if (md && md != EVP_sha256())
		return 1; /* no PSK for that hash: the handshake then fails cleanly */
	sess = psk_session(ssl, s->t);
	if (!sess)
		return 0;
	*sessp = sess;
	*id = psk_identity;
	*idlen = sizeof(psk_identity) - 1;
	return 1;
}

/* destination: the key for the identity the source named */
static int psk_find_cb(SSL *ssl, const unsigned char *id, size_t idlen, SSL_SESSION **sessp)
{
	const struct tcp_tls_sess *s = SSL_get_app_data(ssl);

	*sessp = NULL;
	if (idlen != sizeof(psk_identity) - 1 || memcmp(id, psk_identity, idlen))
		return 1; /* unknown identity: no PSK, and no certificate either */
	*sessp = psk_session(ssl, s->t);
	return *sessp ? 1 : 0;
}

/* ---- certificates -------------------------------------------------------------- */

static int creds_path(const char *dir, const char *name, char *buf, size_t len,
		      struct rmig_msgbuf *mb)
{
	struct stat st;

	if ((size_t)snprintf(buf, len, "%s/%s", dir, name) >= len)
		return rmig_msg(mb, -ENAMETOOLONG, "TLS credentials directory name too long");
	if (stat(buf, &st) < 0)
		return rmig_msg(mb, -errno, "TLS credentials: %s: %s", buf, strerror(errno));
	return 0;
}

static int creds_load(struct tcp_tls *t, const char *dir, struct rmig_msgbuf *mb)
{
	const char *role = t->server ? "server" : "client";
	char ca[4096], cert[4096], key[4096], name[32], why[256];

	int ret;

	ret = creds_path(dir, "ca-cert.pem", ca, sizeof(ca), mb);
	if (ret)
		return ret;
	snprintf(name, sizeof(name), "%s-cert.pem", role);
	ret = creds_path(dir, name, cert, sizeof(cert), mb);
	if (ret)
		return ret;
	snprintf(name, sizeof(name), "%s-key.pem", role);
	ret = creds_path(dir, name, key, sizeof(key), mb);
	if (ret)
		return ret;
	if (SSL_CTX_load_verify_locations(t->ctx, ca, NULL) != 1)
		return rmig_msg(mb, -EINVAL, "TLS credentials: %s: %s", ca,
				ossl_reason(why, sizeof(why)));
	if (SSL_CTX_use_certificate_chain_file(t->ctx, cert) != 1)
		return rmig_msg(mb, -EINVAL, "TLS credentials: %s: %s", cert,
				ossl_reason(why, sizeof(why)));
	if (SSL_CTX_use_PrivateKey_file(t->ctx, key, SSL_FILETYPE_PEM) != 1)
		return rmig_msg(mb, -EINVAL, "TLS credentials: %s: %s", key,
				ossl_reason(why, sizeof(why)));
	if (SSL_CTX_check_private_key(t->ctx) != 1)
		return rmig_msg(mb, -EINVAL, "TLS credentials: %s is not the key of %s: %s", key,
				cert, ossl_reason(why, sizeof(why)));
	/* mutual: the destination demands the source's certificate too */
	SSL_CTX_set_verify(t->ctx,
			   SSL_VERIFY_PEER | (t->server ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
			   NULL);
	return 0;
}

/* ---- context ------------------------------------------------------------------- */

int tcp_tls_new(const struct rmig_opts *o, bool server, const char *host, struct tcp_tls **tp,
		struct rmig_msgbuf *mb)
{
	struct in6_addr a6;
	struct tcp_tls *t;
	char why[256];
	int ret;

	t = calloc(1, sizeof(*t));
	if (!t)
		return rmig_msg(mb, -ENOMEM, "out of memory");
	t->server = server;
	t->psk_mode = !o->tls_creds;
	if (host) {
		if (strlen(host) >= sizeof(t->host)) {
			ret = rmig_msg(mb, -EINVAL, "host name too long for TLS");
			goto err_free;
		}
		strcpy(t->host, host);
		t->host_is_ip = inet_pton(AF_INET, host, &a6) == 1 ||
				inet_pton(AF_INET6, host, &a6) == 1;
	}
	t->ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
	if (!t->ctx) {
		ret = rmig_msg(mb, -ENOMEM, "TLS context: %s", ossl_reason(why, sizeof(why)));
		goto err_free;
	}
	if (SSL_CTX_set_min_proto_version(t->ctx, TLS1_3_VERSION) != 1) {
		ret = rmig_msg(mb, -EPROTONOSUPPORT, "this OpenSSL has no TLS 1.3: %s",
			       ossl_reason(why, sizeof(why)));
		goto err_ctx;
	}
	/*
	 * kTLS where the kernel has it (checked per session after the
	 * handshake); no session tickets or cache: every connection is a full
	 * handshake, and no post-handshake record sits between data records.
	 */
	SSL_CTX_set_options(t->ctx, SSL_OP_ENABLE_KTLS | SSL_OP_NO_TICKET);
	SSL_CTX_set_session_cache_mode(t->ctx, SSL_SESS_CACHE_OFF);
	if (server)
		SSL_CTX_set_num_tickets(t->ctx, 0);
	SSL_CTX_set_mode(t->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
					 SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (t->psk_mode) {
		ret = psk_load(t, o, mb);
		if (ret)
			goto err_ctx;
		/* suites with SHA-256, the hash the key is bound to */
		SSL_CTX_set_ciphersuites(t->ctx,
					 "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256");
		if (server)
			SSL_CTX_set_psk_find_session_callback(t->ctx, psk_find_cb);
		else
			SSL_CTX_set_psk_use_session_callback(t->ctx, psk_use_cb);
	} else {
		/* AES-128-GCM first: as strong as needed here, faster, and kTLS has it */
		SSL_CTX_set_ciphersuites(t->ctx, "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:"
						 "TLS_CHACHA20_POLY1305_SHA256");
		ret = creds_load(t, o->tls_creds, mb);
		if (ret)
			goto err_ctx;
	}
	*tp = t;
	return 0;

err_ctx:
	SSL_CTX_free(t->ctx);
err_free:
	OPENSSL_cleanse(t->key, sizeof(t->key));
	free(t);
	return ret;
}

void tcp_tls_free(struct tcp_tls *t)
{
	if (!t)
		return;
	SSL_CTX_free(t->ctx);
	OPENSSL_cleanse(t->key, sizeof(t->key));
	free(t);
}

/* A new SSL object for one connection, with the source's name check set. */
SSL *tcp_tls_ssl_new(const struct tcp_tls *t, struct rmig_msgbuf *mb)
{
	SSL *ssl = SSL_new(t->ctx);
	X509_VERIFY_PARAM *vp;
	char why[256];

	if (!ssl) {
		rmig_msg(mb, -ENOMEM, "TLS session: %s", ossl_reason(why, sizeof(why)));
		return NULL;
	}
	if (t->server || t->psk_mode || !t->host[0])
		return ssl;
	vp = SSL_get0_param(ssl);
	X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	if (t->host_is_ip ? X509_VERIFY_PARAM_set1_ip_asc(vp, t->host) != 1
			  : (SSL_set1_host(ssl, t->host) != 1 ||
			     SSL_set_tlsext_host_name(ssl, t->host) != 1)) {
		rmig_msg(mb, -EINVAL, "TLS: cannot check the destination against '%s': %s",
			 t->host, ossl_reason(why, sizeof(why)));
		SSL_free(ssl);
		return NULL;
	}
	return ssl;
}
