# ppbpf — one entry point: all, test (T=PROG[/CASE]: one of them), vm-test, bench, fuzz, install, uninstall,
# demo, clean.
# Output goes to .output/ only. `make V=1` shows the commands.

OUTPUT ?= .output
PREFIX ?= /usr/local
CC ?= gcc
CLANG ?= clang
BPFTOOL ?= bpftool
ARCH := $(shell uname -m | sed 's/x86_64/x86/;s/aarch64/arm64/')

VERSION := 0.1.0
SYSTEMD_UNIT_DIR ?= /etc/systemd/system
QUICK ?= 0
SOVERSION := 0

WARN := -Wall -Wextra -Werror
CFLAGS ?= -O2 -g
CFLAGS += $(WARN) -std=gnu11 -Iinclude -I$(OUTPUT) -D_GNU_SOURCE
BPF_CFLAGS := -g -O2 -target bpf -mcpu=v3 -D__TARGET_ARCH_$(ARCH) $(WARN) -Wno-unused-function \
	-Iinclude -I$(OUTPUT)
SAN_FLAGS := -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer

ifeq ($(V),1)
Q =
msg =
else
Q = @
msg = @printf '  %-8s %s\n' "$(1)" "$(2)";
MAKEFLAGS += --no-print-directory
endif

