/* SPDX-License-Identifier: MIT */
/* Loading, attaching, pinning and finding ppbpf's kernel side. */
#ifndef PPBPF_CLI_LOADER_H
#define PPBPF_CLI_LOADER_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>

/* Default folder of ppbpf's pins in bpffs. */
#define PPBPF_PIN_DIR "/sys/fs/bpf/ppbpf"

/* Programs and the attach type each one has, in pin order. */
enum ppbpf_prog_slot {
	SLOT_SOCKOPS, SLOT_INGRESS, SLOT_GETSOCKOPT, SLOT_GETPEERNAME4, SLOT_GETPEERNAME6, SLOT_CONNECT4, SLOT_CONNECT6,
	SLOT_SETSOCKOPT, SLOT_EGRESS, SLOT_MAX
};

/*
 * The pinned maps that commands open. Every map of bpf/lib/maps.h is pinned
 * under its own name; a name here also gives struct ppbpf_maps a field of
 * that name, which loader_open_maps opens.
 */
#define PPBPF_OPENED_MAPS(X) \
	X(conns) X(ports) X(trust4) X(trust6) X(settings) X(stats) X(pending) X(port_bits) X(rewrite_bits) \
	X(events) X(trace) X(trace_ctl) X(pending_small) X(shift_bits) X(flows) X(send_ports) X(send_bits) X(send_to4) X(send_to6)

/* File descriptors of the pinned maps a command works with (-1 when not open). */
struct ppbpf_maps {
#define PPBPF_MAP_FD(name) int name;
	PPBPF_OPENED_MAPS(PPBPF_MAP_FD)
#undef PPBPF_MAP_FD
};

/* Pin name of the sweep iterator link. */
#define PPBPF_SWEEP_PIN "sweep"

/* Print libbpf's messages (-v) or only its warnings. */
void loader_verbose(bool on);

/* The cgroup2 mount point, from /proc/self/mounts. 0 or -errno. */
int cgroup2_root(char *out, size_t cap);
/* A --cgroup argument as an absolute path (relative ones are under the cgroup2 mount). */
int cgroup_resolve(const char *arg, char *out, size_t cap);
/* The path of the cgroup with this id (its directory's inode), or -ENOENT. */
int cgroup_path_of_id(__u64 id, char *out, size_t cap);

/*
 * Make sure pin_dir's parent is on a bpffs: where it is under /sys/fs/bpf and
 * nothing is mounted there, mount bpffs (saying so in one line). 0 or -errno,
 * after saying what to run.
 */
int loader_prepare_pin_dir(const char *pin_dir);
/*
 * Make pin_dir ready for ppbpf's pins: an absolute path, bpffs mounted
 * (loader_prepare_pin_dir), the parent and the folder owned by this user and
 * writable by no one else (the parent may be sticky), the folder created
 * (0700) if missing. 0 or -errno, after saying why.
 */
int loader_pin_dir_ready(const char *pin_dir);
/*
 * The lock of every command that changes pins or policy (attach, detach, run
 * and its reloads): on pin_dir's parent, so that one attaches while others
 * wait and then find it attached. At most 10 s of waiting. Returns the fd to
 * pass to loader_unlock, or -errno after saying why.
 */
int loader_lock(const char *pin_dir);
void loader_unlock(int fd);
/* Is there an attachment pinned in pin_dir? */
bool loader_attached(const char *pin_dir);
/*
 * Load the programs, attach them to cgroup_path, pin links and maps in
 * pin_dir (ready, and locked by the caller). Refuses a folder that holds
 * anything that is not ppbpf's; ppbpf's own leftovers of an interrupted
 * attach are removed first. On a failure, exactly what this call pinned is
 * removed. 0 or -errno.
 */
int loader_attach(const char *cgroup_path, const char *pin_dir, __u32 table_size);
/*
 * Detach and remove ppbpf's pins in pin_dir: each one checked to be ppbpf's
 * (a map of its name, type, sizes and flags; a link of its kind). Anything
 * else stays, is named on stderr, and keeps the folder. Returns the number of
 * pins removed, or -errno.
 */
int loader_detach(const char *pin_dir);
/* Open the pinned maps of PPBPF_OPENED_MAPS. 0 or -errno (and nothing open). */
int loader_open_maps(const char *pin_dir, struct ppbpf_maps *m);
void loader_close_maps(struct ppbpf_maps *m);
/* Run one sweep (time out late headers, reset rejected sockets); its output, "<cookie> <error>" lines, in out. 0 or -errno. */
int loader_sweep(const char *pin_dir, char *out, size_t cap);

/* What a pinned link is attached to. */
struct link_desc {
	const char *pin;    /* pin name */
	__u32 link_id, prog_id;
	__u64 cgroup_id;
	bool present;
};
/* Describe the pinned links of pin_dir into out[SLOT_MAX]. */
void loader_links(const char *pin_dir, struct link_desc *out);

#endif
