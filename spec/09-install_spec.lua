--- The two ways to install cfiam, run for real into temporary trees: the
-- installed module (C half + Lua half + command) must load from there alone
-- and make a call against the emulator.
local emulator = require("helpers.emulator")
local core = require("helpers.core")

local shq = core.shquote

local function sh(cmd)
  local p = io.popen(cmd .. " 2>&1; echo \"exit=$?\"")
  local out = p:read("*a")
  p:close()
  local code = tonumber(out:match("exit=(%d+)%s*$"))
  return code == 0, out
end

local function tmpdir()
  local p = io.popen("mktemp -d \"${TMPDIR:-/tmp}/cfiam-install.XXXXXX\"")
  local d = p:read("*l")
  p:close()
  return d
end

-- Runs the installed module from `libdir`/`luadir` only (no ./lua, no
-- ./build), replacing the Engineering group of the emulator.
local function call_installed(lua, libdir, luadir, emu)
  local code = ([[
    local cfiam = require "cfiam"
    assert(package.searchpath == nil or package.searchpath("cfiam", package.cpath):find(%q, 1, true))
    local m, err = cfiam.update_members(%q, %q, { %q })
    if not m then print("ERR " .. tostring(err)) os.exit(1) end
    print("OK " .. #m .. " " .. m[1].email)
  ]]):format(libdir, "0123456789abcdef0123456789abcdef",
             "e0000000000000000000000000000001", "d0000000000000000000000000000002")
  return sh(table.concat({
    "cd /tmp && env -i PATH=/usr/bin:/bin",
    "CLOUDFLARE_API_TOKEN=demo-token",
    "CLOUDFLARE_BASE_URL=" .. shq(emu.base_url),
    "LUA_PATH=" .. shq(luadir .. "/?.lua;;"),
    "LUA_CPATH=" .. shq(libdir .. "/?.so;;"),
    lua, "-e", shq(code) }, " "))
end

describe("installation", function()
  local emu, dir, demo
  local root = io.popen("pwd"):read("*l")

  setup(function()
    emu = emulator.start{ args = { "--demo" } }
    demo = emu:state()
    dir = tmpdir()
  end)
  teardown(function()
    if emu then emu:stop() end
    if dir then os.execute("rm -rf " .. shq(dir)) end
  end)
  before_each(function() emu:reset(demo) end)

  -- the interpreter the suite runs under: luajit, lua5.1 ... lua5.4 (an
  -- instrumented interpreter's path under make test-asan is Lua 5.4)
  local jit = core.LUA == "luajit"
  local v = jit and "5.1" or core.LUA:match("^lua(5%.%d)$") or "5.4"
  local lua = jit and "luajit" or "lua" .. v
  local vars = jit and "LUA_VERSION=5.1 LUA_INCDIR=/usr/include/luajit-2.1 BUILD=build/luajit LUA=luajit"
                    or "LUA_VERSION=" .. v

  it("make install puts module, Lua files and command under DESTDIR/PREFIX, and they work", function()
    local dest = dir .. "/destdir"
    local ok, out = sh(("make -s install %s PREFIX=/usr DESTDIR=%s"):format(vars, shq(dest)))
    assert.is_true(ok, out)
    local libdir, luadir = dest .. "/usr/lib/lua/" .. v, dest .. "/usr/share/lua/" .. v
    for _, f in ipairs{ libdir .. "/cfiam.so", luadir .. "/cfiam/extend.lua",
                        luadir .. "/cfiam/members.lua", luadir .. "/cfiam/cli.lua",
                        dest .. "/usr/bin/cfiam" } do
      assert.is_truthy(io.open(f), "missing " .. f)
    end
    local first = io.open(dest .. "/usr/bin/cfiam"):read("*l")
    -- the Makefile's LUA (core.LUA may be an instrumented interpreter's path)
    assert.equals("#!/usr/bin/env " .. lua, first)
    local ran, res = call_installed(core.LUA, libdir, luadir, emu)
    assert.is_true(ran, res)
    assert.matches("OK 1 bob@example.com", res, 1, true)
  end)

  it("the command make install installs finds its own tree, with no LUA_PATH or LUA_CPATH", function()
    -- a prefix with a space: the paths written into the command are quoted
    local prefix = dir .. "/my prefix"
    local ok, out = sh(("make -s install %s PREFIX=%s"):format(vars, shq(prefix)))
    assert.is_true(ok, out)
    local cmd_ok, cmd_out = sh(table.concat({ "cd /tmp && env -i PATH=/usr/bin:/bin",
      "CLOUDFLARE_API_TOKEN=demo-token", "CLOUDFLARE_BASE_URL=" .. shq(emu.base_url),
      shq(prefix .. "/bin/cfiam"), "members list 0123456789abcdef0123456789abcdef",
      "e0000000000000000000000000000001" }, " "))
    assert.is_true(cmd_ok, cmd_out)
    assert.matches("bob@example.com", cmd_out, 1, true)
  end)

  it("luarocks make installs a working module and command with no network", function()
    -- a copy of the sources, so the build leaves nothing in the checkout
    local src, tree = dir .. "/src", dir .. "/tree"
    assert(sh(("mkdir -p %s && cp -r %s %s %s %s %s"):format(shq(src),
      shq(root .. "/csrc"), shq(root .. "/lua"), shq(root .. "/bin"),
      shq(root .. "/rockspec"), shq(src))))
    -- the plain command, no CURL_INCDIR or other variable: on Debian the
    -- header is in the multiarch include directory, which the compiler
    -- searches by itself
    local ok, out = sh(("cd %s && env -u CURL_DIR -u CURL_INCDIR -u CURL_LIBDIR "
      .. "luarocks --lua-version 5.4 --tree %s make --deps-mode none "
      .. "rockspec/cfiam-scm-1.rockspec"):format(shq(src), shq(tree)))
    assert.is_true(ok, out)
    local libdir, luadir = tree .. "/lib/lua/5.4", tree .. "/share/lua/5.4"
    assert.is_truthy(io.open(libdir .. "/cfiam.so"), out)
    -- the rock's build passes no -fvisibility flag: the header hides the
    -- internal functions, so the module exports its entry point alone
    local nm_ok, syms = sh("nm -D --defined-only " .. shq(libdir .. "/cfiam.so")
      .. " | awk '$2 ~ /^[A-Z]$/ && $2 != \"U\" { print $3 }'")
    assert.is_true(nm_ok, syms)
    assert.equals("luaopen_cfiam\n", (syms:gsub("exit=%d+%s*$", "")))
    local ran, res = call_installed("lua5.4", libdir, luadir, emu)
    assert.is_true(ran, res)
    assert.matches("OK 1 bob@example.com", res, 1, true)
    -- the command LuaRocks wrapped runs too, with the tree's paths set as
    -- `eval $(luarocks --tree T path)` sets them
    local cmd_ok, cmd_out = sh(table.concat({ "env -i PATH=/usr/bin:/bin",
      "LUA_PATH=" .. shq(luadir .. "/?.lua;;"), "LUA_CPATH=" .. shq(libdir .. "/?.so;;"),
      "CLOUDFLARE_API_TOKEN=demo-token", "CLOUDFLARE_BASE_URL=" .. shq(emu.base_url),
      shq(tree .. "/bin/cfiam"), "members list 0123456789abcdef0123456789abcdef",
      "e0000000000000000000000000000001" }, " "))
    assert.is_true(cmd_ok, cmd_out)
    assert.matches("bob@example.com", cmd_out, 1, true)
  end)
end)

describe("loading", function()
  local dir
  local root = io.popen("pwd"):read("*l")
  setup(function() dir = tmpdir() end)
  teardown(function() if dir then os.execute("rm -rf " .. shq(dir)) end end)

  -- Requires cfiam twice with the Lua half from `luadir`; prints what each
  -- attempt gave and what package.loaded holds afterwards.
  local function require_twice(luadir)
    local code = [[
      local ok1, e1 = pcall(require, "cfiam")
      local ok2, e2 = pcall(require, "cfiam")
      print("first", ok1, (tostring(e1):gsub("\n.*", "")))
      print("second", ok2, (tostring(e2):gsub("\n.*", "")))
      print("loaded", type(package.loaded.cfiam), type(package.loaded["cfiam.core"]))
    ]]
    return sh(table.concat({ "cd /tmp && env -i PATH=/usr/bin:/bin",
      "LUA_PATH=" .. shq(luadir .. "/?.lua"),
      "LUA_CPATH=" .. shq(root .. "/" .. core.BUILD .. "/?.so"),
      core.LUA, "-e", shq(code) }, " "))
  end

  it("a failed first require (Lua files missing) leaves no half-built module", function()
    local _, out = require_twice(dir .. "/nothing")
    assert.matches("first\tfalse\t[^\n]*cfiam.extend", out)
    -- the second attempt fails the same way instead of returning the C table
    assert.matches("second\tfalse\t[^\n]*cfiam.extend", out)
    assert.matches("loaded\tnil\tnil", out, 1, true)
  end)

  it("a version mismatch between the halves fails every require", function()
    local luadir = dir .. "/other"
    assert(sh(("mkdir -p %s && cp -r %s %s"):format(shq(luadir),
      shq(root .. "/lua/cfiam"), shq(luadir .. "/"))))
    assert(sh(("sed -i 's/^local _VERSION = .*/local _VERSION = \"9.9.9\"/' %s")
      :format(shq(luadir .. "/cfiam/extend.lua"))))
    local _, out = require_twice(luadir)
    assert.matches("first\tfalse\t[^\n]*the Lua files are 9.9.9", out)
    assert.matches("second\tfalse\t[^\n]*the Lua files are 9.9.9", out)
    assert.matches("loaded\tnil\tnil", out, 1, true)
  end)

  it("a require that succeeds leaves the whole module", function()
    local _, out = require_twice(root .. "/lua")
    assert.matches("first\ttrue", out, 1, true)
    assert.matches("second\ttrue", out, 1, true)
    assert.matches("loaded\ttable\ttable", out, 1, true)
  end)

  it("the public tables hold what the README documents; the C hooks are in cfiam.core", function()
    local code = [[
      -- cfiam.core first: it loads cfiam itself
      local core = require("cfiam.core")
      local cfiam = require("cfiam")
      assert(core == package.loaded["cfiam.core"])
      local client = cfiam.new{ api_token = "t" }
      assert(core.client_methods == getmetatable(client).__index)
      assert(type(core.config(client)) == "table")
      local names = {}
      for k in pairs(cfiam) do names[#names + 1] = "cfiam." .. k end
      for k in pairs(core.client_methods) do names[#names + 1] = "client:" .. k end
      for k in pairs(core) do names[#names + 1] = "core." .. k end
      table.sort(names)
      print(table.concat(names, " "))
    ]]
    local ok, out = sh(table.concat({ "cd /tmp && env -i PATH=/usr/bin:/bin",
      "LUA_PATH=" .. shq(root .. "/lua/?.lua"),
      "LUA_CPATH=" .. shq(root .. "/" .. core.BUILD .. "/?.so"),
      core.LUA, "-e", shq(code) }, " "))
    assert.is_true(ok, out)
    -- the only underscore name left is _VERSION
    local underscored = {}
    for name in out:gmatch("%S+") do
      if name:find("^cfiam%._") or name:find("^client:_") then underscored[#underscored + 1] = name end
    end
    assert.same({ "cfiam._VERSION" }, underscored)
    for _, name in ipairs({ "core.error", "core.idset", "core.client_methods", "core.config",
                            "core.path", "core.prepare", "core.outcome", "core.failure",
                            "cfiam.request", "cfiam.update_members", "cfiam.list_members",
                            "client:request", "client:sync_members", "client:close" }) do
      assert.matches("%s" .. name:gsub("%p", "%%%0") .. "%s", " " .. out)
    end
  end)
end)
