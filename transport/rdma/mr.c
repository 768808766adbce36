// SPDX-License-Identifier: MIT
/*
 * Memory registration: RAM blocks as MRs (sliced, registered in parallel),
 * the RLIMIT_MEMLOCK check, and the MR table the destination hands the
 * source (encode on one side, strict decode on the other).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "core/xport_util.h"
#include "transport/rdma/mr.h"

/* Below this much memory, threads cost more than they save. */
#define RD_REG_PARALLEL_MIN (256ull << 20)
#define RD_REG_THREADS_MAX  8

/* ------------------------------------------------------ RLIMIT_MEMLOCK */

int rmig_rd_memlock_verdict(uint64_t need, uint64_t limit, bool cap_ipc_lock,
			    struct rmig_msgbuf *err)
{
	if (cap_ipc_lock || limit == (uint64_t)RLIM_INFINITY || need <= limit)
		return 0;
	return rmig_msg(err, -ENOMEM,
			"RLIMIT_MEMLOCK is %" PRIu64
			" bytes but registering memory for rdma needs %" PRIu64
			" bytes; raise it (ulimit -l, LimitMEMLOCK=) or grant CAP_IPC_LOCK",
			limit, need);
}

/* CAP_IPC_LOCK (bit 14) in the effective set, read without libcap. */
static bool have_cap_ipc_lock(void)
{
	char line[256];
	bool cap = false;
	FILE *f;

	f = fopen("/proc/self/status", "re");
	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long eff;

		if (sscanf(line, "CapEff: %llx", &eff) == 1) {
			cap = eff & (1ull << 14);
			break;
		}
	}
	fclose(f);
	return cap;
}

int rmig_rd_memlock_check(uint64_t need, struct rmig_msgbuf *err)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_MEMLOCK, &rl))
		return 0; /* cannot tell: let ibv_reg_mr decide */
	return rmig_rd_memlock_verdict(need, (uint64_t)rl.rlim_cur, have_cap_ipc_lock(), err);
}

/* ------------------------------------------------------- registration */

/*
 * A failed ibv_reg_mr. ENOMEM, EPERM and EAGAIN are what the kernel says
 * when pinning would pass RLIMIT_MEMLOCK, so those name the limit.
 */
int rmig_rd_reg_error(int ret, const char *what, const void *addr, uint64_t len, uint64_t total,
		      struct rmig_msgbuf *err)
{
	struct rlimit rl = {0};
	char lim[32];

	if (ret != -ENOMEM && ret != -EPERM && ret != -EAGAIN)
		return rmig_msg(err, ret, "ibv_reg_mr(%s) of %" PRIu64 " bytes at %p failed: %s",
				what, len, addr, strerror(-ret));
	getrlimit(RLIMIT_MEMLOCK, &rl);
	if (rl.rlim_cur == RLIM_INFINITY)
		snprintf(lim, sizeof(lim), "unlimited");
	else
		snprintf(lim, sizeof(lim), "%" PRIu64 " bytes", (uint64_t)rl.rlim_cur);
	return rmig_msg(err, -ENOMEM,
			"ibv_reg_mr(%s) of %" PRIu64
			" bytes at %p failed: %s; RLIMIT_MEMLOCK is %s and %" PRIu64
			" bytes must be registered in all (raise ulimit -l or grant CAP_IPC_LOCK)",
			what, len, addr, strerror(-ret), lim, total);
}

struct reg_job {
	const struct rmig_verbs_ops *v;
	struct ibv_pd *pd;
	struct rd_lslice *slices;
	unsigned int n;
	int access;
	atomic_uint next; /* next slice to claim */
	atomic_int ret;	  /* first failure */
	atomic_uint bad;  /* its slice */
};

