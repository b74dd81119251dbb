// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for `ppbpf run`'s config file parser (user/cli/options.c),
 * built with a short line limit (PPBPF_CONFIG_LINE_MAX) so that long lines
 * are reached. Invariants, besides no crash, no over-read, no leak:
 *  - the answer is a policy (0) or a usage error (2), nothing else;
 *  - nothing is parsed from a line that is an error: if a line alone is
 *    refused, so is every file that holds it; a line over the limit is an
 *    error (never read as two);
 *  - lines do not leak into each other: each policy group of an accepted
 *    file is exactly what its line alone gives;
 *  - what is accepted is valid: ports 1..65535 and each in one group only,
 *    at most 1024 of them, each group with a port, valid CIDRs (no host bits,
 *    not v4-mapped, formatting back to themselves), values in range;
 *  - written back as a config, the policy reads back as the same policy, and
 *    that text is a fixed point.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include "options.h"

#include "check.h"

#define EXIT_USAGE 2

static struct attach_args whole, single, again;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	options_diag = fopen("/dev/null", "w"); /* the parser's messages: not the point here */
	return 0;
}

static int parse(const char *text, size_t n, struct attach_args *a)
{
	FILE *f;
	int rc;

	options_init(a, "run");
	if (!n)
		return 0;
	f = fmemopen((void *)text, n, "r");
	CHECK(f);
	rc = options_read_config_stream(f, "fuzz.conf", a);
	fclose(f);
	CHECK(rc == 0 || rc == EXIT_USAGE);
	return rc;
}

static void check_valid(const struct attach_args *a)
{
	static unsigned char seen[65536];
	int total = 0;

	memset(seen, 0, sizeof(seen));
	CHECK(a->n_groups >= 0 && a->n_groups <= MAX_GROUPS);
	CHECK(!a->config && !a->check);
	CHECK(a->pin_dir[0] == '/' && !strstr(a->pin_dir, "/../") && !strstr(a->pin_dir, "#"));
	CHECK(!strpbrk(a->cgroup, " \t#"));
	CHECK(a->tlv_cap >= -1 && a->tlv_cap <= PPBPF_TLV_MAX);
	CHECK(a->table_size <= 1u << 24);
	CHECK(a->sweep_ms >= 10 && a->sweep_ms <= 60000 && a->log_rate <= 100000);
	for (int g = 0; g < a->n_groups; g++) {
		const struct port_group *pg = &a->groups[g];

		CHECK(pg->n_ports >= 1 && pg->n_ports <= MAX_PORTS && (pg->set & SET_PORT));
		CHECK(pg->line >= 1);
		for (int i = 0; i < pg->n_ports; i++) {
			CHECK(pg->ports[i] >= 1);
			CHECK(!seen[pg->ports[i]]); /* one policy per port */
			seen[pg->ports[i]] = 1;
		}
		total += pg->n_ports;
		CHECK(pg->n_trust >= 0 && pg->n_trust <= MAX_TRUST);
		CHECK(!pg->n_trust == !(pg->set & SET_TRUST)); /* "trust" never leaves an empty list */
		for (int t = 0; t < pg->n_trust; t++) {
			const struct cidr *c = &pg->trust[t];
			struct cidr back;
			char txt[CIDR_STRLEN];
			int max = c->af == AF_INET ? 32 : 128;

			CHECK(c->af == AF_INET || c->af == AF_INET6);
			CHECK(c->bits >= 0 && c->bits <= max);
			for (int b = c->bits; b < 128; b++)
				CHECK(!(c->addr[b / 8] & (0x80 >> (b % 8))));
			cidr_format(c, txt, sizeof(txt));
			CHECK(cidr_parse(txt, &back, NULL) == 0 && cidr_equal(c, &back));
			for (int u = 0; u < t; u++)
				CHECK(!cidr_equal(c, &pg->trust[u]));
		}
		CHECK(!(pg->pol.flags & ~(__u32)(PPBPF_PORT_REWRITE_PEER | PPBPF_PORT_OPTIONAL | PPBPF_PORT_REJECT_UNTRUSTED |
						  PPBPF_PORT_NO_V1 | PPBPF_PORT_NO_V2 | PPBPF_PORT_LOCAL_UID)));
		CHECK((pg->pol.flags & PPBPF_PORT_LOCAL_UID) || pg->pol.local_uid == 0);
		CHECK(pg->pol.local_uid != 0xffffffffu);
		CHECK((pg->pol.flags & (PPBPF_PORT_NO_V1 | PPBPF_PORT_NO_V2)) != (PPBPF_PORT_NO_V1 | PPBPF_PORT_NO_V2));
		CHECK(pg->pol.max_header == 0 || (pg->pol.max_header >= 15 && pg->pol.max_header <= 4096));
		CHECK(pg->pol.timeout_ms <= 3600000);
	}
	CHECK(total <= 1024);
}

