// SPDX-License-Identifier: MIT
/*
 * file transport: a migration saved to, or loaded from, one file with a
 * fixed place for every page (QEMU's mapped-ram idea). There is no peer:
 * the source side has RMIG_XCAP_SINK (no handshake) and completes the file
 * in finish(); the destination side has RMIG_XCAP_LOAD and reads the file
 * back in load(). The layout is in format.h and docs/file-format.md.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <stdlib.h>
#include <unistd.h>

#include "file.h"

int file_pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

int file_pread_all(int fd, void *buf, size_t len, uint64_t off)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = pread(fd, p, len, (off_t)off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -ENODATA;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

int file_xport_new(const struct rmig_xport_params *p, const char *path, bool source,
		   struct file_xport **xp, struct rmig_msgbuf *mb)
{
	struct file_xport *x;

	if (!path || !*path)
		return rmig_msg(mb, -EINVAL, "no path after 'file:'");
	x = calloc(1, sizeof(*x));
	if (!x)
		return rmig_msg(mb, -ENOMEM, "out of memory");
	x->base.ops = &rmig_file_ops;
	x->opts = p->opts;
	x->source = source;
	x->fd = x->dfd = -1;
	x->direct = p->opts->flags & RMIG_F_DIRECT_IO;
	x->nblocks = p->nblocks;
	x->rblocks = p->blocks;
	x->nchan = source ? p->channels : 0;
	atomic_init(&x->cancelled, false);
	pthread_mutex_init(&x->lock, NULL);
	x->path = strdup(path);
	x->blocks = calloc(p->nblocks, sizeof(*x->blocks));
	if (source)
		x->conns = calloc(p->channels, sizeof(*x->conns));
	if (!x->path || !x->blocks || (source && !x->conns)) {
		file_xport_free(x);
		return rmig_msg(mb, -ENOMEM, "out of memory");
	}
	*xp = x;
	return 0;
}

void file_xport_free(struct file_xport *x)
{
	if (!x)
		return;
	if (x->dfd >= 0 && x->dfd != x->fd)
		close(x->dfd);
	if (x->fd >= 0)
		close(x->fd);
	for (unsigned int i = 0; x->blocks && i < x->nblocks; i++) {
		free(x->blocks[i].bits);
		free(x->blocks[i].present);
	}
	free(x->blocks);
	free(x->wb_fill);
	free(x->conns);
	free(x->index);
	free(x->path);
	pthread_mutex_destroy(&x->lock);
	free(x);
}

static int file_set_peer_info(struct rmig_xport *x, const void *info, size_t len)
{
	return rmig_msg(&x->err, -ENOSYS, "a file has no peer");
}

static int file_port(struct rmig_xport *x)
{
	return -ENOSYS;
}

static int file_accept(struct rmig_xport *x, int timeout_ms, struct rmig_conn **c)
{
	return rmig_msg(&x->err, -ENOSYS, "a file has no peer to accept");
}

static int file_local_info(struct rmig_xport *x, void *buf, size_t *len)
{
	return rmig_msg(&x->err, -ENOSYS, "a file has no peer");
}

static void file_shutdown(struct rmig_xport *xb)
{
	struct file_xport *x = to_fx(xb);

	rmig_store_relaxed(&x->cancelled, true);
	if (x->source)
		file_save_shutdown(x);
}

static void file_destroy(struct rmig_xport *x)
{
	file_xport_free(to_fx(x));
}

static uint64_t file_reg_ns(struct rmig_xport *x)
{
	return 0;
}

const struct rmig_xport_ops rmig_file_ops = {
    .name = "file",
    .caps = RMIG_XCAP_SINK | RMIG_XCAP_LOAD,
    .connect = file_save_open,
    .set_peer_info = file_set_peer_info,
    .connect_channel = file_save_channel,
    .listen = file_load_open,
    .port = file_port,
    .accept = file_accept,
    .local_info = file_local_info,
    .pull_info = rmig_xport_no_pull_info,
    .pull_open = rmig_xport_no_pull_open,
    .shutdown = file_shutdown,
    .revoke = rmig_xport_nop_revoke, /* no peer: nobody touches RAM but us */
    .destroy = file_destroy,
    .reg_ns = file_reg_ns,
    .finish = file_save_finish,
    .load = file_load,
    .load_stats = file_load_stats,
};

int file_open_direct(const char *path, int flags, struct rmig_msgbuf *mb)
{
	int fd = open(path, flags | O_DIRECT | O_CLOEXEC), ret;

	if (fd >= 0)
		return fd;
	ret = -errno;
	return rmig_msg(mb, ret, "%s",
			ret == -EINVAL ? "the filesystem does not support O_DIRECT (RMIG_F_DIRECT_IO)"
				       : strerror(-ret));
}
