-- spec/27-groups_cli_spec.lua: `cfiam groups show|create|rename|delete`,
-- run as a child process (bin/cfiam) against the emulator: output, --json
-- documents, exit codes, GROUP as an id or a name, conflicts, and delete's
-- description, guard and confirmation (refused without a terminal;
-- CFIAM_TTY=1 stands in for one). Every refusal writes nothing.
local emulator = require("helpers.emulator")
local H = require("helpers.cli")

describe("cfiam groups show|create|rename|delete", function()
  local emu, ids, A, ops, empty
  local PG, RG = ("5"):rep(32), ("6"):rep(32)

  setup(function()
    local seed
    seed, ids = emulator.seed{ members = 5, groups = { { name = "Ops", members = 2 },
      { name = "Empty", members = 0 }, { name = "Directory", members = 1 } } }
    A = ids.account
    seed.accounts[A].groups[1].policies = { { id = ("7"):rep(32), access = "allow",
      permission_groups = { { id = PG, name = "Administrator" } },
      resource_groups = { { id = RG } } } }
    seed.accounts[A].groups[3].scim = true
    emu = emulator.start{ seed = seed }
    ops, empty = ids.groups.Ops.id, ids.groups.Empty.id
  end)

  teardown(function()
    if emu then emu:stop() end
  end)

  before_each(function()
    emu:reset()
  end)

  local function cfiam(args, opts)
    opts = opts or {}
    opts.env = opts.env or H.env(emu)
    return H.run("bin/cfiam", args, opts)
  end

  local function state_names()
    local names = {}
    for _, g in ipairs(emu:state().accounts[A].groups) do names[#names + 1] = g.name end
    table.sort(names)
    return names
  end

  local function tmpfile(text)
    local path = os.tmpname()
    local f = assert(io.open(path, "wb"))
    f:write(text)
    f:close()
    return path
  end

  it("the help lists the four subcommands", function()
    local r = cfiam({ "groups", "--help" })
    assert.are.equal(0, r.status)
    for _, s in ipairs({ "cfiam groups show", "cfiam groups create", "--policies FILE.json",
      "cfiam groups rename", "cfiam groups delete", "--force", "--yes", "conflict" }) do
      assert.matches(s, r.stdout, 1, true)
    end
    r = cfiam({ "--help" })
    assert.matches("cfiam groups  delete  ACCOUNT GROUP [--force] [--yes] [--json]", r.stdout, 1, true)
  end)

  describe("show", function()
    it("prints the group, its member count and policies (GROUP by name or id)", function()
      local r = cfiam({ "groups", "show", A, "Ops" })
      assert.are.equal(0, r.status, r.stderr)
      assert.matches("id        " .. ops, r.stdout, 1, true)
      assert.matches("name      Ops", r.stdout, 1, true)
      assert.matches("members   2", r.stdout, 1, true)
      assert.matches("policies  1", r.stdout, 1, true)
      assert.matches("allow  permission groups: " .. PG .. " (Administrator); resource groups: "
        .. RG, r.stdout, 1, true)
      local j = cfiam({ "groups", "show", A, ops, "--json" })
      assert.are.equal(0, j.status)
      local doc = H.json(j.stdout)
      assert.are.equal(2, doc.members)
      assert.are.equal("Ops", doc.group.name)
      assert.are.equal(PG, doc.group.policies[1].permission_groups[1].id)
    end)

    it("exits 1 for an unknown group, 2 for a usage error", function()
      local r = cfiam({ "groups", "show", A, "Nobody", "--json" })
      assert.are.equal(1, r.status)
      assert.are.equal("not_found", H.json(r.stdout).error.kind)
      r = cfiam({ "groups", "show", A })
      assert.are.equal(2, r.status)
      assert.matches("missing argument 'GROUP'", r.stderr, 1, true)
    end)
  end)

  describe("create", function()
    it("creates a group, with policies from a file", function()
      local file = tmpfile('[{"access":"deny","permission_groups":[{"id":"' .. PG
        .. '"}],"resource_groups":[]}]')
      local r = cfiam({ "groups", "create", A, "New team", "--policies", file, "--json" })
      os.remove(file)
      assert.are.equal(0, r.status, r.stderr)
      local g = H.json(r.stdout)
      assert.are.equal("New team", g.name)
      assert.are.equal("deny", g.policies[1].access)
      local post = H.requests(emu, "POST")[1]
      assert.are.equal('{"name":"New team","policies":[{"access":"deny","permission_groups":'
        .. '[{"id":"' .. PG .. '"}],"resource_groups":[]}]}', post.body)
      r = cfiam({ "groups", "create", A, "Bare" })
      assert.are.equal(0, r.status, r.stderr)
      assert.matches("^%x+\tBare\n$", r.stdout)
    end)

    it("a name that exists is a conflict (exit 2), nothing written", function()
      local r = cfiam({ "groups", "create", A, "Ops", "--json" })
      assert.are.equal(2, r.status)
      assert.are.equal("conflict", H.json(r.stdout).error.kind)
      assert.matches("cfiam conflict: a user group named \"Ops\" already exists", r.stderr, 1, true)
      assert.are.same({}, H.writes(emu))
    end)

    it("refuses a bad policies file or bad policies (exit 2), nothing written", function()
      local r = cfiam({ "groups", "create", A, "X", "--policies", "/nonexistent/p.json" })
      assert.are.equal(2, r.status)
      local file = tmpfile("not json")
      r = cfiam({ "groups", "create", A, "X", "--policies", file })
      assert.are.equal(2, r.status)
      os.remove(file)
      file = tmpfile('[{"access":"maybe","permission_groups":[],"resource_groups":[]}]')
      r = cfiam({ "groups", "create", A, "X", "--policies", file })
      os.remove(file)
      assert.are.equal(2, r.status)
      assert.matches("policies[1].access", r.stderr, 1, true)
      assert.are.same({}, emu:requests())
    end)
  end)

  describe("rename", function()
    it("renames by name or id; the policies stay", function()
      local r = cfiam({ "groups", "rename", A, "Ops", "Operations" })
      assert.are.equal(0, r.status, r.stderr)
      assert.are.equal(ops .. "\tOperations\n", r.stdout)
      assert.are.equal('{"name":"Operations"}', H.requests(emu, "PUT")[1].body)
      r = cfiam({ "groups", "rename", A, ops, "Ops", "--json" })
      assert.are.equal(0, r.status)
      assert.are.equal("Ops", H.json(r.stdout).name)
      assert.are.equal(1, #H.json(r.stdout).policies)
    end)

    it("a taken name is a conflict; a SCIM group says why it is refused", function()
      local r = cfiam({ "groups", "rename", A, "Ops", "Empty" })
      assert.are.equal(2, r.status)
      assert.matches("conflict", r.stderr, 1, true)
      assert.are.same({}, H.writes(emu))
      r = cfiam({ "groups", "rename", A, "Directory", "X" })
      assert.are.equal(1, r.status)
      assert.matches("provisioned by SCIM", r.stderr, 1, true)
      assert.matches("identity provider", r.stderr, 1, true)
      assert.are.same({ "Directory", "Empty", "Ops" }, state_names())
    end)
  end)

  describe("delete", function()
    it("prints what it would delete, and refuses a group with members without --force", function()
      local r = cfiam({ "groups", "delete", A, "Ops", "--yes" })
      assert.are.equal(2, r.status)
      assert.matches("name      Ops", r.stdout, 1, true)
      assert.matches("members   2", r.stdout, 1, true)
      assert.matches("policies  1", r.stdout, 1, true)
      assert.matches("cfiam guard: group " .. ops .. " has 2 members", r.stderr, 1, true)
      assert.matches("--force", r.stderr, 1, true)
      assert.are.same({}, H.writes(emu))
    end)

    it("needs --yes without a terminal; nothing deleted", function()
      local r = cfiam({ "groups", "delete", A, "Empty", "--json" })
      assert.are.equal(2, r.status)
      assert.are.equal("refused", H.json(r.stdout).error.kind)
      assert.matches("--yes", r.stderr, 1, true)
      assert.are.same({}, H.writes(emu))
    end)

    it("asks on a terminal: no keeps the group, yes deletes it", function()
      local env = H.env(emu, { CFIAM_TTY = "1" })
      local r = cfiam({ "groups", "delete", A, "Empty" }, { env = env, stdin = "n\n" })
      assert.are.equal(2, r.status)
      assert.matches("Delete group Empty (" .. empty .. ")? [y/N]", r.stderr, 1, true)
      assert.matches("not confirmed", r.stderr, 1, true)
      assert.are.same({}, H.writes(emu))
      r = cfiam({ "groups", "delete", A, "Empty" }, { env = env, stdin = "y\n" })
      assert.are.equal(0, r.status, r.stderr)
      assert.matches("deleted group " .. empty, r.stdout, 1, true)
      assert.are.same({ "Directory", "Ops" }, state_names())
    end)

    it("--force --yes deletes a group with members (one JSON document)", function()
      local r = cfiam({ "groups", "delete", A, ops, "--force", "--yes", "--json" })
      assert.are.equal(0, r.status, r.stderr)
      local doc = H.json(r.stdout)
      assert.is_true(doc.deleted)
      assert.are.equal(2, doc.members)
      assert.are.equal("Ops", doc.group.name)
      assert.are.same({ "Directory", "Empty" }, state_names())
      local deletes = H.requests(emu, "DELETE")
      assert.are.equal(1, #deletes)
    end)
  end)
end)
