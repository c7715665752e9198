-- spec/30-openresty_spec.lua: cfiam inside a real nginx (lua-nginx-module),
-- against the emulator over HTTP and HTTPS.
--
-- Shows: the same calls give the same results and errors under nginx
-- (cosocket transport) as in this process (libcurl, through the C module);
-- TLS is verified (an unrelated CA fails with kind "tls"); the worker is not
-- blocked while a call waits (and is, with transport = "curl"); keep-alive;
-- the phase rules; the shared rate-limit budget.
--
-- nginx loads the LuaJIT build (build/luajit/cfiam.so), whatever Lua runs
-- busted.
local emulator = require("helpers.emulator")
local nginx = require("helpers.nginx")
local cfiam = require("cfiam")
local cjson = require("cjson").new()
local socket = require("socket")
local unpack = table.unpack or unpack -- luacheck: ignore

-- The test endpoints. /call runs a list of calls on a new client and
-- returns every result as JSON; the others are described where used.
local SERVER = [==[
    location = /call { content_by_lua_block {
      local cjson = require("cjson").new()
      local cfiam = require("cfiam")
      local cos = require("cfiam.cosocket")
      ngx.req.read_body()
      local q = cjson.decode(ngx.req.get_body_data())
      local client = cfiam.new(q.opts)
      local before = cos.exchanges
      local out = {}
      for i, call in ipairs(q.calls) do
        local a, b = client[call[1]](client, unpack(call, 2))
        out[i] = { a = a, b = b }
      end
      client:close()
      ngx.print(cjson.encode({ results = out,
        exchanges = cos.exchanges - before }))
    } }

    # One slow call (the emulator delays it); t = auto | curl.
    location = /slow { content_by_lua_block {
      local cfiam = require("cfiam")
      local c = cfiam.new{ base_url = ngx.unescape_uri(ngx.var.arg_base), api_token = "test-token",
        transport = ngx.var.arg_t, max_retries = 0, timeout = 20 }
      local r, err = c:request("GET", ngx.unescape_uri(ngx.var.arg_path))
      ngx.say(r and ("members " .. #r) or tostring(err))
    } }

    # One call to a base URL given by name (nginx resolves it).
    location = /by_name { content_by_lua_block {
      local c = require("cfiam").new{ base_url = ngx.unescape_uri(ngx.var.arg_base),
        api_token = "test-token", max_retries = 0, timeout = 5 }
      local r, err = c:request("GET", ngx.unescape_uri(ngx.var.arg_path))
      ngx.say(r and ("members " .. #r) or tostring(err))
    } }

    # n calls in a row on one client: how many connections were opened.
    location = /many { content_by_lua_block {
      local cfiam = require("cfiam")
      local cos = require("cfiam.cosocket")
      local c = cfiam.new{ base_url = ngx.unescape_uri(ngx.var.arg_base), api_token = "test-token" }
      local before, ok = cos.connections_opened, 0
      for _ = 1, tonumber(ngx.var.arg_n) do
        local r = c:request("GET", ngx.unescape_uri(ngx.var.arg_path))
        if r then ok = ok + 1 end
      end
      ngx.say(ok, " ", cos.connections_opened - before)
    } }

    # The set phase has no cosockets: "auto" falls back to libcurl there,
    # "cosocket" raises.
    location = /set_phase {
      set_by_lua_block $out {
        local cfiam = require("cfiam")
        local cos = require("cfiam.cosocket")
        local before = cos.exchanges
        local c = cfiam.new{ base_url = ngx.unescape_uri(ngx.var.arg_base),
          api_token = "test-token", transport = ngx.var.arg_t }
        local ok, r, err
        if ngx.var.arg_f == "list" then
          ok, r, err = pcall(c.list_members, c, ngx.var.arg_account, ngx.var.arg_group)
        else
          ok, r, err = pcall(c.request, c, "GET", ngx.unescape_uri(ngx.var.arg_path))
        end
        if not ok then return "raised: " .. tostring(r) end
        return (r and ("members " .. #r) or tostring(err))
          .. " cosocket exchanges " .. (cos.exchanges - before)
      }
      content_by_lua_block { ngx.say(ngx.var.out) }
    }

    # A bad option to request / update_members over cosockets (t=cosocket)
    # or libcurl (t=curl), called on the line that notes where it is:
    # "<chunk>:<line>|<raised>"
    location = /bad_option { content_by_lua_block {
      local c = require("cfiam").new{ api_token = "test-token", transport = ngx.var.arg_t,
        base_url = "http://127.0.0.1:9" }
      local g, bad = string.rep("b", 32), { bogus = 1 }
      local here, _, e
      if ngx.var.arg_f == "update" then
        here, _, e = debug.getinfo(1, "Sl"), pcall(function() local r = c:update_members(g, g, {}, bad) return r end)
      else
        here, _, e = debug.getinfo(1, "Sl"), pcall(function() local r = c:request("GET", "/x", bad) return r end)
      end
      ngx.print(here.short_src, ":", here.currentline, "|", tostring(e))
    } }

    # A client with a proxy: "auto" takes libcurl, "cosocket" raises.
    location = /proxy { content_by_lua_block {
      local cos = require("cfiam.cosocket")
      local before = cos.exchanges
      local c = require("cfiam").new{ base_url = ngx.unescape_uri(ngx.var.arg_base),
        api_token = "test-token", transport = ngx.var.arg_t, max_retries = 0,
        proxy = "http://127.0.0.1:" .. ngx.var.arg_port }
      local ok, r, err = pcall(c.request, c, "GET", ngx.unescape_uri(ngx.var.arg_path))
      if not ok then ngx.say("raised: ", r) return end
      ngx.say(r and "ok" or err.kind, " cosocket exchanges ", cos.exchanges - before)
    } }

    # A call from an ngx.timer.at callback (the "timer" phase).
    location = /timer { content_by_lua_block {
      local sema = require("ngx.semaphore").new()
      local cos = require("cfiam.cosocket")
      local base, path = ngx.unescape_uri(ngx.var.arg_base), ngx.unescape_uri(ngx.var.arg_path)
      local out
      local before = cos.exchanges
      assert(ngx.timer.at(0, function()
        local c = require("cfiam").new{ base_url = base, api_token = "test-token",
          transport = "cosocket" }
        local r, err = c:request("GET", path)
        out = (r and ("members " .. #r) or tostring(err)) .. " in phase " .. ngx.get_phase()
        sema:post(1)
      end))
      assert(sema:wait(10))
      ngx.say(out, ", cosocket exchanges ", cos.exchanges - before)
    } }

    # The shared budget: n calls with shared_dict "cfiam", returns the
    # seconds each took and the outcome.
    location = /budget { content_by_lua_block {
      local cfiam = require("cfiam")
      local cos = require("cfiam.cosocket")
      cos.set_budget{ limit = tonumber(ngx.var.arg_limit),
        window = tonumber(ngx.var.arg_window) }
      local c = cfiam.new{ base_url = ngx.unescape_uri(ngx.var.arg_base), api_token = ngx.var.arg_token,
        shared_dict = "cfiam", max_retries = tonumber(ngx.var.arg_retries),
        timeout = tonumber(ngx.var.arg_timeout) }
      local out = {}
      for i = 1, tonumber(ngx.var.arg_n) do
        ngx.update_time()
        local t0 = ngx.now()
        local r, err = c:request("GET", ngx.unescape_uri(ngx.var.arg_path))
        ngx.update_time()
        out[i] = { ok = r ~= nil, kind = err and err.kind,
          retry_after = err and err.retry_after, s = ngx.now() - t0 }
      end
      ngx.print(require("cjson").encode(out))
    } }
]==]

-- Removes what legitimately differs between two runs: ray ids are random,
-- the emulator stamps groups with the time of the reset or the write.
local VARYING = { ray_id = true, created_on = true, modified_on = true,
  created_at = true }
local function normalise(v)
  if type(v) ~= "table" then return v end
  local t = {}
  for k, x in pairs(v) do
    if not VARYING[k] then t[k] = normalise(x) end
  end
  return t
end

local function encode_results(out)
  return normalise(cjson.decode(cjson.encode({ results = out }))).results
end

describe("cfiam under nginx", function()
  local emu, srv, seed, ids, A, big, small
  -- nginx's resolver: a UDP socket that receives queries and never answers
  local dns = assert(socket.udp())
  assert(dns:setsockname("127.0.0.1", 0))
  local _, dns_port = dns:getsockname()

  setup(function()
    seed, ids = emulator.seed{ members = 60, pending_every = 9,
      groups = { { name = "Big", members = 45 }, { name = "Small", members = 3 } } }
    A, big, small = ids.account, ids.groups.Big, ids.groups.Small
    emu = emulator.start{ tls = true, seed = seed }
    srv = nginx.start{
      main = "env CLOUDFLARE_API_TOKEN=test-token;\nenv CLOUDFLARE_BASE_URL="
        .. emu.base_url .. ";",
      http = "lua_ssl_trusted_certificate " .. emu.ca_file .. ";\n"
        .. "lua_ssl_verify_depth 2;\nlua_shared_dict cfiam 1m;\n"
        .. "resolver 127.0.0.1:" .. dns_port .. " ipv6=off;",
      -- the example endpoint, as examples/nginx.conf declares it
      server = SERVER .. [[
        location ~ ^/cfiam/groups/(?<cfiam_group>[^/]+)/members$ {
          allow 127.0.0.1;
          deny all;
          set $cfiam_account "]] .. A .. [[";
          client_body_buffer_size 1m;
          content_by_lua_file ]] .. nginx.root() .. [[/examples/nginx_handler.lua;
        }
      ]],
    }
  end)

  teardown(function()
    if srv then srv:stop() end
    if emu then emu:stop() end
    dns:close()
  end)

  local function members_path(g) return "/accounts/" .. A .. "/iam/user_groups/" .. g .. "/members" end
  local function q(s) return (s:gsub("[^%w%-_%.~]", function(ch) return ("%%%02X"):format(ch:byte()) end)) end

  -- The same calls under nginx and here, from the same emulator state.
  local function both(opts, calls, faults)
    emu:reset(seed)
    if faults then emu:fault(faults) end
    local status, body = srv:get("/call", 60, cjson.encode({ opts = opts, calls = calls }))
    assert.equal(200, status, body)
    local remote = cjson.decode(body)
    local state_remote = emu:state()

    emu:reset(seed)
    if faults then emu:fault(faults) end
    local c = cfiam.new(opts)
    local out = {}
    for i, call in ipairs(calls) do
      local a, b = c[call[1]](c, unpack(call, 2))
      out[i] = { a = a, b = b }
    end
    c:close()
    return normalise(remote.results), encode_results(out), remote.exchanges,
      normalise(state_remote), normalise(emu:state())
  end

  describe("gives the same results as plain Lua", function()
    it("for the request primitive and update_members, over HTTPS", function()
      local opts = { base_url = emu.tls_base_url, api_token = "test-token",
        ca_file = emu.ca_file }
      local m = big.member_ids
      local calls = {
        { "request", "GET", members_path(big.id), { query = { per_page = 7, page = 2 } } },
        { "request", "GET", "/accounts/" .. A .. "/iam/user_groups", { query = { name = "Small" } } },
        { "request", "GET", members_path(big.id), { decode = "members" } },
        { "update_members", A, small.id, { m[1], m[2]:upper(), { id = m[1] } } },
        { "request", "POST", members_path(small.id), { ids = { m[10] } } },
        { "request", "DELETE", members_path(small.id) .. "/" .. m[10] },
        { "request", "GET", members_path(("9"):rep(32)) },           -- not_found
        { "update_members", A, small.id, { "not-an-id" } },        -- invalid_argument
        { "update_members", A, small.id, {} },                      -- refused: empty
        { "update_members", A, "xyz", { m[1] } },                   -- bad group id
        { "request", "GET", "no-slash" },                           -- bad path
      }
      local remote, here, exchanges, st_remote, st_here = both(opts, calls)
      assert.same(here, remote)
      assert.same(st_here, st_remote)                 -- the same writes happened
      assert.equal(7, exchanges)                      -- four calls sent nothing
      assert.equal(7, #remote[1].a)
      assert.equal("not_found", remote[7].b.kind)
      assert.equal("invalid_argument", remote[8].b.kind)
      assert.equal("invalid_argument", remote[9].b.kind)
    end)

    it("for the Lua helpers (paging, resolution, plan, sync, add, remove)", function()
      local opts = { base_url = emu.base_url, api_token = "test-token" }
      local m, e = big.member_ids, big.emails
      local calls = {
        { "list_members", A, big.id },
        { "list_members", A, big.id, { per_page = 10 } },
        { "list_groups", A },
        { "find_group", A, "Small" },
        { "find_group", A, "Nope" },
        { "resolve_members", A, { e[1], e[2]:upper() } },
        { "plan_members", A, small.id, { m[1], e[5], m[40] } },
        { "sync_members", A, small.id, { m[1], e[5], m[40] }, { dry_run = true } },
        { "sync_members", A, small.id, { m[1], e[5], m[40] }, { verify = true } },
        { "add_members", A, small.id, { m[41], e[42] } },
        { "remove_members", A, small.id, { m[41], m[50] } },
        { "sync_members", A, big.id, { m[1] } },                 -- guard: too many removals
        { "list_members", A, small.id },
      }
      for _, call in ipairs(calls) do
        assert.is_function(cfiam[call[1]], "helper " .. call[1] .. " is missing")
      end
      local remote, here, exchanges, st_remote, st_here = both(opts, calls)
      assert.same(here, remote)
      assert.same(st_here, st_remote)
      assert.is_true(exchanges > #calls)            -- the helpers went over cosockets
      assert.equal(45, #remote[1].a)
      assert.equal("guard", remote[12].b.kind)
    end)

    it("for API errors, retries and transport failures", function()
      local p = members_path(small.id)
      local cases = {
        { fault = { status = 500, times = 1 } },
        { fault = { status = 403, times = 1 } },
        { fault = { status = 429, times = 1, headers = { ["Retry-After"] = "120" } } },
        { fault = { status = 503, times = 2, headers = { ["retry-after-ms"] = "50" } }, retries = 2 },
        { fault = { chunked = true, times = 1 } },
        { fault = { result_null = true, times = 1 } },
        { fault = { body = "<html>oops</html>", status = 200, times = 1 } },
        { fault = { status = 302, headers = { Location = "https://example.com/" }, times = 1 } },
        { fault = { drop = true, times = 2 } }, -- 2: a pooled connection is retried once
        { fault = { body_bytes = 5000, truncate_at = 1000, times = 1 } },
        { fault = { truncated_chunked = true, times = 1 } },
        { fault = { stall_at = 30, times = 1 }, timeout = 1 },
        { fault = { body_bytes = 50000, times = 1 }, max_response_bytes = 20000 },
        { fault = { body_bytes = 50000, chunked = true, times = 1 }, max_response_bytes = 20000 },
      }
      for i, case in ipairs(cases) do
        local opts = { base_url = emu.base_url, api_token = "test-token",
          max_retries = case.retries or 0, timeout = case.timeout,
          max_response_bytes = case.max_response_bytes }
        local remote, here = both(opts, { { "request", "GET", p, { decode = "members" } } },
          case.fault)
        local r, h = remote[1], here[1]
        local what = "case " .. i .. ": " .. cjson.encode(case.fault)
        if h.a ~= nil or h.b.kind == "api" or h.b.status then
          assert.same(h, r, what)                        -- HTTP answers: identical
        else -- no HTTP answer: libcurl's wording differs, the error does not
          assert.equal(h.b.kind, r.b.kind, what)
          assert.equal(h.b.attempts, r.b.attempts, what)
          assert.same({}, r.b.errors, what)
          assert.is_string(r.b.message, what)
        end
      end
    end)

    it("for a refused connection", function()
      local port = nginx.free_port()
      local opts = { base_url = "http://127.0.0.1:" .. port .. "/client/v4",
        api_token = "test-token", max_retries = 0 }
      local remote, here = both(opts, { { "request", "GET", "/user/tokens/verify" } })
      assert.equal("network", here[1].b.kind)
      assert.equal("network", remote[1].b.kind)
      assert.matches("127.0.0.1 port " .. port, remote[1].b.message, 1, true)
    end)
  end)

  describe("timeouts", function()
    it("bound the name resolution too: a resolver that never answers costs connect_timeout per attempt", function()
      -- nginx resolves host names itself (here "localhost" over HTTPS,
      -- through the silent resolver), with resolver_timeout (30 s by default)
      local opts = { base_url = emu.tls_base_url:gsub("127%.0%.0%.1", "localhost"),
        api_token = "test-token", timeout = 2, connect_timeout = 0.5, max_retries = 1 }
      local t0 = socket.gettime()
      local status, body = srv:get("/call", 90, cjson.encode({ opts = opts,
        calls = { { "request", "GET", members_path(small.id) } } }))
      local took = socket.gettime() - t0
      assert.equal(200, status, body)
      local r = cjson.decode(body).results[1]
      assert.is_nil(r.a)
      assert.equal("timeout", r.b.kind, r.b.message)
      assert.equal(2, r.b.attempts)
      -- two attempts of 0.5 s and one backoff (at most 0.5 s)
      assert.is_true(took < 2.5, "the call took " .. took .. " s")
    end)
  end)

  -- Answers one A query on the resolver socket with 127.0.0.1, within
  -- `within` seconds; returns whether it did.
  local function answer_dns(within)
    local deadline = socket.gettime() + within
    dns:settimeout(0.2)
    while socket.gettime() < deadline do
      local query, ip, port = dns:receivefrom()
      if query and #query > 12 then
        local qend = query:find("\0", 13, true) + 4 -- the name, type and class
        dns:sendto(query:sub(1, 2) .. "\129\128\0\1\0\1\0\0\0\0" .. query:sub(13, qend)
          .. "\192\12\0\1\0\1\0\0\0\60\0\4\127\0\0\1", ip, port)
        return true
      end
    end
    return false
  end

  describe("host names", function()
    it("are resolved by nginx's resolver and the call goes through (HTTPS)", function()
      emu:reset(seed)
      dns:settimeout(0)
      while dns:receivefrom() do end                 -- queries left by other tests
      local p = nginx.send(srv.port, "/by_name?base="
        .. q((emu.tls_base_url:gsub("127%.0%.0%.1", "localhost"))) .. "&path=" .. q(members_path(small.id)))
      assert.is_true(answer_dns(10), "nginx sent no query")
      local r = nginx.wait_all({ p }, 10)[1]
      assert.equal(200, r.status)
      assert.equal("members 3\n", r.body)
    end)
  end)

  describe("plain HTTP to localhost", function()
    it("goes to 127.0.0.1 without asking the resolver (a DNS answer never gets the token)", function()
      emu:reset(seed)
      dns:settimeout(0)
      while dns:receivefrom() do end                 -- queries left by other tests
      local status, body = srv:get("/by_name?base="
        .. q((emu.base_url:gsub("127%.0%.0%.1", "localhost"))) .. "&path=" .. q(members_path(small.id)), 20)
      assert.equal(200, status)
      assert.equal("members 3\n", body)
      assert.is_nil(dns:receivefrom(), "nginx asked its resolver for localhost")
    end)
  end)

  describe("TLS", function()
    it("is verified against lua_ssl_trusted_certificate", function()
      -- a second nginx that trusts an unrelated CA
      local other = nginx.start{
        http = "lua_ssl_trusted_certificate " .. emu.other_ca_file .. ";",
        server = SERVER }
      local ok, err = pcall(function()
        local calls = { { "request", "GET", members_path(small.id) } }
        local status, body = other:get("/call", 30, cjson.encode({ opts = {
          base_url = emu.tls_base_url, api_token = "test-token", max_retries = 0 }, calls = calls }))
        assert.equal(200, status, body)
        local r = cjson.decode(body).results[1]
        assert.is_nil(r.a)
        assert.equal("tls", r.b.kind, r.b.message)
        assert.equal(1, r.b.attempts)                  -- not retried
        assert.matches("certificate", r.b.message)
        assert.matches("lua_ssl_trusted_certificate", r.b.message, 1, true)
        -- this nginx passes no environment variable to its workers: no
        -- credentials, and the message says how nginx passes them
        status, body = other:get("/call", 30, cjson.encode({ opts = {
          base_url = emu.base_url }, calls = calls }))
        assert.equal(200, status, body)
        r = cjson.decode(body).results[1]
        assert.equal("invalid_argument", r.b.kind)
        assert.matches("no credentials", r.b.message, 1, true)
        assert.matches("env CLOUDFLARE_API_TOKEN;", r.b.message, 1, true)
        assert.is_nil(r.b.message:find("\n"))
      end)
      other:stop()
      assert(ok, err)
      -- and the right CA works on the main nginx
      local status, body = srv:get("/call", 30, cjson.encode({ opts = {
        base_url = emu.tls_base_url, api_token = "test-token" },
        calls = { { "request", "GET", members_path(small.id) } } }))
      assert.equal(200, status)
      assert.equal(3, #cjson.decode(body).results[1].a)
    end)
  end)

  describe("settings that cosockets cannot apply", function()
    it("ca_file / ca_path: a warning in the error log, once per worker", function()
      for _ = 1, 2 do
        local status, body = srv:get("/call", 30, cjson.encode({ opts = {
          base_url = emu.tls_base_url, api_token = "test-token", ca_file = emu.ca_file,
          ca_path = "/nonexistent" }, calls = { { "request", "GET", members_path(small.id) } } }))
        assert.equal(200, status, body)
        assert.equal(3, #cjson.decode(body).results[1].a)
      end
      local _, n = srv:error_log():gsub("%[warn%][^\n]*cfiam: the ca_file and ca_path options", "")
      assert.equal(1, n)
    end)

    it("the User-Agent names the transport that sent the request", function()
      emu:reset(seed)
      emu:clear_requests()
      for _, ua in ipairs({ false, "mine/1.0" }) do
        local status = srv:get("/call", 30, cjson.encode({ opts = { base_url = emu.base_url,
          api_token = "test-token", user_agent = ua or nil },
          calls = { { "request", "GET", members_path(small.id) } } }))
        assert.equal(200, status)
      end
      local reqs = emu:requests()
      local default = reqs[1].headers["user-agent"]
      assert.matches("^cfiam/%d+%.%d+%.%d+ %(", default)
      assert.matches("lua-nginx-module/0.10", default, 1, true)
      assert.is_nil(default:find("libcurl", 1, true))
      assert.equal("mine/1.0", reqs[2].headers["user-agent"])
    end)
  end)

  describe("the worker", function()
    -- One /slow request waits on a 2 s answer; once the emulator has it,
    -- 50 /ping requests go to the same (only) worker.
    local function slow_and_pings(transport)
      emu:reset(seed)
      emu:clear_requests()
      emu:fault({ method = "GET", path = "/members$", delay_ms = 2000, times = 1 })
      local slow = nginx.send(srv.port, "/slow?t=" .. transport .. "&base="
        .. q(emu.base_url) .. "&path=" .. q(members_path(small.id)))
      -- wait until the slow call reached the emulator (bounded poll)
      local deadline = os.time() + 10
      while #emu:requests() == 0 do
        assert(os.time() < deadline, "the slow request never reached the emulator")
      end
      local pings = {}
      for i = 1, 50 do pings[i] = nginx.send(srv.port, "/ping") end
      local res = nginx.wait_all(pings, 20)
      local slow_res = nginx.wait_all({ slow }, 20)[1]
      local worst, best = 0, math.huge
      for _, r in ipairs(res) do
        assert.equal(200, r.status)
        assert.equal("pong\n", r.body)
        worst = math.max(worst, r.ms)
        best = math.min(best, r.ms)
      end
      return slow_res, worst, best
    end

    it("is not blocked while a call waits (cosockets)", function()
      local slow, worst, best = slow_and_pings("auto")
      print(("\n  cosocket: 50 pings took %.1f-%.1f ms while the slow call took %.0f ms")
        :format(best, worst, slow.ms))
      assert.equal("members 3\n", slow.body)
      assert.is_true(slow.ms >= 1900, "slow call " .. slow.ms)
      assert.is_true(worst < 100, "a ping took " .. worst .. " ms")
    end)

    it("is blocked with transport = \"curl\" (the difference the test can see)", function()
      local slow, worst, best = slow_and_pings("curl")
      print(("\n  curl: 50 pings took %.1f-%.1f ms while the slow call took %.0f ms")
        :format(best, worst, slow.ms))
      assert.equal("members 3\n", slow.body)
      assert.is_true(best > 1000, "a ping took only " .. best .. " ms")
    end)
  end)

  describe("keep-alive", function()
    it("many calls in a row open few connections (HTTP and HTTPS)", function()
      for _, base in ipairs({ emu.base_url, emu.tls_base_url }) do
        emu:reset(seed)
        local status, body = srv:get("/many?n=30&base=" .. q(base) .. "&path="
          .. q(members_path(small.id)))
        assert.equal(200, status)
        local ok, opened = body:match("^(%d+) (%d+)")
        assert.equal(30, tonumber(ok))
        assert.is_true(tonumber(opened) <= 1, body)
        local stats = emu:stats()
        print(("\n  keep-alive %s: 30 calls, %s new connection(s) in nginx, %d at the emulator")
          :format(base:match("^%a+"), opened, stats.connections))
        assert.equal(30, stats.requests)
        assert.is_true(stats.connections <= 2, cjson.encode(stats))
      end
      assert.is_true(emu:stats().tls_handshakes <= 2)
    end)
  end)

  describe("a client used before nginx forks its workers", function()
    -- init_by_lua runs in the master: a call there opens a libcurl
    -- connection (HTTP and HTTPS) that the two workers inherit. Each worker
    -- must open its own connection instead of sharing the master's socket
    -- (and TLS state), so that every caller gets its own answer.
    it("is never reused across processes: 200 concurrent callers each get their own answer", function()
      emu:reset(seed)
      emu:clear_requests()
      local path = members_path(big.id)
      local forked = nginx.start{ workers = 2,
        http = "init_by_lua_block {\n"
          .. "  local cfiam = require('cfiam')\n"
          .. "  local t = {}\n"
          .. "  for s, base in pairs({ http = '" .. emu.base_url .. "', https = '"
          .. emu.tls_base_url .. "' }) do\n"
          .. "    t[s] = cfiam.new{ base_url = base, api_token = 'test-token',\n"
          .. "      ca_file = '" .. emu.ca_file .. "', transport = 'curl', timeout = 5,\n"
          .. "      max_retries = 0 }\n"
          .. "    assert(t[s]:request('GET', '" .. path .. "'))\n"
          .. "  end\n"
          .. "  package.loaded.fork_clients = t\n"
          .. "}",
        server = [[
          location = /fork { content_by_lua_block {
            local c = package.loaded.fork_clients[ngx.var.arg_s]
            local r, err = c:request("GET", "]] .. path .. [[",
              { query = { per_page = 1, page = tonumber(ngx.var.arg_page) } })
            ngx.say(ngx.worker.pid(), " ", r and r[1] and r[1].id or tostring(err))
          } }
        ]] }
      local ok, err = pcall(function()
        local before = emu:requests()
        assert.equal(2, #before)                      -- the two calls in the master
        local master_conn = {}
        for _, r in ipairs(before) do master_conn[r.connection] = true end
        emu:clear_requests()
        local c = cfiam.new{ base_url = emu.base_url, api_token = "test-token" }
        local all = assert(c:request("GET", path, { query = { per_page = 50 } }))
        c:close()
        emu:clear_requests()
        local pending, want = {}, {}
        for i = 1, 200 do
          local page = (i - 1) % #all + 1
          want[i] = all[page].id
          pending[i] = nginx.send(forked.port, "/fork?s=" .. (i % 2 == 0 and "http" or "https")
            .. "&page=" .. page)
        end
        local res = nginx.wait_all(pending, 60)
        local pids, wrong = {}, {}
        for i, r in ipairs(res) do
          local pid, id = (r.body or ""):match("^(%d+) (.-)\n$")
          if pid then pids[pid] = true end
          if r.status ~= 200 or id ~= want[i] then
            wrong[#wrong + 1] = i .. ": " .. tostring(r.status) .. " " .. tostring(r.body)
          end
        end
        local npids = 0
        for _ in pairs(pids) do npids = npids + 1 end
        assert.equal(2, npids)                        -- both workers answered
        assert.same({}, wrong)
        for _, r in ipairs(emu:requests()) do
          assert.is_nil(master_conn[r.connection], "a worker used the master's connection")
        end
      end)
      forked:stop()
      assert(ok, err)
    end)
  end)

  describe("cfiam.configure", function()
    it("in init_by_lua sets up the client of the module-level functions", function()
      emu:reset(seed)
      local path = members_path(small.id)
      local configured = nginx.start{
        http = "init_by_lua_block { require('cfiam').configure{ base_url = '"
          .. emu.base_url .. "', api_token = 'test-token', max_retries = 0 } }",
        server = [[
          location = /default { content_by_lua_block {
            local r, err = require("cfiam").request("GET", "]] .. path .. [[")
            ngx.say(r and ("members " .. #r) or (err.kind .. " after " .. err.attempts))
          } }
        ]] }
      local ok, err = pcall(function()
        assert.same({ 200, "members 3\n" }, { configured:get("/default") })
        emu:fault({ status = 500, times = 1 })
        -- max_retries = 0: the 500 is returned, not retried
        assert.same({ 200, "server after 1\n" }, { configured:get("/default") })
      end)
      configured:stop()
      assert(ok, err)
    end)
  end)

  describe("the keep-alive pool", function()
    -- A first call, then two rounds of two concurrent calls in one request;
    -- returns how many connections the worker opened after the first call.
    local function rounds(http, query)
      local pool = nginx.start{ http = http, server = [[
        location = /pool { content_by_lua_block {
          local cos = require("cfiam.cosocket")
          local c = require("cfiam").new{ base_url = "]] .. emu.base_url .. [[",
            api_token = "test-token", pool_size = tonumber(ngx.var.arg_size),
            keepalive_timeout = tonumber(ngx.var.arg_ka) }
          local function call() assert(c:request("GET", "]] .. members_path(small.id) .. [[")) end
          -- a first call learns the quota (until then the pacer sends one
          -- request at a time) and leaves one pooled connection
          call()
          local before = cos.connections_opened
          for _ = 1, 2 do
            local a, b = ngx.thread.spawn(call), ngx.thread.spawn(call)
            assert(ngx.thread.wait(a))
            assert(ngx.thread.wait(b))
            -- the idle time that a short keepalive_timeout must not survive
            if ngx.var.arg_idle then ngx.sleep(tonumber(ngx.var.arg_idle)) end
          end
          ngx.say(cos.connections_opened - before)
        } }
      ]] }
      local status, body = pool:get("/pool?" .. (query or ""))
      pool:stop()
      assert.equal(200, status, body)
      return tonumber(body)
    end

    it("follows nginx's lua_socket_pool_size, or the pool_size option", function()
      emu:reset(seed)
      assert.equal(1, rounds(""))                      -- both connections kept
      assert.equal(2, rounds("lua_socket_pool_size 1;"))
      assert.equal(2, rounds("", "size=1"))
    end)

    it("follows nginx's lua_socket_keepalive_timeout, or the keepalive_timeout option", function()
      emu:reset(seed)
      assert.equal(3, rounds("lua_socket_keepalive_timeout 100ms;", "idle=0.5"))
      assert.equal(3, rounds("", "ka=0.1&idle=0.5"))
      assert.equal(1, rounds("", "idle=0.5"))        -- nginx's default: 60 s
    end)

    it("options are checked like every other", function()
      assert.has_error(function() cfiam.new{ pool_size = "3" } end,
        "cfiam.new: option 'pool_size' must be a number, got string")
      assert.has_error(function() cfiam.new{ pool_size = 0 } end,
        "cfiam.new: option 'pool_size' is out of range")
      assert.has_error(function() cfiam.new{ keepalive_timeout = -1 } end,
        "cfiam.new: option 'keepalive_timeout' is out of range")
    end)
  end)

  describe("plain Lua", function()
    -- LuaJIT's FFI can fork this process: the child uses (then closes) a
    -- client whose connection the parent opened; the parent's connection
    -- must be left as it was (over TLS: no close_notify from the child).
    it("a forked child opens its own connection and leaves the parent's alone", function()
      if not jit then
        pending("needs LuaJIT's FFI to fork (the nginx test above runs the same C code)")
        return
      end
      local ffi = require("ffi")
      pcall(ffi.cdef, "int fork(void); void _exit(int); int waitpid(int, int *, int);")
      emu:reset(seed)
      local path = members_path(small.id)
      for _, base in ipairs({ emu.base_url, emu.tls_base_url }) do
        emu:clear_requests()
        local c = cfiam.new{ base_url = base, api_token = "test-token", ca_file = emu.ca_file,
          max_retries = 0, timeout = 5 }
        assert(c:request("GET", path))
        local out = os.tmpname()
        local pid = ffi.C.fork()
        if pid == 0 then -- the child: one call, close, leave without cleanup
          local ok, r = pcall(c.request, c, "GET", path)
          pcall(c.close, c)
          local f = io.open(out, "wb")
          if f then f:write(ok and r and #r or "failed") f:close() end
          ffi.C._exit(0)
        end
        assert.is_true(pid > 0)
        local status = ffi.new("int[1]")
        assert.equal(pid, ffi.C.waitpid(pid, status, 0))
        local f = assert(io.open(out, "rb"))
        local child = f:read("*a")
        f:close()
        os.remove(out)
        assert.equal("3", child)                       -- the child's own answer
        assert(c:request("GET", path))                 -- the parent, after the child closed
        c:close()
        local reqs = emu:requests()
        assert.equal(3, #reqs)
        assert.not_equal(reqs[1].connection, reqs[2].connection, base)  -- child: its own
        assert.equal(reqs[1].connection, reqs[3].connection, base)      -- parent: undisturbed
      end
    end)

    it("cfiam.configure replaces the default client (and configure() goes back to the environment)", function()
      emu:reset(seed)
      local c = cfiam.configure{ base_url = emu.base_url, api_token = "test-token", max_retries = 0 }
      assert.equal(c, cfiam.default_client())
      emu:fault({ status = 500, times = 1 })
      local r, err = cfiam.request("GET", members_path(small.id))
      assert.is_nil(r)
      assert.equal(1, err.attempts)
      assert.equal(3, #assert(cfiam.list_members(A, small.id)))
      assert.has_error(function() cfiam.configure{ nope = 1 } end, "cfiam.new: unknown option 'nope'")
      assert.has_error(function() cfiam.configure("x") end)
      local env = cfiam.configure()
      assert.not_equal(c, env)
      assert.equal(env, cfiam.default_client())
    end)

    it("keeps the C methods as they are (no ngx, no wrapper)", function()
      local methods = require("cfiam.core").client_methods
      assert.equal("C", debug.getinfo(methods.request, "S").what)
      assert.equal("C", debug.getinfo(methods.update_members, "S").what)
      -- (cfiam.request and cfiam.update_members call these on the default
      -- client, as every module-level function does)
    end)
  end)

  describe("phases", function()
    it("leaves clients with a proxy to libcurl, and refuses to force cosockets for them", function()
      -- https: with a plain http base_url a proxy is refused
      local args = "&port=" .. nginx.free_port() .. "&base=" .. q(emu.tls_base_url)
        .. "&path=" .. q(members_path(small.id))
      local status, body = srv:get("/proxy?t=auto" .. args)
      assert.equal(200, status)
      assert.equal("network cosocket exchanges 0\n", body)   -- libcurl met the dead proxy
      status, body = srv:get("/proxy?t=cosocket" .. args)
      assert.equal(200, status)
      assert.matches("raised: .*does not support the proxy option", body)
    end)

    it("uses cosockets in an ngx.timer callback", function()
      emu:reset(seed)
      local status, body = srv:get("/timer?base=" .. q(emu.base_url) .. "&path="
        .. q(members_path(small.id)))
      assert.equal(200, status)
      assert.equal("members 3 in phase timer, cosocket exchanges 1\n", body)
    end)

    it("falls back to libcurl where cosockets are unavailable, and refuses to force them", function()
      emu:reset(seed)
      local args = "&base=" .. q(emu.base_url) .. "&path=" .. q(members_path(small.id))
      local status, body = srv:get("/set_phase?t=auto" .. args)
      assert.equal(200, status)
      assert.equal("members 3 cosocket exchanges 0\n", body)
      status, body = srv:get("/set_phase?t=cosocket" .. args)
      assert.equal(200, status)
      assert.matches("raised: .*transport \"cosocket\" is not available in the nginx 'set' phase", body)
    end)

    it("warns once per worker when a call falls back to libcurl", function()
      local args = "&base=" .. q(emu.base_url) .. "&path=" .. q(members_path(small.id))
      for _ = 1, 3 do
        local status, body = srv:get("/set_phase?t=auto" .. args)
        assert.equal(200, status)
        assert.equal("members 3 cosocket exchanges 0\n", body)
      end
      local _, n = srv:error_log():gsub("%[warn%][^\n]*cfiam: no cosockets in the nginx 'set' phase", "")
      assert.equal(1, n)
    end)

    it("a bad option raises at the caller's line over either transport", function()
      for _, t in ipairs({ "cosocket", "curl" }) do
        for _, f in ipairs({ "request", "update" }) do
          local status, body = srv:get("/bad_option?t=" .. t .. "&f=" .. f)
          assert.equal(200, status, status ~= 200 and srv:error_log():sub(-600) or nil)
          local at, msg = body:match("^([^|]*)|(.*)$")
          assert.equal(at .. ": ", msg:sub(1, #at + 2), t .. " " .. f .. ": " .. body)
          assert.matches("unknown option", msg, 1, true)
        end
      end
    end)

    it("raise at the caller's line, not inside cfiam", function()
      local args = "&base=" .. q(emu.base_url) .. "&path=" .. q(members_path(small.id))
        .. "&account=" .. A .. "&group=" .. small.id
      for _, f in ipairs({ "request", "list" }) do
        local status, body = srv:get("/set_phase?t=cosocket&f=" .. f .. args)
        assert.equal(200, status)
        -- the set_by_lua_block's own line, where pcall called cfiam
        assert.matches("^raised: set_by_lua%(nginx%.conf:%d+%):%d+: cfiam: transport", body)
      end
    end)
  end)

  describe("examples/nginx.conf", function()
    it("is a valid configuration that loads cfiam (nginx -t, paths set to this tree)", function()
      local f = assert(io.open("examples/nginx.conf", "rb"))
      local text = f:read("*a"):gsub("/opt/cfiam", nginx.root())
      f:close()
      local ok, out = nginx.check_conf(text)
      assert.is_true(ok, out)
      assert.matches("test is successful", out)
    end)
  end)

  describe("examples/nginx_handler.lua", function()
    local function post(group, doc)
      local status, body = srv:get("/cfiam/groups/" .. group .. "/members", 30,
        doc and cjson.encode(doc))
      return status, cjson.decode(body), body
    end
    local function ids_of(list)
      local t = {}
      for i, m in ipairs(list) do t[i] = m.id end
      table.sort(t)
      return t
    end

    it("plans, syncs and replaces a group's members from a JSON request", function()
      emu:reset(seed)
      local m, e = big.member_ids, big.emails
      -- dry run, group by name: nothing is written
      local status, doc = post("Small", { members = { m[1], e[5] }, dry_run = true })
      assert.equal(200, status)
      assert.is_true(doc.ok)
      assert.equal(small.id, doc.group)
      assert.same({ m[5] }, ids_of(doc.plan.add))
      assert.same({ m[2], m[3] }, ids_of(doc.plan.remove))
      assert.same({ m[1] }, ids_of(doc.plan.keep))
      for _, r in ipairs(emu:requests()) do assert.equal("GET", r.method) end
      -- the same for real
      status, doc = post(small.id, { members = { m[1], e[5] } })
      assert.equal(200, status)
      assert.is_false(doc.dry_run)
      assert.same({ m[5] }, ids_of(doc.plan.add))
      local c = cfiam.new{ base_url = emu.base_url, api_token = "test-token" }
      local now = assert(c:list_members(A, small.id))
      assert.same({ m[1], m[5] }, ids_of(now))
      -- replace, with an e-mail resolved to its member id
      status, doc = post(small.id, { mode = "replace", members = { m[4], e[6] } })
      assert.equal(200, status)
      assert.same({ m[4], m[6] }, ids_of(doc.members))
      assert.same({ m[4], m[6] }, ids_of(assert(c:list_members(A, small.id))))
      c:close()
    end)

    it("writes nothing in mode replace with dry_run, and empty lists as []", function()
      emu:reset(seed)
      emu:clear_requests()
      local m, e = big.member_ids, big.emails
      local status, doc = post(small.id, { mode = "replace", members = { m[1], e[5] }, dry_run = true })
      assert.equal(200, status)
      assert.is_true(doc.dry_run)
      assert.same({ m[5] }, ids_of(doc.plan.add))
      assert.same({ m[2], m[3] }, ids_of(doc.plan.remove))
      for _, r in ipairs(emu:requests()) do assert.equal("GET", r.method) end
      local c = cfiam.new{ base_url = emu.base_url, api_token = "test-token" }
      assert.same({ m[1], m[2], m[3] }, ids_of(assert(c:list_members(A, small.id))))
      c:close()
      -- nothing to add or remove: the lists are JSON arrays
      local body
      status, doc, body = post(small.id, { members = { m[1], m[2], m[3] }, dry_run = true })
      assert.equal(200, status)
      assert.same({}, doc.plan.add)
      assert.matches('"add":[]', body, 1, true)
      assert.matches('"remove":[]', body, 1, true)
    end)

    it("answers errors as JSON with a status per kind", function()
      emu:reset(seed)
      local status, doc = post("Small", { members = {} })           -- would empty it
      assert.equal(409, status)
      assert.equal("guard", doc.error.kind)
      status, doc = post("Nope", { members = { big.member_ids[1] } })
      assert.equal(404, status)
      assert.equal("not_found", doc.error.kind)
      status, doc = post("Small", { members = { "nobody@example.com" } })
      assert.equal(400, status)
      assert.equal("invalid_argument", doc.error.kind)
      status = srv:get("/cfiam/groups/Small/members")
      assert.equal(405, status)
      -- "members" as a JSON object, not an array: a 400 in JSON, nothing sent
      emu:clear_requests()
      for _, members in ipairs({ { a = big.emails[1] }, { big.emails[1], x = big.emails[2] } }) do
        local body
        status, body = srv:get("/cfiam/groups/Small/members", 30,
          cjson.encode({ members = members, dry_run = true }))
        assert.equal(400, status, body)
        doc = cjson.decode(body)
        assert.equal("invalid_argument", doc.error.kind)
        assert.matches('"members" array', doc.error.message, 1, true)
      end
      assert.same({}, emu:requests())
    end)
  end)

  describe("the shared budget", function()
    local function budget(n, limit, window, token, retries, timeout)
      local status, body = srv:get("/budget?n=" .. n .. "&limit=" .. limit .. "&window="
        .. window .. "&token=" .. token .. "&retries=" .. (retries or 2)
        .. (timeout and ("&timeout=" .. timeout) or "")
        .. "&base=" .. q(emu.base_url) .. "&path="
        .. q(members_path(small.id)), 120)
      assert.equal(200, status, body)
      return cjson.decode(body)
    end

    it("is shared by clients and fails at once when it is used up for long", function()
      emu:reset(seed)
      -- 100 a day, 90 % usable before waiting: two requests of 45 calls use
      -- it (one client each), the next call is refused without being sent
      local out = budget(45, 100, 86400, "test-token")
      for i = 1, 45 do assert.is_true(out[i].ok, "call " .. i) end
      out = budget(46, 100, 86400, "test-token")
      for i = 1, 45 do assert.is_true(out[i].ok, "call " .. i) end
      local last = out[46]
      assert.is_false(last.ok)
      assert.equal("rate_limited", last.kind)
      assert.is_true(last.retry_after > 60)
      assert.is_true(last.s < 0.5, "waited " .. last.s .. " s")
      assert.equal(90, emu:stats().requests)          -- the refused call sent nothing
    end)

    it("slows the calls down before the limit (and counts per token)", function()
      emu:reset(seed)
      -- 10 per 2 s: 9 go at once, the 10th waits (ngx.sleep) until the
      -- sliding window lets it through; another token is unaffected
      local out = budget(12, 10, 2, "ro-token")
      local total = 0
      for i = 1, 12 do
        assert.is_true(out[i].ok, "call " .. i)
        total = total + out[i].s
      end
      assert.is_true(out[1].s < 0.5)
      assert.is_true(total >= 0.2, "12 calls took only " .. total .. " s")
      assert.equal(12, emu:stats().requests)
    end)

    it("holds every client of the token off after a 429, for its Retry-After", function()
      emu:reset(seed)
      emu:fault({ status = 429, headers = { ["Retry-After"] = "1" }, times = 1 })
      -- no retries: the 429 is returned, and the next call (in this test the
      -- same worker; the dictionary is what every worker reads) waits
      local out = budget(2, 1200, 300, "test-token", 0)
      assert.is_false(out[1].ok)
      assert.equal("rate_limited", out[1].kind)
      assert.is_true(out[2].ok)
      assert.is_true(out[2].s >= 0.8, "the next call waited only " .. out[2].s .. " s")
      assert.is_true(out[2].s < 3)
    end)

    it("never waits longer than the call's timeout: a longer wait fails at once, sending nothing", function()
      emu:reset(seed)
      emu:fault({ status = 429, headers = { ["Retry-After"] = "3" }, times = 1 })
      -- the 429 holds the token off for 3 s; the next call has timeout = 1
      local out = budget(2, 1200, 300, "ro-token", 0, 1)
      assert.equal("rate_limited", out[1].kind)
      assert.is_false(out[2].ok)
      assert.equal("rate_limited", out[2].kind)
      assert.is_true(out[2].retry_after > 1 and out[2].retry_after <= 3, out[2].retry_after)
      assert.is_true(out[2].s < 0.5, "waited " .. out[2].s .. " s")
      assert.equal(1, emu:stats().requests)           -- the refused call sent nothing
    end)
  end)
end)

describe("the group calls under nginx", function()
  local emu, srv, ids, A

  setup(function()
    local seed
    seed, ids = emulator.seed{ members = 6, groups = { { name = "Ops", members = 2 },
      { name = "Empty", members = 0 }, { name = "Directory", members = 1 } } }
    A = ids.account
    seed.accounts[A].groups[3].scim = true
    emu = emulator.start{ seed = seed }
    srv = nginx.start{ server = SERVER }
  end)

  teardown(function()
    if srv then srv:stop() end
    if emu then emu:stop() end
  end)

  it("go over cosockets, with the same refusals (nothing sent) and err.reason", function()
    local PG = ("5"):rep(32)
    local policy = { access = "allow", permission_groups = { { id = PG } },
      resource_groups = { { id = ("6"):rep(32) } } }
    local calls = {
      { "get_group", A, { name = "Ops" } },
      { "create_group", A, { name = "New team", policies = { policy } } },
      { "create_group", A, { name = "Ops" } },                          -- conflict
      { "update_group", A, ids.groups.Ops.id, { name = "Operations" } },
      { "update_group", A, ids.groups.Ops.id, { policies = {} } },      -- refused
      { "delete_group", A, ids.groups.Ops.id },                         -- guard
      { "delete_group", A, { name = "Empty" } },
      { "update_group", A, ids.groups.Directory.id, { name = "X" } },   -- SCIM
    }
    emu:reset()
    local status, body = srv:get("/call", 60, cjson.encode({ calls = calls,
      opts = { base_url = emu.base_url, api_token = "test-token", max_retries = 0 } }))
    assert.equal(200, status, body)
    local doc = cjson.decode(body)
    local r = doc.results
    assert.equal(ids.groups.Ops.id, r[1].a.id)
    assert.equal("New team", r[2].a.name)
    assert.equal(PG, r[2].a.policies[1].permission_groups[1].id)
    assert.equal("conflict", r[3].b.kind)
    assert.equal("Operations", r[4].a.name)
    assert.equal("invalid_argument", r[5].b.kind)
    assert.equal("guard", r[6].b.kind)
    assert.equal(2, r[6].b.members)
    assert.is_true(r[7].a)
    assert.equal("scim_managed", r[8].b.reason)
    -- every request the emulator saw was a cosocket exchange
    local reqs = emu:requests()
    assert.equal(#reqs, doc.exchanges)
    local writes = {}
    for _, q in ipairs(reqs) do
      if q.method ~= "GET" then writes[#writes + 1] = q.method end
    end
    -- POST (create), PUT (rename), DELETE (Empty), PUT (SCIM, refused by the API)
    assert.same({ "POST", "PUT", "DELETE", "PUT" }, writes)
    local names = {}
    for _, g in ipairs(emu:state().accounts[A].groups) do names[#names + 1] = g.name end
    table.sort(names)
    assert.same({ "Directory", "New team", "Operations" }, names)
  end)
end)

describe("the shared budget learns the quota from the headers", function()
  -- Two workers, a new client per call (so no pacer of the C core has seen
  -- an answer before): only the reading kept in the lua_shared_dict, taken
  -- from every answer's Ratelimit header and counted down per request sent,
  -- keeps the token within the emulator's quota.
  local emu, srv, A, g
  setup(function()
    local seed, ids = emulator.seed{ members = 3, groups = { { name = "G", members = 2 } } }
    A, g = ids.account, ids.groups.G
    emu = emulator.start{ seed = seed }
    srv = nginx.start{ workers = 2, http = "lua_shared_dict cfiam 1m;", server = [[
      location = /q { content_by_lua_block {
        local c = require("cfiam").new{ base_url = "]] .. emu.base_url .. [[",
          api_token = "test-token", shared_dict = "cfiam", max_retries = 0, timeout = 15 }
        local r, err = c:request("GET", "/accounts/]] .. A .. [[/iam/user_groups/]] .. g.id
          .. [[/members")
        ngx.say(ngx.worker.pid(), " ", r and "ok" or tostring(err))
      } }
    ]] }
  end)
  teardown(function()
    if srv then srv:stop() end
    if emu then emu:stop() end
  end)

  it("15 calls over two workers within a quota of 10 per 5 s: no 429", function()
    emu:admin("POST", "/quota", { limit = 10, window = 5 })
    local pending = {}
    for i = 1, 15 do pending[i] = nginx.send(srv.port, "/q") end
    local res = nginx.wait_all(pending, 30)
    local pids, wrong = {}, {}
    for i, r in ipairs(res) do
      local pid, out = (r.body or ""):match("^(%d+) (.-)\n$")
      if pid then pids[pid] = true end
      if r.status ~= 200 or out ~= "ok" then
        wrong[#wrong + 1] = i .. ": " .. tostring(r.status) .. " " .. tostring(r.body)
      end
    end
    local npids = 0
    for _ in pairs(pids) do npids = npids + 1 end
    assert.equal(2, npids)                             -- both workers called
    assert.same({}, wrong)
    assert.equal(0, emu:stats().rate_limited)
  end)

  it("a quota used up beyond the call's timeout fails at once, unsent", function()
    emu:admin("POST", "/quota", { limit = 2, window = 60 })
    emu:clear_requests()
    local out = {}
    for i = 1, 3 do out[i] = select(2, srv:get("/q", 30)) end
    assert.matches(" ok\n$", out[1])
    assert.matches(" ok\n$", out[2])
    assert.matches("rate_limited: the quota of this token is used up", out[3], 1, true)
    assert.equal(2, #emu:requests())                   -- the third was not sent
    assert.equal(0, emu:stats().rate_limited)
  end)
end)