static int same_group(const struct port_group *x, const struct port_group *y)
{
	if (x->n_ports != y->n_ports || x->n_trust != y->n_trust || memcmp(&x->pol, &y->pol, sizeof(x->pol)) ||
	    memcmp(x->ports, y->ports, sizeof(x->ports[0]) * (size_t)x->n_ports))
		return 0;
	for (int t = 0; t < x->n_trust; t++)
		if (!cidr_equal(&x->trust[t], &y->trust[t]))
			return 0;
	return 1;
}

/* The policy as config text. Returns its length. */
static size_t write_config(const struct attach_args *a, char *out, size_t cap)
{
	FILE *f = fmemopen(out, cap, "w");
	long n;

	CHECK(f);
	if (a->tlv_cap >= 0)
		fprintf(f, "tlv-cap %ld\n", a->tlv_cap);
	if (a->cgroup[0])
		fprintf(f, "cgroup %s\n", a->cgroup);
	if (strcmp(a->pin_dir, PPBPF_PIN_DIR))
		fprintf(f, "pin-dir %s\n", a->pin_dir);
	if (a->table_size)
		fprintf(f, "table-size %llu\n", a->table_size);
	fprintf(f, "sweep-ms %u\tlog-rate %u%s%s\n", a->sweep_ms, a->log_rate, a->keep ? " keep" : "",
		a->verbose ? " verbose" : "");
	for (int g = 0; g < a->n_groups; g++) {
		const struct port_group *pg = &a->groups[g];
		__u32 fl = pg->pol.flags;

		fprintf(f, "port ");
		for (int i = 0; i < pg->n_ports; i++)
			fprintf(f, "%s%u", i ? "," : "", pg->ports[i]);
		for (int t = 0; t < pg->n_trust; t++) {
			char txt[CIDR_STRLEN];

			cidr_format(&pg->trust[t], txt, sizeof(txt));
			fprintf(f, "%s%s", t ? "," : " trust ", txt);
		}
		if (fl & PPBPF_PORT_REWRITE_PEER)
			fprintf(f, " rewrite-peer");
		if (fl & PPBPF_PORT_OPTIONAL)
			fprintf(f, " mode optional");
		if (fl & PPBPF_PORT_REJECT_UNTRUSTED)
			fprintf(f, " untrusted reject");
		if (fl & (PPBPF_PORT_NO_V1 | PPBPF_PORT_NO_V2))
			fprintf(f, " versions %s", fl & PPBPF_PORT_NO_V1 ? "2" : "1");
		if (pg->pol.timeout_ms != PPBPF_TIMEOUT_DEFAULT_MS)
			fprintf(f, " timeout %u", pg->pol.timeout_ms);
		if (pg->pol.max_header)
			fprintf(f, " max-header 0x%x", pg->pol.max_header);
		if (fl & PPBPF_PORT_LOCAL_UID)
			fprintf(f, " local-uid %u", pg->pol.local_uid);
		fprintf(f, " # group %d\n", g);
	}
	n = ftell(f);
	fclose(f);
	CHECK(n > 0 && (size_t)n < cap);
	return (size_t)n;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	static char text[1 << 20], text2[1 << 20];
	char *copy;
	int rc, group = 0, lineno = 0;
	size_t n, n2;

	if (size > 8192)
		return 0;
	copy = malloc(size ? size : 1); /* exact size: ASan sees any over-read */
	memcpy(copy, data, size);
	rc = parse(copy, size, &whole);
	if (!rc)
		check_valid(&whole);
	/* Each line alone: an error there is an error of the file; a group is its line's. */
	for (size_t start = 0; start < size;) {
		const char *nl = memchr(copy + start, '\n', size - start);
		size_t len = nl ? (size_t)(nl - (copy + start)) + 1 : size - start;
		int line_rc = parse(copy + start, len, &single);

		lineno++;
		if (line_rc || len > PPBPF_CONFIG_LINE_MAX)
			CHECK(rc != 0);
		if (!rc) {
			CHECK(single.n_groups <= 1);
			if (single.n_groups) {
				CHECK(group < whole.n_groups);
				CHECK(same_group(&single.groups[0], &whole.groups[group]));
				CHECK(whole.groups[group].line == lineno);
				group++;
			}
		}
		start += len;
	}
	if (!rc) {
		CHECK(group == whole.n_groups);
		/* Written back and read again: the same policy; and that text is a fixed point. */
		n = write_config(&whole, text, sizeof(text));
		CHECK(parse(text, n, &again) == 0);
		CHECK(again.n_groups == whole.n_groups && again.tlv_cap == whole.tlv_cap &&
		      !strcmp(again.cgroup, whole.cgroup) && !strcmp(again.pin_dir, whole.pin_dir) &&
		      again.table_size == whole.table_size && again.sweep_ms == whole.sweep_ms &&
		      again.log_rate == whole.log_rate && again.keep == whole.keep && again.verbose == whole.verbose);
		for (int g = 0; g < whole.n_groups; g++)
			CHECK(same_group(&again.groups[g], &whole.groups[g]));
		n2 = write_config(&again, text2, sizeof(text2));
		CHECK(n2 == n && !memcmp(text, text2, n));
	}
	free(copy);
	return 0;
}
