-- spec/26-examples_spec.lua: each workflow script in examples/ run as a
-- child process against the emulator (credentials and base URL from the
-- environment, as a user would run them).
local emulator = require("helpers.emulator")
local H = require("helpers.cli")

describe("examples", function()
  local emu, ids, small, big

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
  end)

  local function member(i) return ids.members[i] end

  it("replace_from_emails.lua replaces a group (by name) from e-mail addresses", function()
    local r = H.run("examples/replace_from_emails.lua", { ids.account, "Small",
      member(1).email, member(2).email:upper(), member(12).email }, { env = H.env(emu) })
    assert.are.equal(0, r.status, r.stderr)
    assert.matches("+ " .. member(12).email, r.stdout, 1, true)
    assert.matches("- " .. member(3).email, r.stdout, 1, true)
    assert.matches("1 added, 1 removed, 2 kept", r.stdout, 1, true)
    assert.are.same(H.sorted_ids({ member(1).id, member(2).id, member(12).id }),
      H.state_members(emu, ids.account, small))
  end)

  it("replace_from_emails.lua stops on an unknown address and on a guard, writing nothing", function()
    local r = H.run("examples/replace_from_emails.lua", { member(1).email, "who@example.com" },
      { env = H.env(emu, { CFIAM_ACCOUNT = ids.account, CFIAM_GROUP = small }) })
    assert.are.equal(1, r.status)
    assert.matches("who@example.com", r.stderr, 1, true)
    r = H.run("examples/replace_from_emails.lua", { ids.account, big, member(1).email },
      { env = H.env(emu) })
    assert.are.equal(2, r.status)
    assert.matches("cfiam guard", r.stderr, 1, true)
    assert.matches("0 to add, 2999 to remove", r.stderr, 1, true)
    assert.are.same({}, H.writes(emu))
  end)

  it("plan_dry_run.lua prints the plan and writes nothing, also when a guard would refuse", function()
    local r = H.run("examples/plan_dry_run.lua", { ids.account, small, member(1).id,
      member(7).email }, { env = H.env(emu) })
    assert.are.equal(0, r.status, r.stderr)
    assert.matches("+ " .. member(7).email .. " (" .. member(7).id .. ") pending", r.stdout, 1, true)
    assert.matches("1 to add, 2 to remove, 1 unchanged", r.stdout, 1, true)
    r = H.run("examples/plan_dry_run.lua", { ids.account, small }, { env = H.env(emu) })
    assert.are.equal(0, r.status, r.stderr)
    assert.matches("0 to add, 3 to remove, 0 unchanged", r.stdout, 1, true)
    assert.matches("a sync would be refused: the plan empties group", r.stdout, 1, true)
    assert.are.same({}, H.writes(emu))
  end)

  it("add_and_remove.lua adds and removes without touching the others", function()
    local r = H.run("examples/add_and_remove.lua", { ids.account, small, "+" .. member(30).email,
      "-" .. member(2).id, "-" .. member(31).id }, { env = H.env(emu) })
    assert.are.equal(0, r.status, r.stderr)
    assert.matches("added 1; the group has 4 members", r.stdout, 1, true)
    assert.matches("removed " .. member(2).id, r.stdout, 1, true)
    assert.matches("not a member: " .. member(31).id, r.stdout, 1, true)
    assert.are.same(H.sorted_ids({ member(1).id, member(3).id, member(30).id }),
      H.state_members(emu, ids.account, small))
  end)
end)
