-- tools/stress.lua: every error path of the C module, a few times each, for
-- make test-valgrind (tools/test-valgrind.sh runs it under memcheck; it
-- also runs on its own: `lua5.4 tools/stress.lua`, from the repository).
--
-- Covered: each error kind from a real server (the emulator, a child
-- process that is not under valgrind) and from the transport (refused and
-- dropped connections, timeouts, TLS failures); each fault of spec/50
-- (cut bodies, cut chunked bodies, stalled headers, redirects, bodies over
-- max_response_bytes, deep and huge JSON, invalid UTF-8, result null,
-- Retry-After beyond the cap, x-should-retry false, a retry that succeeds);
-- every invalid argument and configuration error; the cosocket hooks;
-- every committed fuzz input through core.outcome; the Lua helpers'
-- errors; request_many (every outcome in one batch, invalid batches, a
-- 429 holding the batch, HTTPS, the quota headers, its hooks); clients
-- closed, collected without close, and broken by a raise in cfiam.new. Ends with "stress: ok, N calls" or raises.
package.path = "./lua/?.lua;./lua/?/init.lua;./spec/?.lua;" .. package.path
local build = os.getenv("CFIAM_BUILD") or (rawget(_G, "jit") and "build/luajit" or "build/5.4")
package.cpath = "./" .. build .. "/?.so;" .. package.cpath

local cfiam = require("cfiam")
local C = require("cfiam.core")
local emulator = require("helpers.emulator")
local rel = require("helpers.reliability")

local ROUNDS = tonumber(os.getenv("STRESS_ROUNDS")) or 3
local ncalls = 0

local function expect(kind, res, err)
  ncalls = ncalls + 1
  if kind == "ok" then
    if res == nil then error("expected a result, got " .. tostring(err), 2) end
  elseif res ~= nil or type(err) ~= "table" or err.kind ~= kind then
    error("expected " .. kind .. ", got " .. tostring(res) .. " / " .. tostring(err), 2)
  end
  return res, err
end

local function raises(f, ...)
  ncalls = ncalls + 1
  local ok = pcall(f, ...)
  if ok then error("expected a raise", 2) end
end

local seed, ids = emulator.seed{ members = 30, groups = { { name = "G", members = 20 } } }
local A, G = ids.account, ids.groups.G.id
local MEMBERS = "/accounts/" .. A .. "/iam/user_groups/" .. G .. "/members"
local emu = emulator.start{ seed = seed, tls = true }

