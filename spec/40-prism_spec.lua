-- spec/40-prism_spec.lua: every call cfiam makes, sent through the real C
-- module to Prism (@stainless-api/prism-cli 5.15.0, the mock server the
-- official SDKs test against) serving Cloudflare's own OpenAPI description
-- (spec/fixtures/cloudflare-iam-user-groups.openapi.json, unchanged).
--
-- "Accepted" means Prism answered 2xx and sent no `sl-violations` header.
-- cfiam does not expose response headers, so Prism runs behind a recording
-- proxy (spec/helpers/prism_proxy.js) and each exchange is read from its
-- log: the header itself is checked, not a proxy for it. (Running Prism
-- with --errors would not do: that flag only turns *response* violations
-- into errors; request warnings still come back 2xx with the header.)
--
-- Prism's list examples never run out of pages (one item, per_page 20,
-- total_count 2000 on every page). Listings are therefore checked two ways:
-- against Prism as it is (pages of 1 capped by max_pages, or a short page
-- that disagrees with total_count, ending in `incomplete`), and, to let
-- plan/sync/resolve/find reach their end, with
-- the proxy's finite mode (X-Conformance-Finite-Lists: 1), which trims
-- Prism's list answer to one page after Prism has judged the request.
local cfiam = require("cfiam")
local prism = require("helpers.prism")
local socket = require("socket")

local ipairs, pairs, tostring = ipairs, pairs, tostring

local EMAIL = "user@example.com"
local KEY = "144c9defac04969c7bfad8efaa8ea194"
local ACCOUNT = "01a7362d577a6c3019a474fd6f485823"
local GROUP = "023e105f4ecef8ad9ca31a8372d0c353"
-- The ids in the document's examples: a group member, an account member.
local M_GROUP = "4f5f0c14a2a41d5063dd301b2f829f04"
local M_ACCOUNT = "4536bcfad5faccb111b47003c79917fa"
local MEMBERS_PATH = "/accounts/" .. ACCOUNT .. "/iam/user_groups/" .. GROUP .. "/members"

