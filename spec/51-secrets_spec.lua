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
end)
