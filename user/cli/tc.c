// SPDX-License-Identifier: MIT
/* Transparent mode at tc: the filters on this network namespace's interfaces, and the flow table. */
#include <dirent.h>
#include <errno.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/inet_diag.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <ppbpf/abi.h>
#include "sockdiag.h"
#include "tc.h"

/* ppbpf's filter on each clsact hook: first (priority 1), so that no other filter's verdict skips it. */
#define TC_HANDLE 0x9b9f
#define TC_PRIORITY 1

/* tcx (Linux 6.6), newer than this system's headers: its attach types and link type. */
#define PPBPF_TCX_INGRESS 46
#define PPBPF_TCX_EGRESS 47
#define PPBPF_LINK_TYPE_TCX 11
/* Pin name prefix of tcx links: "tcx_<ifindex>_in", "tcx_<ifindex>_eg". */
#define TCX_PIN_PREFIX "tcx_"


/* ARPHRD_ETHER or ARPHRD_LOOPBACK: the devices whose packets tc sees with an Ethernet header. 0: other. */
static int dev_type(int sock, const char *name)
{
	struct ifreq ifr = { 0 };

	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (ioctl(sock, SIOCGIFHWADDR, &ifr))
		return 0;
	return ifr.ifr_hwaddr.sa_family == ARPHRD_ETHER || ifr.ifr_hwaddr.sa_family == ARPHRD_LOOPBACK
		       ? ifr.ifr_hwaddr.sa_family
		       : 0;
}

static int open_prog(const char *pin_dir, const char *name)
{
	char p[4096];

	if (snprintf(p, sizeof(p), "%s/%s", pin_dir, name) >= (int)sizeof(p))
		return -ENAMETOOLONG;
	return bpf_obj_get(p);
}

/* The pin of ifindex's tcx link on a hook. */
static int tcx_pin(char *out, size_t cap, const char *pin_dir, int ifindex, bool egress)
{
	return snprintf(out, cap, "%s/" TCX_PIN_PREFIX "%d_%s", pin_dir, ifindex, egress ? "eg" : "in") < (int)cap
		       ? 0
		       : -ENAMETOOLONG;
}

/* Is there a live tcx link of ppbpf's for ifindex's hook (pinned)? */
static bool tcx_linked(const char *pin_dir, int ifindex, bool egress)
{
	struct bpf_link_info info = { 0 };
	__u32 len = sizeof(info);
	char p[4096];
	int fd;
	bool live;

	if (tcx_pin(p, sizeof(p), pin_dir, ifindex, egress) || (fd = bpf_obj_get(p)) < 0)
		return false;
	/* a link whose device went away stays, detached: its ifindex reads 0 (tcx's info starts as xdp's) */
	live = !bpf_obj_get_info_by_fd(fd, &info, &len) && info.type == PPBPF_LINK_TYPE_TCX &&
	       info.xdp.ifindex == (__u32)ifindex;
	close(fd);
	if (!live)
		unlink(p);
	return live;
}

/*
 * tcx where the kernel has it (6.6): a link, pinned in pin_dir, that runs
 * before any clsact filter. 0, -EOPNOTSUPP where the kernel has no tcx, or
 * -errno.
 */
static int attach_tcx(const char *pin_dir, int ifindex, bool egress, int prog_fd)
{
	char p[4096];
	int link, rc;

	if (tcx_linked(pin_dir, ifindex, egress)) /* there already (the program is the pinned one) */
		return 0;
	rc = tcx_pin(p, sizeof(p), pin_dir, ifindex, egress);
	if (rc)
		return rc;
	link = bpf_link_create(prog_fd, ifindex, egress ? PPBPF_TCX_EGRESS : PPBPF_TCX_INGRESS, NULL);
	if (link < 0)
		return link == -EINVAL ? -EOPNOTSUPP : link;
	rc = bpf_obj_pin(link, p) ? -errno : 0;
	close(link); /* pinned, it stays; else it goes */
	return rc;
}

