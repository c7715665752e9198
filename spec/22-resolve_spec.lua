-- spec/22-resolve_spec.lua: resolve_members (e-mail addresses to account
-- member ids) against an account of 3200 members listed 50 a page:
-- case-insensitive matching, member id rather than user id, pending
-- status, unknown addresses, failures of the account listing.
local emulator = require("helpers.emulator")
local H = require("helpers.cli")

describe("resolve_members", function()
  local emu, ids, c

  setup(function()
    local seed
    seed, ids = H.seed()
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

  local ACCOUNT_MEMBERS = "/accounts/%x+/members$"

  it("maps each address as given to { id, email, status }, case-insensitively", function()
    local m1, m7, m3200 = ids.members[1], ids.members[7], ids.members[3200]
    local given = { m1.email:upper(), m7.email, "User3200@Example.COM" }
    local map, err = c:resolve_members(ids.account, given)
    assert.is_nil(err)
    assert.are.same({ id = m1.id, email = m1.email, status = "accepted" }, map[given[1]])
    assert.are.same({ id = m7.id, email = m7.email, status = "pending" }, map[given[2]])
    assert.are.same({ id = m3200.id, email = m3200.email, status = "accepted" }, map[given[3]])
    -- the account-member id, not the user id
    assert.are_not.equal(m1.user_id, map[given[1]].id)
  end)

  it("lists the account once, 50 a page, until an empty page", function()
    local map, err = c:resolve_members(ids.account, { ids.members[2].email })
    assert.is_nil(err)
    assert.is_table(map[ids.members[2].email])
    local reqs = H.requests(emu, "GET", ACCOUNT_MEMBERS)
    assert.are.equal(65, #reqs) -- 3200 / 50, then the empty page that ends it
    assert.are.equal(#reqs, #emu:requests())
    for i, r in ipairs(reqs) do
      local q = H.query(r.query)
      assert.are.equal("50", q.per_page)
      assert.are.equal(tostring(i), q.page)
    end
  end)

  it("fails the whole call with invalid_argument naming every unknown address", function()
    local map, err = c:resolve_members(ids.account,
      { ids.members[1].email, "nobody@example.com", "Ghost@example.net" })
    assert.is_nil(map)
    assert.are.equal("invalid_argument", err.kind)
    assert.matches('"nobody@example.com", "Ghost@example.net"', err.message, 1, true)
    assert.are.same({ "nobody@example.com", "Ghost@example.net" }, err.unknown)
  end)

  it("returns an empty table without a request for no addresses", function()
    local map, err = c:resolve_members(ids.account, {})
    assert.is_nil(err)
    assert.are.same({}, map)
    assert.are.same({}, emu:requests())
  end)

  it("rejects strings that are not addresses, and a bad account, before any request", function()
    local map, err = c:resolve_members(ids.account, { "no-at-sign" })
    assert.is_nil(map)
    assert.are.equal("invalid_argument", err.kind)
    assert.matches("no%-at%-sign", err.message)
    map, err = c:resolve_members("acct", { "a@example.com" })
    assert.is_nil(map)
    assert.are.equal("invalid_argument", err.kind)
    assert.are.same({}, emu:requests())
    assert.has_error(function() c:resolve_members(ids.account, "a@example.com") end)
    assert.has_error(function() c:resolve_members(ids.account, { 5 }) end)
  end)

  it("returns the account listing's error (incomplete listing included)", function()
    emu:fault{ path = ACCOUNT_MEMBERS, times = 1, status = 403 }
    local map, err = c:resolve_members(ids.account, { ids.members[1].email })
    assert.is_nil(map)
    assert.are.equal("permission", err.kind)
    emu:fault{
      { path = ACCOUNT_MEMBERS, times = 3, delay_ms = 0 },
      { path = ACCOUNT_MEMBERS, times = 1, result_null = true } }
    map, err = c:resolve_members(ids.account, { ids.members[1].email })
    assert.is_nil(map)
    assert.are.equal("incomplete", err.kind)
    assert.are.equal(150, err.count)
  end)

  it("returns not_found for an unknown account", function()
    local map, err = c:resolve_members(string.rep("d", 32), { "a@example.com" })
    assert.is_nil(map)
    assert.are.equal("not_found", err.kind)
  end)
end)
