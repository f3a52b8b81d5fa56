# gosync top-level build.
#
#   make              library, selftests, examples and the module for this
#                     machine's kernel (or Debian's stock kernel headers)
#   make check        both VM kernels: build, boot, run every selftest
#   make check KERNEL=debug|stock|asan|kcsan   (one run; asan: sanitized
#                     userspace; kcsan: the data-race detector kernel)
#   make demo         boot the VM and run the demo program
#   make bench        boot the stock-kernel VM and run bench/ (tables)
#   make fuzz [SEED=N] [FUZZ_SECONDS=600]   boot the debug-kernel VM and
#                     run the structured fuzzer (fuzz/) alone
#   make tsan         the library and map_test under ThreadSanitizer (run
#                     on the host by 'make check')
#   make deps         install missing Debian packages
#   make install      the library, headers, pkg-config file, man pages,
#                     gsstat and the udev rule (PREFIX=/usr/local,
#                     DESTDIR; INSTALL_MODULES_LOAD=1 adds a modules-load.d
#                     file); 'make uninstall' removes them
#   make dkms         the module's sources to /usr/src/gosync-$(VERSION),
#                     'dkms add' and 'dkms build' ('make dkms-remove')
#
# Everything generated goes to $(BUILD); kmod/ also receives the in-place
# module build for the local kernel, ready for 'sudo insmod kmod/gosync.ko'.

BUILD     ?= build
# The test runs of 'make check': 'debug', 'kcsan' and 'stock' are kernels;
# 'asan' is the stock kernel with libgosync and the selftests built with
# AddressSanitizer and UndefinedBehaviorSanitizer.
KERNEL    ?= debug stock asan kcsan
CC        ?= cc
CFLAGS    ?= -O2 -g
WARN      := -Wall -Wextra -Werror
LIB_CFLAGS := -std=c11 $(WARN) -fPIC -fvisibility=hidden -fno-semantic-interposition -Iinclude -pthread
TEST_CFLAGS := -std=gnu11 $(WARN) -Iinclude -isystem $(BUILD)/kselftest -Iselftests -pthread
# gs_map runs on liburcu: the RCU hash table (urcu-cds) and the
# bulletproof flavour (urcu-bp), which needs no thread registration.
URCU_LIBS := -lurcu-cds -lurcu-bp
LDLIBS_GS := -L$(BUILD)/lib -Wl,-rpath,'$$ORIGIN/../lib' -lgosync $(URCU_LIBS) -pthread
# The shared library: the real file libgosync.so.$(VERSION), its soname
# libgosync.so.0 and the link-time name libgosync.so (symlinks); the
# exported functions and their version node are in lib/libgosync.map
# (scripts/check-symbols.sh keeps it equal to gosync.h's GS_API list).
VERSION   := 0.1.0
SONAME    := libgosync.so.0
LIB_SO    := libgosync.so.$(VERSION)
LIB_MAP   := lib/libgosync.map
SO_FLAGS  := -shared -Wl,-soname,$(SONAME) -Wl,--version-script,$(LIB_MAP)

# The test kernels built here (scripts/build-kernel.sh): 'debug' (KASAN,
# lockdep, coverage, fault injection, kmemleak) and 'kcsan' (data races).
kernel_kdir = $(BUILD)/kernel-$(1)/obj
kernel_image = $(call kernel_kdir,$(1))/arch/x86/boot/bzImage
# The in-place module build: the running kernel's headers if installed (a
# real machine), else Debian's stock kernel headers. Set KDIR to override.
KDIR      ?= local

