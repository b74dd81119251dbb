/* SPDX-License-Identifier: MIT */
/* The counters in Prometheus's text exposition format, and `ppbpf run --metrics`'s HTTP endpoint. */
#ifndef PPBPF_CLI_METRICS_H
#define PPBPF_CLI_METRICS_H

#include <stdio.h>
#include <sys/socket.h>
#include "loader.h"

/* The counters and gauges of the pinned maps, in the text exposition format (cmd_stats.c). 0 or -errno. */
int stats_write_prometheus(FILE *f, const struct ppbpf_maps *m);

struct metrics_server;
/*
 * Serve GET /metrics at addr (libmicrohttpd, its own thread), read from m
 * at each scrape: m must stay open until metrics_stop. NULL after saying why.
 */
struct metrics_server *metrics_start(const struct sockaddr_storage *addr, const struct ppbpf_maps *m);
void metrics_stop(struct metrics_server *s);

#endif
