-- spec/51-secrets_spec.lua: the API token and the API key never show up in
-- what a program prints or logs: no error message, tostring(err), string in
-- the error table (errors, messages, error_chain, plan, ...), tostring(client)
-- or core.config(client). Every error kind is swept, with both kinds of
-- credentials, including when the server echoes the credentials back in its
-- error body, its headers (cf-ray, Location) or a non-JSON page.
local emulator = require("helpers.emulator")
local rel = require("helpers.reliability")
local cfiam = require("cfiam")

local TOKEN = "sEcReT-tOkEn-7f3a9c21d4e84b0a9f6e5d4c3b2a1908"
local EMAIL = "owner@example.com"
local KEY = "5ec2e7key0a1b2c3d4e5f60718293a4b5c6d7"
-- The secrets of the client under test (a client can only hide what it
-- holds), with their first 12 bytes: a secret cut in half by a length
-- limit must not leave its first part behind either.
local PROBES
local function probes_for(auth)
  local s = auth == "token" and TOKEN or KEY
  PROBES = { s, s:sub(1, 12) }
end

local seed, ids = emulator.seed{ members = 12, groups = { { name = "G", members = 6 } },
  tokens = { { token = TOKEN } }, keys = { { email = EMAIL, key = KEY } } }
local A, G = ids.account, ids.groups.G.id
local MEMBERS = "/accounts/" .. A .. "/iam/user_groups/" .. G .. "/members"