static void reg_run(struct reg_job *j)
{
	for (;;) {
		/* relaxed: the index only divides the work; pthread_join publishes the MRs */
		unsigned int i = rmig_add_relaxed(&j->next, 1u);
		int expected = 0;
		int ret;

		if (i >= j->n || rmig_load_relaxed(&j->ret))
			return;
		ret = j->v->reg_mr(j->pd, j->slices[i].addr, j->slices[i].len, j->access,
				   &j->slices[i].mr);
		if (ret) {
			/* relaxed: read after pthread_join, which orders it */
			if (atomic_compare_exchange_strong_explicit(&j->ret, &expected, ret,
								    memory_order_relaxed,
								    memory_order_relaxed))
				rmig_store_relaxed(&j->bad, i);
			return;
		}
	}
}

static void *reg_thread(void *arg)
{
	reg_run(arg);
	return NULL;
}

static unsigned int reg_threads(unsigned int nslices, uint64_t total)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned int n;

	if (nslices < 2 || total < RD_REG_PARALLEL_MIN || cpus < 2)
		return 1;
	n = cpus > RD_REG_THREADS_MAX ? RD_REG_THREADS_MAX : (unsigned int)cpus;
	return n < nslices ? n : nslices;
}

/* Register every slice; the calling thread is one of the workers. */
static int reg_parallel(struct reg_job *j, uint64_t total)
{
	pthread_t tids[RD_REG_THREADS_MAX];
	unsigned int want = reg_threads(j->n, total);
	unsigned int started = 0;

	while (started + 1 < want) {
		/* fewer threads is slower, not wrong */
		if (pthread_create(&tids[started], NULL, reg_thread, j))
			break;
		started++;
	}
	reg_run(j);
	while (started)
		pthread_join(tids[--started], NULL);
	return rmig_load_relaxed(&j->ret);
}

static int cmp_slice_addr(const void *a, const void *b, void *arg)
{
	const struct rd_lslice *s = arg;
	const uint8_t *pa = s[*(const unsigned int *)a].addr;
	const uint8_t *pb = s[*(const unsigned int *)b].addr;

	return pa < pb ? -1 : pa > pb;
}

const char *rmig_rd_access_name(int access)
{
	switch (access & (IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ)) {
	case IBV_ACCESS_REMOTE_WRITE:
		return "LOCAL_WRITE|REMOTE_WRITE";
	case IBV_ACCESS_REMOTE_READ:
		return "LOCAL_WRITE|REMOTE_READ";
	case IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ:
		return "LOCAL_WRITE|REMOTE_WRITE|REMOTE_READ";
	}
	return "LOCAL_WRITE";
}

/* Slice @k of a block: fixed @slice, or growing from @first (see mr.h). */
static uint64_t slice_len(uint64_t slice, uint64_t first, unsigned int k)
{
	if (!first || first >= slice)
		return slice;
	return k < 63 && first << k < slice ? first << k : slice;
}

