// SPDX-License-Identifier: MIT
/* Loading, attaching, pinning and finding ppbpf's kernel side. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <libgen.h>
#include <linux/magic.h>
#include <sys/file.h>
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
#include "tc.h"
#include "ppbpf.skel.h"
#include "selftest.h"

/* Where bpffs is mounted when none is, as bpftool does. */
#define BPFFS_MOUNT "/sys/fs/bpf"

/* Pin names of the links, by slot. */
static const char *const link_pins[SLOT_MAX] = {
	[SLOT_SOCKOPS] = "link_sockops",         [SLOT_INGRESS] = "link_ingress",
	[SLOT_GETSOCKOPT] = "link_getsockopt",   [SLOT_GETPEERNAME4] = "link_getpeername4",
	[SLOT_GETPEERNAME6] = "link_getpeername6", [SLOT_CONNECT4] = "link_connect4",
	[SLOT_CONNECT6] = "link_connect6",       [SLOT_SETSOCKOPT] = "link_setsockopt",
	[SLOT_EGRESS] = "link_egress",
};

/* The fields of struct ppbpf_maps: the pin each one opens, and where its fd is. */
static const struct opened_map {
	const char *pin;
	size_t fd_offset;
} opened_maps[] = {
#define OPENED_MAP(name) { #name, offsetof(struct ppbpf_maps, name) },
	PPBPF_OPENED_MAPS(OPENED_MAP)
#undef OPENED_MAP
};
#define N_OPENED_MAPS (sizeof(opened_maps) / sizeof(opened_maps[0]))

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
	case SLOT_CONNECT4: return skel->progs.ppbpf_connect4;
	case SLOT_CONNECT6: return skel->progs.ppbpf_connect6;
	case SLOT_SETSOCKOPT: return skel->progs.ppbpf_setsockopt;
	case SLOT_EGRESS: return skel->progs.ppbpf_egress;
	default: return skel->progs.ppbpf_getpeername6;
	}
}

/*
 * Is this one of the maps ppbpf pins? Every map the object declares
 * (bpf/lib/maps.h) is, under its own name; its internal ones (.bss, .rodata)
 * are not: only the loader uses them, through the skeleton.
 */
static bool pinned_map(const struct bpf_map *map)
{
	return !bpf_map__is_internal(map);
}

/* The map ppbpf pins under this name, or NULL. */
static const struct bpf_map *map_of_pin(struct ppbpf_bpf *skel, const char *name)
{
	const struct bpf_map *map = bpf_object__find_map_by_name(skel->obj, name);

	return map && pinned_map(map) ? map : NULL;
}

/* What one attach pinned, so that its cleanup removes exactly that and nothing of anyone else's. */
struct own_pins {
	bool sweep;
	bool tc_progs;
	struct bpf_link *links[SLOT_MAX];
	bool linked[SLOT_MAX]; /* links[s] is pinned */
};

/* Pin the maps, each under its name; libbpf notes each one pinned (bpf_map__is_pinned) for unpin_own. */
static int pin_maps(struct ppbpf_bpf *skel, const char *pin_dir)
{
	struct bpf_map *map;
	char p[4096];

	bpf_object__for_each_map(map, skel->obj) {
		int rc;

		if (!pinned_map(map))
			continue;
		rc = pin_path(p, sizeof(p), pin_dir, bpf_map__name(map));
		if (rc || (rc = bpf_map__pin(map, p))) {
			fprintf(stderr, "failed to pin map %s: %s\n", p, strerror(-rc));
			return rc;
		}
	}
	return 0;
}

/* The sweep iterator, pinned: reading the pin runs one sweep (`ppbpf run` does, and so can `cat`). */
static int pin_sweep(struct ppbpf_bpf *skel, const char *pin_dir, struct own_pins *own)
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
	if (!rc)
		own->sweep = true;
	bpf_link__destroy(link);
	return rc;
}

static int pin_is_ours(struct ppbpf_bpf *skel, const char *pin_dir, const char *name);

