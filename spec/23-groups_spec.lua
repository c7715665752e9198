-- spec/23-groups_spec.lua: list_groups (paged, filters on the wire) and
-- find_group (exactly one match, or not_found).
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
    assert.matches("'ops'", err.message)
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