KSRC      := Kbuild $(wildcard kmod/*.c kmod/*.h kmod/Kbuild) include/uapi/gosync.h
LIB_SRC   := $(wildcard lib/*.c)
LIB_OBJ   := $(LIB_SRC:lib/%.c=$(BUILD)/lib/%.o)
LIB_HDR   := include/gosync.h include/uapi/gosync.h $(wildcard lib/*.h)
TESTS     := $(patsubst selftests/%.c,$(BUILD)/selftests/%,$(wildcard selftests/*_test.c))
TEST_HDR  := $(wildcard selftests/*.h) $(BUILD)/kselftest/kselftest_harness.h
SAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
ASAN_LIB_OBJ := $(LIB_SRC:lib/%.c=$(BUILD)/asan/lib/%.o)
ASAN_TESTS := $(patsubst selftests/%.c,$(BUILD)/asan/selftests/%,$(wildcard selftests/*_test.c))
# ThreadSanitizer: the library and the selftests that need no /dev/gosync,
# run natively on the host by 'make check'.
TSAN_FLAGS := -fsanitize=thread -fno-omit-frame-pointer
TSAN_LIB_OBJ := $(LIB_SRC:lib/%.c=$(BUILD)/tsan/lib/%.o)
TSAN_TESTS := $(BUILD)/tsan/selftests/map_test
FUZZERS   := $(BUILD)/fuzz/gosync_fuzz
EXAMPLES  := $(patsubst examples/%.c,$(BUILD)/examples/%,$(wildcard examples/*.c))
# Tools (gsstat): libc only, no libgosync; the VM runs them from the payload.
TOOLS     := $(patsubst tools/%.c,$(BUILD)/tools/%,$(wildcard tools/*.c))
BENCHES   := $(patsubst bench/%.c,$(BUILD)/bench/%,$(wildcard bench/*.c)) $(BUILD)/bench/chanbench
# Go's channels, the semantic peer of the benchmarks: Debian's golang-go,
# a static binary, no modules and no network; caches under $(BUILD).
GO        ?= go
GO_ENV    := GO111MODULE=off CGO_ENABLED=0 GOFLAGS= GOPROXY=off \
	GOCACHE=$(abspath $(BUILD))/go/cache GOPATH=$(abspath $(BUILD))/go/path
KSELFTEST_TAR := /usr/src/linux-source-6.12.tar.xz

.PHONY: all deps lib selftests examples tools benches fuzzers module check demo bench fuzz clean tsan
.PHONY: install uninstall dkms dkms-remove
.DELETE_ON_ERROR:

all: lib selftests examples tools benches fuzzers module

deps: $(BUILD)/.deps
$(BUILD)/.deps: scripts/deps.sh
	scripts/deps.sh
	@mkdir -p $(@D) && touch $@

lib: $(BUILD)/lib/libgosync.so $(BUILD)/lib/libgosync.a
selftests: $(TESTS)
examples: $(EXAMPLES)
tools: $(TOOLS)
benches: $(BENCHES)
fuzzers: $(FUZZERS)

$(BUILD)/lib/%.o: lib/%.c $(LIB_HDR) | $(BUILD)/.deps
	@mkdir -p $(@D)
	$(CC) $(LIB_CFLAGS) $(CFLAGS) -c -o $@ $<
$(BUILD)/lib/$(LIB_SO): $(LIB_OBJ) $(LIB_MAP)
	$(CC) $(SO_FLAGS) -Wl,--no-undefined -o $@ $(LIB_OBJ) $(URCU_LIBS) -pthread
# The two symlinks, beside each variant's real file (lib, asan, tsan).
SO_LINKS  := $(addsuffix /libgosync.so,$(BUILD)/lib $(BUILD)/asan/lib $(BUILD)/tsan/lib)
$(SO_LINKS): %/libgosync.so: %/$(LIB_SO)
	ln -sf $(LIB_SO) $*/$(SONAME)
	ln -sf $(LIB_SO) $@
$(BUILD)/lib/libgosync.a: $(LIB_OBJ)
	rm -f $@ && ar rcs $@ $^

# The kselftest harness comes from Debian's kernel source, never the repo.
$(BUILD)/kselftest/kselftest_harness.h: | $(BUILD)/.deps
	@mkdir -p $(@D)
	tar -xJf $(KSELFTEST_TAR) -C $(@D) --strip-components=4 \
		linux-source-6.12/tools/testing/selftests/kselftest_harness.h \
		linux-source-6.12/tools/testing/selftests/kselftest.h
	touch $@

$(BUILD)/selftests/%: selftests/%.c $(TEST_HDR) $(BUILD)/lib/libgosync.so
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) $(CFLAGS) -o $@ $< $(LDLIBS_GS)

# The same library and tests under ASan+UBSan, for the 'asan' run.
$(BUILD)/asan/lib/%.o: lib/%.c $(LIB_HDR) | $(BUILD)/.deps
	@mkdir -p $(@D)
	$(CC) $(LIB_CFLAGS) $(CFLAGS) $(SAN_FLAGS) -c -o $@ $<
$(BUILD)/asan/lib/$(LIB_SO): $(ASAN_LIB_OBJ) $(LIB_MAP)
	$(CC) $(SO_FLAGS) $(SAN_FLAGS) -o $@ $(ASAN_LIB_OBJ) $(URCU_LIBS) -pthread