/* Remove the pins of the tc programs that are ppbpf's. Returns how many. */
static int unlink_tc_progs(struct ppbpf_bpf *skel, const char *pin_dir)
{
	static const char *const names[] = { PPBPF_TC_INGRESS_PIN, PPBPF_TC_EGRESS_PIN, PPBPF_FLOW_SWEEP_PIN };
	char p[4096];
	int removed = 0;

	for (int i = 0; i < 3; i++)
		if (pin_is_ours(skel, pin_dir, names[i]) == 1 && !pin_path(p, sizeof(p), pin_dir, names[i]))
			removed += !unlink(p);
	return removed;
}

/*
 * The tc programs, pinned: commands attach them to interfaces when a port
 * is in transparent mode (tc.c), as tcx links or clsact filters, which stay
 * without a process holding them; and the flow sweep, which `ppbpf run`
 * runs every second.
 */
static int pin_tc_progs(struct ppbpf_bpf *skel, const char *pin_dir, struct own_pins *own)
{
	struct bpf_program *progs[3] = { skel->progs.ppbpf_tc_ingress, skel->progs.ppbpf_tc_egress,
					 skel->progs.ppbpf_flow_sweep };
	const char *names[3] = { PPBPF_TC_INGRESS_PIN, PPBPF_TC_EGRESS_PIN, PPBPF_FLOW_SWEEP_PIN };
	char p[4096];

	for (int i = 0; i < 3; i++) {
		int rc = pin_path(p, sizeof(p), pin_dir, names[i]);

		if (rc || (rc = bpf_obj_pin(bpf_program__fd(progs[i]), p))) {
			rc = rc ? rc : -errno;
			fprintf(stderr, "failed to pin %s: %s\n", p, strerror(-rc));
			return rc;
		}
		own->tc_progs = true;
	}
	return 0;
}

/* Remove what this attach pinned (its links detach as they go), and the folder if that empties it. */
static void unpin_own(struct ppbpf_bpf *skel, const char *pin_dir, struct own_pins *own)
{
	struct bpf_map *map;
	char p[4096];

	for (int s = 0; s < SLOT_MAX; s++)
		if (own->linked[s])
			bpf_link__unpin(own->links[s]);
	if (own->sweep && !pin_path(p, sizeof(p), pin_dir, PPBPF_SWEEP_PIN))
		unlink(p);
	if (own->tc_progs)
		unlink_tc_progs(skel, pin_dir);
	if (skel) {
		bpf_object__for_each_map(map, skel->obj)
			if (bpf_map__is_pinned(map)) /* not one whose pin failed: that path may be another's */
				bpf_map__unpin(map, NULL);
	}
	rmdir(pin_dir); /* only if that emptied it: never a folder with anyone else's pins */
}

/* ---- is a pin ppbpf's? ---------------------------------------------------------------------- */

/* What kind of BPF object an fd is: 'm' map, 'l' link, 'p' program, 0 something else. */
static char fd_kind(int fd)
{
	char link[64], target[64];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, target, sizeof(target) - 1);
	if (n < 0)
		return 0;
	target[n] = '\0';
	if (!strcmp(target, "anon_inode:bpf-map"))
		return 'm';
	if (!strcmp(target, "anon_inode:bpf-link") || !strcmp(target, "anon_inode:bpf_link"))
		return 'l';
	if (!strcmp(target, "anon_inode:bpf-prog"))
		return 'p';
	return 0;
}

/* Has a pinned map the shape of this map of ppbpf's object (type, sizes, flags, name)? */
static bool map_matches(int fd, const struct bpf_map *want, bool any_size)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);
	char name[BPF_OBJ_NAME_LEN];

	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		return false;
	snprintf(name, sizeof(name), "%s", bpf_map__name(want)); /* the kernel keeps 15 characters */
	return info.type == (__u32)bpf_map__type(want) && info.key_size == bpf_map__key_size(want) &&
	       info.value_size == bpf_map__value_size(want) && info.map_flags == bpf_map__map_flags(want) &&
	       (any_size || info.max_entries == bpf_map__max_entries(want)) && !strcmp(info.name, name);
}

/* Is this link ppbpf's: a cgroup link of the slot's attach type, or (slot -1) an iterator? */
static bool link_matches(int fd, struct ppbpf_bpf *skel, int slot)
{
	struct bpf_link_info info = {};
	__u32 len = sizeof(info);

	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		return false;
	if (slot < 0)
		return info.type == BPF_LINK_TYPE_ITER;
	return info.type == BPF_LINK_TYPE_CGROUP &&
	       info.cgroup.attach_type == (__u32)bpf_program__expected_attach_type(slot_prog(skel, slot));
}

