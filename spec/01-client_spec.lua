-- spec/01-client_spec.lua: cfiam.new and the client object: options,
-- credentials and their precedence, the environment, base_url rules, extra
-- headers, user_agent, close, garbage collection, tostring, the
-- module-level default client. Everything goes through the real C
-- module against the emulator on loopback.
local cfiam = require("cfiam")
local core = require("helpers.core")
local emulator = require("helpers.emulator")

local A, G = core.ACCOUNT, core.GROUP
local M1, M4 = core.member(1), core.member(4)

describe("cfiam.new", function()
  local emu

  setup(function()
    emu = emulator.start({ seed = core.seed() })
  end)

  teardown(function()
    if emu then emu:stop() end
  end)

  before_each(function()
    emu:reset(core.seed())
  end)

  describe("options", function()
    it("are all optional: cfiam.new() and cfiam.new{} make clients", function()
      for _, c in ipairs({ cfiam.new(), cfiam.new({}) }) do
        assert.equals("userdata", type(c))
        assert.matches("^cfiam%.client ", tostring(c))
        c:close()
      end
    end)

    it("accepts every documented option with the right Lua type", function()
      local c = cfiam.new({
        api_token = core.TOKEN, api_email = core.EMAIL, api_key = core.KEY,
        base_url = emu.base_url, timeout = 5, connect_timeout = 2,
        max_retries = 1, ca_file = "/nonexistent/ca.pem", ca_path = "/nonexistent",
        proxy = "", user_agent = "ua/1", headers = { ["X-Extra"] = "1" },
        max_response_bytes = 1024 * 1024, transport = "curl", shared_dict = "cfiam",
      })
      assert.equals("userdata", type(c))
      -- the options were taken: a plain-HTTP call ignores the CA settings and works
      local members, err = c:update_members(A, G, { M1 })
      assert.is_nil(err)
      assert.equals(1, #members)
      c:close()
    end)

    it("have the documented defaults (timeout 60, connect_timeout 10, max_retries 2, 64 MiB)", function()
      local cfg = require("cfiam.core").config(cfiam.new({ api_token = core.TOKEN }))
      assert.equals(60, cfg.timeout)
      assert.equals(10, cfg.connect_timeout)
      assert.equals(2, cfg.max_retries)
      assert.equals(64 * 1024 * 1024, cfg.max_response_bytes)
      local given = require("cfiam.core").config(core.client(emu, { timeout = 7.5,
        connect_timeout = 1.5, max_retries = 4, max_response_bytes = 1000 }))
      assert.same({ 7.5, 1.5, 4, 1000 },
        { given.timeout, given.connect_timeout, given.max_retries, given.max_response_bytes })
    end)

    it("proxy carries https requests in a CONNECT tunnel, without the credentials", function()
      -- the base URL's port is closed: only the proxy (the emulator, which
      -- records the CONNECT and refuses it with a 404) can have seen it
      local target = "127.0.0.1:" .. core.closed_port()
      local c = core.client(emu, { base_url = "https://" .. target .. "/client/v4", proxy = emu.http_url })
      local members, err = c:update_members(A, G, { M4 })
      assert.is_nil(members)
      assert.equals("network", err.kind)
      local r = core.only_request(emu)
      assert.equals("CONNECT", r.method)
      assert.equals(target, r.path)
      assert.is_nil(core.header(r, "authorization"))
      c:close()
      -- and a proxy that is not there is a network error
      c = core.client(emu, { base_url = "https://" .. target .. "/client/v4",
                             proxy = "http://127.0.0.1:" .. core.closed_port() })
      local _, err2 = c:update_members(A, G, { M4 })
      assert.equals("network", err2.kind)
      c:close()
    end)

    it("raise on an unknown option name", function()
      assert.has_error(function() cfiam.new({ api_tokn = "x" }) end,
        "cfiam.new: unknown option 'api_tokn'")
      assert.has_error(function() cfiam.new({ retries = 1 }) end,
        "cfiam.new: unknown option 'retries'")
    end)

    it("raise on a non-string option name", function()
      assert.has_error(function() cfiam.new({ "positional" }) end)
    end)

    it("raise on a wrong Lua type, naming the option", function()
      local cases = {
        api_token = 1, api_email = true, api_key = {}, base_url = 5,
        timeout = "5", connect_timeout = "1", max_retries = "2",
        ca_file = 1, ca_path = false, proxy = 1, user_agent = 2,
        headers = "X-A: 1", max_response_bytes = "10", transport = 1,
        shared_dict = 1,
      }
      for name, value in pairs(cases) do
        local ok, msg = pcall(cfiam.new, { [name] = value })
        assert.is_false(ok, name)
        assert.matches("option '" .. name .. "' must be a", msg, 1, true)
      end
    end)

    it("raise when opts itself is not a table", function()
      assert.has_error(function() cfiam.new("api_token") end)
      assert.has_error(function() cfiam.new(42) end)
    end)

    it("raise on header tables that do not map strings to strings", function()
      assert.has_error(function() cfiam.new({ headers = { "X-A: 1" } }) end)
      assert.has_error(function() cfiam.new({ headers = { ["X-A"] = 1 } }) end)
    end)

    it("raise on out-of-range numbers", function()
      for _, o in ipairs({ { timeout = 0 }, { timeout = -1 }, { connect_timeout = 0 },
                           { max_retries = -1 }, { max_response_bytes = 0 } }) do
        assert.has_error(function() cfiam.new(o) end)
      end
    end)

    it("transport accepts auto, curl and cosocket and raises on other values", function()
      for _, t in ipairs({ "auto", "curl", "cosocket" }) do
        local c = cfiam.new({ transport = t })
        assert.equals("userdata", type(c))
        c:close()
      end
      assert.has_error(function() cfiam.new({ transport = "socket" }) end,
        'cfiam.new: option \'transport\' must be "auto", "curl" or "cosocket"')
    end)

    it("transport auto and curl both carry calls in plain Lua", function()
      for _, t in ipairs({ "auto", "curl" }) do
        local c = core.client(emu, { transport = t })
        local members, err = c:update_members(A, G, { M1, M4 })
        assert.is_nil(err)
        assert.equals(2, #members)
        c:close()
      end
    end)
  end)

  describe("credentials", function()
    it("api_token is sent as Authorization: Bearer", function()
      local c = core.client(emu)
      local members, err = c:update_members(A, G, { M1 })
      assert.is_nil(err)
      assert.equals(1, #members)
      local r = core.only_request(emu)
      assert.equals("Bearer " .. core.TOKEN, core.header(r, "authorization"))
      assert.is_nil(core.header(r, "x-auth-email"))
      assert.is_nil(core.header(r, "x-auth-key"))
      c:close()
    end)

    it("api_token wins over api_email + api_key", function()
      local c = core.client(emu, { api_email = core.EMAIL, api_key = core.KEY })
      local _, err = c:update_members(A, G, { M1 })
      assert.is_nil(err)
      local r = core.only_request(emu)
      assert.equals("Bearer " .. core.TOKEN, core.header(r, "authorization"))
      assert.is_nil(core.header(r, "x-auth-email"))
      assert.is_nil(core.header(r, "x-auth-key"))
      c:close()
    end)

    it("api_email + api_key are sent as X-Auth-Email / X-Auth-Key", function()
      local c = core.client(emu, { api_token = false, api_email = core.EMAIL, api_key = core.KEY })
      local members, err = c:update_members(A, G, { M1 })
      assert.is_nil(err)
      assert.equals(M1, members[1].id)
      local r = core.only_request(emu)
      assert.equals(core.EMAIL, core.header(r, "x-auth-email"))
      assert.equals(core.KEY, core.header(r, "x-auth-key"))
      assert.is_nil(core.header(r, "authorization"))
      c:close()
    end)

    it("api_email without api_key (and the reverse) is invalid_argument, nothing sent", function()
      for _, o in ipairs({ { api_token = false, api_email = core.EMAIL },
                           { api_token = false, api_key = core.KEY } }) do
        local c = core.client(emu, o)
        local members, err = c:update_members(A, G, { M1 })
        assert.is_nil(members)
        assert.equals("invalid_argument", err.kind)
        assert.matches(o.api_email and "api_email without api_key" or "api_key without api_email",
          err.message, 1, true)
        assert.equals(0, err.attempts)
        c:close()
      end
      assert.same({}, emu:requests())
    end)

    it("credentials with CR, LF or control characters are invalid_argument, nothing sent", function()
      local bad = { "test-token\r\nX-Injected: 1", "test-token\n", "test\0token", "tok\1en", "tok\127",
                    "test-token\t", "test\ttoken" }
      for _, v in ipairs(bad) do
        for _, o in ipairs({ { api_token = v },
                             { api_token = false, api_email = v, api_key = core.KEY },
                             { api_token = false, api_email = core.EMAIL, api_key = v } }) do
          local c = core.client(emu, o)
          local members, err = c:update_members(A, G, { M1 })
          assert.is_nil(members)
          assert.equals("invalid_argument", err.kind)
          assert.matches("control character", err.message, 1, true)
          -- the same for the generic request
          local r2, err2 = c:request("GET", core.MEMBERS_PATH)
          assert.is_nil(r2)
          assert.equals("invalid_argument", err2.kind)
          c:close()
        end
      end
      assert.same({}, emu:requests())
    end)

    it("an empty token is invalid_argument, nothing sent", function()
      local c = core.client(emu, { api_token = "" })
      local members, err = c:update_members(A, G, { M1 })
      assert.is_nil(members)
      assert.equals("invalid_argument", err.kind)
      assert.same({}, emu:requests())
      c:close()
    end)
  end)

  describe("the environment", function()
    local function call_code()
      return core.CHILD_REPORT .. string.format(
        "report(cfiam.new():update_members(%q, %q, {%q}))", A, G, M4)
    end

    it("CLOUDFLARE_API_TOKEN and CLOUDFLARE_BASE_URL configure a client", function()
      local out = core.child({ CLOUDFLARE_API_TOKEN = core.TOKEN, CLOUDFLARE_BASE_URL = emu.base_url },
        call_code())
      assert.equals("ok 1\n", out)
      local r = core.only_request(emu)
      assert.equals("Bearer " .. core.TOKEN, core.header(r, "authorization"))
      assert.same({ M4 }, core.group_members(emu))
    end)

    it("CLOUDFLARE_EMAIL + CLOUDFLARE_API_KEY are used when there is no token", function()
      local out = core.child({ CLOUDFLARE_EMAIL = core.EMAIL, CLOUDFLARE_API_KEY = core.KEY,
                               CLOUDFLARE_BASE_URL = emu.base_url }, call_code())
      assert.equals("ok 1\n", out)
      local r = core.only_request(emu)
      assert.equals(core.EMAIL, core.header(r, "x-auth-email"))
      assert.equals(core.KEY, core.header(r, "x-auth-key"))
      assert.is_nil(core.header(r, "authorization"))
    end)

    it("CLOUDFLARE_API_TOKEN wins over CLOUDFLARE_EMAIL + CLOUDFLARE_API_KEY", function()
      local out = core.child({ CLOUDFLARE_API_TOKEN = core.TOKEN, CLOUDFLARE_EMAIL = core.EMAIL,
                               CLOUDFLARE_API_KEY = core.KEY, CLOUDFLARE_BASE_URL = emu.base_url },
        call_code())
      assert.equals("ok 1\n", out)
      local r = core.only_request(emu)
      assert.equals("Bearer " .. core.TOKEN, core.header(r, "authorization"))
      assert.is_nil(core.header(r, "x-auth-key"))
    end)

    it("CLOUDFLARE_EMAIL alone is invalid_argument, nothing sent", function()
      local out = core.child({ CLOUDFLARE_EMAIL = core.EMAIL, CLOUDFLARE_BASE_URL = emu.base_url },
        call_code())
      assert.matches("^err invalid_argument api_email without api_key\n$", out)
      assert.same({}, emu:requests())
    end)

    it("credentials given in opts are used instead of the environment's", function()
      local code = core.CHILD_REPORT .. string.format(
        "report(cfiam.new{api_email=%q, api_key=%q}:update_members(%q, %q, {%q}))",
        core.EMAIL, core.KEY, A, G, M4)
      local out = core.child({ CLOUDFLARE_API_TOKEN = "wrong-token", CLOUDFLARE_BASE_URL = emu.base_url },
        code)
      assert.equals("ok 1\n", out)
      local r = core.only_request(emu)
      assert.is_nil(core.header(r, "authorization"))
      assert.equals(core.KEY, core.header(r, "x-auth-key"))
    end)

    it("opts.base_url is used instead of CLOUDFLARE_BASE_URL", function()
      local code = core.CHILD_REPORT .. string.format(
        "report(cfiam.new{base_url=%q}:update_members(%q, %q, {%q}))", emu.base_url, A, G, M4)
      local out = core.child({ CLOUDFLARE_API_TOKEN = core.TOKEN,
                               CLOUDFLARE_BASE_URL = "http://127.0.0.1:" .. core.closed_port() .. "/client/v4" },
        code)
      assert.equals("ok 1\n", out)
      assert.equals(1, #emu:requests())
    end)

    it("no credentials at all is invalid_argument, nothing sent", function()
      local out = core.child({ CLOUDFLARE_BASE_URL = emu.base_url }, call_code())
      assert.matches("^err invalid_argument no credentials", out)
      -- empty variables count as unset
      out = core.child({ CLOUDFLARE_API_TOKEN = "", CLOUDFLARE_BASE_URL = emu.base_url }, call_code())
      assert.matches("^err invalid_argument no credentials", out)
      assert.same({}, emu:requests())
    end)

    it("a CLOUDFLARE_API_TOKEN with a newline is invalid_argument, nothing sent", function()
      local out = core.child({ CLOUDFLARE_API_TOKEN = "test-token\nX-Injected: 1",
                               CLOUDFLARE_BASE_URL = emu.base_url }, call_code())
      assert.matches("^err invalid_argument api_token contains a control character", out)
      assert.same({}, emu:requests())
    end)

    it("without CLOUDFLARE_BASE_URL the base URL is https://api.cloudflare.com/client/v4", function()
      local out = core.child({ CLOUDFLARE_API_TOKEN = core.TOKEN },
        "print(tostring(require('cfiam').new()))")
      assert.matches("^cfiam%.client %(https://api%.cloudflare%.com/client/v4, token auth%)", out)
    end)

    it("a bad CLOUDFLARE_BASE_URL is invalid_argument on the call", function()
      local out = core.child({ CLOUDFLARE_API_TOKEN = core.TOKEN,
                               CLOUDFLARE_BASE_URL = "http://api.example.com/client/v4" }, call_code())
      assert.matches("^err invalid_argument base_url uses http:// to a host that is not loopback", out)
    end)

    it("module-level update_members uses a default client made from the environment", function()
      local code = core.CHILD_REPORT .. string.format([[
local members, err = cfiam.update_members(%q, %q, {%q, %q})
report(members, err)
for _, m in ipairs(members) do print(m.id, m.email, m.status) end
local d = cfiam.default_client()
print(d == cfiam.default_client(), (tostring(d):find("token auth", 1, true)) ~= nil)
]], A, G, M4, M1)
      local out = core.child({ CLOUDFLARE_API_TOKEN = core.TOKEN, CLOUDFLARE_BASE_URL = emu.base_url }, code)
      assert.equals("ok 2\n" .. M1 .. "\t" .. core.email(1) .. "\taccepted\n"
        .. M4 .. "\t" .. core.email(4) .. "\taccepted\ntrue\ttrue\n", out)
      assert.same({ M1, M4 }, core.group_members(emu))
      assert.equals("Bearer " .. core.TOKEN, core.header(core.only_request(emu), "authorization"))
    end)

    it("module-level update_members without any credentials is invalid_argument", function()
      local code = core.CHILD_REPORT .. string.format("report(cfiam.update_members(%q, %q, {%q}))", A, G, M4)
      local out = core.child({ CLOUDFLARE_BASE_URL = emu.base_url }, code)
      assert.matches("^err invalid_argument no credentials", out)
      assert.same({}, emu:requests())
    end)
  end)

  describe("default_client", function()
    it("is shared, and replaced by a new one once closed", function()
      local d = cfiam.default_client()
      assert.equals(d, cfiam.default_client())
      d:close()
      local d2 = cfiam.default_client()
      assert.are_not.equal(d, d2)
      assert.matches("^cfiam%.client %(", tostring(d2))
    end)
  end)

  describe("extra headers", function()
    it("are sent with every request", function()
      local c = core.client(emu, { headers = { ["X-Trace-Id"] = "abc 123", ["X-Other"] = "v" } })
      assert.is_nil(select(2, c:update_members(A, G, { M1 })))
      assert.is_table((c:request("GET", core.MEMBERS_PATH)))
      local reqs = emu:requests()
      assert.equals(2, #reqs)
      for _, r in ipairs(reqs) do
        assert.equals("abc 123", core.header(r, "x-trace-id"))
        assert.equals("v", core.header(r, "x-other"))
        assert.equals("Bearer " .. core.TOKEN, core.header(r, "authorization"))
      end
      c:close()
    end)

    it("cannot replace the auth or content headers: invalid_argument, nothing sent", function()
      for _, name in ipairs({ "Authorization", "authorization", "X-Auth-Email", "X-Auth-Key",
                              "Content-Type", "content-length", "Transfer-Encoding", "Host" }) do
        local c = core.client(emu, { headers = { [name] = "Bearer other-token" } })
        local members, err = c:update_members(A, G, { M1 })
        assert.is_nil(members)
        assert.equals("invalid_argument", err.kind)
        assert.matches("cannot be set through headers", err.message, 1, true)
        c:close()
      end
      assert.same({}, emu:requests())
    end)

    it("with a control character in a value or a bad name are invalid_argument, nothing sent", function()
      for _, h in ipairs({ { ["X-A"] = "1\r\nAuthorization: Bearer x" }, { ["X A"] = "1" },
                           { ["X-A:"] = "1" }, { [""] = "1" } }) do
        local c = core.client(emu, { headers = h })
        local members, err = c:update_members(A, G, { M1 })
        assert.is_nil(members)
        assert.equals("invalid_argument", err.kind)
        assert.matches("^headers: ", err.message)
        c:close()
      end
      assert.same({}, emu:requests())
    end)

    it("Content-Type application/json goes with bodies, Accept with every request", function()
      local c = core.client(emu)
      assert.is_nil(select(2, c:update_members(A, G, { M1 })))
      assert.is_table((c:request("GET", core.MEMBERS_PATH)))
      local reqs = emu:requests()
      assert.equals("application/json", core.header(reqs[1], "content-type"))
      assert.equals("application/json", core.header(reqs[1], "accept"))
      assert.is_nil(core.header(reqs[2], "content-type"))
      assert.equals("application/json", core.header(reqs[2], "accept"))
      c:close()
    end)
  end)

  describe("user_agent", function()
    it("is sent as given", function()
      local c = core.client(emu, { user_agent = "my-sync/2.0 (ops)" })
      assert.is_nil(select(2, c:update_members(A, G, { M1 })))
      assert.equals("my-sync/2.0 (ops)", core.header(core.only_request(emu), "user-agent"))
      c:close()
    end)

    it("defaults to cfiam/<version>", function()
      local c = core.client(emu)
      assert.is_nil(select(2, c:update_members(A, G, { M1 })))
      local ua = core.header(core.only_request(emu), "user-agent")
      assert.equals("cfiam/" .. cfiam._VERSION, ua:match("^(%S+)"))
      c:close()
    end)

    it("with a newline is invalid_argument, nothing sent", function()
      local c = core.client(emu, { user_agent = "ua\r\nX-Injected: 1" })
      local members, err = c:update_members(A, G, { M1 })
      assert.is_nil(members)
      assert.equals("invalid_argument", err.kind)
      assert.matches("^user_agent ", err.message)
      assert.same({}, emu:requests())
      c:close()
    end)
  end)

  describe("base_url", function()
    it("accepts http:// to 127.0.0.1 and localhost (with or without a trailing /)", function()
      local port = emu.base_url:match("^http://127%.0%.0%.1:(%d+)/")
      assert.is_not_nil(port)
      local urls = { emu.base_url, emu.base_url .. "/",
                     "http://localhost:" .. port .. "/client/v4",
                     "http://LOCALHOST:" .. port .. "/client/v4" }
      for _, u in ipairs(urls) do
        local c = core.client(emu, { base_url = u })
        local members, err = c:update_members(A, G, { M1 })
        assert.is_nil(err, u)
        assert.equals(1, #members)
        c:close()
      end
      local reqs = emu:requests()
      assert.equals(#urls, #reqs)
      for _, r in ipairs(reqs) do
        assert.equals("/client/v4/accounts/" .. A .. "/iam/user_groups/" .. G .. "/members", r.path)
      end
    end)

    it("accepts http:// to all of 127.0.0.0/8 and [::1] (the call is attempted)", function()
      local port = core.closed_port()
      for _, host in ipairs({ "127.0.0.2", "127.255.255.254", "[::1]" }) do
        local c = core.client(emu, { base_url = "http://" .. host .. ":" .. port .. "/client/v4" })
        local members, err = c:update_members(A, G, { M1 })
        assert.is_nil(members)
        assert.equals("network", err.kind, host)
        assert.equals(1, err.attempts)
        c:close()
      end
    end)

    it("accepts https:// to any host (the call is attempted)", function()
      local c = core.client(emu, { base_url = "https://127.0.0.1:" .. core.closed_port() .. "/client/v4" })
      local members, err = c:update_members(A, G, { M1 })
      assert.is_nil(members)
      assert.equals("network", err.kind)
      c:close()
    end)

    it("refuses anything else with invalid_argument, nothing sent", function()
      local port = emu.base_url:match("^http://127%.0%.0%.1:(%d+)/")
      local bad = {
        "http://api.cloudflare.com/client/v4",
        "http://10.0.0.1/client/v4",
        "http://128.0.0.1/client/v4",
        "http://127.0.0.1.nip.io:" .. port .. "/client/v4",
        "http://localhost.example.com/client/v4",
        "http://127.0.0.256:" .. port .. "/client/v4",
        "http://127.1:" .. port .. "/client/v4",
        "http://[::2]:" .. port .. "/client/v4",
        "http://[::ffff:127.0.0.1]:" .. port .. "/client/v4",
        "ftp://127.0.0.1:" .. port .. "/client/v4",
        "file:///etc/passwd",
        "127.0.0.1:" .. port .. "/client/v4",
        "api.cloudflare.com/client/v4",
        "",
        "https://user:pw@api.cloudflare.com/client/v4",
        "http://user@127.0.0.1:" .. port .. "/client/v4",
        "http://127.0.0.1:" .. port .. "/client/v4?x=1",
        "http://127.0.0.1:" .. port .. "/client/v4#f",
        "http://127.0.0.1:" .. port .. "/client v4",
        "http://127.0.0.1:" .. port .. "/client/v4\r\nX: 1",
        "http://127.0.0.1:99999/client/v4",
        "https://",
      }
      for _, u in ipairs(bad) do
        local c = core.client(emu, { base_url = u })
        local members, err = c:update_members(A, G, { M1 })
        assert.is_nil(members, u)
        assert.equals("invalid_argument", err.kind, u)
        assert.matches("^base_url ", err.message)
        assert.equals(0, err.attempts)
        local r2, err2 = c:request("GET", "/accounts")
        assert.is_nil(r2)
        assert.equals("invalid_argument", err2.kind)
        c:close()
      end
      assert.same({}, emu:requests())
    end)
  end)

  describe("close", function()
    it("is idempotent", function()
      local c = core.client(emu)
      assert.is_nil(select(2, c:update_members(A, G, { M1 })))
      c:close()
      c:close()
      assert.matches("^cfiam%.client %(closed%)", tostring(c))
    end)

    it("makes later use raise", function()
      local c = core.client(emu)
      c:close()
      assert.has_error(function() c:update_members(A, G, { M1 }) end,
        "cfiam: attempt to use a closed client")
      assert.has_error(function() c:request("GET", core.MEMBERS_PATH) end,
        "cfiam: attempt to use a closed client")
      assert.same({}, emu:requests())
    end)

    it("a client is a to-be-closed value where Lua has them (5.4), and has no __close elsewhere", function()
      local c = core.client(emu)
      local mt = getmetatable(c)
      if _VERSION == "Lua 5.4" and not rawget(_G, "jit") then
        local f = assert(load([[
          local make = ...
          local outer
          do
            local c <close> = make()
            outer = c
          end
          return outer]]))
        local closed = f(function() return core.client(emu) end)
        assert.matches("^cfiam%.client %(closed%)", tostring(closed))
        assert.is_function(mt.__close)
      else
        assert.is_nil(mt.__close)
      end
      assert.is_function(mt.__gc)
      c:close()
    end)

    it("close on something else raises", function()
      local c = core.client(emu)
      assert.has_error(function() c.close({}) end)
      c:close()
    end)
  end)

  describe("garbage collection", function()
    it("collects clients that are no longer referenced (also after a call)", function()
      local weak = setmetatable({}, { __mode = "v" })
      do
        local used = core.client(emu)
        assert.is_nil(select(2, used:update_members(A, G, { M1 })))
        weak[1] = used
        weak[2] = core.client(emu)
        local closed = core.client(emu)
        closed:close()
        weak[3] = closed
      end
      collectgarbage()
      collectgarbage()
      assert.is_nil(weak[1])
      assert.is_nil(weak[2])
      assert.is_nil(weak[3])
    end)
  end)

  describe("tostring(client)", function()
    it("names the base URL and auth kind but never the credentials", function()
      local secret_token = "tok-0123456789-SECRET"
      local c1 = core.client(emu, { api_token = secret_token })
      local s1 = tostring(c1)
      assert.matches("^cfiam%.client %(http://127%.0%.0%.1:%d+/client/v4, token auth%)", s1)
      assert.is_nil(s1:find(secret_token, 1, true))
      local c2 = core.client(emu, { api_token = false, api_email = core.EMAIL, api_key = core.KEY })
      local s2 = tostring(c2)
      assert.matches("key auth", s2, 1, true)
      assert.is_nil(s2:find(core.KEY, 1, true))
      -- a token with a control character is not shown either
      local c3 = core.client(emu, { api_token = "bad\ntoken-SECRET" })
      assert.is_nil(tostring(c3):find("SECRET", 1, true))
      c1:close(); c2:close(); c3:close()
    end)
  end)
end)
