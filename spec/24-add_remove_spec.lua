-- spec/24-add_remove_spec.lua: add_members (one POST, de-duplicated,
-- e-mails resolved) and remove_members (one DELETE per member; members not
-- in the group reported, not errors; a 404 to a retried DELETE, after an
-- attempt that timed out once the server had removed the member, counts as
-- removed).
local emulator = require("helpers.emulator")
local H = require("helpers.cli")

describe("add_members / remove_members", function()
  local emu, ids, c, small, big

  setup(function()
    local seed
    seed, ids = H.seed()
    emu = emulator.start{ seed = seed }
    small, big = ids.groups.Small.id, ids.groups.Big.id
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

  local function member(i) return ids.members[i] end

  it("adds with one POST of the de-duplicated ids and returns the API's member list", function()
    local members, err = c:add_members(ids.account, small,
      { member(10).id, member(10).id:upper(), member(11).email:upper(), member(10).email })
    assert.is_nil(err)
    assert.are.equal(5, #members)
    local posts = H.writes(emu)
    assert.are.equal(1, #posts)
    assert.are.equal("POST", posts[1].method)
    assert.are.same({ { id = member(10).id }, { id = member(11).id } }, H.json(posts[1].body))
    assert.are.same(H.sorted_ids({ member(1).id, member(2).id, member(3).id, member(10).id,
      member(11).id }), H.state_members(emu, ids.account, small))
  end)

  it("sends nothing for an unknown address or an empty list", function()
    local members, err = c:add_members(ids.account, small, { member(10).id, "x@example.org" })
    assert.is_nil(members)
    assert.are.equal("invalid_argument", err.kind)
    assert.matches("x@example.org", err.message, 1, true)
    members, err = c:add_members(ids.account, small, {})
    assert.is_nil(members)
    assert.are.equal("invalid_argument", err.kind)
    assert.are.same({}, H.writes(emu))
  end)

  it("returns the API's error for an id that is not an account member", function()
    local members, err = c:add_members(ids.account, small, { string.rep("f", 32) })
    assert.is_nil(members)
    assert.are.equal("api", err.kind)
    assert.are.equal(400, err.status)
    assert.are.equal(3, #H.state_members(emu, ids.account, small))
  end)

  it("removes exactly the given members and reports those not in the group", function()
    local res, err = c:remove_members(ids.account, small,
      { member(1).id, member(3).email, member(9).id })
    assert.is_nil(err)
    assert.are.same({ member(1).id, member(3).id }, res.removed)
    assert.are.same({ member(9).id }, res.not_members)
    assert.are.same({ member(2).id }, H.state_members(emu, ids.account, small))
    local deletes = H.requests(emu, "DELETE")
    assert.are.equal(3, #deletes)
    assert.matches("/members/" .. member(1).id .. "$", deletes[1].path)
  end)

  it("removes from a large group without listing it", function()
    local res, err = c:remove_members(ids.account, big, { member(2999).id })
    assert.is_nil(err)
    assert.are.same({ member(2999).id }, res.removed)
    assert.are.equal(2999, #H.state_members(emu, ids.account, big))
    assert.are.same({}, H.requests(emu, "GET", H.members_pattern(big)))
  end)

  it("returns not_found for a missing group instead of 'not a member'", function()
    local res, err = c:remove_members(ids.account, string.rep("9", 32), { member(1).id })
    assert.is_nil(res)
    assert.are.equal("not_found", err.kind)
    assert.are.same({}, H.writes(emu))
  end)

  it("stops on a failure and says what was already removed", function()
    emu:fault{
      { method = "DELETE", times = 1, delay_ms = 0 },
      { method = "DELETE", times = 1, status = 500 } }
    local res, err = c:remove_members(ids.account, small, { member(1).id, member(2).id,
      member(3).id })
    assert.is_nil(res)
    assert.are.equal("server", err.kind)
    assert.are.same({ member(1).id }, err.removed)
    assert.are.same({}, err.not_members)
    assert.are.same({ member(2).id, member(3).id }, H.state_members(emu, ids.account, small))
  end)

  it("reports a member removed by a DELETE that timed out, whose retry got 404, as removed", function()
    -- The first DELETE of member 2 is carried out but never answered; the
    -- retry finds the member gone (404).
    local slow = H.client(emu, { timeout = 0.5, max_retries = 1 })
    finally(function() slow:close() end)
    emu:fault{ method = "DELETE", path = "/members/" .. member(2).id .. "$", times = 1,
      stall_at = 0 }
    local res, err = slow:remove_members(ids.account, small, { member(1).id, member(2).id,
      member(9).id })
    assert.is_nil(err)
    assert.are.same({ member(1).id, member(2).id }, res.removed)
    assert.are.same({ member(9).id }, res.not_members) -- one attempt, 404: never a member
    assert.are.same({ member(3).id }, H.state_members(emu, ids.account, small))
    assert.are.equal(2, #H.requests(emu, "DELETE", "/members/" .. member(2).id .. "$"))
  end)

  it("rejects malformed entries before any request", function()
    local res, err = c:remove_members(ids.account, small, { "bogus" })
    assert.is_nil(res)
    assert.are.equal("invalid_argument", err.kind)
    res, err = c:remove_members(ids.account, small, {})
    assert.is_nil(res)
    assert.are.equal("invalid_argument", err.kind)
    assert.are.same({}, emu:requests())
    assert.has_error(function() c:remove_members(ids.account, small, { 42 }) end)
  end)
end)
