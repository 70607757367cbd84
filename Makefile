# edgegate build. `make` builds build/edgegate, build/edgegatectl and build/dcsim.
# See README.md for run/test; everything lands under build/.

VERSION := 0.1.0
CC      ?= cc
CFLAGS  ?= -O2 -g
CFLAGS  += -std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE -DEG_VERSION='"$(VERSION)"' \
           -I. -Ibuild/gen -fno-strict-aliasing
LDLIBS  := -lev -lssl -lcrypto -lhiredis -lcares -lnghttp2 -lm

PREFIX  ?= /usr/local
DESTDIR ?=

B := build

# The layers, lowest first (see tools/check-layers.sh).
LAYERS   := base proto conf healthcheck gateway/balance gateway/ops gateway/proxy gateway/process
CORE_SRC := $(filter-out gateway/process/main.c,$(foreach d,$(LAYERS),$(wildcard $(d)/*.c)))
CORE_OBJ := $(CORE_SRC:%.c=$(B)/obj/%.o)
MAIN_OBJ := $(B)/obj/gateway/process/main.o
DCSIM_SRC := $(wildcard tests/dcsim/*.c)
CTL_SRC := $(wildcard ctl/*.c)
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(B)/unit/%)
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=$(B)/fuzz/%)
HDRS := $(foreach d,$(LAYERS),$(wildcard $(d)/*.h)) $(B)/gen/stats_page.inc

.PHONY: all run test unit e2e fuzz fuzz-corpus fuzz-smoke asan install deb clean deps-build deps-test layers \
        reference chaos chaos-short soak bench

all: $(B)/edgegate $(B)/edgegatectl $(B)/dcsim

# The stats page is an HTML file, compiled in as a C string.
$(B)/gen/stats_page.inc: gateway/ops/stats_page.html
	@mkdir -p $(dir $@)
	sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/"/' -e 's/$$/\\n"/' $< > $@

$(B)/obj/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	@echo "  CC $<"
	@$(CC) $(CFLAGS) -c -o $@ $<

$(B)/libedgegate.a: $(CORE_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(B)/edgegate: $(MAIN_OBJ) $(B)/libedgegate.a
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

# The control tool links the configuration parser and the protocol code.
$(B)/edgegatectl: $(CTL_SRC) $(wildcard ctl/*.h) $(B)/libedgegate.a
	$(CC) $(CFLAGS) -o $@ $(CTL_SRC) $(B)/libedgegate.a $(LDLIBS)

$(B)/dcsim: $(DCSIM_SRC)
	@mkdir -p $(B)
	$(CC) $(CFLAGS) -o $@ $(DCSIM_SRC) -lev -lssl -lcrypto

$(B)/unit/%: tests/unit/%.c $(B)/libedgegate.a
	@mkdir -p $(B)/unit
	$(CC) $(CFLAGS) -o $@ $< $(B)/libedgegate.a -lcmocka $(LDLIBS)

# Sanitizer build of the daemon: the end-to-end suite can run against it
# (EG_BIN=build/asan/edgegate).
SAN := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
$(B)/asan/edgegate: $(CORE_SRC) gateway/process/main.c $(HDRS)
	@mkdir -p $(B)/asan
	$(CC) $(filter-out -O2,$(CFLAGS)) $(SAN) -o $@ $(CORE_SRC) gateway/process/main.c $(LDLIBS)

asan: $(B)/asan/edgegate

# libFuzzer targets link the core sources directly, built with clang.
FUZZ_CFLAGS := -std=gnu11 -g -O1 -D_GNU_SOURCE -DEG_VERSION='"$(VERSION)"' -I. -I$(B)/gen \
               -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
$(B)/fuzz/%: tests/fuzz/%.c $(CORE_SRC) $(HDRS)
	@mkdir -p $(B)/fuzz
	clang $(FUZZ_CFLAGS) -o $@ $< $(CORE_SRC) $(LDLIBS)

# The configuration reference, generated from the directive table; the unit
# tests fail when the checked-in files differ from what it generates.
$(B)/conf-reference: tools/conf-reference.c $(B)/libedgegate.a
	$(CC) $(CFLAGS) -o $@ $< $(B)/libedgegate.a $(LDLIBS)

reference: $(B)/conf-reference
	$(B)/conf-reference md > docs/configuration.md
	$(B)/conf-reference man > packaging/edgegate.conf.5

deps-build:
	@tools/deps.sh build

deps-test:
	@tools/deps.sh test

# Fails on an include or a call that points up a layer.
layers: $(B)/libedgegate.a
	@/usr/bin/python3 tools/check-layers.py $(B)/obj $(LAYERS)

unit: $(UNIT_BIN)
	@tools/run-unit.sh $(UNIT_BIN)

# A bounded fuzz run per target (seconds); `make fuzz FUZZ_TIME=600` for longer.
FUZZ_TIME ?= 300
fuzz-smoke: $(FUZZ_BIN)
	@tools/run-fuzz.sh 10 $(FUZZ_BIN)

fuzz: $(FUZZ_BIN)
	@tools/run-fuzz.sh $(FUZZ_TIME) $(FUZZ_BIN)

# A long run whose new coverage is merged into tests/fuzz/corpus (checked in).
fuzz-corpus: $(FUZZ_BIN)
	@tools/grow-corpus.sh $(FUZZ_TIME) $(FUZZ_BIN)

# The end-to-end suite, against the optimized build and then against the
# sanitizer build (any ASan/UBSan/LSan report fails the test that caused it).
# (EG_BIN is set after the `cd`: an assignment before `cd` would reach only cd.)
PYTEST = cd tests/e2e && EG_BIN=$(1) /usr/bin/python3 -m pytest -q -p no:cacheprovider $(PYTEST_ARGS) .
e2e: all $(B)/asan/edgegate
	$(call PYTEST,$(CURDIR)/$(B)/edgegate)
	$(call PYTEST,$(CURDIR)/$(B)/asan/edgegate)

test: deps-test
	$(MAKE) all
	$(MAKE) layers
	$(MAKE) unit
	$(MAKE) fuzz-smoke
	$(MAKE) e2e
	$(MAKE) chaos-short

# Faults under load, edgegate next to HAProxy (tests/chaos/): `chaos` writes
# docs/reliability.md; `chaos-short` (sanitizer build, under 2 minutes) fails
# only on lost bytes, crashes, sanitizer reports and regressions; `soak` runs
# SOAK_SECONDS and fails if memory, descriptors or buffers keep growing.
CHAOS := /usr/bin/python3 tests/chaos/chaos.py
chaos: all
	$(CHAOS) --report docs/reliability.md
chaos-short: all $(B)/asan/edgegate
	EG_BIN=$(CURDIR)/$(B)/asan/edgegate $(CHAOS) --short --report $(B)/chaos/short.md
SOAK_SECONDS ?= 600
soak: all
	/usr/bin/python3 tests/chaos/soak.py --seconds $(SOAK_SECONDS)

# edgegate against HAProxy (not part of test): build/bench.md, build/bench.png.
# BENCH_QUICK=1 for 3 rounds instead of 5. See tests/bench/bench.sh.
$(B)/benchtool: tests/bench/benchtool.c
	$(CC) $(CFLAGS) -o $@ $< -lssl -lcrypto

# OpenSSL's heap by source line, preloaded: see tests/bench/tls_allocs.sh.
$(B)/ossl_allocs.so: tests/bench/ossl_allocs.c
	$(CC) $(CFLAGS) -shared -fPIC -o $@ $< -lcrypto

bench: deps-test all $(B)/benchtool
	tests/bench/bench.sh

run: 
	@tools/deps.sh run
	$(MAKE) all
	@tools/demo.sh

install: all
	install -D -m 0755 $(B)/edgegate $(DESTDIR)$(PREFIX)/sbin/edgegate
	install -D -m 0755 $(B)/edgegatectl $(DESTDIR)$(PREFIX)/sbin/edgegatectl
	install -D -m 0644 packaging/edgegate.8 $(DESTDIR)$(PREFIX)/share/man/man8/edgegate.8
	install -D -m 0644 packaging/edgegatectl.8 $(DESTDIR)$(PREFIX)/share/man/man8/edgegatectl.8
	install -D -m 0644 packaging/edgegate.conf.5 $(DESTDIR)$(PREFIX)/share/man/man5/edgegate.conf.5
	install -D -m 0644 packaging/edgegate.conf $(DESTDIR)/etc/edgegate/edgegate.conf
	install -D -m 0644 packaging/edgegate.logrotate $(DESTDIR)/etc/logrotate.d/edgegate
	install -d $(DESTDIR)/lib/systemd/system
	sed 's|@SBINDIR@|$(PREFIX)/sbin|g' packaging/edgegate.service.in \
	    > $(DESTDIR)/lib/systemd/system/edgegate.service

deb: all
	@packaging/mkdeb.sh $(VERSION)

clean:
	rm -rf $(B)