-- Every string reachable from v (keys and values, any depth), plus what
-- tostring and concatenation make of the error.
local function strings_of(v, out, seen)
  out, seen = out or {}, seen or {}
  if type(v) == "string" then
    out[#out + 1] = v
  elseif type(v) == "table" and not seen[v] then
    seen[v] = true
    for k, x in pairs(v) do
      strings_of(k, out, seen)
      strings_of(x, out, seen)
    end
  elseif v ~= nil then
    out[#out + 1] = tostring(v)
  end
  return out
end

local function assert_clean(what, ...)
  local all = {}
  for i = 1, select("#", ...) do
    local v = select(i, ...)
    for _, s in ipairs(strings_of(v)) do all[#all + 1] = s end
    if type(v) == "table" or type(v) == "userdata" then
      all[#all + 1] = tostring(v)
      if getmetatable(v) and getmetatable(v).__concat then all[#all + 1] = "x: " .. v end
    end
  end
  for _, s in ipairs(all) do
    for _, p in ipairs(PROBES) do
      assert(not s:find(p, 1, true), what .. ": a secret leaked in " .. string.format("%q", s))
    end
  end
end

-- An error envelope that echoes both secrets everywhere a server could.
local function echo_body(code)
  local e = "echo " .. TOKEN .. " / " .. KEY
  return string.format('{"success":false,"errors":[{"code":%d,"message":"%s",'
    .. '"documentation_url":"https://example.com/?t=%s","error_chain":[{"code":1,'
    .. '"message":"a\\u0000%s"}],"source":{"pointer":"/%s"}}],"messages":[{"code":2,'
    .. '"message":"%s"}],"result":null}', code, e, TOKEN, KEY, TOKEN, e)
end
-- A message of 1000 bytes then the secret: the 1023-byte cut falls in it.
local function cut_body()
  return '{"success":false,"errors":[{"code":3,"message":"' .. string.rep("x", 1000)
    .. TOKEN .. KEY .. '"}],"messages":[],"result":null}'
end

describe("secrets", function()
  local emu
  setup(function() emu = emulator.start{ seed = seed, tls = true } end)
  teardown(function() if emu then emu:stop() end end)

  local echo = { ["cf-ray"] = TOKEN, ["X-Echo"] = KEY }
  local ECHO_RULES = {
    { path = "/__sec/auth$", status = 401, headers = echo },
    { path = "/__sec/permission$", status = 403, headers = echo },
    { path = "/__sec/not_found$", status = 404, headers = echo },
    { path = "/__sec/rate_limited$", status = 429, headers = { ["cf-ray"] = KEY, ["Retry-After"] = "120" } },
    { path = "/__sec/api$", status = 400, headers = echo },
    { path = "/__sec/api200$", status = 200, headers = echo },
    { path = "/__sec/server$", status = 500, headers = { ["x-should-retry"] = "false", ["cf-ray"] = TOKEN } },
    { path = "/__sec/html$", status = 502, headers = { ["Content-Type"] = "text/html" },
      body = "Authorization: Bearer " .. TOKEN .. " X-Auth-Key: " .. KEY .. "\n<html></html>" },
    { path = "/__sec/redirect$", status = 302,
      headers = { Location = "https://evil.example/?token=" .. TOKEN .. "&key=" .. KEY } },
    { path = "/__sec/cut$", status = 400 },
    { path = "/__sec/timeout$", stall_at = 12 },
    { path = "/__sec/network$", drop = true },
    { path = "/__sec/invalid$", status = 200, body = "not json " .. TOKEN },
  }

  before_each(function()
    emu:reset()
    local rules = {}
    for i, r in ipairs(ECHO_RULES) do
      local copy = { times = -1 }
      for k, v in pairs(r) do copy[k] = v end
      if not copy.body and copy.status and copy.status ~= 302 then
        copy.body = r.path:find("cut") and cut_body() or echo_body(1000 + i)
      end
      rules[i] = copy
    end
    emu:fault(rules)
  end)

  for _, auth in ipairs({ "token", "key" }) do
    describe("with " .. auth .. " auth", function()
      before_each(function() probes_for(auth) end)
      local function client(o)
        local opts = { base_url = emu.base_url, max_retries = 0, timeout = 2 }
        if auth == "token" then opts.api_token = TOKEN
        else opts.api_email, opts.api_key = EMAIL, KEY end
        for k, v in pairs(o or {}) do opts[k] = v end
        return cfiam.new(opts)
      end

      it("tostring(client) and core.config(client) show no credentials", function()
        local c = client()
        assert.matches("cfiam.client", tostring(c))
        assert_clean("client", c, require("cfiam.core").config(c))
        c:close()
        assert_clean("closed client", c)
      end)

      it("tostring(client) scrubs a credential put in base_url", function()
        local secret = auth == "token" and TOKEN or KEY
        local c = client({ base_url = emu.base_url .. "/" .. secret })
        assert.matches("[redacted]", tostring(c), 1, true)
        assert_clean("client", tostring(c))
        c:close()
      end)

      it("a credential passed by mistake as an id or a path is not quoted back", function()
        local c = client()
        local s = auth == "token" and TOKEN or KEY
        local _, e1 = c:update_members(A, G, { s })
        local _, e2 = c:update_members(s, G, { ids.member_ids[1] })
        local _, e3 = c:request("GET", "/" .. s .. "?x")
        for _, e in ipairs({ e1, e2, e3 }) do
          assert.equals("invalid_argument", e.kind)
          assert.matches("[redacted]", e.message, 1, true)
          assert_clean("quoted argument", e)
        end
        c:close()
      end)

      it("every error kind answered by an echoing server is clean", function()
        local c = client()
        local quick = client({ timeout = 0.1 })
        local tls = client({ base_url = emu.tls_base_url, ca_file = emu.other_ca_file })
        local seen = {}
        local function check(name, expected_kind, res, err)
          assert.is_nil(res, name)
          assert.equals(expected_kind, err.kind, name .. ": " .. tostring(err))
          seen[err.kind] = true
          assert_clean(name, err)
        end
        for _, case in ipairs({
          { "auth", "auth" }, { "permission", "permission" }, { "not_found", "not_found" },
          { "rate_limited", "rate_limited" }, { "api", "api" }, { "api200", "api" },
          { "server", "server" }, { "html", "server" }, { "redirect", "invalid_response" },
          { "cut", "api" }, { "network", "network" }, { "invalid", "invalid_response" },
        }) do
          check(case[1], case[2], c:request("GET", "/__sec/" .. case[1]))
        end
        check("timeout", "timeout", quick:request("GET", "/__sec/timeout"))
        check("tls", "tls", tls:request("GET", MEMBERS))
        check("invalid id", "invalid_argument", c:update_members(A, "not-an-id", { ids.member_ids[1] }))
        -- a credential that cannot be sent (a newline in it) is refused by name only
        local bad = auth == "token" and cfiam.new{ api_token = TOKEN .. "\r\nX: y", base_url = emu.base_url }
          or cfiam.new{ api_email = EMAIL, api_key = KEY .. "\n", base_url = emu.base_url }
        check("bad credential", "invalid_argument", bad:request("GET", MEMBERS))
        assert_clean("bad client", bad)
        for _, k in ipairs(rel.KINDS) do assert.is_true(seen[k] == true, "kind " .. k .. " not swept") end
        for _, x in ipairs({ c, quick, tls, bad }) do x:close() end
      end)

      it("the real server's own auth errors are clean too", function()
        local o = { base_url = emu.base_url, max_retries = 0 }
        if auth == "token" then o.api_token = TOKEN .. "x" else o.api_email, o.api_key = EMAIL, KEY .. "0" end
        local wrong = cfiam.new(o)
        local res, err = wrong:update_members(A, G, { ids.member_ids[1] })
        assert.is_nil(res)
        assert.equals("auth", err.kind)
        assert_clean("auth", err, wrong)
      end)

      it("the helpers' errors are clean: listing, guard, failed PUT, drift", function()
        local c = client()
        -- a listing answered by an echoing 403
        emu:fault{ method = "GET", path = "/members$", status = 403, body = echo_body(9109),
          headers = echo, times = 1 }
        local res, err = c:list_members(A, G)
        assert.is_nil(res)
        assert.equals("permission", err.kind)
        assert_clean("list_members", err)
        -- a guard refusal (removing everyone), carrying the plan
        res, err = c:sync_members(A, G, {}, { max_removals = 100 })
        assert.is_nil(res)
        assert.equals("guard", err.kind)
        assert.is_table(err.plan)
        assert_clean("guard", err)
        -- a PUT that fails with an echo: reported with the plan, still clean
        emu:fault{ method = "PUT", status = 500, body = echo_body(1), times = -1,
          headers = { ["x-should-retry"] = "false", ["cf-ray"] = TOKEN } }
        res, err = c:sync_members(A, G, { ids.member_ids[1], ids.member_ids[2] },
          { max_removals = 100, strategy = "replace" })
        assert.is_nil(res)
        assert.equals("server", err.kind)
        assert.is_table(err.plan)
        assert_clean("failed PUT", err)
        emu:clear_faults()
        -- drift: the PUT "succeeds" without doing anything
        emu:fault{ method = "PUT", status = 200, times = 1,
          body = '{"success":true,"errors":[],"messages":[],"result":[]}' }
        res, err = c:sync_members(A, G, { ids.member_ids[1] },
          { max_removals = 100, verify = true, strategy = "replace" })
        assert.is_nil(res)
        assert.equals("drift", err.kind)
        assert_clean("drift", err)
        c:close()
      end)
    end)
  end

  -- The matrix: every public function, every argument position, with the
  -- credential (or a piece of it: 8 bytes are enough to count as a leak)
  -- where a value was expected. Whatever comes back (a result, nil, err, or
  -- a raised error) must not hold any 8 consecutive bytes of it.
  describe("misplaced credentials, every function and argument", function()
    local unpack = table.unpack or unpack
    local function pack(...) return { n = select("#", ...), ... } end
    -- every 8-byte window of s
    local function windows(s)
      local out = {}
      for i = 1, #s - 7 do out[#out + 1] = s:sub(i, i + 7) end
      return out
    end

    -- Values standing in for a string argument, a list entry, an options table.
    local function strings(s)
      return { s, s:sub(1, 32), s:sub(3, 14), "/" .. s, s .. "@example.com",
        "Eng " .. s:sub(5, 36) }
    end
    local function lists(s)
      local out = {}
      for _, v in ipairs(strings(s)) do out[#out + 1] = { v } end
      out[#out + 1] = { { id = s } }
      out[#out + 1] = { { email = s } }
      out[#out + 1] = { { email = s:sub(1, 20) .. "@example.com" } }
      out[#out + 1] = { ids.member_ids[1], s, s:sub(1, 32) }
      return out
    end
    local function options(s, names)
      local out = { { [s] = true }, { [s:sub(1, 32)] = 1 } }
      for _, n in ipairs(names) do
        for _, v in ipairs(strings(s)) do out[#out + 1] = { [n] = v } end
      end
      return out
    end

    -- Each function's valid arguments, and the kind of each position.
    local function calls(s)
      local M1 = ids.member_ids[1]
      local list_opts = { "direction", "fuzzy_email" }
      local F = {
        request = { { "GET", MEMBERS, {} }, { "string", "string",
          { { query = { [s] = "x" } }, { query = { x = s } }, { query = { [s] = {} } },
            { headers = { [s] = "x" } }, { headers = { ["X-A"] = s .. "\n" } },
            { ids = { s } }, { [s] = 1 } } } },
        update_members = { { A, G, { M1 }, {} }, { "string", "string", "list", "opts" } },
        list_members = { { A, G, {} }, { "string", "string", list_opts } },
        each_member = { { A, G, {} }, { "string", "string", list_opts } },
        add_members = { { A, G, { M1 } }, { "string", "string", "list" } },
        remove_members = { { A, G, { M1 } }, { "string", "string", "list" } },
        plan_members = { { A, G, { M1 }, {} }, { "string", "string", "list", "opts" } },
        sync_members = { { A, G, { M1 }, { dry_run = true } },
          { "string", "string", "list", "opts" } },
        resolve_members = { { A, { EMAIL } }, { "string", "list" } },
        list_groups = { { A, {} }, { "string", { "name", "fuzzy_name", "direction" } } },
        find_group = { { A, "G" }, { "string", "string" } },
      }
      local out = {}
      for fname, spec in pairs(F) do
        local base, kinds = spec[1], spec[2]
        for pos, kind in ipairs(kinds) do
          local values = kind == "string" and strings(s) or kind == "list" and lists(s)
            or kind == "opts" and options(s, {})
            or (type(kind[1]) == "table" and kind) or options(s, kind)
          for _, v in ipairs(values) do
            local args = {}
            for i = 1, #kinds do args[i] = base[i] end
            args[pos] = v
            out[#out + 1] = { fname = fname, pos = pos, args = args }
          end
        end
      end
      -- The group calls, and a group given by name: only arguments that
      -- fail before anything is written (a group named after the
      -- credential would come back in later listings as data).
      local plan = function(part, v)
        local p = { add = {}, remove = {}, keep = {} }
        p[part] = { { id = v } }
        return p
      end
      for _, v in ipairs(strings(s)) do
        local extra = {
          { "get_group", 1, { v, G } }, { "get_group", 2, { A, v } },
          { "get_group", 2, { A, { name = v } } }, { "get_group", 2, { A, { [v] = 1, name = "G" } } },
          { "create_group", 1, { v, { name = "x" } } }, { "create_group", 2, { A, { [v] = 1 } } },
          { "create_group", 2, { A, { name = "n", policies = { { access = v } } } } },
          { "update_group", 1, { v, G, { name = "x" } } }, { "update_group", 2, { A, v, { name = "x" } } },
          { "update_group", 2, { A, { name = v }, { name = "y" } } },
          { "update_group", 3, { A, G, { [v] = 1 } } },
          { "update_group", 3, { A, G, { policies = { { access = v } } } } },
          { "delete_group", 1, { v, G } }, { "delete_group", 2, { A, v } },
          { "delete_group", 2, { A, { name = v } } }, { "delete_group", 3, { A, G, { [v] = true } } },
          { "apply_plan", 3, { A, G, plan("add", v) } }, { "apply_plan", 3, { A, G, plan("remove", v) } },
          { "apply_plan", 4, { A, G, plan("keep", M1), { strategy = v } } },
          { "apply_plan", 4, { A, G, plan("keep", M1), { [v] = 1 } } },
          { "list_members", 2, { A, { name = v } } }, { "sync_members", 2, { A, { name = v }, { M1 } } },
          { "add_members", 2, { A, { name = v }, { M1 } } },
          { "request_many", 2, { { { "GET", MEMBERS } }, { [v] = 1 } } },
          { "add_members", 4, { A, G, { M1 }, { [v] = 1 } } },
          { "remove_members", 4, { A, G, { M1 }, { [v] = 1 } } },
          { "resolve_members", 3, { A, { EMAIL }, { [v] = 1 } } },
          { "plan_account", 2, { { account = A, groups = {} }, { [v] = 1 } } },
          { "dump_account", 2, { A, { [v] = 1 } } },
          { "apply_account", 2, { { account = A, groups = {} }, { [v] = 1 } } },
        }
        for _, x in ipairs(extra) do out[#out + 1] = { fname = x[1], pos = x[2], args = x[3] } end
      end
      table.sort(out, function(a, b)
        if a.fname ~= b.fname then return a.fname < b.fname end
        return a.pos < b.pos
      end)
      return out
    end

    local function leaks(s, secret)
      for _, w in ipairs(windows(secret)) do
        local at = s:find(w, 1, true)
        if at then return at end
      end
    end

    local function check_all(what, secret, values)
      for i = 1, values.n do
        local v = values[i]
        for _, str in ipairs(strings_of(v)) do
          assert(not leaks(str, secret), what .. ": 8 bytes of the credential in "
            .. string.format("%q", str))
        end
        if type(v) == "table" and getmetatable(v) then
          assert(not leaks(tostring(v), secret), what .. ": tostring")
          assert(not leaks("x: " .. v, secret), what .. ": concat")
        end
      end
    end

    for _, auth in ipairs({ "token", "key" }) do
      it("with " .. auth .. " auth: no function quotes any piece of it", function()
        local secret = auth == "token" and TOKEN or KEY
        local o = { base_url = emu.base_url, max_retries = 0, timeout = 2 }
        if auth == "token" then o.api_token = TOKEN else o.api_email, o.api_key = EMAIL, KEY end
        local c = cfiam.new(o)
        local n = 0
        for _, call in ipairs(calls(secret)) do
          local what = call.fname .. " argument " .. call.pos
          local m = c[call.fname]
          local res = pack(pcall(m, c, unpack(call.args, 1, 4)))
          if res[1] and type(res[2]) == "function" then -- each_member
            local it = res[2]
            res = { true, n = 1 }
            for i = 1, 20000 do
              local x, e = it()
              if x == nil then break end
              res.n = res.n + 1
              if x == false then res[res.n] = e; break end
              res[res.n] = x
              if i > 3 then break end
            end
          end
          check_all(what, secret, res)
          n = n + 1
        end
        assert.is_true(n > 150, "the matrix ran " .. n .. " calls")
        c:close()
      end)
    end

    for _, auth in ipairs({ "token", "key" }) do
      it("with " .. auth .. " auth: cfiam.new and the first call quote no piece of it", function()
        local secret = auth == "token" and TOKEN or KEY
        local function opts(extra)
          local o = { base_url = emu.base_url, max_retries = 0, timeout = 2 }
          if auth == "token" then o.api_token = TOKEN else o.api_email, o.api_key = EMAIL, KEY end
          for k, v in pairs(extra) do o[k] = v end
          return o
        end
        local n = 0
        for _, extra in ipairs({ { [secret] = 1 }, { [secret:sub(1, 32)] = true },
          { ["x" .. secret:sub(9, 30)] = "y" }, { base_url = secret }, { base_url = "ftp://" .. secret },
          { user_agent = secret .. "\n" }, { headers = { [secret] = "x" } },
          { headers = { [secret .. ":"] = "x" } }, { headers = { ["X-A"] = secret .. "\r\n" } },
          { headers = { Authorization = secret } }, { timeout = -1, [secret] = 1 } }) do
          local ok, c = pcall(cfiam.new, opts(extra))
          local res
          if ok then
            res = pack(c:request("GET", MEMBERS))
            res.n = res.n + 1
            res[res.n] = c:update_members(A, G, { ids.member_ids[1] })
            c:close()
          else
            res = pack(c)
          end
          check_all("cfiam.new", secret, res)
          n = n + 1
        end
        assert.equals(11, n)
      end)
    end

    for _, auth in ipairs({ "token", "key" }) do
      it("with " .. auth .. " auth: cfiam.load_desired quotes no piece of it", function()
        local secret = auth == "token" and TOKEN or KEY
        local o = { base_url = emu.base_url, max_retries = 0 }
        if auth == "token" then o.api_token = TOKEN else o.api_email, o.api_key = EMAIL, KEY end
        cfiam.configure(o)
        local n = 0
        for _, v in ipairs({ secret, secret:sub(1, 32), secret:sub(3, 14), "/" .. secret }) do
          for _, src in ipairs({ { account = v, groups = {} },
            { account = A, groups = { E = { members = { v } } } },
            { account = A, [v] = 1 },
            { account = A, groups = { E = { members = {}, max_removals = v } } }, v }) do
            check_all("load_desired", secret, pack(pcall(cfiam.load_desired, src)))
            n = n + 1
          end
        end
        cfiam.configure()
        assert.equals(20, n)
      end)
    end

    it("the credential not used is scrubbed too: a key beside a token, from the environment or options", function()
      local H = require("helpers.cli")
      local code = [[
        local cfiam = require("cfiam")
        local A, KEY, TOKEN = ...
        local function show(...) local e = select(2, ...); io.write(tostring(e and e.message), "\n") end
        show(cfiam.update_members(A, KEY, { KEY }))
        show(cfiam.new():resolve_members(A, { KEY }))
        show(cfiam.new{ base_url = os.getenv("CLOUDFLARE_BASE_URL"), api_email = "x@example.com",
          api_key = KEY }:update_members(A, TOKEN, { TOKEN }))
        show(cfiam.new{ base_url = os.getenv("CLOUDFLARE_BASE_URL"), api_token = "t" .. TOKEN,
          api_key = "k" .. KEY }:update_members(A, "k" .. KEY, { "t" .. TOKEN }))
      ]]
      local path = os.tmpname()
      local f = assert(io.open(path, "w"))
      f:write(code)
      f:close()
      local r = H.run(path, { A, KEY, TOKEN }, { env = { CLOUDFLARE_BASE_URL = emu.base_url,
        CLOUDFLARE_API_TOKEN = TOKEN, CLOUDFLARE_EMAIL = EMAIL, CLOUDFLARE_API_KEY = KEY } })
      os.remove(path)
      assert.equals(0, r.status, r.stderr)
      local lines = 0
      for line in r.stdout:gmatch("[^\n]+") do
        lines = lines + 1
        assert.matches("[redacted]", line, 1, true)
      end
      assert.equals(4, lines, r.stdout)
      PROBES = { TOKEN, TOKEN:sub(1, 12), KEY, KEY:sub(1, 12) }
      assert_clean("stdout", r.stdout)
    end)

    it("the pieces are redacted, the rest of the message stays", function()
      local c = cfiam.new{ base_url = emu.base_url, api_token = TOKEN, max_retries = 0 }
      local _, err = c:update_members(A, G, { TOKEN:sub(1, 32) })
      assert.equals("invalid_argument", err.kind)
      assert.matches("[redacted]", err.message, 1, true)
      local _, err2 = c:add_members(A, G, { "x" .. TOKEN:sub(9, 30) .. "@example.com" })
      assert.equals("invalid_argument", err2.kind)
      assert.matches("x[redacted]@example.com", err2.unknown[1], 1, true)
      local _, err3 = c:find_group(A, "Ops " .. TOKEN:sub(1, 10))
      assert.equals("not_found", err3.kind)
      assert.matches("named [redacted] in account", err3.message, 1, true)
      c:close()
    end)
  end)

  -- The command, its arguments in every place, with and without --json:
  -- nothing it prints holds 8 bytes of the credential of its environment.
  describe("the cfiam command", function()
    local H = require("helpers.cli")
    for _, auth in ipairs({ "token", "key" }) do
      it("with " .. auth .. " auth prints no piece of it", function()
        local secret = auth == "token" and TOKEN or KEY
        local env = { CLOUDFLARE_BASE_URL = emu.base_url }
        if auth == "token" then env.CLOUDFLARE_API_TOKEN = TOKEN
        else env.CLOUDFLARE_EMAIL, env.CLOUDFLARE_API_KEY = EMAIL, KEY end
        local S, S32 = secret, secret:sub(1, 32)
        local M1 = ids.member_ids[1]
        local cases = {
          { S }, { "members", S }, { "members", "list", S }, { "members", "list", S, G },
          { "members", "list", A, S }, { "members", "list", A, S32 },
          { "members", "list", A, G, S }, { "members", "list", A, G, "--" .. S },
          { "members", "list", A, G, "--" .. S .. "=x" }, { "members", "list", A, G, "-" .. S },
          { "members", "add", A, G, S }, { "members", "add", A, G, S .. "@example.com" },
          { "members", "add", A, G, S32 }, { "members", "remove", A, G, S },
          { "members", "remove", S, G, M1 },
          { "members", "sync", A, G, S, "--dry-run" },
          { "members", "sync", A, G, "--file", S }, { "members", "sync", A, G, "--file", "/" .. S32 },
          { "members", "sync", A, G, M1, "--max-removals", S },
          { "members", "sync", A, G, M1, "--max-removals=" .. S32 },
          { "groups", S }, { "groups", "list", S }, { "groups", "list", A, "--name", S },
          { "groups", "list", A, "--name", S32 }, { "groups", "list", A, S },
          { "groups", "show", A, S }, { "groups", "show", S, G }, { "groups", "show", A, S32 },
          { "groups", "create", S, "n" }, { "groups", "create", A, "n", "--policies", S },
          { "groups", "rename", A, S, "x" }, { "groups", "delete", A, S, "--yes" },
          { "members", "sync", A, S, M1, "--replace", "--yes" },
        }
        for _, args in ipairs(cases) do
          for _, json in ipairs({ false, true }) do
            local a = {}
            for i, v in ipairs(args) do a[i] = v end
            if json then a[#a + 1] = "--json" end
            local r = H.run("bin/cfiam", a, { env = env })
            local what = table.concat(a, " ")
            assert.is_true(r.status ~= 0, what)
            for _, w in ipairs({ "stdout", "stderr" }) do
              for i = 1, #secret - 7 do
                assert(not r[w]:find(secret:sub(i, i + 7), 1, true), what .. ": 8 bytes of the "
                  .. "credential on " .. w .. ": " .. r[w])
              end
            end
            assert.are_not.equal("", r.stderr, what)
          end
        end
      end)
    end
  end)
end)
