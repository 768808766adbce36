// SPDX-License-Identifier: MIT
/*
 * WELCOME / RESULT / ABORT bodies (core/proto.c rmig_status_parse): status
 * code, text and peer info lengths that add up to the body. The info lies
 * inside the body and ends where it ends; the status is 0 or an errno; a
 * body whose text has no NUL, sent again by rmig_status_send_flags(), is
 * the same outside the padding and parses to the same fields.
 */
#include <errno.h>
#include <string.h>

#include "core/proto.h"
#include "fuzz.h"

struct cap_conn {
	struct rmig_conn base;
	uint8_t *buf;
	size_t len;
};

static int cap_send(struct rmig_conn *c, const void *hdr, size_t hdr_len,
		    const struct rmig_seg *segs, unsigned int nsegs)
{
	struct cap_conn *cc = rmig_container_of(c, struct cap_conn, base);

	FUZZ_CHECK(nsegs == 0 && !cc->buf, "status sent as %u segments", nsegs);
	cc->buf = malloc(hdr_len);
	FUZZ_CHECK(cc->buf, "out of memory");
	memcpy(cc->buf, hdr, hdr_len);
	cc->len = hdr_len;
	return 0;
}

static const struct rmig_conn_ops cap_ops = { .send = cap_send };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const size_t fixed = sizeof(struct rmig_wire_status);
	struct cap_conn cc = { .base.ops = &cap_ops };
	char msg[RMIG_ERRMSG_MAX], msg2[RMIG_ERRMSG_MAX];
	const void *info, *info2;
	size_t ilen, ilen2, body;
	int status, status2, ret;
	uint32_t mlen;

	msg[0] = '\0';
	ret = rmig_status_parse(data, size, &status, msg, sizeof(msg), &info, &ilen);
	if (ret) {
		FUZZ_CHECK(ret == -EPROTO && msg[0], "refused with %d, reason '%s'", ret, msg);
		return 0;
	}
	mlen = rmig_get_be32(data + RMIG_OFF(rmig_wire_status, msg_len));
	FUZZ_CHECK(status <= 0 && status >= -4095, "status %d", status);
	FUZZ_CHECK(ilen <= RMIG_PEER_INFO_MAX, "info of %zu bytes", ilen);
	FUZZ_CHECK((const uint8_t *)info >= data + fixed + mlen &&
			   (const uint8_t *)info + ilen == data + size,
		   "info [%td, +%zu) is not the end of a %zu-byte body",
		   (const uint8_t *)info - data, ilen, size);
	FUZZ_CHECK(strlen(msg) <= mlen, "text of %zu bytes from %u", strlen(msg), mlen);
	if (strlen(msg) != mlen)
		return 0; /* a NUL in the text, or longer than the buffer: not the same text */

	FUZZ_CHECK(!rmig_status_send_flags(&cc.base, RMIG_MSG_RESULT, 0, 0, status, msg, info,
					   ilen),
		   "send failed");
	FUZZ_CHECK(cc.len == sizeof(struct rmig_wire_hdr) + size, "sent %zu for %zu", cc.len,
		   size);
	body = sizeof(struct rmig_wire_hdr);
	/* all but the pad field and the text's padding */
	FUZZ_CHECK(!memcmp(cc.buf + body, data, RMIG_OFF(rmig_wire_status, pad)),
		   "fixed part differs");
	FUZZ_CHECK(!memcmp(cc.buf + body + fixed, data + fixed, mlen), "text differs");
	FUZZ_CHECK(!memcmp(cc.buf + body + fixed + rmig_pad8(mlen), info, ilen), "info differs");
	ret = rmig_status_parse(cc.buf + body, size, &status2, msg2, sizeof(msg2), &info2, &ilen2);
	FUZZ_CHECK(!ret && status2 == status && ilen2 == ilen && !strcmp(msg, msg2),
		   "sent again, it parses differently (%d)", ret);
	free(cc.buf);
	return 0;
}
