# aldrec — one non-recursive Makefile.
#
#   make            build build/bin/{aldsim,aldrecd,aldrec}
#   make demo       set up packages, record a simulated run, print a summary
#   make test       set up packages, run every test (ends "N passed, N failed")
#   make bench      benchmarks under tests/bench (ratios against a reference)
#   make SAN=1 ...  ASan+UBSan build (into build-san/)
#   make WERROR=1   warnings are errors (automatic when CI=true)
#   make valgrind   integration test with aldrecd under valgrind
#
# Project flags live in ALD_CFLAGS; the user's CFLAGS/LDFLAGS are appended.

PKGS     := libpq libmodbus sqlite3 hiredis
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

ALD_CFLAGS := -std=c11 -D_DEFAULT_SOURCE -D_GNU_SOURCE -O2 -g -pthread \
              -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
              -Wimplicit-fallthrough -Wformat=2 -Wno-format-nonliteral \
              -Irecorder -Icache -Iquery -Ifirmware -MMD -MP $(SANFLAGS) \
              -DALDREC_SQLDIR='"$(abspath sql)"'
# CI (CI=true in the environment) and WERROR=1 turn warnings into errors.
ifneq ($(filter 1,$(WERROR))$(filter true,$(CI)),)
ALD_CFLAGS += -Werror
endif
ALD_LDFLAGS := -pthread $(SANFLAGS)

BIN      := $(BUILD)/bin
OBJ      := $(BUILD)/obj

LIB_SRCS := $(filter-out recorder/aldrecd.c recorder/aldrec.c,$(wildcard recorder/*.c)) \
            $(wildcard cache/*.c) $(wildcard query/*.c)
SIM_SRCS := $(filter-out firmware/aldsim.c,$(wildcard firmware/*.c))
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
TOOL_SRCS := $(wildcard tests/tools/*.c)
BENCH_SRCS := $(wildcard tests/bench/*.c)

LIB_OBJS := $(LIB_SRCS:%.c=$(OBJ)/%.o)
SIM_OBJS := $(SIM_SRCS:%.c=$(OBJ)/%.o)
LIBALD   := $(BUILD)/libaldrec.a
# The simulator's model and fault logic, also linked into unit tests.
LIBSIM   := $(BUILD)/libaldsim.a

PROGS    := $(BIN)/aldsim $(BIN)/aldrecd $(BIN)/aldrec
UNITS    := $(UNIT_SRCS:tests/unit/%.c=$(BIN)/%)
TOOLS    := $(TOOL_SRCS:tests/tools/%.c=$(BIN)/%)
BENCHES  := $(BENCH_SRCS:tests/bench/%.c=$(BIN)/%)

.PHONY: all setup demo test unit-test bench valgrind clean
all: $(PROGS) $(UNITS) $(TOOLS) $(BENCHES)

$(OBJ)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALD_CFLAGS) $(PKG_CFLAGS) $(CFLAGS) -c $< -o $@

$(LIBALD): $(LIB_OBJS)
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^

$(LIBSIM): $(SIM_OBJS)
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^

$(BIN)/aldsim: $(OBJ)/firmware/aldsim.o $(LIBSIM) $(LIBALD)
	@mkdir -p $(dir $@)
	$(CC) $(ALD_LDFLAGS) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) -lm

$(BIN)/aldrecd $(BIN)/aldrec: $(BIN)/%: $(OBJ)/recorder/%.o $(LIBALD)
	@mkdir -p $(dir $@)
	$(CC) $(ALD_LDFLAGS) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) -lm

$(BIN)/test_%: $(OBJ)/tests/unit/test_%.o $(LIBSIM) $(LIBALD)
	@mkdir -p $(dir $@)
	$(CC) $(ALD_LDFLAGS) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) -lm

$(TOOLS): $(BIN)/%: $(OBJ)/tests/tools/%.o $(LIBALD)
	@mkdir -p $(dir $@)
	$(CC) $(ALD_LDFLAGS) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) -lm

$(BENCHES): $(BIN)/%: $(OBJ)/tests/bench/%.o $(LIBALD)
	@mkdir -p $(dir $@)
	$(CC) $(ALD_LDFLAGS) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) -lm

setup:
	@scripts/setup.sh

demo: setup
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) scripts/demo.sh

test: setup
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) tests/run.sh

unit-test: all
	@BUILD=$(BUILD) tests/run.sh unit

bench: setup
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) tests/bench/run.sh

valgrind: setup
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) ALDREC_VALGRIND=1 tests/run.sh integration

clean:
	rm -rf build build-san

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
