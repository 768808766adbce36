// SPDX-License-Identifier: MIT
#include <errno.h>
#include <string.h>

#include "rmig-config.h"
#include "xport.h"
#ifdef RMIG_HAVE_RDMA
#include "transport/rdma/rails.h"
#endif

static const struct {
	const char *scheme;
	const struct rmig_xport_ops *ops;
} transports[] = {
	{ "tcp", &rmig_tcp_ops },
	{ "null", &rmig_null_ops },
	{ "file", &rmig_file_ops },
#ifdef RMIG_HAVE_RDMA
	{ "rdma", &rmig_rdma_ops },
#else
	{ "rdma", NULL },
#endif
};

int rmig_uri_parse(const char *uri, const struct rmig_xport_ops **ops, const char **addr)
{
	const char *colon;

	if (!uri)
		return -EINVAL;
	colon = strchr(uri, ':');
	if (!colon)
		return -EINVAL;
	for (size_t i = 0; i < RMIG_ARRAY_SIZE(transports); i++) {
		size_t n = strlen(transports[i].scheme);

		if ((size_t)(colon - uri) != n || strncmp(uri, transports[i].scheme, n))
			continue;
		if (!transports[i].ops)
			return -EPROTONOSUPPORT;
		*ops = transports[i].ops;
		*addr = colon + 1;
#ifdef RMIG_HAVE_RDMA
		/* "rdma:H1,H2:PORT": one rail per address (transport/rdma/rails.c) */
		if (*ops == &rmig_rdma_ops && strchr(*addr, ','))
			*ops = &rmig_rdma_rails_ops;
#endif
		return 0;
	}
	return -EINVAL;
}

int rmig_xport_registered(unsigned int i, const struct rmig_xport_ops **ops)
{
	if (i >= RMIG_ARRAY_SIZE(transports))
		return -ENOENT;
	*ops = transports[i].ops;
	return 0;
}

int rmig_transport_available(const char *name)
{
	for (size_t i = 0; i < RMIG_ARRAY_SIZE(transports); i++)
		if (name && !strcmp(name, transports[i].scheme))
			return transports[i].ops != NULL;
	return 0;
}
