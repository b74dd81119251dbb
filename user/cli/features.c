// SPDX-License-Identifier: MIT
/*
 * Feature probing: each thing ppbpf uses is looked for in the running kernel
 * before the programs load, so that a kernel that lacks one gets one clear
 * line, not a verifier log. Program and map types and helpers are probed by
 * loading a tiny program (libbpf); kfuncs, attach types and iterators are
 * looked up in the kernel's BTF; the BTF itself, bpffs and a cgroup2 mount
 * are looked for on the host.
 */
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include "features.h"
#include "loader.h"

/* How a feature is looked for. */
enum probe_kind {
	PROBE_PROG, PROBE_MAP, PROBE_HELPER, PROBE_BTF_STRUCT, PROBE_BTF_ENUMERATOR, PROBE_KFUNC,
	PROBE_VMLINUX_BTF, /* /sys/kernel/btf/vmlinux: CO-RE relocations, and the BTF probes above */
	PROBE_BPFFS,       /* the bpf filesystem, for the pins */
	PROBE_CGROUP2,     /* a cgroup2 mount, to attach to */
};

struct probe {
	struct feature f;
	enum probe_kind kind;
	int type;         /* PROBE_PROG, PROBE_HELPER: the program type; PROBE_MAP: the map type */
	int helper;       /* PROBE_HELPER: the helper id */
	const char *btf;  /* PROBE_BTF_*, PROBE_KFUNC: the name in the kernel's BTF */
};

/* Reset rejected connections itself, from the sweep. */
#define SOCK_DESTROY_KEY "bpf_sock_destroy"

/* Table rows by kind: key, what is printed, the release that brought it. */
#define PROG(k, n, v, t) { .f = { .key = k, .name = n, .since = v }, .kind = PROBE_PROG, .type = t }
#define MAP(k, n, v, t) { .f = { .key = k, .name = n, .since = v }, .kind = PROBE_MAP, .type = t }
#define HELPER(k, n, v, t, h) { .f = { .key = k, .name = n, .since = v }, .kind = PROBE_HELPER, .type = t, .helper = h }
#define BTF(k, n, v, how, b) { .f = { .key = k, .name = n, .since = v }, .kind = how, .btf = b }

