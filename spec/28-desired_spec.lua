-- spec/28-desired_spec.lua: cfiam.load_desired, the desired state of an
-- account's groups from a YAML or JSON file (lyaml's event parser) or a Lua
-- table: what it accepts, and every error naming file, line and key, with
-- nothing sent (the command's runs are checked in the emulator's log).
local emulator = require("helpers.emulator")
local H = require("helpers.cli")
local cfiam = require("cfiam")

local ACCOUNT = "0123456789abcdef0123456789abcdef"
-- Values in messages are quoted as the library quotes them.
local Q = require("cfiam.args").quote

local files = {}
local function file(text)
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
  files[#files + 1] = path
  return path
end

-- The error for a text: err, and the file it was written to.
local function load_err(text)
  local path = file(text)
  local cfg, err = cfiam.load_desired(path)
  assert.is_nil(cfg)
  assert.are.equal("invalid_argument", err.kind)
  assert.are.equal(path, err.file)
  return err, path
end

describe("load_desired", function()
  teardown(function()
    for _, p in ipairs(files) do os.remove(p) end
  end)

  it("reads the file format: account, defaults, protect, groups in file order", function()
    local cfg, err = cfiam.load_desired(file([[
account: 0123456789ABCDEF0123456789abcdef
defaults:
  max_removals: 3          # per group
  ignore_pending: yes
protect:
  - breakglass@example.com
groups:
  Engineering:
    members:
      - alice@example.com
      - 4F5F0C14A2A41D5063DD301B2F829F04
  On-call:
    create: true
    max_removals: 2
    allow_empty: true
    members: [bob@example.com]
  "01234567890123456789012345678901":
    ignore_pending: false
    members: ["12345678901234567890123456789012"]
]]))
    assert.is_nil(err)
    assert.are.equal(ACCOUNT, cfg.account)
    assert.are.same({ "breakglass@example.com" }, cfg.protect)
    assert.are.equal(3, #cfg.groups)
    local eng, oncall, byid = cfg.groups[1], cfg.groups[2], cfg.groups[3]
    assert.are.equal("Engineering", eng.name)
    assert.are.same({ "alice@example.com", "4f5f0c14a2a41d5063dd301b2f829f04" }, eng.members)
    assert.are.equal(3, eng.max_removals)          -- from defaults
    assert.is_true(eng.ignore_pending)
    assert.is_false(eng.allow_empty)
    assert.is_false(eng.create)
    assert.are.equal(8, eng.line)
    assert.are.equal("On-call", oncall.name)
    assert.is_true(oncall.create)
    assert.is_true(oncall.allow_empty)
    assert.are.equal(2, oncall.max_removals)
    -- a key of digits is an id, not a number; the member stays a string
    assert.are.equal("01234567890123456789012345678901", byid.id)
    assert.is_nil(byid.name)
    assert.is_false(byid.ignore_pending)
    assert.are.same({ "12345678901234567890123456789012" }, byid.members)
  end)

  it("reads JSON, which is YAML, and ignores a byte-order mark", function()
    local cfg, err = cfiam.load_desired(file("\239\187\191" .. [[
{"account": "0123456789abcdef0123456789abcdef",
 "groups": {"Eng": {"members": ["a@example.com"], "create": false, "max_removals": 0}}}
]]))
    assert.is_nil(err)
    assert.are.equal("Eng", cfg.groups[1].name)
    assert.are.equal(0, cfg.groups[1].max_removals)
  end)

  it("accepts the same structure as a Lua table, and a checked one as is", function()
    local cfg, err = cfiam.load_desired({ account = ACCOUNT, defaults = { max_removals = math.huge },
      groups = { Eng = { members = { "a@example.com" } }, Empty = { members = {}, allow_empty = true } } })
    assert.is_nil(err)
    assert.are.equal(2, #cfg.groups)
    assert.are.equal(math.huge, cfg.groups[1].max_removals)
    assert.are.equal(cfg, cfiam.load_desired(cfg))
  end)

  it("resolves YAML anchors and aliases (a list shared by two groups)", function()
    local cfg, err = cfiam.load_desired(file([[
account: 0123456789abcdef0123456789abcdef
groups:
  A: { members: &team [a@example.com, b@example.com] }
  B: { members: *team }
]]))
    assert.is_nil(err)
    assert.are.same(cfg.groups[1].members, cfg.groups[2].members)
  end)

  describe("errors name the file, the line and the key", function()
    local function expect(text, line, key, fragment)
      local err, path = load_err(text)
      assert.are.equal(line, err.line, err.message)
      assert.are.equal(key, err.key, err.message)
      local prefix = path .. ":" .. line .. ": " .. (key and (key .. ": ") or "")
      assert.are.equal(prefix, err.message:sub(1, #prefix), err.message)
      assert.matches(fragment, err.message, 1, true)
      assert.is_nil(err.message:find("\n"), "one line")
      assert.matches("^cfiam invalid_argument: ", tostring(err))
    end

    it("a NUL character, raw or escaped (YAML readers cut a string there)", function()
      for _, case in ipairs({
        { 'account: %s\ngroups:\n  "Eng\\0-old": { members: [] }\n', 3 },
        { 'account: %s\ngroups:\n  Eng:\n    members: ["bob@example.com\\x00junk"]\n', 4 },
        { '{"account": "%s",\n "groups": {"Eng\\u0000x": {"members": []}}}\n', 2 },
        { 'account: %s\ngroups:\n  Eng\0x: { members: [] }\n', 3 },
      }) do
        local err = load_err(case[1]:format(ACCOUNT))
        assert.are.equal(case[2], err.line, err.message)
        assert.matches("a NUL character", err.message, 1, true)
      end
      -- an escaped backslash before a 0 is no NUL
      local cfg = assert(cfiam.load_desired(file(('account: %s\ngroups:\n  "C:\\\\0dir": { members: [] }\n')
        :format(ACCOUNT))))
      assert.are.equal("C:\\0dir", cfg.groups[1].name)
    end)

    it("an unknown key, at the top, in defaults and in a group", function()
      expect("account: " .. ACCOUNT .. "\ngroups: {}\nadmins: [x@example.com]\n",
        3, "admins", "unknown key " .. Q("admins"))
      expect("account: " .. ACCOUNT .. "\ndefaults:\n  max_removal: 3\ngroups: {}\n",
        3, "defaults.max_removal", "unknown key " .. Q("max_removal"))
      expect("account: " .. ACCOUNT .. "\ngroups:\n  Eng:\n    members: []\n    memebers: []\n",
        5, "groups.Eng.memebers", "unknown key " .. Q("memebers") .. " in group " .. Q("Eng"))
    end)

    it("a wrong type", function()
      expect("account: " .. ACCOUNT .. "\ngroups:\n  Eng:\n    max_removals: many\n    members: []\n",
        4, "groups.Eng.max_removals", "expected a whole number")
      expect("account: " .. ACCOUNT .. "\ngroups:\n  Eng:\n    create: \"true\"\n    members: []\n",
        4, "groups.Eng.create", "expected true or false")
      expect("account: " .. ACCOUNT .. "\ngroups:\n  Eng:\n    members: a@example.com\n",
        4, "groups.Eng.members", "expected a list")
      expect("account: " .. ACCOUNT .. "\ngroups:\n  Eng:\n    members:\n      - [a@example.com]\n",
        5, "groups.Eng.members[1]", "expected a string")
      expect("account: " .. ACCOUNT .. "\ngroups: [Eng]\n", 2, "groups", "expected a mapping")
      expect("account: " .. ACCOUNT .. "\ndefaults:\n  max_removals: -1\ngroups: {}\n",
        3, "defaults.max_removals", "at least 0")
    end)

    it("an id that is not 32 hexadecimal digits", function()
      expect("account: " .. ACCOUNT .. "\ngroups:\n  Eng:\n    members:\n      - a@example.com\n"
        .. "      - 4f5f0c14a2a41d5063dd301b2f829f0\n", 6, "groups.Eng.members[2]",
        "an id must be 32 hexadecimal digits, this one has 31: " .. Q("4f5f0c14a2a41d5063dd301b2f829f0"))
      expect("account: " .. ACCOUNT .. "\ngroups:\n  Eng:\n    members: [alice]\n",
        4, "groups.Eng.members[1]", "member id or an e-mail address: " .. Q("alice"))
      expect("account: 0123\ngroups: {}\n", 1, "account", "expected a 32-character hexadecimal account id")
      expect("account: " .. ACCOUNT .. "\nprotect: [root]\ngroups: {}\n", 2, "protect[1]", Q("root"))
    end)

    it("a group named twice", function()
      expect("account: " .. ACCOUNT .. "\ngroups:\n  Eng:\n    members: []\n  Ops:\n    members: []\n"
        .. "  Eng:\n    members: [a@example.com]\n", 7, "groups.Eng",
        "group " .. Q("Eng") .. " is named twice (first at line 3)")
      -- the same id in two cases is the same group
      expect("account: " .. ACCOUNT .. "\ngroups:\n  " .. ACCOUNT .. ": {members: []}\n  "
        .. ACCOUNT:upper() .. ": {members: []}\n", 4, "groups." .. ACCOUNT:upper(), "named twice")
    end)

    it("a key given twice, a missing key, create with an id", function()
      expect("account: " .. ACCOUNT .. "\ngroups:\n  Eng:\n    members: []\n    members: []\n",
        5, "groups.Eng.members", Q("members") .. " given twice (first at line 4)")
      expect("account: " .. ACCOUNT .. "\ngroups:\n  Eng:\n    create: true\n",
        3, "groups.Eng.members", "members is missing")
      expect("account: " .. ACCOUNT .. "\ngroups:\n  " .. ACCOUNT .. ":\n    create: true\n    members: []\n",
        3, "groups." .. ACCOUNT .. ".create", "create needs a group name")
      expect("groups: {}\n", 1, "account", "account is missing")
    end)

    it("YAML that does not parse, with its line", function()
      expect("account: " .. ACCOUNT .. "\ngroups:\n  Eng:\n    members: [a@example.com\n  Ops: {}\n",
        5, nil, "not valid YAML")
      local err = load_err("account: " .. ACCOUNT .. "\ngroups: {}\n---\naccount: x\n")
      assert.matches("only one YAML document", err.message, 1, true)
    end)

    it("a file that is empty, missing or a directory", function()
      local err = load_err("")
      assert.matches("the file is empty", err.message, 1, true)
      local cfg
      cfg, err = cfiam.load_desired("/nonexistent/desired.yaml")
      assert.is_nil(cfg)
      assert.matches("^/nonexistent/desired.yaml: cannot read the file", err.message)
      cfg, err = cfiam.load_desired("/tmp")
      assert.is_nil(cfg)
      assert.are.equal("invalid_argument", err.kind)
    end)

    it("a table's errors name the key", function()
      local cfg, err = cfiam.load_desired({ account = ACCOUNT,
        groups = { Eng = { members = { "a@example.com", 42 } } } })
      assert.is_nil(cfg)
      assert.are.equal("groups.Eng.members[2]", err.key)
      assert.matches("desired state: groups.Eng.members[2]: expected a string", err.message, 1, true)
      cfg, err = cfiam.load_desired({ account = ACCOUNT, groups = { Eng = { members = {}, colour = "red" } } })
      assert.is_nil(cfg)
      assert.are.equal("groups.Eng.colour", err.key)
    end)

    it("a wrong Lua type raises", function()
      assert.has_error(function() cfiam.load_desired(42) end,
        "bad argument to 'load_desired' (path or table expected, got number)")
    end)
  end)

  describe("through the command, nothing is sent", function()
    local emu
    setup(function()
      local seed = H.seed()
      emu = emulator.start{ seed = seed }
    end)
    teardown(function() if emu then emu:stop() end end)

    it("plan and apply print file:line: key: and exit 2 (1 with --detailed-exitcode)", function()
      local path = file("account: " .. ACCOUNT .. "\ngroups:\n  Eng:\n    members: [x]\n")
      emu:clear_requests()
      for _, args in ipairs({ { "plan", path }, { "apply", path, "--yes" },
        { "plan", path, "--detailed-exitcode" }, { "plan", path, "--json" } }) do
        local r = H.run("bin/cfiam", args, { env = H.env(emu) })
        local want = args[3] == "--detailed-exitcode" and 1 or 2
        assert.are.equal(want, r.status, table.concat(args, " "))
        assert.matches(path .. ":4: groups.Eng.members[1]: ", r.stderr, 1, true)
        if args[3] == "--json" then
          local doc = H.json(r.stdout)
          assert.are.equal(4, doc.error.line)
          assert.are.equal("groups.Eng.members[1]", doc.error.key)
        end
      end
      assert.are.same({}, emu:requests())
    end)
  end)
end)
