// SPDX-License-Identifier: MIT
/*
 * Which fabric each end of a rail is on, so a rail list that pairs ends of
 * different fabrics fails in the rail hello, naming the rail and both
 * ends, before any RAM is registered or moved.
 *
 * What identifies a fabric, per link layer:
 *  - InfiniBand: the subnet prefix of the port's GIDs (index 0's upper 64
 *    bits). Two ports with different prefixes are on different subnets;
 *    they talk only through an IB router, which a rail should not need.
 *  - RoCE: the GID type rdma_cm uses (v1 is raw Ethernet, v2 UDP/IP: the
 *    two never interoperate), and the IP subnet of the rail's address on
 *    its netdev. RoCE v2 routes, so two ends in different subnets do
 *    connect, through a router: on a host with one NIC per rail network
 *    that means the source's traffic for rail i left by another rail's NIC
 *    (its default route), which is exactly the mistake to catch. Routed
 *    rails are legitimate on L3 fabrics (a /31 per host link), so
 *    RMIG_RDMA_RAILS_ALLOW=routed on either side waives this one check.
 *  - Both: the link layer itself.
 * A link-layer or RoCE-version mismatch cannot even connect; the hello
 * never comes then, and the connect's own error names the rail (rails.c).
 * The checks here catch what does connect.
 *
 * Hello (big-endian, RL_HELLO_LEN bytes):
 *   0 u32 "RMRH" | 4 u16 version 2 | 6 u16 rail | 8 u16 nrails | 10 u16 allow
 *  12 u64 attempt | 20 u8 port | 21 u8 link | 22 u8 gid type | 23 u8 family
 *  24 u8 prefix | 25 u8 pad[3] (0) | 28 u8 ip[16] | 44 u8 subnet[8]
 *  52 char dev[32] | 84 char netdev[16]   (NUL-padded, printable)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/byteorder.h"
#include "core/xport_util.h"
#include "transport/rdma/rails_fabric.h"

/* GID entries looked at for the address's type: rdma_cm's are near the front */
#define RL_GID_SCAN 64

void (*rmig_rl_fabric_hook)(bool is_dst, unsigned int rail, struct rl_fabric *f);

/* ------------------------------------------------------------ hello */

void rmig_rl_hello_encode(uint8_t out[RL_HELLO_LEN], const struct rl_hello *h)
{
	const struct rl_fabric *f = &h->fab;

	memset(out, 0, RL_HELLO_LEN);
	rmig_put_be32(out, RL_HELLO_MAGIC);
	rmig_put_be16(out + 4, RL_HELLO_VERSION);
	rmig_put_be16(out + 6, (uint16_t)h->rail);
	rmig_put_be16(out + 8, (uint16_t)h->nrails);
	rmig_put_be16(out + 10, (uint16_t)h->allow);
	rmig_put_be64(out + 12, h->attempt);
	out[20] = f->port;
	out[21] = f->link;
	out[22] = f->gid_type;
	out[23] = f->family;
	out[24] = f->prefix;
	memcpy(out + 28, f->ip, 16);
	memcpy(out + 44, f->subnet, 8);
	/* NUL-padded: the names are at most 31 and 15 characters */
	memcpy(out + 52, f->dev, strnlen(f->dev, 31));
	memcpy(out + 84, f->netdev, strnlen(f->netdev, 15));
}

static bool all_zero(const uint8_t *p, size_t n)
{
	while (n--)
		if (*p++)
			return false;
	return true;
}

/*
 * A name field: printable, NUL-terminated inside the field, zero after.
 * These names go into error messages on this side.
 */
static bool name_ok(const uint8_t *p, size_t field, char *out)
{
	size_t n = 0;

	while (n < field && p[n]) {
		if (p[n] < 0x21 || p[n] > 0x7e)
			return false;
		n++;
	}
	if (n == field || !all_zero(p + n, field - n))
		return false;
	memcpy(out, p, n);
	out[n] = 0;
	return true;
}

#define REFUSE(...) (snprintf(why, why_len, __VA_ARGS__), -EPROTO)

