// SPDX-License-Identifier: MIT
#include "barrier.h"
#include "stats.h"
#include "xport.h"

void rmig_totals_add(struct rmig_stats *s, const struct rmig_totals *t,
		     const struct rmig_conn *c)
{
	s->packets += rmig_load_relaxed(&t->packets);
	s->normal_pages += rmig_load_relaxed(&t->normal_pages);
	s->zero_pages += rmig_load_relaxed(&t->zero_pages);
	s->data_bytes += rmig_load_relaxed(&t->data_bytes);
	s->dev_chunks += rmig_load_relaxed(&t->dev_chunks);
	s->dev_bytes += rmig_load_relaxed(&t->dev_bytes);
	s->zero_pages_written += rmig_load_relaxed(&t->zero_written);
	if (c) {
		uint32_t tls = rmig_load_relaxed(&c->tls);

		s->wire_bytes += rmig_load_relaxed(&c->wire_bytes);
		s->tls_channels += !!(tls & RMIG_CONN_TLS);
		s->ktls_channels += !!(tls & RMIG_CONN_KTLS);
		s->mw_channels += !!(tls & RMIG_CONN_MW);
	}
}
