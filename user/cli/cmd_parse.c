// SPDX-License-Identifier: MIT
/* `ppbpf parse`: one header in, exactly one JSON object out. */
#include <sys/socket.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <ppbpf/ppbpf.h>
#include "cli.h"
#include "json.h"

/* Bytes of stdin read at most: a maximal v2 header and then some payload. */
#define PARSE_INPUT_MAX (PPBPF_V2_MAX_LEN + 4096)

static const char parse_usage[] =
	"Usage: ppbpf parse [--hex HEX] [--max BYTES]\n"
	"\n"
	"Parse one PROXY protocol header (v1 or v2) from the start of stdin, or of\n"
	"--hex, and print exactly one JSON object:\n"
	"  {\"status\":\"ok\",\"version\":2,\"command\":\"PROXY\",\"family\":\"TCP4\",\n"
	"   \"src_addr\":\"192.0.2.1\",\"dst_addr\":\"198.51.100.2\",\"src_port\":51000,\n"
	"   \"dst_port\":443,\"header_len\":28,\"tlvs\":[{\"type\":2,\"name\":\"AUTHORITY\",\n"
	"   \"hex\":\"...\",\"text\":\"...\"}]}\n"
	"  {\"status\":\"incomplete\",\"need\":N}      (at least N more bytes)\n"
	"  {\"status\":\"error\",\"error\":\"v1_bad_port\",\"message\":\"...\"}\n"
	"Address fields are omitted for families without addresses (UNSPEC, UNKNOWN,\n"
	"LOCAL). UNIX paths are strings, with '@' for an abstract name.\n"
	"\n";

static const char parse_more[] =
	"\n"
	"Exit status: 0 ok, 1 invalid header, 3 incomplete, 2 usage error.\n"
	"\n"
	"Examples:\n"
	"  printf 'PROXY TCP4 192.0.2.1 198.51.100.2 51000 443\\r\\n' | ppbpf parse\n"
	"  ppbpf build --family TCP6 --src-addr 2001:db8::1 --dst-addr 2001:db8::2 \\\n"
	"      --src-port 1 --dst-port 2 --raw | ppbpf parse\n"
	"  ppbpf parse --hex 0d0a0d0a000d0a515549540a2000\n";

/* A string field, or nothing if the bytes are not printable ASCII. */
static void text_if_printable(struct json *j, const char *key, const __u8 *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (v[i] < 0x20 || v[i] >= 0x7f)
			return;
	json_key(j, key);
	json_strn(j, v, n);
}

/* A list of TLVs as [{"type":..,"name":..,"hex":..,...}]. */
static void print_tlv_list(struct json *j, struct ppbpf_tlv_iter *it, bool ssl_subs);

static void print_tlv_details(struct json *j, const struct ppbpf_tlv *t)
{
	struct ppbpf_tlv_iter sub;
	char vpce[256];
	__u32 u32;
	__u64 u64;
	__u8 client;

	switch (t->type) {
	case PPBPF_TLV_SSL:
		if (ppbpf_ssl_head(t, &client, &u32) || ppbpf_ssl_iter_init(&sub, t))
			return;
		json_kv_int(j, "client", client);
		json_kv_int(j, "verify", u32);
		json_key(j, "sub");
		print_tlv_list(j, &sub, true);
		return;
	case PPBPF_TLV_AWS:
		if (ppbpf_aws_vpce_id(t, vpce, sizeof(vpce)) >= 0)
			json_kv_str(j, "vpce_id", vpce);
		return;
	case PPBPF_TLV_AZURE:
		if (!ppbpf_azure_link_id(t, &u32))
			json_kv_int(j, "link_id", u32);
		return;
	case PPBPF_TLV_GCP:
		/* a string: 64-bit ids do not survive JSON readers that use doubles */
		if (!ppbpf_gcp_psc_id(t, &u64)) {
			char txt[24];

			snprintf(txt, sizeof(txt), "%llu", (unsigned long long)u64);
			json_kv_str(j, "psc_connection_id", txt);
		}
		return;
	case PPBPF_TLV_CRC32C:
	case PPBPF_TLV_NOOP:
		return;
	default:
		text_if_printable(j, "text", t->value, t->len);
	}
}

static void print_tlv_list(struct json *j, struct ppbpf_tlv_iter *it, bool ssl_subs)
{
	struct ppbpf_tlv t;

	json_arr_begin(j);
	while (ppbpf_tlv_next(it, &t) > 0) {
		const char *name = ssl_subs ? ppbpf_ssl_sub_name(t.type) : ppbpf_tlv_name(t.type);

		json_obj_begin(j);
		json_kv_int(j, "type", t.type);
		if (name)
			json_kv_str(j, "name", name);
		json_key(j, "hex");
		json_hex(j, t.value, t.len);
		if (ssl_subs)
			text_if_printable(j, "text", t.value, t.len);
		else
			print_tlv_details(j, &t);
		json_obj_end(j);
	}
	json_arr_end(j);
}

/* A 108-byte AF_UNIX path field: up to its NUL, '@' marking an abstract name. */
static void print_unix_path(struct json *j, const char *key, const __u8 *p)
{
	char txt[PPBPF_UNIX_PATH_LEN + 1];
	size_t n = 0, i = 0;

	if (p[0] == '\0' && p[1] != '\0') {
		txt[n++] = '@';
		i = 1;
	}
	for (; i < PPBPF_UNIX_PATH_LEN && p[i]; i++)
		txt[n++] = (char)p[i];
	json_key(j, key);
	json_strn(j, txt, n);
}