int rmig_rl_hello_decode(const uint8_t *in, size_t len, struct rl_hello *h, char *why,
			 size_t why_len)
{
	struct rl_fabric *f = &h->fab;
	unsigned int ver, iplen;

	memset(h, 0, sizeof(*h));
	if (len < RL_HELLO_HEAD || rmig_get_be32(in) != RL_HELLO_MAGIC)
		return REFUSE("not an rmig rail hello");
	ver = rmig_get_be16(in + 4);
	if (ver != RL_HELLO_VERSION) {
		snprintf(why, why_len,
			 "the source speaks rail hello version %u, this destination %u: run the "
			 "same rmig on both sides",
			 ver, RL_HELLO_VERSION);
		return -EPROTONOSUPPORT;
	}
	if (len != RL_HELLO_LEN)
		return REFUSE("rail hello of %zu bytes, not %u", len, RL_HELLO_LEN);
	h->rail = rmig_get_be16(in + 6);
	h->nrails = rmig_get_be16(in + 8);
	h->allow = rmig_get_be16(in + 10);
	h->attempt = rmig_get_be64(in + 12);
	if (!h->nrails || h->nrails > RD_RAILS_MAX || h->rail >= h->nrails)
		return REFUSE("rail hello: rail %u of %u", h->rail, h->nrails);
	if (h->allow & ~RL_ALLOW_ALL)
		return REFUSE("rail hello: unknown allow bits 0x%x", h->allow);
	f->port = in[20];
	f->link = in[21];
	f->gid_type = in[22];
	f->family = in[23];
	f->prefix = in[24];
	if (f->link > RL_LINK_ETH || f->gid_type > RL_GID_ROCE_V2)
		return REFUSE("rail hello: link layer %u, GID type %u", f->link, f->gid_type);
	iplen = f->family == 4 ? 4 : f->family == 6 ? 16 : 0;
	if ((f->family && !iplen) || f->prefix > iplen * 8 || !all_zero(in + 25, 3) ||
	    !all_zero(in + 28 + iplen, 16 - iplen))
		return REFUSE("rail hello: address family %u, prefix %u", f->family, f->prefix);
	memcpy(f->ip, in + 28, 16);
	memcpy(f->subnet, in + 44, 8);
	if (!name_ok(in + 52, 32, f->dev) || !name_ok(in + 84, 16, f->netdev))
		return REFUSE("rail hello: a device name that is not printable");
	return 0;
}

/* ------------------------------------------------------ description */