/* Put prog_fd on one hook of ifindex with clsact, in place of ppbpf's filter if one is there. 0 or -errno. */
static int attach_clsact(int ifindex, enum bpf_tc_attach_point point, int prog_fd)
{
	DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = point);
	DECLARE_LIBBPF_OPTS(bpf_tc_opts, opts, .handle = TC_HANDLE, .priority = TC_PRIORITY, .prog_fd = prog_fd,
			    .flags = BPF_TC_F_REPLACE);
	libbpf_print_fn_t print = libbpf_set_print(NULL); /* "exists" is an answer here, not an error */
	int rc = bpf_tc_hook_create(&hook); /* clsact, unless the device has it */

	libbpf_set_print(print);
	if (rc && rc != -EEXIST)
		return rc;
	return bpf_tc_attach(&hook, &opts);
}

/* One hook of ifindex: tcx where the kernel has it, else clsact. 0 or -errno. */
static int attach_hook(const char *pin_dir, int ifindex, bool egress, int prog_fd)
{
	int rc = attach_tcx(pin_dir, ifindex, egress, prog_fd);

	if (rc != -EOPNOTSUPP)
		return rc;
	return attach_clsact(ifindex, egress ? BPF_TC_EGRESS : BPF_TC_INGRESS, prog_fd);
}

/* Is `name` in the comma list devs? */
static bool listed(const char *devs, const char *name)
{
	size_t n = strlen(name);

	for (const char *p = devs; p && *p;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);

		if (len == n && !strncmp(p, name, n))
			return true;
		p = comma ? comma + 1 : NULL;
	}
	return false;
}

/* Every name of the list devs is an interface here? Says which is not. */
static bool devs_exist(const char *devs, const struct if_nameindex *ifs)
{
	char name[IF_NAMESIZE + 1];

	for (const char *p = devs; p && *p;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		bool found = false;

		snprintf(name, sizeof(name), "%.*s", (int)(len < IF_NAMESIZE ? len : IF_NAMESIZE), p);
		for (const struct if_nameindex *i = ifs; i->if_index; i++)
			found |= !strcmp(i->if_name, name);
		if (!found) {
			fprintf(stderr, "ppbpf: --dev %s: no such interface in this network namespace\n", name);
			return false;
		}
		p = comma ? comma + 1 : NULL;
	}
	return true;
}

int tc_attach(const char *pin_dir, const char *devs, bool quiet)
{
	int in = open_prog(pin_dir, PPBPF_TC_INGRESS_PIN), out = open_prog(pin_dir, PPBPF_TC_EGRESS_PIN);
	int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), n = 0, rc = 0;
	struct if_nameindex *ifs = if_nameindex();

	if (in < 0 || out < 0 || sock < 0 || !ifs) {
		rc = -errno;
		fprintf(stderr, "ppbpf: cannot attach at tc: %s (the programs are not pinned in %s?)\n",
			strerror(errno), pin_dir);
		goto out;
	}
	if (devs && *devs && !devs_exist(devs, ifs)) {
		rc = -ENODEV;
		goto out;
	}
	for (struct if_nameindex *i = ifs; !rc && i->if_index; i++) {
		int type = dev_type(sock, i->if_name);

		if (devs && *devs ? !listed(devs, i->if_name) : !type)
			continue;
		if (!type) {
			fprintf(stderr, "ppbpf: --dev %s: not an Ethernet interface; transparent mode reads "
					"Ethernet frames\n", i->if_name);
			rc = -EOPNOTSUPP;
			break;
		}
		rc = attach_hook(pin_dir, (int)i->if_index, false, in);
		if (!rc && type != ARPHRD_LOOPBACK) /* loopback's ingress sees both directions */
			rc = attach_hook(pin_dir, (int)i->if_index, true, out);
		if (rc == -ENODEV && quiet) { /* gone meanwhile */
			rc = 0;
			continue;
		}
		if (rc)
			fprintf(stderr, "ppbpf: failed to attach at tc on %s: %s\n", i->if_name, strerror(-rc));
		else
			n++;
	}
out:
	if (ifs)
		if_freenameindex(ifs);
	if (sock >= 0)
		close(sock);
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	return rc ? rc : n;
}

/* The id of the program of ppbpf's filter on a hook, or 0. */
static __u32 hook_prog(int ifindex, enum bpf_tc_attach_point point)
{
	DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = point);
	DECLARE_LIBBPF_OPTS(bpf_tc_opts, opts, .handle = TC_HANDLE, .priority = TC_PRIORITY);
	libbpf_print_fn_t print = libbpf_set_print(NULL); /* "no such filter" is an answer here, not an error */
	int rc = bpf_tc_query(&hook, &opts);

	libbpf_set_print(print);
	return rc ? 0 : opts.prog_id;
}

