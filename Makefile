# cfiam: Cloudflare user-group membership from Lua (C module + Lua helpers).
#
#   make            build the module for LUA_VERSION (build/$(LUA_VERSION)/cfiam.so)
#   make test       build for Lua 5.4, LuaJIT, 5.3, 5.2, 5.1 and run the suite on each
#   make demo       start the emulator, run examples/replace_members.lua, stop it
#   make install    install the module, the Lua helpers and the cfiam command
#   make lint       luacheck over lua/, spec/, examples/ and emulator/
#   make bench      benchmarks against the floor and the alternatives
#   make bench-many many requests at once (50 ms latency): d, e, f
#   make test-asan / test-valgrind / fuzz   memory-safety checks
#   make deps       install the Debian packages the above need (as root)
#
# Variable names follow LuaRocks, so a rockspec can forward them unchanged.

LUA_VERSION ?= 5.4
# Interpreter used by make demo and the cfiam command's #! line.
LUA         ?= lua$(LUA_VERSION)
PREFIX      ?= /usr/local
DESTDIR     ?=
LUA_INCDIR  ?= /usr/include/lua$(LUA_VERSION)
LIBDIR      ?= $(PREFIX)/lib/lua/$(LUA_VERSION)
LUADIR      ?= $(PREFIX)/share/lua/$(LUA_VERSION)
BINDIR      ?= $(PREFIX)/bin
PKG_CONFIG  ?= pkg-config
CC          ?= cc
CFLAGS      ?= -O2 -fPIC -Wall -Wextra
LIBFLAG     ?= -shared
CURL_CFLAGS ?= $(shell $(PKG_CONFIG) --cflags libcurl 2>/dev/null)
CURL_LIBS   ?= $(shell $(PKG_CONFIG) --libs libcurl 2>/dev/null || echo -lcurl)
# Where make test finds LuaJIT's headers (Debian's libluajit2-5.1-dev).
LUAJIT_INCDIR ?= /usr/include/luajit-2.1
# Extra flags for sanitizer builds (make test-asan sets them).
XCFLAGS     ?=

SRC  := $(wildcard csrc/*.c)
HDR  := $(wildcard csrc/*.h)
LUA_FILES := $(wildcard lua/cfiam/*.lua)
BUILD ?= build/$(LUA_VERSION)

.PHONY: all test demo install uninstall lint deps clean bench bench-many fuzz test-asan test-valgrind

all: $(BUILD)/cfiam.so

# The per-interpreter builds of make test differ only in headers (Debian's
# paths; a LUA_INCDIR given on the command line still wins).
build/luajit/cfiam.so: LUA_INCDIR = $(LUAJIT_INCDIR)
build/5.1/cfiam.so build/5.2/cfiam.so build/5.3/cfiam.so build/5.4/cfiam.so: \
    LUA_INCDIR = /usr/include/lua$(patsubst build/%/cfiam.so,%,$@)

build/%/cfiam.so: $(SRC) $(HDR)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(XCFLAGS) -fvisibility=hidden -I$(LUA_INCDIR) $(CURL_CFLAGS) \
	    $(LIBFLAG) -o $@ $(SRC) $(CURL_LIBS)

deps:
	@sh tools/deps.sh

test: deps
	@$(MAKE) --no-print-directory build/5.4/cfiam.so build/luajit/cfiam.so \
	    build/5.3/cfiam.so build/5.2/cfiam.so build/5.1/cfiam.so
	@sh tools/test.sh

demo: deps all
	@LUA=$(LUA) BUILD=$(BUILD) sh tools/demo.sh

# Benchmarks (not part of make test): bench/run.sh writes bench/RESULTS.md.
bench: deps
	@$(MAKE) --no-print-directory LUA_VERSION=5.4 build/5.4/cfiam.so build/luajit/cfiam.so
	@sh bench/run.sh
	@lua5.4 bench/account_bench.lua

bench-many: deps
	@$(MAKE) --no-print-directory LUA_VERSION=5.4 build/5.4/cfiam.so build/luajit/cfiam.so
	@sh bench/many.sh

# Memory safety: the suite with ASan+UBSan, and under valgrind memcheck.
test-asan: deps
	@sh tools/test-asan.sh

test-valgrind: deps
	@sh tools/test-valgrind.sh

# libFuzzer harnesses, FUZZ_SECONDS each (CI runs a short smoke pass).
fuzz: deps
	@sh fuzz/run.sh

lint:
	luacheck lua spec examples emulator bin

# The command gets the #! line for $(LUA) and, as LuaRocks' wrappers do, the
# paths of the tree it is installed into (without DESTDIR), searched first:
# it runs with no LUA_PATH / LUA_CPATH and never loads another version.
install: all
	install -d "$(DESTDIR)$(LIBDIR)" "$(DESTDIR)$(LUADIR)/cfiam" "$(DESTDIR)$(BINDIR)"
	install -m 0755 $(BUILD)/cfiam.so "$(DESTDIR)$(LIBDIR)/cfiam.so"
	install -m 0644 $(LUA_FILES) "$(DESTDIR)$(LUADIR)/cfiam/"
	{ echo '#!/usr/bin/env $(LUA)'; \
	  echo 'package.path = [==[$(LUADIR)/?.lua;]==] .. package.path'; \
	  echo 'package.cpath = [==[$(LIBDIR)/?.so;]==] .. package.cpath'; \
	  sed 1d bin/cfiam; } > "$(DESTDIR)$(BINDIR)/cfiam"
	chmod 0755 "$(DESTDIR)$(BINDIR)/cfiam"

uninstall:
	rm -f "$(DESTDIR)$(LIBDIR)/cfiam.so" "$(DESTDIR)$(BINDIR)/cfiam"
	rm -rf "$(DESTDIR)$(LUADIR)/cfiam"

clean:
	rm -rf build .tmp
