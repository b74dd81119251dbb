// SPDX-License-Identifier: MIT
/* Loading, attaching, pinning and finding ppbpf's kernel side. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <libgen.h>
#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <ppbpf/abi.h>
#include <ppbpf/parse.h> /* before the skeleton: it names the parser's structs */
#include "features.h"
#include "loader.h"
#include "ppbpf.skel.h"
#include "selftest.h"

/* Where bpffs is mounted when none is, as bpftool does. */
#define BPFFS_MOUNT "/sys/fs/bpf"

/* Pin names of the links, by slot. */
static const char *const link_pins[SLOT_MAX] = {
	[SLOT_SOCKOPS] = "link_sockops",         [SLOT_INGRESS] = "link_ingress",
	[SLOT_GETSOCKOPT] = "link_getsockopt",   [SLOT_GETPEERNAME4] = "link_getpeername4",
	[SLOT_GETPEERNAME6] = "link_getpeername6",
};

/* Pin names of the maps. */
static const char *const map_pins[] = { "conns", "ports", "trust4", "trust6", "settings", "stats",
					"pending", "sks", "tlvs", "scratch_early", "scratch", "port_bits", "rewrite_bits",
					"events", "early", "pending_small", "scratch_small" };
#define N_MAP_PINS (sizeof(map_pins) / sizeof(map_pins[0]))

static bool verbose;

static int print_libbpf(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (level == LIBBPF_DEBUG && !verbose)
		return 0;
	if (level == LIBBPF_INFO && !verbose)
		return 0;
	return vfprintf(stderr, fmt, ap);
}

void loader_verbose(bool on)
{
	verbose = on;
	libbpf_set_print(print_libbpf);
}

int cgroup2_root(char *out, size_t cap)
{
	FILE *f = fopen("/proc/self/mounts", "r");
	char dev[256], dir[4096], type[64];
	int rc = -ENOENT;

	if (!f)
		return -errno;
	while (fscanf(f, "%255s %4095s %63s %*s %*d %*d\n", dev, dir, type) == 3) {
		if (!strcmp(type, "cgroup2")) {
			rc = snprintf(out, cap, "%s", dir) < (int)cap ? 0 : -ENAMETOOLONG;
			break;
		}
	}
	fclose(f);
	return rc;
}

int cgroup_resolve(const char *arg, char *out, size_t cap)
{
	char root[4096];
	int rc;

	if (arg && arg[0] == '/')
		return snprintf(out, cap, "%s", arg) < (int)cap ? 0 : -ENAMETOOLONG;
	rc = cgroup2_root(root, sizeof(root));
	if (rc)
		return rc;
	if (!arg || !*arg)
		return snprintf(out, cap, "%s", root) < (int)cap ? 0 : -ENAMETOOLONG;
	return snprintf(out, cap, "%s/%s", root, arg) < (int)cap ? 0 : -ENAMETOOLONG;
}

/* nftw has no context argument: the search state lives here. */
static __u64 wanted_id;
static char found_path[4096];

static int match_id(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)ftw;
	if (type == FTW_D && (__u64)st->st_ino == wanted_id) {
		snprintf(found_path, sizeof(found_path), "%s", path);
		return 1;
	}
	return 0;
}

int cgroup_path_of_id(__u64 id, char *out, size_t cap)
{
	char root[4096];
	int rc = cgroup2_root(root, sizeof(root));

	if (rc)
		return rc;
	wanted_id = id;
	found_path[0] = '\0';
	if (nftw(root, match_id, 32, FTW_PHYS | FTW_MOUNT) != 1)
		return -ENOENT;
	return snprintf(out, cap, "%s", found_path) < (int)cap ? 0 : -ENAMETOOLONG;
}

static int pin_path(char *out, size_t cap, const char *dir, const char *name)
{
	return snprintf(out, cap, "%s/%s", dir, name) < (int)cap ? 0 : -ENAMETOOLONG;
}

bool loader_attached(const char *pin_dir)
{
	char p[4096];

	return !pin_path(p, sizeof(p), pin_dir, link_pins[SLOT_SOCKOPS]) && access(p, F_OK) == 0;
}