/* A link fd's type (enum bpf_link_type), or -1. */
static int link_type_of(int fd)
{
	struct bpf_link_info info = {};
	__u32 len = sizeof(info);

	return bpf_obj_get_info_by_fd(fd, &info, &len) ? -1 : (int)info.type;
}

/* Is this program fd's name `name` (as the kernel keeps it, 15 characters)? */
static bool prog_named(int fd, const char *name)
{
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info);

	return !bpf_obj_get_info_by_fd(fd, &info, &len) && !strcmp(info.name, name);
}

/*
 * Is the pin `name` in pin_dir ppbpf's (one of its names, and an object of
 * the shape ppbpf pins there)? 1 yes, 0 no, -ENOENT if there is no such pin.
 */
static int pin_is_ours(struct ppbpf_bpf *skel, const char *pin_dir, const char *name)
{
	const struct bpf_map *map = map_of_pin(skel, name);
	char p[4096], kind;
	int fd, ours = 0;

	if (pin_path(p, sizeof(p), pin_dir, name))
		return 0;
	fd = bpf_obj_get(p);
	if (fd < 0)
		return errno == ENOENT ? -ENOENT : 0;
	kind = fd_kind(fd);
	if (map) /* the table's size is the attach's --table-size; the sockhash's and the trace ring's a test's: any */
		ours = kind == 'm' && map_matches(fd, map, map == skel->maps.conns || map == skel->maps.send_socks ||
						       map == skel->maps.trace);
	for (int s = 0; s < SLOT_MAX; s++)
		if (!strcmp(name, link_pins[s]))
			ours = kind == 'l' && link_matches(fd, skel, s);
	if (!strcmp(name, PPBPF_SWEEP_PIN))
		ours = kind == 'l' && link_matches(fd, skel, -1);
	if (!strncmp(name, "tcx_", 4))
		ours = kind == 'l' && link_type_of(fd) == 11 /* BPF_LINK_TYPE_TCX */;
	if (!strcmp(name, PPBPF_TC_INGRESS_PIN))
		ours = kind == 'p' && prog_named(fd, "ppbpf_tc_ingres");
	if (!strcmp(name, PPBPF_TC_EGRESS_PIN))
		ours = kind == 'p' && prog_named(fd, "ppbpf_tc_egress");
	if (!strcmp(name, PPBPF_FLOW_SWEEP_PIN))
		ours = kind == 'p' && prog_named(fd, "ppbpf_flow_swee");
	close(fd);
	return ours;
}

/* Remove the map pins of pin_dir that are ppbpf's. Returns how many. */
static int unlink_own_maps(struct ppbpf_bpf *skel, const char *pin_dir)
{
	struct bpf_map *map;
	char p[4096];
	int removed = 0;

	bpf_object__for_each_map(map, skel->obj)
		if (pinned_map(map) && pin_is_ours(skel, pin_dir, bpf_map__name(map)) == 1 &&
		    !pin_path(p, sizeof(p), pin_dir, bpf_map__name(map)) && !unlink(p))
			removed++;
	return removed;
}

/* The object, opened (not loaded): what ppbpf's pins look like. NULL after saying why. */
static struct ppbpf_bpf *open_for_shapes(void)
{
	struct ppbpf_bpf *skel = ppbpf_bpf__open();

	if (!skel)
		fprintf(stderr, "failed to open the BPF object: %s\n", strerror(errno));
	return skel;
}

/* The entries of pin_dir that are not ppbpf's pins, "a, b" into out. Returns how many, or -errno. */
static int foreign_entries(struct ppbpf_bpf *skel, const char *pin_dir, char *out, size_t cap)
{
	DIR *d = opendir(pin_dir);
	struct dirent *e;
	size_t used = 0;
	int n = 0;

	if (cap)
		out[0] = '\0';
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (e->d_type == DT_REG && pin_is_ours(skel, pin_dir, e->d_name) == 1)
			continue;
		n++;
		if (used + 1 < cap) {
			int w = snprintf(out + used, cap - used, "%s%s", used ? ", " : "", e->d_name);

			used = w < 0 ? used : used + (size_t)w < cap ? used + (size_t)w : cap - 1;
		}
	}
	closedir(d);
	return n;
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

