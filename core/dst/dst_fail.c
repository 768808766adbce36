// SPDX-License-Identifier: MIT
/*
 * A destination that fails: record the first failure, stop every channel,
 * wake the main thread, and tell the source why (reading its own reason
 * first when it went away).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/dst/dst_engine.h"
#include "core/dst/dst_fail.h"

static void dst_shutdown_chans(struct rmig_dst *d)
{
	for (unsigned int i = 0; i < d->nchan; i++)
		if (d->chans[i].conn)
			d->chans[i].conn->ops->shutdown(d->chans[i].conn);
}

/*
 * Record the first failure, stop every channel, and wake the main thread,
 * which tells the source why (the control connection is the main thread's).
 */
int dst_fail(struct rmig_dst *d, int code, const char *fmt, ...)
{
	va_list ap;
	int ret;

	va_start(ap, fmt);
	ret = rmig_err_vset(&d->err, code, fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&d->lock);
	d->failed = true;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
	/* A failed migration's peer must not write into our RAM any more. */
	if (d->xp)
		d->xops->revoke(d->xp);
	if (d->chans)
		dst_shutdown_chans(d);
	return ret;
}

/*
 * Main thread, on a failure that says the source went away (a channel or
 * the control connection closed or reset): a source that failed on its own
 * sends ABORT with its reason first (core/src/src_fail.c, src_tell_peer). Read it,
 * if it comes within half a second, so the error names the real cause.
 * Not while the postcopy control thread owns the control connection: it
 * handles ABORT itself.
 */
static void dst_source_reason(struct rmig_dst *d)
{
	char why[RMIG_ERRMSG_MAX], msg[RMIG_ERRMSG_MAX];
	int code = rmig_err_code(&d->err), status;
	const void *info;
	size_t info_len;
	struct rmig_hdr h;
	void *body = NULL;

	if (!d->ctl || d->pc_ctl_started || d->stash_set || !rmig_err_peer_gone(code))
		return;
	if (rmig_msg_recv(d->ctl, 500, 8192, &h, &body, why, sizeof(why)) == 0 &&
	    h.type == RMIG_MSG_ABORT &&
	    rmig_status_parse(body, h.len, &status, msg, sizeof(msg), &info, &info_len) == 0 &&
	    status < 0) {
		/* the code stays what the caller was told; the text names the cause */
		rmig_err_reword(&d->err, "source aborted: %.400s", msg);
		d->abort_sent = true; /* the source is gone: nothing to tell it */
	}
	free(body);
}

/* Main thread: tell the source why we stopped (best effort, once). */
void dst_send_abort(struct rmig_dst *d)
{
	char msg[RMIG_ERRMSG_MAX];

	dst_source_reason(d);
	if (!d->ctl || d->abort_sent)
		return;
	d->abort_sent = true;
	rmig_err_msg(&d->err, msg, sizeof(msg));
	pthread_mutex_lock(&d->ctl_send_lock);
	rmig_status_send(d->ctl, RMIG_MSG_ABORT, d->ctl_seq_out++, rmig_err_code(&d->err), msg,
			 NULL, 0);
	pthread_mutex_unlock(&d->ctl_send_lock);
}
