// SPDX-License-Identifier: MIT
/*
 * A source that fails: record the first failure, stop the channels, and
 * make sure the destination hears why (and we hear its reason, when its
 * failure caused ours).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/barrier.h"
#include "core/src/src_engine.h"
#include "core/src/src_fail.h"

int src_fail(struct rmig_src *src, int code, const char *fmt, ...)
{
	va_list ap;
	int ret;

	va_start(ap, fmt);
	ret = rmig_err_vset(&src->err, code, fmt, ap);
	va_end(ap);
	if (src->sched)
		rmig_sched_abort(src->sched, ret);
	return ret;
}

/* Main thread, or under conn_lock. */
void src_shutdown_conns(struct rmig_src *src)
{
	for (unsigned int i = 0; i < src->nchan; i++)
		if (src->chans[i].conn)
			src->chans[i].conn->ops->shutdown(src->chans[i].conn);
	if (src->xp)
		src->xops->shutdown(src->xp);
}

/*
 * Main thread: tell the destination why this source stopped, once, so it
 * reports the real cause instead of "connection closed by the peer". Not
 * when the destination stopped first (it knows), nor after a cancel (the
 * control connection is shut down; cancel may come from any thread). @msg
 * NULL: the recorded failure's text. Best effort: a dead peer fails the send.
 */
void src_tell_peer(struct rmig_src *src, int code, const char *msg)
{
	char buf[RMIG_ERRMSG_MAX];

	if (!src->ctl || !src->greeted || src->abort_sent || src->peer_aborted ||
	    src->state == SRC_FINISHED || rmig_load_relaxed(&src->cancelled))
		return;
	src->abort_sent = true;
	if (!msg) {
		rmig_err_msg(&src->err, buf, sizeof(buf));
		msg = buf;
	}
	rmig_status_send(src->ctl, RMIG_MSG_ABORT, src->ctl_seq++, code < 0 ? code : -ECANCELED,
			 msg, NULL, 0);
}

/*
 * A channel failed, most likely because the destination gave up and closed
 * it. Its reason, if it sent one, is waiting on the control connection:
 * read it once (main thread only) so the error names the real problem.
 */
int src_error(struct rmig_src *src)
{
	int code = rmig_err_code(&src->err);
	char why[RMIG_ERRMSG_MAX], msg[RMIG_ERRMSG_MAX];
	const void *info;
	size_t info_len;
	struct rmig_hdr h;
	void *body = NULL;
	int status, skipped = 0;
	bool got;

	if (!code && src->sched)
		code = rmig_sched_error(src->sched);
	if (!code || src->peer_checked || !src->ctl)
		return code;
	src->peer_checked = true;
	if (rmig_load_relaxed(&src->cancelled))
		return code;
	/* Switchover acks may be queued ahead of the reason. */
	do {
		free(body);
		body = NULL;
		got = rmig_msg_recv(src->ctl, 500, 8192, &h, &body, why, sizeof(why)) == 0;
	} while (got && h.type == RMIG_MSG_SWITCHOVER_ACK && ++skipped < 1024);
	if (got && (h.type == RMIG_MSG_ABORT || h.type == RMIG_MSG_RESULT) &&
	    rmig_status_parse(body, h.len, &status, msg, sizeof(msg), &info, &info_len) == 0 &&
	    status < 0) {
		/*
		 * The destination's reason comes first; ours was a consequence.
		 * Unless all it saw was us going away while we have a cause of
		 * our own (e.g. a WRITE refused with IBV_WC_REM_ACCESS_ERR, which
		 * also breaks the destination's QP): then ours names the problem
		 * and theirs follows it.
		 */
		pthread_mutex_lock(&src->err.lock);
		if (rmig_err_peer_gone(status) && !rmig_err_peer_gone(src->err.code)) {
			char mine[RMIG_ERRMSG_MAX];

			snprintf(mine, sizeof(mine), "%s", src->err.msg);
			/* both halves bounded so the sentence fits: 300 + 15 + 150 + 1 < 512 */
			snprintf(src->err.msg, sizeof(src->err.msg), "%.300s (destination: %.150s)",
				 mine, msg);
		} else {
			snprintf(src->err.msg, sizeof(src->err.msg), "destination aborted: %.400s",
				 msg);
		}
		pthread_mutex_unlock(&src->err.lock);
		src->peer_aborted = true;
	}
	free(body);
	/* The failure is ours: the destination must hear why, not just see us go. */
	src_tell_peer(src, code, NULL);
	return code;
}