local ok, failure = pcall(function()
  local function client(o)
    local opts = { api_token = ids.token, base_url = emu.base_url, max_retries = 0,
                   timeout = 2, connect_timeout = 2 }
    for k, v in pairs(o or {}) do opts[k] = v end
    return cfiam.new(opts)
  end
  local c = client()
  local key_client = cfiam.new{ api_email = ids.email, api_key = ids.key, base_url = emu.base_url,
                                max_retries = 0 }

  for _ = 1, ROUNDS do
    emu:reset()
    rel.install_faults(emu)
    -- every kind, from the server and from the transport
    local calls = rel.kind_calls(emu, { token = ids.token, quick_timeout = 0.1 })
    expect("ok", calls.success())
    for _, k in ipairs(rel.KINDS) do expect(k, calls[k]()) end
    calls.close()
    emu:clear_faults()
    expect("ok", key_client:request("GET", MEMBERS, { decode = "members" }))
    local refused = rel.listener()
    local port = refused.port
    refused:close() -- nothing listens there any more: connection refused
    expect("network", client{ base_url = "http://127.0.0.1:" .. port .. "/client/v4" }:request("GET", "/x"))

    -- the faults of spec/50-faults_spec.lua
    local big = '{"success":true,"errors":[],"messages":[],"result":['
      .. string.rep('{"id":"0123456789abcdef0123456789abcdef"},', 100)
      .. '{"id":"0123456789abcdef0123456789abcdef"}]}'
    emu:fault{ method = "GET", status = 200, body = big, truncate_at = 2000 }
    expect("network", c:request("GET", MEMBERS, { decode = "members" }))
    emu:fault{ method = "GET", truncated_chunked = true }
    expect("network", c:request("GET", MEMBERS))
    emu:fault{ method = "GET", stall_at = 40 }
    expect("timeout", client{ timeout = 0.2 }:request("GET", MEMBERS))
    local other = rel.listener()
    emu:fault{ method = "PUT", status = 302,
      headers = { Location = "http://127.0.0.1:" .. other.port .. "/client/v4" .. MEMBERS } }
    expect("invalid_response", c:update_members(A, G, { ids.member_ids[1] }))
    assert(other:connections() == 0, "a redirect was followed")
    other:close()
    local small = client{ max_response_bytes = 2048 }
    emu:fault{ method = "GET", body_bytes = 50000 }
    expect("invalid_response", small:request("GET", MEMBERS))
    emu:fault{ method = "GET", body_bytes = 50000, chunked = true }
    expect("invalid_response", small:request("GET", MEMBERS))
    small:close()
    emu:fault{ method = "GET", nested = 5000 }
    expect("invalid_response", c:request("GET", MEMBERS))
    emu:fault{ method = "GET", body_bytes = 1000000 }
    expect("ok", c:request("GET", MEMBERS, { decode = "members" }))
    emu:fault{ method = "GET", invalid_utf8 = true }
    expect("invalid_response", c:request("GET", MEMBERS, { decode = "members" }))
    emu:fault{ method = "GET", result_null = true }
    expect("ok", c:request("GET", MEMBERS, { decode = "members" }))
    emu:fault{ method = "PUT", status = 429, headers = { ["Retry-After"] = "300" } }
    expect("rate_limited", client{ max_retries = 2 }:update_members(A, G, { ids.member_ids[1] }))
    emu:fault{ method = "PUT", status = 500, headers = { ["x-should-retry"] = "false" } }
    expect("server", client{ max_retries = 2 }:update_members(A, G, { ids.member_ids[1] }))
    emu:fault{ method = "PUT", status = 503, headers = { ["retry-after-ms"] = "5" } }
    expect("ok", client{ max_retries = 1 }:update_members(A, G, { ids.member_ids[1], ids.member_ids[2] }))
    emu:fault{ method = "GET", status = 400, body = '{"success":false,"errors":['
      .. string.rep('{"code":1,"message":"' .. string.rep("e", 200) .. '"},', 20)
      .. '{"code":2,"message":"end"}],"messages":[]}' }
    expect("api", c:request("GET", MEMBERS))
    emu:clear_faults()

    -- invalid arguments and configuration errors
    local hex = "0123456789abcdef0123456789abcdef"
    expect("invalid_argument", c:update_members("x", G, { hex }))
    expect("invalid_argument", c:update_members(A, "x", { hex }))
    expect("invalid_argument", c:update_members(A, G, { hex, "nope" }))
    expect("invalid_argument", c:update_members(A, G, {}))
    expect("invalid_argument", c:request("GET", "no-slash"))
    expect("invalid_argument", c:request("GET", "/a/../b"))
    expect("invalid_argument", c:request("PUT", MEMBERS, { ids = { "bad" } }))
    raises(c.request, c, "TRACE", MEMBERS)
    raises(c.request, c, "GET", MEMBERS, { query = { x = {} } })
    raises(c.update_members, c, A, G, { 42 })
    for _, o in ipairs({
      { api_token = "a\r\nb" }, { api_email = "e@x" }, {},
      { api_token = "t", base_url = "ftp://x" }, { api_token = "t", base_url = "http://example.com/x" },
      { api_token = "t", base_url = "https://u:p@h/x" }, { api_token = "t", headers = { Authorization = "x" } },
      { api_token = "t", headers = { ["bad name"] = "x" } }, { api_token = "t", headers = { X = "a\nb" } },
      { api_token = "t", user_agent = "ua\r\n" }, { api_token = "t", ca_file = "a\0b" },
    }) do
      o.base_url = o.base_url or emu.base_url
      local bad = cfiam.new(o)
      expect("invalid_argument", bad:request("GET", MEMBERS))
      expect("invalid_argument", bad:update_members(A, G, { hex }))
      expect("invalid_argument", C.prepare(bad, "GET", MEMBERS))
      -- left to the collector, never closed
    end
    raises(cfiam.new, { nope = 1 })
    raises(cfiam.new, { timeout = "x" })
    raises(cfiam.new, { api_token = "t", timeout = -1 })
    raises(cfiam.new, { api_token = "t", headers = { X = 1 } }) -- raises after allocating
    raises(cfiam.new, { api_token = "t", transport = "carrier pigeon" })
    local closed = client()
    closed:close()
    closed:close()
    raises(closed.request, closed, "GET", MEMBERS)
    expect("invalid_argument", cfiam.request("GET", MEMBERS)) -- the default client, no credentials

    -- the cosocket hooks
    local prep = expect("ok", C.prepare(c, "PUT", MEMBERS, { ids = { hex }, query = { a = 1, b = true, c = "x y" } }))
    assert(prep.body and prep.target and prep.headers)
    expect("ok", C.path(c, "group_members", A, G))
    expect("invalid_argument", C.path(c, "group_members", "x", G))
    expect("ok", C.path(c, "group_member", A, G, hex))
    expect("invalid_argument", C.path(c, "group_member", A, G, "x"))
    expect("ok", C.update_request(c, A, G, { hex, hex }, { allow_empty = true }))
    expect("invalid_argument", C.update_request(c, A, G, {}))
    expect("ok", C.config(c))
    for _, k in ipairs({ "timeout", "network", "tls", "invalid_response" }) do
      expect(k, C.failure(c, k, "simulated " .. k, 1))
    end
    expect("server", C.outcome(c, "raw", 1, 503, { ["retry-after"] = "2" }, "<html>"))

    -- every committed fuzz input
    local fc = cfiam.new{ api_token = rel.FUZZ_SECRET, base_url = emu.base_url }
    for _, r in ipairs(rel.replay_corpus(fc)) do
      ncalls = ncalls + 1
      assert(r.res ~= nil or (type(r.x) == "table" and r.x.kind), r.name)
    end

    -- request_many: every outcome in one batch, invalid batches, the 429
    -- hold, HTTPS, the quota headers, the cosocket hooks, abandoned pools
    emu:reset()
    local many = client{ max_retries = 1, timeout = 1 }
    emu:fault{ { method = "GET", path = "/members$", status = 404, times = 1 },
               { method = "GET", path = "/members$", drop = true, times = 1 },
               { method = "GET", path = "/members$", stall_at = 40, times = 2 },
               { method = "GET", path = "/members$", body_bytes = 50000, times = 1,
                 headers = { Ratelimit = '"default";r=900;t=30, x;;',
                             ["Ratelimit-Policy"] = '"default";q=1200;w=300' } } }
    local batch = {}
    for i = 1, 12 do batch[i] = { "GET", MEMBERS, query = { page = i }, decode = "members" } end
    batch[13] = { "PUT", MEMBERS, ids = { ids.member_ids[1] }, decode = "members" }
    local out = expect("ok", many:request_many(batch, { concurrency = 4 }))
    for i = 1, #batch do
      ncalls = ncalls + 1
      assert(out[i].result or out[i].err.kind, "request_many: no outcome for call " .. i)
    end
    emu:clear_faults()
    expect("invalid_argument", many:request_many({ batch[1], { "PUT", MEMBERS, ids = { "bad" } } }))
    raises(many.request_many, many, { batch[1], "x" })
    raises(many.request_many, many, { batch[1] }, { concurrency = 0 })
    emu:fault{ method = "GET", status = 429, headers = { ["Retry-After"] = "300" } }
    out = expect("ok", client{ max_retries = 0 }:request_many({ batch[1], batch[2], batch[3] },
      { concurrency = 1 }))
    assert(out[3].err and out[3].err.kind == "rate_limited", "request_many: no hold after a 429")
    local tls = cfiam.new{ api_token = ids.token, base_url = emu.tls_base_url, ca_file = emu.ca_file,
                           max_retries = 0 }
    out = expect("ok", tls:request_many({ batch[1], batch[2], batch[3], batch[4] }, { concurrency = 4 }))
    assert(out[4].result, "request_many over TLS")
    tls:close()
    expect("ok", C.prepare_many(many, { batch[1], batch[13] }, { concurrency = 2 }))
    expect("invalid_argument", C.prepare_many(many, { { "GET", "no-slash" } }))
    assert(C.pace(many) == true)
    C.pace_done(many)
    expect("ok", many:ratelimit())
    many:close()
    -- a pool left to the collector, never closed
    client():request_many({ batch[1], batch[2] }, { concurrency = 2 })

    -- the helpers' errors (from the seed's group of 20 again)
    emu:reset()
    expect("ok", c:list_members(A, G))
    expect("guard", c:sync_members(A, G, {}, { max_removals = 100 }))
    expect("guard", c:sync_members(A, G, { ids.member_ids[3] }, { max_removals = 0 }))
    emu:fault{ method = "GET", path = "/members$", status = 500, headers = { ["x-should-retry"] = "false" } }
    expect("server", c:sync_members(A, G, { ids.member_ids[1] }, { max_removals = 100 }))
    expect("incomplete", c:list_members(A, G, { per_page = 5, max_pages = 1 }))
    emu:fault{ method = "PUT", status = 503, headers = { ["x-should-retry"] = "false" } }
    local _, err = expect("server", c:sync_members(A, G, { ids.member_ids[1] },
      { max_removals = 100, strategy = "replace" }))
    assert(type(err.plan) == "table", "a failed PUT without its plan")
    emu:fault{ method = "DELETE", status = 503, headers = { ["x-should-retry"] = "false" } }
    _, err = expect("server", c:sync_members(A, G, { ids.member_ids[1] }, { max_removals = 100 }))
    assert(type(err.plan) == "table" and type(err.removed) == "table",
      "a failed DELETE without its plan and what was removed")
    emu:clear_faults()
    collectgarbage("collect")
  end
  c:close()
  key_client:close()
end)
emu:stop()
collectgarbage("collect")
if not ok then error(failure, 0) end
print(string.format("stress: ok, %d calls", ncalls))
