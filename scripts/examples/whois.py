#!/usr/bin/env python3
# Who is really behind a connection? The answer ppbpf's kernel side keeps for
# each socket, read with nothing but socket.getsockopt and struct: the query
# ABI (include/ppbpf/abi.h) serves any language, unprivileged.
#
#   whois.py PORT    accept one connection on 127.0.0.1:PORT (a port ppbpf
#                    tracks), print its original client and a summary of the
#                    header's TLVs (the cloud balancers' ids decoded), consume
#                    the header, print the first bytes that follow it
import errno
import socket
import struct
import sys
import time

SOL_PPBPF = 0x5050
PPBPF_INFO = 1
PPBPF_TLVS = 2
PPBPF_TLVS_SIZE = 4 + 1024  # the count, then at most PPBPF_TLV_MAX bytes
PPBPF_INFO_TLV_TRUNCATED = 0x1
# struct ppbpf_info (96 bytes, little endian on x86-64)
INFO = struct.Struct("<HHBBBBiIIIIHH16s16sIIQQQ")
STATES = {1: "pending", 2: "done", 3: "error", 4: "plain"}
# enum ppbpf_family: TCP4, TCP6, UDP4, UDP6 carry addresses
FAMILIES = {1: socket.AF_INET, 2: socket.AF_INET6, 3: socket.AF_INET, 4: socket.AF_INET6}
TLV_NAMES = {0x01: "ALPN", 0x02: "AUTHORITY", 0x03: "CRC32C", 0x04: "NOOP", 0x05: "UNIQUE_ID", 0x20: "SSL",
             0x30: "NETNS", 0xE0: "GCP", 0xEA: "AWS", 0xEE: "AZURE"}


def info(conn):
    """The record as a dict; waits while the kernel is still setting it up or the header is pending."""
    for _ in range(300):
        try:
            raw = conn.getsockopt(SOL_PPBPF, PPBPF_INFO, INFO.size)
        except OSError as e:
            if e.errno != errno.EAGAIN:
                raise
            time.sleep(0.01)
            continue
        f = INFO.unpack(raw[:INFO.size])
        rec = dict(zip(("abi", "size", "state", "version", "command", "family", "error", "header_len", "have",
                        "need", "flags", "src_port", "dst_port", "src_addr", "dst_addr", "tlv_len",
                        "tlv_stored", "cookie", "established_ns", "done_ns"), f))
        if rec["state"] != 1:
            return rec
        time.sleep(0.01)
    raise TimeoutError(errno.ETIMEDOUT, "the header stayed pending")


def tlvs(conn):
    """The TLV bytes kept for the socket. socket.getsockopt asks for 1024 bytes at most: enough unless the
    attachment's --tlv-cap keeps more than the default 512 (then ENOSPC; C asks with PPBPF_TLVS_SIZE)."""
    raw = conn.getsockopt(SOL_PPBPF, PPBPF_TLVS, 1024)
    n = struct.unpack_from("<I", raw)[0]  # the count, host order
    return raw[4:4 + n]


def address(family, raw):
    af = FAMILIES.get(family)
    return socket.inet_ntop(af, raw[:4] if af == socket.AF_INET else raw) if af else None


def text(v):
    """v as text if it is one word of printable ASCII, else None."""
    return v.decode() if v and all(0x21 <= b <= 0x7E for b in v) else None


def tlv_summary(raw):
    """One word per TLV: its name (or 0xNN), with =VALUE for the text ones and the cloud balancers' ids."""
    words = []
    while raw:
        if len(raw) < 3 or struct.unpack(">H", raw[1:3])[0] > len(raw) - 3:
            words.append("(malformed)")
            break
        t, n = raw[0], struct.unpack(">H", raw[1:3])[0]
        v, raw = raw[3:3 + n], raw[3 + n:]
        word, value = TLV_NAMES.get(t, "0x%02x" % t), None
        if t in (0x01, 0x02, 0x05):  # ALPN, AUTHORITY, UNIQUE_ID
            value = text(v)
        elif t == 0xEA and n >= 1 and v[0] == 0x01:  # AWS: subtype VPCE_ID, then the endpoint id
            value = text(v[1:])
        elif t == 0xE0 and n == 8:  # GCP: the PSC connection id, big endian
            value = str(struct.unpack(">Q", v)[0])
        elif t == 0xEE and n == 5 and v[0] == 0x01:  # Azure: subtype LINKID, then 4 bytes little endian
            value = str(struct.unpack("<I", v[1:])[0])
        words.append(word if value is None else f"{word}={value}")
    return " ".join(words)


def main():
    port = int(sys.argv[1])
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", port))
    lsock.listen(1)
    print("listening", flush=True)
    conn, peer = lsock.accept()
    try:
        rec = info(conn)
    except OSError as e:
        print(f"no record: {e.strerror} (is ppbpf attached to this cgroup and port?)")
        return 1
    state = STATES.get(rec["state"], "?")
    if state != "done":
        print(f"peer {peer[0]}:{peer[1]}: header {state}")
        return 1
    src = address(rec["family"], rec["src_addr"])
    who = f"{src}:{rec['src_port']}" if src else "(no address)"  # LOCAL, UNKNOWN, UNIX
    print(f"client {who} (PROXY v{rec['version']}, via {peer[0]}:{peer[1]}, cookie {rec['cookie']})")
    if rec["tlv_stored"]:
        try:
            raw = tlvs(conn)
        except OSError as e:
            print(f"no TLVs: {e.strerror}")
            return 1
        truncated = " (truncated)" if rec["flags"] & PPBPF_INFO_TLV_TRUNCATED else ""
        print(f"tlvs {tlv_summary(raw)}{truncated}")
    conn.recv(rec["header_len"], socket.MSG_WAITALL)  # annotate mode: the header is still in the stream
    print("payload", conn.recv(100).decode(errors="replace"), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