describe("Prism (Cloudflare's OpenAPI description)", function()
  local p, pt -- Prism on the document as published; on the copy with api_token

  setup(function()
    p, pt = prism.start_all{ prism.SPEC, prism.token_spec() }
  end)
  teardown(function()
    if p then p:stop() end
    if pt then pt:stop() end
  end)

  local function client(opts)
    local o = { api_email = EMAIL, api_key = KEY, base_url = p.base_url,
      timeout = 10, connect_timeout = 5, max_retries = 0 }
    for k, v in pairs(opts or {}) do
      if v == false then o[k] = nil else o[k] = v end
    end
    return cfiam.new(o)
  end
  local function finite_client(opts)
    opts = opts or {}
    opts.headers = { ["X-Conformance-Finite-Lists"] = "1" }
    return client(opts)
  end

  -- Runs f with an empty log and returns the exchanges it caused.
  local function exchanges_of(server, f)
    server:clear()
    f()
    return server:exchanges()
  end

  local function describe_ex(e)
    return ("%s %s -> %s %s"):format(e.method, e.url, tostring(e.status),
      tostring(e.violations or ""))
  end

  -- Prism accepted every exchange: 2xx and no sl-violations header.
  local function assert_accepted(list, n)
    if n then assert.are.equal(n, #list, "number of requests") end
    assert.is_true(#list > 0, "no request reached Prism")
    for _, e in ipairs(list) do
      assert.is_true(e.status >= 200 and e.status <= 299, describe_ex(e))
      assert.is_nil(e.violations, describe_ex(e))
    end
  end

  local function member_entry(m, id)
    assert.are.equal(id, m.id)
    assert.are.equal(EMAIL, m.email)
    assert.are.equal("accepted", m.status)
  end

  describe("checks that can fail", function()
    -- Without these the acceptance checks below could pass vacuously.
    it("sees Prism's violations on a request outside the document", function()
      local c = client()
      local list = exchanges_of(p, function()
        local r, err = c:request("GET", MEMBERS_PATH, { query = { per_page = 1000 } })
        assert.is_nil(r)
        assert.are.equal("api", err.kind)
        assert.are.equal(422, err.status)
      end)
      assert.are.equal(1, #list)
      assert.are.equal(422, list[1].status)
      assert.matches("per_page must be <= 500", list[1].violations, 1, true)
    end)

    it("sees a body that is not the documented array", function()
      local c = client()
      local list = exchanges_of(p, function()
        local r, err = c:request("PUT", MEMBERS_PATH, { json = '{"id":"' .. M_GROUP .. '"}' })
        assert.is_nil(r)
        assert.are.equal("api", err.kind)
      end)
      assert.matches("must be array", list[1].violations, 1, true)
    end)
  end)

  describe("update_members (PUT .../members)", function()
    it("is accepted and the example answer decodes into member tables", function()
      local c = client()
      local members, err
      local list = exchanges_of(p, function()
        members, err = c:update_members(ACCOUNT, GROUP, { M_GROUP, { id = M_ACCOUNT } })
      end)
      assert.is_nil(err)
      assert_accepted(list, 1)
      local e = list[1]
      assert.are.equal("PUT", e.method)
      assert.are.equal(MEMBERS_PATH, e.url)
      assert.are.equal("application/json", e.req_headers["content-type"])
      assert.are.equal(EMAIL, e.req_headers["x-auth-email"])
      assert.are.equal(KEY, e.req_headers["x-auth-key"])
      assert.are.same({ { id = M_GROUP }, { id = M_ACCOUNT } }, require("cjson").decode(e.req_body))
      assert.are.equal(1, #members)
      member_entry(members[1], M_GROUP)
    end)

    it("sends an empty list with allow_empty, and Prism accepts it", function()
      local c = client()
      local list = exchanges_of(p, function()
        assert.is_table((c:update_members(ACCOUNT, GROUP, {}, { allow_empty = true })))
      end)
      assert_accepted(list, 1)
      assert.are.equal("[]", list[1].req_body)
    end)

    it("is accepted with an API token against the copy that lists api_token", function()
      local c = client{ api_email = false, api_key = false, api_token = "test-token",
        base_url = pt.base_url }
      local list = exchanges_of(pt, function()
        local members, err = c:update_members(ACCOUNT, GROUP, { M_GROUP })
        assert.is_nil(err)
        member_entry(members[1], M_GROUP)
      end)
      assert_accepted(list, 1)
      assert.are.equal("Bearer test-token", list[1].req_headers.authorization)
      assert.is_nil(list[1].req_headers["x-auth-key"])
    end)
  end)

  describe("client:request", function()
    it("POST .../members (add) is accepted and decodes", function()
      local c = client()
      local list = exchanges_of(p, function()
        local members, meta = c:request("POST", MEMBERS_PATH,
          { ids = { M_GROUP }, decode = "members" })
        assert.is_table(members, tostring(meta))
        assert.are.equal(200, meta.status)
        member_entry(members[1], M_GROUP)
      end)
      assert_accepted(list, 1)
      assert.are.equal("POST", list[1].method)
      assert.are.equal('[{"id":"' .. M_GROUP .. '"}]', list[1].req_body)
    end)

    it("DELETE .../members/{id} is accepted, without a body or Content-Type", function()
      local c = client()
      local list = exchanges_of(p, function()
        local m, meta = c:request("DELETE", MEMBERS_PATH .. "/" .. M_GROUP)
        assert.is_table(m, tostring(meta))
        member_entry(m, M_GROUP)
      end)
      assert_accepted(list, 1)
      assert.is_nil(list[1].req_body)
      assert.is_nil(list[1].req_headers["content-type"])
    end)

    it("GET a group decodes into the documented group table", function()
      local c = client()
      local list = exchanges_of(p, function()
        local g, meta = c:request("GET", "/accounts/" .. ACCOUNT .. "/iam/user_groups/" .. GROUP)
        assert.is_table(g, tostring(meta))
        assert.are.equal(GROUP, g.id)
        assert.are.equal("My New User Group", g.name)
        assert.is_string(g.created_on)
        assert.is_string(g.modified_on)
        assert.are.equal("allow", g.policies[1].access)
        assert.is_string(g.policies[1].permission_groups[1].id)
        assert.is_string(g.policies[1].resource_groups[1].scope.key)
      end)
      assert_accepted(list, 1)
    end)

    it("a listing page decodes with result_info in meta", function()
      local c = client()
      local list = exchanges_of(p, function()
        local r, meta = c:request("GET", MEMBERS_PATH, { decode = "members",
          query = { page = 1, per_page = 500, fuzzyEmail = "user", direction = "desc" } })
        assert.is_table(r)
        member_entry(r[1], M_GROUP)
        assert.are.equal(200, meta.status)
        assert.are.equal(2000, meta.result_info.total_count)
        assert.are.equal(1, meta.result_info.count)
      end)
      assert_accepted(list, 1)
    end)
  end)

  describe("Prism's rejections map to err.kind", function()
    local cases = {
      { code = 400, kind = "api" }, { code = 401, kind = "auth" },
      { code = 403, kind = "permission" }, { code = 404, kind = "not_found" },
      { code = 422, kind = "api" }, { code = 429, kind = "rate_limited" },
    }
    for _, case in ipairs(cases) do
      it("Prefer: code=" .. case.code .. " -> " .. case.kind, function()
        local c = client{ headers = { Prefer = "code=" .. case.code } }
        local list = exchanges_of(p, function()
          local r, err = c:update_members(ACCOUNT, GROUP, { M_GROUP })
          assert.is_nil(r)
          assert.are.equal(case.kind, err.kind)
          assert.are.equal(case.code, err.status)
        end)
        assert.are.equal(1, #list) -- max_retries = 0: one attempt
        assert.are.equal(case.code, list[1].status)
        assert.are.equal("code=" .. case.code, list[1].req_headers.prefer)
      end)
    end

    it("a forced 404 on DELETE is not_found", function()
      local c = client{ headers = { Prefer = "code=404" } }
      local r, err = c:request("DELETE", MEMBERS_PATH .. "/" .. M_GROUP)
      assert.is_nil(r)
      assert.are.equal("not_found", err.kind)
    end)

    it("a bearer token alone against the published document is auth (401)", function()
      local c = client{ api_email = false, api_key = false, api_token = "test-token" }
      local list = exchanges_of(p, function()
        local r, err = c:update_members(ACCOUNT, GROUP, { M_GROUP })
        assert.is_nil(r)
        assert.are.equal("auth", err.kind)
        assert.are.equal(401, err.status)
      end)
      assert.matches("Invalid security scheme", list[1].violations, 1, true)
    end)
  end)

  describe("Lua helpers", function()
    it("add_members (POST) is accepted and decodes", function()
      local c = client()
      local list = exchanges_of(p, function()
        local members, err = c:add_members(ACCOUNT, GROUP, { M_GROUP })
        assert.is_nil(err)
        member_entry(members[1], M_GROUP)
      end)
      assert_accepted(list, 1)
      assert.are.equal("POST", list[1].method)
    end)

    it("remove_members (GET group, DELETE member) is accepted", function()
      local c = client()
      local list = exchanges_of(p, function()
        local res, err = c:remove_members(ACCOUNT, GROUP, { M_GROUP })
        assert.is_nil(err)
        assert.are.same({ M_GROUP }, res.removed)
      end)
      assert_accepted(list, 2)
      assert.are.equal("GET", list[1].method)
      assert.are.equal("DELETE", list[2].method)
      assert.are.equal(MEMBERS_PATH .. "/" .. M_GROUP, list[2].url)
    end)

    it("list_members pages with filters, capped by max_pages", function()
      local c = client()
      local list = exchanges_of(p, function()
        local r, err = c:list_members(ACCOUNT, GROUP,
          { per_page = 1, max_pages = 3, fuzzy_email = "user", direction = "desc" })
        assert.is_nil(r)
        assert.are.equal("incomplete", err.kind)
      end)
      assert_accepted(list, 3)
      for i, e in ipairs(list) do
        assert.are.equal(MEMBERS_PATH, prism.path_of(e.url))
        assert.are.same({ page = tostring(i), per_page = "1", fuzzyEmail = "user",
          direction = "desc" }, prism.parse_query(e.url))
      end
    end)

    it("list_members without max_pages ends in bounded time with incomplete", function()
      local c = client()
      local t0 = socket.gettime()
      local r, err
      local list = exchanges_of(p, function()
        r, err = c:list_members(ACCOUNT, GROUP)
      end)
      assert.is_nil(r)
      assert.are.equal("incomplete", err.kind)
      assert.are.equal(2000, err.total_count)
      -- The first page (1 of the 20 Prism says a page holds) is the last,
      -- and disagrees with total_count.
      assert.are.equal(1, #list)
      assert_accepted(list)
      assert.is_true(socket.gettime() - t0 < 30)
    end)

    it("list_members reaches the end of a finite listing and decodes", function()
      local c = finite_client()
      local members, err
      local list = exchanges_of(p, function()
        members, err = c:list_members(ACCOUNT, GROUP)
      end)
      assert.is_nil(err)
      assert.are.equal(1, #members)
      member_entry(members[1], M_GROUP)
      assert_accepted(list)
    end)

    it("list_groups pages with filters and decodes the documented groups", function()
      local c = client()
      local list = exchanges_of(p, function()
        local r, err = c:list_groups(ACCOUNT, { name = "My New User Group",
          fuzzy_name = "New", direction = "asc", per_page = 1, max_pages = 2 })
        assert.is_nil(r)
        assert.are.equal("incomplete", err.kind)
      end)
      assert_accepted(list, 2)
      assert.are.same({ page = "2", per_page = "1", name = "My New User Group",
        fuzzyName = "New", direction = "asc" }, prism.parse_query(list[2].url))

      local groups, err = finite_client():list_groups(ACCOUNT)
      assert.is_nil(err)
      assert.are.equal(1, #groups)
      assert.are.equal(GROUP, groups[1].id)
      assert.are.equal("My New User Group", groups[1].name)
      assert.is_string(groups[1].created_on)
    end)

    it("find_group sends name= and finds the example group", function()
      local c = finite_client()
      local g, err
      local list = exchanges_of(p, function()
        g, err = c:find_group(ACCOUNT, "My New User Group")
      end)
      assert.is_nil(err)
      assert.are.equal(GROUP, g.id)
      assert_accepted(list)
      assert.are.equal("My New User Group", prism.parse_query(list[1].url).name)
      local none, nerr = c:find_group(ACCOUNT, "No Such Group")
      assert.is_nil(none)
      assert.are.equal("not_found", nerr.kind)
    end)

    it("resolve_members lists account members (per_page 50) and decodes", function()
      local c = finite_client()
      local map, err
      local list = exchanges_of(p, function()
        map, err = c:resolve_members(ACCOUNT, { "USER@example.com" })
      end)
      assert.is_nil(err)
      assert.are.equal(M_ACCOUNT, map["USER@example.com"].id)
      assert.are.equal("accepted", map["USER@example.com"].status)
      assert_accepted(list)
      assert.are.equal("/accounts/" .. ACCOUNT .. "/members", prism.path_of(list[1].url))
      assert.are.equal("50", prism.parse_query(list[1].url).per_page)
    end)

    it("resolve_members against the endless listing ends with incomplete", function()
      local c = client()
      local t0 = socket.gettime()
      local map, err
      local list = exchanges_of(p, function()
        map, err = c:resolve_members(ACCOUNT, { EMAIL })
      end)
      assert.is_nil(map)
      assert.are.equal("incomplete", err.kind)
      assert.are.equal(1, #list) -- a short page that disagrees with total_count
      assert_accepted(list)
      assert.is_true(socket.gettime() - t0 < 30)
    end)

    it("plan_members reads group and account, writes nothing", function()
      local c = finite_client()
      local plan, err
      local list = exchanges_of(p, function()
        plan, err = c:plan_members(ACCOUNT, GROUP, { M_GROUP, M_ACCOUNT })
      end)
      assert.is_nil(err)
      assert.are.equal(M_GROUP, plan.keep[1].id)
      assert.are.equal(M_ACCOUNT, plan.add[1].id)
      assert.are.equal(0, #plan.remove)
      assert_accepted(list)
      for _, e in ipairs(list) do assert.are.equal("GET", e.method) end
    end)

    it("sync_members: every read, the POST and the DELETE are accepted", function()
      local c = finite_client()
      local plan, err
      local list = exchanges_of(p, function()
        plan, err = c:sync_members(ACCOUNT, GROUP, { EMAIL })
      end)
      assert.is_nil(err)
      assert.are.equal(M_ACCOUNT, plan.add[1].id)
      assert.are.equal(M_GROUP, plan.remove[1].id)
      assert_accepted(list)
      local post, delete = list[#list - 1], list[#list]
      assert.are.equal("POST", post.method)
      assert.are.equal(MEMBERS_PATH, post.url)
      assert.are.same({ { id = M_ACCOUNT } }, require("cjson").decode(post.req_body))
      assert.are.equal("DELETE", delete.method)
      assert.are.equal(MEMBERS_PATH .. "/" .. M_GROUP, delete.url)
      for i = 1, #list - 2 do assert.are.equal("GET", list[i].method) end
    end)

    it("sync_members (strategy replace): every read and the PUT are accepted", function()
      local c = finite_client()
      local plan, err
      local list = exchanges_of(p, function()
        plan, err = c:sync_members(ACCOUNT, GROUP, { M_GROUP, EMAIL }, { strategy = "replace" })
      end)
      assert.is_nil(err)
      assert.are.equal(M_GROUP, plan.keep[1].id)
      assert.are.equal(M_ACCOUNT, plan.add[1].id)
      assert_accepted(list)
      local put = list[#list]
      assert.are.equal("PUT", put.method)
      assert.are.equal(MEMBERS_PATH, put.url)
      assert.are.same({ { id = M_GROUP }, { id = M_ACCOUNT } },
        require("cjson").decode(put.req_body))
      for i = 1, #list - 1 do assert.are.equal("GET", list[i].method) end
    end)

    it("sync_members with a capped, endless listing writes nothing", function()
      local c = client()
      local list = exchanges_of(p, function()
        local plan, err = c:sync_members(ACCOUNT, GROUP, { M_GROUP }, { max_pages = 2 })
        assert.is_nil(plan)
        assert.are.equal("incomplete", err.kind)
      end)
      assert_accepted(list, 1)
      for _, e in ipairs(list) do assert.are.equal("GET", e.method) end
    end)
  end)
  describe("the group lifecycle", function()
    local PG, RG = "c8fed203ed3043cba015a93ad1616f1f", "6d7f2f5f5b1d4a0e9081fdc98d432fd1"
    local GROUP_PATH = "/accounts/" .. ACCOUNT .. "/iam/user_groups/" .. GROUP

    it("get_group (by id and by name) is accepted and decodes", function()
      local c = finite_client()
      local g, err
      local list = exchanges_of(p, function()
        g, err = c:get_group(ACCOUNT, GROUP)
      end)
      assert.is_nil(err)
      assert_accepted(list, 1)
      assert.are.equal("GET", list[1].method)
      assert.are.equal(GROUP_PATH, list[1].url)
      assert.are.equal(GROUP, g.id)
      assert.are.equal("My New User Group", g.name)
      list = exchanges_of(p, function()
        g, err = c:get_group(ACCOUNT, { name = "My New User Group" })
      end)
      assert.is_nil(err)
      assert.are.equal(GROUP, g.id)
      assert_accepted(list)
      assert.are.equal(GROUP_PATH, list[#list].url)
    end)

    it("create_group: the name check and the POST are accepted", function()
      local c = finite_client()
      local g, err
      local list = exchanges_of(p, function()
        g, err = c:create_group(ACCOUNT, { name = "Team Blue", policies = { { access = "allow",
          permission_groups = { { id = PG } }, resource_groups = { { id = RG } } } } })
      end)
      assert.is_nil(err)
      assert.is_string(g.id)
      assert_accepted(list)
      local post = list[#list]
      assert.are.equal("POST", post.method)
      assert.are.equal("/accounts/" .. ACCOUNT .. "/iam/user_groups", post.url)
      assert.are.equal("application/json", post.req_headers["content-type"])
      assert.are.same({ name = "Team Blue", policies = { { access = "allow",
        permission_groups = { { id = PG } }, resource_groups = { { id = RG } } } } },
        require("cjson").decode(post.req_body))
      for i = 1, #list - 1 do assert.are.equal("GET", list[i].method) end
    end)

    it("create_group of the example's name is a conflict: only the GET reaches Prism", function()
      local c = finite_client()
      local list = exchanges_of(p, function()
        local g, err = c:create_group(ACCOUNT, { name = "My New User Group" })
        assert.is_nil(g)
        assert.are.equal("conflict", err.kind)
      end)
      assert_accepted(list)
      for _, e in ipairs(list) do assert.are.equal("GET", e.method) end
    end)

    it("update_group: a rename, and policies read back from get_group, are accepted",
      function()
      local c = finite_client()
      local g = assert(c:get_group(ACCOUNT, GROUP))
      local res, err
      local list = exchanges_of(p, function()
        res, err = c:update_group(ACCOUNT, GROUP, { name = "Renamed" })
      end)
      assert.is_nil(err)
      assert.are.equal(GROUP, res.id)
      assert_accepted(list)
      assert.are.equal("PUT", list[#list].method)
      assert.are.equal(GROUP_PATH, list[#list].url)
      assert.are.equal('{"name":"Renamed"}', list[#list].req_body)
      assert.is_true(#g.policies > 0)
      list = exchanges_of(p, function()
        res, err = c:update_group(ACCOUNT, GROUP, { policies = g.policies })
      end)
      assert.is_nil(err)
      assert.are.equal(GROUP, res.id)
      assert_accepted(list, 1)
      assert.are.same({ policies = g.policies }, require("cjson").decode(list[1].req_body))
    end)

    it("delete_group: the member count, and the DELETE with force, are accepted", function()
      local c = client()
      local list = exchanges_of(p, function()
        local ok, err = c:delete_group(ACCOUNT, GROUP)
        assert.is_nil(ok)
        assert.are.equal("guard", err.kind)
        assert.are.equal(2000, err.members) -- the example's total_count
      end)
      assert_accepted(list, 1)
      assert.are.equal(MEMBERS_PATH .. "?page=1&per_page=1", list[1].url)
      list = exchanges_of(p, function()
        local ok, err = c:delete_group(ACCOUNT, GROUP, { force = true })
        assert.is_nil(err)
        assert.is_true(ok)
      end)
      assert_accepted(list, 1)
      assert.are.equal("DELETE", list[1].method)
      assert.are.equal(GROUP_PATH, list[1].url)
      assert.is_nil(list[1].req_headers["content-type"])
    end)
  end)
end)
