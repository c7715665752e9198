-- spec/04-errors_spec.lua: the error value: nil, err with kind, message,
-- status, errors, messages, ray_id, attempts; every kind the emulator can
-- provoke; tostring and concatenation; no secret ever in an error. Real C module against the emulator.
local core = require("helpers.core")
local emulator = require("helpers.emulator")

local A, G = core.ACCOUNT, core.GROUP
local m = core.member
local MEMBERS_PATH = core.MEMBERS_PATH

local function envelope_fail(errors, messages)
  return '{"success":false,"errors":' .. errors .. ',"messages":' .. (messages or "[]")
    .. ',"result":null}'
end

-- Checks the documented shape of any error value.
local function assert_shape(err, kind)
  assert.is_table(err)
  assert.equals(kind, err.kind)
  assert.is_string(err.message)
  assert.is_table(err.errors)
  assert.is_table(err.messages)
  assert.equals("number", type(err.attempts))
  if err.status ~= nil then assert.equals("number", type(err.status)) end
  local s = tostring(err)
  assert.equals("cfiam " .. kind .. ": ", s:sub(1, #kind + 8))
  assert.is_nil(s:find("[\r\n]"))
end

describe("errors", function()
  local emu, client

  setup(function()
    emu = emulator.start({ tls = true, seed = core.seed() })
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

  describe("the error table", function()
    it("has kind, message, status, errors, messages, ray_id and attempts", function()
      emu:fault({ method = "PUT", status = 400, headers = { ["cf-ray"] = "8f00aa11bb22cc33-SJC" },
        body = envelope_fail('[{"code":1001,"message":"Invalid request body","documentation_url":'
          .. '"https://developers.cloudflare.com/x","source":{"pointer":"/0/id"}}]',
          '[{"code":2000,"message":"a note"}]') })
      local members, err = client:update_members(A, G, { m(1) })
      assert.is_nil(members)
      assert_shape(err, "api")
      assert.equals(400, err.status)
      assert.equals("8f00aa11bb22cc33-SJC", err.ray_id)
      assert.equals(1, err.attempts)
      assert.is_nil(err.retry_after)
      assert.same({ { code = 1001, message = "Invalid request body",
                      documentation_url = "https://developers.cloudflare.com/x",
                      source = { pointer = "/0/id" } } }, err.errors)
      assert.same({ { code = 2000, message = "a note" } }, err.messages)
      if core.HAVE_INTEGERS then
        assert.equals("integer", math.type(err.errors[1].code))
        assert.equals("integer", math.type(err.messages[1].code))
        assert.equals("integer", math.type(err.status))
        assert.equals("integer", math.type(err.attempts))
      end
    end)

    it("tostring is one line naming the kind, HTTP status, Cloudflare codes and messages, and the ray id", function()
      emu:fault({ method = "PUT", status = 400, headers = { ["cf-ray"] = "8f00aa11bb22cc33-SJC" },
        body = envelope_fail('[{"code":1002,"message":"Member x is not\\na member"},'
          .. '{"code":1003,"message":"second"}]') })
      local _, err = client:update_members(A, G, { m(1) })
      assert.equals("cfiam api: HTTP 400: [1002] Member x is not a member; [1003] second"
        .. " (cf-ray 8f00aa11bb22cc33-SJC)", tostring(err))
    end)

    it("concatenates with strings on either side", function()
      emu:fault({ method = "PUT", status = 404 })
      local _, err = client:update_members(A, G, { m(1) })
      local s = tostring(err)
      assert.equals("failed: " .. s, "failed: " .. err)
      assert.equals(s .. "!", err .. "!")
      assert.equals("a " .. s .. " b", "a " .. err .. " b")
    end)

    it("carries the cf-ray response header as ray_id", function()
      local _, err = client:update_members(A, core.fake_id(99), { m(1) })
      assert.equals("not_found", err.kind)
      local r = core.only_request(emu)
      assert.is_string(err.ray_id)
      assert.matches("%-EMU$", err.ray_id)
      assert.matches("(cf-ray " .. err.ray_id .. ")", tostring(err), 1, true)
      assert.equals("/client/v4/accounts/" .. A .. "/iam/user_groups/" .. core.fake_id(99) .. "/members",
        r.path)
    end)

    it("invalid_argument errors have the same shape (attempts 0, no status)", function()
      local _, err = client:update_members("x", G, { m(1) })
      assert_shape(err, "invalid_argument")
      assert.equals(0, err.attempts)
      assert.is_nil(err.status)
    end)
  end)

  describe("kinds from HTTP statuses", function()
    it("auth (401): an unknown token, an unknown key, no credentials header", function()
      local c1 = core.client(emu, { api_token = "wrong-token" })
      local _, err = c1:update_members(A, G, { m(1) })
      assert_shape(err, "auth")
      assert.equals(401, err.status)
      assert.equals(10000, err.errors[1].code)
      assert.matches("^HTTP 401: %[10000%] Authentication error", err.message)
      c1:close()
      local c2 = core.client(emu, { api_token = false, api_email = core.EMAIL,
                                    api_key = "00000000000000000000000000000000" })
      _, err = c2:update_members(A, G, { m(1) })
      assert_shape(err, "auth")
      c2:close()
      assert.same({ m(1), m(2), m(3) }, core.group_members(emu))
    end)

    it("permission (403): a read-only token writing, a token scoped to another account", function()
      for _, tok in ipairs({ "ro-token", "scoped-token" }) do
        local c = core.client(emu, { api_token = tok })
        local members, err = c:update_members(A, G, { m(5) })
        assert.is_nil(members)
        assert_shape(err, "permission")
        assert.equals(403, err.status)
        assert.equals(1, err.attempts)
        c:close()
      end
      -- the read-only token may still read
      local ro = core.client(emu, { api_token = "ro-token" })
      assert.is_table((ro:request("GET", MEMBERS_PATH)))
      ro:close()
      assert.same({ m(1), m(2), m(3) }, core.group_members(emu))
    end)

    it("not_found (404): unknown group and unknown account", function()
      local _, err = client:update_members(A, core.fake_id(1), { m(1) })
      assert_shape(err, "not_found")
      assert.equals(404, err.status)
      assert.equals(1003, err.errors[1].code)
      _, err = client:update_members(core.fake_id(2), G, { m(1) })
      assert_shape(err, "not_found")
    end)

    it("rate_limited (429) after the retries", function()
      emu:fault({ method = "PUT", status = 429, times = -1, headers = { ["retry-after-ms"] = "5" } })
      local c = core.client(emu, { max_retries = 2 })
      local _, err = c:update_members(A, G, { m(1) })
      assert_shape(err, "rate_limited")
      assert.equals(429, err.status)
      assert.equals(3, err.attempts)
      assert.equals(971, err.errors[1].code)
      assert.equals(3, #emu:requests())
      c:close()
    end)

    it("api (400) from the API's own validation: members not in the account, one error each", function()
      local _, err = client:update_members(A, G, { m(1), core.fake_id(5), core.fake_id(6) })
      assert_shape(err, "api")
      assert.equals(400, err.status)
      assert.equals(2, #err.errors)
      assert.equals(1002, err.errors[1].code)
      assert.matches("[1002] Member " .. core.fake_id(5), err.message, 1, true)
      assert.matches("; [1002] Member " .. core.fake_id(6), err.message, 1, true)
      assert.same({ m(1), m(2), m(3) }, core.group_members(emu))
    end)

    it("api for other 4xx (400, 405, 415, 422) and for 409 after the retries", function()
      for _, st in ipairs({ 400, 405, 415, 422, 409 }) do
        emu:fault({ method = "PUT", status = st, headers = { ["retry-after-ms"] = "1" } })
        local _, err = client:update_members(A, G, { m(1) })
        assert_shape(err, "api")
        assert.equals(st, err.status)
        assert.equals(10001, err.errors[1].code)
      end
    end)

    it("api for success:false in a 200", function()
      emu:fault({ method = "PUT", status = 200,
        body = envelope_fail('[{"code":1234,"message":"not today"}]') })
      local members, err = client:update_members(A, G, { m(1) })
      assert.is_nil(members)
      assert_shape(err, "api")
      assert.equals(200, err.status)
      assert.equals(1234, err.errors[1].code)
      assert.equals("HTTP 200, success false: [1234] not today", err.message)
    end)

    it("server (5xx) after the retries, HTML body: the message carries its first line", function()
      emu:fault({ method = "PUT", status = 502, times = -1,
        headers = { ["Content-Type"] = "text/html", ["retry-after-ms"] = "1" },
        body = "<html><head><title>502 Bad Gateway</title></head>\r\n<body>cloudflare</body>\r\n</html>\r\n" })
      local c = core.client(emu, { max_retries = 1 })
      local _, err = c:update_members(A, G, { m(1) })
      assert_shape(err, "server")
      assert.equals(502, err.status)
      assert.equals(2, err.attempts)
      assert.same({}, err.errors)
      assert.equals("HTTP 502: <html><head><title>502 Bad Gateway</title></head>", err.message)
      c:close()
    end)

    it("the status decides the kind even with an HTML or empty body", function()
      local cases = { { 401, "auth" }, { 403, "permission" }, { 404, "not_found" },
                      { 400, "api" }, { 500, "server" }, { 503, "server" } }
      for _, case in ipairs(cases) do
        emu:fault({ method = "PUT", status = case[1], headers = { ["Content-Type"] = "text/html" },
          body = "<h1>Oops " .. case[1] .. "</h1>\nmore" })
        local _, err = client:update_members(A, G, { m(1) })
        assert_shape(err, case[2])
        assert.equals("HTTP " .. case[1] .. ": <h1>Oops " .. case[1] .. "</h1>", err.message)
        emu:fault({ method = "PUT", status = case[1], body = "" })
        _, err = client:update_members(A, G, { m(1) })
        assert_shape(err, case[2])
        assert.equals("HTTP " .. case[1] .. ": empty body", err.message)
      end
    end)

    it("a long first line is cut, so the message stays bounded", function()
      emu:fault({ method = "PUT", status = 500, body = string.rep("x", 10000) })
      local _, err = client:update_members(A, G, { m(1) })
      assert_shape(err, "server")
      assert.is_true(#err.message < 300)
    end)
  end)

  describe("kinds without an HTTP answer", function()
    it("timeout: an answer slower than timeout", function()
      emu:fault({ method = "PUT", delay_ms = 3000 })
      local c = core.client(emu, { timeout = 0.3 })
      local secs, members, err = core.timed(c.update_members, c, A, G, { m(1) })
      assert.is_nil(members)
      assert_shape(err, "timeout")
      assert.is_nil(err.status)
      assert.equals(1, err.attempts)
      assert.is_true(secs < 2.5, "took " .. secs .. " s")
      c:close()
    end)

    it("timeout: a server that stalls in the middle of the answer", function()
      emu:fault({ method = "PUT", stall_at = 40 })
      local c = core.client(emu, { timeout = 0.5 })
      local secs, _, err = core.timed(c.update_members, c, A, G, { m(1) })
      assert_shape(err, "timeout")
      assert.is_true(secs < 3, "took " .. secs .. " s")
      c:close()
    end)

    it("timeout: connect_timeout ends a connection that is never accepted", function()
      -- a listener whose accept queue is full: the kernel drops further SYNs,
      -- so the connection neither succeeds nor fails
      local socket = require("socket")
      local srv = assert(socket.tcp())
      assert(srv:bind("127.0.0.1", 0))
      assert(srv:listen(0))
      local _, port = srv:getsockname()
      local fill = {}
      for i = 1, 4 do
        fill[i] = socket.tcp()
        fill[i]:settimeout(0)
        fill[i]:connect("127.0.0.1", port)
      end
      finally(function()
        for _, f in ipairs(fill) do f:close() end
        srv:close()
      end)
      local c = core.client(emu, { base_url = "http://127.0.0.1:" .. port .. "/client/v4",
                                   connect_timeout = 0.3, timeout = 20 })
      local secs, members, err = core.timed(c.update_members, c, A, G, { m(1) })
      assert.is_nil(members)
      assert_shape(err, "timeout")
      assert.is_nil(err.status)
      -- ended by connect_timeout, long before the 20 s timeout
      assert.is_true(secs < 5, "took " .. secs .. " s")
      c:close()
    end)

    it("a short test token (under 8 characters) does not garble messages", function()
      local c = core.client(emu, { api_token = "t",
        base_url = "http://127.0.0.1:" .. core.closed_port() .. "/client/v4" })
      local _, err = c:update_members(A, G, { m(1) })
      assert_shape(err, "network")
      assert.matches("Failed to connect", err.message, 1, true)
      c:close()
    end)

    it("network: connection refused on a closed port", function()
      local c = core.client(emu, { base_url = "http://127.0.0.1:" .. core.closed_port() .. "/client/v4" })
      local _, err = c:update_members(A, G, { m(1) })
      assert_shape(err, "network")
      assert.is_nil(err.status)
      assert.same({}, err.errors)
      c:close()
    end)

    it("network: a dropped connection, a body cut short, an unfinished chunked body", function()
      for _, rule in ipairs({ { method = "PUT", drop = true }, { method = "PUT", truncate_at = 200 },
                              { method = "PUT", truncated_chunked = true } }) do
        emu:fault(rule)
        local _, err = client:update_members(A, G, { m(1) })
        assert_shape(err, "network")
      end
    end)

    it("network: a connection closed inside the response headers (no status)", function()
      for _, at in ipairs({ 5, 40 }) do  -- inside the status line, inside a header
        emu:fault({ method = "PUT", truncate_at = at })
        local members, err = client:update_members(A, G, { m(1) })
        assert.is_nil(members)
        assert_shape(err, "network")
        assert.is_nil(err.status)
      end
    end)

    it("tls: a certificate from another CA", function()
      local c = core.client(emu, { base_url = emu.tls_base_url, ca_file = emu.other_ca_file })
      local _, err = c:update_members(A, G, { m(1) })
      assert_shape(err, "tls")
      assert.is_nil(err.status)
      assert.same({}, emu:requests())
      c:close()
    end)
  end)

  describe("invalid_response", function()
    it("a 200 that is not JSON", function()
      for _, body in ipairs({ "<html>ok</html>", "", '{"success":true,', "nul", '{"success":true} x' }) do
        emu:fault({ method = "PUT", status = 200, body = body })
        local members, err = client:update_members(A, G, { m(1) })
        assert.is_nil(members, body)
        assert_shape(err, "invalid_response")
        assert.equals(200, err.status)
        assert.matches("^HTTP 200: the body is not JSON", err.message)
      end
    end)

    it("a 200 that is JSON but not the API envelope", function()
      for _, body in ipairs({ '{"result":[]}', "[1,2]", '"ok"', "null", '{"success":"yes"}' }) do
        emu:fault({ method = "PUT", status = 200, body = body })
        local _, err = client:update_members(A, G, { m(1) })
        assert_shape(err, "invalid_response")
        assert.equals("HTTP 200: the body is not the API envelope", err.message)
      end
    end)

    it("a 200 with invalid UTF-8 or nesting beyond the limit", function()
      emu:fault({ method = "PUT", invalid_utf8 = true })
      local _, err = client:update_members(A, G, { m(1) })
      assert_shape(err, "invalid_response")
      emu:fault({ method = "GET", nested = 200 })
      _, err = client:request("GET", MEMBERS_PATH)
      assert_shape(err, "invalid_response")
    end)

    it("a body over max_response_bytes (success or error status), whatever the framing", function()
      local c = core.client(emu, { max_response_bytes = 100000 })
      for _, rule in ipairs({ { method = "GET", body_bytes = 200000 },
                              { method = "GET", body_bytes = 200000, chunked = true },
                              { method = "GET", status = 500, body = string.rep("y", 150000) } }) do
        emu:fault(rule)
        local r, err = c:request("GET", MEMBERS_PATH)
        assert.is_nil(r)
        assert_shape(err, "invalid_response")
        assert.matches("max_response_bytes", err.message, 1, true)
        assert.equals(1, err.attempts)
      end
      -- under the limit the same answer is fine
      emu:fault({ method = "GET", body_bytes = 50000 })
      local r = c:request("GET", MEMBERS_PATH)
      assert.is_table(r)
      assert.is_true(#r > 100)
      c:close()
    end)

    it("a redirect (301, 302, 307, 308) is never followed", function()
      for _, st in ipairs({ 301, 302, 307, 308 }) do
        emu:clear_requests()
        local target = emu.base_url .. "/accounts/" .. A .. "/iam/user_groups/" .. core.GROUP2 .. "/members"
        emu:fault({ method = "PUT", status = st, headers = { Location = target } })
        local _, err = client:update_members(A, G, { m(7) })
        assert_shape(err, "invalid_response")
        assert.equals(st, err.status)
        assert.matches("^HTTP " .. st .. " redirect to ", err.message)
        assert.matches("not followed", err.message, 1, true)
        local reqs = emu:requests()
        assert.equals(1, #reqs)
        assert.matches("/user_groups/" .. G .. "/members$", reqs[1].path)
      end
      assert.same({}, core.group_members(emu, A, core.GROUP2))
    end)
  end)

  describe("secrets", function()
    local TOKEN_SECRET = "tok-3f9a2b7c-SECRET"

    local function assert_clean(err, secret)
      local texts = { err.message, tostring(err), "x" .. err }
      for _, list in ipairs({ err.errors, err.messages }) do
        for _, e in ipairs(list) do texts[#texts + 1] = e.message or "" end
      end
      for _, t in ipairs(texts) do
        assert.is_nil(t:find(secret, 1, true), t)
      end
    end

    it("a token the server echoes back is scrubbed to [redacted] everywhere", function()
      local seed = core.seed()
      seed.tokens[#seed.tokens + 1] = { token = TOKEN_SECRET }
      emu:reset(seed)
      emu:fault({ method = "PUT", status = 401,
        body = envelope_fail('[{"code":10000,"message":"token ' .. TOKEN_SECRET .. ' is not valid"}]',
          '[{"code":1,"message":"' .. TOKEN_SECRET .. TOKEN_SECRET .. '"}]') })
      local c = core.client(emu, { api_token = TOKEN_SECRET })
      local _, err = c:update_members(A, G, { m(1) })
      assert.equals("auth", err.kind)
      assert_clean(err, TOKEN_SECRET)
      assert.equals("token [redacted] is not valid", err.errors[1].message)
      -- adjacent pieces of the secret are one run: one [redacted]
      assert.equals("[redacted]", err.messages[1].message)
      assert.matches("[redacted]", err.message, 1, true)
      c:close()
    end)

    it("a key echoed in a 200 success:false and in an HTML first line is scrubbed", function()
      local c = core.client(emu, { api_token = false, api_email = core.EMAIL, api_key = core.KEY })
      emu:fault({ method = "PUT", status = 200,
        body = envelope_fail('[{"code":9,"message":"key=' .. core.KEY .. '"}]') })
      local _, err = c:update_members(A, G, { m(1) })
      assert.equals("api", err.kind)
      assert_clean(err, core.KEY)
      emu:fault({ method = "PUT", status = 500, body = "<p>bad key " .. core.KEY .. "</p>\nrest" })
      _, err = c:update_members(A, G, { m(1) })
      assert.equals("server", err.kind)
      assert_clean(err, core.KEY)
      assert.equals("HTTP 500: <p>bad key [redacted]</p>", err.message)
      c:close()
    end)

    it("no part of a token is left where a quoted first line is cut", function()
      local long = "tok-3f9a2b7c5d6e7f8091a2b3c4d5e6f708-SECRET"
      local c = core.client(emu, { api_token = long })
      for _, pad in ipairs({ 170, 185, 195, 199 }) do
        emu:fault({ method = "PUT", status = 500, body = string.rep("x", pad) .. long .. "\nmore" })
        local _, err = c:update_members(A, G, { m(1) })
        assert.equals("server", err.kind)
        assert.is_nil(err.message:find(long:sub(1, 8), 1, true), err.message)
      end
      c:close()
    end)

    it("no error of any kind carries the credentials", function()
      local c = core.client(emu, { api_token = TOKEN_SECRET, max_retries = 0 })
      local errs = {}
      local _, e1 = c:update_members(A, G, { m(1) }) -- unknown token: auth
      errs[#errs + 1] = e1
      local _, e2 = c:update_members(A, G, { "bad" .. TOKEN_SECRET })
      errs[#errs + 1] = e2
      c:close()
      local bad = core.client(emu, { api_token = TOKEN_SECRET .. "\n" })
      local _, e3 = bad:update_members(A, G, { m(1) })
      errs[#errs + 1] = e3
      bad:close()
      for _, e in ipairs(errs) do
        assert.is_table(e)
        assert_clean(e, TOKEN_SECRET)
      end
    end)
  end)
end)
