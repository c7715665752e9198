-- spec/07-request_many_spec.lua: client:request_many over libcurl's multi
-- interface, against the emulator: results in the order of the calls,
-- per-call errors and retries, a 429 holding back the whole batch,
-- validation of every call before anything is sent, connections shared
-- with client:request, and no growth over many batches.
local core = require("helpers.core")
local emulator = require("helpers.emulator")
local H = require("helpers.cli")
local cfiam = require("cfiam")

local A, G, G2 = core.ACCOUNT, core.GROUP, core.GROUP2
local m = core.member
local MEMBERS = core.MEMBERS_PATH
local EMPTY = "/accounts/" .. A .. "/iam/user_groups/" .. G2 .. "/members"
local GROUP_PATH = "/accounts/" .. A .. "/iam/user_groups/" .. G

describe("request_many", function()
  local emu

  setup(function()
    emu = emulator.start({ seed = core.seed() })
  end)

  teardown(function()
    if emu then emu:stop() end
  end)

  before_each(function()
    emu:reset(core.seed())
  end)

  local function with_client(opts, f)
    local c = core.client(emu, opts)
    local ok, e = pcall(f, c)
    c:close()
    if not ok then error(e, 0) end
  end

  it("returns the results in the order of the calls, whatever order the answers come in", function()
    -- the first calls answer last: the group listing is delayed
    emu:fault({ method = "GET", path = "/" .. G .. "/members$", delay_ms = 300, times = 2 })
    with_client({}, function(c)
      local calls = {
        { "GET", MEMBERS }, { "GET", MEMBERS }, { "GET", EMPTY }, { "GET", GROUP_PATH },
        { "GET", EMPTY, query = { page = 1, per_page = 5 } },
      }
      local out = c:request_many(calls, { concurrency = 5 })
      assert.equals(5, #out)
      for i = 1, 5 do assert.is_nil(out[i].err, i) end
      assert.equals(3, #out[1].result)
      assert.equals(m(1), out[1].result[1].id)
      assert.equals(3, #out[2].result)
      assert.same({}, out[3].result)
      assert.equals(G, out[4].result.id)
      assert.same({}, out[5].result)
      assert.equals(200, out[1].meta.status)
      assert.equals(1, out[1].meta.attempts)
      assert.is_table(out[1].meta.result_info)
      -- the fast calls were answered while the slow ones still ran
      assert.equals(5, #emu:requests())
    end)
  end)

  it("sends each call as client:request would: method, query, ids body, json body", function()
    with_client({}, function(c)
      local out = c:request_many({
        { "PUT", MEMBERS, ids = { m(4), { id = m(5) }, m(4) }, decode = "members" },
        { "POST", "/accounts/" .. A .. "/iam/user_groups", json = '{"name":"New"}' },
        { "GET", EMPTY, query = { per_page = 7, page = 2 } },
        { "DELETE", "/accounts/" .. A .. "/iam/user_groups/" .. G2 },
      }, { concurrency = 1 })
      for i = 1, 4 do assert.is_nil(out[i].err, i) end
      local reqs = emu:requests()
      assert.equals(4, #reqs)
      assert.equals("PUT", reqs[1].method)
      assert.equals('[{"id":"' .. m(4) .. '"},{"id":"' .. m(5) .. '"}]', reqs[1].body)
      assert.equals("POST", reqs[2].method)
      assert.equals('{"name":"New"}', reqs[2].body)
      assert.equals("page=2&per_page=7", reqs[3].query)
      assert.equals("", reqs[3].body)
      assert.equals("DELETE", reqs[4].method)
      assert.equals(2, #out[1].result)
      assert.equals("New", out[2].result.name)
      assert.same({ m(4), m(5) }, core.group_members(emu))
    end)
  end)

  it("reports errors per call, with the same error tables as request", function()
    emu:fault({ method = "GET", path = "/" .. G2 .. "/members$", status = 500, times = -1,
                headers = { ["retry-after-ms"] = "1" } })
    with_client({ max_retries = 1 }, function(c)
      local missing = "/accounts/" .. A .. "/iam/user_groups/" .. core.fake_id(9) .. "/members"
      local out = c:request_many({ { "GET", MEMBERS }, { "GET", missing }, { "GET", EMPTY },
                                   { "GET", MEMBERS } }, { concurrency = 3 })
      assert.equals(4, #out)
      assert.equals(3, #out[1].result)
      assert.is_nil(out[2].result)
      assert.equals("not_found", out[2].err.kind)
      assert.equals(404, out[2].err.status)
      assert.equals(1, out[2].err.attempts)
      assert.matches("^cfiam not_found: HTTP 404", tostring(out[2].err))
      assert.equals("server", out[3].err.kind)
      assert.equals(2, out[3].err.attempts) -- retried once, as request does
      assert.equals(3, #out[4].result)
      -- the same error as a single request gives
      local _, err = c:request("GET", missing)
      assert.equals(err.message, out[2].err.message)
    end)
  end)

  it("retries each call by the request rules and succeeds", function()
    emu:fault({ method = "GET", path = "/" .. G2 .. "/members$", status = 503, times = 2,
                headers = { ["retry-after-ms"] = "1" } })
    emu:fault({ method = "GET", path = "/" .. G .. "/members$", drop = true, times = 1 })
    with_client({ max_retries = 2 }, function(c)
      local out = c:request_many({ { "GET", MEMBERS }, { "GET", EMPTY }, { "GET", MEMBERS } },
                                 { concurrency = 3 })
      for i = 1, 3 do assert.is_nil(out[i].err, i) end
      assert.equals(3, out[2].meta.attempts)
      -- call 1 or 3 dropped once, call 2 answered 503 twice
      assert.equals(3 + 3, #emu:requests())
    end)
  end)

  it("a 429 holds back the whole batch for its Retry-After, then every call succeeds", function()
    with_client({ max_retries = 2 }, function(c)
      assert(c:request("GET", EMPTY)) -- the first answer: no probing in the batch
      emu:clear_requests()
      emu:fault({ method = "GET", path = "/" .. G .. "$", status = 429, times = 1,
                  headers = { ["Retry-After"] = "1" } })
      local calls = { { "GET", GROUP_PATH } }
      for i = 2, 8 do calls[i] = { "GET", EMPTY, query = { page = i } } end
      local out = c:request_many(calls, { concurrency = 2 })
      for i = 1, 8 do assert.is_nil(out[i].err, i) end
      assert.equals(2, out[1].meta.attempts)
      local reqs = emu:requests()
      assert.equals(9, #reqs)
      local t429
      for _, r in ipairs(reqs) do
        if r.path:find(G .. "$") then t429 = t429 or r.received end
      end
      -- besides the call that ran beside it, nothing was sent during the
      -- second the 429 asked for (without the hold, calls 3..8 would be)
      local during = 0
      for _, r in ipairs(reqs) do
        if r.path:find("/members$") and r.received > t429 and r.received < t429 + 0.8 then
          during = during + 1
        end
      end
      assert.is_true(during <= 1, "requests during the hold: " .. during)
    end)
  end)

  it("a 429 with a wait beyond the timeout fails the calls still waiting at once, unsent", function()
    emu:fault({ method = "GET", status = 429, times = 1, headers = { ["Retry-After"] = "30" } })
    with_client({ max_retries = 0, timeout = 5 }, function(c)
      local calls = {}
      for i = 1, 4 do calls[i] = { "GET", MEMBERS } end
      local elapsed, out = core.timed(function() return c:request_many(calls, { concurrency = 1 }) end)
      assert.is_true(elapsed < 5, "did not wait")
      assert.equals("rate_limited", out[1].err.kind)
      assert.equals(429, out[1].err.status)
      for i = 2, 4 do
        assert.equals("rate_limited", out[i].err.kind, i)
        assert.is_nil(out[i].err.status)
        assert.equals(0, out[i].err.attempts)
        assert.is_true(out[i].err.retry_after > 20 and out[i].err.retry_after <= 30)
      end
      assert.equals(1, #emu:requests())
    end)
  end)

  it("a 429 whose wait is beyond the timeout ends its own call too, without waiting for the retry",
    function()
    -- the wait (8 s) is under the 60 s a single call waits out, but beyond
    -- the timeout: the call that got the 429 fails with it, as the calls it
    -- holds back do, rather than retrying after the whole wait
    emu:fault({ method = "GET", status = 429, times = 1, headers = { ["Retry-After"] = "8" } })
    with_client({ max_retries = 2, timeout = 2 }, function(c)
      local calls = {}
      for i = 1, 4 do calls[i] = { "GET", MEMBERS } end
      local out = c:request_many(calls, { concurrency = 1 })
      assert.equals("rate_limited", out[1].err.kind)
      assert.equals(429, out[1].err.status)
      assert.equals(1, out[1].err.attempts)
      assert.equals(8, out[1].err.retry_after)
      for i = 2, 4 do
        assert.equals("rate_limited", out[i].err.kind, i)
        assert.equals(0, out[i].err.attempts, i)
        assert.is_true(out[i].err.retry_after > 6 and out[i].err.retry_after <= 8, i)
      end
      assert.equals(1, #emu:requests())
    end)
  end)

  -- A script that catches Ctrl-C (as the command does) and runs a batch of
  -- GET calls to the paths it is given, one at a time; it prints each
  -- outcome and exits 130 when interrupted.
  local CTRL_C_SCRIPT = [[
local core = require("cfiam.core")
core.catch_interrupt()
local c = require("cfiam").new{ max_retries = 2 }
local calls = {}
for i, path in ipairs(arg) do calls[i] = { "GET", path } end
local out = assert(c:request_many(calls, { concurrency = 1 }))
for i, o in ipairs(out) do
  print(i, o.err and o.err.kind or "ok", o.err and o.err.message or "",
    o.err and o.err.attempts or o.meta.attempts)
end
os.exit(core.interrupted() and 130 or 0)
]]

  it("Ctrl-C ends a batch's waits at once: the calls not sent fail as interrupted", function()
    local script = os.tmpname()
    local f = assert(io.open(script, "wb"))
    f:write(CTRL_C_SCRIPT)
    f:close()
    local INT = { "network", "interrupted" }
    for _, case in ipairs({
      -- call 1 gets a 429 asking for 50 s: the whole batch holds
      { fault = { path = "/" .. G .. "/members$", status = 429 }, paths = { MEMBERS, EMPTY, EMPTY, EMPTY },
        sent = 1, want = { { INT, 1 }, { INT, 0 }, { INT, 0 }, { INT, 0 } } },
      -- call 4 (sent once 1..3 are answered) gets a 503 asking for 50 s:
      -- it waits for its retry
      { fault = { path = "/" .. G2 .. "/members$", status = 503 }, paths = { MEMBERS, MEMBERS, MEMBERS, EMPTY },
        sent = 4, want = { { { "ok", "" }, 1 }, { { "ok", "" }, 1 }, { { "ok", "" }, 1 }, { INT, 1 } } },
      -- a quota of 1 request per 50 s: call 2 waits for the reset (call 1,
      -- whose answer may still be read when Ctrl-C comes, is either)
      { quota = { limit = 1, window = 50 }, paths = { MEMBERS, EMPTY, EMPTY, EMPTY },
        sent = 1, want = { { { "ok", "" }, 1 }, { INT, 0 }, { INT, 0 }, { INT, 0 } }, either = INT },
    }) do
      emu:reset(core.seed())
      emu:clear_requests()
      if case.fault then
        case.fault.method, case.fault.times, case.fault.headers = "GET", 1, { ["Retry-After"] = "50" }
        emu:fault(case.fault)
      end
      emu:admin("POST", "/quota", case.quota or {})
      local child = H.spawn(script, case.paths, { env = H.env(emu) })
      assert.is_truthy(H.poll(function() return #emu:requests() >= case.sent end, 10),
        "the batch did not start")
      child:signal("INT")
      local r = child:wait(10)
      assert.is_not_nil(r, "the batch did not stop on SIGINT")
      assert.equals(130, r.status, r.stdout .. r.stderr)
      local got = {}
      for line in r.stdout:gmatch("[^\n]+") do
        local i, kind, msg, attempts = line:match("^(%d+)\t([^\t]*)\t([^\t]*)\t(%d+)$")
        got[tonumber(i)] = { { kind, msg }, tonumber(attempts) }
      end
      if case.either and got[1] and got[1][1][1] ~= "ok" then case.want[1][1] = case.either end
      assert.same(case.want, got)
      assert.equals(case.sent, #emu:requests())
    end
    emu:admin("POST", "/quota", {})
    os.remove(script)
  end)

  it("validates every call before anything is sent, naming the bad one", function()
    with_client({}, function(c)
      local good = { "GET", MEMBERS }
      local out, err = c:request_many({ good, good, { "PUT", MEMBERS, ids = { m(1), "nope" } }, good })
      assert.is_nil(out)
      assert.equals("invalid_argument", err.kind)
      assert.matches("^calls%[3%]: ids%[2%]: expected a 32%-character", err.message)
      out, err = c:request_many({ good, { "GET", "no-slash" } })
      assert.is_nil(out)
      assert.matches("^calls%[2%]: path:", err.message)
      out, err = c:request_many({ good, { "PUT", MEMBERS, ids = {} } })
      assert.is_nil(out)
      assert.matches("^calls%[2%]: ids is empty", err.message)
      -- an ids table with a metatable is not read as a (shorter) list
      local proxy = setmetatable({}, { __index = { m(1) }, __len = function() return 1 end })
      assert.has_error(function() c:request_many({ good, { "PUT", MEMBERS, ids = proxy, allow_empty = true } }) end,
        "bad argument to 'request_many' (calls[2]: ids: a plain list expected, got a table whose "
          .. "metatable has __index or __len)")
      -- programmer errors raise, naming the call
      assert.has_error(function() c:request_many({ good, { "FETCH", MEMBERS } }) end,
        "bad argument to 'request_many' (calls[2]: method must be GET, POST, PUT, PATCH or DELETE)")
      assert.has_error(function() c:request_many({ good, "GET" }) end,
        "bad argument to 'request_many' (calls[2]: table { method, path, ... } expected, got string)")
      assert.has_error(function() c:request_many({ { "GET", MEMBERS, query = { a = {} } } }) end,
        'calls[1]: query value "a" must be a string, number or boolean')
      assert.has_error(function() c:request_many({ { "POST", MEMBERS, json = {} } }) end,
        "bad argument to 'request_many' (calls[1]: option 'json' must be a string, got table)")
      assert.has_error(function() c:request_many({ { "GET", MEMBERS, qery = {} } }) end,
        "bad argument to 'request_many' (calls[1]: unknown option \"qery\")")
      assert.has_error(function() c:request_many({ { "GET" } }) end)
      assert.has_error(function() c:request_many({ good }, { concurrency = 0 }) end,
        "bad argument to 'request_many' (option 'concurrency' must be a whole number from 1 to 64)")
      assert.has_error(function() c:request_many({ good }, { concurrency = 65 }) end)
      assert.has_error(function() c:request_many({ good }, { concurrency = 1.5 }) end)
      assert.has_error(function() c:request_many({ good }, { concurency = 2 }) end,
        "bad argument to 'request_many' (unknown option \"concurency\")")
      assert.has_error(function() c:request_many("x") end)
      assert.equals(0, #emu:requests())
      -- an empty batch sends nothing and returns an empty table
      assert.same({}, c:request_many({}))
      -- a client whose configuration is bad fails the batch the same way
      local bad = cfiam.new({ api_token = "t\n", base_url = emu.base_url })
      out, err = bad:request_many({ good })
      bad:close()
      assert.is_nil(out)
      assert.equals("invalid_argument", err.kind)
      assert.equals(0, #emu:requests())
    end)
  end)

  it("shares its connections with client:request (one keep-alive connection at concurrency 1)", function()
    with_client({}, function(c)
      assert(c:request("GET", MEMBERS))
      local calls = {}
      for i = 1, 5 do calls[i] = { "GET", MEMBERS } end
      c:request_many(calls, { concurrency = 1 })
      c:request_many(calls, { concurrency = 1 })
      assert(c:request("GET", MEMBERS))
      assert.equals(1, emu:stats().connections)
    end)
  end)

  it("keeps at most `concurrency` transfers in flight", function()
    emu:fault({ method = "GET", delay_ms = 100, times = -1 })
    with_client({}, function(c)
      local calls = {}
      for i = 1, 12 do calls[i] = { "GET", MEMBERS } end
      local out = c:request_many(calls, { concurrency = 3 })
      for i = 1, 12 do assert.is_nil(out[i].err, i) end
      assert.is_true(emu:stats().connections <= 3)
    end)
  end)

  it("cfiam.request_many runs on the default client made from the environment", function()
    local out, ok = core.child({ CLOUDFLARE_API_TOKEN = core.TOKEN, CLOUDFLARE_BASE_URL = emu.base_url },
      'local out = require("cfiam").request_many({ { "GET", "' .. MEMBERS .. '" }, { "GET", "' .. EMPTY
      .. '" } }) print("n " .. #out .. " " .. #out[1].result .. " " .. #out[2].result)')
    assert.is_true(ok, out)
    assert.matches("n 2 3 0", out)
  end)

  it("a closed client raises, and close frees the batch machinery", function()
    local c = core.client(emu)
    c:request_many({ { "GET", MEMBERS }, { "GET", MEMBERS } })
    c:close()
    c:close()
    assert.has_error(function() c:request_many({ { "GET", MEMBERS } }) end,
      "cfiam: attempt to use a closed client")
  end)

  it("does not grow over many batches", function()
    with_client({}, function(c)
      local calls = { { "GET", MEMBERS }, { "GET", EMPTY }, { "GET", MEMBERS },
                      { "PUT", MEMBERS, ids = { m(1), m(2), m(3) }, decode = "members" } }
      local function rss_kb()
        local f = io.open("/proc/self/statm")
        if not f then return 0 end
        f:read("*n") -- size, then resident
        local pages = f:read("*n")
        f:close()
        return pages * 4
      end
      for _ = 1, 50 do c:request_many(calls, { concurrency = 4 }) end
      collectgarbage(); collectgarbage()
      local lua0, rss0 = collectgarbage("count"), rss_kb()
      for _ = 1, 400 do
        local out = c:request_many(calls, { concurrency = 4 })
        assert.is_nil(out[4].err)
      end
      collectgarbage(); collectgarbage()
      assert.is_true(collectgarbage("count") - lua0 < 256, "Lua heap grew")
      -- under ASan its quarantine holds freed memory (and its leak checker
      -- covers the run): the RSS says nothing there
      if not os.getenv("ASAN_OPTIONS") then
        assert.is_true(rss_kb() - rss0 < 4096, "RSS grew by " .. (rss_kb() - rss0) .. " kB")
      end
    end)
  end)
end)

describe("helpers with concurrency", function()
  local emu, ids
  local seed

  setup(function()
    seed, ids = emulator.seed({ members = 600, groups = { { name = "Big", members = 450 },
                                                          { name = "Small", members = 6 } } })
    emu = emulator.start({ seed = seed })
  end)

  teardown(function()
    if emu then emu:stop() end
  end)

  before_each(function()
    emu:reset(seed)
  end)

  local function client(opts)
    return core.client(emu, opts)
  end

  local function list_ids(list)
    local t = {}
    for i, mb in ipairs(list) do t[i] = mb.id end
    return t
  end

  it("list_members fetches the pages after the first `concurrency` at a time: same list", function()
    local c = client()
    local big = ids.groups.Big.id
    local one = assert(c:list_members(ids.account, big, { per_page = 20 }))
    local n1 = #emu:requests()
    assert.equals(1, emu:stats().connections)
    emu:clear_requests()
    -- slow answers: pages in flight together need connections of their own
    emu:fault({ method = "GET", delay_ms = 30, times = -1 })
    local many = assert(c:list_members(ids.account, big, { per_page = 20, concurrency = 8 }))
    emu:clear_faults()
    assert.same(list_ids(one), list_ids(many))
    assert.equals(450, #many)
    assert.equals(n1, #emu:requests()) -- 23 pages either way, none extra
    assert.is_true(emu:stats().connections > 1)
    local seen = {}
    for m1 in c:each_member(ids.account, big, { per_page = 20, concurrency = 5 }) do
      seen[#seen + 1] = m1.id
    end
    assert.same(list_ids(one), seen)
    -- the groups listing takes it too
    assert.equals(2, #assert(c:list_groups(ids.account, { per_page = 1, concurrency = 4 })))
    c:close()
  end)

  it("a failed page among the concurrent ones fails the listing (no partial list)", function()
    local c = client()
    emu:fault({ { method = "GET", delay_ms = 1, times = 1 },   -- page 1 as usual
                { method = "GET", status = 500, times = 1 } }) -- one of the next pages
    local list, err = c:list_members(ids.account, ids.groups.Big.id,
                                     { per_page = 20, concurrency = 8 })
    assert.is_nil(list)
    assert.equals("server", err.kind)
    -- a server whose listing runs short of total_count is still incomplete
    emu:fault({ { method = "GET", delay_ms = 1, times = 1 },
                { method = "GET", body_bytes = 10, times = 1 } })
    list, err = c:list_members(ids.account, ids.groups.Big.id, { per_page = 20, concurrency = 8 })
    assert.is_nil(list)
    assert.is_truthy(err.kind == "incomplete" or err.kind == "invalid_response", err.kind)
    c:close()
  end)

  it("resolve_members and the account listing behind e-mails take concurrency", function()
    local c = client()
    local want = { ids.emails[1], ids.emails[333], ids.emails[600] }
    local map = assert(c:resolve_members(ids.account, want, { concurrency = 6 }))
    assert.equals(ids.member_ids[333], map[ids.emails[333]].id)
    assert.equals(ids.member_ids[600], map[ids.emails[600]].id)
    local plan = assert(c:plan_members(ids.account, ids.groups.Small.id,
      { ids.emails[1], ids.emails[2], ids.emails[599] }, { concurrency = 4 }))
    assert.equals(1, #plan.add)
    assert.equals(ids.member_ids[599], plan.add[1].id)
    local _, err = c:resolve_members(ids.account, want, { concurrency = 0 })
    assert.equals("invalid_argument", err.kind)
    assert.matches("concurrency: expected a whole number from 1 to 64", err.message)
    assert.has_error(function() c:resolve_members(ids.account, want, { concurrency = "8" }) end)
    _, err = c:list_members(ids.account, ids.groups.Small.id, { concurrency = 65 })
    assert.equals("invalid_argument", err.kind)
    c:close()
  end)

  it("remove_members sends its DELETEs concurrently and reports each", function()
    local c = client()
    local small = ids.groups.Small.id
    local gone = { ids.member_ids[1], ids.member_ids[2], ids.member_ids[3], ids.member_ids[4],
                   ids.member_ids[500] }
    local res = assert(c:remove_members(ids.account, small, gone, { concurrency = 4 }))
    assert.same({ ids.member_ids[1], ids.member_ids[2], ids.member_ids[3], ids.member_ids[4] },
                res.removed)
    assert.same({ ids.member_ids[500] }, res.not_members)
    assert.same({ ids.member_ids[5], ids.member_ids[6] }, core.group_members(emu, ids.account, small))
    -- a failure: the others are still done and reported with the error
    emu:fault({ method = "DELETE", status = 500, times = 1 })
    local _, err = c:remove_members(ids.account, small, { ids.member_ids[5], ids.member_ids[6] },
                                    { concurrency = 2 })
    assert.equals("server", err.kind)
    assert.equals(1, #err.removed)
    c:close()
  end)
end)
