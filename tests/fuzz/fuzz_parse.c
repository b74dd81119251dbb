// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for the shared parser. Besides "no crash, no over-read"
 * (ASan sees the exact-size copy), it checks the contract's invariants:
 *  - an accepted header is within the input, and every proper prefix of it
 *    is incomplete with an honest "need";
 *  - an error never turns into something else when fewer bytes are given
 *    (only into "incomplete");
 *  - bytes after the header change nothing;
 *  - the TLV list of an accepted v2 header iterates cleanly;
 *  - a v2 PROXY header with a known family, rebuilt from what was parsed,
 *    is byte-for-byte the input.
 */
#include <stdlib.h>
#include <string.h>
#include <ppbpf/ppbpf.h>

#define CHECK(cond)                                                                  \
	do {                                                                         \
		if (!(cond)) {                                                       \
			__builtin_printf("invariant failed: %s (line %d)\n", #cond, __LINE__); \
			abort();                                                     \
		}                                                                    \
	} while (0)

static void check_prefixes(const __u8 *data, size_t size, int rc)
{
	/* Every 7th prefix plus the last few: enough to catch regressions, cheap per input. */
	for (size_t k = 0; k < size; k += (k + 8 < size ? 7 : 1)) {
		struct ppbpf_hdr h;
		int r = ppbpf_parse(data, (__u32)k, &h);

		if (rc > 0) {
			CHECK(r == PPBPF_E_INCOMPLETE || k >= (size_t)rc);
			if (k < (size_t)rc)
				CHECK(h.need >= 1 && k + h.need <= (size_t)rc);
		} else {
			CHECK(r == PPBPF_E_INCOMPLETE || r == rc);
		}
	}
}

static void check_tlvs(const __u8 *data, const struct ppbpf_hdr *h)
{
	struct ppbpf_tlv_iter it;
	struct ppbpf_tlv t;
	int r;

	ppbpf_tlv_iter_init(&it, data, h);
	while ((r = ppbpf_tlv_next(&it, &t)) > 0) {
		struct ppbpf_tlv_iter sub;
		struct ppbpf_tlv s;

		if (t.type == PPBPF_TLV_SSL) {
			CHECK(ppbpf_ssl_iter_init(&sub, &t) == 0);
			while ((r = ppbpf_tlv_next(&sub, &s)) > 0)
				;
			CHECK(r == 0);
		}
	}
	CHECK(r == 0);
}

/* Rebuild a v2 PROXY header of a TCP/UDP family and compare with the input. */
static void check_rebuild(const __u8 *data, const struct ppbpf_hdr *h)
{
	static struct ppbpf_tlv tlvs[65536 / 3];
	static __u8 out[PPBPF_V2_MAX_LEN];
	struct ppbpf_build b = { .version = 2, .command = h->command, .family = h->family };
	struct ppbpf_tlv_iter it;
	unsigned int n = 0;
	int len;

	memcpy(b.src_addr, h->src_addr, 16);
	memcpy(b.dst_addr, h->dst_addr, 16);
	b.src_port = h->src_port;
	b.dst_port = h->dst_port;
	ppbpf_tlv_iter_init(&it, data, h);
	while (ppbpf_tlv_next(&it, &tlvs[n]) > 0)
		n++;
	b.tlvs = tlvs;
	b.n_tlvs = n;
	len = ppbpf_build(&b, out, sizeof(out));
	CHECK(len == (int)h->header_len);
	CHECK(memcmp(out, data, (size_t)len) == 0);
}

int LLVMFuzzerTestOneInput(const __u8 *data, size_t size)
{
	struct ppbpf_hdr h, h2;
	__u8 *copy;
	int rc;

	if (size > PPBPF_V2_MAX_LEN + 64)
		return 0;
	copy = malloc(size ? size : 1); /* exact size: ASan reports any over-read */
	memcpy(copy, data, size);
	rc = ppbpf_parse(copy, (__u32)size, &h);
	CHECK(rc != 0);
	check_prefixes(copy, size, rc);
	if (rc > 0) {
		CHECK((size_t)rc <= size && h.header_len == (__u32)rc);
		CHECK(ppbpf_parse(copy, (__u32)rc, &h2) == rc);
		CHECK(memcmp(&h, &h2, sizeof(h)) == 0);
		if (h.version == 2) {
			CHECK(h.tlv_off + h.tlv_len == h.header_len);
			check_tlvs(copy, &h);
			if (h.command == PPBPF_CMD_PROXY && h.family >= PPBPF_FAM_TCP4 && h.family <= PPBPF_FAM_UDP6 &&
			    h.tlv_off == PPBPF_V2_FIXED_LEN + (h.family == PPBPF_FAM_TCP4 || h.family == PPBPF_FAM_UDP4 ? 12 : 36))
				check_rebuild(copy, &h);
		}
	} else if (rc == PPBPF_E_INCOMPLETE) {
		CHECK(h.need >= 1);
	} else {
		CHECK(ppbpf_errname(rc) != NULL);
	}
	free(copy);
	return 0;
}
