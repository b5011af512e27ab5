# lockbench: libdlock (core/) and the lockbench harness (harness/).
#
#   make                    build/libdlock.a, build/libdlock.so*, build/lockbench
#   make mpi                build/lockbench-mpi: run over the ranks of an MPI job (Open MPI)
#   make test               unit and integration tests; ends with "N passed, N failed"
#   make test-sanitize      the suite under ASan+UBSan, then under TSan
#   make demo               the seed scenarios on a managed redis-server
#   make bench              performance ratios (see README)
#   make scale              the back-off comparison at 1 000 to 100 000 simulated clients
#   make gate               the work tree against GATE_BASE, run alternately (regression gate)
#   make install            PREFIX=/usr/local DESTDIR=
#   make deps               check (and on Debian, as root, install) what the build needs
#
# SANITIZER=address|undefined|address,undefined|thread builds into build/san-<name>/.
# WERROR=1 turns warnings into errors (CI sets it).  V=1 shows the commands.

VERSION := $(shell sed -n 's/^\#define DLOCK_VERSION "\(.*\)"/\1/p' core/dlock.h)
SOMAJOR := $(firstword $(subst ., ,$(VERSION)))

PREFIX  ?= /usr/local
LIBDIR  ?= $(PREFIX)/lib
INCDIR  ?= $(PREFIX)/include
BINDIR  ?= $(PREFIX)/bin
PKGDIR  ?= $(LIBDIR)/pkgconfig
SHAREDIR ?= $(PREFIX)/share/lockbench

CC      ?= cc
PKGS     = hiredis jansson
DEP_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
DEP_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CMOCKA_LIBS := $(shell pkg-config --libs cmocka 2>/dev/null || echo -lcmocka)

WARN     = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
OPT     ?= -O2 -g
CFLAGS  ?= $(OPT)
ALL_CFLAGS = -std=gnu11 -D_GNU_SOURCE -fPIC -fvisibility=hidden $(WARN) $(CFLAGS) \
             $(DEP_CFLAGS) -Icore -Iharness -I$(O)/core -MMD -MP
LDLIBS   = $(DEP_LIBS) -lpthread -lm

ifeq ($(WERROR),1)
  ALL_CFLAGS += -Werror
endif

comma := ,
O := build
ifneq ($(SANITIZER),)
  O := build/san-$(subst $(comma),-,$(SANITIZER))
  SAN_FLAGS := -fsanitize=$(SANITIZER) -fno-omit-frame-pointer -fno-sanitize-recover=all
  ALL_CFLAGS += $(SAN_FLAGS)
  LDFLAGS += $(SAN_FLAGS)
endif
ifeq ($(V),1)
  Q =
  say = @true
else
  Q = @
  say = @printf '  %-6s %s\n'
endif

# ---- sources -------------------------------------------------------------

