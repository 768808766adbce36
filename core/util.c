// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

void rmig_err_init(struct rmig_err *e)
{
	pthread_mutex_init(&e->lock, NULL);
	e->code = 0;
	e->msg[0] = '\0';
}

void rmig_err_destroy(struct rmig_err *e)
{
	pthread_mutex_destroy(&e->lock);
}

int rmig_err_vset(struct rmig_err *e, int code, const char *fmt, va_list ap)
{
	int ret;

	pthread_mutex_lock(&e->lock);
	if (!e->code) {
		e->code = code < 0 ? code : -EIO;
		vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	}
	ret = e->code;
	pthread_mutex_unlock(&e->lock);
	return ret;
}

int rmig_err_set(struct rmig_err *e, int code, const char *fmt, ...)
{
	va_list ap;
	int ret;

	va_start(ap, fmt);
	ret = rmig_err_vset(e, code, fmt, ap);
	va_end(ap);
	return ret;
}

void rmig_err_reword(struct rmig_err *e, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&e->lock);
	if (e->code) {
		va_start(ap, fmt);
		vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&e->lock);
}

int rmig_err_code(struct rmig_err *e)
{
	int code;

	pthread_mutex_lock(&e->lock);
	code = e->code;
	pthread_mutex_unlock(&e->lock);
	return code;
}

void rmig_err_msg(struct rmig_err *e, char *buf, size_t len)
{
	pthread_mutex_lock(&e->lock);
	snprintf(buf, len, "%s", e->msg);
	pthread_mutex_unlock(&e->lock);
}

int rmig_msg(struct rmig_msgbuf *mb, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(mb->msg, sizeof(mb->msg), fmt, ap);
	va_end(ap);
	return code;
}

int rmig_split_hostport(const char *addr, char *host, size_t hostlen, char *port, size_t portlen)
{
	const char *colon, *h = addr;
	size_t hl;

	if (!addr || !*addr)
		return -EINVAL;
	if (*addr == '[') {
		const char *end = strchr(addr, ']');

		if (!end || end[1] != ':')
			return -EINVAL;
		h = addr + 1;
		hl = (size_t)(end - h);
		colon = end + 1;
	} else {
		colon = strrchr(addr, ':');
		if (!colon)
			return -EINVAL;
		hl = (size_t)(colon - addr);
	}
	if (hl == 0 || hl >= hostlen || strlen(colon + 1) == 0 || strlen(colon + 1) >= portlen)
		return -EINVAL;
	memcpy(host, h, hl);
	host[hl] = '\0';
	strcpy(port, colon + 1);
	for (const char *p = port; *p; p++)
		if (*p < '0' || *p > '9')
			return -EINVAL;
	return 0;
}