int rmig_rd_mrs_plan(struct rd_mrs *t, const struct rmig_block *blocks, unsigned int nblocks,
		     uint64_t slice, uint64_t first, uint64_t *total, struct rmig_msgbuf *err)
{
	unsigned int i, k, n = 0;
	int ret;

	memset(t, 0, sizeof(*t));
	*total = 0;
	if (!slice)
		slice = 2ull << 30;
	for (i = 0; i < nblocks; i++) {
		uint64_t off = 0;
		unsigned int cnt = 0;

		if (!blocks[i].length)
			return rmig_msg(err, -EINVAL, "block %s: bad length 0", blocks[i].name);
		while (off < blocks[i].length) {
			if (cnt == UINT32_MAX - n)
				return rmig_msg(err, -EINVAL, "block %s: bad length %" PRIu64,
						blocks[i].name, blocks[i].length);
			off += slice_len(slice, first, cnt++);
		}
		n += cnt;
		*total += blocks[i].length;
	}

	t->blocks = calloc(nblocks ? nblocks : 1, sizeof(*t->blocks));
	t->slices = calloc(n ? n : 1, sizeof(*t->slices));
	t->by_addr = calloc(n ? n : 1, sizeof(*t->by_addr));
	if (!t->blocks || !t->slices || !t->by_addr) {
		ret = rmig_msg(err, -ENOMEM, "out of memory for the MR table");
		goto err_free;
	}
	t->nblocks = nblocks;
	t->nslices = n;
	for (i = 0, k = 0; i < nblocks; i++) {
		uint64_t off, len;
		unsigned int j = 0;

		t->blocks[i].host = blocks[i].host;
		t->blocks[i].length = blocks[i].length;
		t->blocks[i].name = blocks[i].name;
		t->blocks[i].first = k;
		for (off = 0; off < blocks[i].length; off += len, k++) {
			uint64_t left = blocks[i].length - off;

			len = slice_len(slice, first, j++);
			if (len > left)
				len = left;
			t->slices[k].addr = blocks[i].host + off;
			t->slices[k].len = len;
			atomic_init(&t->slices[k].ready, false);
			t->by_addr[k] = k;
		}
		t->blocks[i].n = k - t->blocks[i].first;
	}
	qsort_r(t->by_addr, n, sizeof(*t->by_addr), cmp_slice_addr, t->slices);
	atomic_init(&t->all_ready, false);
	return 0;

err_free:
	free(t->blocks);
	free(t->slices);
	free(t->by_addr);
	memset(t, 0, sizeof(*t));
	return ret;
}

int rmig_rd_mrs_register(struct rd_mrs *t, const struct rmig_verbs_ops *v, struct ibv_pd *pd,
			 const struct rmig_block *blocks, unsigned int nblocks, uint64_t slice,
			 int access, uint64_t *ns, struct rmig_msgbuf *err)
{
	struct reg_job j = {.v = v, .pd = pd, .access = access};
	uint64_t total, t0;
	unsigned int i;
	int ret;

	ret = rmig_rd_mrs_plan(t, blocks, nblocks, slice, 0, &total, err);
	if (ret)
		return ret;
	j.slices = t->slices;
	j.n = t->nslices;
	t0 = rmig_now_ns();
	ret = reg_parallel(&j, total);
	*ns += rmig_now_ns() - t0;
	if (ret) {
		const struct rd_lslice *s = &t->slices[rmig_load_relaxed(&j.bad)];

		ret = rmig_rd_reg_error(ret, rmig_rd_access_name(access), s->addr, s->len, total,
					err);
		rmig_rd_mrs_release(t, v);
		return ret;
	}
	/* the joins published the MRs: nothing will wait on these flags */
	for (i = 0; i < t->nslices; i++)
		atomic_store_explicit(&t->slices[i].ready, true, memory_order_relaxed);
	atomic_store_explicit(&t->all_ready, true, memory_order_relaxed);
	return 0;
}

void rmig_rd_mrs_release(struct rd_mrs *t, const struct rmig_verbs_ops *v)
{
	unsigned int i;

	for (i = 0; i < t->nslices; i++)
		if (t->slices[i].mr)
			v->dereg_mr(t->slices[i].mr);
	free(t->blocks);
	free(t->slices);
	free(t->by_addr);
	memset(t, 0, sizeof(*t));
}

