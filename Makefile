# plinth — one non-recursive Makefile. `make` builds everything into build/,
# `make test` installs what is missing, builds and runs every suite.
#
# Conventions (new files are picked up without editing this file):
#   raft/*.c kv/*.c net/*.c node/*.c sched/*.c  -> build/lib/lib<module>.a
#   proto/*.proto                               -> build/gen/*.pb-c.[ch] -> build/lib/libproto.a
#   cmd/<prog>/*.c                              -> build/bin/<prog>
#   tests/lib/*.c                               -> build/lib/libtestlib.a
#   tests/unit/<module>/test_*.c                -> build/tests/unit/<module>/test_* (one program each)
#   tests/sim/*.c                               -> build/tests/sim/sim
#   tests/fuzz/fuzz_*.c                         -> build/fuzz/fuzz_* (clang, libFuzzer)
#   tests/tools/<name>.c                        -> build/tests/tools/<name> (helpers for suites)
#   bench/bench_*.c                             -> build/bench/bench_*
#   tests/cluster/test_*.sh                     -> run by tests/run.sh

BUILD     ?= build
CC        ?= cc
SANITIZER ?=
PKGS      := lmdb libprotobuf-c libevent libevent_openssl libnghttp2 openssl jansson yaml-0.1
VERSION   := 0.1.0

DEB_PKGS := pkg-config liblmdb-dev libprotobuf-c-dev protobuf-c-compiler libssl-dev \
            libevent-dev libnghttp2-dev libjansson-dev libyaml-dev libcmocka-dev \
            etcd-client python3-etcd3 clang libclang-rt-14-dev openssl procps psmisc curl
BENCH_DEB_PKGS := etcd-server

WARN     := -Wall -Wextra -Werror
CFLAGS   ?= -O2 -g
ALL_CFLAGS = -std=c11 $(CFLAGS) $(WARN) -D_GNU_SOURCE -DPLINTH_VERSION='"$(VERSION)"' \
             -MMD -MP -I. -I$(BUILD)/gen $(PKG_CFLAGS) $(SAN_FLAGS)
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CMOCKA_LIBS = $(shell pkg-config --libs cmocka 2>/dev/null)
ifneq ($(SANITIZER),)
SAN_FLAGS := -fsanitize=$(SANITIZER) -fno-omit-frame-pointer -fno-sanitize-recover=all
endif
LDLIBS = $(SAN_FLAGS) $(PKG_LIBS) -lm -lpthread

.PHONY: all deps deps-bench test asan sim fuzz bench check-deps format clean demo tools
all: tools

# --- install what is missing (Debian 12) -----------------------------------
deps:
	@scripts/deps.sh $(DEB_PKGS)
deps-bench:
	@scripts/deps.sh $(DEB_PKGS) $(BENCH_DEB_PKGS)

# --- generated protobuf C ---------------------------------------------------
PROTOS    := $(wildcard proto/*.proto)
PROTO_C   := $(patsubst proto/%.proto,$(BUILD)/gen/%.pb-c.c,$(PROTOS))
PROTO_H   := $(PROTO_C:.c=.h)
.SECONDARY: $(PROTO_C) $(PROTO_H)
$(BUILD)/gen/%.pb-c.c $(BUILD)/gen/%.pb-c.h: proto/%.proto
	@mkdir -p $(BUILD)/gen
	protoc-c -Iproto --c_out=$(BUILD)/gen $<
$(BUILD)/obj/gen/%.o: $(BUILD)/gen/%.c | $(PROTO_H)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Wno-unused-parameter -c $< -o $@

# --- libraries --------------------------------------------------------------
MODULES := raft kv net node sched
define module_lib
$(1)_SRC := $$(wildcard $(1)/*.c)
$(1)_OBJ := $$(patsubst %.c,$(BUILD)/obj/%.o,$$($(1)_SRC))
$(BUILD)/lib/lib$(1).a: $$($(1)_OBJ)
	@mkdir -p $$(dir $$@)
	$$(if $$^,ar rcs $$@.$$$$$$$$ $$^,ar rcs $$@.$$$$$$$$) && mv -f $$@.$$$$$$$$ $$@
LIBS_ALL += $(BUILD)/lib/lib$(1).a
endef
$(foreach m,$(MODULES),$(eval $(call module_lib,$(m))))

PROTO_OBJ := $(patsubst $(BUILD)/gen/%.c,$(BUILD)/obj/gen/%.o,$(PROTO_C))
$(BUILD)/lib/libproto.a: $(PROTO_OBJ)
	@mkdir -p $(dir $@)
	$(if $^,ar rcs $@.$$$$ $^,ar rcs $@.$$$$) && mv -f $@.$$$$ $@

TESTLIB_SRC := $(wildcard tests/lib/*.c)
TESTLIB_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(TESTLIB_SRC))
$(BUILD)/lib/libtestlib.a: $(TESTLIB_OBJ)
	@mkdir -p $(dir $@)
	$(if $^,ar rcs $@.$$$$ $^,ar rcs $@.$$$$) && mv -f $@.$$$$ $@

# link order: dependents first (cmd -> sched -> node -> net -> kv -> raft -> proto)
LINK_LIBS := $(BUILD)/lib/libsched.a $(BUILD)/lib/libnode.a $(BUILD)/lib/libnet.a \
             $(BUILD)/lib/libkv.a $(BUILD)/lib/libraft.a $(BUILD)/lib/libproto.a

$(BUILD)/obj/%.o: %.c | $(PROTO_H)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

# --- programs ---------------------------------------------------------------
PROGS := $(notdir $(wildcard cmd/*))
define prog_rule
$(1)_SRC := $$(wildcard cmd/$(1)/*.c)
$(1)_OBJ := $$(patsubst %.c,$(BUILD)/obj/%.o,$$($(1)_SRC))
$(BUILD)/bin/$(1): $$($(1)_OBJ) $$(LINK_LIBS)
	@mkdir -p $$(dir $$@)
	$$(CC) -o $$@ $$($(1)_OBJ) $$(LINK_LIBS) $$(LDLIBS)
BINS += $(BUILD)/bin/$(1)
endef
$(foreach p,$(PROGS),$(if $(wildcard cmd/$(p)/*.c),$(eval $(call prog_rule,$(p)))))

# --- tests ------------------------------------------------------------------
UNIT_SRC  := $(wildcard tests/unit/*/test_*.c)
UNIT_BINS := $(patsubst %.c,$(BUILD)/%,$(UNIT_SRC))
$(BUILD)/tests/unit/%: $(BUILD)/obj/tests/unit/%.o $(BUILD)/lib/libtestlib.a $(LINK_LIBS)
	@mkdir -p $(dir $@)
	$(CC) -o $@ $< $(BUILD)/lib/libtestlib.a $(LINK_LIBS) $(CMOCKA_LIBS) $(LDLIBS)

