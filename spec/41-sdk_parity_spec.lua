-- spec/41-sdk_parity_spec.lua: what cfiam puts on the wire, compared with
-- the official TypeScript SDK (npm `cloudflare` 7.3.0, pinned by
-- tools/npm.sh) for the same inputs, both against the project's emulator
-- as the recording server (emu:requests()).
--
-- spec/helpers/sdk_parity.js runs every SDK case once (setup); each case
-- below then runs cfiam from the same emulator state and compares, request
-- by request: method, path, query (parsed), body (parsed JSON, and the raw
-- bytes), and the headers, by name. A header that differs must be listed
-- in DELIBERATE with the reason, otherwise the case fails; so must any
-- difference in the sequence of requests (each case's `differs`).
local cfiam = require("cfiam")
local cjson = require("cjson")
local emulator = require("helpers.emulator")
local prism = require("helpers.prism") -- install() and the pinned versions

local ipairs, pairs, type, tostring, io, os =
  ipairs, pairs, type, tostring, io, os

-- Headers whose difference is deliberate, with the reason. Everything else
-- the SDK sends (accept, content-type, content-length, authorization,
-- x-auth-email, x-auth-key, host) must be present in both with equal values.
local DELIBERATE = {
  ["user-agent"] = "each client names itself: cfiam/<version> (<Lua>; libcurl/<v>)"
    .. " versus Cloudflare/JS 7.3.0; both send one",
  ["api-version"] = "the TS SDK sends today's date (a Stainless default); the API"
    .. " documents no such header and cfiam does not send it",
  ["x-stainless-*"] = "SDK telemetry (lang, package version, OS, arch, runtime,"
    .. " retry count); not part of the API",
  ["accept-encoding"] = "transport default: libcurl offers every decoder it has"
    .. " (deflate, gzip, br, zstd), undici gzip, deflate",
  ["accept-language"] = "undici's fetch default (*), not an SDK choice",
  ["sec-fetch-mode"] = "undici's fetch default (cors), not an SDK choice",
  ["connection"] = "undici sends keep-alive; libcurl relies on the HTTP/1.1 default",
}

local function deliberate(name)
  if name:match("^x%-stainless%-") then return DELIBERATE["x-stainless-*"] end
  return DELIBERATE[name]
end

-- Query strings are compared parsed. Deliberate: cfiam sorts the keys
-- (fuzzyEmail=..&page=1&per_page=2), the SDK keeps the caller's order and
-- appends page on later pages (per_page=2&page=2). The SDK sends page and
-- per_page only when the caller gives them; cfiam always sends both (its
-- per_page defaults to the API's maximum, 500 or 50, where the server's
-- default is 100 or 20), so the SDK cases below pass page = 1 and cfiam's
-- page size: the same input, spelled for each client.
local function parse_query(q)
  return prism.parse_query("?" .. (q or ""))
end

local function decode_body(b)
  if b == nil or b == "" then return nil end
  return cjson.decode(b)
end

local function show(r)
  return ("%s %s?%s %s"):format(r.method, r.path, r.query or "", r.body or "")
end

-- Asserts that two recorded requests agree (see the header rules above);
-- `body_differs` skips the body and its length (a case that says why).
local function assert_same_request(sdk, ours, body_differs)
  local where = "\n  SDK:   " .. show(sdk) .. "\n  cfiam: " .. show(ours)
  assert.are.equal(sdk.method, ours.method, "method" .. where)
  assert.are.equal(sdk.path, ours.path, "path" .. where)
  assert.are.same(parse_query(sdk.query), parse_query(ours.query), "query" .. where)
  if not body_differs then
    assert.are.same(decode_body(sdk.body), decode_body(ours.body), "JSON body" .. where)
    -- Byte level: the same compact JSON text.
    assert.are.equal(sdk.body or "", ours.body or "", "body bytes" .. where)
  end
  local names = {}
  for k in pairs(sdk.headers) do names[k] = true end
  for k in pairs(ours.headers) do names[k] = true end
  for name in pairs(names) do
    if not deliberate(name) and not (body_differs and name == "content-length") then
      assert.are.equal(sdk.headers[name], ours.headers[name],
        "header " .. name .. " (not listed as a deliberate difference)" .. where)
    end
  end
  -- The deliberate ones that both send: present in both.
  assert.is_string(ours.headers["user-agent"])
  assert.is_string(ours.headers.accept)
end

local function assert_same_sequence(sdk, ours)
  assert.are.equal(#sdk, #ours, "number of requests")
  for i = 1, #sdk do assert_same_request(sdk[i], ours[i]) end
end

local function ids_of(list)
  local out = {}
  for i, m in ipairs(list or {}) do out[i] = m.id end
  return out
end

describe("parity with the official TypeScript SDK", function()
  local seed, ids = emulator.seed{ members = 7,
    groups = { { name = "Alpha", members = 3 },
      -- a name that needs percent-encoding: space, &, /, +, non-ASCII
      { name = "Beta & Co/ü+1", members = 2, offset = 3 } } }
  local A = ids.account
  local G = ids.groups.Alpha.id
  local M = ids.member_ids
  local KEY_AUTH = { email = ids.email, key = ids.key }
  local POLICY = { access = "allow", permission_groups = { { id = "c8fed203ed3043cba015a93ad1616f1f" } },
    resource_groups = { { id = "6d7f2f5f5b1d4a0e9081fdc98d432fd1", name = "kept" } } }
  local POLICY_WITH_ID = { id = "f267e341f3dd4697bd3b9f71dd96247f", access = "deny",
    permission_groups = { { id = "c8fed203ed3043cba015a93ad1616f1f" } },
    resource_groups = { { id = "6d7f2f5f5b1d4a0e9081fdc98d432fd1" } } }
  local TOKEN_AUTH = { token = ids.token }
  local emu, sdk

  -- cfiam ends a listing at a page shorter than per_page; the SDK asks for
  -- one more, empty page: every request but the SDK's last agrees.
  local SHORT_PAGE = "deliberate: cfiam stops at a page shorter than per_page; the SDK"
    .. " always asks for one more, empty page"
  local function but_last_page(s, ours)
    assert.are.equal(#s - 1, #ours)
    local head = {}
    for i = 1, #s - 1 do head[i] = s[i] end
    assert_same_sequence(head, ours)
  end

  -- Each case: the SDK call (op, args) and cfiam's call for the same input.
  local CASES = {
    { name = "update_members (token)", auth = TOKEN_AUTH, op = "members.update",
      args = { account = A, group = G, ids = { M[4], M[5] } },
      cfiam = function(c) return c:update_members(A, G, { M[4], M[5] }) end },
    { name = "update_members (e-mail + key)", auth = KEY_AUTH, op = "members.update",
      args = { account = A, group = G, ids = { M[1], M[6] } },
      cfiam = function(c) return c:update_members(A, G, { M[1], M[6] }) end },
    { name = "update_members, token and e-mail + key both configured",
      auth = { token = ids.token, email = ids.email, key = ids.key }, op = "members.update",
      args = { account = A, group = G, ids = { M[4] } },
      cfiam = function(c) return c:update_members(A, G, { M[4] }) end,
      differs = "deliberate: with both configured cfiam sends only the token"
        .. " (Authorization: Bearer); the TS SDK sends all three headers, and the"
        .. " Python SDK only e-mail + key, so no single behaviour is 'the SDK's'",
      check = function(s, ours)
        local sh, oh = s[1].headers, ours[1].headers
        assert.are.equal("Bearer " .. ids.token, sh.authorization)
        assert.are.equal(ids.email, sh["x-auth-email"])
        assert.are.equal(ids.key, sh["x-auth-key"])
        assert.are.equal("Bearer " .. ids.token, oh.authorization)
        assert.is_nil(oh["x-auth-email"])
        assert.is_nil(oh["x-auth-key"])
        sh["x-auth-email"], sh["x-auth-key"] = nil, nil
        assert_same_request(s[1], ours[1]) -- everything else agrees
      end },
    { name = "update_members, empty with allow_empty", auth = TOKEN_AUTH, op = "members.update",
      args = { account = A, group = G, ids = {} },
      cfiam = function(c) return c:update_members(A, G, {}, { allow_empty = true }) end },
    { name = "update_members, empty without allow_empty", auth = TOKEN_AUTH,
      op = "members.update", args = { account = A, group = G, ids = {} },
      cfiam = function(c) return c:update_members(A, G, {}) end,
      differs = "deliberate: cfiam refuses to send an empty list (it removes every"
        .. " member) unless allow_empty is set; the SDK sends it",
      check = function(s, ours, res, err)
        assert.are.equal(1, #s)
        assert.are.equal("[]", s[1].body)
        assert.are.equal(0, #ours)
        assert.is_nil(res)
        assert.are.equal("invalid_argument", err.kind)
      end },
    { name = "update_members, duplicate and upper-case ids", auth = TOKEN_AUTH,
      op = "members.update",
      args = { account = A, group = G, ids = { M[2], M[2], M[3]:upper() } },
      cfiam = function(c) return c:update_members(A, G, { M[2], M[2], M[3]:upper() }) end,
      differs = "deliberate: cfiam lower-cases ids and drops duplicates (ids are"
        .. " lower-case hex; a set has no duplicates); the SDK sends the list as given",
      check = function(s, ours)
        assert.are.equal(1, #s)
        assert.are.equal(1, #ours)
        assert.are.same({ { id = M[2] }, { id = M[2] }, { id = M[3]:upper() } },
          decode_body(s[1].body))
        assert.are.same({ { id = M[2] }, { id = M[3] } }, decode_body(ours[1].body))
        assert_same_request(s[1], ours[1], true) -- everything else agrees
      end },
    { name = "add_members (POST)", auth = KEY_AUTH, op = "members.create",
      args = { account = A, group = G, ids = { M[6] } },
      cfiam = function(c) return c:add_members(A, G, { M[6] }) end },
    { name = "request POST .../members", auth = TOKEN_AUTH, op = "members.create",
      args = { account = A, group = G, ids = { M[6], M[7] } },
      cfiam = function(c)
        return c:request("POST", "/accounts/" .. A .. "/iam/user_groups/" .. G .. "/members",
          { ids = { M[6], M[7] }, decode = "members" })
      end },
    { name = "request DELETE .../members/{id}", auth = KEY_AUTH, op = "members.delete",
      args = { account = A, group = G, member = M[1] },
      cfiam = function(c)
        return c:request("DELETE", "/accounts/" .. A .. "/iam/user_groups/" .. G
          .. "/members/" .. M[1])
      end },
    { name = "remove_members", auth = TOKEN_AUTH, op = "members.delete",
      args = { account = A, group = G, member = M[1] },
      cfiam = function(c) return c:remove_members(A, G, { M[1] }) end,
      differs = "deliberate: remove_members first reads the group (GET"
        .. " .../user_groups/{id}), so that a missing group is not_found rather"
        .. " than every id being reported as not a member; the DELETE is the SDK's",
      check = function(s, ours)
        assert.are.equal(2, #ours)
        assert.are.equal("GET", ours[1].method)
        assert.are.equal("/client/v4/accounts/" .. A .. "/iam/user_groups/" .. G, ours[1].path)
        assert_same_sequence(s, { ours[2] })
      end },
    { name = "list_members, filtered, several pages", auth = KEY_AUTH, op = "members.list",
      args = { account = A, group = G,
        query = { page = 1, per_page = 2, fuzzyEmail = "example", direction = "desc" } },
      cfiam = function(c)
        return c:list_members(A, G, { per_page = 2, fuzzy_email = "example", direction = "desc" })
      end, items = true, differs = SHORT_PAGE, check = but_last_page },
    { name = "list_members, filter that needs encoding", auth = TOKEN_AUTH,
      op = "members.list",
      args = { account = A, group = G, query = { page = 1, per_page = 500, fuzzyEmail = "user0001+x@example.com" } },
      cfiam = function(c)
        return c:list_members(A, G, { fuzzy_email = "user0001+x@example.com" })
      end, items = true },
    { name = "list_members, unfiltered", auth = TOKEN_AUTH, op = "members.list",
      args = { account = A, group = G, query = { page = 1, per_page = 2 } },
      cfiam = function(c) return c:list_members(A, G, { per_page = 2 }) end, items = true,
      differs = SHORT_PAGE,
      check = function(s, ours)
        assert.are.equal("3", parse_query(s[#s].query).page)
        but_last_page(s, ours)
      end },
    { name = "list_groups, filtered", auth = KEY_AUTH, op = "userGroups.list",
      args = { account = A,
        query = { page = 1, per_page = 1, name = "Alpha", fuzzyName = "Al", direction = "asc" } },
      cfiam = function(c)
        return c:list_groups(A, { per_page = 1, name = "Alpha", fuzzy_name = "Al",
          direction = "asc" })
      end, items = true },
    { name = "find_group", auth = TOKEN_AUTH, op = "userGroups.list",
      args = { account = A, query = { page = 1, per_page = 500, name = "Beta & Co/ü+1" } },
      cfiam = function(c)
        local g, err = c:find_group(A, "Beta & Co/ü+1")
        return g and { g }, err
      end, items = true, differs = SHORT_PAGE, check = but_last_page },
    { name = "resolve_members (account members, 50 a page)", auth = KEY_AUTH,
      op = "accounts.members.list", args = { account = A, query = { page = 1, per_page = 50 } },
      cfiam = function(c) return c:resolve_members(A, { ids.emails[2] }) end,
      differs = SHORT_PAGE,
      check = function(s, ours, res)
        assert.are.equal(2, #s)
        but_last_page(s, ours)
        assert.are.equal(M[2], res[ids.emails[2]].id)
      end },
    { name = "sync_members: its addition", auth = TOKEN_AUTH, op = "members.create",
      args = { account = A, group = G, ids = { M[6] } },
      cfiam = function(c) return c:sync_members(A, G, { M[1], M[2], M[6] }) end,
      differs = "not a difference: sync_members has no SDK counterpart; it reads"
        .. " (compared in the listing cases) and then writes the difference: its"
        .. " POST must be the SDK's create with the added members, then a DELETE"
        .. " per removal (the next case)",
      check = function(s, ours, res)
        assert.is_table(res)
        assert.are.equal("DELETE", ours[#ours].method)
        for i = 1, #ours - 2 do assert.are.equal("GET", ours[i].method) end
        assert_same_sequence(s, { ours[#ours - 1] })
      end },
    { name = "sync_members: its removal", auth = TOKEN_AUTH, op = "members.delete",
      args = { account = A, group = G, member = M[3] },
      cfiam = function(c) return c:sync_members(A, G, { M[1], M[2], M[6] }) end,
      differs = "not a difference: the DELETE that ends the sync above must be the"
        .. " SDK's delete of the removed member",
      check = function(s, ours, res)
        assert.is_table(res)
        assert_same_sequence(s, { ours[#ours] })
      end },
    { name = "sync_members (strategy replace): its write", auth = TOKEN_AUTH,
      op = "members.update", args = { account = A, group = G, ids = { M[1], M[2], M[6] } },
      cfiam = function(c)
        return c:sync_members(A, G, { M[1], M[2], M[6] }, { strategy = "replace" })
      end,
      differs = "not a difference: sync_members has no SDK counterpart; it reads"
        .. " (compared in the listing cases) and then writes, and its write must"
        .. " be the SDK's update with the kept members then the added ones",
      check = function(s, ours, res)
        assert.is_table(res)
        local put = ours[#ours]
        for i = 1, #ours - 1 do assert.are.equal("GET", ours[i].method) end
        assert_same_sequence(s, { put })
      end },
    { name = "get_group", auth = TOKEN_AUTH, op = "userGroups.get",
      args = { account = A, group = G },
      cfiam = function(c) return c:get_group(A, G) end },
    { name = "create_group", auth = KEY_AUTH, op = "userGroups.create",
      args = { account = A, body = { name = "Gamma / ü \"q\"", policies = { POLICY } } },
      cfiam = function(c) return c:create_group(A, { name = "Gamma / ü \"q\"", policies = { POLICY } }) end,
      differs = "deliberate: create_group first lists the groups by that exact name"
        .. " (a name that exists is kind conflict, no POST); the POST is the SDK's",
      check = function(s, ours, res)
        assert.is_table(res)
        assert.are.equal(1, #s)
        assert.are.equal("GET", ours[1].method)
        assert_same_sequence(s, { ours[#ours] })
      end },
    { name = "update_group, a rename", auth = TOKEN_AUTH, op = "userGroups.update",
      args = { account = A, group = G, body = { name = "Alpha Two" } },
      cfiam = function(c) return c:update_group(A, G, { name = "Alpha Two" }) end,
      differs = "deliberate: a rename first lists the groups by the new name"
        .. " (another group with it is kind conflict, no PUT); the PUT is the SDK's",
      check = function(s, ours, res)
        assert.is_table(res)
        assert.are.equal("GET", ours[1].method)
        assert_same_sequence(s, { ours[#ours] })
      end },
    { name = "update_group, policies only", auth = KEY_AUTH, op = "userGroups.update",
      args = { account = A, group = G, body = { policies = { POLICY_WITH_ID } } },
      cfiam = function(c) return c:update_group(A, G, { policies = { POLICY_WITH_ID } }) end },
    { name = "delete_group, force", auth = TOKEN_AUTH, op = "userGroups.delete",
      args = { account = A, group = G },
      cfiam = function(c)
        local ok, err = c:delete_group(A, G, { force = true })
        assert.is_true(ok, tostring(err))
        return { deleted = ok }, err
      end },
    { name = "delete_group of a group with members", auth = TOKEN_AUTH, op = "userGroups.delete",
      args = { account = A, group = G },
      cfiam = function(c) return c:delete_group(A, G) end,
      differs = "deliberate: without force cfiam reads the member count first"
        .. " (per_page 1) and refuses a group that has members; the SDK deletes it",
      check = function(s, ours, res, err)
        assert.are.equal(1, #s)
        assert.are.equal("DELETE", s[1].method)
        assert.is_nil(res)
        assert.are.equal("guard", err.kind)
        assert.are.equal(1, #ours)
        assert.are.equal("GET", ours[1].method)
      end },
  }

  setup(function()
    local prefix = prism.install()
    emu = emulator.start{ seed = seed }
    local cases = {}
    for i, c in ipairs(CASES) do
      cases[i] = { name = c.name, auth = c.auth, op = c.op, args = c.args }
    end
    local input = os.tmpname()
    local f = assert(io.open(input, "wb"))
    f:write(cjson.encode({ prefix = prefix, base_url = emu.base_url,
      admin_url = emu.admin_url, seed = seed, cases = cases }))
    f:close()
    -- No CLOUDFLARE_* variable may reach the SDK (it would add credentials).
    local p = assert(io.popen("env -u CLOUDFLARE_API_TOKEN -u CLOUDFLARE_API_KEY"
      .. " -u CLOUDFLARE_EMAIL -u CLOUDFLARE_API_USER_SERVICE_KEY -u CLOUDFLARE_BASE_URL"
      .. " -u CLOUDFLARE_CUSTOM_HEADERS node spec/helpers/sdk_parity.js "
      .. prism.shquote(input), "r"))
    local out = p:read("*a")
    p:close()
    os.remove(input)
    local ok, doc = pcall(cjson.decode, out)
    assert(ok and type(doc) == "table", "sdk_parity.js failed: " .. tostring(out))
    sdk = doc
  end)
  teardown(function()
    if emu then emu:stop() end
  end)

  it("ran the pinned SDK version", function()
    assert.are.equal(prism.SDK_VERSION, sdk.version)
  end)

  for _, case in ipairs(CASES) do
    it(case.name, function()
      local s = sdk.cases[case.name]
      assert.is_table(s, "no SDK result")
      assert.is_true(#s.requests > 0, "the SDK sent nothing")
      emu:reset(seed)
      emu:clear_requests()
      local c = cfiam.new{ api_token = case.auth.token, api_email = case.auth.email,
        api_key = case.auth.key, base_url = emu.base_url, max_retries = 0, timeout = 10 }
      local res, err = case.cfiam(c)
      local ours = emu:requests()
      if case.check then
        case.check(s.requests, ours, res, err)
      else
        assert.is_true(s.ok, "SDK: " .. cjson.encode(s.error or {}))
        assert.is_table(res, tostring(err))
        assert_same_sequence(s.requests, ours)
      end
      if case.items then
        assert.is_true(s.ok)
        assert.are.same(s.items, ids_of(res))
      end
    end)
  end
end)
