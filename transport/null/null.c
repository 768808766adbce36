// SPDX-License-Identifier: MIT
/*
 * null transport: channels that complete every payload at once without
 * touching page memory. It has no peer, so rmig-bench --transport null
 * measures the scheduler (queue, swap, hand back) and nothing else.
 */
#include <errno.h>
#include <stdlib.h>

#include "core/xport.h"

struct null_xport {
	struct rmig_xport base;
};

struct null_conn {
	struct rmig_conn base;
};

static int null_send(struct rmig_conn *c, const void *hdr, size_t hdr_len,
		     const struct rmig_seg *segs, unsigned int nsegs)
{
	size_t total = hdr_len;

	for (unsigned int i = 0; i < nsegs; i++)
		total += segs[i].len;
	rmig_count(&c->wire_bytes, total);
	return 0;
}

static int null_flush(struct rmig_conn *c)
{
	return 0;
}

static int null_recv(struct rmig_conn *c, void *buf, size_t len, int timeout_ms)
{
	return rmig_msg(&c->recv_err, -ENOTSUP, "the null transport has nothing to receive");
}

static int null_recv_pages(struct rmig_conn *c, const struct iovec *iov, unsigned int iovcnt)
{
	return rmig_msg(&c->recv_err, -ENOTSUP, "the null transport has nothing to receive");
}

static void null_shutdown(struct rmig_conn *c)
{
}

static void null_close(struct rmig_conn *c)
{
	free(rmig_container_of(c, struct null_conn, base));
}

static const struct rmig_conn_ops null_conn_ops = {
	.send = null_send,
	.flush = null_flush,
	.recv = null_recv,
	.recv_pages = null_recv_pages,
	.pull = rmig_conn_no_pull,
	.pull_wait = rmig_conn_no_pull_wait,
	.chan_open = rmig_conn_nop_chan_open,
	.shutdown = null_shutdown,
	.close = null_close,
};

static int null_connect(const struct rmig_xport_params *p, const char *addr,
			struct rmig_xport **xp, struct rmig_conn **ctl, struct rmig_msgbuf *mb)
{
	struct null_xport *x = calloc(1, sizeof(*x));

	if (!x)
		return rmig_msg(mb, -ENOMEM, "out of memory");
	x->base.ops = &rmig_null_ops;
	*xp = &x->base;
	*ctl = NULL;
	return 0;
}

static int null_connect_channel(struct rmig_xport *x, unsigned int ch, struct rmig_conn **cp)
{
	struct null_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return rmig_msg(&x->err, -ENOMEM, "out of memory");
	c->base.ops = &null_conn_ops;
	*cp = &c->base;
	return 0;
}

static void null_destroy(struct rmig_xport *x)
{
	free(rmig_container_of(x, struct null_xport, base));
}

const struct rmig_xport_ops rmig_null_ops = {
	.name = "null",
	.caps = RMIG_XCAP_SINK,
	.connect = null_connect,
	.set_peer_info = rmig_xport_nop_set_peer_info,
	.connect_channel = null_connect_channel,
	.listen = rmig_xport_no_listen, /* a sink only: nothing to receive from */
	.port = rmig_xport_no_port,
	.accept = rmig_xport_no_accept,
	.local_info = rmig_xport_nop_local_info,
	.pull_info = rmig_xport_no_pull_info,
	.pull_open = rmig_xport_no_pull_open,
	.shutdown = rmig_xport_nop_shutdown, /* nothing ever blocks */
	.revoke = rmig_xport_nop_revoke,
	.destroy = null_destroy,
	.reg_ns = rmig_xport_nop_reg_ns,
	.finish = rmig_xport_nop_finish,
	.load = rmig_xport_no_load,
	.load_stats = rmig_xport_nop_load_stats,
};
