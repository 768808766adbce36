// SPDX-License-Identifier: MIT
/*
 * Device state, delivered in the source's order: chunks travel on any
 * channel, so one may arrive before its predecessors; it is held (at most
 * DEV_PENDING_MAX bytes in all) until they have been delivered.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dst/dst_engine.h"
#include "core/dst/dst_fail.h"

/* Most device-state bytes held while waiting for an earlier chunk. */
#define DEV_PENDING_MAX (256u << 20)

int dst_dev_deliver(struct rmig_dst *d, unsigned int ch, uint64_t seq, const char *id,
		    uint32_t instance, const uint8_t *data, size_t len)
{
	struct dev_pending *p, **pp;
	int ret = 0;

	pthread_mutex_lock(&d->dev_lock);
	if (seq < d->dev_next) {
		ret = dst_fail(d, -EPROTO, "channel %u: device-state chunk %llu arrived twice", ch,
			       (unsigned long long)seq);
		goto out;
	}
	if (seq > d->dev_next) {
		for (pp = &d->dev_pending; *pp && (*pp)->seq < seq; pp = &(*pp)->next)
			;
		if (*pp && (*pp)->seq == seq) {
			ret = dst_fail(d, -EPROTO, "channel %u: device-state chunk %llu arrived twice",
				       ch, (unsigned long long)seq);
			goto out;
		}
		if (d->dev_pending_bytes + len > DEV_PENDING_MAX) {
			ret = dst_fail(d, -ENOBUFS,
				       "channel %u: more than %u MiB of device state waiting for chunk %llu",
				       ch, DEV_PENDING_MAX >> 20, (unsigned long long)d->dev_next);
			goto out;
		}
		p = malloc(sizeof(*p) + len);
		if (!p) {
			ret = dst_fail(d, -ENOMEM, "out of memory holding device state");
			goto out;
		}
		p->seq = seq;
		p->instance = instance;
		snprintf(p->idstr, sizeof(p->idstr), "%s", id);
		p->len = len;
		memcpy(p->data, data, len);
		p->next = *pp;
		*pp = p;
		d->dev_pending_bytes += len;
		goto out;
	}
	if (d->dev_fn && d->dev_fn(d->dev_arg, id, instance, seq, data, len)) {
		ret = dst_fail(d, -ECANCELED, "device-state callback refused '%s' instance %u", id,
			       instance);
		goto out;
	}
	d->dev_next++;
	while ((p = d->dev_pending) && p->seq == d->dev_next) {
		d->dev_pending = p->next;
		d->dev_pending_bytes -= p->len;
		if (d->dev_fn && d->dev_fn(d->dev_arg, p->idstr, p->instance, p->seq, p->data, p->len))
			ret = dst_fail(d, -ECANCELED, "device-state callback refused '%s' instance %u",
				       p->idstr, p->instance);
		free(p);
		if (ret)
			goto out;
		d->dev_next++;
	}
out:
	pthread_mutex_unlock(&d->dev_lock);
	return ret;
}
