// SPDX-License-Identifier: MIT
/*
 * Pre-shared keys and the challenge-response both ways (core/auth.h).
 * The primitives are OpenSSL's: RAND_bytes for nonces, HMAC-SHA256 for
 * proofs, CRYPTO_memcmp to compare them, OPENSSL_cleanse to wipe keys.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "auth.h"

#define AUTH_LABEL "rmig-auth-v1"
#define CHAN_LABEL "rmig-chan-v1"

int rmig_key_copy(struct rmig_key *k, struct rmig_opts *o)
{
	memset(k, 0, sizeof(*k));
	if (o->psk_file) {
		k->file = strdup(o->psk_file);
		if (!k->file)
			return -ENOMEM;
		o->psk_file = k->file;
		o->psk = NULL;
		o->psk_len = 0;
		return 0;
	}
	if (!o->psk) {
		o->psk_len = 0;
		return 0;
	}
	if (!o->psk_len || o->psk_len > RMIG_PSK_MAX)
		return -EINVAL;
	k->bytes = malloc(o->psk_len);
	if (!k->bytes)
		return -ENOMEM;
	memcpy(k->bytes, o->psk, o->psk_len);
	k->len = o->psk_len;
	o->psk = k->bytes;
	return 0;
}

static int key_read_file(struct rmig_key *k, struct rmig_msgbuf *mb)
{
	uint8_t *buf = NULL;
	struct stat st;
	size_t got = 0;
	int fd, ret;

	fd = open(k->file, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return rmig_msg(mb, -errno, "pre-shared key file '%s': %s", k->file,
				strerror(errno));
	if (fstat(fd, &st)) {
		ret = rmig_msg(mb, -errno, "pre-shared key file '%s': %s", k->file, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		ret = rmig_msg(mb, -EINVAL, "pre-shared key file '%s' is not a regular file", k->file);
		goto out;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		ret = rmig_msg(mb, -EPERM,
			       "pre-shared key file '%s' is accessible by group or others (mode %04o): refused; chmod 600 it and make a new key",
			       k->file, (unsigned int)(st.st_mode & 07777));
		goto out;
	}
	if (st.st_size < (off_t)RMIG_PSK_MIN || st.st_size > (off_t)RMIG_PSK_MAX) {
		ret = rmig_msg(mb, -EINVAL,
			       "pre-shared key file '%s' holds %lld bytes; a key is %u to %u bytes (make one with: head -c 32 /dev/urandom)",
			       k->file, (long long)st.st_size, RMIG_PSK_MIN, RMIG_PSK_MAX);
		goto out;
	}
	buf = malloc((size_t)st.st_size);
	if (!buf) {
		ret = rmig_msg(mb, -ENOMEM, "out of memory");
		goto out;
	}
	while (got < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			ret = rmig_msg(mb, r < 0 ? -errno : -EIO,
				       "pre-shared key file '%s': short read (%zu of %lld bytes)",
				       k->file, got, (long long)st.st_size);
			goto out;
		}
		got += (size_t)r;
	}
	k->bytes = buf;
	k->len = got;
	buf = NULL;
	ret = 0;
out:
	if (buf) {
		OPENSSL_cleanse(buf, (size_t)st.st_size);
		free(buf);
	}
	close(fd);
	return ret;
}

int rmig_key_load(struct rmig_key *k, struct rmig_opts *o, struct rmig_msgbuf *mb)
{
	int ret;

	if (!rmig_key_set(k))
		return 0;
	if (k->file && !k->bytes) {
		ret = key_read_file(k, mb);
		if (ret)
			return ret;
	}
	if (k->len < RMIG_PSK_MIN)
		return rmig_msg(mb, -EINVAL,
				"the pre-shared key (psk) is %zu bytes; at least %u are needed",
				k->len, RMIG_PSK_MIN);
	o->psk = k->bytes;
	o->psk_len = (uint32_t)k->len;
	return 0;
}

void rmig_key_free(struct rmig_key *k)
{
	if (k->bytes) {
		OPENSSL_cleanse(k->bytes, k->len);
		free(k->bytes);
	}
	free(k->file);
	memset(k, 0, sizeof(*k));
}

/* HMAC-SHA256 of the concatenation of @n pieces. */
static int hmac(const uint8_t *key, size_t keylen, const void *const *piece, const size_t *len,
		unsigned int n, uint8_t out[RMIG_AUTH_MAC_LEN])
{
	uint8_t buf[256];
	size_t total = 0;
	unsigned int outlen = 0;
	uint8_t *r;

	for (unsigned int i = 0; i < n; i++) {
		if (total + len[i] > sizeof(buf))
			return -EINVAL;
		memcpy(buf + total, piece[i], len[i]);
		total += len[i];
	}
	r = HMAC(EVP_sha256(), key, (int)keylen, buf, total, out, &outlen);
	OPENSSL_cleanse(buf, sizeof(buf));
	return r && outlen == RMIG_AUTH_MAC_LEN ? 0 : -EIO;
}

