-- spec/53-load_spec.lua: many calls in one process keep memory flat, and
-- several processes at once against one server get correct answers.
--
-- Memory: 20,000 calls through the real C module, mixing successes and
-- every error kind (each error path allocates and frees its own things:
-- error tables, curl error buffers, connections torn down by drops, TLS
-- failures, timeouts). The resident set size is read from /proc after a
-- warm-up and at the end, in a child process (spec/helpers/
-- load_memory_child.lua) started for this alone. The bound is about leaks, not about tuning: a
-- leak of 200 bytes per call would add 3.5 MB over the measured calls,
-- while malloc and the Lua heap settle well under that once warm.
--
-- Structured ids: ids alike in most of their digits (sequential, or
-- sharing a prefix, as a server or a file can send on purpose) cost what
-- random ids cost in the two id tables of the C module (the request body's
-- de-duplication and the listing's id set). A hash of part of the id puts
-- them all in one probe chain (quadratic: tens of seconds for 150,000);
-- the bound on the client's CPU time only proves it is not that.
local emulator = require("helpers.emulator")
local rel = require("helpers.reliability")

local CALLS, WARMUP = 20000, 2000
local LUA = os.getenv("CFIAM_LUA") or (rawget(_G, "jit") and "luajit" or "lua5.4")
local BUILD = os.getenv("CFIAM_BUILD") or (rawget(_G, "jit") and "build/luajit" or "build/5.4")
local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
-- Under make test-asan freed memory first waits in ASan's quarantine, whose
-- size tools/test-asan.sh sets and passes on (LeakSanitizer checks leaks
-- there in its own way).
local BOUND_KB = 3 * 1024 + (tonumber(os.getenv("CFIAM_ASAN_QUARANTINE_KB")) or 0)

describe("load", function()
  local emu, seed, ids
  setup(function()
    seed, ids = emulator.seed{ members = 60,
      groups = { { name = "L", members = 5 }, { name = "P1", members = 0 }, { name = "P2", members = 0 },
                 { name = "P3", members = 0 }, { name = "P4", members = 0 } } }
    emu = emulator.start{ seed = seed, tls = true }
  end)
  teardown(function() if emu then emu:stop() end end)

  it("20,000 calls mixing successes and every error kind keep memory flat", function()
    assert.is_number(rel.rss_kb(), "no /proc/self/status")
    emu:reset()
    rel.install_faults(emu)
    -- a fresh process: the test process's heap holds what earlier specs left
    local cmd = table.concat({ "env",
      "LUA_PATH=" .. q("./lua/?.lua;./lua/?/init.lua;./spec/?.lua;;"),
      "LUA_CPATH=" .. q("./" .. BUILD .. "/?.so;;"),
      q(LUA), "spec/helpers/load_memory_child.lua", q(emu.base_url), q(emu.tls_base_url),
      q(emu.other_ca_file), q(ids.token), q(ids.account), q(ids.groups.L.id), CALLS, WARMUP,
      "2>&1" }, " ")
    local f = assert(io.popen(cmd, "r"))
    local out = f:read("*a")
    f:close()
    local rss0, rss1, lua0, lua1, took, kinds = out:match("^ok (%d+) (%d+) (%d+) (%d+) ([%d.]+) (%S+)\n$")
    assert.is_truthy(rss0, out)
    rss0, rss1, lua0, lua1, took = tonumber(rss0), tonumber(rss1), tonumber(lua0), tonumber(lua1), tonumber(took)
    local seen = {}
    for k in kinds:gmatch("[^,]+") do seen[k] = true end
    for _, k in ipairs(rel.KINDS) do
      assert.is_true(seen[k] == true, "kind " .. k .. " never called")
    end
    local msg = string.format("RSS %d kB -> %d kB, Lua heap %.0f kB -> %.0f kB, %d calls in %.1f s",
      rss0, rss1, lua0, lua1, CALLS, took)
    print("  load: " .. msg)
    assert.is_true(rss1 - rss0 < BOUND_KB, msg)
    assert.is_true(lua1 - lua0 < 512, msg)
    assert.is_true(took < 45, msg)
  end)

  it("four processes at once get correct answers", function()
    emu:reset()
    local ROUNDS = 40
    local procs = {}
    for p = 1, 4 do
      local group = ids.groups["P" .. p].id
      -- each process works on its own group with its own members
      local mine = {}
      for i = (p - 1) * 15 + 1, p * 15 do mine[#mine + 1] = ids.member_ids[i] end
      local cmd = table.concat({ "env",
        "LUA_PATH=" .. q("./lua/?.lua;./lua/?/init.lua;./spec/?.lua;;"),
        "LUA_CPATH=" .. q("./" .. BUILD .. "/?.so;;"),
        q(LUA), "spec/helpers/load_child.lua", q(emu.base_url), q(ids.token),
        q(ids.account), q(group), ROUNDS, q(table.concat(mine, ",")), "2>&1" }, " ")
      procs[p] = { group = group, mine = mine, f = assert(io.popen(cmd, "r")) }
    end
    -- all four run at once; collect them in order
    for p, pr in ipairs(procs) do
      local out = pr.f:read("*a")
      pr.f:close()
      local rounds, last = out:match("^ok (%d+) ([%x,]+)\n$")
      assert.equals(tostring(ROUNDS), rounds, "process " .. p .. ": " .. out)
      pr.last = last
    end
    -- the server agrees with what each process was last told
    local st = emu:state()
    for p, pr in ipairs(procs) do
      local found
      for _, g in ipairs(st.accounts[ids.account].groups) do
        if g.id == pr.group then found = g end
      end
      local got = {}
      for i, id in ipairs(found.members) do got[i] = id end
      table.sort(got)
      assert.equals(pr.last, table.concat(got, ","), "group of process " .. p)
    end
    -- every write landed: 4 processes x ROUNDS PUTs
    local puts = 0
    for _, r in ipairs(emu:requests()) do if r.method == "PUT" then puts = puts + 1 end end
    assert.equals(4 * ROUNDS, puts)
  end)

  describe("structured ids", function()
    local N, CPU_BOUND = 150000, 8
    local cfiam = require("cfiam")
    -- sequential, as string.format("%032x", i): the first 16 digits all zero
    local function seq(i) return string.format("%032x", i) end

    it("update_members de-duplicates 150,000 sequential ids (and their upper-case twins)", function()
      emu:reset()
      emu:clear_requests()
      local list = {}
      for i = 1, N do list[i] = seq(i) end
      for i = 1, N do list[N + i] = seq(i):upper() end
      local c = cfiam.new{ api_token = ids.token, base_url = emu.base_url, max_retries = 0 }
      local t0 = os.clock()
      local res, err = c:update_members(ids.account, ids.groups.L.id, list)
      local took = os.clock() - t0
      c:close()
      -- the emulator refuses members the account does not have: what
      -- matters is what was sent
      assert.is_nil(res)
      assert.is_table(err)
      local reqs = emu:requests()
      assert.equals(1, #reqs)
      local body = require("cjson").decode(reqs[1].body)
      assert.equals(N, #body)
      for i = 1, N, 997 do assert.equals(seq(i), body[i].id) end
      assert.equals(seq(N), body[N].id)
      assert.is_true(took < CPU_BOUND, string.format("%.1f s of CPU", took))
    end)

    it("a listing's id set takes 150,000 sequential ids in pages and drops repeats", function()
      local set = require("cfiam.core").idset()
      local kept, t0 = 0, os.clock()
      for p = 0, N / 500 - 1 do
        local page = {}
        -- each page repeats the last id of the page before (a shifted page)
        for i = 1, 500 do page[i] = { id = seq(p * 500 + i) } end
        if p > 0 then page[501] = { id = seq(p * 500):upper() } end
        kept = kept + set:add_page(page)
        assert.equals(500, #page)
      end
      local took = os.clock() - t0
      assert.equals(N, kept)
      assert.is_true(took < CPU_BOUND, string.format("%.1f s of CPU", took))
    end)
  end)
end)
