// SPDX-License-Identifier: MIT
/*
 * Codec benchmark: median ns per header for the parser, next to baselines
 * measured in the same run (memcmp of the v2 signature, memcpy of each
 * header), and a count of heap allocations made while parsing.
 *
 * Each case runs ROUNDS timed rounds of ITERS parses; the table shows the
 * median round with the fastest and slowest. The input pointer goes through
 * an empty asm statement every iteration, so the compiler cannot hoist the
 * (pure, inlined) parse out of the loop.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <ppbpf/ppbpf.h>

#define ROUNDS 31
#define ITERS 200000

/* Counts malloc calls made by this process (glibc's allocator underneath). */
static unsigned long n_mallocs;
extern void *__libc_malloc(size_t size);
void *malloc(size_t size)
{
	n_mallocs++;
	return __libc_malloc(size);
}

struct bench_case {
	const char *name;
	__u8 buf[512];
	size_t len;
	int kind; /* what one iteration does */
};

enum { DO_PARSE, DO_MEMCMP_SIG, DO_MEMCPY, DO_CRC_HW, DO_CRC_SW };

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/* Keep v alive and opaque to the optimiser. */
#define SINK(v) __asm__ volatile("" : : "r"(v) : "memory")
#define LAUNDER(p) __asm__ volatile("" : "+r"(p))