static struct bpf_program *slot_prog(struct ppbpf_bpf *skel, int slot)
{
	switch (slot) {
	case SLOT_SOCKOPS: return skel->progs.ppbpf_sockops;
	case SLOT_INGRESS: return skel->progs.ppbpf_ingress;
	case SLOT_GETSOCKOPT: return skel->progs.ppbpf_getsockopt;
	case SLOT_GETPEERNAME4: return skel->progs.ppbpf_getpeername4;
	default: return skel->progs.ppbpf_getpeername6;
	}
}

/* Pin every map of the object under the names in map_pins. */
static int pin_maps(struct ppbpf_bpf *skel, const char *pin_dir)
{
	struct bpf_map *maps[N_MAP_PINS] = {
		skel->maps.conns, skel->maps.ports,   skel->maps.trust4,  skel->maps.trust6,
		skel->maps.settings, skel->maps.stats, skel->maps.pending, skel->maps.ppbpf_sks, skel->maps.ppbpf_tlvs,
		skel->maps.scratch_early, skel->maps.scratch, skel->maps.port_bits, skel->maps.rewrite_bits,
		skel->maps.events, skel->maps.early, skel->maps.pending_small, skel->maps.scratch_small,
	};
	char p[4096];

	for (size_t i = 0; i < N_MAP_PINS; i++) {
		int rc = pin_path(p, sizeof(p), pin_dir, map_pins[i]);

		if (rc || (rc = bpf_map__pin(maps[i], p))) {
			fprintf(stderr, "failed to pin map %s: %s\n", p, strerror(-rc));
			return rc;
		}
	}
	return 0;
}

/* The sweep iterator, pinned: reading the pin runs one sweep (`ppbpf run` does, and so can `cat`). */
static int pin_sweep(struct ppbpf_bpf *skel, const char *pin_dir)
{
	struct bpf_link *link = bpf_program__attach_iter(skel->progs.ppbpf_sweep, NULL);
	char p[4096];
	int rc;

	if (!link) {
		rc = -errno;
		fprintf(stderr, "failed to create the sweep iterator: %s\n", strerror(errno));
		return rc;
	}
	rc = pin_path(p, sizeof(p), pin_dir, PPBPF_SWEEP_PIN);
	if (!rc && (rc = bpf_link__pin(link, p)))
		fprintf(stderr, "failed to pin %s: %s\n", p, strerror(-rc));
	bpf_link__destroy(link);
	return rc;
}

static int write_default_settings(struct ppbpf_bpf *skel)
{
	struct ppbpf_config cfg = { .tlv_cap = PPBPF_TLV_CAP_DEFAULT };
	__u32 zero = 0;

	return bpf_map_update_elem(bpf_map__fd(skel->maps.settings), &zero, &cfg, BPF_ANY) ? -errno : 0;
}

static bool on_bpffs(const char *path)
{
	struct statfs st;

	return !statfs(path, &st) && st.f_type == BPF_FS_MAGIC;
}

/* Is path BPFFS_MOUNT or below it? */
static bool under_bpffs_mount(const char *path)
{
	size_t n = strlen(BPFFS_MOUNT);

	return !strncmp(path, BPFFS_MOUNT, n) && (path[n] == '/' || path[n] == '\0');
}

int loader_prepare_pin_dir(const char *pin_dir)
{
	char copy[4096], *parent;

	if (snprintf(copy, sizeof(copy), "%s", pin_dir) >= (int)sizeof(copy))
		return -ENAMETOOLONG;
	parent = dirname(copy);
	if (on_bpffs(parent))
		return 0;
	if (under_bpffs_mount(pin_dir) && !on_bpffs(BPFFS_MOUNT)) {
		if (mount("bpf", BPFFS_MOUNT, "bpf", 0, "mode=0700")) {
			int rc = -errno;

			fprintf(stderr, "failed to mount bpffs at %s: %s; mount it with `mount -t bpf bpf %s`\n",
				BPFFS_MOUNT, strerror(errno), BPFFS_MOUNT);
			return rc;
		}
		fprintf(stderr, "ppbpf: mounted bpffs at %s (none was mounted there)\n", BPFFS_MOUNT);
		if (on_bpffs(parent))
			return 0;
	}
	fprintf(stderr, "%s is not on a bpffs: pin under %s, or mount one with `mount -t bpf bpf %s`\n", pin_dir,
		BPFFS_MOUNT, parent);
	return -ENOTSUP;
}