const struct rd_lslice *rmig_rd_mrs_find(const struct rd_mrs *t, const void *p)
{
	const uint8_t *a = p;
	unsigned int lo = 0, hi = t->nslices;

	/* last slice starting at or below a */
	while (lo < hi) {
		unsigned int mid = lo + (hi - lo) / 2;

		if (t->slices[t->by_addr[mid]].addr <= a)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (!lo)
		return NULL;
	{
		const struct rd_lslice *s = &t->slices[t->by_addr[lo - 1]];

		return (uint64_t)(a - s->addr) < s->len ? s : NULL;
	}
}

/* ---------------------------------------------------------- MR table */

/* Version 2 only while a slice is pending: a finished table stays readable by version 1. */
static bool mrt_v2(const struct rd_mrs *t)
{
	return t->published && !atomic_load_explicit(&t->all_ready, memory_order_acquire);
}

size_t rmig_rd_mrt_size_v(const struct rd_mrs *t, bool v2)
{
	return RD_MRT_HDR + (v2 ? RD_MRT_HDR2_EXT : 0) + (size_t)t->nblocks * RD_MRT_BLOCK +
	       (size_t)t->nslices * RD_MRT_SLICE;
}

size_t rmig_rd_mrt_size(const struct rd_mrs *t)
{
	return rmig_rd_mrt_size_v(t, mrt_v2(t));
}

/*
 * What one encoding says: the version, the status table (version 2), and
 * per slice its rkey or that it is pending. pending NULL: a slice is
 * pending when it is not registered yet (version 2 only).
 */
struct mrt_view {
	bool v2;
	uint64_t st_addr;
	uint32_t st_rkey;
	const uint32_t *rkeys; /* NULL: the MRs' own */
	const uint8_t *pending;
};

static bool view_pending(const struct rd_mrs *t, const struct mrt_view *w, unsigned int k)
{
	if (!w->v2)
		return false;
	if (w->pending)
		return w->pending[k];
	return !atomic_load_explicit(&t->slices[k].ready, memory_order_acquire);
}

static int encode(const struct rd_mrs *t, const struct mrt_view *w, void *buf, size_t *len,
		  struct rmig_msgbuf *err)
{
	size_t need = rmig_rd_mrt_size_v(t, w->v2);
	uint8_t *p = buf;
	unsigned int i, k;

	if (need > *len)
		return rmig_msg(err, -ENOSPC, "MR table needs %zu bytes, %zu available", need,
				*len);
	rmig_put_be32(p, RD_MRT_MAGIC);
	rmig_put_be16(p + 4, w->v2 ? RD_MRT_VERSION2 : RD_MRT_VERSION);
	rmig_put_be16(p + 6, 0);
	rmig_put_be32(p + 8, t->nblocks);
	rmig_put_be32(p + 12, t->nslices);
	p += RD_MRT_HDR;
	if (w->v2) {
		rmig_put_be64(p, w->st_addr);
		rmig_put_be32(p + 8, w->st_rkey);
		rmig_put_be32(p + 12, 0);
		p += RD_MRT_HDR2_EXT;
	}
	for (i = 0; i < t->nblocks; i++) {
		const struct rd_lblock *b = &t->blocks[i];

		rmig_put_be64(p, b->length);
		rmig_put_be32(p + 8, b->n);
		rmig_put_be32(p + 12, 0);
		p += RD_MRT_BLOCK;
		for (k = b->first; k < b->first + b->n; k++) {
			const struct rd_lslice *s = &t->slices[k];
			/* not registered (or bound) yet: the status table will say */
			bool pending = view_pending(t, w, k);

			rmig_put_be64(p, (uint64_t)(uintptr_t)s->addr);
			rmig_put_be64(p + 8, s->len);
			rmig_put_be32(p + 16, pending ? 0 : w->rkeys ? w->rkeys[k] : s->mr->rkey);
			rmig_put_be32(p + 20, pending ? RD_MRT_PENDING : 0);
			p += RD_MRT_SLICE;
		}
	}
	*len = need;
	return 0;
}

int rmig_rd_mrt_encode(const struct rd_mrs *t, const uint32_t *rkeys, void *buf, size_t *len,
		       struct rmig_msgbuf *err)
{
	/* read once: the table may finish meanwhile */
	struct mrt_view w = {.v2 = mrt_v2(t), .rkeys = rkeys};

	if (w.v2) {
		w.st_addr = t->status_addr;
		w.st_rkey = t->status_rkey;
	}
	return encode(t, &w, buf, len, err);
}

int rmig_rd_mrt_encode_chan(const struct rd_mrs *t, const uint32_t *rkeys,
			    const uint8_t *pending, uint64_t st_addr, uint32_t st_rkey, void *buf,
			    size_t *len, struct rmig_msgbuf *err)
{
	struct mrt_view w = {.rkeys = rkeys, .pending = pending};

	for (unsigned int k = 0; k < t->nslices && !w.v2; k++)
		w.v2 = pending[k];
	if (w.v2) {
		w.st_addr = st_addr;
		w.st_rkey = st_rkey;
	}
	return encode(t, &w, buf, len, err);
}

/*
 * Everything in the table comes from the network: check each count against
 * the bytes present before reading, and each length against the local block
 * table, so that later address arithmetic cannot leave a block.
 */
int rmig_rd_mrt_decode(const void *buf, size_t len, const struct rmig_block *blocks,
		       unsigned int nblocks, struct rd_remote *r, struct rmig_msgbuf *err)
{
	const uint8_t *p = buf;
	uint32_t nb, ns, magic, seen = 0, pending = 0;
	uint16_t version, flags;
	size_t need, hdr = RD_MRT_HDR;
	unsigned int i;
	int ret;

	memset(r, 0, sizeof(*r));
	if (!buf || len < RD_MRT_HDR)
		return rmig_msg(err, -EPROTO,
				"rdma MR table from the destination is truncated (%zu bytes)", len);
	magic = rmig_get_be32(p);
	version = rmig_get_be16(p + 4);
	flags = rmig_get_be16(p + 6);
	nb = rmig_get_be32(p + 8);
	ns = rmig_get_be32(p + 12);
	if (magic != RD_MRT_MAGIC)
		return rmig_msg(err, -EPROTO, "rdma MR table: bad magic 0x%08x", magic);
	if (version != RD_MRT_VERSION && version != RD_MRT_VERSION2)
		return rmig_msg(err, -EPROTO, "rdma MR table: version %u, this side speaks %u and %u",
				version, RD_MRT_VERSION, RD_MRT_VERSION2);
	if (version == RD_MRT_VERSION2) {
		hdr += RD_MRT_HDR2_EXT;
		if (len < hdr)
			return rmig_msg(err, -EPROTO,
					"rdma MR table (version 2) is truncated (%zu bytes)", len);
		if (rmig_get_be32(p + RD_MRT_HDR + 12))
			return rmig_msg(err, -EPROTO, "rdma MR table: non-zero header padding");
	}
	if (flags)
		return rmig_msg(err, -EPROTO, "rdma MR table: unknown flags 0x%04x", flags);
	if (nb != nblocks)
		return rmig_msg(err, -EPROTO,
				"rdma MR table describes %u blocks, the source has %u", nb,
				nblocks);
	if (ns < nb || ns > (len - hdr) / RD_MRT_SLICE)
		return rmig_msg(err, -EPROTO,
				"rdma MR table: %u slices cannot fit in %zu bytes for %u blocks",
				ns, len, nb);
	need = hdr + (size_t)nb * RD_MRT_BLOCK + (size_t)ns * RD_MRT_SLICE;
	if (len != need)
		return rmig_msg(err, -EPROTO, "rdma MR table is %zu bytes, its counts say %zu", len,
				need);

	r->blocks = calloc(nb ? nb : 1, sizeof(*r->blocks));
	r->slices = calloc(ns ? ns : 1, sizeof(*r->slices));
	if (!r->blocks || !r->slices) {
		ret = rmig_msg(err, -ENOMEM, "out of memory for the remote MR table");
		goto err_free;
	}
	r->nblocks = nb;
	r->nslices = ns;
	if (version == RD_MRT_VERSION2) {
		r->streamed = true;
		r->status_addr = rmig_get_be64(p + RD_MRT_HDR);
		r->status_rkey = rmig_get_be32(p + RD_MRT_HDR + 8);
	}
	p += hdr;
	for (i = 0; i < nb; i++) {
		uint64_t blen = rmig_get_be64(p);
		uint32_t n = rmig_get_be32(p + 8);
		uint64_t off = 0;
		uint32_t k;

		if (blen != blocks[i].length) {
			ret = rmig_msg(err, -EPROTO,
				       "rdma MR table: block %u (%s) is %" PRIu64
				       " bytes there, %" PRIu64 " here",
				       i, blocks[i].name, blen, blocks[i].length);
			goto err_free;
		}
		if (!n || n > ns - seen) {
			ret = rmig_msg(err, -EPROTO,
				       "rdma MR table: block %u (%s) has a bad slice count %u", i,
				       blocks[i].name, n);
			goto err_free;
		}
		if (rmig_get_be32(p + 12)) {
			ret =
			    rmig_msg(err, -EPROTO, "rdma MR table: block %u: non-zero padding", i);
			goto err_free;
		}
		p += RD_MRT_BLOCK;
		r->blocks[i].length = blen;
		r->blocks[i].first = seen;
		r->blocks[i].n = n;
		for (k = 0; k < n; k++, seen++) {
			struct rd_rslice *s = &r->slices[seen];
			uint32_t state;

			s->addr = rmig_get_be64(p);
			s->len = rmig_get_be64(p + 8);
			s->rkey = rmig_get_be32(p + 16);
			s->off = off;
			if (!s->len || s->len > blen - off) {
				ret = rmig_msg(err, -EPROTO,
					       "rdma MR table: block %u (%s) slice %u of %" PRIu64
					       " bytes at offset %" PRIu64
					       " overruns the block (%" PRIu64 " bytes)",
					       i, blocks[i].name, k, s->len, off, blen);
				goto err_free;
			}
			if (s->addr + s->len < s->addr) {
				ret = rmig_msg(
				    err, -EPROTO,
				    "rdma MR table: block %u slice %u wraps the address space", i,
				    k);
				goto err_free;
			}
			state = rmig_get_be32(p + 20);
			if (state && (!r->streamed || state != RD_MRT_PENDING || s->rkey)) {
				ret = rmig_msg(err, -EPROTO,
					       "rdma MR table: block %u slice %u: bad state 0x%x "
					       "(rkey 0x%x, version %u)",
					       i, k, state, s->rkey, version);
				goto err_free;
			}
			atomic_init(&s->ready, !state);
			pending += !!state;
			off += s->len;
			p += RD_MRT_SLICE;
		}
		if (off != blen) {
			ret = rmig_msg(err, -EPROTO,
				       "rdma MR table: block %u (%s) slices cover %" PRIu64
				       " of %" PRIu64 " bytes",
				       i, blocks[i].name, off, blen);
			goto err_free;
		}
	}
	if (seen != ns) {
		ret =
		    rmig_msg(err, -EPROTO, "rdma MR table: %u slices announced, %u used", ns, seen);
		goto err_free;
	}
	atomic_init(&r->all_ready, !pending);
	return 0;

err_free:
	rmig_rd_remote_release(r);
	return ret;
}

void rmig_rd_remote_release(struct rd_remote *r)
{
	free(r->blocks);
	free(r->slices);
	memset(r, 0, sizeof(*r));
}

const struct rd_rslice *rmig_rd_remote_find(const struct rd_remote *r, unsigned int block,
					    uint64_t off)
{
	const struct rd_rblock *b;
	unsigned int lo, hi;

	if (block >= r->nblocks || off >= r->blocks[block].length)
		return NULL;
	b = &r->blocks[block];
	lo = b->first;
	hi = b->first + b->n;
	/* slices are in offset order and cover the block: find the last with s->off <= off */
	while (hi - lo > 1) {
		unsigned int mid = lo + (hi - lo) / 2;

		if (r->slices[mid].off <= off)
			lo = mid;
		else
			hi = mid;
	}
	return &r->slices[lo];
}