static double one_round(const struct bench_case *c)
{
	static __u8 dst[512];
	struct ppbpf_hdr h;
	double t0 = now_ns();

	for (int i = 0; i < ITERS; i++) {
		const __u8 *p = c->buf;
		size_t n = c->len;

		LAUNDER(p);
		LAUNDER(n);
		switch (c->kind) {
		case DO_PARSE:
			SINK(ppbpf_parse(p, (__u32)n, &h));
			SINK(&h);
			break;
		case DO_MEMCMP_SIG:
			SINK(memcmp(p, PPBPF_V2_SIG, PPBPF_V2_SIG_LEN));
			break;
		case DO_MEMCPY:
			memcpy(dst, p, n);
			SINK(dst);
			break;
		case DO_CRC_HW:
			SINK(ppbpf_crc32c_hw(~0u, p, (__u32)n));
			break;
		default:
			SINK(ppbpf_crc32c_sw(~0u, p, (__u32)n));
		}
	}
	return (now_ns() - t0) / ITERS;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

struct stats {
	double median, min, max;
};

static struct stats measure(const struct bench_case *c)
{
	double r[ROUNDS];

	one_round(c); /* warm up caches and branch predictors */
	for (int i = 0; i < ROUNDS; i++)
		r[i] = one_round(c);
	qsort(r, ROUNDS, sizeof(r[0]), cmp_double);
	return (struct stats){ r[ROUNDS / 2], r[0], r[ROUNDS - 1] };
}

static void add_text(struct bench_case *c, const char *name, const char *text)
{
	c->name = name;
	c->len = strlen(text);
	memcpy(c->buf, text, c->len);
	c->kind = DO_PARSE;
}

static void add_built(struct bench_case *c, const char *name, const struct ppbpf_build *b)
{
	int n = ppbpf_build(b, c->buf, sizeof(c->buf));

	if (n < 0)
		abort();
	c->name = name;
	c->len = (size_t)n;
	c->kind = DO_PARSE;
}

/* The rows as JSON too, for scripts/bench.sh (file named by BENCH_CODEC_JSON). */
static FILE *json;

static void print_row(const char *name, size_t len, struct stats s, double base)
{
	static int rows;

	printf("%-44s %5zu %9.2f %8.2f %8.2f %8.2f\n", name, len, s.median, s.min, s.max, s.median / base);
	if (json)
		fprintf(json, "%s{\"case\":\"%s\",\"bytes\":%zu,\"median_ns\":%.3f,\"min_ns\":%.3f,\"max_ns\":%.3f,"
			      "\"vs_memcmp\":%.3f}", rows++ ? "," : "[", name, len, s.median, s.min, s.max, s.median / base);
}

int main(void)
{
	static const struct ppbpf_tlv tlvs[] = {
		{ PPBPF_TLV_ALPN, 2, (const __u8 *)"h2" },
		{ PPBPF_TLV_AUTHORITY, 16, (const __u8 *)"api.example.com." },
		{ PPBPF_TLV_UNIQUE_ID, 32, (const __u8 *)"0123456789abcdef0123456789abcdef" },
	};
	struct ppbpf_build b4 = { .version = 2, .command = PPBPF_CMD_PROXY, .family = PPBPF_FAM_TCP4,
				  .src_addr = { 192, 0, 2, 1 }, .dst_addr = { 198, 51, 100, 2 },
				  .src_port = 51000, .dst_port = 443 };
	struct ppbpf_build b6 = b4, bt = b4;
	struct bench_case cases[8] = {};
	struct ppbpf_hdr h;
	unsigned long mallocs;
	int n = 0;

	b6.family = PPBPF_FAM_TCP6;
	ppbpf_parse_ip(AF_INET6, "2001:db8:85a3::8a2e:370:7334", b6.src_addr);
	ppbpf_parse_ip(AF_INET6, "2001:db8::1", b6.dst_addr);
	bt.tlvs = tlvs;
	bt.n_tlvs = 3;
	bt.flags = PPBPF_BUILD_CRC32C;
	add_text(&cases[n++], "v1 TCP4", "PROXY TCP4 192.0.2.1 198.51.100.2 51000 443\r\n");
	add_text(&cases[n++], "v1 TCP4 longest", "PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n");
	add_text(&cases[n++], "v1 TCP6", "PROXY TCP6 2001:db8:85a3::8a2e:370:7334 2001:db8::1 51000 443\r\n");
	add_text(&cases[n++], "v1 TCP6 longest",
		 "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n");
	add_built(&cases[n++], "v2 TCP4", &b4);
	add_built(&cases[n++], "v2 TCP6", &b6);
	add_built(&cases[n++], "v2 TCP4 + ALPN, AUTHORITY, UNIQUE_ID, CRC32C", &bt);

	struct bench_case sig = { .name = "baseline: memcmp of the v2 signature", .len = 12, .kind = DO_MEMCMP_SIG };
	struct stats base;

	memcpy(sig.buf, PPBPF_V2_SIG, 12);
	if (getenv("BENCH_CODEC_JSON"))
		json = fopen(getenv("BENCH_CODEC_JSON"), "w");
	base = measure(&sig);
	printf("ppbpf codec benchmark: %d rounds x %d iterations, median per operation\n", ROUNDS, ITERS);
	printf("CRC32C: %s\n\n", ppbpf_crc32c_have_hw() ? "SSE4.2 instruction" : "portable table");
	printf("%-44s %5s %9s %8s %8s %8s\n", "case", "bytes", "median ns", "min", "max", "x memcmp");
	print_row(sig.name, sig.len, base, base.median);
	for (int i = 0; i < n; i++) {
		struct bench_case copy = cases[i];

		if (ppbpf_parse(cases[i].buf, (__u32)cases[i].len, &h) != (int)cases[i].len) {
			fprintf(stderr, "bench input '%s' does not parse\n", cases[i].name);
			return 1;
		}
		copy.kind = DO_MEMCPY;
		print_row(cases[i].name, cases[i].len, measure(&cases[i]), base.median);
		printf("  %-42s %5zu %9.2f\n", "baseline: memcpy of this header", copy.len, measure(&copy).median);
	}
	struct bench_case crc = cases[n - 1];

	crc.kind = DO_CRC_HW;
	printf("  %-42s %5zu %9.2f\n", "CRC32C alone, SSE4.2 (if present)", crc.len, measure(&crc).median);
	crc.kind = DO_CRC_SW;
	printf("  %-42s %5zu %9.2f\n", "CRC32C alone, portable table", crc.len, measure(&crc).median);

	mallocs = n_mallocs;
	for (int i = 0; i < n; i++)
		for (int k = 0; k < 1000; k++)
			SINK(ppbpf_parse(cases[i].buf, (__u32)cases[i].len, &h));
	printf("\nheap allocations during %d parses: %lu\n", n * 1000, n_mallocs - mallocs);
	if (json) {
		fputs("]\n", json);
		fclose(json);
	}
	return n_mallocs != mallocs;
}
