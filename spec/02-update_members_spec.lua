-- spec/02-update_members_spec.lua: client:update_members: the PUT replaces the
-- set, member tables, id forms, de-duplication, validation before anything
-- is sent, allow_empty, result null, keep-alive, large sets. Real C module
-- against the emulator.
local cfiam = require("cfiam")
local core = require("helpers.core")
local emulator = require("helpers.emulator")

local A, G, G2 = core.ACCOUNT, core.GROUP, core.GROUP2
local m = core.member

local function body_of(ids)
  local parts = {}
  for i, id in ipairs(ids) do parts[i] = '{"id":"' .. id .. '"}' end
  return "[" .. table.concat(parts, ",") .. "]"
end

describe("update_members", function()
  local emu, client

  setup(function()
    emu = emulator.start({ seed = core.seed() })
  end)

  teardown(function()
    if emu then emu:stop() end
  end)

  before_each(function()
    emu:reset(core.seed())
    client = core.client(emu)
  end)

  after_each(function()
    if client then client:close() end
  end)

  it("PUTs the set to the group's members path and replaces the group's members", function()
    assert.same({ m(1), m(2), m(3) }, core.group_members(emu))
    local members, err = client:update_members(A, G, { m(5), m(2), m(7) })
    assert.is_nil(err)
    assert.same({ m(2), m(5), m(7) }, core.group_members(emu))
    local r = core.only_request(emu)
    assert.equals("PUT", r.method)
    assert.equals("/client/v4/accounts/" .. A .. "/iam/user_groups/" .. G .. "/members", r.path)
    assert.equals(body_of({ m(5), m(2), m(7) }), r.body)
    assert.equals("application/json", core.header(r, "content-type"))
    assert.equals(3, #members)
    -- the other group is untouched
    assert.same({}, core.group_members(emu, A, G2))
  end)

  it("returns an array of member tables { id, email, status }", function()
    local members, err = client:update_members(A, G, { m(4), m(2) })
    assert.is_nil(err)
    assert.same({
      { id = m(2), email = core.email(2), status = "pending" },
      { id = m(4), email = core.email(4), status = "accepted" },
    }, members)
  end)

  it("turns JSON null and missing fields into nil, never cjson.null", function()
    emu:fault({ method = "PUT", path = "/members$", status = 200, body =
      '{"success":true,"errors":[],"messages":[],"result":[' ..
      '{"id":"' .. m(4) .. '","email":null,"status":"accepted"},' ..
      '{"id":"' .. m(5) .. '"}]}' })
    local members, err = client:update_members(A, G, { m(4), m(5) })
    assert.is_nil(err)
    assert.equals(2, #members)
    assert.equals(m(4), members[1].id)
    assert.is_nil(members[1].email)
    assert.equals("accepted", members[1].status)
    assert.is_nil(members[2].email)
    assert.is_nil(members[2].status)
    assert.is_true(core.plain(members))
  end)

  it("a result of null is an empty array (the PUT still happened)", function()
    emu:fault({ method = "PUT", result_null = true })
    local members, err = client:update_members(A, G, { m(6) })
    assert.is_nil(err)
    assert.same({}, members)
    assert.same({ m(6) }, core.group_members(emu))
  end)

  describe("ids", function()
    it("may be tables { id = ... } (the API's own body shape)", function()
      local members, err = client:update_members(A, G, { { id = m(8) }, { id = m(9) } })
      assert.is_nil(err)
      assert.equals(2, #members)
      assert.equals(body_of({ m(8), m(9) }), core.only_request(emu).body)
      assert.same({ m(8), m(9) }, core.group_members(emu))
    end)

    it("may mix strings and { id = } tables (extra fields are ignored)", function()
      local members, err = client:update_members(A, G,
        { m(8), { id = m(1), email = "ignored@example.com" }, m(9) })
      assert.is_nil(err)
      assert.equals(3, #members)
      assert.equals(body_of({ m(8), m(1), m(9) }), core.only_request(emu).body)
    end)

    it("drops duplicates case-insensitively, keeping first-occurrence order", function()
      local upper9 = m(9):upper()
      assert.are_not.equal(upper9, m(9))
      local members, err = client:update_members(A, G,
        { upper9, m(4), { id = m(9) }, m(1), m(4), { id = m(1):upper() }, m(9) })
      assert.is_nil(err)
      -- byte for byte: first occurrences in order, ids written in lower case
      assert.equals(body_of({ m(9), m(4), m(1) }), core.only_request(emu).body)
      assert.equals(3, #members)
      assert.same({ m(1), m(4), m(9) }, core.group_members(emu))
    end)

    it("a set of one id repeated many times sends it once", function()
      local ids = {}
      for i = 1, 50 do ids[i] = (i % 2 == 0) and m(3) or m(3):upper() end
      local members, err = client:update_members(A, G, ids)
      assert.is_nil(err)
      assert.equals(1, #members)
      assert.equals(body_of({ m(3) }), core.only_request(emu).body)
    end)
  end)

  describe("validation before anything is sent", function()
    it("a member table or a list with holes where the list belongs raises, nothing sent", function()
      -- read as a list, both would drop members silently (an empty list with
      -- allow_empty: the group emptied)
      assert.has_error(function()
        client:update_members(A, G, { id = m(1) }, { allow_empty = true })
      end, "ids must be a list (keys 1 to #ids), got a table with other keys")
      assert.has_error(function()
        client:update_members(A, G, { [1] = m(1), [3] = m(2) })
      end, "ids must be a list (keys 1 to #ids), got a table with other keys")
      assert.has_error(function()
        client:request("POST", "/accounts/" .. A .. "/iam/user_groups/" .. G .. "/members",
          { ids = { m(1), x = m(2) } })
      end, "ids must be a list (keys 1 to #ids), got a table with other keys")
      assert.same({}, emu:requests())
    end)

    it("a list-like table with a metatable (a read-only proxy) raises, nothing sent", function()
      -- read raw, a proxy whose __index/__len show Lua four ids is empty:
      -- with allow_empty the group would be emptied
      local real = { m(1), m(2), m(3), m(4) }
      local proxy = setmetatable({}, { __index = real, __len = function() return #real end })
      local msg = "(ids: a plain list expected, got a table whose metatable has __index or __len)"
      assert.has_error(function()
        client:update_members(A, G, proxy, { allow_empty = true })
      end, "bad argument to 'update_members' " .. msg)
      assert.has_error(function()
        client:update_members(A, G, setmetatable({ m(1) }, { __len = function() return 1 end }))
      end, "bad argument to 'update_members' " .. msg)
      assert.has_error(function()
        client:request("PUT", "/accounts/" .. A .. "/iam/user_groups/" .. G .. "/members",
          { ids = proxy, allow_empty = true })
      end, "bad argument to 'request' " .. msg)
      assert.same({}, emu:requests())
      assert.same({ m(1), m(2), m(3) }, core.group_members(emu))
      -- a marker metatable (lua-cjson's array_mt) changes nothing: accepted
      local marked = setmetatable({ m(1), m(2) }, { __jsontype = "array" })
      assert.same(2, #assert(client:update_members(A, G, marked)))
    end)

    local bad_ids = {
      "", "c0000000000000000000000000000001f", "c000000000000000000000000000001",
      "g0000000000000000000000000000001", "c000000000000000000000000000000 ",
      " c00000000000000000000000000000a", "c0000000-0000-0000-0000-00000000",
      "c00000000000000000000000000000\r\n", "c000000000000000000000000000000\0",
    }

    it("a bad account id is invalid_argument naming 'account'", function()
      for _, bad in ipairs(bad_ids) do
        local members, err = client:update_members(bad, G, { m(1) })
        assert.is_nil(members)
        assert.equals("invalid_argument", err.kind)
        assert.matches("^account: expected a 32%-character hexadecimal id, got \"", err.message)
        assert.equals(0, err.attempts)
        assert.is_nil(err.status)
      end
      assert.same({}, emu:requests())
    end)

    it("a bad group id is invalid_argument naming 'group'", function()
      for _, bad in ipairs(bad_ids) do
        local members, err = client:update_members(A, bad, { m(1) })
        assert.is_nil(members)
        assert.equals("invalid_argument", err.kind)
        assert.matches("^group: expected a 32%-character hexadecimal id", err.message)
      end
      assert.same({}, emu:requests())
    end)

    it("a bad member id is invalid_argument naming its position ids[i]", function()
      for _, bad in ipairs(bad_ids) do
        local members, err = client:update_members(A, G, { m(1), m(2), bad, m(4) })
        assert.is_nil(members)
        assert.equals("invalid_argument", err.kind)
        assert.matches("^ids%[3%]: expected a 32%-character hexadecimal member id", err.message)
        members, err = client:update_members(A, G, { m(1), { id = bad } })
        assert.is_nil(members)
        assert.matches("^ids%[2%]: ", err.message)
      end
      assert.same({}, emu:requests())
      assert.same({ m(1), m(2), m(3) }, core.group_members(emu))
      -- a marker metatable (lua-cjson's array_mt) changes nothing: accepted
      local marked = setmetatable({ m(1), m(2) }, { __jsontype = "array" })
      assert.same(2, #assert(client:update_members(A, G, marked)))
    end)

    it("ids in either case pass validation; member ids are sent in lower case", function()
      local members, err = client:update_members(A, G, { m(10):upper() })
      assert.is_nil(err)
      assert.equals(1, #members)
      assert.equals(body_of({ m(10) }), core.only_request(emu).body)
      -- upper-case account / group ids are not refused either: the request is made
      emu:clear_requests()
      local _, err2 = client:update_members(A:upper(), G:upper(), { m(10) })
      assert.are_not.equal("invalid_argument", err2 and err2.kind)
      assert.equals(1, #emu:requests())
    end)

    it("the message quotes the bad value printably and bounded", function()
      local _, err = client:update_members(A, G, { m(1), "abc\r\nX" })
      assert.equals('ids[2]: expected a 32-character hexadecimal member id, got "abc\\x0d\\x0aX"',
        err.message)
      local long = string.rep("z", 5000)
      _, err = client:update_members(A, G, { long })
      assert.is_true(#err.message < 200)
      assert.is_nil(tostring(err):find("\n", 1, true))
    end)

    it("wrong Lua types raise", function()
      local cases = {
        function() client:update_members(A, G) end,
        function() client:update_members(A, G, "c0000000000000000000000000000001") end,
        function() client:update_members(A, G, { m(1), 5 }) end,
        function() client:update_members(A, G, { m(1), { id = 5 } }) end,
        function() client:update_members(A, G, { m(1), {} }) end,
        function() client:update_members(A, G, { m(1), true }) end,
        function() client:update_members(nil, G, { m(1) }) end,
        function() client:update_members(A, {}, { m(1) }) end,
        function() client:update_members(A, G, { m(1) }, "allow_empty") end,
        function() client.update_members({}, A, G, { m(1) }) end,
        -- numbers are not read as strings: one rule with the helpers
        function() client:update_members(123, G, { m(1) }) end,
        function() client:update_members(A, 123, { m(1) }) end,
        -- unknown option names and wrong option types
        function() client:update_members(A, G, { m(1) }, { allow_emtpy = true }) end,
        function() client:update_members(A, G, { m(1) }, { allow_empty = 1 }) end,
      }
      for i, f in ipairs(cases) do
        assert.is_false((pcall(f)), "case " .. i)
      end
      local ok, msg = pcall(client.update_members, client, A, G, { m(1), 5 })
      assert.is_false(ok)
      assert.matches("ids[2] must be a string or a table { id = string }, got number", msg, 1, true)
      -- worded as the helpers', the same on the default client
      for _, f in ipairs({ client.update_members, function(_, ...) return cfiam.update_members(...) end }) do
        ok, msg = pcall(f, client, 123, G, { m(1) })
        assert.is_false(ok)
        assert.matches("bad argument to 'update_members' (account: string expected, got number)",
          msg, 1, true)
      end
      assert.same({}, emu:requests())
    end)
  end)

  describe("an empty set", function()
    it("is refused unless allow_empty (an empty replace removes every member)", function()
      for _, opts in ipairs({ {}, { allow_empty = false } }) do
        local members, err = client:update_members(A, G, {}, opts)
        assert.is_nil(members)
        assert.equals("invalid_argument", err.kind)
        assert.matches("allow_empty", err.message, 1, true)
      end
      local members, err = client:update_members(A, G, {})
      assert.is_nil(members)
      assert.equals("invalid_argument", err.kind)
      assert.same({}, emu:requests())
      assert.same({ m(1), m(2), m(3) }, core.group_members(emu))
      -- a marker metatable (lua-cjson's array_mt) changes nothing: accepted
      local marked = setmetatable({ m(1), m(2) }, { __jsontype = "array" })
      assert.same(2, #assert(client:update_members(A, G, marked)))
    end)

    it("allow_empty must be exactly true: a truthy non-true value does not empty the group", function()
      for _, v in ipairs({ "false", "true", 1, {} }) do
        local ok, members, err = pcall(client.update_members, client, A, G, {}, { allow_empty = v })
        if ok then -- refusing with invalid_argument or raising are both acceptable
          assert.is_nil(members)
          assert.equals("invalid_argument", err.kind)
        end
      end
      assert.same({}, emu:requests())
      assert.same({ m(1), m(2), m(3) }, core.group_members(emu))
      -- a marker metatable (lua-cjson's array_mt) changes nothing: accepted
      local marked = setmetatable({ m(1), m(2) }, { __jsontype = "array" })
      assert.same(2, #assert(client:update_members(A, G, marked)))
    end)

    it("with allow_empty = true sends exactly [] and empties the group", function()
      local members, err = client:update_members(A, G, {}, { allow_empty = true })
      assert.is_nil(err)
      assert.same({}, members)
      local r = core.only_request(emu)
      assert.equals("[]", r.body)
      assert.same({}, core.group_members(emu))
    end)

    it("allow_empty = true does not change a non-empty set", function()
      local members, err = client:update_members(A, G, { m(5) }, { allow_empty = true })
      assert.is_nil(err)
      assert.equals(1, #members)
      assert.equals(body_of({ m(5) }), core.only_request(emu).body)
    end)
  end)

  it("keeps its connection alive across calls", function()
    for i = 1, 25 do
      local members, err = client:update_members(A, G, { m(1 + i % 10) })
      assert.is_nil(err)
      assert.equals(1, #members)
    end
    local stats = emu:stats()
    assert.equals(25, stats.requests)
    assert.equals(1, stats.connections)
    for _, r in ipairs(emu:requests()) do assert.equals(1, r.connection) end
  end)

  it("keeps the connection after an API error answer", function()
    local _, err = client:update_members(A, core.fake_id(77), { m(1) })
    assert.equals("not_found", err.kind)
    local members, err2 = client:update_members(A, G, { m(1) })
    assert.is_nil(err2)
    assert.equals(1, #members)
    assert.equals(1, emu:stats().connections)
  end)

  it("round-trips a large set (3000 members)", function()
    local n = 3000
    emu:reset(core.seed(n, 0))
    local ids = {}
    for i = n, 1, -1 do ids[#ids + 1] = m(i) end
    local members, err = client:update_members(A, G, ids)
    assert.is_nil(err)
    assert.equals(n, #members)
    -- the emulator answers sorted by e-mail: member i has e-mail i
    for i = 1, n do
      assert.equals(m(i), members[i].id)
      assert.equals(core.email(i), members[i].email)
    end
    local r = core.only_request(emu)
    assert.equals(body_of(ids), r.body)
    assert.equals(#core.group_members(emu), n)
  end)
end)