static const struct probe probes[] = {
	{ .f = { .key = "btf", .name = "kernel BTF (/sys/kernel/btf/vmlinux, CONFIG_DEBUG_INFO_BTF)", .since = "5.4" },
	  .kind = PROBE_VMLINUX_BTF },
	{ .f = { .key = "bpffs", .name = "the bpf filesystem (bpffs, for the pins)", .since = "4.4" },
	  .kind = PROBE_BPFFS },
	{ .f = { .key = "cgroup2", .name = "a cgroup2 mount (cgroup v2)", .since = "4.5",
		 .hint = "mount one (mount -t cgroup2 none /sys/fs/cgroup/unified on a hybrid host) and run again" },
	  .kind = PROBE_CGROUP2 },
	PROG("sched_cls", "tc programs (transparent mode)", "4.1", BPF_PROG_TYPE_SCHED_CLS),
	HELPER("probe_read_kernel", "bpf_probe_read_kernel in cgroup_skb", "5.5", BPF_PROG_TYPE_CGROUP_SKB,
	       BPF_FUNC_probe_read_kernel),
	HELPER("ringbuf_sk_msg", "bpf_ringbuf_reserve in sk_msg (trace events of the sending side)", "5.8",
	       BPF_PROG_TYPE_SK_MSG, BPF_FUNC_ringbuf_reserve),
	PROG("sockops", "sockops programs", "4.13", BPF_PROG_TYPE_SOCK_OPS),
	PROG("cgroup_skb", "cgroup_skb programs", "4.10", BPF_PROG_TYPE_CGROUP_SKB),
	PROG("cgroup_sockopt", "cgroup getsockopt programs", "5.3", BPF_PROG_TYPE_CGROUP_SOCKOPT),
	PROG("syscall_prog", "syscall programs (the parser self-test)", "5.14", BPF_PROG_TYPE_SYSCALL),
	BTF("getpeername", "the cgroup getpeername hooks", "5.8", PROBE_BTF_ENUMERATOR, "BPF_CGROUP_INET4_GETPEERNAME"),
	BTF("iter_tcp", "TCP socket iterators", "5.9", PROBE_BTF_STRUCT, "bpf_iter__tcp"),
	MAP("sk_storage", "socket storage maps", "5.2", BPF_MAP_TYPE_SK_STORAGE),
	MAP("ringbuf", "ring buffers", "5.8", BPF_MAP_TYPE_RINGBUF),
	MAP("lpm_trie", "LPM tries", "4.11", BPF_MAP_TYPE_LPM_TRIE),
	HELPER("bpf_loop", "the bpf_loop helper", "5.17", BPF_PROG_TYPE_CGROUP_SKB, BPF_FUNC_loop),
	HELPER("sk_storage_skb", "bpf_sk_storage_get in cgroup_skb", "5.2", BPF_PROG_TYPE_CGROUP_SKB,
	       BPF_FUNC_sk_storage_get),
	HELPER("sk_storage_sockops", "bpf_sk_storage_get in sockops", "5.3", BPF_PROG_TYPE_SOCK_OPS,
	       BPF_FUNC_sk_storage_get),
	HELPER("sk_storage_sockopt", "bpf_sk_storage_get in getsockopt", "5.3", BPF_PROG_TYPE_CGROUP_SOCKOPT,
	       BPF_FUNC_sk_storage_get),
	HELPER("sk_fullsock", "bpf_sk_fullsock in cgroup_skb", "5.1", BPF_PROG_TYPE_CGROUP_SKB, BPF_FUNC_sk_fullsock),
	PROG("sk_msg", "sk_msg programs (the sending side)", "4.17", BPF_PROG_TYPE_SK_MSG),
	PROG("cgroup_sock_addr", "cgroup connect hooks (the sending side's Fast Open check)", "4.17",
	     BPF_PROG_TYPE_CGROUP_SOCK_ADDR),
	MAP("sockhash", "sockhash maps (the sending side)", "4.18", BPF_MAP_TYPE_SOCKHASH),
	HELPER("msg_push_data", "bpf_msg_push_data in sk_msg", "4.20", BPF_PROG_TYPE_SK_MSG, BPF_FUNC_msg_push_data),
	HELPER("sk_storage_msg", "bpf_sk_storage_get in sk_msg", "5.11", BPF_PROG_TYPE_SK_MSG, BPF_FUNC_sk_storage_get),
	HELPER("snprintf_sockops", "bpf_snprintf in sockops (v1 headers sent)", "5.13", BPF_PROG_TYPE_SOCK_OPS,
	       BPF_FUNC_snprintf),
	HELPER("set_retval", "bpf_set_retval in setsockopt (ppbpf_relay's errors)", "5.18", BPF_PROG_TYPE_CGROUP_SOCKOPT,
	       BPF_FUNC_set_retval),
	HELPER("snprintf_sockopt", "bpf_snprintf in setsockopt (v1 headers relayed)", "5.13",
	       BPF_PROG_TYPE_CGROUP_SOCKOPT, BPF_FUNC_snprintf),
	BTF("hdr_opt_len", "the sockops callback as a segment goes out", "5.10", PROBE_BTF_ENUMERATOR,
	    "BPF_SOCK_OPS_HDR_OPT_LEN_CB"),
	{ .f = { .key = SOCK_DESTROY_KEY, .name = "the bpf_sock_destroy kfunc", .since = "6.5",
		 .without = "`ppbpf run` resets rejected connections over inet_diag (SOCK_DESTROY) instead" },
	  .kind = PROBE_KFUNC, .btf = "bpf_sock_destroy" },
};
#define N_PROBES (sizeof(probes) / sizeof(probes[0]))

