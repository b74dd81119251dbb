// SPDX-License-Identifier: MIT

// Who is really behind a connection? whois.py in Go, with the standard
// library only (no golang.org/x/sys/unix, no module download): the query ABI
// (include/ppbpf/abi.h) is one getsockopt, made with syscall.Syscall6 on the
// socket's own fd, and a struct decoded with encoding/binary.
//
//	go build -o whois-go whois.go   (or: go run whois.go PORT)
//	./whois-go PORT   accept one connection on 127.0.0.1:PORT (a port ppbpf
//	                  tracks), print its original client and a summary of the
//	                  header's TLVs (the cloud balancers' ids decoded), consume
//	                  the header, print the first bytes that follow it
//
// It prints what whois.py prints, line for line.
package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"
)

const (
	solPPBPF      = 0x5050
	ppbpfInfo     = 1
	ppbpfTLVs     = 2
	ppbpfTLVsSize = 4 + 1024 // the count, then at most PPBPF_TLV_MAX bytes
	infoSize      = 96       // sizeof(struct ppbpf_info)
	tlvTruncated  = 0x1      // PPBPF_INFO_TLV_TRUNCATED
	statePending  = 1
	stateDone     = 2
)

// The record is in host order: little endian on x86-64 (and arm64).
// binary.NativeEndian would say so portably, but it came with Go 1.21, and
// Debian 12 has Go 1.19.
var host = binary.LittleEndian

var states = map[uint8]string{1: "pending", 2: "done", 3: "error", 4: "plain"}

var tlvNames = map[byte]string{0x01: "ALPN", 0x02: "AUTHORITY", 0x03: "CRC32C", 0x04: "NOOP", 0x05: "UNIQUE_ID",
	0x20: "SSL", 0x30: "NETNS", 0xE0: "GCP", 0xEA: "AWS", 0xEE: "AZURE"}

// The fields of struct ppbpf_info this program reads, at their offsets in it.
type info struct {
	state, version, family uint8  // 4, 5, 7
	headerLen, flags       uint32 // 12, 24
	srcPort                uint16 // 28
	srcAddr                [16]byte
	tlvStored              uint32 // 68
	cookie                 uint64 // 72
}

func decode(b []byte) info {
	var r info
	r.state, r.version, r.family = b[4], b[5], b[7]
	r.headerLen, r.flags = host.Uint32(b[12:]), host.Uint32(b[24:])
	r.srcPort = host.Uint16(b[28:])
	copy(r.srcAddr[:], b[32:48])
	r.tlvStored = host.Uint32(b[68:])
	r.cookie = host.Uint64(b[72:])
	return r
}