$(BUILD)/asan/selftests/%: selftests/%.c $(TEST_HDR) $(BUILD)/asan/lib/libgosync.so
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) $(CFLAGS) $(SAN_FLAGS) -o $@ $< \
		-L$(BUILD)/asan/lib -Wl,-rpath,'$$ORIGIN/../lib' -lgosync $(URCU_LIBS) -pthread

# The same under ThreadSanitizer, for the host check (scripts/tsan.supp
# names the false positives of the uninstrumented liburcu, and why).
tsan: $(TSAN_TESTS)
$(BUILD)/tsan/lib/%.o: lib/%.c $(LIB_HDR) | $(BUILD)/.deps
	@mkdir -p $(@D)
	$(CC) $(LIB_CFLAGS) $(CFLAGS) $(TSAN_FLAGS) -c -o $@ $<
$(BUILD)/tsan/lib/$(LIB_SO): $(TSAN_LIB_OBJ) $(LIB_MAP)
	$(CC) $(SO_FLAGS) $(TSAN_FLAGS) -o $@ $(TSAN_LIB_OBJ) $(URCU_LIBS) -pthread
$(BUILD)/tsan/selftests/%: selftests/%.c $(TEST_HDR) $(BUILD)/tsan/lib/libgosync.so
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) $(CFLAGS) $(TSAN_FLAGS) -o $@ $< \
		-L$(BUILD)/tsan/lib -Wl,-rpath,'$$ORIGIN/../lib' -lgosync $(URCU_LIBS) -pthread

$(BUILD)/examples/%: examples/%.c include/gosync.h $(BUILD)/lib/libgosync.so
	@mkdir -p $(@D)
	$(CC) -std=c11 $(WARN) -Iinclude $(CFLAGS) -o $@ $< $(LDLIBS_GS)

$(BUILD)/tools/%: tools/%.c | $(BUILD)/.deps
	@mkdir -p $(@D)
	$(CC) -std=gnu11 $(WARN) $(CFLAGS) -o $@ $<
# gsstat_test runs gsstat (../tools/gsstat from its own directory).
$(BUILD)/selftests/gsstat_test $(BUILD)/asan/selftests/gsstat_test: | $(TOOLS)

# The fuzzer issues raw ioctls: it needs only the ABI header.
$(BUILD)/fuzz/%: fuzz/%.c include/uapi/gosync.h | $(BUILD)/.deps
	@mkdir -p $(@D)
	$(CC) -std=gnu11 $(WARN) -Iinclude $(CFLAGS) -o $@ $< -pthread

