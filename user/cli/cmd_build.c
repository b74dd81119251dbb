// SPDX-License-Identifier: MIT
/* `ppbpf build`: the fields of `ppbpf parse`'s JSON in, a header out. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <ppbpf/ppbpf.h>
#include "cli.h"

/* Most TLVs (and SSL sub-TLVs) one command line may give. */
#define BUILD_MAX_TLVS 64
/* Room for all TLV values of one header. */
#define BUILD_ARENA (2 * PPBPF_V2_MAX_LEN)

static const char build_usage[] =
	"Usage: ppbpf build [OPTIONS]\n"
	"\n"
	"Write a PROXY protocol header, as hex (default) or raw bytes. The options are\n"
	"the fields `ppbpf parse` prints.\n"
	"\n";

static const char build_more[] =
	"\n"
	"Exit status: 0 ok, 2 usage error or impossible combination.\n"
	"\n"
	"Examples:\n"
	"  ppbpf build --version 1 --src-addr 192.0.2.1 --dst-addr 198.51.100.2 \\\n"
	"      --src-port 51000 --dst-port 443\n"
	"  ppbpf build --src-addr 2001:db8::1 --dst-addr 2001:db8::2 --src-port 1 \\\n"
	"      --dst-port 2 --tlv-text AUTHORITY:example.com --crc32c --raw | ppbpf parse\n"
	"  ppbpf build --command LOCAL\n";

/* The options without a short letter. */
enum { OPT_TRANSPORT = CLI_LONG_ONLY, OPT_AWS_VPCE_ID, OPT_AZURE_LINK_ID, OPT_GCP_PSC_ID, OPT_SSL, OPT_SSL_SUB,
       OPT_SSL_SUB_TEXT };

/* Everything the command line describes, and the storage behind it. */
struct build_args {
	struct ppbpf_build b;
	const char *src, *dst;
	int family; /* -1: infer */
	int dgram;
	struct ppbpf_tlv tlvs[BUILD_MAX_TLVS];
	unsigned int n_tlvs;
	struct ppbpf_tlv subs[BUILD_MAX_TLVS];
	unsigned int n_subs;
	int ssl; /* --ssl given */
	__u8 ssl_client;
	__u32 ssl_verify;
	__u8 arena[BUILD_ARENA];
	size_t used;
	int raw;
};

/* A TLV type from a number or a name; -1 if neither. */
static int tlv_type(const char *s, size_t n, int ssl_sub)
{
	unsigned long long v;
	char tmp[32];

	if (n >= sizeof(tmp))
		return -1;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	if (!parse_uint(tmp, 255, &v))
		return (int)v;
	for (int t = 0; t < 256; t++) {
		const char *name = ssl_sub ? ppbpf_ssl_sub_name((__u8)t) : ppbpf_tlv_name((__u8)t);

		if (name && !strcasecmp(name, tmp))
			return t;
	}
	return -1;
}

/* Room in the arena for n more value bytes, or NULL. */
static __u8 *arena_take(struct build_args *a, size_t n)
{
	__u8 *p = a->arena + a->used;

	if (n > sizeof(a->arena) - a->used)
		return NULL;
	a->used += n;
	return p;
}

/* Add a TLV of `type` with a copy of value. Returns 0 or an error message. */
static const char *add_tlv(struct build_args *a, int ssl_sub, int type, const void *value, size_t n)
{
	struct ppbpf_tlv *list = ssl_sub ? a->subs : a->tlvs;
	unsigned int *count = ssl_sub ? &a->n_subs : &a->n_tlvs;
	__u8 *copy;

	if (*count >= BUILD_MAX_TLVS)
		return "too many TLVs";
	if (n > 65535 || !(copy = arena_take(a, n)))
		return "TLV value too long";
	memcpy(copy, value, n);
	list[(*count)++] = (struct ppbpf_tlv){ .type = (__u8)type, .len = (__u16)n, .value = copy };
	return NULL;
}