// getsockopt(fd, SOL_PPBPF, opt, buf, &len) on the connection's socket: the bytes returned.
func getsockopt(c *net.TCPConn, opt int, buf []byte) (int, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	n := uint32(len(buf)) // socklen_t
	var errno syscall.Errno
	if err := raw.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall6(syscall.SYS_GETSOCKOPT, fd, solPPBPF, uintptr(opt),
			uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&n)), 0)
	}); err != nil {
		return 0, err
	}
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// The record; waits while the kernel is still setting it up or the header is pending.
func query(c *net.TCPConn) (info, error) {
	buf := make([]byte, infoSize)
	for i := 0; i < 300; i++ {
		n, err := getsockopt(c, ppbpfInfo, buf)
		if errors.Is(err, syscall.EAGAIN) {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if err != nil {
			return info{}, err
		}
		if n < infoSize {
			return info{}, syscall.EPROTO
		}
		if r := decode(buf); r.state != statePending {
			return r, nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return info{}, errors.New("the header stayed pending")
}

// The original source address as text; "" for families without one.
func address(family uint8, raw [16]byte) string {
	switch family {
	case 1, 3: // TCP4, UDP4
		var a [4]byte
		copy(a[:], raw[:4])
		return netip.AddrFrom4(a).String()
	case 2, 4: // TCP6, UDP6
		return netip.AddrFrom16(raw).String()
	}
	return ""
}

// v as text if it is one word of printable ASCII, else "".
func text(v []byte) string {
	for _, b := range v {
		if b < 0x21 || b > 0x7e {
			return ""
		}
	}
	return string(v)
}

// One word per TLV: its name (or 0xNN), with =VALUE for the text ones and the cloud balancers' ids.
func tlvSummary(raw []byte) string {
	var words []string
	for len(raw) > 0 {
		if len(raw) < 3 || int(binary.BigEndian.Uint16(raw[1:3])) > len(raw)-3 {
			words = append(words, "(malformed)")
			break
		}
		t, n := raw[0], int(binary.BigEndian.Uint16(raw[1:3]))
		v := raw[3 : 3+n]
		raw = raw[3+n:]
		word, ok := tlvNames[t]
		if !ok {
			word = fmt.Sprintf("0x%02x", t)
		}
		value := ""
		switch {
		case t == 0x01 || t == 0x02 || t == 0x05: // ALPN, AUTHORITY, UNIQUE_ID
			value = text(v)
		case t == 0xEA && n >= 1 && v[0] == 0x01: // AWS: subtype VPCE_ID, then the endpoint id
			value = text(v[1:])
		case t == 0xE0 && n == 8: // GCP: the PSC connection id, big endian
			value = strconv.FormatUint(binary.BigEndian.Uint64(v), 10)
		case t == 0xEE && n == 5 && v[0] == 0x01: // Azure: subtype LINKID, then 4 bytes little endian
			value = strconv.FormatUint(uint64(binary.LittleEndian.Uint32(v[1:])), 10)
		}
		if value != "" {
			word += "=" + value
		}
		words = append(words, word)
	}
	return strings.Join(words, " ")
}

// An error's text as C's strerror (and Python) print it: capitalised.
func strerror(err error) string {
	s := err.Error()
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func run() int {
	if len(os.Args) != 2 {
		fmt.Fprintf(os.Stderr, "usage: %s PORT\n", os.Args[0])
		return 2
	}
	port, err := strconv.Atoi(os.Args[1])
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: not a port: %s\n", os.Args[0], os.Args[1])
		return 2
	}
	// (Go's listeners set SO_REUSEADDR, as whois.py does)
	l, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen:", err)
		return 1
	}
	fmt.Println("listening")
	c, err := l.AcceptTCP()
	if err != nil {
		fmt.Fprintln(os.Stderr, "accept:", err)
		return 1
	}
	defer c.Close()
	peer := c.RemoteAddr().String()
	r, err := query(c)
	if err != nil {
		fmt.Printf("no record: %s (is ppbpf attached to this cgroup and port?)\n", strerror(err))
		return 1
	}
	if r.state != stateDone {
		state, ok := states[r.state]
		if !ok {
			state = "?"
		}
		fmt.Printf("peer %s: header %s\n", peer, state)
		return 1
	}
	who := "(no address)" // LOCAL, UNKNOWN, UNIX
	if src := address(r.family, r.srcAddr); src != "" {
		who = fmt.Sprintf("%s:%d", src, r.srcPort)
	}
	fmt.Printf("client %s (PROXY v%d, via %s, cookie %d)\n", who, r.version, peer, r.cookie)
	if r.tlvStored > 0 {
		buf := make([]byte, ppbpfTLVsSize)
		got, err := getsockopt(c, ppbpfTLVs, buf)
		if err == nil && (got < 4 || int(host.Uint32(buf)) > got-4) {
			err = syscall.EPROTO
		}
		if err != nil {
			fmt.Printf("no TLVs: %s\n", strerror(err))
			return 1
		}
		truncated := ""
		if r.flags&tlvTruncated != 0 {
			truncated = " (truncated)"
		}
		fmt.Printf("tlvs %s%s\n", tlvSummary(buf[4:4+host.Uint32(buf)]), truncated)
	}
	// annotate mode: the header is still in the stream
	if _, err := io.ReadFull(c, make([]byte, r.headerLen)); err != nil {
		fmt.Fprintln(os.Stderr, "reading the header:", err)
		return 1
	}
	payload := make([]byte, 100)
	n, _ := c.Read(payload)
	fmt.Printf("payload %s\n", strings.ToValidUTF8(string(payload[:n]), "\uFFFD"))
	return 0
}

func main() {
	os.Exit(run())
}
