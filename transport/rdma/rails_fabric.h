/* SPDX-License-Identifier: MIT */
/*
 * What fabric each end of a rail is on, and the rail hello that carries it
 * (rails_fabric.c). Used by rails.c; the hello's decoder is fuzzed
 * (fuzz/fuzz_rdma_rail_hello.c).
 */
#ifndef RMIG_TRANSPORT_RDMA_RAILS_FABRIC_H
#define RMIG_TRANSPORT_RDMA_RAILS_FABRIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "transport/rdma/rails.h"
#include "transport/rdma/types.h"

#define RL_HELLO_MAGIC	 0x524d5248u /* "RMRH" */
#define RL_HELLO_VERSION 2u	     /* 1: no fabric, no attempt id (before issue 13's checks) */
#define RL_HELLO_HEAD	 12u	     /* magic, version, rail, nrails, allow: what v1 had too */
#define RL_HELLO_LEN	 100u

/* Checks a side may waive (RMIG_RDMA_RAILS_ALLOW), sent in the hello */
#define RL_ALLOW_ROUTED	     (1u << 0) /* a rail's two ends in different IP subnets */
#define RL_ALLOW_SHARED_PORT (1u << 1) /* two rails of one side on one device port */
#define RL_ALLOW_ALL	     (RL_ALLOW_ROUTED | RL_ALLOW_SHARED_PORT)

enum rl_link {
	RL_LINK_UNKNOWN = 0,
	RL_LINK_IB = 1,
	RL_LINK_ETH = 2,
};

enum rl_gid_type {
	RL_GID_UNKNOWN = 0,
	RL_GID_IB = 1,
	RL_GID_ROCE_V1 = 2,
	RL_GID_ROCE_V2 = 3,
};

/* One end of a rail. Zero / "" fields are unknown and match anything. */
struct rl_fabric {
	char dev[32];	   /* RDMA device */
	uint8_t port;	   /* its port */
	uint8_t link;	   /* enum rl_link */
	uint8_t gid_type;  /* enum rl_gid_type of the GID rdma_cm uses */
	uint8_t family;	   /* 4 or 6: ip is the rail's local address; 0: none */
	uint8_t prefix;	   /* prefix length of the subnet ip is in, on netdev */
	uint8_t ip[16];	   /* IPv4 in the first 4 bytes */
	uint8_t subnet[8]; /* InfiniBand: the port's GID subnet prefix */
	char netdev[16];   /* the interface that holds ip */
};

struct rl_hello {
	unsigned int rail, nrails;
	unsigned int allow;   /* RL_ALLOW_* the source waives */
	uint64_t attempt;     /* one random value for every rail of one connect() */
	struct rl_fabric fab; /* the source's end of the rail */
};

void rmig_rl_hello_encode(uint8_t out[RL_HELLO_LEN], const struct rl_hello *h);
/*
 * 0, or -EPROTO (-EPROTONOSUPPORT for another version) with why the bytes
 * are refused in @why.
 */
int rmig_rl_hello_decode(const uint8_t *in, size_t len, struct rl_hello *h, char *why,
			 size_t why_len);

/*
 * Describe the end of a rail on @ctx port @port with local address @local
 * (NULL: none known). Best effort: what cannot be read stays unknown.
 */
void rmig_rl_fabric_describe(const struct rmig_verbs_ops *v, struct ibv_context *ctx, uint8_t port,
			     const struct sockaddr *local, struct rl_fabric *f);
/* "rxe0 port 1, Ethernet, RoCE v2, 10.99.0.1/24 on eth0", for messages */
void rmig_rl_fabric_str(const struct rl_fabric *f, char *buf, size_t len);
/*
 * Whether rail @rail's two ends (@src, @dst) are on one fabric. 0, or
 * -EXDEV with both ends named in @why. @allow waives RL_ALLOW_ROUTED.
 */
int rmig_rl_fabric_match(unsigned int rail, const struct rl_fabric *src,
			 const struct rl_fabric *dst, unsigned int allow, char *why, size_t len);
/* Whether two rails of one side are on the same device port. */
bool rmig_rl_fabric_same_port(const struct rl_fabric *a, const struct rl_fabric *b);
/* RMIG_RDMA_RAILS_ALLOW ("routed", "shared-port", comma-separated) into RL_ALLOW_*. */
int rmig_rl_allow_env(unsigned int *allow, struct rmig_msgbuf *err);

/*
 * Tests only (the fake fabric has one device for every address): called on
 * each description just made, so a test can put rails on other fabrics.
 */
extern void (*rmig_rl_fabric_hook)(bool is_dst, unsigned int rail, struct rl_fabric *f);

#endif /* RMIG_TRANSPORT_RDMA_RAILS_FABRIC_H */