/* "TYPE:VALUE" where VALUE is hex (text = 0) or text. */
static const char *add_tlv_arg(struct build_args *a, int ssl_sub, int text, const char *arg)
{
	const char *colon = strchr(arg, ':');
	unsigned char *tmp;
	const char *err;
	long n;
	int type;

	if (!colon)
		return "expected TYPE:VALUE";
	type = tlv_type(arg, (size_t)(colon - arg), ssl_sub);
	if (type < 0)
		return "unknown TLV type";
	if (text)
		return add_tlv(a, ssl_sub, type, colon + 1, strlen(colon + 1));
	tmp = malloc(65536);
	if (!tmp)
		return "out of memory";
	n = hex_decode(colon + 1, tmp, 65536);
	err = n < 0 ? "value is not hex bytes" : add_tlv(a, ssl_sub, type, tmp, (size_t)n);
	free(tmp);
	return err;
}

static int family_from_name(const char *s)
{
	for (int f = PPBPF_FAM_UNSPEC; f <= PPBPF_FAM_UNKNOWN; f++)
		if (ppbpf_family_name(f) && !strcasecmp(ppbpf_family_name(f), s))
			return f;
	return -1;
}

/* The address or UNIX path for one side. Returns 0 or an error message. */
static const char *set_endpoint(struct build_args *a, const char *text, __u8 *addr, __u8 *path)
{
	int af = ppbpf_family_af(a->b.family);
	size_t n;

	if (!text)
		return af == AF_UNSPEC ? NULL : "this family needs --src-addr and --dst-addr";
	if (af == AF_UNIX) {
		n = strlen(text);
		if (n > PPBPF_UNIX_PATH_LEN)
			return "UNIX path longer than 108 bytes";
		memcpy(path, text, n);
		if (text[0] == '@') /* abstract socket: the name follows a NUL */
			path[0] = '\0';
		return NULL;
	}
	if (af == AF_UNSPEC)
		return "this family carries no addresses";
	return ppbpf_parse_ip(af, text, addr) ? "not an address of the family" : NULL;
}

static int resolve_family(struct build_args *a)
{
	__u8 tmp[16];

	if (a->family == PPBPF_FAM_UNIX_STREAM)
		a->family = a->dgram ? PPBPF_FAM_UNIX_DGRAM : PPBPF_FAM_UNIX_STREAM;
	if (a->family >= 0)
		return a->family;
	if (a->src && !ppbpf_parse_ip(AF_INET, a->src, tmp))
		return PPBPF_FAM_TCP4;
	if (a->src && !ppbpf_parse_ip(AF_INET6, a->src, tmp))
		return PPBPF_FAM_TCP6;
	if (a->src)
		return -1;
	return a->b.version == 1 ? PPBPF_FAM_UNKNOWN : PPBPF_FAM_UNSPEC;
}

/* Cloud conveniences: a subtype byte and/or fixed-size value. */
static const char *add_cloud_tlv(struct build_args *a, int opt, const char *arg)
{
	unsigned long long v;
	__u8 val[256];

	if (opt == OPT_AWS_VPCE_ID) {
		size_t n = strlen(arg);

		if (n + 1 > sizeof(val))
			return "id too long";
		val[0] = PPBPF_AWS_VPCE_ID;
		memcpy(val + 1, arg, n);
		return add_tlv(a, 0, PPBPF_TLV_AWS, val, n + 1);
	}
	if (parse_uint(arg, opt == OPT_AZURE_LINK_ID ? 0xffffffffull : ~0ull, &v))
		return "not a number in range";
	if (opt == OPT_AZURE_LINK_ID) {
		val[0] = PPBPF_AZURE_LINKID;
		for (int i = 0; i < 4; i++) /* little endian, as Azure sends it */
			val[1 + i] = (__u8)(v >> (8 * i));
		return add_tlv(a, 0, PPBPF_TLV_AZURE, val, 5);
	}
	for (int i = 0; i < 8; i++) /* big endian */
		val[i] = (__u8)(v >> (56 - 8 * i));
	return add_tlv(a, 0, PPBPF_TLV_GCP, val, 8);
}

static const char *set_ssl(struct build_args *a, const char *arg)
{
	unsigned long long client, verify;
	char tmp[64];
	char *comma;

	if (strlen(arg) >= sizeof(tmp))
		return "expected CLIENT,VERIFY";
	strcpy(tmp, arg);
	comma = strchr(tmp, ',');
	if (!comma)
		return "expected CLIENT,VERIFY";
	*comma = '\0';
	if (parse_uint(tmp, 255, &client) || parse_uint(comma + 1, 0xffffffffull, &verify))
		return "CLIENT must be 0..255 and VERIFY 0..4294967295";
	a->ssl = 1;
	a->ssl_client = (__u8)client;
	a->ssl_verify = (__u32)verify;
	return NULL;
}

