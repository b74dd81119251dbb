#!/usr/bin/env python3
# Who is really behind a connection? The answer ppbpf's kernel side keeps for
# each socket, read with nothing but socket.getsockopt and struct: the query
# ABI (include/ppbpf/abi.h) serves any language, unprivileged.
#
#   whois.py PORT    accept one connection on 127.0.0.1:PORT (a port ppbpf
#                    tracks), print its original client, consume the header,
#                    print the first bytes that follow it
import errno
import socket
import struct
import sys
import time

SOL_PPBPF = 0x5050
PPBPF_INFO = 1
# struct ppbpf_info (96 bytes, little endian on x86-64)
INFO = struct.Struct("<HHBBBBiIIIIHH16s16sIIQQQ")
STATES = {1: "pending", 2: "done", 3: "error", 4: "plain"}
FAMILIES = {1: socket.AF_INET, 2: socket.AF_INET6}


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
    raise TimeoutError("the header stayed pending")


def address(family, raw):
    af = FAMILIES.get(family)
    return socket.inet_ntop(af, raw[:4] if af == socket.AF_INET else raw) if af else None


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
    print(f"client {src}:{rec['src_port']} (PROXY v{rec['version']}, via {peer[0]}:{peer[1]}, "
          f"cookie {rec['cookie']})")
    conn.recv(rec["header_len"], socket.MSG_WAITALL)  # annotate mode: the header is still in the stream
    print("payload", conn.recv(100).decode(errors="replace"), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
