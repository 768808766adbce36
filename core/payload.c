// SPDX-License-Identifier: MIT
#include <stdlib.h>

#include "sched.h"

struct rmig_payload *rmig_payload_alloc(unsigned int pages_per_packet)
{
	struct rmig_payload *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->ram.offsets = calloc(pages_per_packet, sizeof(uint64_t));
	if (!p->ram.offsets) {
		free(p);
		return NULL;
	}
	return p;
}

void rmig_payload_free(struct rmig_payload *p)
{
	if (!p)
		return;
	free(p->ram.offsets);
	free(p->dev.data);
	free(p);
}

void rmig_payload_reset(struct rmig_payload *p)
{
	p->type = RMIG_PAYLOAD_NONE;
	p->ram.num = 0;
	p->ram.normal = 0;
	p->ram.zero = 0;
	p->dev.len = 0;
}
