-- spec/29-account_spec.lua: plan_account / apply_account / dump_account and
-- the `cfiam plan|apply|dump` commands against the emulator: the round
-- trip (dump, then plan = no changes), sorted and repeatable plans, the
-- account's members read once for every group, detailed exit codes, every
-- guard refusing with nothing written (the emulator's request log), a
-- listing that fails or lies, writes by the difference, one group failing
-- while the others are written, the audit log, ignore_pending, protect and
-- group creation.
local emulator = require("helpers.emulator")
local H = require("helpers.cli")
local cfiam = require("cfiam")
-- Values in messages are quoted as the library quotes them.
local Q = require("cfiam.args").quote

describe("account from a desired state", function()
  local emu, ids, c, account
  local files = {}

  -- 120 account members (every 7th pending): 3 pages of account members.
  -- Eng: 1 2 3 7, Ops: 4 5 6, Sales: 10..30, Empty: none.
  setup(function()
    local sales = {}
    for i = 10, 30 do sales[#sales + 1] = i end
    local seed
    seed, ids = emulator.seed{ members = 120, pending_every = 7, groups = {
      { name = "Eng", members = { 1, 2, 3, 7 } }, { name = "Ops", members = { 4, 5, 6 } },
      { name = "Sales", members = sales }, { name = "Empty", members = {} } } }
    emu = emulator.start{ seed = seed }
    account = ids.account
  end)

  teardown(function()
    if emu then emu:stop() end
    for _, p in ipairs(files) do os.remove(p) end
  end)

  before_each(function()
    emu:reset()
    emu:clear_faults()
    emu:clear_requests()
    c = H.client(emu)
  end)

  after_each(function()
    if c then c:close() end
  end)

  local function email(i) return ids.members[i].email end
  local function id(i) return ids.members[i].id end
  local function gid(name) return ids.groups[name].id end

  local function file(text)
    local path = os.tmpname()
    local f = assert(io.open(path, "wb"))
    f:write(text)
    f:close()
    files[#files + 1] = path
    return path
  end

  local function cli(args, opts)
    opts = opts or {}
    opts.env = opts.env or H.env(emu)
    return H.run("bin/cfiam", args, opts)
  end

  -- The current state as a desired-state table, with changes applied.
  local function current(changes)
    local state = assert(c:dump_account(account))
    local cfg = { account = account, groups = {} }
    for _, g in ipairs(state.groups) do cfg.groups[g.key] = { members = g.members } end
    for k, v in pairs(changes or {}) do cfg.groups[k] = v end
    return cfg
  end

  local function group_of(plan, name)
    for _, g in ipairs(plan.groups) do if g.name == name then return g end end
  end

  local function emails(list)
    local out = {}
    for i, e in ipairs(list) do out[i] = e.email end
    return out
  end

  describe("dump and the round trip", function()
    it("exits 1, saying so, when its output or --log cannot be written (a full disk)", function()
      for _, args in ipairs({ { "dump", account }, { "dump", account, "--json" } }) do
        local r = cli(args, { stdout_to = "/dev/full" })
        assert.are.equal(1, r.status, r.stderr)
        assert.matches("cannot write the output", r.stderr, 1, true)
      end
      local path = file(("account: %s\ngroups:\n  Ops: { members: [%s, %s] }\n")
        :format(account, email(4), email(5)))
      local r = cli({ "apply", path, "--yes", "--log", "/dev/full" })
      assert.are.equal(1, r.status, r.stderr)
      assert.matches("cannot write the output", r.stderr, 1, true)
    end)

    it("cfiam dump keys a group whose name holds the credential by its id: the file plans no changes", function()
      local g = assert(c:create_group(account, { name = "ops " .. H.TOKEN }))
      local r = cli({ "dump", account })
      assert.are.equal(0, r.status, r.stderr)
      assert.is_nil(r.stdout:find(H.TOKEN, 1, true))
      assert.matches(g.id:lower(), r.stdout, 1, true)
      local p = cli({ "plan", file(r.stdout), "--json" })
      assert.are.equal(0, p.status, p.stderr)
      assert.is_false(H.json(p.stdout).changes)
    end)

    it("dump keys a group whose name holds a NUL by its id, so the file plans no changes", function()
      local g = assert(c:create_group(account, { name = "Ops\0-old" }))
      local state = assert(c:dump_account(account))
      local yaml = require("cfiam.desired").to_yaml(state)
      local path = file(yaml)
      assert.matches(g.id:lower() .. '":  # Ops\\x00-old\n', yaml, 1, true)
      local plan = assert(c:plan_account(assert(cfiam.load_desired(path))))
      assert.are.equal(0, plan.summary.change)
    end)

    it("dump lists every group, members as sorted addresses; plan reports no changes", function()
      local state, err = c:dump_account(account)
      assert.is_nil(err)
      local names = {}
      for i, g in ipairs(state.groups) do names[i] = g.name end
      assert.are.same({ "Empty", "Eng", "Ops", "Sales" }, names)
      assert.are.same({ email(1), email(2), email(3), email(7) }, state.groups[2].members)
      assert.are.same({}, state.groups[1].members)
      local plan
      plan, err = c:plan_account(current())
      assert.is_nil(err)
      assert.are.equal(0, plan.summary.change)
      assert.are.equal(4, plan.summary.unchanged)
      assert.are.same({}, H.writes(emu))
    end)

    it("cfiam dump writes a file that cfiam plan reports as no changes (exit 0 with --detailed-exitcode)", function()
      local r = cli({ "dump", account })
      assert.are.equal(0, r.status, r.stderr)
      assert.matches("\n  Eng:\n    members:\n      %- " .. email(1):gsub("%-", "%%-"), r.stdout)
      local path = file(r.stdout)
      r = cli({ "plan", path, "--detailed-exitcode" })
      assert.are.equal(0, r.status, r.stderr)
      assert.are.equal("0 groups change: 0 to add, 0 to remove; 4 groups unchanged\n", r.stdout)
      -- JSON dump, read back as YAML
      r = cli({ "dump", account, "Ops", "--json" })
      assert.are.equal(0, r.status)
      local doc = H.json(r.stdout)
      assert.are.same({ email(4), email(5), email(6) }, doc.groups.Ops.members)
      r = cli({ "plan", file(r.stdout), "--detailed-exitcode", "--json" })
      assert.are.equal(0, r.status, r.stderr)
      assert.is_false(H.json(r.stdout).changes)
      assert.are.same({}, H.writes(emu))
    end)

    it("names YAML would read otherwise are quoted, and read back the same", function()
      local names = { "Team: A", "yes", "O'Neil \"x\"", "\195\156n\195\175code", "123", "1e5",
        "- dash", "#hash", "tab\there", "back\\slash", " lead", "null", "~",
        -- line breaks to YAML (U+0085, U+2028, U+2029), C1 and C0 controls, a BOM
        "a\226\128\168b", "\226\128\169p", "nel\194\133x", "csi\194\155\49m", "c0\1\127",
        "\239\187\191bom", "key: value", ": ", "trail ", "'single'", "\"", "?", "@at", "%pct",
        "*star", "&amp", "!bang", "|pipe", ">gt", "[x]", "{y}", "x #y", "3.14", "0x1F", ".inf",
        "c0000000000000000000000000000009 x" }
      local spec = {}
      for i, n in ipairs(names) do spec[i] = { name = n, members = { i } } end
      local seed = emulator.seed{ members = #names, groups = spec }
      emu:reset(seed)
      local r = cli({ "dump", account })
      assert.are.equal(0, r.status, r.stderr)
      local want = {}
      for i, n in ipairs(names) do want[i] = n end
      table.sort(want)
      -- by cfiam, and by a YAML reader that types plain scalars (lyaml's load)
      local cfg = assert(cfiam.load_desired(file(r.stdout)))
      local got = {}
      for _, g in ipairs(cfg.groups) do got[#got + 1] = g.name end
      table.sort(got)
      assert.are.same(want, got)
      got = {}
      for k in pairs(require("lyaml").load(r.stdout).groups) do got[#got + 1] = k end
      for _, k in ipairs(got) do assert.are.equal("string", type(k)) end
      table.sort(got)
      assert.are.same(want, got)
      r = cli({ "plan", file(r.stdout), "--detailed-exitcode" })
      assert.are.equal(0, r.status, r.stdout .. r.stderr)
    end)

    it("a member the account knows no address for is dumped as its id", function()
      local seed, small = emulator.seed{ members = 3, groups = { { name = "G", members = { 1, 2 } } } }
      emu:reset(seed)
      -- the account's listing shows member 2 without an e-mail address
      local listed = { small.members[1], { id = small.members[2].id, status = "accepted" }, small.members[3] }
      emu:fault{ method = "GET", path = "/accounts/" .. account .. "/members$", times = -1,
        body = H.page_body(listed, { page = 1, per_page = 50, count = 3, total_count = 3 }) }
      local state = assert(c:dump_account(account))
      assert.are.same({ small.members[1].email, small.members[2].id }, state.groups[1].members)
      local plan = assert(c:plan_account({ account = account, groups = { G = { members = state.groups[1].members } } }))
      assert.are.equal(0, plan.summary.change)
    end)

    it("a group whose name reads as an id or is shared is dumped by its id", function()
      -- a name in the comment after the id cannot add lines to the file
      local twin = "Dup\226\128\168    members: []\226\128\168    allow_empty: true\226\128\168  Other:"
      local seed = emulator.seed{ members = 3, groups = { { name = "Twin", members = { 1 } },
        { name = "Twin", members = { 2 } }, { name = "c0000000000000000000000000000009", members = { 3 } },
        { name = twin, members = { 1, 2 } }, { name = twin, members = { 3 } },
        { name = "Other", members = { 1 } } } }
      emu:reset(seed)
      local state = assert(c:dump_account(account))
      for _, g in ipairs(state.groups) do
        if g.name ~= "Other" then assert.are.equal(g.id, g.key) end
      end
      local r = cli({ "dump", account })
      assert.are.equal(0, r.status)
      assert.is_nil(r.stdout:find("\226\128\168", 1, true))
      local cfg = assert(cfiam.load_desired(file(r.stdout)))
      assert.are.equal(6, #cfg.groups)
      r = cli({ "plan", file(r.stdout), "--detailed-exitcode" })
      assert.are.equal(0, r.status, r.stdout .. r.stderr)
    end)
  end)

  describe("plan", function()
    it("per group additions and removals by e-mail and id, pending marked, sorted", function()
      local cfg = current({ Eng = { members = { id(14), email(3), email(1):upper(), id(2), email(9) } },
        Ops = { members = { email(4) }, max_removals = 5 } })
      local plan, err = c:plan_account(cfg)
      assert.is_nil(err)
      local eng = group_of(plan, "Eng")
      assert.are.equal(gid("Eng"), eng.id)
      assert.are.same({ email(9), email(14) }, emails(eng.add))
      assert.are.equal("pending", eng.add[2].status)
      assert.are.same({ email(7) }, emails(eng.remove))
      assert.are.same({ email(5), email(6) }, emails(group_of(plan, "Ops").remove))
      assert.are.equal(2, plan.summary.change)
      assert.are.equal(2, plan.summary.unchanged)
      assert.are.equal(2, plan.summary.add)
      assert.are.equal(3, plan.summary.remove)
      assert.are.equal("2 groups change: 2 to add, 3 to remove; 2 groups unchanged",
        plan.summary.line)
      assert.are.same({}, H.writes(emu))
    end)

    it("reads the account's members once for every group", function()
      local cfg = current()
      emu:clear_requests()
      local plan = assert(c:plan_account(cfg))
      assert.are.equal(4, #plan.groups)
      local pages = H.requests(emu, "GET", "/accounts/" .. account .. "/members$")
      -- 120 members, 50 a page: pages 1, 2, 3 (the last one short)
      assert.are.equal(3, #pages)
      for _, g in ipairs({ "Eng", "Ops", "Sales", "Empty" }) do
        assert.are.equal(1, #H.requests(emu, "GET", H.members_pattern(gid(g))), g)
      end
      assert.are.equal(1, #H.requests(emu, "GET", "/iam/user_groups$"))
    end)

    it("prints the same plan for the same state, whatever the file's order", function()
      local a = file(([[
account: %s
groups:
  Ops: { members: [%s, %s] }
  Eng: { members: [%s, %s, %s, %s] }
]]):format(account, email(5), email(40), id(2), email(1), email(21), email(7)))
      local b = file(([[
account: %s
groups:
  Eng: { members: [%s, %s, %s, %s] }
  Ops: { members: [%s, %s] }
]]):format(account, email(21), email(7), email(1), id(2), email(40), email(5)))
      local ra, rb = cli({ "plan", a }), cli({ "plan", b })
      assert.are.equal(0, ra.status, ra.stderr)
      assert.are.equal("", ra.stderr) -- no progress line off a terminal
      assert.are.equal(ra.stdout, rb.stdout)
      assert.are.equal(table.concat({
        "~ Eng (" .. gid("Eng") .. ")",
        "    + " .. email(21) .. " (" .. id(21) .. ") pending",
        "    - " .. email(3) .. " (" .. id(3) .. ")",
        "~ Ops (" .. gid("Ops") .. ")",
        "    + " .. email(40) .. " (" .. id(40) .. ")",
        "    - " .. email(4) .. " (" .. id(4) .. ")",
        "    - " .. email(6) .. " (" .. id(6) .. ")",
        "2 groups change: 2 to add, 3 to remove; 0 groups unchanged", "" }, "\n"), ra.stdout)
      assert.are.same({}, H.writes(emu))
    end)

    it("--group keeps only the named groups of the file", function()
      local path = file(([[
account: %s
groups:
  Ops: { members: [%s] }
  Eng: { members: [%s] }
]]):format(account, email(4), email(1)))
      local r = cli({ "plan", path, "--group", "Ops", "--json" })
      assert.are.equal(0, r.status, r.stderr)
      local doc = H.json(r.stdout)
      assert.are.equal(1, #doc.groups)
      assert.are.equal("Ops", doc.groups[1].name)
      assert.are.equal(0, #H.requests(emu, "GET", H.members_pattern(gid("Eng"))))
      r = cli({ "plan", path, "--group", "Nope" })
      assert.are.equal(2, r.status)
      assert.matches("group " .. Q("Nope") .. " is not in the desired state", r.stderr, 1, true)
    end)

    it("exit codes: 0/1/2 without --detailed-exitcode, 0 none / 2 changes / 1 error with it", function()
      local same = file(cli({ "dump", account }).stdout)
      local change = file(("account: %s\ngroups:\n  Ops: { members: [%s] }\n"):format(account, email(4)))
      local missing = file(("account: %s\ngroups:\n  Nope: { members: [] }\n"):format(account))
      local function status(args) return cli(args).status end
      assert.are.equal(0, status({ "plan", same }))
      assert.are.equal(0, status({ "plan", change }))
      assert.are.equal(1, status({ "plan", missing }))          -- not_found
      assert.are.equal(2, status({ "plan", change, "--bogus" })) -- usage
      assert.are.equal(0, status({ "plan", same, "--detailed-exitcode" }))
      assert.are.equal(2, status({ "plan", change, "--detailed-exitcode" }))
      assert.are.equal(1, status({ "plan", missing, "--detailed-exitcode" }))
      assert.are.equal(1, status({ "plan", change, "--detailed-exitcode", "--bogus" }))
      assert.are.equal(1, status({ "plan", change, "--detailed-exitcode", "--concurrency", "0" }))
      emu:fault{ method = "GET", path = "/members$", status = 500, times = -1 }
      assert.are.equal(1, status({ "plan", same }))
      assert.are.equal(1, status({ "plan", same, "--detailed-exitcode" }))
      emu:clear_faults()
      assert.are.same({}, H.writes(emu))
    end)

    it("an unknown address or member id is named with its file line", function()
      local path = file(("account: %s\ngroups:\n  Ops:\n    members:\n      - %s\n      - nobody@example.com\n"
        .. "      - %s\n"):format(account, email(4), ("f"):rep(32)))
      local r = cli({ "plan", path })
      assert.are.equal(2, r.status)
      assert.matches("2 entries are not a member of account " .. account .. ": " .. path
        .. ":6: groups.Ops.members[2]: nobody@example.com; " .. path .. ":7: groups.Ops.members[3]: "
        .. ("f"):rep(32), r.stderr, 1, true)
      local plan, err = c:plan_account(assert(cfiam.load_desired(path)))
      assert.is_nil(plan)
      assert.are.same({ "nobody@example.com", ("f"):rep(32) }, err.unknown)
      assert.are.same({ "Ops" }, err.failed)
      assert.are.same({}, H.writes(emu))
    end)
  end)

  describe("apply", function()
    it("writes each group by the difference: one POST of additions, one DELETE per removal", function()
      local plan = assert(c:plan_account(current({ Eng = { members = { email(1), email(2), email(9), email(11) } },
        Ops = { members = { email(4), email(5) } } })))
      emu:clear_requests()
      local result, err = c:apply_account(plan)
      assert.is_nil(err)
      assert.are.equal(2, result.written)
      assert.are.equal(0, result.failed)
      local writes = H.writes(emu)
      local seen = {}
      for _, w in ipairs(writes) do seen[#seen + 1] = w.method .. " " .. w.path:match("user_groups/(.*)$") end
      table.sort(seen)
      assert.are.same({
        "DELETE " .. gid("Eng") .. "/members/" .. id(3),
        "DELETE " .. gid("Eng") .. "/members/" .. id(7),
        "DELETE " .. gid("Ops") .. "/members/" .. id(6),
        "POST " .. gid("Eng") .. "/members" }, seen)
      assert.are.same(H.sorted_ids({ id(1), id(2), id(9), id(11) }), H.state_members(emu, account, gid("Eng")))
      assert.are.same(H.sorted_ids({ id(4), id(5) }), H.state_members(emu, account, gid("Ops")))
      -- and now there is nothing to do
      plan = assert(c:plan_account(current()))
      assert.are.equal(0, plan.summary.change)
    end)

    it("applies a plan that went through JSON, and raises for a malformed one, sending nothing", function()
      local cjson = require("cjson")
      local plan = assert(c:plan_account(current({ Ops = { members = { email(4), email(5) } } })))
      local stored = cjson.encode(plan)
      local function edited(f)
        local p = cjson.decode(stored)
        f(p)
        return p
      end
      emu:clear_requests()
      local bad = {
        { function(p) p.account = "acct" end, "plan.account: a 32-character hexadecimal id expected" },
        { function(p) p.groups = { p.groups[1], nil, p.groups[3] } end, "plan.groups: a list expected" },
        { function(p) group_of(p, "Ops").remove[1].id = "../../x" end,
          "remove[1]: a member with a 32-character hexadecimal id expected" },
        { function(p) group_of(p, "Ops").id = 7 end, ".id: a 32-character hexadecimal id expected" },
        { function(p) group_of(p, "Ops").add = "x" end, ".add: table expected, got string" },
        { function(p) group_of(p, "Ops").max_removals = nil end, ".max_removals: a number from 0 up expected" },
        { function(p) group_of(p, "Ops").max_removals = 0 / 0 end, ".max_removals: a number from 0 up expected" },
        { function(p) p.failed = 5 end, "plan.failed: table expected" },
        { function(p) group_of(p, "Ops").guard = {} end, ".guard: a guard error with a message expected" },
      }
      for _, case in ipairs(bad) do
        local ok, msg = pcall(c.apply_account, c, edited(case[1]))
        assert.is_false(ok)
        assert.matches("bad argument to 'apply_account'", msg, 1, true)
        assert.matches(case[2], msg, 1, true)
      end
      assert.are.same({}, H.writes(emu))
      local result = assert(c:apply_account(cjson.decode(stored)))
      assert.are.equal(1, result.written)
      assert.are.same(H.sorted_ids({ id(4), id(5) }), H.state_members(emu, account, gid("Ops")))
    end)

    it("a plan with max_removals .inf survives JSON (cjson and the command's writer)", function()
      local cjson = require("cjson")
      local cfg = current({ Sales = { members = { email(10) } } })
      cfg.defaults = { max_removals = math.huge }
      local plan = assert(c:plan_account(cfg))
      local ok, stored = pcall(cjson.encode, plan)
      assert.is_true(ok, tostring(stored))
      assert.are.same({}, plan.refused)
      local back = cjson.decode(require("cfiam.cli_out").json(plan))
      assert.are.equal(cjson.decode(stored).groups[1].max_removals, back.groups[1].max_removals)
      local result = assert(c:apply_account(back))
      assert.are.equal(1, result.written)
      assert.are.same({ id(10) }, H.state_members(emu, account, gid("Sales")))
    end)

    it("plan, apply and dump --json errors carry Cloudflare's errors array", function()
      local path = file("account: " .. account .. "\ngroups:\n  Ops: {members: [" .. email(4) .. "]}\n")
      for _, args in ipairs({ { "plan", path }, { "apply", path, "--yes" }, { "dump", account } }) do
        emu:clear_faults()
        emu:fault{ method = "GET", status = 403, times = -1 }
        args[#args + 1] = "--json"
        local r = cli(args)
        assert.are.equal(1, r.status, r.stderr)
        local e = H.json(r.stdout).error
        assert.are.equal("permission", e.kind)
        assert.is_table(e.errors, args[1])
        assert.is_number(e.errors[1].code, args[1])
        assert.is_string(e.errors[1].message, args[1])
      end
      assert.are.same({}, H.writes(emu))
    end)

    it("a failure of many groups names five of them, after the cause, within the message", function()
      local groups = {}
      for i = 1, 12 do
        groups[("Team-%02d-"):format(i) .. ("x"):rep(120)] = { create = true, members = {} }
      end
      local plan = assert(c:plan_account({ account = account, groups = groups }))
      emu:fault{ method = "POST", status = 503, times = -1 }
      local result, err = c:apply_account(plan)
      assert.is_nil(result)
      assert.are.equal(12, #err.failed)
      assert.matches("12 groups of 12 failed, 0 written: HTTP 503", err.message, 1, true)
      assert.matches(" and 7 more$", err.message)
      assert.is_true(#err.message < 1023, #err.message)
    end)

    it("an answer with a member id that is not 32 hex fails apply with one line and exit 1", function()
      local path = file("account: " .. account .. "\ngroups:\n  Ops: {members: [" .. email(4) .. "]}\n")
      for _, json in ipairs({ false, true }) do
        emu:clear_faults()
        emu:fault{ method = "GET", path = H.members_pattern(gid("Ops")), times = -1,
          body = H.page_body({ ids.members[4], ids.members[5], { id = "x/y", email = "x@example.com",
            status = "accepted" } }, { page = 1, per_page = 500, count = 3, total_count = 3 }) }
        local args = { "apply", path, "--yes" }
        if json then args[#args + 1] = "--json" end
        local r = cli(args)
        assert.are.equal(1, r.status, r.stderr)
        assert.is_nil(r.stderr:find("traceback", 1, true), r.stderr)
        assert.are.equal(1, select(2, r.stderr:gsub("\n", "")), r.stderr)
        assert.matches("^cfiam invalid_response: ", r.stderr)
        if json then assert.are.equal("invalid_response", H.json(r.stdout).error.kind) end
      end
      assert.are.same({}, H.writes(emu))
    end)

    it("a file over 16 MiB is refused with one line, exit 2, nothing sent", function()
      local path = file("account: " .. account .. "\ngroups: {}\n"
        .. ("#" .. ("x"):rep(1023) .. "\n"):rep(16 * 1024 + 1))
      for _, cmd in ipairs({ "plan", "apply" }) do
        local r = cli({ cmd, path, "--json" })
        assert.are.equal(2, r.status, r.stderr)
        assert.matches("larger than the 16 MiB limit", r.stderr, 1, true)
        assert.are.equal("invalid_argument", H.json(r.stdout).error.kind)
      end
      local cfg, err = cfiam.load_desired(path)
      assert.is_nil(cfg)
      assert.matches(path .. ": cannot read the file: larger than the 16 MiB limit", err.message, 1, true)
      assert.are.same({}, emu:requests())
    end)

    it("removes nothing from a group whose additions were refused", function()
      -- Ops' three members swapped for one new member: if the POST is
      -- refused (a member that cannot join), the DELETEs must not empty it.
      local plan = assert(c:plan_account(current({ Ops = { members = { email(10) }, allow_empty = false } })))
      emu:fault{ method = "POST", dsr = true, times = 1 }
      emu:clear_requests()
      local none, err = c:apply_account(plan)
      assert.is_nil(none)
      assert.are.equal("member_not_eligible", err.reason)
      local writes = H.writes(emu)
      assert.are.equal(1, #writes)
      assert.are.equal("POST", writes[1].method)
      assert.are.same(H.sorted_ids({ id(4), id(5), id(6) }), H.state_members(emu, account, gid("Ops")))
      local g
      for _, r in ipairs(err.result.groups) do if r.id == gid("Ops") then g = r end end
      assert.are.equal("failed", g.outcome)
      assert.are.same({}, g.removed)
    end)

    it("reports a group deleted after the plan as failed, not as its removals written", function()
      local plan = assert(c:plan_account(current({ Ops = { members = { email(4) } } })))
      assert(c:delete_group(account, gid("Ops"), { force = true }))
      local none, err = c:apply_account(plan)
      assert.is_nil(none)
      assert.are.equal("not_found", err.kind)
      assert.matches("no longer exists", err.message, 1, true)
      local g
      for _, r in ipairs(err.result.groups) do if r.id == gid("Ops") then g = r end end
      assert.are.equal("failed", g.outcome)
      assert.are.same({}, g.removed)
    end)

    it("never touches a member that no listing showed", function()
      -- A member added to Ops after the plan was made is not removed.
      local plan = assert(c:plan_account(current({ Ops = { members = { email(4) } } })))
      assert(c:add_members(account, gid("Ops"), { id(50) }))
      assert(c:apply_account(plan))
      assert.are.same(H.sorted_ids({ id(4), id(50) }), H.state_members(emu, account, gid("Ops")))
    end)

    describe("refuses everything, writing nothing, when", function()
      local function refused(cfg, kind, fragment)
        local plan, err = c:plan_account(cfg)
        local result
        if plan then
          result, err = c:apply_account(plan)
        end
        assert.is_nil(result)
        assert.are.equal(kind, err.kind)
        assert.matches(fragment, err.message, 1, true)
        assert.are.same({}, H.writes(emu))
        return err
      end

      it("a group removes more than its max_removals (the others are fine)", function()
        refused(current({ Sales = { members = { email(10) }, max_removals = 19 },
          Ops = { members = { email(4), email(5), email(6), email(60) } } }),
          "guard", "the plan removes 20 members from group " .. Q("Sales") .. ", more than max_removals (19)")
      end)

      it("defaults.max_removals applies to every group", function()
        local cfg = current({ Ops = { members = { email(4) } } })
        cfg.defaults = { max_removals = 1 }
        refused(cfg, "guard", "the plan removes 2 members from group " .. Q("Ops") .. ", more than max_removals (1)")
      end)

      it("a group would become empty without allow_empty", function()
        refused(current({ Ops = { members = {} } }), "guard",
          "the plan empties group " .. Q("Ops") .. " (3 members removed)")
        local plan = assert(c:plan_account(current({ Ops = { members = {}, allow_empty = true } })))
        assert(c:apply_account(plan))
        assert.are.same({}, H.state_members(emu, account, gid("Ops")))
      end)

      it("a protected member would be removed", function()
        local cfg = current({ Ops = { members = { email(4), email(5) } } })
        cfg.protect = { email(6):upper() }
        refused(cfg, "guard", "the plan removes protected member " .. Q(email(6)) .. " from group " .. Q("Ops"))
        -- protect by id too
        cfg.protect = { id(6) }
        refused(cfg, "guard", "protected member")
        -- an unknown protected address is an error, not a silent no-op
        cfg.protect = { "breakglass@example.com" }
        refused(cfg, "invalid_argument", "protect[1]: breakglass@example.com")
      end)

      it("an address is unknown", function()
        refused(current({ Ops = { members = { email(4), "ghost@example.com" } },
          Eng = { members = { email(1) } } }), "invalid_argument", "groups.Ops.members[2]: ghost@example.com")
      end)

      it("a group does not exist and create is not set", function()
        refused(current({ Ghosts = { members = { email(1) } } }), "not_found",
          "no user group named " .. Q("Ghosts") .. " in account " .. account .. " (set create: true to create it)")
      end)

      it("a stored plan that lost its guard, ignoring pending invitees, still may not empty a group", function()
        -- Ops (4, 5, 6) to hold only 14, a pending invitee who is not a
        -- member: ignored, so the group would be empty after the write
        local cfg = current({ Ops = { members = { email(14) }, ignore_pending = true } })
        local plan = assert(c:plan_account(cfg))
        assert.matches("empties group", group_of(plan, "Ops").guard.message, 1, true)
        local stored = require("cjson").decode(require("cjson").encode(plan))
        group_of(stored, "Ops").guard, stored.refused = nil, {}
        local none, err = c:apply_account(stored)
        assert.is_nil(none)
        assert.are.equal("guard", err.kind)
        assert.matches("the plan empties group", err.message, 1, true)
        assert.are.same({}, H.writes(emu))
      end)

      it("a stored or edited plan has lost its guard", function()
        local plan = assert(c:plan_account(current({ Ops = { members = {} } })))
        assert.are.equal(1, #plan.refused)
        group_of(plan, "Ops").guard, plan.refused = nil, {}
        local none, err = c:apply_account(plan)
        assert.is_nil(none)
        assert.are.equal("guard", err.kind)
        assert.matches("the plan empties group " .. Q("Ops"), err.message, 1, true)
        plan = assert(c:plan_account(current({ Sales = { members = { email(10) }, max_removals = 19 } })))
        group_of(plan, "Sales").guard, plan.refused = nil, {}
        none, err = c:apply_account(plan)
        assert.is_nil(none)
        assert.matches("more than max_removals (19)", err.message, 1, true)
        assert.are.same({}, H.writes(emu))
      end)

      it("a stored plan that lost its guard still protects the protected members", function()
        local cfg = current({ Ops = { members = { email(4), email(5) } } })
        cfg.protect = { email(6) }
        local plan = assert(c:plan_account(cfg))
        assert.are.same({ id(6) }, plan.protect)
        local stored = require("cjson").decode(require("cjson").encode(plan))
        group_of(stored, "Ops").guard, stored.refused = nil, {}
        local none, err = c:apply_account(stored)
        assert.is_nil(none)
        assert.are.equal("guard", err.kind)
        assert.matches("the plan removes protected member " .. Q(email(6)), err.message, 1, true)
        assert.are.same({}, H.writes(emu))
      end)

      it("one group's listing fails", function()
        local cfg = current({ Ops = { members = { email(4) } } })
        emu:clear_requests()
        emu:fault{ method = "GET", path = H.members_pattern(gid("Sales")), status = 500, times = -1 }
        local err = refused(cfg, "server", "1 group of 4 failed")
        assert.are.same({ "Sales" }, err.failed)
        local eng = group_of(err.plan, "Ops")
        assert.are.equal(2, #eng.remove)   -- the others were planned, but not written
        local none, refusal = c:apply_account(err.plan)
        assert.is_nil(none)
        assert.are.equal("invalid_argument", refusal.kind)
        assert.are.same({}, H.writes(emu))
      end)

      it("a listing claims fewer members than it lists, or more", function()
        -- Sales holds 21; a total_count of 40 on its only page is incomplete.
        local page = {}
        for i = 10, 30 do page[#page + 1] = ids.members[i] end
        local cfg = current({ Ops = { members = { email(4) } } })
        emu:clear_requests()
        emu:fault{ method = "GET", path = H.members_pattern(gid("Sales")), times = -1,
          body = H.page_body(page, { page = 1, per_page = 500, count = 21, total_count = 40 }) }
        refused(cfg, "incomplete",
          "ended on page 1 with 21 listed, but the server's total_count says 40")
      end)
      it("the account's listing miscounts its members, low or high", function()
        local cfg = current({ Ops = { members = { email(4), email(110) } } })
        for _, n in ipairs({ 50, 100, 121, 500 }) do
          emu:clear_requests()
          emu:fault{ method = "GET", path = "/accounts/" .. account .. "/members$", times = -1,
            total_count = n }
          local err = refused(cfg, "incomplete", "the server's total_count says " .. n)
          assert.matches("^listing the members of account " .. account, err.message)
          emu:clear_faults()
        end
      end)
      it("a page read in the same round after a short one lists members", function()
        -- Pages 2 and 3 of the account's members go in one batch; page 2
        -- comes back short, yet page 3 still lists members: the pages
        -- disagree, so nothing says the listing is whole.
        local cfg = current({ Ops = { members = { email(4) } } })
        local short = {}
        for i = 51, 60 do short[#short + 1] = ids.members[i] end
        emu:fault{ method = "GET", path = "/accounts/" .. account .. "/members$",
          query = "[?&]page=2&", times = -1,
          body = H.page_body(short, { page = 2, per_page = 50, count = 10, total_count = 120 }) }
        local err = refused(cfg, "incomplete", "listing the members of account "
          .. account .. " returned members on page 3 after a short page 2")
        assert.are.equal(3, err.pages)
      end)
    end)

    it("the command refuses a guard with exit 2 and shows why, nothing written", function()
      local path = file(("account: %s\nprotect: [%s]\ngroups:\n  Ops: { members: [%s] }\n")
        :format(account, email(5), email(4)))
      local r = cli({ "apply", path, "--yes" })
      assert.are.equal(2, r.status)
      assert.matches("    refused: the plan removes protected member " .. Q(email(5)), r.stdout, 1, true)
      assert.matches("cfiam guard: not applied, nothing written", r.stderr, 1, true)
      r = cli({ "plan", path, "--detailed-exitcode" })
      assert.are.equal(1, r.status)
      assert.are.same({}, H.writes(emu))
    end)

    it("one group failing does not stop the others; the output says which were written", function()
      emu:fault{ method = "POST", path = H.members_pattern(gid("Eng")), status = 500, times = -1 }
      local log = os.tmpname()
      files[#files + 1] = log
      local path = file(("account: %s\ngroups:\n  Eng: { members: [%s, %s, %s, %s, %s] }\n"
        .. "  Ops: { members: [%s, %s] }\n  Empty: { members: [%s] }\n")
        :format(account, email(1), email(2), email(3), email(7), email(8), email(4), email(5), email(9)))
      local r = cli({ "apply", path, "--yes", "--log", log, "--json" })
      assert.are.equal(1, r.status, r.stderr)
      local doc = H.json(r.stdout)
      local outcome = {}
      for _, g in ipairs(doc.result.groups) do outcome[g.name] = g.outcome end
      assert.are.same({ Eng = "failed", Ops = "written", Empty = "written" }, outcome)
      assert.are.equal(2, doc.result.written)
      assert.are.equal(1, doc.result.failed)
      assert.are.equal("server", doc.error.kind)
      assert.matches("1 group of 3 failed, 2 written: ", r.stderr, 1, true)
      assert.matches('; failed: "Eng"', r.stderr, 1, true)
      assert.are.same(H.sorted_ids({ id(4), id(5) }), H.state_members(emu, account, gid("Ops")))
      assert.are.same({ id(9) }, H.state_members(emu, account, gid("Empty")))
      assert.are.same(H.sorted_ids({ id(1), id(2), id(3), id(7) }), H.state_members(emu, account, gid("Eng")))
      -- text output
      emu:reset()
      emu:fault{ method = "POST", path = H.members_pattern(gid("Eng")), status = 500, times = -1 }
      r = cli({ "apply", path, "--yes", "--log", log })
      assert.are.equal(1, r.status)
      assert.matches("failed: Eng (" .. gid("Eng") .. "): +0 -0 (0 of 1 changes made): cfiam server:",
        r.stdout, 1, true)
      assert.matches("written: Ops (" .. gid("Ops") .. "): +0 -1\n", r.stdout, 1, true)
      assert.matches("2 groups written, 1 failed\n", r.stdout, 1, true)
      -- the audit log: one JSON line per group written, both runs appended
      local lines = {}
      for line in io.lines(log) do lines[#lines + 1] = H.json(line) end
      assert.are.equal(6, #lines)
      local by = {}
      for _, l in ipairs(lines) do by[l.group_name] = l end
      assert.are.equal("failed", by.Eng.outcome)
      assert.matches("HTTP 500", by.Eng.error, 1, true)
      assert.are.equal("written", by.Ops.outcome)
      assert.are.same({ id(6) }, by.Ops.removed)
      assert.are.same({}, by.Ops.added)
      assert.are.same({ id(9) }, by.Empty.added)
      assert.are.equal(gid("Empty"), by.Empty.group_id)
      assert.are.equal(account, by.Empty.account)
      assert.matches("%-EMU$", by.Empty.ray_id)
      assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ$", by.Empty.time)
      for _, l in ipairs(lines) do
        assert.is_nil(l.error and l.error:find(H.TOKEN, 1, true))
      end
    end)

    it("a removal that is already gone (404) counts as done", function()
      local plan = assert(c:plan_account(current({ Ops = { members = { email(4) } } })))
      assert(c:remove_members(account, gid("Ops"), { id(5) }))
      local result, err = c:apply_account(plan)
      assert.is_nil(err)
      local ops
      for _, g in ipairs(result.groups) do if g.name == "Ops" then ops = g end end
      assert.are.equal("written", ops.outcome)
      assert.are.same({ id(5), id(6) }, ops.removed)
      assert.are.same({ id(4) }, H.state_members(emu, account, gid("Ops")))
    end)

    it("asks on a terminal and writes only on y or yes", function()
      local path = file(("account: %s\ngroups:\n  Ops: { members: [%s, %s] }\n"):format(account, email(4), email(5)))
      local r = cli({ "apply", path }, { env = H.env(emu, { CFIAM_TTY = "1" }), stdin = "yabba\n" })
      assert.are.equal(2, r.status)
      assert.matches("Apply this plan to 1 group of account " .. account .. "? [y/N]", r.stderr, 1, true)
      assert.are.same({}, H.writes(emu))
      r = cli({ "apply", path }, { env = H.env(emu, { CFIAM_TTY = "1" }), stdin = "  YES \n" })
      assert.are.equal(0, r.status, r.stderr)
      assert.are.same(H.sorted_ids({ id(4), id(5) }), H.state_members(emu, account, gid("Ops")))
      -- without a terminal: --yes is needed
      emu:reset()
      r = cli({ "apply", path })
      assert.are.equal(2, r.status)
      assert.matches("pass --yes", r.stderr, 1, true)
      assert.are.same({}, H.writes(emu))
      -- nothing to change: nothing written, exit 0, no question
      r = cli({ "apply", file(cli({ "dump", account }).stdout) })
      assert.are.equal(0, r.status)
      assert.matches("nothing to change", r.stdout, 1, true)
    end)

    it("ignore_pending: pending invitees are neither added nor removed", function()
      -- Eng holds 7 (pending); 14 is pending and not in Eng.
      local cfg = current({ Eng = { members = { email(1), email(2), email(14), email(15) },
        ignore_pending = true } })
      local plan = assert(c:plan_account(cfg))
      local eng = group_of(plan, "Eng")
      assert.are.same({ email(15) }, emails(eng.add))
      assert.are.same({ email(3) }, emails(eng.remove))
      assert.are.same({ email(7), email(14) }, emails(eng.ignored))
      assert(c:apply_account(plan))
      assert.are.same(H.sorted_ids({ id(1), id(2), id(7), id(15) }), H.state_members(emu, account, gid("Eng")))
      -- without it, the same file adds 14 and removes 7
      cfg.groups.Eng.ignore_pending = nil
      eng = group_of(assert(c:plan_account(cfg)), "Eng")
      assert.are.same({ email(14) }, emails(eng.add))
      assert.are.same({ email(7) }, emails(eng.remove))
      -- defaults.ignore_pending, in the command's text
      local path = file(("account: %s\ndefaults: { ignore_pending: true }\ngroups:\n"
        .. "  Eng: { members: [%s, %s, %s, %s] }\n"):format(account, email(1), email(2), email(15), email(21)))
      local r = cli({ "plan", path })
      assert.matches("    = " .. email(7) .. " (" .. id(7) .. ") pending (ignore_pending: left as is)",
        r.stdout, 1, true)
      assert.matches("    = " .. email(21) .. " (" .. id(21) .. ") pending (ignore_pending", r.stdout, 1, true)
    end)

    it("creates a group marked create: true, with its members", function()
      local path = file(("account: %s\ngroups:\n  On-call:\n    create: true\n    members: [%s, %s]\n"
        .. "  Ops: { members: [%s, %s, %s] }\n"):format(account, email(12), email(11), email(4), email(5), email(6)))
      local r = cli({ "plan", path })
      assert.are.equal(0, r.status, r.stderr)
      assert.matches("+ On-call (to create)\n    + " .. email(11), r.stdout, 1, true)
      assert.are.same({}, H.writes(emu))
      r = cli({ "apply", path, "--yes", "--json" })
      assert.are.equal(0, r.status, r.stderr)
      local g = H.json(r.stdout).result.groups[1]
      assert.are.equal("On-call", g.name)
      assert.is_true(g.created)
      local found = assert(c:find_group(account, "On-call"))
      assert.are.equal(found.id, g.id)
      assert.are.same(H.sorted_ids({ id(11), id(12) }), H.state_members(emu, account, found.id))
      -- a second plan finds it, and has nothing to do
      r = cli({ "plan", path, "--detailed-exitcode" })
      assert.are.equal(0, r.status, r.stdout)
      -- a group to create with no members is created empty
      local plan = assert(c:plan_account({ account = account, groups = { Fresh = { create = true, members = {} } } }))
      assert.is_true(plan.groups[1].create)
      assert(c:apply_account(plan))
      assert(c:find_group(account, "Fresh"))
    end)

    it("a group named twice, by name and by id, is refused", function()
      local plan, err = c:plan_account({ account = account, groups = {
        Ops = { members = { email(4) } }, [gid("Ops")] = { members = { email(5) } } } })
      assert.is_nil(plan)
      assert.are.equal("invalid_argument", err.kind)
      assert.matches("is named twice in the desired state", err.message, 1, true)
    end)

    it("reads pages of the size the server says it used, as list_members does", function()
      -- a server that pages Ops by 2 although 500 were asked for
      local function page(n, members)
        return H.page_body(members, { page = n, per_page = 2, count = #members, total_count = 3 })
      end
      emu:fault{ method = "GET", path = H.members_pattern(gid("Ops")), query = "[?&]page=1&",
        status = 200, times = -1, body = page(1, { ids.members[4], ids.members[5] }) }
      emu:fault{ method = "GET", path = H.members_pattern(gid("Ops")), query = "[?&]page=2&",
        status = 200, times = -1, body = page(2, { ids.members[6] }) }
      local plan, err = c:plan_account(current({ Ops = { members = { email(4), email(5), email(6) } } }))
      assert.is_nil(err)
      assert.are.equal(0, plan.summary.change)
      assert.are.same({ email(4), email(5), email(6) }, emails(group_of(plan, "Ops").keep))
    end)

    it("concurrency is checked, and any value gives the same plan", function()
      local none, err = c:plan_account(current(), { concurrency = 0 })
      assert.is_nil(none)
      assert.are.equal("invalid_argument", err.kind)
      assert.matches("concurrency: expected a whole number from 1 to 64, got 0", err.message, 1, true)
      assert.has_error(function() c:plan_account(current(), { colour = 1 }) end)
      local cfg = current({ Sales = { members = { email(10) }, max_removals = 100 } })
      local a = assert(c:plan_account(cfg, { concurrency = 1 }))
      local b = assert(c:plan_account(cfg, { concurrency = 16 }))
      assert.are.same(a.groups, b.groups)
    end)
  end)

  it("the README's script plans and applies a file", function()
    local readme = assert(io.open("README.md", "rb")):read("*a")
    local section = assert(readme:find("## Managing an account from a file", 1, true))
    local code = assert(readme:match("```lua\n(.-)```", section))
    local script = file(code)
    local path = file(("account: %s\nprotect: [%s]\ngroups:\n  Ops: { members: [%s, %s, %s] }\n")
      :format(account, email(4), email(4), email(5), email(33)))
    local r = H.run(script, { path }, { env = H.env(emu) })
    assert.are.equal(0, r.status, r.stderr)
    assert.matches("Ops\t+\t" .. email(33), r.stdout, 1, true)
    assert.matches("Ops\t-\t" .. email(6), r.stdout, 1, true)
    assert.matches("1 group changes: 1 to add, 1 to remove; 0 groups unchanged", r.stdout, 1, true)
    assert.matches("\tOps\twritten\t1 added\t1 removed\n1 groups written\n", r.stdout, 1, true)
    assert.are.same(H.sorted_ids({ id(4), id(5), id(33) }), H.state_members(emu, account, gid("Ops")))
    -- a guard: exit 2, nothing written
    emu:clear_requests()
    path = file(("account: %s\nprotect: [%s]\ngroups:\n  Ops: { members: [%s] }\n")
      :format(account, email(4), email(5)))
    r = H.run(script, { path }, { env = H.env(emu) })
    assert.are.equal(2, r.status)
    assert.matches("Ops\trefused:\tthe plan removes protected member " .. Q(email(4)), r.stdout, 1, true)
    assert.are.same({}, H.writes(emu))
  end)

  it("batches the reads through request_many when the client has it: two rounds for a plan", function()
    local methods = require("cfiam.core").client_methods
    local saved = rawget(methods, "request_many")
    local batches = {}
    -- A stand-in with request_many's contract (results in the order of
    -- calls, whatever order they are made in), for as long as this test runs.
    local function many(self, calls, opts)
      batches[#batches + 1] = { n = #calls, concurrency = opts.concurrency }
      local out = {}
      for i = #calls, 1, -1 do
        local call = calls[i]
        local res, meta = self:request(call[1], call[2], { query = call.query, ids = call.ids,
          json = call.json, decode = call.decode })
        if res == nil and type(meta) == "table" and meta.kind then out[i] = { err = meta }
        else out[i] = { result = res, meta = meta } end
      end
      return out
    end
    local cfg = current({ Ops = { members = { email(4), email(8) } } })
    local sequential = assert(c:plan_account(cfg))
    methods.request_many = saved or many
    local ok, plan = pcall(c.plan_account, c, cfg, { concurrency = 5 })
    methods.request_many = saved
    assert.is_true(ok, plan)
    assert.are.same(sequential.groups, plan.groups)
    if not saved then
      -- round 1: the groups and page 1 of the account's members; round 2:
      -- pages 2-3 of the account's members and the four groups' members
      assert.are.same({ { n = 2, concurrency = 5 }, { n = 6, concurrency = 5 } }, batches)
    end
  end)

  it("draws a progress line on standard error when it is a terminal and the run lasts over a second", function()
    local path = file(cli({ "dump", account }).stdout)
    -- every answer after 0.4 s: the plan's three rounds last over a second
    emu:fault{ delay_ms = 400, times = -1 }
    local out = os.tmpname()
    files[#files + 1] = out
    -- the command under a pseudo-terminal (script), its stdout to a file
    local function on_terminal(args)
      local inner = table.concat({ H.shquote(H.LUA), "bin/cfiam", table.concat(args, " "),
        ">" .. H.shquote(out) }, " ")
      local cmd = table.concat({ "env -i PATH=/usr/local/bin:/usr/bin:/bin",
        "LUA_PATH=" .. H.shquote("./lua/?.lua;./lua/?/init.lua;;"),
        "LUA_CPATH=" .. H.shquote("./" .. H.BUILD .. "/?.so;;"),
        "CLOUDFLARE_API_TOKEN=" .. H.TOKEN, "CLOUDFLARE_BASE_URL=" .. H.shquote(emu.base_url),
        "script -qec", H.shquote(inner), "/dev/null </dev/null" }, " ")
      emu:fault{ delay_ms = 400, times = -1 }
      local p = assert(io.popen(cmd, "r"))
      local terminal = p:read("*a")
      p:close()
      emu:clear_faults()
      local f = assert(io.open(out, "rb"))
      local stdout = f:read("*a")
      f:close()
      return terminal, stdout
    end
    local terminal, stdout = on_terminal({ "plan", H.shquote(path) })
    assert.matches("\rplan: 4/4 groups", terminal, 1, true)
    assert.matches("\r\27[K", terminal, 1, true)  -- and cleared at the end
    assert.are.equal("0 groups change: 0 to add, 0 to remove; 4 groups unchanged\n", stdout)
    -- --json: no progress line even on a terminal
    terminal, stdout = on_terminal({ "plan", "--json", H.shquote(path) })
    assert.is_false(H.json(stdout).changes)
    assert.is_nil(terminal:find("groups", 1, true), terminal)
  end)

  it("no piece of the credential reaches the output, whatever the file holds", function()
    if not (require("cfiam.core").scrub or rawget(cfiam, "_scrub")) then
      pending("needs the C module's scrubbing")
      return
    end
    local token = H.TOKEN
    local path = file(("account: %s\nprotect: [%s@example.com]\ngroups:\n  %s: { members: [%s@example.com] }\n")
      :format(account, token, token, token))
    local log = os.tmpname()
    files[#files + 1] = log
    for _, args in ipairs({ { "plan", path }, { "plan", path, "--json" }, { "apply", path, "--yes", "--log", log },
      { "apply", path, "--json", "--yes" }, { "plan", path, "--group", token }, { "dump", account, token },
      { "dump", account, token, "--json" }, { "plan", token }, { "plan", path, "--" .. token } }) do
      local r = cli(args)
      assert.are_not.equal(0, r.status, table.concat(args, " "))
      assert.is_nil(r.stdout:find(token, 1, true), r.stdout)
      assert.is_nil(r.stderr:find(token, 1, true), r.stderr)
    end
    assert.are.same({}, H.writes(emu))
  end)

  it("Ctrl-C stops plan and apply at once: exit 130, one line, nothing written", function()
    if not H.spawn then
      pending("needs the command's Ctrl-C handling (spec helper spawn)")
      return
    end
    local path = file(("account: %s\ngroups:\n  Ops: { members: [%s] }\n  Eng: { members: [%s] }\n")
      :format(account, email(4), email(1)))
    for _, case in ipairs({
      -- Eng's listing does not answer
      { { "apply", path, "--yes" }, { delay_ms = 20000 } },
      { { "apply", path, "--yes", "--json" }, { delay_ms = 20000 } },
      { { "plan", path, "--detailed-exitcode" }, { delay_ms = 20000 } },
      -- Eng's listing is answered 429 with a wait the batch holds for
      -- (request_many's hold, within the timeout)
      { { "plan", path }, { status = 429, headers = { ["Retry-After"] = "50" } } },
      { { "apply", path, "--yes", "--json" }, { status = 429, headers = { ["Retry-After"] = "50" } } },
    }) do
      local args, fault = case[1], case[2]
      emu:reset()
      fault.method, fault.path, fault.times = "GET", H.members_pattern(gid("Eng")), -1
      emu:fault(fault)
      emu:clear_requests()
      local child = H.spawn("bin/cfiam", args, { env = H.env(emu) })
      assert.is_truthy(H.poll(function()
        return #H.requests(emu, "GET", H.members_pattern(gid("Eng"))) > 0 end, 10),
        "the command never listed the group")
      child:signal("INT")
      local r = child:wait(10)
      assert.is_not_nil(r, "the command did not stop on SIGINT")
      assert.are.equal(130, r.status, r.stderr)
      assert.matches("^cfiam: interrupted[^\n]*\n$", r.stderr)
      if args[4] == "--json" then
        assert.are.equal("interrupted", H.json(r.stdout).error.kind)
      else
        assert.are.equal("", r.stdout)
      end
      assert.are.same({}, H.writes(emu))
    end
  end)
end)