/* The GID rdma_cm uses for a local IP address (an IPv4-mapped one for IPv4). */
static void addr_gid(const struct sockaddr *sa, uint8_t gid[16])
{
	memset(gid, 0, 16);
	if (sa->sa_family == AF_INET) {
		gid[10] = gid[11] = 0xff;
		memcpy(gid + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6) {
		memcpy(gid, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
	}
}

/* First line of a small text file into @buf ("" if unreadable). */
static void read_line(const char *path, char *buf, size_t len)
{
	FILE *fp = fopen(path, "re");

	buf[0] = 0;
	if (!fp)
		return;
	if (fgets(buf, (int)len, fp))
		buf[strcspn(buf, "\n")] = 0;
	fclose(fp);
}

static int gid_type_of(const char *text)
{
	if (!strcmp(text, "RoCE v2"))
		return RL_GID_ROCE_V2;
	if (!strcmp(text, "IB/RoCE v1") || !strcmp(text, "RoCE v1"))
		return RL_GID_ROCE_V1;
	return RL_GID_UNKNOWN;
}

/*
 * RoCE: the type of the GID rdma_cm uses for @gid. The kernel takes the
 * entry of that GID whose type is the port's default_roce_mode (RoCE v2
 * where the device has it, unless set otherwise in configfs).
 */
static int roce_type(const struct rmig_verbs_ops *v, struct ibv_context *ctx, uint8_t port,
		     int tbl_len, const uint8_t gid[16])
{
	const char *dev = ibv_get_device_name(ctx->device);
	bool v1 = false, v2 = false;
	char path[256], text[32];
	int mode;

	for (int i = 0; i < tbl_len && i < RL_GID_SCAN; i++) {
		union ibv_gid g;

		if (v->query_gid(ctx, port, i, &g) || memcmp(g.raw, gid, 16))
			continue;
		snprintf(path, sizeof(path), "/sys/class/infiniband/%s/ports/%u/gid_attrs/types/%d",
			 dev, port, i);
		read_line(path, text, sizeof(text));
		v1 |= gid_type_of(text) == RL_GID_ROCE_V1;
		v2 |= gid_type_of(text) == RL_GID_ROCE_V2;
	}
	snprintf(path, sizeof(path), "/sys/kernel/config/rdma_cm/%s/ports/%u/default_roce_mode",
		 dev, port);
	read_line(path, text, sizeof(text));
	mode = gid_type_of(text);
	if (mode == RL_GID_ROCE_V1 && v1)
		return RL_GID_ROCE_V1;
	if (v2)
		return RL_GID_ROCE_V2;
	return v1 ? RL_GID_ROCE_V1 : RL_GID_UNKNOWN;
}

/* Whether @a and @b agree on their first @bits bits. */
static bool prefix_eq(const uint8_t *a, const uint8_t *b, unsigned int bits)
{
	unsigned int whole = bits / 8, rest = bits % 8;

	if (memcmp(a, b, whole))
		return false;
	return !rest || !((a[whole] ^ b[whole]) & (uint8_t)(0xff00u >> rest));
}

static unsigned int mask_bits(const uint8_t *m, unsigned int n)
{
	unsigned int bits = 0;

	for (unsigned int i = 0; i < n; i++)
		bits += (unsigned int)__builtin_popcount(m[i]);
	return bits;
}

/* The interface holding @f->ip (else one whose subnet has it): netdev, prefix. */
static void ip_subnet(struct rl_fabric *f)
{
	struct ifaddrs *all, *best = NULL;
	unsigned int n = f->family == 4 ? 4 : 16;
	int fam = f->family == 4 ? AF_INET : AF_INET6;

	if (getifaddrs(&all))
		return;
	for (struct ifaddrs *i = all; i; i = i->ifa_next) {
		const uint8_t *a, *m;

		if (!i->ifa_addr || !i->ifa_netmask || i->ifa_addr->sa_family != fam)
			continue;
		a = fam == AF_INET ? (const uint8_t *)&((struct sockaddr_in *)i->ifa_addr)->sin_addr
				   : (const uint8_t *)&((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr;
		m = fam == AF_INET
			? (const uint8_t *)&((struct sockaddr_in *)i->ifa_netmask)->sin_addr
			: (const uint8_t *)&((struct sockaddr_in6 *)i->ifa_netmask)->sin6_addr;
		if (!memcmp(a, f->ip, n)) {
			best = i;
			break;
		}
		if (!best && prefix_eq(a, f->ip, mask_bits(m, n)))
			best = i;
	}
	if (best) {
		const uint8_t *m =
		    fam == AF_INET
			? (const uint8_t *)&((struct sockaddr_in *)best->ifa_netmask)->sin_addr
			: (const uint8_t *)&((struct sockaddr_in6 *)best->ifa_netmask)->sin6_addr;

		f->prefix = (uint8_t)mask_bits(m, n);
		snprintf(f->netdev, sizeof(f->netdev), "%s", best->ifa_name);
	}
	freeifaddrs(all);
}

void rmig_rl_fabric_describe(const struct rmig_verbs_ops *v, struct ibv_context *ctx, uint8_t port,
			     const struct sockaddr *local, struct rl_fabric *f)
{
	struct ibv_port_attr pa;
	union ibv_gid g;
	uint8_t gid[16];

	memset(f, 0, sizeof(*f));
	if (local && local->sa_family == AF_INET) {
		f->family = 4;
		memcpy(f->ip, &((const struct sockaddr_in *)local)->sin_addr, 4);
	} else if (local && local->sa_family == AF_INET6) {
		f->family = 6;
		memcpy(f->ip, &((const struct sockaddr_in6 *)local)->sin6_addr, 16);
	}
	if (f->family && !all_zero(f->ip, 16))
		ip_subnet(f);
	else
		f->family = 0, memset(f->ip, 0, sizeof(f->ip));
	if (!ctx)
		return;
	snprintf(f->dev, sizeof(f->dev), "%s", ibv_get_device_name(ctx->device));
	f->port = port;
	if (v->query_port(ctx, port, &pa))
		return;
	if (pa.link_layer == IBV_LINK_LAYER_INFINIBAND) {
		f->link = RL_LINK_IB;
		f->gid_type = RL_GID_IB;
		if (!v->query_gid(ctx, port, 0, &g))
			memcpy(f->subnet, g.raw, 8);
	} else if (pa.link_layer == IBV_LINK_LAYER_ETHERNET) {
		f->link = RL_LINK_ETH;
		if (local) {
			addr_gid(local, gid);
			f->gid_type = (uint8_t)roce_type(v, ctx, port, pa.gid_tbl_len, gid);
		}
	}
}

void rmig_rl_fabric_str(const struct rl_fabric *f, char *buf, size_t len)
{
	static const char *const links[] = {"link layer unknown", "InfiniBand", "Ethernet"};
	static const char *const types[] = {"", ", IB GIDs", ", RoCE v1", ", RoCE v2"};
	char ip[INET6_ADDRSTRLEN] = "", sub[48] = "";
	size_t used;

	used = (size_t)snprintf(buf, len, "%s port %u, %s%s", f->dev[0] ? f->dev : "?", f->port,
				links[f->link <= RL_LINK_ETH ? f->link : 0],
				types[f->gid_type <= RL_GID_ROCE_V2 ? f->gid_type : 0]);
	if (f->link == RL_LINK_IB && used < len)
		used += (size_t)snprintf(buf + used, len - used,
					 ", subnet prefix %02x%02x:%02x%02x:%02x%02x:%02x%02x",
					 f->subnet[0], f->subnet[1], f->subnet[2], f->subnet[3],
					 f->subnet[4], f->subnet[5], f->subnet[6], f->subnet[7]);
	if (f->family && used < len) {
		inet_ntop(f->family == 4 ? AF_INET : AF_INET6, f->ip, ip, sizeof(ip));
		if (f->netdev[0])
			snprintf(sub, sizeof(sub), "/%u on %s", f->prefix, f->netdev);
		snprintf(buf + used, len - used, ", %s%s", ip, sub);
	}
}

/* Whether @a's address lies in @b's subnet (known on @b's side only with its netdev). */
static bool in_subnet(const struct rl_fabric *a, const struct rl_fabric *b)
{
	return !b->netdev[0] || prefix_eq(a->ip, b->ip, b->prefix);
}

int rmig_rl_fabric_match(unsigned int rail, const struct rl_fabric *src,
			 const struct rl_fabric *dst, unsigned int allow, char *why, size_t len)
{
	const char *what = NULL;
	char s[200], d[200];

	if (src->link && dst->link && src->link != dst->link)
		what = "different link layers";
	else if (src->link == RL_LINK_IB && dst->link == RL_LINK_IB &&
		 !all_zero(src->subnet, 8) && !all_zero(dst->subnet, 8) &&
		 memcmp(src->subnet, dst->subnet, 8))
		what = "different InfiniBand subnets";
	else if (src->gid_type && dst->gid_type && src->gid_type != dst->gid_type)
		what = "different RoCE versions";
	else if (!(allow & RL_ALLOW_ROUTED) && src->link != RL_LINK_IB &&
		 dst->link != RL_LINK_IB && src->family && src->family == dst->family &&
		 (!in_subnet(src, dst) || !in_subnet(dst, src)))
		what = "different IP subnets (a routed rail: the source reached this address "
		       "through another network; RMIG_RDMA_RAILS_ALLOW=routed accepts it)";
	if (!what)
		return 0;
	rmig_rl_fabric_str(src, s, sizeof(s));
	rmig_rl_fabric_str(dst, d, sizeof(d));
	snprintf(why, len, "rail %u: the source's end (%s) and the destination's (%s) are on %s",
		 rail, s, d, what);
	return -EXDEV;
}

bool rmig_rl_fabric_same_port(const struct rl_fabric *a, const struct rl_fabric *b)
{
	return a->dev[0] && a->port && !strcmp(a->dev, b->dev) && a->port == b->port;
}

int rmig_rl_allow_env(unsigned int *allow, struct rmig_msgbuf *err)
{
	const char *env = getenv("RMIG_RDMA_RAILS_ALLOW");
	char buf[128], *save = NULL;

	*allow = 0;
	if (!env || !*env)
		return 0;
	snprintf(buf, sizeof(buf), "%s", env);
	for (char *w = strtok_r(buf, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
		if (!strcmp(w, "routed"))
			*allow |= RL_ALLOW_ROUTED;
		else if (!strcmp(w, "shared-port"))
			*allow |= RL_ALLOW_SHARED_PORT;
		else
			return rmig_msg(err, -EINVAL,
					"RMIG_RDMA_RAILS_ALLOW: '%s' unknown (routed, shared-port)",
					w);
	}
	return 0;
}
