# aldrec — one non-recursive Makefile.
#
#   make            build build/bin/{aldsim,aldrecd,aldrec,aldrec-full}
#   make demo       set up packages, record a simulated run, print a summary
#   make check      the fast tier, no server needed (well under a minute):
#                   the static checks (tests/check/: layers, docs, man
#                   pages, a second make rebuilds nothing) and the unit tests
#                   that need no PostgreSQL or Redis
#   make test       set up packages, run every test (ends "N passed, N failed"):
#                   the unit tests, the same unit tests (and the aldsim they
#                   drive) built with ASan+UBSan into build-san/, each fuzz
#                   target for FUZZ_TEST_SECONDS (5), the integration tests
#   make test SAN=1 everything above built with ASan+UBSan (build-san/)
#   make fuzz       each libFuzzer target (tests/fuzz/) for FUZZ_SECONDS (60),
#                   from its committed corpus; builds with clang into build-fuzz/
#   make bench      benchmarks under tests/bench (ratios against a reference)
#   make soak       aldrecd's memory over an hour at 50 Hz (SOAK_S seconds)
#   make SAN=1 ...  ASan+UBSan build (into build-san/)
#   make WERROR=1   warnings are errors (automatic when CI=true)
#   make valgrind   integration tests with aldrecd under valgrind (a
#                   valgrind error in any aldrecd fails its test script;
#                   VALGRIND_TESTS="record cache_param" runs only those)
#   make install    binaries, systemd unit, sysusers/tmpfiles snippets,
#                   default config (never overwriting one), SQL, README:
#                   PREFIX=/usr/local, SYSCONFDIR=/etc, DESTDIR for staging
#
# Project flags live in ALD_CFLAGS; the user's CFLAGS/LDFLAGS are appended.

PKGS     := libpq libmodbus sqlite3 hiredis libmicrohttpd libsystemd
# pkg-config runs on first use, not at parse time: on a fresh machine the
# setup step installs the -dev packages before anything is compiled.
PKG_CFLAGS = $(eval PKG_CFLAGS := $$(shell pkg-config --cflags $(PKGS)))$(PKG_CFLAGS)
PKG_LIBS   = $(eval PKG_LIBS := $$(shell pkg-config --libs $(PKGS)))$(PKG_LIBS)

ifeq ($(SAN),1)
BUILD    ?= build-san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
else
BUILD    ?= build
SANFLAGS :=
endif

# Installation layout (make install); the binaries know where the SQL
# migrations and the config live, so these are compiled in.
PREFIX      ?= /usr/local
BINDIR      ?= $(PREFIX)/bin
SBINDIR     ?= $(PREFIX)/sbin
LIBEXECDIR  ?= $(PREFIX)/libexec/aldrec
DATADIR     ?= $(PREFIX)/share/aldrec
DOCDIR      ?= $(PREFIX)/share/doc/aldrec
MANDIR      ?= $(PREFIX)/share/man
SYSCONFDIR  ?= /etc
UNITDIR     ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
TMPFILESDIR ?= $(PREFIX)/lib/tmpfiles.d
# aldrec db migrate reads $(DATADIR)/sql, or this checkout's sql/ when
# that is not installed (running from the build tree).
PATH_DEFS := -DALDREC_SQLDIR='"$(DATADIR)/sql"' -DALDREC_SRC_SQLDIR='"$(abspath sql)"' \
             -DALDREC_SYSCONFDIR='"$(SYSCONFDIR)"' -DALDREC_LIBEXECDIR='"$(LIBEXECDIR)"' \
             -DALDREC_WEBDIR='"$(DATADIR)/web"' -DALDREC_BUILD_WEBDIR='"$(abspath $(BUILD))/web"'

ALD_CFLAGS := -std=c11 -D_DEFAULT_SOURCE -D_GNU_SOURCE -O2 -g -pthread \
              -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
              -Wimplicit-fallthrough -Wformat=2 -Wno-format-nonliteral \
              -I. -Irecorder -MMD -MP $(SANFLAGS) $(PATH_DEFS)
# CI (CI=true in the environment) and WERROR=1 turn warnings into errors.
ifneq ($(filter 1,$(WERROR))$(filter true,$(CI)),)
ALD_CFLAGS += -Werror
endif
ALD_LDFLAGS := -pthread $(SANFLAGS)

BIN      := $(BUILD)/bin
OBJ      := $(BUILD)/obj