static const struct cli_option build_options[] = {
	{ .name = "version", .val = 'v', .metavar = "1|2", .help = "protocol version (default 2)" },
	{ .name = "command", .val = 'c', .metavar = "PROXY|LOCAL", .help = "v2 command (default PROXY)" },
	{ .name = "family", .val = 'f', .metavar = "FAMILY",
	  .help = "TCP4 TCP6 UDP4 UDP6 UNIX UNSPEC UNKNOWN; by default\n"
		  "TCP4 or TCP6 from --src-addr, else UNSPEC (v2) or\n"
		  "UNKNOWN (v1)" },
	{ .name = "transport", .val = OPT_TRANSPORT, .metavar = "STREAM|DGRAM", .help = "for UNIX (default STREAM)" },
	{ .name = "src-addr", .val = 's', .metavar = "ADDR", .help = "source address, or UNIX path ('@name' = abstract)" },
	{ .name = "dst-addr", .val = 'd', .metavar = "ADDR", .help = "destination address or UNIX path" },
	{ .name = "src-port", .val = 'S', .metavar = "PORT", .help = "source port" },
	{ .name = "dst-port", .val = 'D', .metavar = "PORT", .help = "destination port" },
	{ .name = "tlv", .val = 't', .metavar = "TYPE:HEX",
	  .help = "a TLV; TYPE is a number or a name (ALPN, AUTHORITY,\n"
		  "NOOP, UNIQUE_ID, NETNS, ...); repeatable, kept in order" },
	{ .name = "tlv-text", .val = 'T', .metavar = "TYPE:TEXT", .help = "a TLV whose value is TEXT" },
	{ .name = "aws-vpce-id", .val = OPT_AWS_VPCE_ID, .metavar = "ID", .help = "AWS TLV (0xEA) with a VPC endpoint id" },
	{ .name = "azure-link-id", .val = OPT_AZURE_LINK_ID, .metavar = "N",
	  .help = "Azure TLV (0xEE) with a private endpoint link id" },
	{ .name = "gcp-psc-id", .val = OPT_GCP_PSC_ID, .metavar = "N", .help = "GCP TLV (0xE0) with a PSC connection id" },
	{ .name = "ssl", .val = OPT_SSL, .metavar = "CLIENT,VERIFY",
	  .help = "an SSL TLV (0x20) with these client bits and verify" },
	{ .name = "ssl-sub", .val = OPT_SSL_SUB, .metavar = "TYPE:HEX",
	  .help = "an SSL sub-TLV; TYPE a number or VERSION, CN, CIPHER,\n"
		  "SIG_ALG, KEY_ALG, GROUP, SIG_SCHEME, CLIENT_CERT" },
	{ .name = "ssl-sub-text", .val = OPT_SSL_SUB_TEXT, .metavar = "TYPE:TEXT",
	  .help = "an SSL sub-TLV whose value is TEXT" },
	{ .name = "crc32c", .val = 'C', .help = "append a CRC32C TLV over the whole header" },
	{ .name = "raw", .val = 'r', .help = "write raw bytes instead of hex" },
	CLI_HELP_OPTION,
};