/*
 * Map sizes for tests, at the first attach of a pin folder:
 * PPBPF_TEST_SEND_SOCKS=N, a sockhash of N sockets (send.sh fills it to see a
 * connection fail closed); PPBPF_TEST_TRACE_RING=BYTES, a trace ring of that
 * size, a power of 2 pages (trace.sh fills it to see events counted lost).
 */
static void map_sizes_for_tests(struct ppbpf_bpf *skel)
{
	const char *n = getenv("PPBPF_TEST_SEND_SOCKS"), *ring = getenv("PPBPF_TEST_TRACE_RING");

	if (n && atoi(n) > 0)
		bpf_map__set_max_entries(skel->maps.send_socks, (__u32)atoi(n));
	if (ring && atoi(ring) > 0)
		bpf_map__set_max_entries(skel->maps.trace, (__u32)atoi(ring));
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
	map_sizes_for_tests(skel);
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

/* Is the folder (or, for a parent, its sticky-bit case) root's own, that no one else may change? 0 or -EPERM after saying why. */
static int check_owner_mode(const char *path, const struct stat *st, bool parent)
{
	if (st->st_uid != geteuid()) {
		fprintf(stderr, "refusing %s: it is owned by uid %u, not by uid %u (who runs ppbpf); another user "
				"could have put pins there. Remove it, or use another --pin-dir\n",
			path, (unsigned int)st->st_uid, (unsigned int)geteuid());
		return -EPERM;
	}
	if ((st->st_mode & (S_IWGRP | S_IWOTH)) && !(parent && (st->st_mode & S_ISVTX))) {
		fprintf(stderr, "refusing %s: it is writable by others (mode %04o): anyone could put pins "
				"there, or replace ppbpf's. `chmod go-w %s`, or use another --pin-dir\n",
			path, (unsigned int)(st->st_mode & 07777), path);
		return -EPERM;
	}
	return 0;
}

int loader_pin_dir_ready(const char *pin_dir)
{
	char copy[4096], *parent;
	struct stat st;
	int rc;

	if (pin_dir[0] != '/') {
		fprintf(stderr, "the pin folder must be an absolute path: %s\n", pin_dir);
		return -EINVAL;
	}
	rc = loader_prepare_pin_dir(pin_dir);
	if (rc)
		return rc;
	snprintf(copy, sizeof(copy), "%s", pin_dir);
	parent = dirname(copy);
	if (lstat(parent, &st)) {
		rc = -errno;
		fprintf(stderr, "failed to look at %s: %s\n", parent, strerror(errno));
		return rc;
	}
	rc = check_owner_mode(parent, &st, true);
	if (rc)
		return rc;
	if (mkdir(pin_dir, 0700) == 0)
		return 0;
	if (errno != EEXIST) {
		rc = -errno;
		fprintf(stderr, "failed to create %s: %s\n", pin_dir, strerror(errno));
		return rc;
	}
	if (lstat(pin_dir, &st)) {
		rc = -errno;
		fprintf(stderr, "failed to look at %s: %s\n", pin_dir, strerror(errno));
		return rc;
	}
	if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr, "refusing %s: it is not a folder%s\n", pin_dir,
			S_ISLNK(st.st_mode) ? " (a symbolic link)" : "");
		return -ENOTDIR;
	}
	return check_owner_mode(pin_dir, &st, false);
}

int loader_lock(const char *pin_dir)
{
	char copy[4096], *parent;
	int fd;

	snprintf(copy, sizeof(copy), "%s", pin_dir);
	parent = dirname(copy);
	fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		int rc = -errno;

		fprintf(stderr, "failed to open %s: %s\n", parent, strerror(errno));
		return rc;
	}
	/* At most 10 s: an attach holds it for well under a second. */
	for (int i = 0; i < 1000; i++) {
		if (!flock(fd, LOCK_EX | LOCK_NB))
			return fd;
		if (errno != EWOULDBLOCK)
			break;
		usleep(10000);
	}
	fprintf(stderr, "failed to lock %s (another ppbpf changing pins or policy there?): %s\n", parent,
		strerror(errno == EWOULDBLOCK ? ETIMEDOUT : errno));
	close(fd);
	return -EBUSY;
}

void loader_unlock(int fd)
{
	if (fd >= 0)
		close(fd); /* releases the lock */
}

