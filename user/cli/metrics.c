// SPDX-License-Identifier: MIT
/*
 * `ppbpf run --metrics`: GET /metrics answers the counters in Prometheus's
 * text exposition format, read from the pinned maps at each scrape. HTTP is
 * libmicrohttpd's, on a thread of its own, so a slow scraper never holds up
 * the daemon's sweep; a few connections at most, each with a short timeout.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <microhttpd.h>
#include "metrics.h"

/* Scrapers served at once, and how long an idle one is kept (s). */
#define METRICS_CONNECTIONS 8
#define METRICS_TIMEOUT_S 10

/* The content type of the text exposition format, version 0.0.4. */
#define EXPOSITION_TYPE "text/plain; version=0.0.4; charset=utf-8"

struct metrics_server {
	struct MHD_Daemon *mhd;
	const struct ppbpf_maps *maps;
};

static enum MHD_Result answer(struct MHD_Connection *c, unsigned int status, const char *type, char *body,
			      size_t len)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	enum MHD_Result rc;

	if (!r) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	rc = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return rc;
}

static enum MHD_Result answer_text(struct MHD_Connection *c, unsigned int status, const char *text)
{
	char *body = strdup(text);

	return body ? answer(c, status, "text/plain; charset=utf-8", body, strlen(body)) : MHD_NO;
}

/* The exposition of the maps, in a buffer of its own. */
static enum MHD_Result answer_metrics(struct MHD_Connection *c, const struct ppbpf_maps *m)
{
	char *body = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&body, &len);
	int rc;

	if (!f)
		return answer_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
	rc = stats_write_prometheus(f, m);
	if (fclose(f) || rc) {
		free(body);
		return answer_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot read the counters\n");
	}
	return answer(c, MHD_HTTP_OK, EXPOSITION_TYPE, body, len);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
				  const char *version, const char *upload, size_t *upload_len, void **state)
{
	struct metrics_server *s = cls;

	(void)version;
	(void)upload;
	if (!*state) { /* the headers are in: answer once the (empty) body is */
		*state = s;
		return MHD_YES;
	}
	if (*upload_len) {
		*upload_len = 0; /* a body is read and ignored */
		return MHD_YES;
	}
	if (strcmp(method, MHD_HTTP_METHOD_GET) && strcmp(method, MHD_HTTP_METHOD_HEAD))
		return answer_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET /metrics\n");
	if (strcmp(url, "/metrics"))
		return answer_text(c, MHD_HTTP_NOT_FOUND, "not found: the metrics are at /metrics\n");
	return answer_metrics(c, s->maps);
}

struct metrics_server *metrics_start(const struct sockaddr_storage *addr, const struct ppbpf_maps *m)
{
	unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
	struct metrics_server *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->maps = m;
	if (addr->ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	s->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, addr,
				  MHD_OPTION_CONNECTION_LIMIT, (unsigned int)METRICS_CONNECTIONS,
				  MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)METRICS_TIMEOUT_S, MHD_OPTION_END);
	if (!s->mhd) {
		free(s);
		return NULL;
	}
	return s;
}

void metrics_stop(struct metrics_server *s)
{
	if (!s)
		return;
	MHD_stop_daemon(s->mhd);
	free(s);
}