/* Add "name (how)" to a list in out, once per interface. */
static void list_dev(char *out, size_t cap, size_t *used, const char *name, const char *how)
{
	char item[IF_NAMESIZE + 16];

	snprintf(item, sizeof(item), "%s (%s)", name, how);
	if (!out || strstr(out, item) || *used >= cap)
		return;
	*used += (size_t)snprintf(out + *used, cap - *used, "%s%s", *used ? ", " : "", item);
}

/* The ids of pin_dir's two tc programs (0 where one is not pinned). */
static void pinned_ids(const char *pin_dir, __u32 ids[2])
{
	const char *names[2] = { PPBPF_TC_INGRESS_PIN, PPBPF_TC_EGRESS_PIN };

	for (int i = 0; i < 2; i++) {
		struct bpf_prog_info info = { 0 };
		__u32 len = sizeof(info);
		int fd = open_prog(pin_dir, names[i]);

		ids[i] = fd >= 0 && !bpf_obj_get_info_by_fd(fd, &info, &len) ? info.id : 0;
		if (fd >= 0)
			close(fd);
	}
}

/* Is the program with this id one of the attachment's tc programs? */
static bool ours(__u32 prog_id, const __u32 ids[2])
{
	return prog_id && (prog_id == ids[0] || prog_id == ids[1]);
}

/*
 * Each interface and hook with a clsact filter of pin_dir's programs: detach
 * it (detach) or name it into out (*used: how much of it is written).
 * Returns how many interfaces.
 */
static int each_attached(const char *pin_dir, bool detach, char *out, size_t cap, size_t *used)
{
	struct if_nameindex *ifs = if_nameindex();
	__u32 ids[2];
	int n = 0;

	pinned_ids(pin_dir, ids);
	for (struct if_nameindex *i = ifs; i && i->if_index; i++) {
		bool here = false;

		for (int h = 0; h < 2; h++) {
			enum bpf_tc_attach_point point = h ? BPF_TC_EGRESS : BPF_TC_INGRESS;
			DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = (int)i->if_index, .attach_point = point);
			DECLARE_LIBBPF_OPTS(bpf_tc_opts, opts, .handle = TC_HANDLE, .priority = TC_PRIORITY);

			if (!ours(hook_prog((int)i->if_index, point), ids))
				continue;
			here = true;
			if (detach && bpf_tc_detach(&hook, &opts))
				fprintf(stderr, "ppbpf: failed to detach at tc on %s: %s\n", i->if_name, strerror(errno));
		}
		if (!here)
			continue;
		n++;
		if (used)
			list_dev(out, cap, used, i->if_name, "clsact");
	}
	if (ifs)
		if_freenameindex(ifs);
	return n;
}

/*
 * The tcx links pinned in pin_dir: detach and unpin them (detach), or count
 * them and name their interfaces into out. Returns how many.
 */
static int each_tcx_pin(const char *pin_dir, bool detach, char *out, size_t cap, size_t *used)
{
	DIR *d = opendir(pin_dir);
	struct dirent *e;
	char p[4096], name[IF_NAMESIZE];
	int n = 0;

	while (d && (e = readdir(d))) {
		int fd;

		if (strncmp(e->d_name, TCX_PIN_PREFIX, strlen(TCX_PIN_PREFIX)) ||
		    snprintf(p, sizeof(p), "%s/%s", pin_dir, e->d_name) >= (int)sizeof(p) || (fd = bpf_obj_get(p)) < 0)
			continue;
		n++;
		if (detach) {
			if (bpf_link_detach(fd) && errno != ENOLINK && errno != EINVAL)
				fprintf(stderr, "ppbpf: failed to detach %s: %s\n", p, strerror(errno));
			unlink(p);
		} else if (if_indextoname((unsigned int)atoi(e->d_name + strlen(TCX_PIN_PREFIX)), name)) {
			list_dev(out, cap, used, name, "tcx");
		}
		close(fd);
	}
	if (d)
		closedir(d);
	return n;
}

int tc_detach(const char *pin_dir)
{
	return each_tcx_pin(pin_dir, true, NULL, 0, NULL) + each_attached(pin_dir, true, NULL, 0, NULL);
}