/*
 * Before a first attach: the folder holds ppbpf's own pins at most (what an
 * interrupted attach left, removed now). Anything else is another tool's, and
 * a reason to attach elsewhere. 0 or -errno after saying why.
 */
static int clear_leftovers(struct ppbpf_bpf *skel, const char *pin_dir)
{
	char foreign[1024], p[4096];
	int n = foreign_entries(skel, pin_dir, foreign, sizeof(foreign)), removed = 0;

	if (n < 0) {
		fprintf(stderr, "failed to read %s: %s\n", pin_dir, strerror(-n));
		return n;
	}
	if (n) {
		fprintf(stderr, "refusing to attach in %s: it holds %d pin(s) or folder(s) that are not ppbpf's (%s); "
				"use a --pin-dir of ppbpf's own\n", pin_dir, n, foreign);
		return -EEXIST;
	}
	removed = unlink_own_maps(skel, pin_dir);
	for (int s = 0; s < SLOT_MAX; s++)
		if (pin_is_ours(skel, pin_dir, link_pins[s]) == 1 && !pin_path(p, sizeof(p), pin_dir, link_pins[s])) {
			int fd = bpf_obj_get(p);

			if (fd >= 0) {
				bpf_link_detach(fd);
				close(fd);
			}
			removed += !unlink(p);
		}
	if (pin_is_ours(skel, pin_dir, PPBPF_SWEEP_PIN) == 1 && !pin_path(p, sizeof(p), pin_dir, PPBPF_SWEEP_PIN))
		removed += !unlink(p);
	removed += unlink_tc_progs(skel, pin_dir);
	if (removed)
		fprintf(stderr, "ppbpf: removed %d pins an interrupted attach left in %s\n", removed, pin_dir);
	return 0;
}

/*
 * tc sees every listener of the network namespace: it must shift only the
 * flows of the cgroup's (whose sockets sockops follows to their close). The
 * cgroup's id and depth, for the check at the SYN; the cgroup2 root: none.
 */
static int set_scope(struct ppbpf_bpf *skel, const char *cgroup_path, int cg)
{
	char root[4096];
	struct stat st;
	__u32 level = 0;
	int rc = cgroup2_root(root, sizeof(root));
	size_t n = strlen(root);

	if (rc || fstat(cg, &st))
		return rc ? rc : -errno;
	if (strncmp(cgroup_path, root, n) || (cgroup_path[n] && cgroup_path[n] != '/'))
		return -EINVAL;
	for (const char *p = cgroup_path + n; *p; p++)
		if (*p == '/' && p[1] && p[1] != '/')
			level++;
	skel->rodata->scope_cgroup_id = st.st_ino;
	skel->rodata->scope_cgroup_level = level;
	return 0;
}

/*
 * The sending side's sk_msg program, on the (pinned) sockhash that sockops
 * puts outgoing connections in: it stays with the map, and an attach of a
 * newer ppbpf replaces it there.
 */
static int attach_sender(struct ppbpf_bpf *skel)
{
	int rc = bpf_prog_attach(bpf_program__fd(skel->progs.ppbpf_send), bpf_map__fd(skel->maps.send_socks),
				 BPF_SK_MSG_VERDICT, 0);

	if (rc)
		fprintf(stderr, "failed to attach %s to the map send_socks: %s\n", bpf_program__name(skel->progs.ppbpf_send),
			strerror(errno));
	return rc ? -errno : 0;
}