# The layers, bottom up (docs/ARCH.md "Layers"): each is a static library
# and may use only the ones listed before it (tests/check/layers.sh checks
# the includes; the link order below follows the same order).
COMMON_SRCS := $(wildcard common/*.c)
ACQ_SRCS    := $(wildcard recorder/acq/*.c)
STORE_SRCS  := $(wildcard recorder/store/*.c)
CACHE_SRCS  := $(wildcard cache/*.c)
QUERY_SRCS  := $(wildcard query/*.c)
WEB_SRCS    := $(wildcard web/*.c)
OPS_SRCS    := $(wildcard recorder/ops/*.c)
DAEMON_SRCS := $(filter-out recorder/daemon/aldrecd.c,$(wildcard recorder/daemon/*.c))
CLI_SRCS    := $(filter-out recorder/cli/aldrec.c,$(wildcard recorder/cli/*.c))
SIM_SRCS    := $(filter-out firmware/aldsim.c,$(wildcard firmware/*.c))
LIB_SRCS    := $(COMMON_SRCS) $(ACQ_SRCS) $(STORE_SRCS) $(CACHE_SRCS) $(QUERY_SRCS) $(WEB_SRCS) \
               $(OPS_SRCS) $(DAEMON_SRCS) $(CLI_SRCS)
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
TOOL_SRCS := $(wildcard tests/tools/*.c)
BENCH_SRCS := $(wildcard tests/bench/*.c)

LAYERS     := common acq store cache query web ops daemon cli sim
lib_of      = $(BUILD)/lib/lib$(1).a
LIB_COMMON := $(call lib_of,common)
LIB_ACQ    := $(call lib_of,acq)
LIB_STORE  := $(call lib_of,store)
LIB_CACHE  := $(call lib_of,cache)
LIB_QUERY  := $(call lib_of,query)
LIB_WEB    := $(call lib_of,web)
LIB_OPS    := $(call lib_of,ops)
LIB_DAEMON := $(call lib_of,daemon)
LIB_CLI    := $(call lib_of,cli)
# The simulator's model and fault logic, also linked into unit tests.
LIB_SIM    := $(call lib_of,sim)

# What each program links, top layer first.
DAEMON_LIBS := $(LIB_DAEMON) $(LIB_OPS) $(LIB_CACHE) $(LIB_STORE) $(LIB_ACQ) $(LIB_COMMON)
CLI_LIBS    := $(LIB_CLI) $(LIB_WEB) $(LIB_QUERY) $(LIB_CACHE) $(LIB_STORE) $(LIB_ACQ) $(LIB_COMMON)
# The front program (aldrec.c built with ALDREC_FRONT) links the same
# layers without any package library: a socket-only command that reached
# for libpq, Redis, SQLite or libmodbus fails to link.
FRONT_LIBS  := $(LIB_CLI) $(LIB_QUERY) $(LIB_STORE) $(LIB_ACQ) $(LIB_COMMON)
SIM_LIBS    := $(LIB_SIM) $(LIB_ACQ) $(LIB_COMMON)
ALL_LIBS    := $(LIB_CLI) $(LIB_DAEMON) $(LIB_OPS) $(LIB_CACHE) $(LIB_WEB) $(LIB_QUERY) $(LIB_STORE) \
               $(LIB_SIM) $(LIB_ACQ) $(LIB_COMMON)

PROGS    := $(BIN)/aldsim $(BIN)/aldrecd $(BIN)/aldrec $(BIN)/aldrec-full
UNITS    := $(UNIT_SRCS:tests/unit/%.c=$(BIN)/%)
TOOLS    := $(TOOL_SRCS:tests/tools/%.c=$(BIN)/%)
BENCHES  := $(BENCH_SRCS:tests/bench/%.c=$(BIN)/%)

# The pages of aldrec web (web/static) and the charting library from the
# npm packages pinned in package-lock.json (scripts/setup.sh runs npm ci):
# served from aldrec's own files, never from another origin.
WEB_STATIC := $(wildcard web/static/*)
WEB_VENDOR := node_modules/uplot/dist/uPlot.iife.min.js node_modules/uplot/dist/uPlot.min.css
WEB_FILES  := $(WEB_STATIC:web/static/%=$(BUILD)/web/%) $(WEB_VENDOR:node_modules/uplot/dist/%=$(BUILD)/web/vendor/%)
$(BUILD)/web/%: web/static/%
	@mkdir -p $(dir $@)
	cp $< $@
$(BUILD)/web/vendor/%: node_modules/uplot/dist/%
	@mkdir -p $(dir $@)
	cp $< $@
node_modules/uplot/dist/%:
	@echo "missing $@: run make setup (npm ci from package-lock.json)" >&2; exit 1

.PHONY: all setup demo test check unit-test bench valgrind clean install
all: $(PROGS) $(UNITS) $(TOOLS) $(BENCHES) $(WEB_FILES)


$(OBJ)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALD_CFLAGS) $(PKG_CFLAGS) $(CFLAGS) -c $< -o $@

# The objects that compile the paths in are rebuilt when they change
# (make install PREFIX=/usr after a plain make).
PATHS_STAMP := $(BUILD)/paths.stamp
$(PATHS_STAMP): FORCE
	@mkdir -p $(dir $@)
	@echo '$(PATH_DEFS)' | cmp -s - $@ 2>/dev/null || echo '$(PATH_DEFS)' > $@
$(OBJ)/recorder/cli/cmd_db.o $(OBJ)/recorder/cli/aldrec.o $(OBJ)/recorder/cli/aldrec-front.o \
    $(OBJ)/recorder/daemon/aldrecd.o: $(PATHS_STAMP)
.PHONY: FORCE
# Keep every object (no intermediate deletion), so a second make rebuilds nothing.
.SECONDARY:
FORCE:

# One archive per layer: $(call lib_of,NAME) from NAME_SRCS.
define layer_lib
$$(call lib_of,$(1)): $$($(2)_SRCS:%.c=$$(OBJ)/%.o)
	@mkdir -p $$(dir $$@)
	@rm -f $$@
	$$(AR) rcs $$@ $$^
endef
$(eval $(call layer_lib,common,COMMON))
$(eval $(call layer_lib,acq,ACQ))
$(eval $(call layer_lib,store,STORE))
$(eval $(call layer_lib,cache,CACHE))
$(eval $(call layer_lib,query,QUERY))
$(eval $(call layer_lib,web,WEB))
$(eval $(call layer_lib,ops,OPS))
$(eval $(call layer_lib,daemon,DAEMON))
$(eval $(call layer_lib,cli,CLI))
$(eval $(call layer_lib,sim,SIM))

$(BIN)/aldsim: $(OBJ)/firmware/aldsim.o $(SIM_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(ALD_LDFLAGS) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) -lm

$(BIN)/aldrecd: $(OBJ)/recorder/daemon/aldrecd.o $(DAEMON_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(ALD_LDFLAGS) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) -lm

$(OBJ)/recorder/cli/aldrec-front.o: recorder/cli/aldrec.c
	@mkdir -p $(dir $@)
	$(CC) $(ALD_CFLAGS) $(PKG_CFLAGS) $(CFLAGS) -DALDREC_FRONT -c $< -o $@

$(BIN)/aldrec: $(OBJ)/recorder/cli/aldrec-front.o $(FRONT_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(ALD_LDFLAGS) $(LDFLAGS) -o $@ $^ -lm

$(BIN)/aldrec-full: $(OBJ)/recorder/cli/aldrec.o $(CLI_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(ALD_LDFLAGS) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) -lm

$(BIN)/test_%: $(OBJ)/tests/unit/test_%.o $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(ALD_LDFLAGS) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) -lm

$(TOOLS): $(BIN)/%: $(OBJ)/tests/tools/%.o $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(ALD_LDFLAGS) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) -lm

$(BENCHES): $(BIN)/%: $(OBJ)/tests/bench/%.o $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(ALD_LDFLAGS) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) -lm

# ---- fuzzing: libFuzzer targets tests/fuzz/fuzz_*.c ---------------------
# Built with clang, -fsanitize=fuzzer plus ASan+UBSan, into build-fuzz/;
# the library code they reach is compiled there again with coverage
# instrumentation (-fsanitize=fuzzer-no-link).
FUZZ_CC       ?= clang
FUZZ_BUILD    := build-fuzz
FUZZ_SECONDS  ?= 60
FUZZ_SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS   := -std=c11 -D_DEFAULT_SOURCE -D_GNU_SOURCE -O1 -g -pthread \
                 -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
                 -I. -Irecorder -MMD -MP $(PATH_DEFS) \
                 $(FUZZ_SANFLAGS) -fsanitize=fuzzer-no-link
ifneq ($(filter 1,$(WERROR))$(filter true,$(CI)),)
FUZZ_CFLAGS   += -Werror
endif
FUZZ_SRCS     := $(wildcard tests/fuzz/fuzz_*.c)
FUZZERS       := $(FUZZ_SRCS:tests/fuzz/%.c=$(FUZZ_BUILD)/bin/%)
FUZZ_LIB      := $(FUZZ_BUILD)/libaldrec.a

$(FUZZ_BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(PKG_CFLAGS) -c $< -o $@

$(FUZZ_LIB): $(LIB_SRCS:%.c=$(FUZZ_BUILD)/obj/%.o)
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^

$(FUZZERS): $(FUZZ_BUILD)/bin/%: $(FUZZ_BUILD)/obj/tests/fuzz/%.o $(FUZZ_LIB)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) -fsanitize=fuzzer $(FUZZ_SANFLAGS) -pthread -o $@ $^ $(PKG_LIBS) -lm

.PHONY: fuzzers fuzz
fuzzers: $(FUZZERS)

fuzz: setup
	@$(MAKE) --no-print-directory fuzzers
	@FUZZ_BIN=$(abspath $(FUZZ_BUILD))/bin tests/fuzz/run.sh all $(FUZZ_SECONDS)

setup:
	@scripts/setup.sh

demo: setup
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) scripts/demo.sh

FUZZ_TEST_SECONDS ?= 5
SAN_BUILD := build-san

# Unit tests and the aldsim that test_aldsim drives: what `make test` also
# builds with sanitizers.
.PHONY: units
units: $(UNITS) $(BIN)/aldsim

# CI runs exactly `make test`: so it also runs the unit tests under
# ASan+UBSan (SAN_BIN; with an aldrec-full there whose web server web_api fuzzes) and the
# fuzz targets for a few seconds (FUZZ_BIN).
test: setup
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory fuzzers
ifeq ($(SAN),1)
	@BUILD=$(BUILD) FUZZ_BIN=$(abspath $(FUZZ_BUILD))/bin \
	    FUZZ_SECONDS=$(FUZZ_TEST_SECONDS) tests/run.sh
else
	@$(MAKE) --no-print-directory SAN=1 BUILD=$(SAN_BUILD) units $(SAN_BUILD)/bin/aldrec $(SAN_BUILD)/bin/aldrec-full
	@BUILD=$(BUILD) SAN_BIN=$(abspath $(SAN_BUILD))/bin FUZZ_BIN=$(abspath $(FUZZ_BUILD))/bin \
	    FUZZ_SECONDS=$(FUZZ_TEST_SECONDS) tests/run.sh
endif

unit-test: all
	@BUILD=$(BUILD) tests/run.sh unit

check: all
	@BUILD=$(BUILD) tests/run.sh check

# The README's picture of the run and compare pages (docs/web-*.png), from
# the screenshots web_browser writes into build/.
.PHONY: screenshots
screenshots: setup
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) tests/run.sh integration web_browser
	cp $(BUILD)/web-run.png $(BUILD)/web-compare.png docs/

bench: setup
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) tests/bench/run.sh
ifeq ($(FLEET),1)
	@BUILD=$(BUILD) tests/bench/fleet.sh
endif
ifeq ($(SOAK),1)
	@BUILD=$(BUILD) tests/bench/soak.sh
endif

# N tools into one PostgreSQL (tests/bench/fleet.sh); also make bench FLEET=1.
.PHONY: bench-fleet
bench-fleet: setup
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) tests/bench/fleet.sh

# aldrecd's memory over an hour at 50 Hz, collectd beside it
# (tests/bench/soak.sh; SOAK_S=120 SOAK_WARM_S=30 for a short one).
.PHONY: soak
soak: setup
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) tests/bench/soak.sh

# scripts/lib.sh adds --log-file (one log per aldrecd under the test's
# work directory) and fails the test script when a log shows an error,
# whether or not the script looked at aldrecd's exit status.
VALGRIND := valgrind --error-exitcode=99 --leak-check=full --num-callers=30 \
            --errors-for-leak-kinds=definite --track-fds=no

valgrind: setup
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) ALDRECD_WRAPPER="$(VALGRIND)" ALDRECD_START_TIMEOUT=60 \
	    INTEGRATION_TIMEOUT=1800 tests/run.sh integration $(VALGRIND_TESTS)

# DESTDIR stages the tree (packaging, tests/integration/svc_install.sh);
# without it, as root, the aldrec user and directories are made right away
# (SETUP_SYSTEM=no skips that).
SETUP_SYSTEM ?= yes
install: $(BIN)/aldrecd $(BIN)/aldrec $(BIN)/aldrec-full $(WEB_FILES)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBEXECDIR) $(DESTDIR)$(SBINDIR) $(DESTDIR)$(DATADIR)/sql/migrations \
	    $(DESTDIR)$(DATADIR)/sql/demo $(DESTDIR)$(DOCDIR) $(DESTDIR)$(UNITDIR) \
	    $(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(TMPFILESDIR) $(DESTDIR)$(DOCDIR)/docs \
	    $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8
	install -d -m 0750 $(DESTDIR)$(SYSCONFDIR)/aldrec
	install -m 0755 $(BIN)/aldrec $(DESTDIR)$(BINDIR)/aldrec
	install -m 0755 $(BIN)/aldrec-full $(DESTDIR)$(LIBEXECDIR)/aldrec-full
	install -m 0755 $(BIN)/aldrecd $(DESTDIR)$(SBINDIR)/aldrecd
	install -m 0644 sql/migrations/*.sql $(DESTDIR)$(DATADIR)/sql/migrations/
	install -m 0644 sql/demo/*.sql $(DESTDIR)$(DATADIR)/sql/demo/
	install -d $(DESTDIR)$(DATADIR)/web/vendor
	install -m 0644 $(filter-out $(BUILD)/web/vendor/%,$(WEB_FILES)) $(DESTDIR)$(DATADIR)/web/
	install -m 0644 $(filter $(BUILD)/web/vendor/%,$(WEB_FILES)) $(DESTDIR)$(DATADIR)/web/vendor/
	install -m 0644 README.md $(DESTDIR)$(DOCDIR)/README.md
	install -m 0644 docs/*.md docs/*.svg $(DESTDIR)$(DOCDIR)/docs/
	for m in aldrec.1 aldrec.conf.5 aldrecd.8; do \
	    sed -e 's|/etc/aldrec/|$(SYSCONFDIR)/aldrec/|g' -e 's|/usr/local/libexec/aldrec/|$(LIBEXECDIR)/|g' dist/man/$$m > $(BUILD)/$$m && \
	    install -m 0644 $(BUILD)/$$m $(DESTDIR)$(MANDIR)/man$${m##*.}/$$m || exit 1; \
	done
	sed -e 's|/usr/local/sbin/|$(SBINDIR)/|g' -e 's|/usr/local/share/doc/aldrec/|$(DOCDIR)/|g' \
	    -e 's|/etc/aldrec/|$(SYSCONFDIR)/aldrec/|g' dist/aldrecd.service > $(BUILD)/aldrecd.service
	install -m 0644 $(BUILD)/aldrecd.service $(DESTDIR)$(UNITDIR)/aldrecd.service
	sed -e 's|/usr/local/bin/|$(BINDIR)/|g' -e 's|/usr/local/share/doc/aldrec/|$(DOCDIR)/|g' \
	    -e 's|/etc/aldrec/|$(SYSCONFDIR)/aldrec/|g' dist/aldrec-web.service > $(BUILD)/aldrec-web.service
	install -m 0644 $(BUILD)/aldrec-web.service $(DESTDIR)$(UNITDIR)/aldrec-web.service
	install -m 0644 dist/aldrec.sysusers $(DESTDIR)$(SYSUSERSDIR)/aldrec.conf
	sed -e 's|/etc/aldrec|$(SYSCONFDIR)/aldrec|g' dist/aldrec.tmpfiles > $(BUILD)/aldrec.tmpfiles
	install -m 0644 $(BUILD)/aldrec.tmpfiles $(DESTDIR)$(TMPFILESDIR)/aldrec.conf
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/aldrec/aldrec.conf ]; then \
	    install -m 0640 dist/aldrec.conf $(DESTDIR)$(SYSCONFDIR)/aldrec/aldrec.conf.dist; \
	    echo "install: kept $(DESTDIR)$(SYSCONFDIR)/aldrec/aldrec.conf; the shipped default is aldrec.conf.dist"; \
	else \
	    install -m 0640 dist/aldrec.conf $(DESTDIR)$(SYSCONFDIR)/aldrec/aldrec.conf; \
	fi
	@if [ -z "$(DESTDIR)" ] && [ "$(SETUP_SYSTEM)" = yes ] && [ "$$(id -u)" -eq 0 ] && \
	    command -v systemd-sysusers >/dev/null; then \
	    systemd-sysusers $(SYSUSERSDIR)/aldrec.conf && \
	    systemd-tmpfiles --create $(TMPFILESDIR)/aldrec.conf; \
	    if [ -d /run/systemd/system ]; then systemctl daemon-reload; fi; \
	    echo "install: next: edit $(SYSCONFDIR)/aldrec/aldrec.conf, aldrec db migrate, systemctl enable --now aldrecd"; \
	fi

clean:
	rm -rf build build-san build-fuzz

-include $(shell find $(BUILD)/obj $(FUZZ_BUILD)/obj -name '*.d' 2>/dev/null)