/* Open the object for this kernel: what it lacks is said, and worked around where it can be. */
static int open_for_kernel(struct ppbpf_bpf **out, __u32 table_size)
{
	struct kernel_report kr;
	struct ppbpf_bpf *skel;

	features_probe(&kr);
	if (!features_report(&kr, "ppbpf", stderr))
		return -EOPNOTSUPP;
	skel = ppbpf_bpf__open();
	if (!skel) {
		int rc = -errno;

		fprintf(stderr, "failed to open the BPF object: %s\n", strerror(errno));
		return rc;
	}
	skel->rodata->have_sock_destroy = kr.sock_destroy;
	if (table_size)
		bpf_map__set_max_entries(skel->maps.conns, table_size);
	*out = skel;
	return 0;
}

/* -v: how hard each program was for the verifier (instructions it processed). */
static void print_verifier_cost(struct ppbpf_bpf *skel)
{
	struct bpf_program *prog;

	if (!verbose)
		return;
	bpf_object__for_each_program(prog, skel->obj) {
		struct bpf_prog_info info = {};
		__u32 len = sizeof(info);

		if (!bpf_obj_get_info_by_fd(bpf_program__fd(prog), &info, &len))
			fprintf(stderr, "ppbpf: %-20s %6u instructions, verifier processed %u\n", bpf_program__name(prog),
				info.xlated_prog_len / 8, info.verified_insns);
	}
}

int loader_attach(const char *cgroup_path, const char *pin_dir, __u32 table_size)
{
	struct bpf_link *links[SLOT_MAX] = {};
	struct ppbpf_bpf *skel = NULL;
	int cg = -1, rc, n_selftest;
	char p[4096];

	rc = loader_prepare_pin_dir(pin_dir);
	if (rc)
		return rc;
	if (mkdir(pin_dir, 0700) && errno != EEXIST) {
		rc = -errno;
		fprintf(stderr, "failed to create %s: %s\n", pin_dir, strerror(errno));
		return rc;
	}
	cg = open(cgroup_path, O_RDONLY | O_DIRECTORY);
	if (cg < 0) {
		rc = -errno;
		fprintf(stderr, "failed to open cgroup %s: %s\n", cgroup_path, strerror(errno));
		goto cleanup;
	}
	rc = open_for_kernel(&skel, table_size);
	if (rc)
		goto cleanup;
	rc = ppbpf_bpf__load(skel);
	if (rc) {
		fprintf(stderr, "failed to load the BPF programs: %s (run with -v for the verifier log)\n",
			strerror(-rc));
		goto cleanup;
	}
	print_verifier_cost(skel);
	rc = selftest_parser(skel, &n_selftest);
	if (rc)
		goto cleanup;
	rc = write_default_settings(skel);
	if (!rc)
		rc = pin_maps(skel, pin_dir);
	if (!rc)
		rc = pin_sweep(skel, pin_dir);
	for (int s = 0; !rc && s < SLOT_MAX; s++) {
		links[s] = bpf_program__attach_cgroup(slot_prog(skel, s), cg);
		if (!links[s]) {
			rc = -errno;
			fprintf(stderr, "failed to attach %s to %s: %s\n", bpf_program__name(slot_prog(skel, s)),
				cgroup_path, strerror(errno));
			break;
		}
		rc = pin_path(p, sizeof(p), pin_dir, link_pins[s]);
		if (!rc && (rc = bpf_link__pin(links[s], p)))
			fprintf(stderr, "failed to pin %s: %s\n", p, strerror(-rc));
	}
cleanup:
	for (int s = 0; s < SLOT_MAX; s++)
		bpf_link__destroy(links[s]); /* pinned links stay attached; the others go */
	ppbpf_bpf__destroy(skel);
	if (cg >= 0)
		close(cg);
	if (rc)
		loader_detach(pin_dir); /* leave nothing half-made behind */
	return rc;
}

