-- spec/12-paths_spec.lua: the core's one path builder (core.path) and the
-- request client:update_members sends, prepared for the cosocket transport
-- (core.update_request): ids checked and lower-cased in one place, the
-- same errors and raises as client:update_members, nothing sent on bad
-- input. Real C module against the emulator.
local core_hooks = require("cfiam.core")
local core = require("helpers.core")
local emulator = require("helpers.emulator")

local A, G = core.ACCOUNT, core.GROUP
local m = core.member
local MEMBERS = "/accounts/" .. A .. "/iam/user_groups/" .. G .. "/members"

describe("core.path and core.update_request", function()
  local emu
  setup(function() emu = emulator.start({ seed = core.seed() }) end)
  teardown(function() if emu then emu:stop() end end)

  -- The emulator as seeded, and a client closed when the test ends.
  local function fresh_client()
    emu:reset(core.seed())
    local c = core.client(emu)
    finally(function() c:close() end)
    return c
  end

  it("builds every API path, ids in lower case", function()
    local client = fresh_client()
    local path = core_hooks.path
    assert.equal("/accounts/" .. A .. "/members", path(client, "account_members", A:upper()))
    assert.equal("/accounts/" .. A .. "/iam/user_groups", path(client, "groups", A))
    assert.equal("/accounts/" .. A .. "/iam/user_groups/" .. G,
      path(client, "group", A:upper(), G:upper()))
    assert.equal(MEMBERS, path(client, "group_members", A, G:upper()))
    assert.equal(MEMBERS .. "/" .. m(3), path(client, "group_member", A, G, m(3):upper()))
  end)

  it("returns nil, invalid_argument naming the malformed id, quoted and scrubbed", function()
    local client = fresh_client()
    local res, err = core_hooks.path(client, "group_member", A, G, "x\n")
    assert.is_nil(res)
    assert.equal("invalid_argument", err.kind)
    assert.equal('member: expected a 32-character hexadecimal id, got "x\\x0a"', err.message)
    res, err = core_hooks.path(client, "groups", "Bearer " .. core.TOKEN .. "-etc")
    assert.is_nil(res)
    assert.equal("account: expected a 32-character hexadecimal id, got [redacted]", err.message)
    assert.equal(0, #emu:requests())
  end)

  it("raises on a wrong Lua type, naming the function given", function()
    local client = fresh_client()
    assert.has_error(function() core_hooks.path(client, "group", A, 7, "get_group") end,
      "bad argument to 'get_group' (group: string expected, got number)")
    assert.has_error(function() core_hooks.path(client, "group", A, nil) end,
      "bad argument to 'path' (group: string expected, got nil)")
    assert.has_error(function() core_hooks.path(client, "teams", A) end)
  end)

  it("prepares exactly the PUT client:update_members sends", function()
    local client = fresh_client()
    local req = assert(core_hooks.update_request(client, A:upper(), G, { m(2), m(1):upper(), { id = m(2) } }))
    assert.equal("PUT", req.method)
    assert.equal(MEMBERS, req.target)
    assert.equal("members", req.decode)
    assert.equal('[{"id":"' .. m(2) .. '"},{"id":"' .. m(1) .. '"}]', req.body)
    assert.matches("Content%-Type: application/json\r\n", req.headers)
    assert.equal(0, #emu:requests())
    assert(client:update_members(A:upper(), G, { m(2), m(1):upper(), { id = m(2) } }))
    local sent = core.only_request(emu)
    assert.equal("/client/v4" .. req.target, sent.path)
    assert.equal(req.body, sent.body)
  end)

  it("refuses and raises as client:update_members does", function()
    local client = fresh_client()
    local cases = {
      { A, G, {} },                                  -- empty without allow_empty
      { A, G, { "not-an-id" } },
      { A, "xyz", { m(1) } },
      { "x", G, { m(1) } },
    }
    for _, args in ipairs(cases) do
      local r1, e1 = core_hooks.update_request(client, args[1], args[2], args[3])
      local r2, e2 = client:update_members(args[1], args[2], args[3])
      assert.is_nil(r1)
      assert.is_nil(r2)
      assert.equal(e2.kind, e1.kind)
      assert.equal(e2.message, e1.message)
    end
    assert(core_hooks.update_request(client, A, G, {}, { allow_empty = true }))
    local raising = {
      { A, G, "x" },
      { A, 1, { m(1) } },
      { A, G, { m(1) }, { allow_empty = "yes" } },
      { A, G, { m(1) }, { nope = true } },
      { A, G, { m(1) }, 5 },
    }
    for _, args in ipairs(raising) do
      local ok1, msg1 = pcall(core_hooks.update_request, client, args[1], args[2], args[3], args[4])
      local ok2, msg2 = pcall(client.update_members, client, args[1], args[2], args[3], args[4])
      assert.is_false(ok1)
      assert.is_false(ok2)
      assert.matches("'update_members'", msg1)
      assert.equal(msg2, msg1)
    end
    assert.equal(0, #emu:requests())
  end)
end)
