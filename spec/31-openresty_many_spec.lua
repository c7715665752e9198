-- spec/31-openresty_many_spec.lua: client:request_many inside a real nginx
-- (cosockets, light threads) gives the same results and errors as the
-- libcurl multi path in this process; it validates before sending, paces
-- by the quota (no 429 from the emulator's --quota) and never blocks the
-- worker.
--
-- nginx loads the LuaJIT build (build/luajit/cfiam.so).
local core = require("helpers.core")
local emulator = require("helpers.emulator")
local nginx = require("helpers.nginx")
local cjson = require("cjson").new()

local MEMBERS = core.MEMBERS_PATH
local A = core.ACCOUNT
local G = core.GROUP
local GROUP_PATH = "/accounts/" .. A .. "/iam/user_groups/" .. G
local EMPTY = "/accounts/" .. A .. "/iam/user_groups/" .. core.GROUP2 .. "/members"
local MISSING = "/accounts/" .. A .. "/iam/user_groups/" .. core.fake_id(9) .. "/members"

-- POST /many { opts = client options, calls = , many = request_many opts }
-- -> { out = , err = , raised = , exchanges = }
local SERVER = [==[
    location = /many { content_by_lua_block {
      local cjson = require("cjson").new()
      local cfiam = require("cfiam")
      local cos = require("cfiam.cosocket")
      ngx.req.read_body()
      local q = cjson.decode(ngx.req.get_body_data())
      local client = cfiam.new(q.opts)
      local before = cos.exchanges
      local calls = {}
      for i, c in ipairs(q.calls) do -- { method, path, opts }: JSON has no mixed tables
        calls[i] = c[3] or {}
        calls[i][1], calls[i][2] = c[1], c[2]
      end
      local ok, out, err = pcall(client.request_many, client, calls, q.many)
      client:close()
      if not ok then
        ngx.print(cjson.encode({ raised = tostring(out) }))
        return
      end
      ngx.print(cjson.encode({ out = out, err = err, exchanges = cos.exchanges - before }))
    } }

    # request_many (?f=many) with a bad concurrency, or a helper
    # (?f=dump_account) with a bad option, called on the line that also
    # notes where it is:
    # "<chunk>:<line>|<raised>|<ok>"
    location = /bad_concurrency { content_by_lua_block {
      local c = require("cfiam").new{ api_token = "test-token", base_url = "http://127.0.0.1:9" }
      local calls, bad, acc = { { "GET", "/x" } }, { concurrency = 0 }, string.rep("a", 32)
      local names = { groups = { 7 } }
      local here, ok, e
      if ngx.var.arg_f == "many" then
        here, ok, e = debug.getinfo(1, "Sl"), pcall(function() local r = c:request_many(calls, bad) return r end)
      else
        here, ok, e = debug.getinfo(1, "Sl"), pcall(function() local r = c:dump_account(acc, names) return r end)
      end
      ngx.print(here.short_src, ":", here.currentline, "|", tostring(e), "|", tostring(ok))
    } }

    # n calls of client:request one after another: "ok <successes>"
    location = /seq { content_by_lua_block {
      local c = require("cfiam").new{ base_url = ngx.unescape_uri(ngx.var.arg_base),
        api_token = "test-token", max_retries = 0, timeout = 10 }
      local ok = 0
      for _ = 1, tonumber(ngx.var.arg_n) do
        if c:request("GET", ngx.unescape_uri(ngx.var.arg_path)) then ok = ok + 1 end
      end
      ngx.say("ok ", ok)
    } }
]==]

describe("request_many under OpenResty", function()
  local emu, quota_emu, srv

  setup(function()
    emu = emulator.start({ seed = core.seed() })
    quota_emu = emulator.start({ seed = core.seed(), args = { "--quota", "5/3" } })
    srv = nginx.start({ server = SERVER })
  end)

  teardown(function()
    if srv then srv:stop() end
    if emu then emu:stop() end
    if quota_emu then quota_emu:stop() end
  end)

  before_each(function()
    emu:reset(core.seed())
  end)

  local function in_nginx(e, calls, many, opts)
    local o = { api_token = core.TOKEN, base_url = e.base_url, timeout = 5, max_retries = 0 }
    for k, v in pairs(opts or {}) do o[k] = v end
    local wire = {}
    for i, c in ipairs(calls) do
      local rest = {}
      for k, v in pairs(c) do if type(k) == "string" then rest[k] = v end end
      wire[i] = { c[1], c[2], next(rest) and rest or nil }
    end
    local status, body = srv:get("/many", 30, cjson.encode({ opts = o, calls = wire, many = many }))
    assert.equals(200, status, body)
    return cjson.decode(body)
  end

  -- what matters of one out[i], comparable across transports
  local function shape(o)
    if o.err then
      return { kind = o.err.kind, status = o.err.status, message = o.err.message,
               attempts = o.err.attempts }
    end
    local r = o.result
    if r.created_on then -- a group: its timestamps come from each reset
      r = { id = r.id, name = r.name }
    end
    return { result = r, status = o.meta.status, attempts = o.meta.attempts }
  end

  it("the same results, errors and order as the libcurl path", function()
    local calls = { { "GET", MEMBERS }, { "GET", MISSING },
                    { "GET", "/accounts/" .. A .. "/iam/user_groups/" .. core.GROUP },
                    { "PUT", EMPTY, ids = { core.member(1), core.member(4) }, decode = "members" },
                    { "GET", MEMBERS, query = { per_page = 1, page = 2 } } }
    emu:fault({ method = "GET", path = "/" .. core.GROUP .. "/members$", delay_ms = 200, times = 1 })
    local got = in_nginx(emu, calls, { concurrency = 3 })
    assert.is_nil(got.raised)
    assert.equals(5, got.exchanges)
    emu:reset(core.seed())
    local c = core.client(emu)
    local want = c:request_many(calls, { concurrency = 3 })
    c:close()
    assert.equals(5, #got.out)
    for i = 1, 5 do assert.same(shape(want[i]), shape(got.out[i]), i) end
    assert.equals("not_found", got.out[2].err.kind)
  end)

  it("validates every call before sending, with the same messages", function()
    local got = in_nginx(emu, { { "GET", MEMBERS }, { "PUT", MEMBERS, ids = { "x" } } })
    assert.equals("invalid_argument", got.err.kind)
    assert.matches("^calls%[2%]: ids%[1%]: expected a 32%-character", got.err.message)
    assert.equals(0, got.exchanges)
    got = in_nginx(emu, { { "GET", MEMBERS }, { "FETCH", MEMBERS } })
    assert.matches("calls%[2%]: method must be GET, POST, PUT, PATCH or DELETE", got.raised)
    got = in_nginx(emu, { { "GET", MEMBERS } }, { concurrency = 0 })
    assert.matches("concurrency' must be a whole number from 1 to 64", got.raised)
    assert.equals(0, #emu:requests())
  end)

  it("paces by the Ratelimit headers: 8 calls within a quota of 5 per 3 s, no 429", function()
    quota_emu:reset(core.seed())
    local calls = {}
    for i = 1, 8 do calls[i] = { "GET", MEMBERS } end
    local got = in_nginx(quota_emu, calls, { concurrency = 4 })
    for i = 1, 8 do assert.is_nil(got.out[i].err, i) end
    local st = quota_emu:stats()
    assert.equals(0, st.rate_limited)
    assert.equals(8, st.requests)
  end)

  it("single calls pace by the Ratelimit headers too: 8 within a quota of 5 per 3 s, no 429", function()
    quota_emu:reset(core.seed())
    local status, body = srv:get("/seq?n=8&base=" .. quota_emu.base_url .. "&path=" .. MEMBERS, 30)
    assert.equals(200, status)
    assert.matches("ok 8", body)
    local st = quota_emu:stats()
    assert.equals(0, st.rate_limited)
    assert.equals(8, st.requests)
  end)

  -- call 1 goes alone (the quota is unknown), then calls 2 and 3 together:
  -- call 2 is answered 429 at once, while call 3, still in flight, gets a
  -- 503 later and asks to be retried at once
  local function hold_faults(e, retry_after)
    e:fault({ method = "GET", path = "/" .. G .. "/members$", delay_ms = 400, status = 503, times = 1,
              headers = { ["retry-after-ms"] = "1" } })
    e:fault({ method = "GET", path = "/" .. G .. "$", status = 429, times = 1,
              headers = { ["Retry-After"] = retry_after } })
    local calls = { { "GET", EMPTY }, { "GET", GROUP_PATH }, { "GET", MEMBERS } }
    for i = 4, 8 do calls[i] = { "GET", EMPTY, query = { page = i } } end
    return calls
  end

  -- The request log of a hold_faults batch: every request that arrived
  -- after the 429, but for call 3's first (in flight before the 429 was
  -- answered), came once the hold was over (to the clocks' millisecond).
  local function assert_held(reqs, hold)
    local t429, first3
    for i, r in ipairs(reqs) do
      if r.path:find("/" .. G .. "$") and not t429 then t429 = r.received end
      if r.path:find("/" .. G .. "/members$") and not first3 then first3 = i end
    end
    assert.is_number(t429)
    for i, r in ipairs(reqs) do
      if r.received > t429 and i ~= first3 then
        assert.is_true(r.received >= t429 + hold - 0.01, ("request %d (%s%s) came %.3f s "
          .. "after the 429, during its hold"):format(i, r.path, r.query, r.received - t429))
      end
    end
  end

  local function keys(t)
    local k = {}
    for name in pairs(t) do k[#k + 1] = name end
    table.sort(k)
    return k
  end

  it("a 429 holds back every call of the batch, retries of calls in flight included, as libcurl does", function()
    local calls = hold_faults(emu, "1")
    local got = in_nginx(emu, calls, { concurrency = 2 }, { max_retries = 2 })
    assert.is_nil(got.raised)
    for i = 1, 8 do assert.is_nil(got.out[i].err, i) end
    assert.equals(2, got.out[2].meta.attempts)
    assert.equals(2, got.out[3].meta.attempts)
    local reqs = emu:requests()
    assert.equals(10, #reqs)
    assert_held(reqs, 1)
    -- the libcurl path, the same batch
    emu:reset(core.seed())
    calls = hold_faults(emu, "1")
    local c = core.client(emu, { max_retries = 2 })
    local out = c:request_many(calls, { concurrency = 2 })
    c:close()
    for i = 1, 8 do assert.same(shape(out[i]), shape(got.out[i]), i) end
    assert_held(emu:requests(), 1)
  end)

  it("a hold beyond the timeout fails every call waiting for it at once, retries included, unsent, "
    .. "with the libcurl path's error", function()
    -- a Retry-After over 60 s is not waited: call 2 ends on its 429, and
    -- call 3's retry and calls 4..8 would wait beyond the timeout
    local calls = hold_faults(emu, "61")
    local got = in_nginx(emu, calls, { concurrency = 2 }, { max_retries = 2 })
    assert.is_nil(got.raised)
    assert.equals(3, #emu:requests())
    emu:reset(core.seed())
    calls = hold_faults(emu, "61")
    local c = core.client(emu, { max_retries = 2 })
    local out = c:request_many(calls, { concurrency = 2 })
    c:close()
    assert.equals(3, #emu:requests())
    assert.is_nil(got.out[1].err)
    assert.equals(429, got.out[2].err.status)
    assert.same(shape(out[2]), shape(got.out[2]))
    for i = 3, 8 do
      local e, want = got.out[i].err, out[i].err
      assert.equals("rate_limited", e.kind, i)
      assert.is_nil(e.status)
      assert.equals(i == 3 and 1 or 0, e.attempts, i)
      assert.equals(want.attempts, e.attempts, i)
      assert.is_true(e.retry_after > 50 and e.retry_after <= 61, e.retry_after)
      -- the same message, but for the seconds left
      local strip = "%d+%.%d s"
      assert.equals((want.message:gsub(strip, "")), (e.message:gsub(strip, "")), i)
      assert.same(keys(want), keys(e), i) -- the same fields
    end
  end)

  it("a bad option raises at the caller's line, not inside cfiam", function()
    local want = {
      many = "bad argument to 'request_many' (option 'concurrency' must be a whole number from 1 to 64)",
      dump_account = "bad argument to 'dump_account' (option groups[1]: string expected, got number)",
    }
    for f, message in pairs(want) do
      local status, body = srv:get("/bad_concurrency?f=" .. f, 10)
      assert.equals(200, status)
      local at, msg, ok = body:match("^([^|]*)|([^|]*)|(.*)$")
      assert.equals("false", ok)
      assert.equals(at .. ": " .. message, msg)
    end
    -- as on the libcurl path, in this process
    local c, bad = core.client(emu), { concurrency = 0 }
    local function line() return debug.getinfo(2, "l").currentline end
    local n, _, e = line(), pcall(function() local r = c:request_many({}, bad) return r end)
    assert.equals("spec/31-openresty_many_spec.lua:" .. n .. ": " .. want.many, e)
    n, _, e = line(), pcall(function() local r = c:dump_account(A, { groups = { 7 } }) return r end)
    assert.equals("spec/31-openresty_many_spec.lua:" .. n .. ": " .. want.dump_account, e)
    c:close()
    assert.equals(0, #emu:requests())
  end)

  it("a 429 that ends a call holds back the calls not yet started", function()
    emu:fault({ method = "GET", status = 429, times = 1, headers = { ["Retry-After"] = "30" } })
    local calls = {}
    for i = 1, 4 do calls[i] = { "GET", MEMBERS } end
    local got = in_nginx(emu, calls, { concurrency = 1 })
    assert.equals(429, got.out[1].err.status)
    for i = 2, 4 do
      assert.equals("rate_limited", got.out[i].err.kind)
      assert.equals(0, got.out[i].err.attempts)
    end
    assert.equals(1, #emu:requests())
  end)

  it("a 429 whose wait is beyond the timeout ends its own call too, as libcurl does", function()
    local function batch(run)
      emu:reset(core.seed())
      emu:fault({ method = "GET", status = 429, times = 1, headers = { ["Retry-After"] = "8" } })
      local calls = {}
      for i = 1, 4 do calls[i] = { "GET", MEMBERS } end
      local out = run(calls)
      assert.equals(1, #emu:requests())
      return out
    end
    local got = batch(function(calls)
      return in_nginx(emu, calls, { concurrency = 1 }, { max_retries = 2, timeout = 2 }).out
    end)
    local want = batch(function(calls)
      local c = core.client(emu, { max_retries = 2, timeout = 2 })
      local out = c:request_many(calls, { concurrency = 1 })
      c:close()
      return out
    end)
    assert.equals(429, got[1].err.status)
    assert.equals(1, got[1].err.attempts)
    assert.equals(8, got[1].err.retry_after)
    assert.same(shape(want[1]), shape(got[1]))
    for i = 2, 4 do
      assert.equals("rate_limited", got[i].err.kind, i)
      assert.equals(0, got[i].err.attempts, i)
      assert.equals(want[i].err.kind, got[i].err.kind, i)
    end
  end)

  it("a 429 that ends a call without a Retry-After holds the batch for the backoff, as libcurl does",
    function()
    -- no retries left: the hold is the backoff the call would have waited
    -- before a retry (0.5 s less up to 25 %)
    local function batch(run)
      emu:reset(core.seed())
      emu:fault({ method = "GET", path = "/" .. G .. "$", status = 429, times = 1 })
      local calls = { { "GET", GROUP_PATH } }
      for i = 2, 4 do calls[i] = { "GET", EMPTY, query = { page = i } } end
      local out = run(calls)
      local reqs = emu:requests()
      assert.equals(4, #reqs)
      assert_held(reqs, 0.375)
      return out
    end
    local got = batch(function(calls)
      return in_nginx(emu, calls, { concurrency = 2 }).out
    end)
    local want = batch(function(calls)
      local c = core.client(emu)
      local out = c:request_many(calls, { concurrency = 2 })
      c:close()
      return out
    end)
    for i = 1, 4 do assert.same(shape(want[i]), shape(got[i]), i) end
    assert.equals(429, got[1].err.status)
  end)

  it("does not block the worker while a batch waits", function()
    emu:fault({ method = "GET", delay_ms = 1500, times = -1 })
    local body = cjson.encode({ opts = { api_token = core.TOKEN, base_url = emu.base_url, timeout = 10 },
                                calls = { { "GET", MEMBERS }, { "GET", MEMBERS } } }) -- luacheck: ignore
    local c = require("socket").tcp()
    c:settimeout(5)
    assert(c:connect("127.0.0.1", srv.port))
    assert(c:send("POST /many HTTP/1.0\r\nHost: x\r\nContent-Length: " .. #body .. "\r\n\r\n" .. body))
    local elapsed, status = core.timed(function() return srv:get("/ping", 5) end)
    assert.equals(200, status)
    assert.is_true(elapsed < 1, "the worker answered /ping while the batch waited")
    c:settimeout(10)
    local raw = c:receive("*a")
    c:close()
    assert.matches('"exchanges":2', raw)
    emu:clear_faults()
  end)
end)