int loader_detach(const char *pin_dir)
{
	int removed = 0, rc = 0;
	char p[4096];

	for (int s = 0; s < SLOT_MAX; s++) {
		int fd;

		if (pin_path(p, sizeof(p), pin_dir, link_pins[s]))
			continue;
		fd = bpf_obj_get(p);
		if (fd < 0)
			continue;
		/* Detach even if another process (a daemon) holds the link open. */
		if (bpf_link_detach(fd) && errno != EINVAL)
			fprintf(stderr, "failed to detach %s: %s\n", p, strerror(errno));
		close(fd);
		if (unlink(p) == 0)
			removed++;
		else
			rc = -errno;
	}
	for (size_t i = 0; i < N_MAP_PINS; i++) {
		if (!pin_path(p, sizeof(p), pin_dir, map_pins[i]) && unlink(p) == 0)
			removed++;
	}
	/* An iterator link has nothing to detach: removing the pin frees it. */
	if (!pin_path(p, sizeof(p), pin_dir, PPBPF_SWEEP_PIN) && unlink(p) == 0)
		removed++;
	if (rmdir(pin_dir) && errno != ENOENT)
		fprintf(stderr, "failed to remove %s: %s\n", pin_dir, strerror(errno));
	return rc ? rc : removed;
}

static int open_pin(const char *pin_dir, const char *name);

int loader_sweep(const char *pin_dir, char *out, size_t cap)
{
	int link = open_pin(pin_dir, PPBPF_SWEEP_PIN), it, rc = 0;
	size_t used = 0;

	if (link < 0)
		return -errno;
	it = bpf_iter_create(link);
	close(link);
	if (it < 0)
		return -errno;
	for (;;) {
		char spill[256];
		ssize_t n = read(it, used + 1 < cap ? out + used : spill,
				 used + 1 < cap ? cap - used - 1 : sizeof(spill));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			break;
		}
		if (n == 0)
			break;
		if (used + 1 < cap)
			used += (size_t)n;
	}
	close(it);
	if (cap)
		out[used] = '\0';
	return rc;
}

static int open_pin(const char *pin_dir, const char *name)
{
	char p[4096];

	if (pin_path(p, sizeof(p), pin_dir, name))
		return -1;
	return bpf_obj_get(p);
}

void loader_close_maps(struct ppbpf_maps *m)
{
	int *fds[] = { &m->conns, &m->ports, &m->trust4, &m->trust6, &m->settings, &m->stats, &m->pending,
		       &m->port_bits, &m->rewrite_bits, &m->events, &m->pending_small };

	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
		if (*fds[i] >= 0)
			close(*fds[i]);
		*fds[i] = -1;
	}
}

int loader_open_maps(const char *pin_dir, struct ppbpf_maps *m)
{
	m->conns = open_pin(pin_dir, "conns");
	m->ports = open_pin(pin_dir, "ports");
	m->trust4 = open_pin(pin_dir, "trust4");
	m->trust6 = open_pin(pin_dir, "trust6");
	m->settings = open_pin(pin_dir, "settings");
	m->stats = open_pin(pin_dir, "stats");
	m->pending = open_pin(pin_dir, "pending");
	m->port_bits = open_pin(pin_dir, "port_bits");
	m->rewrite_bits = open_pin(pin_dir, "rewrite_bits");
	m->events = open_pin(pin_dir, "events");
	m->pending_small = open_pin(pin_dir, "pending_small");
	if (m->conns < 0 || m->ports < 0 || m->trust4 < 0 || m->trust6 < 0 || m->settings < 0 || m->stats < 0 ||
	    m->pending < 0 || m->port_bits < 0 || m->rewrite_bits < 0 || m->events < 0 || m->pending_small < 0) {
		int rc = -errno;

		loader_close_maps(m);
		return rc ? rc : -ENOENT;
	}
	return 0;
}

void loader_links(const char *pin_dir, struct link_desc *out)
{
	for (int s = 0; s < SLOT_MAX; s++) {
		struct bpf_link_info info = {};
		__u32 len = sizeof(info);
		int fd = open_pin(pin_dir, link_pins[s]);

		memset(&out[s], 0, sizeof(out[s]));
		out[s].pin = link_pins[s];
		if (fd < 0)
			continue;
		if (!bpf_obj_get_info_by_fd(fd, &info, &len)) {
			out[s].present = true;
			out[s].link_id = info.id;
			out[s].prog_id = info.prog_id;
			out[s].cgroup_id = info.cgroup.cgroup_id;
		}
		close(fd);
	}
}
