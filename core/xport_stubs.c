// SPDX-License-Identifier: MIT
/*
 * Default ops for struct rmig_xport_ops and struct rmig_conn_ops slots a
 * transport has nothing for. Every slot of every ops table is filled, so the
 * core calls ops without checking for NULL (tests/unit/test_xport_ops.c
 * checks the tables).
 *
 * Two kinds, told apart by the name:
 *  - rmig_xport_nop_*: the op has nothing to do for this transport (no RAM a
 *    peer could touch, no file to complete); it succeeds and does nothing.
 *  - rmig_xport_no_* / rmig_conn_no_*: the transport cannot do this at all;
 *    it fails with -ENOSYS and says so in the msgbuf, like any failing op.
 *    The core tests the caps before calling most of them, so reaching one
 *    is a core bug, and the reason text names the op to make it plain.
 */
#include <errno.h>

#include "xport.h"

int rmig_xport_no_listen(const struct rmig_xport_params *p, const char *addr,
			 struct rmig_xport **xp, struct rmig_msgbuf *err)
{
	return rmig_msg(err, -ENOSYS, "this transport cannot receive");
}

int rmig_xport_no_port(struct rmig_xport *x)
{
	return rmig_msg(&x->err, -ENOSYS, "the %s transport has no port", x->ops->name);
}

int rmig_xport_no_accept(struct rmig_xport *x, int timeout_ms, struct rmig_conn **c)
{
	return rmig_msg(&x->err, -ENOSYS, "the %s transport accepts no connections",
			x->ops->name);
}

int rmig_xport_nop_set_peer_info(struct rmig_xport *x, const void *info, size_t len)
{
	/* Nothing to place remotely, so whatever the peer sent is not needed. */
	return 0;
}

int rmig_xport_nop_local_info(struct rmig_xport *x, void *buf, size_t *len)
{
	*len = 0;
	return 0;
}

int rmig_xport_no_pull_info(struct rmig_xport *x, void *buf, size_t *len)
{
	return rmig_msg(&x->err, -ENOSYS, "the %s transport cannot be pulled from",
			x->ops->name);
}

int rmig_xport_no_pull_open(struct rmig_xport *x, const void *info, size_t len, size_t size,
			    void **area)
{
	return rmig_msg(&x->err, -ENOSYS, "the %s transport cannot pull", x->ops->name);
}

void rmig_xport_nop_shutdown(struct rmig_xport *x)
{
	/* No blocking call of the xport's own: its conns are shut down one by one. */
}

void rmig_xport_nop_revoke(struct rmig_xport *x)
{
	/* No peer ever reads or writes local RAM by itself. */
}

uint64_t rmig_xport_nop_reg_ns(struct rmig_xport *x)
{
	return 0; /* nothing is registered */
}

int rmig_xport_nop_finish(struct rmig_xport *x)
{
	/* The last channel's FIN was the end; nothing is left to complete. */
	return 0;
}

int rmig_xport_no_load(struct rmig_xport *x, unsigned int threads, rmig_dev_state_fn fn,
		       void *arg)
{
	return rmig_msg(&x->err, -ENOSYS, "the %s transport has nothing to load from",
			x->ops->name);
}

void rmig_xport_nop_load_stats(struct rmig_xport *x, struct rmig_stats *s)
{
	/* Nothing loaded by the transport itself: the core counts what it received. */
}

int rmig_conn_no_recv_pages(struct rmig_conn *c, const struct iovec *iov, unsigned int iovcnt)
{
	return rmig_msg(&c->recv_err, -ENOSYS, "this transport places page data itself");
}

int rmig_conn_no_pull(struct rmig_conn *c, void *local, unsigned int block, uint64_t off,
		      uint64_t len, uint64_t *ticket)
{
	return rmig_msg(&c->err, -ENOSYS, "this transport cannot read the peer's RAM");
}

int rmig_conn_no_pull_wait(struct rmig_conn *c, uint64_t ticket, int timeout_ms)
{
	return rmig_msg(&c->err, -ENOSYS, "this transport cannot read the peer's RAM");
}

int rmig_conn_nop_chan_open(struct rmig_conn *c, int timeout_ms)
{
	return 0;
}