/* HMAC(K, T || @role) with T = label || session || Ns || Nd. */
static int session_mac(const struct rmig_key *k, const uint8_t *session, const uint8_t *ns,
		       const uint8_t *nd, const char *role, uint8_t out[RMIG_AUTH_MAC_LEN])
{
	const void *p[] = { AUTH_LABEL, session, ns, nd, role };
	const size_t l[] = { strlen(AUTH_LABEL), RMIG_UUID_LEN, RMIG_AUTH_NONCE_LEN,
			     RMIG_AUTH_NONCE_LEN, strlen(role) };

	return hmac(k->bytes, k->len, p, l, RMIG_ARRAY_SIZE(p), out);
}

static int session_setup(struct rmig_auth *a, const struct rmig_key *k, const uint8_t *session,
			 const uint8_t *ns, const uint8_t *nd)
{
	memcpy(a->session, session, RMIG_UUID_LEN);
	a->on = true;
	return session_mac(k, session, ns, nd, "chan", a->chan_key);
}

static int chan_mac(const struct rmig_auth *a, uint32_t ch, const uint8_t *nonce,
		    uint8_t out[RMIG_AUTH_MAC_LEN])
{
	uint8_t be[4];
	const void *p[] = { CHAN_LABEL, a->session, be, nonce };
	const size_t l[] = { strlen(CHAN_LABEL), RMIG_UUID_LEN, sizeof(be), RMIG_AUTH_NONCE_LEN };

	rmig_put_be32(be, ch);
	return hmac(a->chan_key, sizeof(a->chan_key), p, l, RMIG_ARRAY_SIZE(p), out);
}

int rmig_auth_chan_prove(const struct rmig_auth *a, uint32_t ch,
			 uint8_t out[sizeof(struct rmig_wire_chan_auth)])
{
	uint8_t *nonce = out + RMIG_OFF(rmig_wire_chan_auth, nonce);

	if (RAND_bytes(nonce, RMIG_AUTH_NONCE_LEN) != 1)
		return -EIO;
	return chan_mac(a, ch, nonce, out + RMIG_OFF(rmig_wire_chan_auth, mac));
}

bool rmig_auth_chan_check(const struct rmig_auth *a, uint32_t ch,
			  const uint8_t in[sizeof(struct rmig_wire_chan_auth)])
{
	uint8_t mac[RMIG_AUTH_MAC_LEN];

	if (!a->on || chan_mac(a, ch, in + RMIG_OFF(rmig_wire_chan_auth, nonce), mac))
		return false;
	return CRYPTO_memcmp(mac, in + RMIG_OFF(rmig_wire_chan_auth, mac), sizeof(mac)) == 0;
}

/* A refusal (WELCOME / ABORT with a negative status) in place of @want: its code and text. */
static int auth_refused(const struct rmig_hdr *h, const void *body, const char *want, char *why,
			size_t whylen)
{
	char msg[RMIG_ERRMSG_MAX];
	const void *info;
	size_t info_len;
	int status;

	if ((h->type == RMIG_MSG_WELCOME || h->type == RMIG_MSG_ABORT) &&
	    !rmig_status_parse(body, h->len, &status, msg, sizeof(msg), &info, &info_len) &&
	    status < 0) {
		snprintf(why, whylen, "destination refused the migration: %s", msg);
		return status;
	}
	snprintf(why, whylen, "expected %s, got %s", want, rmig_msg_name(h->type));
	return -EPROTO;
}

int rmig_auth_src(struct rmig_conn *c, const struct rmig_key *k, const uint8_t *session,
		  uint64_t *seq, int timeout_ms, struct rmig_auth *a, char *why, size_t whylen)
{
	uint8_t hello[sizeof(struct rmig_wire_auth_hello)] = { 0 };
	uint8_t mac[RMIG_AUTH_MAC_LEN], proof[sizeof(struct rmig_wire_auth_proof)];
	uint8_t *ns = hello + RMIG_OFF(rmig_wire_auth_hello, nonce);
	const uint8_t *nd, *b;
	struct rmig_hdr h;
	void *body = NULL;
	int ret;

	memcpy(hello + RMIG_OFF(rmig_wire_auth_hello, session), session, RMIG_UUID_LEN);
	rmig_put_be32(hello + RMIG_OFF(rmig_wire_auth_hello, alg), RMIG_AUTH_ALG_HMAC_SHA256);
	if (RAND_bytes(ns, RMIG_AUTH_NONCE_LEN) != 1) {
		snprintf(why, whylen, "no random bytes for the nonce");
		return -EIO;
	}
	ret = rmig_msg_send(c, RMIG_MSG_AUTH_HELLO, 0, (*seq)++, hello, sizeof(hello));
	if (ret) {
		snprintf(why, whylen, "sending AUTH_HELLO: %s", c->err.msg);
		return ret;
	}
	ret = rmig_msg_recv(c, timeout_ms, 8192, &h, &body, why, whylen);
	if (ret)
		goto out;
	if (h.type != RMIG_MSG_AUTH_CHALLENGE || h.len != sizeof(struct rmig_wire_auth_challenge)) {
		ret = auth_refused(&h, body, "AUTH_CHALLENGE", why, whylen);
		goto out;
	}
	b = body;
	nd = b + RMIG_OFF(rmig_wire_auth_challenge, nonce);
	ret = session_mac(k, session, ns, nd, "dst", mac);
	if (ret) {
		snprintf(why, whylen, "HMAC-SHA256 failed");
		goto out;
	}
	if (CRYPTO_memcmp(mac, b + RMIG_OFF(rmig_wire_auth_challenge, mac), sizeof(mac))) {
		snprintf(why, whylen,
			 "authentication failed: the destination does not prove the same pre-shared key");
		rmig_status_send(c, RMIG_MSG_ABORT, (*seq)++, -EACCES,
				 "authentication failed: the source does not accept the destination's proof (different pre-shared keys)",
				 NULL, 0);
		ret = -EACCES;
		goto out;
	}
	ret = session_mac(k, session, ns, nd, "src", proof);
	if (!ret)
		ret = session_setup(a, k, session, ns, nd);
	if (ret) {
		snprintf(why, whylen, "HMAC-SHA256 failed");
		goto out;
	}
	ret = rmig_msg_send(c, RMIG_MSG_AUTH_PROOF, 0, (*seq)++, proof, sizeof(proof));
	if (ret)
		snprintf(why, whylen, "sending AUTH_PROOF: %s", c->err.msg);
out:
	OPENSSL_cleanse(mac, sizeof(mac));
	free(body);
	return ret;
}