SIM_SRC := $(wildcard tests/sim/*.c)
SIM_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(SIM_SRC))
ifneq ($(SIM_SRC),)
SIM_BIN := $(BUILD)/tests/sim/sim
$(SIM_BIN): $(SIM_OBJ) $(BUILD)/lib/libtestlib.a $(LINK_LIBS)
	@mkdir -p $(dir $@)
	$(CC) -o $@ $(SIM_OBJ) $(BUILD)/lib/libtestlib.a $(LINK_LIBS) $(CMOCKA_LIBS) $(LDLIBS)
endif

TOOL_SRC  := $(wildcard tests/tools/*.c)
TOOL_BINS := $(patsubst tests/tools/%.c,$(BUILD)/tests/tools/%,$(TOOL_SRC))
$(BUILD)/tests/tools/%: $(BUILD)/obj/tests/tools/%.o $(BUILD)/lib/libtestlib.a $(LINK_LIBS)
	@mkdir -p $(dir $@)
	$(CC) -o $@ $< $(BUILD)/lib/libtestlib.a $(LINK_LIBS) $(CMOCKA_LIBS) $(LDLIBS)

BENCH_SRC  := $(wildcard bench/bench_*.c)
BENCH_BINS := $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_SRC))
$(BUILD)/bench/%: $(BUILD)/obj/bench/%.o $(BUILD)/lib/libtestlib.a $(LINK_LIBS)
	@mkdir -p $(dir $@)
	$(CC) -o $@ $< $(BUILD)/lib/libtestlib.a $(LINK_LIBS) $(CMOCKA_LIBS) $(LDLIBS)

# libFuzzer targets: built with clang; each links the module libraries built
# with the same fuzzer instrumentation in build/fuzz-obj.
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRC))
FUZZ_CFLAGS = -std=c11 -O1 -g -D_GNU_SOURCE -DPLINTH_VERSION='"$(VERSION)"' -I. -I$(BUILD)/gen $(PKG_CFLAGS) \
              -fsanitize=fuzzer-no-link,address,undefined
FUZZ_LIB_SRC := $(foreach m,raft kv net,$(wildcard $(m)/*.c))
FUZZ_LIB_OBJ := $(patsubst %.c,$(BUILD)/fuzz-obj/%.o,$(FUZZ_LIB_SRC)) \
                $(patsubst $(BUILD)/gen/%.c,$(BUILD)/fuzz-obj/gen/%.o,$(PROTO_C))
$(BUILD)/fuzz-obj/gen/%.o: $(BUILD)/gen/%.c | $(PROTO_H)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -c $< -o $@
$(BUILD)/fuzz-obj/%.o: %.c | $(PROTO_H)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -c $< -o $@
$(BUILD)/fuzz/%: $(BUILD)/fuzz-obj/tests/fuzz/%.o $(FUZZ_LIB_OBJ)
	@mkdir -p $(dir $@)
	clang -fsanitize=fuzzer,address,undefined -o $@ $^ $(PKG_LIBS) -lm -lpthread

tools: $(LIBS_ALL) $(BUILD)/lib/libproto.a $(BUILD)/lib/libtestlib.a $(BINS) $(UNIT_BINS) $(SIM_BIN) $(TOOL_BINS) $(BENCH_BINS)

test: deps
	@$(MAKE) --no-print-directory tools
	@$(MAKE) --no-print-directory fuzz-build
	@BUILD=$(BUILD) tests/run.sh

fuzz-build: $(FUZZ_BINS)

asan: deps
	@$(MAKE) --no-print-directory BUILD=build/asan SANITIZER=address,undefined CFLAGS='-O1 -g' tools
	@BUILD=build/asan PLINTH_ASAN=1 tests/run.sh

sim: deps
	@$(MAKE) --no-print-directory tools
	$(BUILD)/tests/sim/sim --seeds $(or $(SEEDS),20000) $(if $(SEED),--seed $(SEED))

fuzz: deps
	@$(MAKE) --no-print-directory fuzz-build
	@for f in $(FUZZ_BINS); do echo "== $$f"; mkdir -p $(BUILD)/corpus/$$(basename $$f); \
	  $$f -max_total_time=$(or $(FUZZ_SECONDS),120) $(BUILD)/corpus/$$(basename $$f) || exit 1; done

bench: deps-bench
	@$(MAKE) --no-print-directory tools
	bench/run.sh

demo: deps
	@$(MAKE) --no-print-directory tools
	scripts/demo.sh

# raft/ may include libc and its own headers only; kv/ must not reach net/ or sched/, etc.
check-deps:
	@scripts/check-deps.sh

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