int tc_attached(const char *pin_dir, char *out, size_t cap)
{
	size_t used = 0;

	if (cap)
		out[0] = '\0';
	return each_tcx_pin(pin_dir, false, out, cap, &used) + each_attached(pin_dir, false, out, cap, &used);
}

/* ---- the flow table ------------------------------------------------------------------------- */

/* An address as the maps keep it (IPv4 in the first 4 bytes, the rest zero) is IPv4? */
static bool key_v4(const __u8 *a)
{
	for (int i = 4; i < 16; i++)
		if (a[i])
			return false;
	return true;
}

/* Where a flow's server socket is, for SOCK_DESTROY, as `family` names it. */
static void flow_target(const struct ppbpf_flow_key *k, const struct ppbpf_flow *f, int family,
			struct reset_target *t)
{
	bool v4 = key_v4(k->peer.addr);

	memset(t, 0, sizeof(*t));
	t->family = family;
	t->cookie = f->cookie ? f->cookie : ((__u64)INET_DIAG_NOCOOKIE << 32 | INET_DIAG_NOCOOKIE);
	t->local_port = k->local.port;
	t->remote_port = k->peer.port;
	if (family == AF_INET || !v4) {
		memcpy(t->local, k->local.addr, 16);
		memcpy(t->remote, k->peer.addr, 16);
		return;
	}
	/* an IPv4 client of a dual-stack socket: ::ffff:a.b.c.d */
	t->local[10] = t->local[11] = t->remote[10] = t->remote[11] = 0xff;
	memcpy(t->local + 12, k->local.addr, 4);
	memcpy(t->remote + 12, k->peer.addr, 4);
}

/* Reset one open flow: its socket, or its request socket (whose family is not known: both tried). */
static int reset_flow(int diag, const struct ppbpf_flow_key *k, const struct ppbpf_flow *f)
{
	struct reset_target t;
	int rc;

	if (f->family) {
		flow_target(k, f, f->family, &t);
		return sockdiag_destroy(diag, &t);
	}
	flow_target(k, f, key_v4(k->peer.addr) ? AF_INET : AF_INET6, &t);
	rc = sockdiag_destroy(diag, &t);
	if (rc == -ENOENT && key_v4(k->peer.addr)) {
		flow_target(k, f, AF_INET6, &t);
		rc = sockdiag_destroy(diag, &t);
	}
	return rc;
}

int flows_reset(const char *pin_dir, unsigned int port)
{
	struct ppbpf_flow_key key, next, *prev = NULL;
	int fd = open_prog(pin_dir, "flows"), diag = -1, failed = 0;
	struct ppbpf_flow f;

	if (fd < 0) /* no flow table (an attachment from before transparent mode): nothing is shifted */
		return errno == ENOENT ? 0 : -errno;
	while (!bpf_map_get_next_key(fd, prev, &next)) {
		int rc;

		key = next;
		prev = &key;
		if (bpf_map_lookup_elem(fd, &key, &f) || f.closed_ns || f.state == FLOW_REJECTED ||
		    f.state == FLOW_DEAD || (port && key.local.port != port))
			continue;
		if (diag < 0)
			diag = sockdiag_open(); /* only where there is something to reset */
		rc = diag < 0 ? diag : reset_flow(diag, &key, &f);
		if (rc == -ENOENT || rc == -ESTALE) /* gone already: nothing left to corrupt */
			continue;
		if (rc) {
			failed++;
			fprintf(stderr, "ppbpf: cannot reset the transparent connection to port %u from port %u: %s%s\n",
				key.local.port, key.peer.port, strerror(-rc),
				rc == -EOPNOTSUPP ? " (the kernel has no CONFIG_INET_DIAG_DESTROY)" : " (is tcp_diag loaded?)");
		}
	}
	if (diag >= 0)
		close(diag);
	close(fd);
	return failed;
}

int flows_sweep(const char *pin_dir)
{
	DECLARE_LIBBPF_OPTS(bpf_test_run_opts, run);
	int fd = open_prog(pin_dir, PPBPF_FLOW_SWEEP_PIN), rc;

	if (fd < 0)
		return -errno;
	rc = bpf_prog_test_run_opts(fd, &run) ? -errno : (int)run.retval;
	close(fd);
	return rc;
}