int loader_attach(const char *cgroup_path, const char *pin_dir, __u32 table_size)
{
	struct own_pins own = {};
	struct ppbpf_bpf *skel = NULL;
	int cg = -1, rc, n_selftest;
	char p[4096];

	cg = open(cgroup_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cg < 0) {
		rc = -errno;
		fprintf(stderr, "failed to open cgroup %s: %s\n", cgroup_path, strerror(errno));
		return rc;
	}
	rc = open_for_kernel(&skel, table_size);
	if (!rc)
		rc = set_scope(skel, cgroup_path, cg);
	if (!rc)
		rc = clear_leftovers(skel, pin_dir);
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
		rc = pin_sweep(skel, pin_dir, &own);
	if (!rc)
		rc = pin_tc_progs(skel, pin_dir, &own);
	if (!rc)
		rc = attach_sender(skel);
	for (int s = 0; !rc && s < SLOT_MAX; s++) {
		own.links[s] = bpf_program__attach_cgroup(slot_prog(skel, s), cg);
		if (!own.links[s]) {
			rc = -errno;
			fprintf(stderr, "failed to attach %s to %s: %s\n", bpf_program__name(slot_prog(skel, s)),
				cgroup_path, strerror(errno));
			break;
		}
		rc = pin_path(p, sizeof(p), pin_dir, link_pins[s]);
		if (!rc && (rc = bpf_link__pin(own.links[s], p)))
			fprintf(stderr, "failed to pin %s: %s\n", p, strerror(-rc));
		own.linked[s] = !rc;
	}
cleanup:
	if (rc)
		unpin_own(skel, pin_dir, &own); /* leave nothing half-made behind, and touch nothing else */
	for (int s = 0; s < SLOT_MAX; s++)
		bpf_link__destroy(own.links[s]); /* pinned links stay attached; the others go */
	ppbpf_bpf__destroy(skel);
	close(cg);
	return rc;
}

int loader_detach(const char *pin_dir)
{
	struct ppbpf_bpf *skel = open_for_shapes();
	int removed = 0, rc = 0, n;
	char p[4096], foreign[1024];

	if (!skel)
		return -EINVAL;
	if (pin_is_ours(skel, pin_dir, PPBPF_TC_INGRESS_PIN) == 1) {
		/* a flow whose shift stops mid-stream would be corrupted: each one is reset first, or nothing goes */
		n = flows_reset(pin_dir, 0);
		if (n) {
			if (n > 0)
				fprintf(stderr, "ppbpf: not detached: %d transparent connection(s) could not be reset\n", n);
			else
				fprintf(stderr, "ppbpf: not detached: cannot read the transparent flows: %s\n", strerror(-n));
			ppbpf_bpf__destroy(skel);
			return -EBUSY;
		}
		tc_detach(pin_dir);
		removed += unlink_tc_progs(skel, pin_dir);
	}
	for (int s = 0; s < SLOT_MAX; s++) {
		int fd;

		if (pin_is_ours(skel, pin_dir, link_pins[s]) != 1 || pin_path(p, sizeof(p), pin_dir, link_pins[s]))
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
	removed += unlink_own_maps(skel, pin_dir);
	/* An iterator link has nothing to detach: removing the pin frees it. */
	if (pin_is_ours(skel, pin_dir, PPBPF_SWEEP_PIN) == 1 && !pin_path(p, sizeof(p), pin_dir, PPBPF_SWEEP_PIN) &&
	    unlink(p) == 0)
		removed++;
	n = foreign_entries(skel, pin_dir, foreign, sizeof(foreign));
	ppbpf_bpf__destroy(skel);
	if (n > 0)
		fprintf(stderr, "ppbpf: left %s in %s: not ppbpf's; the folder stays\n", foreign, pin_dir);
	else if (rmdir(pin_dir) && errno != ENOENT)
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

/* The fd field of struct ppbpf_maps that an opened_maps entry names. */
static int *map_fd(struct ppbpf_maps *m, const struct opened_map *om)
{
	return (int *)((char *)m + om->fd_offset);
}

void loader_close_maps(struct ppbpf_maps *m)
{
	for (size_t i = 0; i < N_OPENED_MAPS; i++) {
		int *fd = map_fd(m, &opened_maps[i]);

		if (*fd >= 0)
			close(*fd);
		*fd = -1;
	}
}

/* A name in PPBPF_OPENED_MAPS that is no map of the object does not compile. */
#define SKELETON_HAS_MAP(name) (void)sizeof(((struct ppbpf_bpf *)0)->maps.name);

int loader_open_maps(const char *pin_dir, struct ppbpf_maps *m)
{
	int rc = 0;

	PPBPF_OPENED_MAPS(SKELETON_HAS_MAP)
	for (size_t i = 0; i < N_OPENED_MAPS; i++) {
		int *fd = map_fd(m, &opened_maps[i]);

		*fd = open_pin(pin_dir, opened_maps[i].pin);
		if (*fd < 0 && !rc)
			rc = errno ? -errno : -ENOENT;
	}
	if (rc)
		loader_close_maps(m);
	return rc;
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
