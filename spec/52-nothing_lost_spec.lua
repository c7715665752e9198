-- spec/52-nothing_lost_spec.lua: sync_members must never remove a member
-- its plan does not list under remove, whatever the listing returned: a
-- total_count that is too low, pages shifted by someone else's removal, a
-- listing that ends early. It never writes after a listing that failed or
-- stopped early, writes only the plan's difference (a POST, a DELETE per
-- removal), a refused guard writes nothing, and a write that failed comes
-- back with the plan (and what was done), so that a re-run converges. The
-- one-PUT strategy = "replace" must come back with the plan it meant to
-- apply, so that the caller can send it again as is.
local emulator = require("helpers.emulator")
local cfiam = require("cfiam")

local seed, ids = emulator.seed{ members = 40, groups = { { name = "G", members = 30 } } }
local A, G = ids.account, ids.groups.G.id
local START = ids.groups.G.member_ids -- the group's members in the seed

describe("nothing lost", function()
  local emu, c
  setup(function()
    emu = emulator.start{ seed = seed }
    c = cfiam.new{ api_token = ids.token, base_url = emu.base_url, max_retries = 0, timeout = 2 }
  end)
  teardown(function()
    if c then c:close() end
    if emu then emu:stop() end
  end)
  before_each(function() emu:reset() end)

  local function puts()
    local n = 0
    for _, r in ipairs(emu:requests()) do
      if r.method ~= "GET" then n = n + 1 end
    end
    return n
  end

  local function group_members()
    local st = emu:state()
    local list = {}
    for _, id in ipairs(st.accounts[A].groups[1].members) do list[#list + 1] = id end
    table.sort(list)
    return list
  end

  local function sorted(t)
    local out = {}
    for i, v in ipairs(t) do out[i] = v end
    table.sort(out)
    return out
  end

  -- Keep the first 25 members and add members 31..35: 5 removals, 5 additions.
  local desired = {}
  for i = 1, 25 do desired[#desired + 1] = ids.member_ids[i] end
  for i = 31, 35 do desired[#desired + 1] = ids.member_ids[i] end

  it("a listing that fails (5xx) writes nothing", function()
    emu:fault{ method = "GET", path = "/members$", status = 500,
      headers = { ["x-should-retry"] = "false" } }
    local plan, err = c:sync_members(A, G, desired, { max_removals = 10, per_page = 10 })
    assert.is_nil(plan)
    assert.equals("server", err.kind)
    assert.equals(0, puts())
    assert.same(sorted(START), group_members())
  end)

  it("a listing cut by the network on a later page writes nothing", function()
    emu:fault{
      { method = "GET", path = "/members$", delay_ms = 1, times = 1 }, -- page 1: normal
      -- page 2: cut in the middle of its body (a connection closed before
      -- any answer would be re-sent by libcurl on a fresh connection)
      { method = "GET", path = "/members$", truncate_at = 400, times = 1 },
    }
    local plan, err = c:sync_members(A, G, desired, { max_removals = 10, per_page = 10 })
    assert.is_nil(plan)
    assert.equals("network", err.kind)
    assert.equals(0, puts())
    assert.same(sorted(START), group_members())
  end)

  it("a listing that ends before total_count (incomplete) writes nothing", function()
    emu:fault{
      { method = "GET", path = "/members$", delay_ms = 1, times = 1 },
      { method = "GET", path = "/members$", status = 200, times = 1,
        body = '{"success":true,"errors":[],"messages":[],"result":[],'
          .. '"result_info":{"page":2,"per_page":10,"count":0,"total_count":30}}' },
    }
    local plan, err = c:sync_members(A, G, desired, { max_removals = 10, per_page = 10 })
    assert.is_nil(plan)
    assert.equals("incomplete", err.kind)
    assert.equals(0, puts())
    assert.same(sorted(START), group_members())
  end)

  it("a listing stopped by max_pages (incomplete) writes nothing", function()
    local plan, err = c:sync_members(A, G, desired, { max_removals = 10, per_page = 10, max_pages = 2 })
    assert.is_nil(plan)
    assert.equals("incomplete", err.kind)
    assert.equals(0, puts())
    assert.same(sorted(START), group_members())
  end)

  it("a listing with invalid UTF-8 (invalid_response) writes nothing", function()
    emu:fault{ method = "GET", path = "/members$", invalid_utf8 = true }
    local plan, err = c:sync_members(A, G, desired, { max_removals = 10 })
    assert.is_nil(plan)
    assert.equals("invalid_response", err.kind)
    assert.equals(0, puts())
  end)

  it("a guard refusing too many removals writes nothing and shows the plan", function()
    local plan, err = c:sync_members(A, G, { ids.member_ids[1] }, { max_removals = 10 })
    assert.is_nil(plan)
    assert.equals("guard", err.kind)
    assert.equals(29, #err.plan.remove)
    assert.equals(1, #err.plan.keep)
    assert.equals(0, puts())
    assert.same(sorted(START), group_members())
  end)

  it("a guard refusing to empty the group writes nothing", function()
    local plan, err = c:sync_members(A, G, {}, { max_removals = 1000 })
    assert.is_nil(plan)
    assert.equals("guard", err.kind)
    assert.equals(30, #err.plan.remove)
    assert.equals(0, puts())
  end)

  -- The ids a plan meant the group to hold.
  local function intended(plan)
    local out = {}
    for _, e in ipairs(plan.keep) do out[#out + 1] = e.id end
    for _, e in ipairs(plan.add) do out[#out + 1] = e.id end
    return out
  end

  it("a failed PUT (replace) is reported with the plan, which can be sent again as is", function()
    emu:fault{ method = "PUT", status = 503, headers = { ["x-should-retry"] = "false" } }
    local plan, err = c:sync_members(A, G, desired, { max_removals = 10, strategy = "replace" })
    assert.is_nil(plan)
    assert.equals("server", err.kind)
    assert.is_table(err.plan)
    assert.equals(5, #err.plan.add)
    assert.equals(5, #err.plan.remove)
    assert.same(sorted(desired), sorted(intended(err.plan)))
    assert.same(sorted(START), group_members()) -- the failed PUT changed nothing
    -- the retry, exactly as planned
    local members, err2 = c:update_members(A, G, intended(err.plan))
    assert.is_table(members, tostring(err2))
    assert.same(sorted(desired), group_members())
  end)

  it("a PUT (replace) that timed out after the server applied it: the same plan again is harmless", function()
    local slow = cfiam.new{ api_token = ids.token, base_url = emu.base_url, max_retries = 0, timeout = 0.3 }
    finally(function() slow:close() end)
    emu:fault{ method = "PUT", delay_ms = 800, times = 1 }
    local plan, err = slow:sync_members(A, G, desired, { max_removals = 10, strategy = "replace" })
    assert.is_nil(plan)
    assert.equals("timeout", err.kind)
    assert.is_table(err.plan)
    local members, err2 = c:update_members(A, G, intended(err.plan))
    assert.is_table(members, tostring(err2))
    assert.same(sorted(desired), group_members())
    -- a sync now has nothing left to do
    local again = assert(c:sync_members(A, G, desired, { max_removals = 0 }))
    assert.equals(0, #again.add)
    assert.equals(0, #again.remove)
  end)

  -- Members 2..20 of G (1..30): the plan removes member 1 only.
  local first20 = {}
  for i = 2, 20 do first20[#first20 + 1] = ids.member_ids[i] end

  local function holds(list, id)
    for _, v in ipairs(list) do if v == id then return true end end
    return false
  end

  it("a total_count too low at a page boundary: incomplete, the unseen members stay", function()
    -- The server says 20, the group holds 30; pages of 10: after two full
    -- pages the count agrees, but the third page shows 10 more.
    emu:fault{ method = "GET", path = "/members$", times = -1, total_count = 20 }
    local plan, err = c:sync_members(A, G, first20, { max_removals = 1, per_page = 10 })
    assert.is_nil(plan)
    assert.equals("incomplete", err.kind)
    assert.equals(0, puts())
    local now = group_members()
    assert.equals(30, #now)
    for i = 21, 30 do assert.is_true(holds(now, ids.member_ids[i])) end
  end)

  it("a listing that hides members (short total_count, then an empty page) costs no one", function()
    -- Nothing in the pages tells the listing is short: only the members
    -- the plan removes are removed; 21..30, never listed, stay.
    emu:fault{
      { method = "GET", path = "/members$", query = "[?&]page=[12]&", times = 2, total_count = 20 },
      { method = "GET", path = "/members$", query = "[?&]page=3&", times = 1, status = 200,
        body = '{"success":true,"errors":[],"messages":[],"result":[],'
          .. '"result_info":{"page":3,"per_page":10,"count":0,"total_count":20}}' },
    }
    local plan, err = c:sync_members(A, G, first20, { max_removals = 1, per_page = 10 })
    assert.is_table(plan, tostring(err))
    assert.equals(1, #plan.remove)
    assert.equals(ids.member_ids[1], plan.remove[1].id)
    local now = group_members()
    assert.equals(29, #now)
    assert.is_false(holds(now, ids.member_ids[1]))
    for i = 21, 30 do assert.is_true(holds(now, ids.member_ids[i])) end
    local deletes = 0
    for _, r in ipairs(emu:requests()) do
      assert.are_not.equal("PUT", r.method)
      if r.method == "DELETE" then deletes = deletes + 1 end
    end
    assert.equals(1, deletes)
  end)

  it("a removal by someone else between two pages: the member never listed stays", function()
    -- Member 3 (page 1) is removed by someone else before page 2 is read:
    -- page 2 starts one later and member 11 is never listed, while the
    -- counts agree (29). desired leaves out 11 and 26..30, but the plan
    -- (5 removals, within max_removals = 5) does not list 11: it stays.
    emu:fault{ method = "GET", path = "/members$", query = "[?&]page=2&",
      remove_member = ids.member_ids[3] }
    local want = {}
    for i = 1, 25 do if i ~= 11 then want[#want + 1] = ids.member_ids[i] end end
    local plan, err = c:sync_members(A, G, want, { max_removals = 5, per_page = 10 })
    assert.is_table(plan, tostring(err))
    assert.equals(5, #plan.remove)
    for _, e in ipairs(plan.remove) do assert.are_not.equal(ids.member_ids[11], e.id) end
    local now = group_members()
    assert.is_true(holds(now, ids.member_ids[11]))
    assert.is_false(holds(now, ids.member_ids[3])) -- the other client's removal
    assert.equals(24, #now) -- 1..25 less 3, 11 kept
  end)
end)
