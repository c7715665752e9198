-- spec/21-plan_sync_spec.lua: plan_members, sync_members and apply_plan
-- against the emulator: plans from complete listings (ids and e-mails
-- mixed, pending kept), the difference written (one POST of the additions,
-- one DELETE per removal) or, with strategy = "replace", one PUT of the
-- planned set; every guard (nothing written: checked in the emulator's
-- request log and state), dry_run, listings that fail or are incomplete, a
-- write that fails part way, verify and drift.
local emulator = require("helpers.emulator")
local H = require("helpers.cli")

describe("plan_members / sync_members", function()
  local emu, ids, c, big, small, empty

  setup(function()
    local seed
    seed, ids = H.seed()
    emu = emulator.start{ seed = seed }
    big, small, empty = ids.groups.Big.id, ids.groups.Small.id, ids.groups.Empty.id
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

  describe("plan_members", function()
    it("a member table or a list with holes where the list belongs raises, nothing sent", function()
      for _, desired in ipairs({ { id = member(1).id }, { [1] = member(1).id, [3] = member(2).id } }) do
        assert.has_error(function() c:plan_members(ids.account, small, desired) end,
          "bad argument to 'plan_members' (desired: a list expected, got a table with keys "
          .. "other than 1 to #desired)")
        assert.has_error(function()
          c:sync_members(ids.account, small, desired, { allow_empty = true })
        end, "bad argument to 'sync_members' (desired: a list expected, got a table with keys "
          .. "other than 1 to #desired)")
      end
      assert.has_error(function() c:resolve_members(ids.account, { email = member(1).email }) end,
        "bad argument to 'resolve_members' (emails: a list expected, got a table with keys "
        .. "other than 1 to #emails)")
      assert.same({}, emu:requests())
    end)

    it("a list-like table with a metatable raises under every interpreter, as in the C core", function()
      local real = { member(1).id, member(2).id }
      local proxy = setmetatable({}, { __index = real, __len = function() return #real end })
      local msg = "a plain list expected, got a table whose metatable has __index or __len)"
      assert.has_error(function() c:sync_members(ids.account, small, proxy, { allow_empty = true }) end,
        "bad argument to 'sync_members' (desired: " .. msg)
      local indexed = setmetatable({ member(1).id }, { __index = {} })
      assert.has_error(function() c:add_members(ids.account, small, indexed) end,
        "bad argument to 'add_members' (ids: " .. msg)
      assert.has_error(function() c:resolve_members(ids.account, setmetatable({}, { __index = { "a@b.c" } })) end,
        "bad argument to 'resolve_members' (emails: " .. msg)
      assert.same({}, emu:requests())
    end)

    it("plans add, remove and keep from ids and e-mails, writing nothing", function()
      -- Small holds members 1..3; desired: 1 (id), 3 (e-mail in upper
      -- case), 7 (pending, by e-mail), 8 (id).
      local plan, err = c:plan_members(ids.account, small, { member(1).id,
        member(3).email:upper(), member(7).email, member(8).id })
      assert.is_nil(err)
      assert.are.same({ { id = member(7).id, email = member(7).email, status = "pending" },
        { id = member(8).id, email = member(8).email, status = "accepted" } }, plan.add)
      assert.are.same({ { id = member(2).id, email = member(2).email, status = "accepted" } },
        plan.remove)
      assert.are.same({ member(1).id, member(3).id }, H.sorted_ids(plan.keep))
      assert.are.equal(member(1).email, plan.keep[1].email)
      assert.are.same({}, H.writes(emu))
    end)

    it("plans against a 3000-member group from a complete listing", function()
      local desired = {}
      for i = 6, 3000 do desired[#desired + 1] = member(i).id end -- drop 1..5
      for i = 3001, 3007 do desired[#desired + 1] = member(i).email end -- add 7
      local plan, err = c:plan_members(ids.account, big, desired)
      assert.is_nil(err)
      assert.are.equal(7, #plan.add)
      assert.are.equal(5, #plan.remove)
      assert.are.equal(2995, #plan.keep)
      assert.are.same({ member(1).id, member(2).id, member(3).id, member(4).id, member(5).id },
        H.sorted_ids(plan.remove))
      assert.are.equal(7, #H.requests(emu, "GET", H.members_pattern(big)))
      assert.are.same({}, H.writes(emu))
    end)

    it("fails with invalid_argument naming unknown addresses and ids", function()
      local plan, err = c:plan_members(ids.account, small,
        { member(1).id, "nobody@example.com", "ghost@example.org" })
      assert.is_nil(plan)
      assert.are.equal("invalid_argument", err.kind)
      assert.matches('"nobody@example.com", "ghost@example.org"', err.message, 1, true)
      plan, err = c:plan_members(ids.account, small, { member(1).id, string.rep("f", 32) })
      assert.is_nil(plan)
      assert.are.equal("invalid_argument", err.kind)
      assert.matches(string.rep("f", 32), err.message)
      plan, err = c:plan_members(ids.account, small, { "neither" })
      assert.is_nil(plan)
      assert.are.equal("invalid_argument", err.kind)
      assert.are.same({}, H.writes(emu))
    end)

    it("returns the listing's error when the listing is incomplete", function()
      local plan, err = c:plan_members(ids.account, big, { member(1).id }, { max_pages = 1 })
      assert.is_nil(plan)
      assert.are.equal("incomplete", err.kind)
    end)
  end)

  describe("sync_members", function()
    it("writes the difference: one POST of the additions, one DELETE per removal", function()
      local plan, err = c:sync_members(ids.account, small,
        { member(1).id, member(2).email, member(9).id, member(10).email })
      assert.is_nil(err)
      assert.are.same({ member(9).id, member(10).id }, H.sorted_ids(plan.add))
      assert.are.same({ member(3).id }, H.sorted_ids(plan.remove))
      local writes = H.writes(emu)
      assert.are.equal(2, #writes)
      assert.are.equal("POST", writes[1].method)
      assert.matches(H.members_pattern(small), writes[1].path)
      assert.are.same({ member(9).id, member(10).id }, H.sorted_ids(H.json(writes[1].body)))
      assert.are.equal("DELETE", writes[2].method)
      assert.matches("/user_groups/" .. small .. "/members/" .. member(3).id .. "$",
        writes[2].path)
      assert.are.same(H.sorted_ids({ member(1).id, member(2).id, member(9).id, member(10).id }),
        H.state_members(emu, ids.account, small))
      -- only removals: no POST; only additions: no DELETE
      emu:clear_requests()
      assert(c:sync_members(ids.account, small, { member(1).id, member(2).id, member(9).id }))
      writes = H.writes(emu)
      assert.are.equal(1, #writes)
      assert.are.equal("DELETE", writes[1].method)
      emu:clear_requests()
      assert(c:sync_members(ids.account, small, { member(1).id, member(2).id, member(9).id,
        member(11).id }))
      writes = H.writes(emu)
      assert.are.equal(1, #writes)
      assert.are.equal("POST", writes[1].method)
    end)

    it("never removes a member the plan does not list under remove", function()
      -- The server's listing leaves out members 2 and 3 of Small (and
      -- counts 1): the plan removes nobody, and nobody is removed.
      emu:fault{ path = H.members_pattern(small), method = "GET", times = 1,
        body = H.page_body({ member(1) }, { count = 1, page = 1, per_page = 500,
          total_count = 1 }) }
      local plan, err = c:sync_members(ids.account, small, { member(1).id, member(5).id })
      assert.is_nil(err)
      assert.are.same({}, plan.remove)
      assert.are.same(H.sorted_ids({ member(1).id, member(2).id, member(3).id, member(5).id }),
        H.state_members(emu, ids.account, small))
    end)

    it("strategy = \"replace\" replaces the members with one PUT of the planned set", function()
      local plan, err = c:sync_members(ids.account, small,
        { member(1).id, member(2).email, member(9).id, member(10).email },
        { strategy = "replace" })
      assert.is_nil(err)
      assert.are.same({ member(9).id, member(10).id }, H.sorted_ids(plan.add))
      assert.are.same({ member(3).id }, H.sorted_ids(plan.remove))
      local puts = H.writes(emu)
      assert.are.equal(1, #puts)
      assert.are.equal("PUT", puts[1].method)
      assert.matches(H.members_pattern(small), puts[1].path)
      local body = H.json(puts[1].body)
      assert.are.same(H.sorted_ids({ member(1).id, member(2).id, member(9).id, member(10).id }),
        H.sorted_ids(body))
      assert.are.same(H.sorted_ids(body), H.state_members(emu, ids.account, small))
    end)

    it("keeps the whole group of 3000 across pages (the page-one bug)", function()
      local desired = {}
      for i = 1, 3000 do desired[i] = member(i).id end
      desired[#desired + 1] = member(3100).id
      local plan, err = c:sync_members(ids.account, big, desired)
      assert.is_nil(err)
      assert.are.equal(1, #plan.add)
      assert.are.equal(0, #plan.remove)
      local state = H.state_members(emu, ids.account, big)
      assert.are.equal(3001, #state)
    end)

    it("refuses a plan that removes more than max_removals (default 10), writing nothing", function()
      local desired = {}
      for i = 12, 3000 do desired[#desired + 1] = member(i).id end -- removes 11
      local plan, err = c:sync_members(ids.account, big, desired)
      assert.is_nil(plan)
      assert.are.equal("guard", err.kind)
      assert.are.equal(11, #err.plan.remove)
      assert.are.equal(2989, #err.plan.keep)
      assert.matches("max_removals %(10%)", err.message)
      assert.are.same({}, H.writes(emu))
      assert.are.equal(3000, #H.state_members(emu, ids.account, big))

      plan, err = c:sync_members(ids.account, big, desired, { max_removals = 11 })
      assert.is_nil(err)
      assert.are.equal(11, #plan.remove)
      assert.are.equal(2989, #H.state_members(emu, ids.account, big))
    end)

    it("refuses to empty a group without allow_empty, writing nothing", function()
      local plan, err = c:sync_members(ids.account, small, {}, { max_removals = 100 })
      assert.is_nil(plan)
      assert.are.equal("guard", err.kind)
      assert.matches("empties group", err.message)
      assert.are.equal(3, #err.plan.remove)
      assert.are.same({}, H.writes(emu))
      assert.are.equal(3, #H.state_members(emu, ids.account, small))

      plan, err = c:sync_members(ids.account, small, {}, { allow_empty = true })
      assert.is_nil(err)
      assert.are.equal(3, #plan.remove)
      local writes = H.writes(emu)
      assert.are.equal(3, #writes)
      for _, w in ipairs(writes) do assert.are.equal("DELETE", w.method) end
      assert.are.same({}, H.state_members(emu, ids.account, small))
      -- replace: one PUT of []
      assert(c:update_members(ids.account, small, { member(1).id }))
      emu:clear_requests()
      plan, err = c:sync_members(ids.account, small, {},
        { allow_empty = true, strategy = "replace" })
      assert.is_nil(err)
      assert.are.equal(1, #plan.remove)
      writes = H.writes(emu)
      assert.are.equal(1, #writes)
      assert.are.equal("PUT", writes[1].method)
      assert.are.equal("[]", writes[1].body)
      assert.are.same({}, H.state_members(emu, ids.account, small))
    end)

    it("an already empty group synced to [] is no change, not a guard (nothing written)", function()
      -- The empties guard is about removals: none here.
      for _, o in ipairs({ {}, { dry_run = true }, { strategy = "replace" } }) do
        local plan, err = c:sync_members(ids.account, empty, {}, o)
        assert.is_nil(err)
        assert.are.same({ add = 0, remove = 0, keep = 0 },
          { add = #plan.add, remove = #plan.remove, keep = #plan.keep })
      end
      assert.are.same({}, H.writes(emu))
      assert.are.same({}, H.state_members(emu, ids.account, empty))
    end)

    it("unknown ids: five named then \"and N more\", every one in err.unknown", function()
      local list = {}
      for i = 1, 1234 do list[i] = ("%032x"):format(i) end
      local plan, err = c:sync_members(ids.account, small, list, { dry_run = true })
      assert.is_nil(plan)
      assert.are.equal("invalid_argument", err.kind)
      assert.are.equal(1234, #err.unknown)
      assert.matches("ids are not a member of account " .. ids.account .. ': "', err.message, 1, true)
      assert.matches(list[5] .. '" and 1,229 more$', err.message)
      assert.is_nil(err.message:find(list[6], 1, true))
    end)

    it("dry_run returns the plan and writes nothing (guards still apply)", function()
      local plan, err = c:sync_members(ids.account, small, { member(1).id, member(20).id },
        { dry_run = true })
      assert.is_nil(err)
      assert.are.same({ member(20).id }, H.sorted_ids(plan.add))
      assert.are.same({}, H.writes(emu))
      plan, err = c:sync_members(ids.account, small, {}, { dry_run = true })
      assert.is_nil(plan)
      assert.are.equal("guard", err.kind)
    end)

    it("stops before writing when the listing fails or is incomplete", function()
      emu:fault{ path = H.members_pattern(big), method = "GET", times = 1, status = 500 }
      local plan, err = c:sync_members(ids.account, big, { member(1).id }, { max_removals = 1e6 })
      assert.is_nil(plan)
      assert.are.equal("server", err.kind)
      emu:fault{
        { path = H.members_pattern(big), method = "GET", times = 1, delay_ms = 0 },
        { path = H.members_pattern(big), method = "GET", times = 1, result_null = true } }
      plan, err = c:sync_members(ids.account, big, { member(1).id }, { max_removals = 1e6 })
      assert.is_nil(plan)
      assert.are.equal("incomplete", err.kind)
      assert.are.same({}, H.writes(emu))
      assert.are.equal(3000, #H.state_members(emu, ids.account, big))
    end)

    it("fails before writing on an unknown e-mail address", function()
      local plan, err = c:sync_members(ids.account, small, { member(1).id, "who@example.com" })
      assert.is_nil(plan)
      assert.are.equal("invalid_argument", err.kind)
      assert.matches("who@example.com", err.message)
      assert.are.same({}, H.writes(emu))
    end)

    it("reports a failed POST with err.plan, err.added and err.removed (empty)", function()
      emu:fault{ path = H.members_pattern(small), method = "POST", times = 1, status = 502 }
      local desired = { member(1).id, member(4).id }
      local plan, err = c:sync_members(ids.account, small, desired)
      assert.is_nil(plan)
      assert.are.equal("server", err.kind)
      assert.are.same({ member(4).id }, H.sorted_ids(err.plan.add))
      assert.are.same({}, err.added)
      assert.are.same({}, err.removed)
      assert.are.equal(1, #H.writes(emu)) -- no DELETE after the failed POST
      assert.are.equal(3, #H.state_members(emu, ids.account, small))
      plan, err = c:sync_members(ids.account, small, desired)
      assert.is_nil(err)
      assert.are.equal(2, #plan.remove)
      assert.are.same(H.sorted_ids(desired), H.state_members(emu, ids.account, small))
    end)

    it("reports a DELETE failing part way with what was written; a re-run converges", function()
      emu:fault{
        { method = "DELETE", times = 1, delay_ms = 0 },
        { method = "DELETE", times = 1, status = 500 } }
      local desired = { member(1).id, member(4).id }
      local plan, err = c:sync_members(ids.account, small, desired)
      assert.is_nil(plan)
      assert.are.equal("server", err.kind)
      assert.are.same({ member(4).id }, err.added)
      assert.are.equal(1, #err.removed)
      assert.are.equal(2, #err.plan.remove)
      assert.are.equal(3, #H.state_members(emu, ids.account, small)) -- 1 + 4 + one of 2, 3
      plan, err = c:sync_members(ids.account, small, desired)
      assert.is_nil(err)
      assert.are.equal(0, #plan.add)
      assert.are.equal(1, #plan.remove)
      assert.are.same(H.sorted_ids(desired), H.state_members(emu, ids.account, small))
    end)

    it("takes a DELETE answered 404 (already gone) as done", function()
      -- someone else removes member 3 once the listing is done
      emu:fault{ method = "DELETE", times = 1, remove_member = member(3).id }
      local plan, err = c:sync_members(ids.account, small, { member(1).id })
      assert.is_nil(err)
      assert.are.equal(2, #plan.remove)
      assert.are.same({ member(1).id }, H.state_members(emu, ids.account, small))
    end)

    it("reports a failed PUT (replace) with err.plan, and the same call can be retried", function()
      emu:fault{ path = H.members_pattern(small), method = "PUT", times = 1, status = 502 }
      local desired = { member(1).id, member(4).id }
      local plan, err = c:sync_members(ids.account, small, desired, { strategy = "replace" })
      assert.is_nil(plan)
      assert.are.equal("server", err.kind)
      assert.are.same({ member(4).id }, H.sorted_ids(err.plan.add))
      assert.are.equal(3, #H.state_members(emu, ids.account, small))
      plan, err = c:sync_members(ids.account, small, desired, { strategy = "replace" })
      assert.are.equal(1, #plan.add)
      assert.is_nil(err)
      assert.are.same(H.sorted_ids(desired), H.state_members(emu, ids.account, small))
    end)

    it("verify lists again and passes when the group matches", function()
      local plan, err = c:sync_members(ids.account, small, { member(1).id, member(5).id },
        { verify = true })
      assert.is_nil(err)
      assert.are.equal(1, #plan.add)
      -- plan listing, PUT, verify listing
      assert.are.equal(2, #H.requests(emu, "GET", H.members_pattern(small)))
    end)

    it("verify reports drift with err.plan, err.missing and err.unexpected", function()
      -- The verify listing shows member 1 and an outsider (member 50),
      -- while the plan wrote members 1 and 5.
      emu:fault{
        { path = H.members_pattern(small), method = "GET", times = 1, delay_ms = 0 },
        { path = H.members_pattern(small), method = "GET", times = 1,
          body = H.page_body({ member(1), member(50) },
            { count = 2, page = 1, per_page = 500, total_count = 2 }) } }
      local plan, err = c:sync_members(ids.account, small, { member(1).id, member(5).id },
        { verify = true })
      assert.is_nil(plan)
      assert.are.equal("drift", err.kind)
      assert.are.same({ member(5).id }, H.sorted_ids(err.missing))
      assert.are.same({ { id = member(50).id, email = member(50).email, status = "accepted" } },
        err.unexpected)
      assert.are.same({ member(5).id }, H.sorted_ids(err.plan.add))
      assert.matches("1 missing, 1 unexpected", err.message)
    end)

    it("verify reports members that vanished, and members the listing had not shown", function()
      -- Big holds 3000; the plan listing's total_count says 2500 and its
      -- sixth page is empty, so the plan never sees members 2501..3000 (the
      -- listing agrees with itself). The difference leaves them in the
      -- group, and verify reports them as unexpected.
      local rules = {}
      for p = 1, 5 do
        rules[p] = { path = H.members_pattern(big), method = "GET", times = 1,
          total_count = 2500 }
      end
      rules[6] = { path = H.members_pattern(big), method = "GET", times = 1,
        body = H.page_body({}, { count = 0, page = 6, per_page = 500, total_count = 2500 }) }
      emu:fault(rules)
      local desired = {}
      for i = 2, 2500 do desired[#desired + 1] = member(i).id end -- removes member 1
      local plan, err = c:sync_members(ids.account, big, desired, { verify = true })
      assert.is_nil(plan)
      assert.are.equal("drift", err.kind)
      assert.are.equal(500, #err.unexpected)
      assert.are.same({}, err.missing)
      assert.are.equal(2999, #H.state_members(emu, ids.account, big))
      -- a kept member that someone else removes after the write is missing
      emu:clear_requests()
      -- (the plan's listing is answered normally, the verify listing after
      -- someone else removed member 2)
      emu:fault{ path = H.members_pattern(small), method = "GET", times = 1,
        delay_ms = 0 }
      emu:fault{ path = H.members_pattern(small), method = "GET", times = 1,
        remove_member = member(2).id }
      plan, err = c:sync_members(ids.account, small, { member(1).id, member(2).id },
        { verify = true })
      assert.is_nil(plan)
      assert.are.equal("drift", err.kind)
      assert.are.same({ member(2).id }, H.sorted_ids(err.missing))
      assert.are.same({}, err.unexpected)
    end)

    it("rejects an unknown strategy before anything is sent, and raises on a wrong type", function()
      local plan, err = c:sync_members(ids.account, small, { member(1).id },
        { strategy = "merge" })
      assert.is_nil(plan)
      assert.are.equal("invalid_argument", err.kind)
      assert.matches("strategy: expected 'difference' or 'replace', got \"merge\"", err.message,
        1, true)
      assert.has_error(function()
        c:sync_members(ids.account, small, { member(1).id }, { strategy = true })
      end)
      assert.are.same({}, emu:requests())
    end)
  end)

  describe("apply_plan", function()
    it("writes a plan made earlier as is, without listing again", function()
      local plan = assert(c:plan_members(ids.account, small, { member(1).id, member(6).id }))
      emu:clear_requests()
      local done, err = c:apply_plan(ids.account, small, plan)
      assert.is_nil(err)
      assert.are.same(plan, done)
      assert.are.same({}, H.requests(emu, "GET"))
      assert.are.same({ "POST", "DELETE", "DELETE" }, (function()
        local m = {}
        for i, w in ipairs(H.writes(emu)) do m[i] = w.method end
        return m
      end)())
      assert.are.same(H.sorted_ids({ member(1).id, member(6).id }),
        H.state_members(emu, ids.account, small))
    end)

    it("applies the guards and the replace strategy", function()
      local plan = assert(c:plan_members(ids.account, small, { member(1).id }))
      emu:clear_requests()
      local done, err = c:apply_plan(ids.account, small, plan, { max_removals = 1 })
      assert.is_nil(done)
      assert.are.equal("guard", err.kind)
      assert.are.same({}, H.writes(emu))
      done, err = c:apply_plan(ids.account, small, plan, { strategy = "replace" })
      assert.is_nil(err)
      assert.are.same(plan, done)
      local writes = H.writes(emu)
      assert.are.equal(1, #writes)
      assert.are.equal("PUT", writes[1].method)
      assert.are.same({ member(1).id }, H.state_members(emu, ids.account, small))
    end)

    it("checks the plan: wrong types raise, bad ids are invalid_argument, nothing sent", function()
      assert.has_error(function() c:apply_plan(ids.account, small, "plan") end)
      assert.has_error(function() c:apply_plan(ids.account, small, { add = {}, keep = {} }) end)
      assert.has_error(function()
        c:apply_plan(ids.account, small, { add = { "x" }, remove = {}, keep = {} })
      end)
      assert.has_error(function()
        c:apply_plan(ids.account, small, { add = {}, remove = {}, keep = {} }, { dry_run = true })
      end)
      local done, err = c:apply_plan(ids.account, small,
        { add = { { id = "nope" } }, remove = {}, keep = {} })
      assert.is_nil(done)
      assert.are.equal("invalid_argument", err.kind)
      assert.matches("plan.add[1].id", err.message, 1, true)
      done, err = c:apply_plan(ids.account, small, { add = { { id = member(1).id } },
        remove = { { id = member(1).id:upper() } }, keep = { { id = member(2).id } } })
      assert.is_nil(done)
      assert.are.equal("invalid_argument", err.kind)
      assert.matches("in both add and remove", err.message, 1, true)
      assert.are.same({}, emu:requests())
    end)

    it("raises on unknown options and rejects a negative max_removals", function()
      assert.has_error(function() c:sync_members(ids.account, small, {}, { dryrun = true }) end)
      assert.has_error(function() c:sync_members(ids.account, small, "x") end)
      local plan, err = c:sync_members(ids.account, small, { member(1).id }, { max_removals = -1 })
      assert.is_nil(plan)
      assert.are.equal("invalid_argument", err.kind)
      assert.are.same({}, emu:requests())
    end)
  end)
end)