static void print_addrs(struct json *j, const __u8 *buf, const struct ppbpf_hdr *h)
{
	int af = ppbpf_family_af(h->family);
	char txt[PPBPF_ADDRSTRLEN];

	if (af == AF_UNIX) {
		json_kv_str(j, "transport", h->family == PPBPF_FAM_UNIX_STREAM ? "STREAM" : "DGRAM");
		print_unix_path(j, "src_addr", buf + h->addr_off);
		print_unix_path(j, "dst_addr", buf + h->addr_off + PPBPF_UNIX_PATH_LEN);
		return;
	}
	if (af != AF_INET && af != AF_INET6)
		return;
	ppbpf_format_ip(af, h->src_addr, txt, sizeof(txt));
	json_kv_str(j, "src_addr", txt);
	ppbpf_format_ip(af, h->dst_addr, txt, sizeof(txt));
	json_kv_str(j, "dst_addr", txt);
	json_kv_int(j, "src_port", h->src_port);
	json_kv_int(j, "dst_port", h->dst_port);
}

static int print_result(const __u8 *buf, int rc, const struct ppbpf_hdr *h)
{
	struct json j;

	json_init(&j, stdout);
	json_obj_begin(&j);
	if (rc == PPBPF_E_INCOMPLETE) {
		json_kv_str(&j, "status", "incomplete");
		json_kv_int(&j, "need", h->need);
	} else if (rc < 0) {
		json_kv_str(&j, "status", "error");
		json_kv_str(&j, "error", ppbpf_errname(rc));
		json_kv_str(&j, "message", ppbpf_strerror(rc));
	} else {
		struct ppbpf_tlv_iter it;

		json_kv_str(&j, "status", "ok");
		json_kv_int(&j, "version", h->version);
		json_kv_str(&j, "command", h->command == PPBPF_CMD_PROXY ? "PROXY" : "LOCAL");
		json_kv_str(&j, "family", ppbpf_family_name(h->family));
		print_addrs(&j, buf, h);
		json_kv_int(&j, "header_len", h->header_len);
		json_key(&j, "tlvs");
		ppbpf_tlv_iter_init(&it, buf, h);
		print_tlv_list(&j, &it, false);
	}
	json_obj_end(&j);
	json_end(&j);
	if (rc == PPBPF_E_INCOMPLETE)
		return EXIT_INCOMPLETE;
	return rc < 0 ? EXIT_FAIL : EXIT_OK;
}

/* All of stdin, up to cap bytes. Returns the count or -1. */
static long read_stdin(unsigned char *buf, size_t cap)
{
	size_t n = 0;

	while (n < cap) {
		ssize_t r = read(STDIN_FILENO, buf + n, cap - n);

		if (r < 0)
			return -1;
		if (r == 0)
			break;
		n += (size_t)r;
	}
	return (long)n;
}

/* What parse is told. */
struct parse_args {
	const char *hex;        /* NULL: stdin */
	unsigned long long max; /* longest header accepted */
};

static const struct cli_option parse_options[] = {
	{ .name = "hex", .val = 'x', .metavar = "HEX",
	  .help = "parse these bytes (whitespace and ':' between bytes allowed)" },
	{ .name = "max", .val = 'm', .metavar = "BYTES", .help = "refuse headers longer than this (error \"too_large\")" },
	CLI_HELP_OPTION,
};

static int parse_option(void *ctx, const struct cli_option *o, const char *arg)
{
	struct parse_args *p = ctx;

	if (o->val == 'x')
		p->hex = arg;
	else if (parse_uint(arg, PPBPF_V2_MAX_LEN, &p->max))
		return usage_error("parse", "--max: not a length up to %d: '%s'", PPBPF_V2_MAX_LEN, arg);
	return 0;
}

static const struct cli_command parse_command = {
	.name = "parse", .opts = parse_options, .n_opts = ARRAY_SIZE(parse_options),
	.usage = parse_usage, .more = parse_more, .apply = parse_option,
};

int cmd_parse(int argc, char **argv)
{
	struct parse_args p = { .max = PPBPF_V2_MAX_LEN };
	struct ppbpf_hdr h;
	unsigned char *buf;
	long len;
	int rc = cli_parse(&parse_command, argc, argv, &p);

	if (rc)
		return rc;
	buf = malloc(PARSE_INPUT_MAX);
	if (!buf) {
		fprintf(stderr, "ppbpf parse: out of memory\n");
		return EXIT_FAIL;
	}
	len = p.hex ? hex_decode(p.hex, buf, PARSE_INPUT_MAX) : read_stdin(buf, PARSE_INPUT_MAX);
	if (len < 0) {
		free(buf);
		if (p.hex)
			return usage_error("parse", "--hex: not a sequence of hex bytes");
		perror("ppbpf parse: failed to read stdin");
		return EXIT_FAIL;
	}
	rc = ppbpf_parse_max(buf, (__u32)len, (__u32)p.max, &h);
	rc = print_result(buf, rc, &h);
	free(buf);
	return rc;
}
