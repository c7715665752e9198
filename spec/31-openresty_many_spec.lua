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
