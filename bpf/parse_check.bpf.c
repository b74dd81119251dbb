/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * Runs the shared parser (include/ppbpf/parse.h) inside the kernel, so tests
 * can prove it passes the verifier and answers exactly as in userspace.
 * Userspace writes input/input_len/max_len, runs the program with
 * BPF_PROG_TEST_RUN, and reads rc and hdr.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <ppbpf/parse.h>

/* Bytes to parse; the slack keeps masked fixed-size reads inside the map value. */
struct ppbpf_bpf_buf input;
/* How many bytes of input are valid. */
__u32 input_len;
/* Largest header to accept. */
__u32 max_len;
/* The parser's return value. */
int rc;
/* The parsed header. */
struct ppbpf_hdr hdr;

SEC("syscall")
int parse_check(void *ctx __attribute__((unused)))
{
	rc = ppbpf_parse_max(&input, input_len, max_len, &hdr);
	return 0;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
