// SPDX-License-Identifier: MIT
/* Names and sentences for ppbpf_parse() status codes. */
#include <ppbpf/ppbpf.h>

struct status_text {
	const char *name;
	const char *text;
};

/* Indexed by -status. Names are a stable contract (CLI JSON, logs). */
static const struct status_text status_texts[] = {
	[0] = { "ok", "success" },
	[-PPBPF_E_INCOMPLETE] = { "incomplete", "header incomplete: more bytes needed" },
	[-PPBPF_E_NOT_PROXY] = { "not_proxy", "not a PROXY protocol header" },
	[-PPBPF_E_TOO_LARGE] = { "too_large", "header longer than the configured maximum" },
	[-PPBPF_E_V1_TOO_LONG] = { "v1_too_long", "v1: no CRLF within 107 bytes" },
	[-PPBPF_E_V1_PROTO] = { "v1_bad_proto", "v1: protocol is not TCP4, TCP6 or UNKNOWN" },
	[-PPBPF_E_V1_SYNTAX] = { "v1_syntax", "v1: missing field or not exactly one space between fields" },
	[-PPBPF_E_V1_CRLF] = { "v1_bad_crlf", "v1: lone CR or LF; the line must end with CRLF" },
	[-PPBPF_E_V1_ADDR] = { "v1_bad_addr", "v1: address malformed or not of the announced family" },
	[-PPBPF_E_V1_PORT] = { "v1_bad_port", "v1: port malformed, with a leading zero, or above 65535" },
	[-PPBPF_E_V2_VERSION] = { "v2_bad_version", "v2: version is not 2" },
	[-PPBPF_E_V2_COMMAND] = { "v2_bad_command", "v2: command is neither LOCAL nor PROXY" },
	[-PPBPF_E_V2_FAMILY] = { "v2_bad_family", "v2: address family or transport out of range" },
	[-PPBPF_E_V2_ADDR_LEN] = { "v2_short_addr", "v2: length too short for the family's addresses" },
	[-PPBPF_E_TLV_TRUNCATED] = { "tlv_truncated", "v2: a TLV runs past the end of the header" },
	[-PPBPF_E_CRC32C_LEN] = { "crc32c_bad_len", "v2: CRC32C TLV is not exactly 4 bytes" },
	[-PPBPF_E_CRC32C_DUP] = { "crc32c_duplicate", "v2: more than one CRC32C TLV" },
	[-PPBPF_E_CRC32C] = { "crc32c_mismatch", "v2: CRC32C checksum does not match the header" },
	[-PPBPF_E_UNIQUE_ID_LEN] = { "unique_id_too_long", "v2: UNIQUE_ID TLV longer than 128 bytes" },
	[-PPBPF_E_SSL] = { "ssl_malformed", "v2: SSL TLV shorter than 5 bytes or with a truncated sub-TLV" },
};

/* Rejections by the kernel side, reported in ppbpf_info.error beside parser statuses. */
static const struct status_text kernel_texts[] = {
	[-PPBPF_E_NO_ROOM - 32] = { "no_room", "no room to track the connection (a kernel map was full)" },
	[-PPBPF_E_VERSION - 32] = { "version_refused", "a header version the port does not accept" },
	[-PPBPF_E_TIMEOUT - 32] = { "timeout", "the header was not complete within the port's timeout" },
	[-PPBPF_E_UNTRUSTED - 32] = { "untrusted", "an untrusted peer on a port that rejects them" },
	[-PPBPF_E_CHANGED - 32] = { "changed", "a resent segment changed header bytes already taken in" },
	[-PPBPF_E_UNSHIFTED - 32] = { "unshifted", "a transparent port's connection whose handshake tc did not see" },
	[-PPBPF_E_SOCKMAP - 32] = { "sockmap", "a transparent port's socket put in a sockmap, whose receive path corrupts streams" },
};

static const struct status_text *status_lookup(int status)
{
	if (status <= PPBPF_E_NO_ROOM && status >= PPBPF_E_KERNEL_LAST)
		return &kernel_texts[-status - 32];
	if (status > 0)
		status = 0; /* a header length */
	if (status < PPBPF_E_LAST)
		return NULL;
	return &status_texts[-status];
}

const char *ppbpf_strerror(int status)
{
	const struct status_text *t = status_lookup(status);

	return t ? t->text : "unknown status";
}

const char *ppbpf_errname(int status)
{
	const struct status_text *t = status_lookup(status);

	return t ? t->name : NULL;
}