/* Is enumerator `name` in some enum of the BTF? */
static bool btf_has_enumerator(const struct btf *btf, const char *name)
{
	__u32 n = btf__type_cnt(btf);

	for (__u32 id = 1; id < n; id++) {
		const struct btf_type *t = btf__type_by_id(btf, id);
		const struct btf_enum *e;

		if (!btf_is_enum(t))
			continue;
		e = btf_enum(t);
		for (__u16 i = 0; i < btf_vlen(t); i++)
			if (!strcmp(btf__name_by_offset(btf, e[i].name_off), name))
				return true;
	}
	return false;
}

/* Is a filesystem of this type in /proc/filesystems? */
static bool has_filesystem(const char *type)
{
	FILE *f = fopen("/proc/filesystems", "r");
	char line[128];
	bool found = false;

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		char *name = strrchr(line, '\t');

		name = name ? name + 1 : line;
		name[strcspn(name, "\n")] = 0;
		found = !strcmp(name, type);
	}
	fclose(f);
	return found;
}

static bool probe_one(const struct probe *p, const struct btf *vmlinux)
{
	switch (p->kind) {
	case PROBE_PROG: return libbpf_probe_bpf_prog_type(p->type, NULL) == 1;
	case PROBE_MAP: return libbpf_probe_bpf_map_type(p->type, NULL) == 1;
	case PROBE_HELPER: return libbpf_probe_bpf_helper(p->type, p->helper, NULL) == 1;
	case PROBE_BTF_STRUCT: return vmlinux && btf__find_by_name_kind(vmlinux, p->btf, BTF_KIND_STRUCT) > 0;
	case PROBE_BTF_ENUMERATOR: return vmlinux && btf_has_enumerator(vmlinux, p->btf);
	case PROBE_KFUNC: return vmlinux && btf__find_by_name_kind(vmlinux, p->btf, BTF_KIND_FUNC) > 0;
	case PROBE_VMLINUX_BTF: return vmlinux;
	case PROBE_BPFFS: return has_filesystem("bpf");
	case PROBE_CGROUP2: {
		char root[4096];

		return !cgroup2_root(root, sizeof(root));
	}
	}
	return false;
}

void features_probe(struct kernel_report *r)
{
	struct btf *vmlinux = btf__load_vmlinux_btf();
	struct utsname u;

	memset(r, 0, sizeof(*r));
	if (libbpf_get_error(vmlinux))
		vmlinux = NULL;
	snprintf(r->release, sizeof(r->release), "%s", uname(&u) ? "unknown" : u.release);
	r->sock_destroy = true;
	for (size_t i = 0; i < N_PROBES; i++) {
		if (probe_one(&probes[i], vmlinux))
			continue;
		if (r->n_lacks < FEATURES_MAX)
			r->lacks[r->n_lacks++] = &probes[i].f;
		if (!probes[i].f.without)
			r->required_missing = true;
		if (!strcmp(probes[i].f.key, SOCK_DESTROY_KEY))
			r->sock_destroy = false;
	}
	btf__free(vmlinux);
}

bool features_report(const struct kernel_report *r, const char *prefix, FILE *out)
{
	for (int i = 0; i < r->n_lacks; i++) {
		const struct feature *f = r->lacks[i];

		if (f->without)
			fprintf(out, "%s: this kernel (%s) lacks %s (Linux %s): %s\n", prefix, r->release, f->name,
				f->since, f->without);
		else if (f->hint)
			fprintf(out, "%s: this host lacks %s: %s\n", prefix, f->name, f->hint);
		else
			fprintf(out, "%s: this kernel (%s) lacks %s (Linux %s); ppbpf needs Linux %s or later\n",
				prefix, r->release, f->name, f->since, PPBPF_MIN_KERNEL);
	}
	return !r->required_missing;
}
