-- spec/03-request_spec.lua: the generic primitive client:request: method,
-- path, query, body -> decoded result or nil, err, with the same
-- validation, auth, retries and errors as update_members. Real C
-- module against the emulator.
local cfiam = require("cfiam")
local core = require("helpers.core")
local emulator = require("helpers.emulator")

local A, G, G2 = core.ACCOUNT, core.GROUP, core.GROUP2
local m = core.member
local GROUPS_PATH = "/accounts/" .. A .. "/iam/user_groups"
local MEMBERS_PATH = core.MEMBERS_PATH

describe("client:request", function()
  local emu, client

  setup(function()
    emu = emulator.start({ seed = core.seed(10, 10) })
  end)

  teardown(function()
    if emu then emu:stop() end
  end)

  before_each(function()
    emu:reset(core.seed(10, 10))
    client = core.client(emu)
  end)

  after_each(function()
    if client then client:close() end
  end)

  describe("GET", function()
    it("returns the decoded result and meta { status, result_info, messages, attempts }", function()
      local result, meta = client:request("GET", MEMBERS_PATH)
      assert.is_table(result)
      assert.equals(10, #result)
      assert.same({ id = m(1), email = core.email(1), status = "accepted" }, result[1])
      assert.equals(200, meta.status)
      assert.equals(1, meta.attempts)
      assert.same({}, meta.messages)
      assert.same({ count = 10, page = 1, per_page = 100, total_count = 10 }, meta.result_info)
      local r = core.only_request(emu)
      assert.equals("GET", r.method)
      assert.equals("/client/v4" .. MEMBERS_PATH, r.path)
      assert.equals("", r.query)
      assert.equals("", r.body)
      assert.equals("Bearer " .. core.TOKEN, core.header(r, "authorization"))
    end)

    it("pages with query page/per_page and meta.result_info", function()
      local seen = {}
      for page = 1, 4 do
        local result, meta = client:request("GET", MEMBERS_PATH, { query = { page = page, per_page = 3 } })
        assert.is_table(result, "page " .. page)
        assert.equals(page, meta.result_info.page)
        assert.equals(3, meta.result_info.per_page)
        assert.equals(10, meta.result_info.total_count)
        assert.equals(#result, meta.result_info.count)
        for _, mem in ipairs(result) do seen[#seen + 1] = mem.id end
      end
      local want = {}
      for i = 1, 10 do want[i] = m(i) end
      assert.same(want, seen)
      local reqs = emu:requests()
      assert.equals("page=1&per_page=3", reqs[1].query)
      assert.equals("page=4&per_page=3", reqs[4].query)
    end)

    it("writes the query sorted by key and percent-encoded (RFC 3986 unreserved kept)", function()
      local result, meta = client:request("GET", MEMBERS_PATH, { query = {
        per_page = 2, fuzzyEmail = "user0000", direction = "desc",
        ["x y"] = "a+b&c=d/é~_.-", flag = true, off = false, ratio = 1.5, whole = 3.0,
        nl = "a\r\nb",
      } })
      assert.is_table(result, tostring(meta))
      assert.equals("direction=desc&flag=true&fuzzyEmail=user0000&nl=a%0D%0Ab&off=false&per_page=2"
        .. "&ratio=1.5&whole=3&x%20y=a%2Bb%26c%3Dd%2F%C3%A9~_.-", core.only_request(emu).query)
      -- the server understood it: desc, 2 per page, filtered by e-mail
      assert.same({ m(9), m(8) }, { result[1].id, result[2].id })
    end)

    it("writes numbers the shortest way that reads back the same; integers as integers", function()
      local big = math.type and "9007199254740993" or "9007199254740992" -- 2^53 + 1 is a float in 5.1
      local _, meta = client:request("GET", MEMBERS_PATH, { query = {
        a = 0.1, b = 1 / 3, c = 0.1 + 0.2, d = 2 ^ 63, e = 1e300, f = -2.5e-8, g = -0.0,
        h = 9007199254740993, i = 100.0, j = 123456789012345680000.0,
      } })
      assert.is_table(meta)
      assert.equals("a=0.1&b=0.3333333333333333&c=0.30000000000000004&d=9223372036854775808"
        .. "&e=1e%2B300&f=-2.5e-08&g=0&h=" .. big .. "&i=100&j=123456789012345683968",
        core.only_request(emu).query)
    end)

    it("a NaN or infinite query value is an invalid argument naming the key, nothing sent", function()
      for _, case in ipairs({ { 0 / 0, "nan" }, { math.huge, "inf" }, { -math.huge, "-inf" } }) do
        local result, err = client:request("GET", MEMBERS_PATH, { query = { page = 1, per_page = case[1] } })
        assert.is_nil(result)
        assert.equals("invalid_argument", err.kind)
        assert.equals(0, err.attempts)
        assert.equals('query value "per_page": expected a finite number, got ' .. case[2], err.message)
        local out, err2 = client:request_many({ { "GET", MEMBERS_PATH },
          { "GET", MEMBERS_PATH, query = { x = case[1] } } })
        assert.is_nil(out)
        assert.equals('calls[2]: query value "x": expected a finite number, got ' .. case[2], err2.message)
      end
      assert.same({}, emu:requests())
    end)

    it("an empty query table adds nothing", function()
      assert.is_table((client:request("GET", MEMBERS_PATH, { query = {} })))
      assert.equals("", core.only_request(emu).query)
    end)

    it("query values of other types and non-string keys raise", function()
      assert.has_error(function() client:request("GET", MEMBERS_PATH, { query = { page = {} } }) end)
      assert.has_error(function() client:request("GET", MEMBERS_PATH, { query = { [1] = "x" } }) end)
      assert.same({}, emu:requests())
    end)

    it("returns a detailed object result (a member, with nested user)", function()
      local result, meta = client:request("GET", MEMBERS_PATH .. "/" .. m(3))
      assert.equals(200, meta.status)
      assert.equals(m(3), result.id)
      assert.equals(core.email(3), result.email)
      assert.is_table(result.user)
      assert.equals(core.email(3), result.user.email)
      assert.is_true(core.plain(result))
    end)
  end)

  describe("bodies and other methods", function()
    it("POST with a json body string creates a group", function()
      local result, meta = client:request("POST", GROUPS_PATH, { json = '{"name":"Operations"}' })
      assert.equals(200, meta.status, tostring(meta))
      assert.equals("Operations", result.name)
      assert.is_true(cfiam.is_id(result.id))
      local r = core.only_request(emu)
      assert.equals("POST", r.method)
      assert.equals('{"name":"Operations"}', r.body)
      assert.equals("application/json", core.header(r, "content-type"))
      local found = false
      for _, g in ipairs(emu:state().accounts[A].groups) do
        if g.id == result.id and g.name == "Operations" then found = true end
      end
      assert.is_true(found)
    end)

    it("PUT with a json body updates a group", function()
      local result, meta = client:request("PUT", GROUPS_PATH .. "/" .. G, { json = '{"name":"Eng"}' })
      assert.equals(200, meta.status)
      assert.equals("Eng", result.name)
      assert.equals(G, result.id)
    end)

    it("DELETE removes a group member", function()
      local result, meta = client:request("DELETE", MEMBERS_PATH .. "/" .. m(2))
      assert.equals(200, meta.status)
      assert.equals(m(2), result.id)
      local r = core.only_request(emu)
      assert.equals("DELETE", r.method)
      assert.equals("", r.body)
      assert.is_nil(core.header(r, "content-type"))
      local left = core.group_members(emu)
      assert.equals(9, #left)
      for _, id in ipairs(left) do assert.are_not.equal(m(2), id) end
    end)

    it("DELETE of a group answers { id }", function()
      local result, meta = client:request("DELETE", GROUPS_PATH .. "/" .. G2)
      assert.equals(200, meta.status)
      assert.same({ id = G2 }, result)
      assert.is_nil(core.group_members(emu, A, G2))
    end)

    it("ids builds a members body (validated, de-duplicated) for POST", function()
      emu:reset(core.seed(10, 0))
      local result, meta = client:request("POST", MEMBERS_PATH,
        { ids = { m(5), { id = m(6) }, m(5):upper() }, decode = "members" })
      assert.equals(200, meta.status, tostring(meta))
      assert.equals(2, #result)
      assert.equals('[{"id":"' .. m(5) .. '"},{"id":"' .. m(6) .. '"}]', core.only_request(emu).body)
      assert.same({ m(5), m(6) }, core.group_members(emu))
    end)

    it("ids are validated with positions, an empty ids needs allow_empty", function()
      local r, err = client:request("PUT", MEMBERS_PATH, { ids = { m(1), "nope" } })
      assert.is_nil(r)
      assert.equals("invalid_argument", err.kind)
      assert.matches("^ids%[2%]: ", err.message)
      r, err = client:request("PUT", MEMBERS_PATH, { ids = {} })
      assert.is_nil(r)
      assert.equals("invalid_argument", err.kind)
      assert.matches("allow_empty", err.message, 1, true)
      assert.same({}, emu:requests())
      local meta
      r, meta = client:request("PUT", MEMBERS_PATH, { ids = {}, allow_empty = true, decode = "members" })
      assert.equals(200, meta.status)
      assert.same({}, r)
      assert.equals("[]", core.only_request(emu).body)
      assert.same({}, core.group_members(emu))
    end)

    it("a non-string json raises", function()
      assert.has_error(function() client:request("POST", GROUPS_PATH, { json = { name = "x" } }) end)
      assert.same({}, emu:requests())
    end)
  end)

  describe("decode = \"members\"", function()
    it("returns the member array", function()
      local result, meta = client:request("GET", MEMBERS_PATH, { decode = "members", query = { per_page = 2 } })
      assert.equals(200, meta.status)
      assert.same({ { id = m(1), email = core.email(1), status = "accepted" },
                    { id = m(2), email = core.email(2), status = "pending" } }, result)
    end)

    it("a null result becomes an empty array", function()
      emu:fault({ method = "GET", status = 200,
        body = '{"success":true,"errors":[],"messages":[],"result":null}' })
      local result, meta = client:request("GET", MEMBERS_PATH, { decode = "members" })
      assert.same({}, result)
      assert.equals(200, meta.status)
    end)

    it("a result that is not an array of members with string ids is invalid_response", function()
      local bodies = {
        '{"success":true,"errors":[],"messages":[],"result":{"id":"' .. m(1) .. '"}}',
        '{"success":true,"errors":[],"messages":[],"result":[{"email":"x@example.com"}]}',
        '{"success":true,"errors":[],"messages":[],"result":[{"id":5}]}',
        '{"success":true,"errors":[],"messages":[],"result":["' .. m(1) .. '"]}',
        '{"success":true,"errors":[],"messages":[],"result":"members"}',
      }
      for _, body in ipairs(bodies) do
        emu:fault({ method = "GET", status = 200, body = body })
        local result, err = client:request("GET", MEMBERS_PATH, { decode = "members" })
        assert.is_nil(result, body)
        assert.equals("invalid_response", err.kind)
        assert.equals(200, err.status)
      end
    end)

    it("without decode the same object result is returned as is", function()
      emu:fault({ method = "GET", status = 200,
        body = '{"success":true,"errors":[],"messages":[],"result":{"id":"' .. m(1) .. '","n":null}}' })
      local result, meta = client:request("GET", MEMBERS_PATH)
      assert.same({ id = m(1) }, result)
      assert.equals(200, meta.status)
    end)
  end)

  describe("a success without a result", function()
    it("is told apart from a failure: the first value is not nil", function()
      for _, body in ipairs({ '{"success":true,"errors":[],"messages":[],"result":null}',
                              '{"success":true,"errors":[],"messages":[]}' }) do
        emu:fault({ method = "DELETE", status = 200, body = body })
        local result, meta = client:request("DELETE", GROUPS_PATH .. "/" .. G2)
        assert.is_not_nil(result, body)
        assert.equals(200, meta.status)
        assert.is_nil(meta.kind)
      end
    end)
  end)

  describe("numbers", function()
    it("whole JSON numbers are integers on Lua 5.3+, other numbers floats", function()
      emu:fault({ method = "GET", status = 200, body = '{"success":true,"errors":[],"messages":[],'
        .. '"result":{"big":9007199254740993,"neg":-42,"zero":0,"half":1.5,"exp":1e3,"negz":-0.0},'
        .. '"result_info":{"count":1,"page":1,"per_page":20,"total_count":1}}' })
      local result, meta = client:request("GET", MEMBERS_PATH)
      assert.equals(-42, result.neg)
      assert.equals(1.5, result.half)
      assert.equals(1000, result.exp)
      assert.equals(20, meta.result_info.per_page)
      if core.HAVE_INTEGERS then
        assert.equals("integer", math.type(result.big))
        assert.equals(9007199254740993, result.big) -- exact beyond 2^53
        assert.equals("integer", math.type(result.neg))
        assert.equals("integer", math.type(result.zero))
        assert.equals("integer", math.type(meta.result_info.page))
        assert.equals("integer", math.type(meta.result_info.per_page))
        assert.equals("float", math.type(result.half))
        assert.equals("float", math.type(result.exp))
        assert.equals("integer", math.type(meta.status))
        assert.equals("integer", math.type(meta.attempts))
      else
        assert.equals("number", type(result.big))
        assert.equals(0, result.zero)
        assert.equals("number", type(meta.result_info.page))
      end
    end)

    it("real list answers carry integer result_info fields on Lua 5.3+", function()
      local _, meta = client:request("GET", MEMBERS_PATH, { query = { per_page = 5 } })
      for _, k in ipairs({ "count", "page", "per_page", "total_count" }) do
        local v = meta.result_info[k]
        assert.equals("number", type(v))
        assert.equals(math.floor(v), v)
        if core.HAVE_INTEGERS then assert.equals("integer", math.type(v), k) end
      end
    end)
  end)

  describe("validation", function()
    it("a path that is not '/' plus URL path characters is invalid_argument, nothing sent", function()
      local bad = { "", "accounts", "/a b", "/a?b=1", "/a#b", "/%zz", "/%4", "/a\r\nX: 1",
                    "/../accounts", "/accounts/..", "/a/./b", "/a/.", "/\195\169", "http://x/y",
                    "/a\0b", "/%2e%2e/accounts", "/a/%2E/b", "/a/.%2e/b" }
      for _, p in ipairs(bad) do
        local r, err = client:request("GET", p)
        assert.is_nil(r, p)
        assert.equals("invalid_argument", err.kind, p)
        assert.matches("^path: ", err.message)
        assert.equals(0, err.attempts)
      end
      assert.same({}, emu:requests())
    end)

    it("sends percent-escapes, unreserved characters and // as they are, below the base URL", function()
      local _, err = client:request("GET", "/accounts/%41bc-._~/x")
      assert.equals("not_found", err.kind)
      _, err = client:request("GET", "//evil.example.com/x")
      assert.equals("not_found", err.kind)
      local reqs = emu:requests()
      assert.equals("/client/v4/accounts/%41bc-._~/x", reqs[1].path)
      assert.equals("/client/v4//evil.example.com/x", reqs[2].path)
    end)

    it("an unknown method or a non-string path raises", function()
      for _, f in ipairs({
        function() client:request("get", MEMBERS_PATH) end,
        function() client:request("HEAD", MEMBERS_PATH) end,
        function() client:request("OPTIONS", MEMBERS_PATH) end,
        function() client:request(nil, MEMBERS_PATH) end,
        function() client:request("GET", nil) end,
        function() client:request("GET", MEMBERS_PATH, "query") end,
      }) do
        assert.is_false((pcall(f)))
      end
      assert.same({}, emu:requests())
    end)

    it("unknown option names and wrong option types raise, as in the helpers", function()
      local cases = {
        { { idz = { m(1) } }, "unknown option \"idz\"" },
        { { decode = "member" }, "option 'decode' must be \"members\"" },
        { { decode = true }, "option 'decode' must be a string, got boolean" },
        { { query = "page=1" }, "option 'query' must be a table, got string" },
        { { ids = m(1) }, "option 'ids' must be a table, got string" },
        { { ids = { m(1) }, allow_empty = "true" }, "option 'allow_empty' must be a boolean, got string" },
        { { json = 5 }, "option 'json' must be a string, got number" },
        { { [1] = "x" }, "option names must be strings" },
        { { ids = { m(1) }, json = "[]" }, "ids and json cannot both be given" },
      }
      for i, c in ipairs(cases) do
        local ok, msg = pcall(client.request, client, "PUT", MEMBERS_PATH, c[1])
        assert.is_false(ok, "case " .. i)
        assert.matches(c[2], msg, 1, true)
        assert.matches("'request'", msg, 1, true)
      end
      assert.same({}, emu:requests())
    end)

    it("a number where the path goes raises instead of being read as a string", function()
      assert.has_error(function() client:request("GET", 123) end)
      assert.same({}, emu:requests())
    end)

    it("a body on GET or DELETE is invalid_argument, nothing sent", function()
      for _, meth in ipairs({ "GET", "DELETE" }) do
        for _, opts in ipairs({ { ids = { m(1) } }, { json = "{}" } }) do
          local r, err = client:request(meth, MEMBERS_PATH, opts)
          assert.is_nil(r)
          assert.equals("invalid_argument", err.kind)
          assert.equals(meth .. " takes no body (ids or json)", err.message)
        end
      end
      assert.same({}, emu:requests())
    end)

    it("every method is accepted: GET, POST, PUT, PATCH, DELETE reach the server", function()
      for _, meth in ipairs({ "GET", "POST", "PUT", "PATCH", "DELETE" }) do
        client:request(meth, "/accounts/" .. A .. "/no_such_route")
      end
      local got = {}
      for i, r in ipairs(emu:requests()) do got[i] = r.method end
      assert.same({ "GET", "POST", "PUT", "PATCH", "DELETE" }, got)
    end)
  end)

  describe("module-level cfiam.request", function()
    it("uses the default client made from the environment", function()
      local code = string.format([[
local cfiam = require("cfiam")
local r, meta = cfiam.request("GET", %q, { query = { per_page = 2 } })
print(#r, meta.status, meta.result_info.total_count)
]], MEMBERS_PATH)
      local out = core.child({ CLOUDFLARE_API_TOKEN = core.TOKEN, CLOUDFLARE_BASE_URL = emu.base_url }, code)
      assert.equals("2\t200\t10\n", out)
      assert.equals("per_page=2", core.only_request(emu).query)
    end)
  end)
end)