/* One option's value into a (the struct build_args ctx). 0, or EXIT_USAGE after reporting. */
static int build_option(void *ctx, const struct cli_option *o, const char *arg)
{
	struct build_args *a = ctx;
	unsigned long long v;
	const char *err = NULL;

	switch (o->val) {
	case 'v':
		if (parse_uint(arg, 2, &v) || v < 1)
			err = "must be 1 or 2";
		a->b.version = (__u8)v;
		break;
	case 'c':
		if (!strcasecmp(arg, "PROXY"))
			a->b.command = PPBPF_CMD_PROXY;
		else if (!strcasecmp(arg, "LOCAL"))
			a->b.command = PPBPF_CMD_LOCAL;
		else
			err = "must be PROXY or LOCAL";
		break;
	case 'f':
		a->family = family_from_name(arg);
		if (a->family < 0)
			err = "unknown family";
		break;
	case OPT_TRANSPORT:
		if (!strcasecmp(arg, "STREAM") || !strcasecmp(arg, "DGRAM"))
			a->dgram = !strcasecmp(arg, "DGRAM");
		else
			err = "must be STREAM or DGRAM";
		break;
	case 's':
		a->src = arg;
		break;
	case 'd':
		a->dst = arg;
		break;
	case 'S':
	case 'D':
		if (parse_uint(arg, 65535, &v))
			err = "not a port 0..65535";
		*(o->val == 'S' ? &a->b.src_port : &a->b.dst_port) = (__u16)v;
		break;
	case 't':
	case 'T':
		err = add_tlv_arg(a, 0, o->val == 'T', arg);
		break;
	case OPT_SSL_SUB:
	case OPT_SSL_SUB_TEXT:
		err = add_tlv_arg(a, 1, o->val == OPT_SSL_SUB_TEXT, arg);
		break;
	case OPT_AWS_VPCE_ID:
	case OPT_AZURE_LINK_ID:
	case OPT_GCP_PSC_ID:
		err = add_cloud_tlv(a, o->val, arg);
		break;
	case OPT_SSL:
		err = set_ssl(a, arg);
		break;
	case 'C':
		a->b.flags |= PPBPF_BUILD_CRC32C;
		break;
	case 'r':
		a->raw = 1;
		break;
	}
	if (err)
		return usage_error("build", "--%s '%s': %s", o->name, arg ? arg : "", err);
	return 0;
}

static const struct cli_command build_command = {
	.name = "build", .opts = build_options, .n_opts = ARRAY_SIZE(build_options),
	.usage = build_usage, .more = build_more, .apply = build_option,
};

/* Turn the parsed arguments into a complete struct ppbpf_build. */
static int finish_args(struct build_args *a)
{
	const char *err;
	int fam = resolve_family(a);

	if (fam < 0)
		return usage_error("build", "--src-addr '%s' is neither IPv4 nor IPv6", a->src);
	a->b.family = (__u8)fam;
	err = set_endpoint(a, a->src, a->b.src_addr, a->b.src_path);
	if (err)
		return usage_error("build", "source: %s", err);
	err = set_endpoint(a, a->dst, a->b.dst_addr, a->b.dst_path);
	if (err)
		return usage_error("build", "destination: %s", err);
	if (a->ssl || a->n_subs) {
		__u8 *val = a->arena + a->used;
		int n = ppbpf_build_ssl(a->ssl_client, a->ssl_verify, a->subs, a->n_subs, val,
					sizeof(a->arena) - a->used);

		if (n < 0 || !arena_take(a, (size_t)n))
			return usage_error("build", "SSL TLV too long");
		err = add_tlv(a, 0, PPBPF_TLV_SSL, val, (size_t)n);
		if (err)
			return usage_error("build", "%s", err);
	}
	a->b.tlvs = a->tlvs;
	a->b.n_tlvs = a->n_tlvs;
	return 0;
}

static int write_all(const unsigned char *p, size_t n)
{
	while (n) {
		ssize_t w = write(STDOUT_FILENO, p, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int emit(const unsigned char *hdr, size_t n, int raw)
{
	if (!raw) {
		for (size_t i = 0; i < n; i++)
			printf("%02x", hdr[i]);
		putchar('\n');
		return fflush(stdout) ? -1 : 0;
	}
	return write_all(hdr, n);
}

int cmd_build(int argc, char **argv)
{
	struct build_args *a = calloc(1, sizeof(*a));
	unsigned char *hdr = malloc(PPBPF_V2_MAX_LEN + 1);
	int rc, n;

	if (!a || !hdr) {
		fprintf(stderr, "ppbpf build: out of memory\n");
		rc = EXIT_FAIL;
		goto cleanup;
	}
	a->b.version = 2;
	a->b.command = PPBPF_CMD_PROXY;
	a->family = -1;
	rc = cli_parse(&build_command, argc, argv, a);
	if (rc)
		goto cleanup;
	rc = finish_args(a);
	if (rc)
		goto cleanup;
	n = ppbpf_build(&a->b, hdr, PPBPF_V2_MAX_LEN + 1);
	if (n < 0) {
		rc = usage_error("build", "failed to build: %s",
				 n == -EINVAL ? "this version cannot carry these fields" : strerror(-n));
		goto cleanup;
	}
	rc = EXIT_OK;
	if (emit(hdr, (size_t)n, a->raw)) {
		perror("ppbpf build: failed to write");
		rc = EXIT_FAIL;
	}
cleanup:
	free(hdr);
	free(a);
	return rc;
}