LIB_SRCS := $(wildcard user/lib/*.c)
CLI_SRCS := $(wildcard user/cli/*.c)
BPF_SRCS := $(wildcard bpf/*.bpf.c)
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_COMMON := tests/unit/vectors.c tests/unit/vectors_table.c
HDRS := $(wildcard include/ppbpf/*.h) $(wildcard user/lib/*.h) $(wildcard user/cli/*.h) \
	$(wildcard tests/unit/*.h)

LIB_OBJS := $(patsubst user/lib/%.c,$(OUTPUT)/lib/%.o,$(LIB_SRCS))
LIB_SAN_OBJS := $(patsubst user/lib/%.c,$(OUTPUT)/san/lib/%.o,$(LIB_SRCS))
CLI_OBJS := $(patsubst user/cli/%.c,$(OUTPUT)/cli/%.o,$(CLI_SRCS))
BPF_OBJS := $(patsubst bpf/%.bpf.c,$(OUTPUT)/bpf/%.bpf.o,$(BPF_SRCS))
SKELS := $(patsubst bpf/%.bpf.c,$(OUTPUT)/%.skel.h,$(BPF_SRCS))
# Test and bench helpers (tests/bpf/): built only by the targets that load them, never by `all`.
DROP_ONCE := $(OUTPUT)/tests/bpf/drop_once.bpf.o
STREAM_TEST := $(OUTPUT)/tests/stream_test
SEND_TEST := $(OUTPUT)/tests/send_test
RELAY_TEST := $(OUTPUT)/tests/relay_test
# bpf/impair.bpf.c, the self-test's impairment, built three ways for the tests (its rates' defaults, ppm).
IMPAIR_OBJS := $(OUTPUT)/tests/bpf/impair_in.bpf.o $(OUTPUT)/tests/bpf/impair_ack.bpf.o \
	$(OUTPUT)/tests/bpf/impair_reorder.bpf.o
IMPAIR_FLAGS_in := -DIMPAIR_LOSS=20000 -DIMPAIR_DUP=10000 -DIMPAIR_REORDER=0
IMPAIR_FLAGS_ack := -DIMPAIR_LOSS=20000 -DIMPAIR_DUP=0 -DIMPAIR_REORDER=0
IMPAIR_FLAGS_reorder := -DIMPAIR_LOSS=0 -DIMPAIR_DUP=0 -DIMPAIR_REORDER=20000
HOOK_FLOOR := $(OUTPUT)/tests/bpf/hook_floor.bpf.o
UNIT_BINS := $(patsubst tests/unit/%.c,$(OUTPUT)/tests/%,$(UNIT_SRCS))
UNIT_SAN_BINS := $(patsubst tests/unit/%.c,$(OUTPUT)/san/tests/%,$(UNIT_SRCS))

LIBA := $(OUTPUT)/libppbpf.a
LIBSO := $(OUTPUT)/libppbpf.so.$(VERSION)
CLI := $(OUTPUT)/ppbpf
DEMO_SERVER := $(OUTPUT)/ppbpf-demo-server
DEMO_CLIENT := $(OUTPUT)/ppbpf-demo-client
BPF_CHECK := $(OUTPUT)/tests/bpf_parse_check
RECV_TEST := $(OUTPUT)/tests/recv_test
TRUST_TEST := $(OUTPUT)/tests/trust_test
ACCEPT_TEST := $(OUTPUT)/tests/accept_test
SEGMENTS_TEST := $(OUTPUT)/tests/segments_test
BENCH := $(OUTPUT)/bench_codec
BENCH_NET := $(OUTPUT)/bench_net
FUZZ := $(OUTPUT)/fuzz_parse
FUZZ_ASSEMBLE := $(OUTPUT)/fuzz_assemble
FUZZ_CLI := $(OUTPUT)/fuzz_config $(OUTPUT)/fuzz_cidr

# Each test group's time, said as it ends and listed at the end of make test / vm-suite.
TIMES := $(OUTPUT)/test-times.txt
TIMED := TIMES_FILE=$(abspath $(TIMES)) scripts/timed.sh

LIBBPF_LIBS := $(shell pkg-config --libs libbpf 2>/dev/null || echo -lbpf -lelf -lz)
# ppbpf run --metrics serves HTTP with libmicrohttpd.
MHD_LIBS := $(shell pkg-config --libs libmicrohttpd 2>/dev/null || echo -lmicrohttpd)

.PHONY: all test test-build unit unit-san bpf-check cli-test integration fuzz bench install uninstall demo clean deps soak \
	vm-test vm-suite
.DELETE_ON_ERROR:
.SECONDARY:

all: $(LIBA) $(LIBSO) $(CLI) $(BPF_OBJS) $(SKELS) $(DEMO_SERVER) $(DEMO_CLIENT)

deps:
	$(Q)scripts/deps.sh

# ---- BPF ----------------------------------------------------------------------
# vmlinux.h is generated from the running kernel's BTF: the programs use CO-RE and
# this keeps 3 MB of generated text out of the repository.
$(OUTPUT)/vmlinux.h: | $(OUTPUT)
	$(call msg,GEN,$@)
	$(Q)test -r /sys/kernel/btf/vmlinux || { echo "no /sys/kernel/btf/vmlinux: kernel BTF is required" >&2; exit 1; }
	$(Q)$(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > $@

$(OUTPUT)/bpf/%.bpf.o: bpf/%.bpf.c $(OUTPUT)/vmlinux.h $(HDRS) $(wildcard bpf/*.h bpf/lib/*.h) | $(OUTPUT)/bpf
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(OUTPUT)/tests/bpf/%.bpf.o: tests/bpf/%.bpf.c $(OUTPUT)/vmlinux.h | $(OUTPUT)/tests/bpf
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(IMPAIR_OBJS): $(OUTPUT)/tests/bpf/impair_%.bpf.o: bpf/impair.bpf.c $(OUTPUT)/vmlinux.h | $(OUTPUT)/tests/bpf
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) $(IMPAIR_FLAGS_$*) -c $< -o $@

$(OUTPUT)/%.skel.h: $(OUTPUT)/bpf/%.bpf.o
	$(call msg,GEN-SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< > $@

# ---- library ---------------------------------------------------------------------
$(OUTPUT)/lib/%.o: user/lib/%.c $(HDRS) | $(OUTPUT)/lib
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -fPIC -fvisibility=hidden -c $< -o $@

$(LIBA): $(LIB_OBJS)
	$(call msg,AR,$@)
	$(Q)$(AR) rcs $@ $^

$(LIBSO): $(LIB_OBJS)
	$(call msg,LD,$@)
	$(Q)$(CC) -shared -Wl,-soname,libppbpf.so.$(SOVERSION) -o $@ $^
	$(Q)ln -sf libppbpf.so.$(VERSION) $(OUTPUT)/libppbpf.so.$(SOVERSION)
	$(Q)ln -sf libppbpf.so.$(SOVERSION) $(OUTPUT)/libppbpf.so

# ---- CLI -------------------------------------------------------------------------
$(OUTPUT)/cli/%.o: user/cli/%.c $(HDRS) $(SKELS) | $(OUTPUT)/cli
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

$(CLI): $(CLI_OBJS) $(LIBA)
	$(call msg,LD,$@)
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(LIBBPF_LIBS) $(MHD_LIBS)

$(DEMO_SERVER): user/examples/demo_server.c $(LIBA) $(HDRS) | $(OUTPUT)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -o $@ $< $(LIBA)

$(DEMO_CLIENT): user/examples/demo_client.c $(LIBA) $(HDRS) | $(OUTPUT)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -o $@ $< $(LIBA)

# ---- tests -----------------------------------------------------------------------
$(OUTPUT)/tests/%: tests/unit/%.c $(UNIT_COMMON) $(LIBA) $(HDRS) | $(OUTPUT)/tests
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -Itests/unit -o $@ $< $(UNIT_COMMON) $(LIBA) -lcmocka

$(OUTPUT)/san/lib/%.o: user/lib/%.c $(HDRS) | $(OUTPUT)/san/lib
	$(call msg,CC-SAN,$@)
	$(Q)$(CC) $(filter-out -O2,$(CFLAGS)) $(SAN_FLAGS) -c $< -o $@

$(OUTPUT)/san/tests/%: tests/unit/%.c $(UNIT_COMMON) $(LIB_SAN_OBJS) $(HDRS) | $(OUTPUT)/san/tests
	$(call msg,CC-SAN,$@)
	$(Q)$(CC) $(filter-out -O2,$(CFLAGS)) $(SAN_FLAGS) -Itests/unit -o $@ $< $(UNIT_COMMON) \
		$(LIB_SAN_OBJS) -lcmocka

$(BPF_CHECK): tests/integration/bpf_parse_check.c $(UNIT_COMMON) $(LIBA) $(SKELS) $(HDRS) | $(OUTPUT)/tests
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -Itests/unit -o $@ $< $(UNIT_COMMON) $(LIBA) $(LIBBPF_LIBS)

$(RECV_TEST): tests/integration/recv_test.c $(LIBA) $(SKELS) $(HDRS) | $(OUTPUT)/tests
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -o $@ $< $(LIBA) -lcmocka -lpthread $(LIBBPF_LIBS)

$(ACCEPT_TEST): tests/integration/accept_test.c $(LIBA) $(HDRS) | $(OUTPUT)/tests
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -o $@ $< $(LIBA) -lcmocka $(LIBBPF_LIBS)

$(TRUST_TEST): tests/integration/trust_test.c $(UNIT_COMMON) $(LIBA) $(HDRS) | $(OUTPUT)/tests
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -Itests/unit -o $@ $< $(UNIT_COMMON) $(LIBA) -lpthread

$(SEGMENTS_TEST): tests/integration/segments_test.c tests/integration/testlib.h $(LIBA) $(HDRS) | $(OUTPUT)/tests
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -o $@ $< $(LIBA) -lpthread $(LIBBPF_LIBS)

$(SEND_TEST): tests/integration/send_test.c include/ppbpf/parse.h include/ppbpf/crc32c.h include/ppbpf/target.h \
		tests/integration/streamlib.h | $(OUTPUT)/tests
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -o $@ $< -lpthread

$(RELAY_TEST): tests/integration/relay_test.c tests/integration/testlib.h $(LIBA) $(HDRS) | $(OUTPUT)/tests
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -o $@ $< $(LIBA) $(LIBBPF_LIBS)

$(STREAM_TEST): tests/integration/stream_test.c include/ppbpf/abi.h include/ppbpf/crc32c.h include/ppbpf/target.h \
		tests/integration/streamlib.h | $(OUTPUT)/tests
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -o $@ $< -lpthread

unit: $(UNIT_BINS)
	$(Q)for t in $(UNIT_BINS); do echo "== $$t"; $$t || exit 1; done

unit-san: $(UNIT_SAN_BINS)
	$(Q)for t in $(UNIT_SAN_BINS); do echo "== $$t (ASan+UBSan)"; \
		ASAN_OPTIONS=detect_leaks=1 $$t || exit 1; done

bpf-check: $(BPF_CHECK)
	$(Q)tests/integration/run_bpf_check.sh $(BPF_CHECK)

cli-test: $(CLI)
	$(Q)tests/integration/cli.sh $(CLI)

# Real sockets in test cgroups (root): the receive path, then real HAProxy in front.
integration: all $(RECV_TEST) $(TRUST_TEST) $(SEGMENTS_TEST) $(ACCEPT_TEST) $(DROP_ONCE) $(STREAM_TEST) $(SEND_TEST) \
		$(RELAY_TEST) $(IMPAIR_OBJS)
	$(Q)$(TIMED) kernel.sh tests/integration/kernel.sh
	$(Q)$(TIMED) accept.sh tests/integration/accept.sh
	$(Q)$(TIMED) segments.sh tests/integration/segments.sh
	$(Q)$(TIMED) trust.sh tests/integration/trust.sh
	$(Q)$(TIMED) haproxy.sh tests/integration/haproxy.sh
	$(Q)$(TIMED) transparent.sh tests/integration/transparent.sh
	$(Q)$(TIMED) apps.sh tests/integration/apps.sh
	$(Q)$(TIMED) send.sh tests/integration/send.sh
	$(Q)$(TIMED) relay.sh tests/integration/relay.sh
	$(Q)$(TIMED) examples.sh tests/integration/examples.sh
	$(Q)$(TIMED) trace.sh tests/integration/trace.sh
	$(Q)$(TIMED) metrics.sh tests/integration/metrics.sh
	$(Q)$(TIMED) install.sh tests/integration/install.sh

# Debian 12's kernel (6.1) under qemu: vm-test builds on the host, then boots it to run
# vm-suite, which uses what the host built: nothing is built or installed in the guest.
vm-test: deps
	$(Q)scripts/deps.sh vm
	$(Q)$(MAKE) all $(BPF_CHECK) $(RECV_TEST) $(TRUST_TEST) $(SEGMENTS_TEST) $(ACCEPT_TEST) $(DROP_ONCE) \
		$(STREAM_TEST) $(SEND_TEST) $(RELAY_TEST) $(IMPAIR_OBJS)
	$(Q)scripts/vm-test.sh

vm-suite:
	$(Q)rm -f $(TIMES)
	$(Q)$(TIMED) bpf-check tests/integration/run_bpf_check.sh $(BPF_CHECK)
	$(Q)$(TIMED) kernel.sh tests/integration/kernel.sh
	$(Q)$(TIMED) accept.sh tests/integration/accept.sh
	$(Q)$(TIMED) segments.sh tests/integration/segments.sh
	$(Q)$(TIMED) trust.sh tests/integration/trust.sh
	$(Q)$(TIMED) transparent.sh tests/integration/transparent.sh
	$(Q)$(TIMED) send.sh tests/integration/send.sh
	$(Q)$(TIMED) relay.sh tests/integration/relay.sh
	$(Q)$(TIMED) examples.sh tests/integration/examples.sh
	$(Q)$(TIMED) trace.sh tests/integration/trace.sh
	$(Q)$(TIMED) metrics.sh tests/integration/metrics.sh
	@echo "ALL GUEST TESTS PASSED on $$(uname -r)"; cat $(TIMES)

# Transparent mode's integrity section with 10 transfers of 2 GiB per link (outside `make test`).
soak: deps all $(STREAM_TEST) $(IMPAIR_OBJS)
	$(Q)PPBPF_TEST_CASE=integrity SOAK_BYTES=$$((2 << 30)) $(TIMED) soak tests/integration/transparent.sh

# ---- fuzzing ---------------------------------------------------------------------
FUZZ_SECONDS ?= 30
$(FUZZ): tests/fuzz/fuzz_parse.c $(LIB_SRCS) $(HDRS) | $(OUTPUT)
	$(call msg,FUZZ-CC,$@)
	$(Q)$(CLANG) -O1 -g $(WARN) -std=gnu11 -Iinclude -D_GNU_SOURCE \
		-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -o $@ $< $(LIB_SRCS)

# The CLI's parsers (config lines, CIDRs): only the sources that parse, and a short line limit.
$(FUZZ_CLI): $(OUTPUT)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/check.h user/cli/options.c user/cli/cidr.c user/cli/util.c \
		user/cli/json.c $(LIB_SRCS) $(HDRS) | $(OUTPUT)
	$(call msg,FUZZ-CC,$@)
	$(Q)$(CLANG) -O1 -g $(WARN) -std=gnu11 -Iinclude -iquote user/cli -D_GNU_SOURCE -DPPBPF_CONFIG_LINE_MAX=512 \
		-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -o $@ $< user/cli/options.c \
		user/cli/cidr.c user/cli/util.c user/cli/json.c $(LIB_SRCS)

# The kernel side's segment rules (bpf/assemble.h), compiled for the host.
$(FUZZ_ASSEMBLE): tests/fuzz/fuzz_assemble.c bpf/assemble.h $(HDRS) | $(OUTPUT)
	$(call msg,FUZZ-CC,$@)
	$(Q)$(CLANG) -O1 -g $(WARN) -std=gnu11 -Iinclude -D_GNU_SOURCE \
		-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -o $@ $<

# FUZZ_SECONDS in all: half for the header parser, a sixth each for the segment rules and the CLI's parsers.
FUZZ_SIXTH = $$((($(FUZZ_SECONDS) + 5) / 6))
fuzz: $(FUZZ) $(FUZZ_ASSEMBLE) $(FUZZ_CLI)
	$(Q)tests/fuzz/run.sh $(FUZZ) $$(($(FUZZ_SECONDS) - 3 * ($(FUZZ_SECONDS) / 6))) parse 8192
	$(Q)tests/fuzz/run.sh $(FUZZ_ASSEMBLE) $(FUZZ_SIXTH) assemble 400
	$(Q)tests/fuzz/run.sh $(OUTPUT)/fuzz_config $(FUZZ_SIXTH) config 4096
	$(Q)tests/fuzz/run.sh $(OUTPUT)/fuzz_cidr $(FUZZ_SIXTH) cidr 4096

# ---- one test program, or one case of it: make test T=PROG[/CASE] -------------------
# PROG: a unit test (tests/unit/PROG.c), run alone, or an integration test program, run by
# its script. CASE: a name `PROG --list` prints (or a shell pattern over them), passed on
# as PPBPF_TEST_CASE: cases.h runs only the matching cmocka cases, and lib.sh only the
# script's steps that run one of them, with what those steps need.
INTEGRATION_SCRIPT_recv_test := kernel.sh
INTEGRATION_SCRIPT_accept_test := accept.sh
INTEGRATION_SCRIPT_segments_test := segments.sh
INTEGRATION_SCRIPT_trust_test := trust.sh
INTEGRATION_SCRIPT_stream_test := transparent.sh
INTEGRATION_SCRIPT_send_test := send.sh
INTEGRATION_SCRIPT_relay_test := relay.sh
INTEGRATION_PROGS := recv_test accept_test segments_test trust_test stream_test send_test relay_test
UNIT_PROGS := $(notdir $(UNIT_BINS))
T_PROG := $(firstword $(subst /, ,$(T)))
T_CASE := $(patsubst $(T_PROG)/%,%,$(filter $(T_PROG)/%,$(T)))
ifneq ($(filter $(T_PROG),$(UNIT_PROGS)),)
T_BUILD := $(OUTPUT)/tests/$(T_PROG)
T_RUN := $(OUTPUT)/tests/$(T_PROG)
else ifneq ($(INTEGRATION_SCRIPT_$(T_PROG)),)
T_BUILD := all $(OUTPUT)/tests/$(T_PROG) $(DROP_ONCE) $(STREAM_TEST) $(SEND_TEST) $(RELAY_TEST) $(IMPAIR_OBJS)
T_RUN := tests/integration/$(INTEGRATION_SCRIPT_$(T_PROG))
endif
ifneq ($(T),)
ifneq ($(filter test,$(MAKECMDGOALS)),)
ifeq ($(T_BUILD),)
$(error T=$(T): no test program '$(T_PROG)'. Unit tests: $(UNIT_PROGS). Integration: $(INTEGRATION_PROGS))
endif
endif
endif
# Only T= chooses cases: a PPBPF_TEST_CASE left in the environment does not reach other runs.
unexport PPBPF_TEST_CASE

# ---- entry points ------------------------------------------------------------------
ifeq ($(T),)
test: deps
	$(Q)rm -f $(TIMES)
	$(Q)$(TIMED) build $(MAKE) all
	$(Q)$(TIMED) unit $(MAKE) unit
	$(Q)$(TIMED) unit-san $(MAKE) unit-san
	$(Q)$(TIMED) cli-test $(MAKE) cli-test
	$(Q)$(TIMED) bpf-check $(MAKE) bpf-check
	$(Q)$(MAKE) integration
	$(Q)$(TIMED) fuzz $(MAKE) fuzz
	@echo "ALL TESTS PASSED on $$(uname -r)"; cat $(TIMES)
else
test: deps
	$(Q)$(MAKE) test-build
	$(Q)PPBPF_TEST_CASE='$(T_CASE)' $(T_RUN)
endif

# What T= runs, built (a goal of its own: no "is up to date" for files named as goals).
test-build: $(T_BUILD)
	@:

$(BENCH): tests/bench/bench_codec.c $(LIBA) $(HDRS) | $(OUTPUT)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -o $@ $< $(LIBA)

$(BENCH_NET): tests/bench/bench_net.c $(LIBA) $(HDRS) | $(OUTPUT)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -o $@ $< $(LIBA) -lpthread

# QUICK=1: under 3 minutes. Results: .output/bench-results.json, .output/bench-ratios.svg/.png,
# and the transparent-mode rows on a veth pair: .output/bench-transparent.json.
bench: deps
	$(Q)scripts/deps.sh bench
	$(Q)$(MAKE) all $(BENCH) $(BENCH_NET) $(HOOK_FLOOR)
	$(Q)BENCH_CODEC_JSON=$(OUTPUT)/bench-codec.json $(BENCH)
	$(Q)QUICK=$(QUICK) scripts/bench.sh
	$(Q)QUICK=$(QUICK) scripts/bench_transparent.sh
	$(Q)QUICK=$(QUICK) scripts/bench_send.sh

# PREFIX and DESTDIR as usual; the unit, its example config and the libraries' places can be moved too.
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
MANDIR ?= $(PREFIX)/share/man
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
SYSCONFDIR ?= /etc
D := $(DESTDIR)
# Every file install writes, as uninstall removes them.
INSTALLED := $(PREFIX)/bin/ppbpf $(LIBDIR)/libppbpf.a $(LIBDIR)/libppbpf.so.$(VERSION) \
	$(LIBDIR)/libppbpf.so.$(SOVERSION) $(LIBDIR)/libppbpf.so $(PKGCONFIGDIR)/ppbpf.pc \
	$(addprefix $(INCLUDEDIR)/ppbpf/,$(notdir $(wildcard include/ppbpf/*.h))) $(MANDIR)/man8/ppbpf.8 $(MANDIR)/man3/libppbpf.3 \
	$(SYSTEMD_UNIT_DIR)/ppbpf.service $(SYSCONFDIR)/ppbpf/ppbpf.conf.example $(BASHCOMPDIR)/ppbpf
INSTALL_DIRS := $(PREFIX)/bin $(LIBDIR) $(PKGCONFIGDIR) $(INCLUDEDIR)/ppbpf $(MANDIR)/man8 $(MANDIR)/man3 \
	$(SYSTEMD_UNIT_DIR) $(SYSCONFDIR)/ppbpf $(BASHCOMPDIR)
SUBST = sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|g' \
	-e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' -e 's|@VERSION@|$(VERSION)|g'

install: all
	$(Q)for d in $(INSTALL_DIRS); do install -d "$(D)$$d"; done
	$(Q)install -m 0755 $(CLI) $(D)$(PREFIX)/bin/ppbpf
	$(Q)install -m 0644 $(LIBA) $(D)$(LIBDIR)/
	$(Q)install -m 0755 $(LIBSO) $(D)$(LIBDIR)/
	$(Q)ln -sf libppbpf.so.$(VERSION) $(D)$(LIBDIR)/libppbpf.so.$(SOVERSION)
	$(Q)ln -sf libppbpf.so.$(SOVERSION) $(D)$(LIBDIR)/libppbpf.so
	$(Q)install -m 0644 include/ppbpf/*.h $(D)$(INCLUDEDIR)/ppbpf/
	$(Q)$(SUBST) scripts/ppbpf.pc.in > $(D)$(PKGCONFIGDIR)/ppbpf.pc
	$(Q)install -m 0644 man/ppbpf.8 $(D)$(MANDIR)/man8/
	$(Q)install -m 0644 man/libppbpf.3 $(D)$(MANDIR)/man3/
	$(Q)$(SUBST) scripts/ppbpf.service > $(D)$(SYSTEMD_UNIT_DIR)/ppbpf.service
	$(Q)install -m 0644 scripts/ppbpf.conf.example $(D)$(SYSCONFDIR)/ppbpf/
	$(Q)install -m 0644 scripts/ppbpf.bash $(D)$(BASHCOMPDIR)/ppbpf

# Removes what install wrote, and the folders that are ppbpf's own; under a DESTDIR, every
# folder that is left empty, so that the tree is as before.
uninstall:
	$(Q)rm -f $(addprefix $(D),$(INSTALLED))
	$(Q)rmdir $(D)$(INCLUDEDIR)/ppbpf $(D)$(SYSCONFDIR)/ppbpf 2>/dev/null || true
	$(Q)if [ -n "$(DESTDIR)" ]; then for d in $(INSTALL_DIRS); do p="$(D)$$d"; \
		while [ "$$p" != "$(D)" ] && { rmdir "$$p" 2>/dev/null || [ ! -e "$$p" ]; }; do p=$$(dirname "$$p"); done; \
	done; fi

demo:
	$(Q)scripts/demo.sh

clean:
	$(call msg,CLEAN,$(OUTPUT))
	$(Q)rm -rf $(OUTPUT)

$(OUTPUT) $(OUTPUT)/bpf $(OUTPUT)/lib $(OUTPUT)/cli $(OUTPUT)/tests $(OUTPUT)/tests/bpf $(OUTPUT)/san/lib $(OUTPUT)/san/tests:
	$(Q)mkdir -p $@