int rmig_auth_dst(struct rmig_conn *c, const struct rmig_key *k, const struct rmig_hdr *h,
		  const void *body, uint64_t *seq_in, uint64_t *seq_out, int timeout_ms,
		  struct rmig_auth *a, char *why, size_t whylen)
{
	uint8_t chal[sizeof(struct rmig_wire_auth_challenge)], mac[RMIG_AUTH_MAC_LEN];
	uint8_t *nd = chal + RMIG_OFF(rmig_wire_auth_challenge, nonce);
	const uint8_t *b = body, *session, *ns;
	struct rmig_hdr ph;
	void *proof = NULL;
	uint32_t alg;
	int ret;

	if (h->len != sizeof(struct rmig_wire_auth_hello)) {
		snprintf(why, whylen, "AUTH_HELLO of %u bytes", h->len);
		return -EPROTO;
	}
	session = b + RMIG_OFF(rmig_wire_auth_hello, session);
	ns = b + RMIG_OFF(rmig_wire_auth_hello, nonce);
	alg = rmig_get_be32(b + RMIG_OFF(rmig_wire_auth_hello, alg));
	if (alg != RMIG_AUTH_ALG_HMAC_SHA256) {
		snprintf(why, whylen, "the source asks for authentication method %u (this side knows %u)",
			 alg, RMIG_AUTH_ALG_HMAC_SHA256);
		rmig_status_send(c, RMIG_MSG_WELCOME, (*seq_out)++, -EPROTO, why, NULL, 0);
		return -EPROTO;
	}
	if (RAND_bytes(nd, RMIG_AUTH_NONCE_LEN) != 1 ||
	    session_mac(k, session, ns, nd, "dst", chal + RMIG_OFF(rmig_wire_auth_challenge, mac))) {
		snprintf(why, whylen, "no random bytes or HMAC-SHA256 failed");
		return -EIO;
	}
	ret = rmig_msg_send(c, RMIG_MSG_AUTH_CHALLENGE, 0, (*seq_out)++, chal, sizeof(chal));
	if (ret) {
		snprintf(why, whylen, "sending AUTH_CHALLENGE: %s", c->err.msg);
		return ret;
	}
	ret = rmig_msg_recv(c, timeout_ms, 8192, &ph, &proof, why, whylen);
	if (ret)
		goto out;
	if (ph.seq != (*seq_in)++ || ph.type != RMIG_MSG_AUTH_PROOF ||
	    ph.len != sizeof(struct rmig_wire_auth_proof)) {
		ret = auth_refused(&ph, proof, "AUTH_PROOF", why, whylen);
		if (ret == -EACCES)
			snprintf(why, whylen,
				 "authentication failed: the source does not accept this destination's proof (different pre-shared keys)");
		goto out;
	}
	ret = session_mac(k, session, ns, nd, "src", mac);
	if (ret) {
		snprintf(why, whylen, "HMAC-SHA256 failed");
		goto out;
	}
	if (CRYPTO_memcmp(mac, proof, sizeof(mac))) {
		snprintf(why, whylen,
			 "authentication failed: the source does not prove the same pre-shared key");
		rmig_status_send(c, RMIG_MSG_ABORT, (*seq_out)++, -EACCES,
				 "authentication failed: the destination does not accept the source's proof (different pre-shared keys)",
				 NULL, 0);
		ret = -EACCES;
		goto out;
	}
	ret = session_setup(a, k, session, ns, nd);
	if (ret)
		snprintf(why, whylen, "HMAC-SHA256 failed");
out:
	OPENSSL_cleanse(mac, sizeof(mac));
	free(proof);
	return ret;
}