$(BUILD)/bench/%: bench/%.c $(wildcard bench/*.h) include/gosync.h $(BUILD)/lib/libgosync.so
	@mkdir -p $(@D)
	$(CC) -std=c11 $(WARN) -Iinclude $(CFLAGS) -o $@ $< $(LDLIBS_GS)

$(BUILD)/bench/chanbench: bench/go/chanbench.go | $(BUILD)/.deps
	@mkdir -p $(@D) $(BUILD)/go
	cd bench/go && $(GO_ENV) $(GO) vet chanbench.go
	cd bench/go && $(GO_ENV) $(GO) build -trimpath -o $(abspath $@) chanbench.go

# In-place module build for this machine: kmod/gosync.ko.
module: kmod/gosync.ko
kmod/gosync.ko: $(KSRC) | $(BUILD)/.deps
	+scripts/build-module.sh $(KDIR) . $(BUILD)/module-local.log

# Per-kernel builds in copies of the source tree, so they never clobber
# each other or the in-place build.
$(BUILD)/stock/kmod/gosync.ko: $(KSRC) | $(BUILD)/.deps
	+scripts/build-module.sh stock $(BUILD)/stock $(BUILD)/stock/build.log
# The debug kernel's module is built for coverage (kmod/Kbuild).
$(BUILD)/debug/kmod/gosync.ko: $(KSRC) $(call kernel_image,debug)
	+scripts/build-module.sh $(abspath $(call kernel_kdir,debug)) $(BUILD)/debug $(BUILD)/debug/build.log \
		GOSYNC_COVERAGE=y
$(BUILD)/kcsan/kmod/gosync.ko: $(KSRC) $(call kernel_image,kcsan)
	+scripts/build-module.sh $(abspath $(call kernel_kdir,kcsan)) $(BUILD)/kcsan $(BUILD)/kcsan/build.log

# The test kernels: the script keeps each one cached (keyed by its config
# fragments) and rebuilds it only when they change.
.PHONY: debug-kernel kcsan-kernel
debug-kernel kcsan-kernel: %-kernel: $(call kernel_image,%)
$(BUILD)/kernel-%/obj/arch/x86/boot/bzImage: scripts/kernel-base.config scripts/kernel-%.config \
		scripts/build-kernel.sh | $(BUILD)/.deps
	scripts/build-kernel.sh $* $(BUILD)

CHECK_KERNELS := $(sort $(filter debug stock kcsan,$(KERNEL)) $(if $(filter asan,$(KERNEL)),stock))
check: $(foreach k,$(CHECK_KERNELS),$(BUILD)/$(k)/kmod/gosync.ko) $(TESTS) $(EXAMPLES) $(TOOLS) $(FUZZERS) \
		$(if $(filter asan,$(KERNEL)),$(ASAN_TESTS)) $(TSAN_TESTS)
	scripts/run-vm-tests.sh check $(BUILD) $(KERNEL)

DEMO_KERNEL := $(lastword $(filter debug stock,$(CHECK_KERNELS)))
demo: $(BUILD)/$(DEMO_KERNEL)/kmod/gosync.ko $(EXAMPLES)
	scripts/run-vm-tests.sh demo $(BUILD) $(DEMO_KERNEL)

# The structured fuzzer alone on the debug kernel (SEED replays a run;
# 'make check' runs GOSYNC_FUZZ_SECONDS of it after the selftests).
SEED         ?=
FUZZ_SECONDS ?= 600
fuzz: $(BUILD)/debug/kmod/gosync.ko $(BUILD)/lib/libgosync.so $(FUZZERS)
	GOSYNC_FUZZ_SEED=$(SEED) GOSYNC_FUZZ_SECONDS=$(FUZZ_SECONDS) \
		scripts/run-vm-tests.sh fuzz $(BUILD) debug

# Benchmarks run on the stock kernel: debug options would distort them.
# The VM prints the CSV rows; the runner extracts them into
# $(BUILD)/bench/results.csv; report.sh prints the summary and plots
# $(BUILD)/bench/results.png (even from a failed run's partial rows).
bench: $(BUILD)/stock/kmod/gosync.ko $(BENCHES)
	@start=$$(date +%s); scripts/run-vm-tests.sh bench $(BUILD) stock; rc=$$?; \
	bench/report.sh $(BUILD)/bench/results.csv $(BUILD)/bench/results.png || rc=1; \
	echo "=== make bench: $$(( $$(date +%s) - start )) s, exit $$rc ==="; exit $$rc

# Installation, for a real machine or a package (DESTDIR stages it).
PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
MANDIR     ?= $(PREFIX)/share/man
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
SYSCONFDIR ?= /etc
UDEVDIR    ?= /usr/lib/udev/rules.d
# INSTALL_MODULES_LOAD=1: also $(SYSCONFDIR)/modules-load.d/gosync.conf,
# so that systemd loads the module at boot.
INSTALL_MODULES_LOAD ?=
MAN3       := $(wildcard man/*.3)
MAN7       := $(wildcard man/*.7)
# gosync.h includes "uapi/gosync.h": it goes to $(INCLUDEDIR)/uapi/.
define GOSYNC_PC
prefix=$(PREFIX)
libdir=$(LIBDIR)
includedir=$(INCLUDEDIR)

Name: gosync
Description: Go's channels, select, semaphores and sync package for C, on /dev/gosync
Version: $(VERSION)
Cflags: -I$${includedir}
Libs: -L$${libdir} -lgosync
Libs.private: $(URCU_LIBS) -pthread
endef
INSTALLED  := $(LIBDIR)/$(LIB_SO) $(LIBDIR)/$(SONAME) $(LIBDIR)/libgosync.so $(LIBDIR)/libgosync.a \
	$(PKGCONFIGDIR)/gosync.pc $(INCLUDEDIR)/gosync.h $(INCLUDEDIR)/uapi/gosync.h \
	$(TOOLS:$(BUILD)/tools/%=$(BINDIR)/%) $(UDEVDIR)/60-gosync.rules \
	$(MAN3:man/%=$(MANDIR)/man3/%) $(MAN7:man/%=$(MANDIR)/man7/%)

install: lib tools
	$(file >$(BUILD)/lib/gosync.pc,$(GOSYNC_PC))
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(PKGCONFIGDIR) $(DESTDIR)$(INCLUDEDIR)/uapi \
		$(DESTDIR)$(BINDIR) $(DESTDIR)$(UDEVDIR)
	install -m 755 $(BUILD)/lib/$(LIB_SO) $(DESTDIR)$(LIBDIR)/
	ln -sf $(LIB_SO) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(LIB_SO) $(DESTDIR)$(LIBDIR)/libgosync.so
	install -m 644 $(BUILD)/lib/libgosync.a $(DESTDIR)$(LIBDIR)/
	install -m 644 $(BUILD)/lib/gosync.pc $(DESTDIR)$(PKGCONFIGDIR)/
	install -m 644 include/gosync.h $(DESTDIR)$(INCLUDEDIR)/
	install -m 644 include/uapi/gosync.h $(DESTDIR)$(INCLUDEDIR)/uapi/
	install -m 755 $(TOOLS) $(DESTDIR)$(BINDIR)/
	install -m 644 packaging/60-gosync.rules $(DESTDIR)$(UDEVDIR)/
	$(if $(MAN3),install -d $(DESTDIR)$(MANDIR)/man3 && install -m 644 $(MAN3) $(DESTDIR)$(MANDIR)/man3/)
	$(if $(MAN7),install -d $(DESTDIR)$(MANDIR)/man7 && install -m 644 $(MAN7) $(DESTDIR)$(MANDIR)/man7/)
	$(if $(INSTALL_MODULES_LOAD),install -D -m 644 packaging/modules-load.conf \
		$(DESTDIR)$(SYSCONFDIR)/modules-load.d/gosync.conf)
	$(if $(DESTDIR),,-ldconfig)

# Removes what 'make install' put (with the same variables), and the
# modules-load.d file if there is one.
uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALLED)) $(DESTDIR)$(SYSCONFDIR)/modules-load.d/gosync.conf
	[ ! -d $(DESTDIR)$(INCLUDEDIR)/uapi ] || rmdir --ignore-fail-on-non-empty $(DESTDIR)$(INCLUDEDIR)/uapi
	$(if $(DESTDIR),,-ldconfig)

# DKMS (dkms.conf): the module's sources to $(DKMS_SRC)/gosync-$(VERSION),
# then 'dkms add' and 'dkms build' for DKMS_KERNEL (default: the running
# kernel). DKMS_FLAGS passes more options ('--dkmstree DIR').
DKMS_SRC    ?= /usr/src
DKMS_KERNEL ?=
DKMS_FLAGS  ?=
DKMS_DIR    := $(DKMS_SRC)/gosync-$(VERSION)
DKMS_RUN    = dkms $(1) -m gosync -v $(VERSION) --sourcetree $(DKMS_SRC) $(DKMS_FLAGS)
dkms: dkms.conf $(KSRC)
	if $(call DKMS_RUN,status) | grep -q .; then $(call DKMS_RUN,remove) --all; fi
	rm -rf $(DKMS_DIR)
	install -d $(DKMS_DIR)/kmod $(DKMS_DIR)/include/uapi
	cp dkms.conf Kbuild $(DKMS_DIR)/
	cp kmod/Kbuild kmod/*.[ch] $(DKMS_DIR)/kmod/
	cp include/uapi/gosync.h $(DKMS_DIR)/include/uapi/
	$(call DKMS_RUN,add)
	$(call DKMS_RUN,build) $(if $(DKMS_KERNEL),-k $(DKMS_KERNEL))
dkms-remove:
	if $(call DKMS_RUN,status) | grep -q .; then $(call DKMS_RUN,remove) --all; fi
	rm -rf $(DKMS_DIR)

clean:
	rm -rf $(BUILD)/lib $(BUILD)/selftests $(BUILD)/examples $(BUILD)/tools $(BUILD)/bench $(BUILD)/stock $(BUILD)/asan \
		$(BUILD)/tsan \
		$(BUILD)/debug $(BUILD)/kcsan $(BUILD)/vm $(BUILD)/go $(BUILD)/fuzz \
		$(BUILD)/stage $(BUILD)/consumer $(BUILD)/install-check $(BUILD)/dkms
	rm -f kmod/*.o kmod/*.ko kmod/*.mod* kmod/.*.cmd kmod/modules.order \
		modules.order Module.symvers .*.cmd
