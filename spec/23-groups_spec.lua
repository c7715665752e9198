-- spec/23-groups_spec.lua: list_groups (paged, filters on the wire),
-- find_group (exactly one match, or not_found), get/create/update/delete_group
-- (every refusal sends nothing), groups by name in the members helpers, and
-- err.reason for the SCIM and DSR refusals (emulator: "scim" groups, the
-- "dsr" fault rule).
local emulator = require("helpers.emulator")
local H = require("helpers.cli")

describe("list_groups / find_group", function()
  local emu, ids, c

  setup(function()
    local groups = {}
    for i = 1, 1203 do groups[i] = { name = ("Team %04d"):format(i), members = 0 } end
    groups[#groups + 1] = { name = "Ops", members = 2 }
    groups[#groups + 1] = { name = "ops-oncall", members = 0 }
    local seed
    seed, ids = emulator.seed{ members = 5, groups = groups }
    emu = emulator.start{ seed = seed }
  end)

  teardown(function()
    if emu then emu:stop() end
  end)

  before_each(function()
    emu:reset()
    c = H.client(emu)
  end)

  after_each(function()
    if c then c:close() end
  end)

  local GROUPS = "/iam/user_groups$"

  it("lists every group across pages", function()
    local groups, err = c:list_groups(ids.account)
    assert.is_nil(err)
    assert.are.equal(1205, #groups)
    local names = {}
    for _, g in ipairs(groups) do names[g.name] = g.id end
    assert.are.equal(ids.groups["Team 0777"].id, names["Team 0777"])
    assert.are.equal(ids.groups.Ops.id, names.Ops)
    local reqs = H.requests(emu, "GET", GROUPS)
    assert.are.equal(3, #reqs) -- 500 + 500 + 205 = total_count
    assert.are.equal("500", H.query(reqs[1].query).per_page)
  end)

  it("passes name, fuzzy_name (as fuzzyName) and direction through", function()
    local groups, err = c:list_groups(ids.account, { fuzzy_name = "OPS", direction = "desc" })
    assert.is_nil(err)
    assert.are.equal(2, #groups)
    assert.are.equal("ops-oncall", groups[1].name)
    local q = H.query(H.requests(emu, "GET", GROUPS)[1].query)
    assert.are.equal("OPS", q.fuzzyName)
    assert.are.equal("desc", q.direction)
    emu:clear_requests()
    groups, err = c:list_groups(ids.account, { name = "Ops" })
    assert.is_nil(err)
    assert.are.equal(1, #groups)
    assert.are.equal("Ops", H.query(emu:requests()[1].query).name)
  end)

  it("a direction other than asc or desc is invalid_argument, as for members, nothing sent", function()
    emu:clear_requests()
    local groups, err = c:list_groups(ids.account, { direction = "up" })
    assert.is_nil(groups)
    assert.are.equal("invalid_argument", err.kind)
    assert.are.equal('direction: expected \'asc\' or \'desc\', got "up"', err.message)
    local _, merr = c:list_members(ids.account, ids.groups.Ops.id, { direction = "up" })
    assert.are.equal(err.message, merr.message)
    assert.are.equal(0, #emu:requests())
  end)

  it("ends with incomplete when max_pages cuts the listing", function()
    local groups, err = c:list_groups(ids.account, { per_page = 100, max_pages = 3 })
    assert.is_nil(groups)
    assert.are.equal("incomplete", err.kind)
    assert.are.equal(300, err.count)
  end)

  it("find_group returns the one group with exactly that name", function()
    local g, err = c:find_group(ids.account, "Ops")
    assert.is_nil(err)
    assert.are.equal(ids.groups.Ops.id, g.id)
    assert.are.equal("Ops", g.name)
    assert.are.equal("Ops", H.query(emu:requests()[1].query).name)
  end)

  it("find_group returns not_found for no exact match (case matters)", function()
    local g, err = c:find_group(ids.account, "ops")
    assert.is_nil(g)
    assert.are.equal("not_found", err.kind)
    assert.matches('"ops"', err.message, 1, true)
    g, err = c:find_group(ids.account, "")
    assert.is_nil(g)
    assert.are.equal("invalid_argument", err.kind)
  end)

  it("find_group refuses a name that several groups carry", function()
    local body = H.page_body({}, { count = 2, page = 1, per_page = 500, total_count = 2 })
      :gsub('"result":%[%]', '"result":[{"id":"' .. string.rep("1", 32) .. '","name":"Dup"},'
        .. '{"id":"' .. string.rep("2", 32) .. '","name":"Dup"}]')
    emu:fault{ path = GROUPS, times = 1, body = body }
    local g, err = c:find_group(ids.account, "Dup")
    assert.is_nil(g)
    assert.are.equal("invalid_argument", err.kind)
    assert.are.equal(2, #err.groups)
  end)

  it("returns the API's error and raises on wrong types", function()
    local groups, err = c:list_groups(string.rep("d", 32))
    assert.is_nil(groups)
    assert.are.equal("not_found", err.kind)
    assert.has_error(function() c:list_groups(ids.account, { nam = "x" }) end)
    assert.has_error(function() c:find_group(ids.account) end)
  end)
end)

describe("get_group / create_group / update_group / delete_group", function()
  local emu, ids, c, A, seed
  local PG, RG, PID = ("5"):rep(32), ("6"):rep(32), ("7"):rep(32)

  -- A policy as the API returns it, with a field cfiam does not know.
  local function policy()
    return { id = PID, access = "allow", future_field = "kept",
      permission_groups = { { id = PG, name = "Administrator", meta = { key = "k", value = "v" } } },
      resource_groups = { { id = RG, scope = { key = "com.cloudflare.api.account.x",
        objects = { { key = "*" } } } } } }
  end

  setup(function()
    seed, ids = emulator.seed{ members = 5, groups = {
      { name = "Ops", members = 2 }, { name = "Empty", members = 0 },
      { name = "Directory", members = 1, offset = 4 } } }
    A = ids.account
    local groups = seed.accounts[A].groups
    groups[1].policies = { policy() }
    groups[3].scim = true
    emu = emulator.start{ seed = seed }
  end)

  teardown(function()
    if emu then emu:stop() end
  end)

  before_each(function()
    emu:reset()
    c = H.client(emu)
  end)

  after_each(function()
    if c then c:close() end
  end)

  local function state_group(id)
    for _, g in ipairs(emu:state().accounts[A].groups) do
      if g.id == id then return g end
    end
  end

  local function assert_nothing_written()
    assert.are.same({}, H.writes(emu))
  end

  describe("get_group", function()
    it("returns the group as the API sent it, unknown fields included", function()
      local g, err = c:get_group(A, ids.groups.Ops.id)
      assert.is_nil(err)
      assert.are.equal(ids.groups.Ops.id, g.id)
      assert.are.equal("Ops", g.name)
      assert.is_string(g.created_on)
      assert.is_string(g.modified_on)
      assert.are.same({ policy() }, g.policies)
      local reqs = emu:requests()
      assert.are.equal(1, #reqs)
      assert.are.equal("/client/v4/accounts/" .. A .. "/iam/user_groups/" .. ids.groups.Ops.id,
        reqs[1].path)
    end)

    it("takes { name = } (a listing by exact name, then the GET)", function()
      local g, err = c:get_group(A, { name = "Ops" })
      assert.is_nil(err)
      assert.are.equal(ids.groups.Ops.id, g.id)
      local reqs = emu:requests()
      -- a filtered listing ends on its first, short page; then the GET
      assert.are.equal(2, #reqs)
      assert.are.equal("Ops", H.query(reqs[1].query).name)
      assert.matches("/user_groups/" .. ids.groups.Ops.id .. "$", reqs[2].path)
    end)

    it("not_found for an unknown name or id; invalid_argument for a bad id, nothing sent",
      function()
      local g, err = c:get_group(A, { name = "ops" })
      assert.is_nil(g)
      assert.are.equal("not_found", err.kind)
      g, err = c:get_group(A, ("d"):rep(32))
      assert.is_nil(g)
      assert.are.equal("not_found", err.kind)
      emu:clear_requests()
      g, err = c:get_group(A, "nope")
      assert.is_nil(g)
      assert.are.equal("invalid_argument", err.kind)
      g, err = c:get_group("x", { name = "Ops" })
      assert.is_nil(g)
      assert.are.equal("invalid_argument", err.kind)
      assert.are.same({}, emu:requests())
    end)

    it("invalid_argument when two groups share the name", function()
      local body = H.page_body({}, { count = 2, page = 1, per_page = 500, total_count = 2 })
        :gsub('"result":%[%]', '"result":[{"id":"' .. string.rep("1", 32) .. '","name":"Dup"},'
          .. '{"id":"' .. string.rep("2", 32) .. '","name":"Dup"}]')
      emu:fault{ path = "/iam/user_groups$", times = 1, body = body }
      local g, err = c:get_group(A, { name = "Dup" })
      assert.is_nil(g)
      assert.are.equal("invalid_argument", err.kind)
      assert.are.equal(2, #err.groups)
    end)

    it("raises on wrong types", function()
      assert.has_error(function() c:get_group(A) end,
        "bad argument to 'get_group' (group: id string or { name = string } expected, got nil)")
      assert.has_error(function() c:get_group(A, { id = "x" }) end)
      assert.has_error(function() c:get_group(A, { name = "Ops", x = 1 }) end)
      assert.has_error(function() c:get_group(nil, "x") end)
    end)
  end)

  describe("create_group", function()
    it("POSTs the name and the policies as given, and returns the new group", function()
      local g, err = c:create_group(A, { name = "Team / ü \"q\"", policies = { policy() } })
      assert.is_nil(err)
      assert.are.equal("Team / ü \"q\"", g.name)
      assert.are.same({ policy() }, g.policies)
      local posts = H.requests(emu, "POST")
      assert.are.equal(1, #posts)
      assert.are.equal('{"name":"Team / ü \\"q\\"","policies":[{"access":"allow",'
        .. '"future_field":"kept","id":"' .. PID .. '","permission_groups":[{"id":"' .. PG
        .. '","meta":{"key":"k","value":"v"},"name":"Administrator"}],"resource_groups":'
        .. '[{"id":"' .. RG .. '","scope":{"key":"com.cloudflare.api.account.x",'
        .. '"objects":[{"key":"*"}]}}]}]}', posts[1].body)
      assert.are.equal("application/json", posts[1].headers["content-type"])
      -- checked first: a listing by exact name
      local gets = H.requests(emu, "GET")
      assert.are.equal(1, #gets)
      assert.are.equal("Team / ü \"q\"", H.query(gets[1].query).name)
      assert.are.equal("Team / ü \"q\"", state_group(g.id).name)
    end)

    it("sends only the name when no policies are given; empty lists stay lists", function()
      local g, err = c:create_group(A, { name = "Bare" })
      assert.is_nil(err)
      assert.are.equal("Bare", g.name)
      assert.are.equal('{"name":"Bare"}', H.requests(emu, "POST")[1].body)
      emu:clear_requests()
      g, err = c:create_group(A, { name = "NoPerms", policies = { { access = "deny",
        permission_groups = {}, resource_groups = {} } } })
      assert.is_nil(err)
      assert.are.equal('{"name":"NoPerms","policies":[{"access":"deny",'
        .. '"permission_groups":[],"resource_groups":[]}]}', H.requests(emu, "POST")[1].body)
      assert.is_table(g)
    end)

    it("refuses a name that exists with kind conflict, sending no POST", function()
      local g, err = c:create_group(A, { name = "Ops" })
      assert.is_nil(g)
      assert.are.equal("conflict", err.kind)
      assert.are.equal(ids.groups.Ops.id, err.group.id)
      assert.matches('"Ops" already exists', err.message, 1, true)
      assert_nothing_written()
    end)

    it("the API's own refusal of a duplicate name is returned as it answers", function()
      -- The name check and the POST are two requests: the emulator, like the
      -- API, refuses a name taken in between.
      local body = H.page_body({}, { count = 0, page = 1, per_page = 500, total_count = 0 })
      emu:fault{ method = "GET", path = "/iam/user_groups$", times = 1, body = body }
      local g, err = c:create_group(A, { name = "Ops" })
      assert.is_nil(g)
      assert.are.equal("api", err.kind)
      assert.are.equal(1005, err.errors[1].code)
      assert.are.equal(3, #emu:state().accounts[A].groups)
    end)

    it("refuses bad values with invalid_argument, sending nothing", function()
      local bad = {
        { name = "" },
        { name = "X", policies = { { access = "maybe", permission_groups = {}, resource_groups = {} } } },
        { name = "X", policies = { { access = "allow", permission_groups = { { id = "short" } },
          resource_groups = {} } } },
        { name = "X", policies = { { access = "allow", permission_groups = {},
          resource_groups = { { id = ("g"):rep(32) } } } } },
        { name = "X", policies = { { access = "allow", permission_groups = {} } } },
        { name = "X", policies = { "allow" } },
        { name = "X", policies = { x = 1 } },
        { name = "X", policies = { { access = "allow", permission_groups = {},
          resource_groups = {}, weight = 0 / 0 } } },
      }
      for i, spec in ipairs(bad) do
        local g, err = c:create_group(A, spec)
        assert.is_nil(g, "case " .. i)
        assert.are.equal("invalid_argument", err.kind, "case " .. i)
      end
      local _, err = c:create_group("x", { name = "X" })
      assert.are.equal("invalid_argument", err.kind)
      assert.are.same({}, emu:requests())
      assert.matches("policies%[1%]%.permission_groups%[1%]%.id", select(2,
        c:create_group(A, bad[3])).message)
    end)

    it("raises on wrong types and unknown fields", function()
      assert.has_error(function() c:create_group(A) end)
      assert.has_error(function() c:create_group(A, {}) end)
      assert.has_error(function() c:create_group(A, { name = 1 }) end)
      assert.has_error(function() c:create_group(A, { name = "X", policy = {} }) end)
      assert.has_error(function() c:create_group(A, { name = "X", policies = "allow" }) end)
    end)
  end)

  describe("update_group", function()
    it("a rename sends only the name and leaves the policies alone", function()
      local g, err = c:update_group(A, ids.groups.Ops.id, { name = "Operations" })
      assert.is_nil(err)
      assert.are.equal("Operations", g.name)
      local puts = H.requests(emu, "PUT")
      assert.are.equal(1, #puts)
      assert.are.equal('{"name":"Operations"}', puts[1].body)
      assert.are.same({ policy() }, state_group(ids.groups.Ops.id).policies)
    end)

    it("takes { name = } for the group", function()
      local g, err = c:update_group(A, { name = "Empty" }, { name = "Vacant" })
      assert.is_nil(err)
      assert.are.equal(ids.groups.Empty.id, g.id)
      assert.are.equal("Vacant", state_group(ids.groups.Empty.id).name)
    end)

    it("carries the server's unknown policy fields over when a read policy is passed back",
      function()
      local g = assert(c:get_group(A, ids.groups.Ops.id))
      g.policies[1].access = "deny"
      emu:clear_requests()
      local res, err = c:update_group(A, g.id, { policies = g.policies })
      assert.is_nil(err)
      assert.are.equal("deny", res.policies[1].access)
      local want = policy()
      want.access = "deny"
      assert.are.same({ want }, state_group(g.id).policies)
      local body = H.json(H.requests(emu, "PUT")[1].body)
      assert.is_nil(body.name)
      assert.are.equal("kept", body.policies[1].future_field)
    end)

    it("policies = {} is refused unless allow_empty (nothing sent), then sent as []", function()
      local g, err = c:update_group(A, ids.groups.Ops.id, { policies = {} })
      assert.is_nil(g)
      assert.are.equal("invalid_argument", err.kind)
      assert.matches("allow_empty", err.message)
      assert.are.same({}, emu:requests())
      g, err = c:update_group(A, ids.groups.Ops.id, { policies = {}, allow_empty = true })
      assert.is_nil(err)
      assert.are.equal('{"policies":[]}', H.requests(emu, "PUT")[1].body)
      assert.are.same({}, state_group(ids.groups.Ops.id).policies)
      assert.is_table(g)
    end)

    it("refuses a new name another group has (conflict, no PUT)", function()
      local g, err = c:update_group(A, ids.groups.Ops.id, { name = "Empty" })
      assert.is_nil(g)
      assert.are.equal("conflict", err.kind)
      assert.are.equal(ids.groups.Empty.id, err.group.id)
      assert_nothing_written()
      -- its own name is no conflict
      g, err = c:update_group(A, ids.groups.Ops.id, { name = "Ops" })
      assert.is_nil(err)
      assert.are.equal("Ops", g.name)
    end)

    it("refuses bad values with invalid_argument, sending nothing", function()
      local pol = policy()
      pol.id = nil -- the update body requires each policy's id
      local bad = { {}, { name = "" }, { policies = { pol } },
        { policies = { { id = PID, access = "allow", permission_groups = { {} },
          resource_groups = {} } } } }
      for i, spec in ipairs(bad) do
        local g, err = c:update_group(A, ids.groups.Ops.id, spec)
        assert.is_nil(g, "case " .. i)
        assert.are.equal("invalid_argument", err.kind, "case " .. i)
      end
      local _, err = c:update_group(A, "nope", { name = "X" })
      assert.are.equal("invalid_argument", err.kind)
      assert.are.same({}, emu:requests())
      assert.has_error(function() c:update_group(A, ids.groups.Ops.id) end)
      assert.has_error(function() c:update_group(A, ids.groups.Ops.id, { nme = "X" }) end)
      assert.has_error(function() c:update_group(A, ids.groups.Ops.id, { allow_empty = 1 }) end)
    end)
  end)

  describe("delete_group", function()
    it("refuses a group that has members (guard, err.members), sending no DELETE", function()
      local ok, err = c:delete_group(A, ids.groups.Ops.id)
      assert.is_nil(ok)
      assert.are.equal("guard", err.kind)
      assert.are.equal(2, err.members)
      assert.matches("force", err.message)
      assert_nothing_written()
      -- one small read: per_page 1, total_count
      local gets = H.requests(emu, "GET")
      assert.are.equal(1, #gets)
      assert.are.equal("1", H.query(gets[1].query).per_page)
      assert.is_table(state_group(ids.groups.Ops.id))
    end)

    it("deletes with force; the group's members go with it", function()
      local ok, err = c:delete_group(A, { name = "Ops" }, { force = true })
      assert.is_nil(err)
      assert.is_true(ok)
      assert.is_nil(state_group(ids.groups.Ops.id))
      assert.are.equal(1, #H.requests(emu, "DELETE"))
      local members
      members, err = c:list_members(A, ids.groups.Ops.id)
      assert.is_nil(members)
      assert.are.equal("not_found", err.kind)
    end)

    it("deletes an empty group without force", function()
      local ok, err = c:delete_group(A, ids.groups.Empty.id)
      assert.is_nil(err)
      assert.is_true(ok)
      assert.is_nil(state_group(ids.groups.Empty.id))
    end)

    it("counts through a listing when the server gives no total_count", function()
      local body = H.page_body({ ids.members[1] }, { count = 1, page = 1, per_page = 1 })
      emu:fault{ method = "GET", path = "/members$", times = 1, body = body }
      local ok, err = c:delete_group(A, ids.groups.Ops.id)
      assert.is_nil(ok)
      assert.are.equal("guard", err.kind)
      assert.are.equal(2, err.members)
      assert_nothing_written()
    end)

    it("refuses when the page lists a member though total_count says 0 (a miscounting server)", function()
      emu:fault{ method = "GET", path = "/members$", total_count = 0, times = -1 }
      local ok, err = c:delete_group(A, ids.groups.Ops.id)
      assert.is_nil(ok)
      assert.are.equal("guard", err.kind)
      assert.are.equal(1, err.members)
      assert_nothing_written()
      assert.is_table(state_group(ids.groups.Ops.id))
    end)

    it("not_found for an unknown group; raises on wrong types", function()
      local ok, err = c:delete_group(A, { name = "Nobody" })
      assert.is_nil(ok)
      assert.are.equal("not_found", err.kind)
      assert.are.same({}, H.writes(emu))
      ok, err = c:delete_group(A, ("d"):rep(32), { force = true })
      assert.is_nil(ok)
      assert.are.equal("not_found", err.kind)
      assert.has_error(function() c:delete_group(A, ids.groups.Ops.id, { force = "yes" }) end)
      assert.has_error(function() c:delete_group(A, ids.groups.Ops.id, { forc = true }) end)
      assert.has_error(function() c:delete_group(A, 42) end)
    end)
  end)

  describe("refusals that only Cloudflare's text explains", function()
    local SCIM = function() return ids.groups.Directory.id end

    it("a SCIM-provisioned group: err.reason = 'scim_managed' on every write", function()
      local checks = {
        function() return c:update_group(A, SCIM(), { name = "Renamed" }) end,
        function() return c:delete_group(A, SCIM(), { force = true }) end,
        function() return c:add_members(A, SCIM(), { ids.member_ids[1] }) end,
        function() return c:remove_members(A, SCIM(), { ids.member_ids[5] }) end,
        function() return c:update_members(A, SCIM(), { ids.member_ids[1] }) end,
        function() return c:sync_members(A, { name = "Directory" }, { ids.member_ids[1] },
          { max_removals = 5 }) end,
      }
      for i, f in ipairs(checks) do
        local res, err = f()
        assert.is_nil(res, "case " .. i)
        assert.are.equal("scim_managed", err.reason, "case " .. i)
        assert.matches("provisioned by SCIM", err.message)
        assert.matches("identity provider", tostring(err))
      end
      local g = state_group(SCIM())
      assert.is_true(g.scim) -- the emulator's dump keeps the seed's flag
      assert.are.equal("Directory", g.name)
      assert.are.same({ ids.member_ids[5] }, g.members)
      -- reads work
      local got, err = c:get_group(A, SCIM())
      assert.is_nil(err)
      assert.are.equal("Directory", got.name)
    end)

    it("a member Cloudflare refuses (DSR): err.reason = 'member_not_eligible'", function()
      emu:fault{ method = "POST", path = "/members$", dsr = true }
      local res, err = c:add_members(A, { name = "Empty" }, { ids.member_ids[3] })
      assert.is_nil(res)
      assert.are.equal("api", err.kind)
      assert.are.equal("member_not_eligible", err.reason)
      assert.matches("do not have DSR enabled", err.errors[1].message)
      assert.matches(ids.member_ids[3], err.errors[1].message)
      assert.are.same({}, state_group(ids.groups.Empty.id).members)
      emu:fault{ method = "PUT", path = "/members$", dsr = true }
      res, err = c:update_members(A, ids.groups.Empty.id, { ids.member_ids[3] })
      assert.is_nil(res)
      assert.are.equal("member_not_eligible", err.reason)
      assert.are.same({}, state_group(ids.groups.Empty.id).members)
    end)

    it("other errors get no reason", function()
      local res, err = c:update_group(A, ("d"):rep(32), { name = "X" })
      assert.is_nil(res)
      assert.are.equal("not_found", err.kind)
      assert.is_nil(err.reason)
    end)
  end)

  describe("the members helpers take { name = } too", function()
    it("lists, adds and removes by name; an unknown name writes nothing", function()
      local members, err = c:list_members(A, { name = "Ops" })
      assert.is_nil(err)
      assert.are.equal(2, #members)
      local added
      added, err = c:add_members(A, { name = "Empty" }, { ids.member_ids[4] })
      assert.is_nil(err)
      assert.are.equal(1, #added)
      local removed
      removed, err = c:remove_members(A, { name = "Empty" }, { ids.member_ids[4] })
      assert.is_nil(err)
      assert.are.same({ ids.member_ids[4] }, removed.removed)
      local plan
      plan, err = c:plan_members(A, { name = "Ops" }, { ids.member_ids[1] })
      assert.is_nil(err)
      assert.are.equal(1, #plan.remove)
      local n = 0
      for m in c:each_member(A, { name = "Ops" }) do
        n = n + 1
        assert.is_string(m.id)
      end
      assert.are.equal(2, n)
      emu:clear_requests()
      added, err = c:add_members(A, { name = "Nobody" }, { ids.member_ids[4] })
      assert.is_nil(added)
      assert.are.equal("not_found", err.kind)
      local it_ok, it_err = c:each_member(A, { name = "Nobody" })()
      assert.is_false(it_ok)
      assert.are.equal("not_found", it_err.kind)
      assert_nothing_written()
      assert.has_error(function() c:list_members(A, { nam = "Ops" }) end)
      assert.has_error(function() c:list_members(A, 7) end)
    end)
  end)
end)
