-- spec/50-faults_spec.lua: what the module does when the server or the
-- network misbehaves. Each fault comes from the
-- emulator; each must end with the right err.kind, a message that says what
-- happened, in bounded time (small timeouts keep this quick) and without
-- hanging on to anything (make test-asan / test-valgrind run this file too).
local emulator = require("helpers.emulator")
local rel = require("helpers.reliability")
local cfiam = require("cfiam")
local socket = require("socket")

local seed, ids = emulator.seed{ members = 30, groups = { { name = "G", members = 20 } } }
local A, G = ids.account, ids.groups.G.id
local MEMBERS = "/accounts/" .. A .. "/iam/user_groups/" .. G .. "/members"

describe("faults", function()
  local emu
  setup(function() emu = emulator.start{ seed = seed } end)
  teardown(function() if emu then emu:stop() end end)
  before_each(function() emu:reset() end)

  local function client(o)
    local opts = { api_token = ids.token, base_url = emu.base_url, max_retries = 0,
                   timeout = 2, connect_timeout = 2 }
    for k, v in pairs(o or {}) do opts[k] = v end
    return cfiam.new(opts)
  end

  -- Runs f, returns its results and the seconds it took.
  local function timed(f)
    local t0 = socket.gettime()
    local r = { f() }
    return socket.gettime() - t0, r[1], r[2]
  end

  local function api_requests()
    return #emu:requests()
  end

  it("a connection closed in the middle of the body is a network error", function()
    local c = client()
    emu:fault{ method = "GET", status = 200, truncate_at = 3000,
      body = '{"success":true,"errors":[],"messages":[],"result":[' ..
        string.rep('{"id":"0123456789abcdef0123456789abcdef"},', 200) ..
        '{"id":"0123456789abcdef0123456789abcdef"}]}' }
    local dt, res, err = timed(function() return c:request("GET", MEMBERS, { decode = "members" }) end)
    assert.is_nil(res)
    assert.equals("network", err.kind)
    assert.matches("closed", err.message)
    assert.equals(1, err.attempts)
    assert.is_true(dt < 2)
    c:close()
  end)

  it("a broken body is retried like any network error, and the retry succeeds", function()
    local c = client{ max_retries = 1 }
    emu:fault{ method = "GET", truncated_chunked = true, times = 1 }
    local res, meta = c:request("GET", MEMBERS, { decode = "members" })
    assert.is_table(res, tostring(meta))
    assert.equals(20, #res)
    assert.equals(2, meta.attempts)
    c:close()
  end)

  it("a chunked body cut before its last chunk is a network error", function()
    local c = client()
    emu:fault{ method = "GET", truncated_chunked = true }
    local res, err = c:request("GET", MEMBERS, { decode = "members" })
    assert.is_nil(res)
    assert.equals("network", err.kind)
    assert.matches("transfer closed", err.message)
  end)

  it("headers that never finish end with a timeout, on time", function()
    local c = client{ timeout = 0.3 }
    emu:fault{ method = "GET", stall_at = 40 }
    local dt, res, err = timed(function() return c:request("GET", MEMBERS) end)
    assert.is_nil(res)
    assert.equals("timeout", err.kind)
    assert.matches("timed out", err.message)
    assert.is_true(dt < 1.5, "took " .. dt)
  end)

  for _, status in ipairs({ 301, 302, 307 }) do
    it(status .. " to another host is not followed: that host gets no connection", function()
      local other = rel.listener()
      finally(function() other:close() end)
      local c = client{ max_retries = 2 }
      local location = "http://127.0.0.1:" .. other.port .. "/client/v4" .. MEMBERS
      emu:fault{ method = "PUT", status = status, headers = { Location = location } }
      local res, err = c:update_members(A, G, { ids.member_ids[1] })
      assert.is_nil(res)
      assert.equals("invalid_response", err.kind)
      assert.equals(status, err.status)
      assert.matches("redirect", err.message)
      assert.matches("not followed", err.message)
      assert.equals(1, err.attempts)
      assert.equals(0, other:connections())
      assert.equals(1, api_requests())
      -- the listener does see a client that connects (the check above can fail)
      local probe = assert(socket.connect("127.0.0.1", other.port))
      assert.equals(1, other:connections())
      probe:close()
      -- and nothing changed: the PUT never reached the real route
      assert.equals(20, #assert(c:request("GET", MEMBERS, { decode = "members" })))
    end)
  end

  it("a body over max_response_bytes is refused (Content-Length)", function()
    local c = client{ max_response_bytes = 4096 }
    emu:fault{ method = "GET", body_bytes = 200000 }
    local dt, res, err = timed(function() return c:request("GET", MEMBERS, { decode = "members" }) end)
    assert.is_nil(res)
    assert.equals("invalid_response", err.kind)
    assert.matches("max_response_bytes", err.message)
    assert.equals(1, err.attempts)
    assert.is_true(dt < 2)
  end)

  it("a body over max_response_bytes is refused (chunked, no length known up front)", function()
    local c = client{ max_response_bytes = 4096 }
    emu:fault{ method = "GET", body_bytes = 200000, chunked = true }
    local res, err = c:request("GET", MEMBERS, { decode = "members" })
    assert.is_nil(res)
    assert.equals("invalid_response", err.kind)
    assert.matches("max_response_bytes", err.message)
  end)

  it("deeply nested JSON is refused, not recursed into", function()
    local c = client()
    emu:fault{ method = "GET", nested = 100000 }
    local res, err = c:request("GET", MEMBERS)
    assert.is_nil(res)
    assert.equals("invalid_response", err.kind)
    assert.matches("nesting too deep", err.message)
  end)

  it("huge JSON within the limit is decoded completely, in bounded time", function()
    local c = client()
    emu:fault{ method = "GET", body_bytes = 8 * 1024 * 1024 }
    local dt, res, meta = timed(function() return c:request("GET", MEMBERS, { decode = "members" }) end)
    assert.is_table(res, tostring(meta))
    assert.is_true(#res > 50000, "only " .. #res .. " members")
    for i = 1, #res, 997 do assert.is_string(res[i].id) end
    assert.is_true(dt < 20, "took " .. dt)
  end)

  it("invalid UTF-8 in a string is an invalid_response that says so", function()
    local c = client()
    emu:fault{ method = "GET", invalid_utf8 = true }
    local res, err = c:request("GET", MEMBERS, { decode = "members" })
    assert.is_nil(res)
    assert.equals("invalid_response", err.kind)
    assert.matches("invalid UTF%-8", err.message)
  end)

  it("200 with result null is an empty result, never nil (which reads as failure)", function()
    local c = client()
    emu:fault{ method = "GET", result_null = true, times = 2 }
    local res, meta = c:request("GET", MEMBERS, { decode = "members" })
    assert.same({}, res)
    assert.equals(200, meta.status)
    local raw, meta2 = c:request("GET", MEMBERS)
    assert.same({}, raw)
    assert.equals(200, meta2.status)
  end)

  it("a PUT answered 200 with result null still reports success (the change was made)", function()
    local c = client()
    emu:fault{ method = "PUT", result_null = true }
    local res, err = c:update_members(A, G, { ids.member_ids[1] })
    assert.same({}, res, tostring(err))
    assert.same({ ids.member_ids[1] }, emu:state().accounts[A].groups[1].members)
  end)

  it("Retry-After: 300 gives up at once with rate_limited and retry_after", function()
    local c = client{ max_retries = 3 }
    emu:fault{ method = "PUT", status = 429, headers = { ["Retry-After"] = "300" } }
    local dt, res, err = timed(function() return c:update_members(A, G, { ids.member_ids[1] }) end)
    assert.is_nil(res)
    assert.equals("rate_limited", err.kind)
    assert.equals(300, err.retry_after)
    assert.equals(1, err.attempts)
    assert.equals(1, api_requests())
    assert.is_true(dt < 1, "took " .. dt)
  end)

  it("x-should-retry: false on a 5xx makes one attempt only", function()
    local c = client{ max_retries = 3 }
    emu:fault{ method = "PUT", status = 503, headers = { ["x-should-retry"] = "false" }, times = -1 }
    local res, err = c:update_members(A, G, { ids.member_ids[1] })
    assert.is_nil(res)
    assert.equals("server", err.kind)
    assert.equals(503, err.status)
    assert.equals(1, err.attempts)
    assert.equals(1, api_requests())
  end)

  it("a long list of server errors makes a bounded one-line message", function()
    local c = client()
    local errs = {}
    for i = 1, 40 do
      errs[i] = string.format('{"code":%d,"message":"%s"}', 1000 + i, string.rep("e", 100))
    end
    emu:fault{ method = "GET", status = 400,
      body = '{"success":false,"errors":[' .. table.concat(errs, ",") .. '],"messages":[],"result":null}' }
    local res, err = c:request("GET", MEMBERS)
    assert.is_nil(res)
    assert.equals("api", err.kind)
    assert.equals(40, #err.errors)
    assert.is_true(#err.message <= 1023, "message of " .. #err.message .. " bytes")
    assert.matches("%.%.%.$", err.message)
    assert.is_nil(err.message:find("\n"))
  end)
end)