CORE_SRC     := $(wildcard core/*.c)
CORE_OBJ     := $(CORE_SRC:%.c=$(O)/%.o) $(O)/core/scripts.o
LUA          := $(sort $(wildcard core/scripts/*.lua))

HARNESS_SRC  := $(filter-out harness/main.c harness/fuzz_%.c,$(wildcard harness/*.c))
HARNESS_OBJ  := $(HARNESS_SRC:%.c=$(O)/%.o)

# The simulator's modelled Redis (harness/sim/) runs the core's Lua scripts in Lua 5.1: an
# archive, so a program links only what it uses, and liblua only where that needs it (never
# into libdlock).
SIM_SRC      := $(wildcard harness/sim/*.c)
SIM_OBJ      := $(SIM_SRC:%.c=$(O)/%.o)
SIM_LIB      := $(O)/libsim.a
LUA_CFLAGS   := $(shell pkg-config --cflags lua5.1 2>/dev/null)
LUA_LIBS     := $(shell pkg-config --libs lua5.1 2>/dev/null || echo -llua5.1)
LUA_LINK      = -Wl,--push-state,--as-needed $(LUA_LIBS) -Wl,--pop-state

CORE_TESTS    := $(patsubst %.c,$(O)/%,$(wildcard core/test/test_*.c))
HARNESS_TESTS := $(patsubst %.c,$(O)/%,$(wildcard harness/test/test_*.c))
CORE_TEST_SUPPORT    := $(patsubst %.c,$(O)/%.o,$(filter-out core/test/test_%.c,$(wildcard core/test/*.c)))
HARNESS_TEST_SUPPORT := $(patsubst %.c,$(O)/%.o,$(filter-out harness/test/test_%.c,$(wildcard harness/test/*.c)))
EXAMPLES      := $(patsubst %.c,$(O)/%,$(wildcard core/examples/*.c))

LIB_A   := $(O)/libdlock.a
LIB_SO  := $(O)/libdlock.so.$(VERSION)
BIN     := $(if $(wildcard harness/main.c),$(O)/lockbench)

.PHONY: all lib test test-sanitize check-build demo bench fidelity scale gate install uninstall deps clean fuzz examples
all: lib $(BIN) examples

lib: $(LIB_A) $(LIB_SO)
examples: $(EXAMPLES)

# ---- library -------------------------------------------------------------

$(O)/%.o: %.c
	$(say) CC $<
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(ALL_CFLAGS) -c -o $@ $<

# The Lua scripts are kept as readable files and embedded as C strings with their SHA1,
# so the driver can send EVALSHA and fall back to EVAL only after a NOSCRIPT.
$(O)/core/scripts.c: $(LUA) scripts/embed-lua.sh
	$(say) GEN $@
	@mkdir -p $(dir $@)
	$(Q)sh scripts/embed-lua.sh $(LUA) > $@.tmp && mv $@.tmp $@

$(O)/core/scripts.o: $(O)/core/scripts.c
	$(say) CC $<
	$(Q)$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(LIB_A): $(CORE_OBJ)
	$(say) AR $@
	$(Q)rm -f $@ && ar rcs $@ $^

$(LIB_SO): $(CORE_OBJ)
	$(say) LD $@
	$(Q)$(CC) -shared -Wl,-soname,libdlock.so.$(SOMAJOR) $(LDFLAGS) -o $@ $^ $(LDLIBS)
	$(Q)ln -sf libdlock.so.$(VERSION) $(O)/libdlock.so.$(SOMAJOR)
	$(Q)ln -sf libdlock.so.$(VERSION) $(O)/libdlock.so

# dlock.pc holds the install paths, which come from the command line: a prerequisite on them
# is a stamp file holding their values, rewritten (and so newer) only when they change, so
# `make install PREFIX=/usr` after `make install PREFIX=/usr/local` does not install the old
# paths.
PC_VARS = prefix=$(PREFIX) libdir=$(LIBDIR) includedir=$(INCDIR) version=$(VERSION)
$(O)/install-vars: FORCE
	@mkdir -p $(O)
	$(Q)printf '%s\n' '$(PC_VARS)' | cmp -s - $@ || printf '%s\n' '$(PC_VARS)' > $@

.PHONY: FORCE
FORCE:

$(O)/dlock.pc: $(O)/install-vars Makefile core/dlock.h
	@mkdir -p $(O)
	$(Q)printf '%s\n' 'prefix=$(PREFIX)' 'libdir=$(LIBDIR)' 'includedir=$(INCDIR)' '' \
	  'Name: dlock' 'Description: Distributed locks on Redis (token, legacy SETNX, Redlock)' \
	  'Version: $(VERSION)' 'Requires.private: hiredis' \
	  'Libs: -L$${libdir} -ldlock' 'Libs.private: -lpthread' 'Cflags: -I$${includedir}' > $@

# ---- harness ---------------------------------------------------------------

$(SIM_OBJ): ALL_CFLAGS += $(LUA_CFLAGS)

$(SIM_LIB): $(SIM_OBJ)
	$(say) AR $@
	$(Q)rm -f $@ && ar rcs $@ $^

$(O)/lockbench: $(O)/harness/main.o $(HARNESS_OBJ) $(SIM_LIB) $(LIB_A)
	$(say) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(LUA_LINK)

# ---- lockbench-mpi -----------------------------------------------------------

# The run command over the ranks of an MPI job: harness/mpi/ with mpicc, lockbench's command line
# (harness/main.c) built again under the name lb_cli_main, and the same harness objects. Only
# this program links MPI.
MPICC     ?= mpicc
HAVE_MPI  := $(shell command -v $(MPICC) >/dev/null 2>&1 && echo yes)
MPI_OBJ   := $(patsubst %.c,$(O)/%.o,$(wildcard harness/mpi/*.c)) $(O)/harness/mpi/cli.o

.PHONY: mpi
mpi: $(O)/lockbench-mpi

$(O)/harness/mpi/%.o: harness/mpi/%.c
	$(say) MPICC $<
	@mkdir -p $(dir $@)
	$(Q)$(MPICC) $(ALL_CFLAGS) -c -o $@ $<

$(O)/harness/mpi/cli.o: harness/main.c
	$(say) CC $@
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(ALL_CFLAGS) -Wno-missing-prototypes -Dmain=lb_cli_main -c -o $@ $<

$(O)/lockbench-mpi: $(MPI_OBJ) $(HARNESS_OBJ) $(SIM_LIB) $(LIB_A)
	@command -v $(MPICC) >/dev/null 2>&1 || { echo "make mpi: $(MPICC) not found; run make deps" >&2; exit 3; }
	$(say) LD $@
	$(Q)$(MPICC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(LUA_LINK)

# ---- tests and examples ----------------------------------------------------

# Core tests link the managed-server module so integration tests can start redis-server.
$(O)/core/test/%: $(O)/core/test/%.o $(CORE_TEST_SUPPORT) $(O)/harness/servers.o $(LIB_A)
	$(say) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(CMOCKA_LIBS)

$(O)/harness/test/%: $(O)/harness/test/%.o $(HARNESS_TEST_SUPPORT) $(HARNESS_OBJ) $(SIM_LIB) $(LIB_A)
	$(say) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(LUA_LINK) $(CMOCKA_LIBS)

$(O)/core/examples/%: $(O)/core/examples/%.o $(LIB_A)
	$(say) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# With Open MPI installed (and no sanitizer: MPI's own allocations are not ours to chase),
# lockbench-mpi too, for harness/test/mpi.sh.
check-build: all $(CORE_TESTS) $(HARNESS_TESTS) $(if $(and $(HAVE_MPI),$(if $(SANITIZER),,y)),mpi)

test: deps
	$(Q)$(MAKE) --no-print-directory check-build
	$(Q)sh scripts/run-tests.sh $(O)

# Both runs, whatever the first one gives: a data race must show even when ASan finds a leak.
test-sanitize: deps
	$(Q)status=0; \
	$(MAKE) --no-print-directory test SANITIZER=address,undefined || status=1; \
	$(MAKE) --no-print-directory test SANITIZER=thread || status=1; \
	exit $$status

demo: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)sh scripts/demo.sh $(O)

# The regression gate (scripts/gate.sh): scenarios/gate/ run by the work tree and by GATE_BASE
# (default HEAD with uncommitted changes, else HEAD~1) alternately on one CPU (GATE_CPU),
# GATE_REPEATS rounds a side tested pair by pair, then the head against results/baselines/
# coarsely. GATE_SLOWDOWN_US=X slows the head's acquire
# by X us to check the gate itself; GATE_UPDATE=1 rewrites the baselines.
GATE_BASE ?=
GATE_REPEATS ?= 12
GATE_SLOWDOWN_US ?=
gate: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)GATE_BASE='$(GATE_BASE)' GATE_REPEATS='$(GATE_REPEATS)' \
	  GATE_SLOWDOWN_US='$(GATE_SLOWDOWN_US)' sh scripts/gate.sh $(O)

# Side-by-side performance ratios (README, Performance); writes results/bench/<timestamp>/.
bench: deps
	$(Q)$(MAKE) --no-print-directory all $(O)/bench_hist
	$(Q)sh scripts/bench.sh $(O)

$(O)/bench_hist: $(O)/harness/tools/bench_hist.o $(HARNESS_OBJ) $(SIM_LIB) $(LIB_A)
	$(say) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(LUA_LINK)

# The back-off comparison at 1 000, 10 000 and 100 000 simulated clients (README, Back-off
# strategies at scale): minutes, so not part of make test.
scale: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)sh scripts/scale.sh $(O)

# The simulator against real runs, side by side (README, The simulator).
FIDELITY_RUNS ?= 5
fidelity: deps
	$(Q)$(MAKE) --no-print-directory all $(O)/bench_hist
	$(Q)FIDELITY_RUNS='$(FIDELITY_RUNS)' sh scripts/fidelity.sh $(O)

# ---- install -------------------------------------------------------------

install: all $(O)/dlock.pc
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCDIR) $(DESTDIR)$(PKGDIR) $(DESTDIR)$(BINDIR)
	install -m 644 $(LIB_A) $(DESTDIR)$(LIBDIR)/
	install -m 755 $(LIB_SO) $(DESTDIR)$(LIBDIR)/
	ln -sf libdlock.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libdlock.so.$(SOMAJOR)
	ln -sf libdlock.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libdlock.so
	install -m 644 core/dlock.h core/dlock_machine.h $(DESTDIR)$(INCDIR)/
	install -m 644 $(O)/dlock.pc $(DESTDIR)$(PKGDIR)/
	$(if $(BIN),install -m 755 $(BIN) $(DESTDIR)$(BINDIR)/)
	install -d $(DESTDIR)$(SHAREDIR)/plot
	install -m 644 plot/*.gp $(DESTDIR)$(SHAREDIR)/plot/

uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/libdlock.* $(DESTDIR)$(INCDIR)/dlock.h $(DESTDIR)$(INCDIR)/dlock_machine.h \
	      $(DESTDIR)$(PKGDIR)/dlock.pc $(DESTDIR)$(BINDIR)/lockbench
	rm -rf $(DESTDIR)$(SHAREDIR)

deps:
	$(Q)sh scripts/deps.sh

# The scenario loader under libFuzzer, for FUZZ_SECONDS (clang).
FUZZ_SECONDS ?= 60
fuzz:
	@mkdir -p build/fuzz-corpus
	clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -std=gnu11 \
	  -D_GNU_SOURCE -Iharness harness/fuzz_scenario.c harness/scenario.c \
	  harness/fields.c harness/stats.c \
	  $$(pkg-config --cflags --libs jansson) -o build/fuzz_scenario
	build/fuzz_scenario -max_total_time=$(FUZZ_SECONDS) build/fuzz-corpus scenarios scenarios/invalid

clean:
	rm -rf build

-include $(shell find $(O) -name '*.d' 2>/dev/null)
