-- Self-test of the API emulator, through LuaSocket/LuaSec only.
local socket = require("socket")
local cjson = require("cjson").new()
local emulator = require("helpers.emulator")

-- A tiny blocking HTTP/1.1 client: one request on an open socket.
local function request(sock, method, path, headers, body)
  local lines = { method .. " " .. path .. " HTTP/1.1", "Host: 127.0.0.1" }
  for k, v in pairs(headers or {}) do lines[#lines + 1] = k .. ": " .. v end
  if body then lines[#lines + 1] = "Content-Length: " .. #body end
  assert(sock:send(table.concat(lines, "\r\n") .. "\r\n\r\n" .. (body or "")))
end

local function response(sock, raw)
  local status = assert(sock:receive("*l"))
  local r = { status = tonumber(status:match("^HTTP/1%.1 (%d+)")), headers = {} }
  while true do
    local line = assert(sock:receive("*l"))
    if line == "" then break end
    local k, v = line:match("^([^:]+):%s*(.*)$")
    r.headers[k:lower()] = v
  end
  if r.headers["transfer-encoding"] then
    local parts = {}
    repeat
      local size = tonumber(assert(sock:receive("*l")), 16)
      if size > 0 then parts[#parts + 1] = assert(sock:receive(size)) end
      assert(sock:receive("*l"))
    until size == 0
    r.body = table.concat(parts)
  else
    r.body = assert(sock:receive(tonumber(r.headers["content-length"])))
  end
  if not raw then
    local ok, doc = pcall(cjson.decode, r.body)
    r.json = ok and doc or nil
  end
  return r
end

local function connect(url)
  local host, port = url:match("^https?://([^:/]+):(%d+)")
  local sock = assert(socket.connect(host, tonumber(port)))
  sock:settimeout(10)
  return sock
end

-- One request on a fresh connection.
local function call(url, method, path, headers, body)
  local sock = connect(url)
  request(sock, method, path, headers, body)
  local r = response(sock)
  sock:close()
  return r
end

describe("emulator", function()
  local seed, ids = emulator.seed({
    members = 250, pending_every = 7, accounts = 2,
    groups = { { name = "Big", members = 240 }, { name = "Small", members = 3 } },
  })
  local emu, A, AUTH, JSON_AUTH
  local big, small

  setup(function()
    -- run the emulator with the interpreter running the tests
    emu = emulator.start({ tls = true, seed = seed, lua = jit and "luajit" or "lua5.4" })
    A = "/client/v4/accounts/" .. ids.account
    big = A .. "/iam/user_groups/" .. ids.groups.Big.id
    small = A .. "/iam/user_groups/" .. ids.groups.Small.id
    AUTH = { Authorization = "Bearer test-token" }
    JSON_AUTH = { Authorization = "Bearer test-token", ["Content-Type"] = "application/json" }
  end)
  teardown(function() if emu then emu:stop() end end)
  before_each(function() emu:reset() end)

  it("checks credentials", function()
    local u = emu.http_url
    local r = call(u, "GET", big .. "/members")
    assert.equal(401, r.status)
    assert.equal(9106, r.json.errors[1].code)
    assert.matches("^%x+%-EMU$", r.headers["cf-ray"])
    r = call(u, "GET", big .. "/members", { Authorization = "Bearer nope" })
    assert.same({ 401, 10000 }, { r.status, r.json.errors[1].code })
    r = call(u, "GET", big .. "/members", { ["X-Auth-Email"] = ids.email, ["X-Auth-Key"] = ids.key })
    assert.equal(200, r.status)
    r = call(u, "PUT", small .. "/members",
             { Authorization = "Bearer ro-token", ["Content-Type"] = "application/json" }, "[]")
    assert.same({ 403, 10000 }, { r.status, r.json.errors[1].code })
    r = call(u, "GET", A .. "/iam/user_groups/not-an-id", AUTH)
    assert.same({ 400, 7003, 7000 }, { r.status, r.json.errors[1].code, r.json.errors[2].code })
  end)

  it("replaces the member set with PUT", function()
    local body = cjson.encode({ { id = ids.member_ids[9] }, { id = ids.member_ids[5] },
                                { id = ids.member_ids[9] } })
    local r = call(emu.http_url, "PUT", small .. "/members", JSON_AUTH, body)
    assert.equal(200, r.status)
    assert.is_true(r.json.success)
    assert.same({ ids.member_ids[5], ids.member_ids[9] },
                { r.json.result[1].id, r.json.result[2].id })
    assert.equal(ids.emails[5], r.json.result[1].email)
    r = call(emu.http_url, "PUT", small .. "/members", JSON_AUTH,
             cjson.encode({ { id = string.rep("f", 32) } }))
    assert.same({ 400, 1002 }, { r.status, r.json.errors[1].code })
    r = call(emu.http_url, "PUT", small .. "/members", AUTH, "[]")
    assert.equal(415, r.status)
    local st = emu:state()
    local groups = st.accounts[ids.account].groups
    for _, g in ipairs(groups) do
      if g.name == "Small" then assert.equal(2, #g.members) end
    end
  end)

  it("pages with totals", function()
    local r = call(emu.http_url, "GET", big .. "/members?per_page=100&page=3", AUTH)
    assert.same({ count = 40, page = 3, per_page = 100, total_count = 240 }, r.json.result_info)
    assert.equal(ids.emails[201], r.json.result[1].email)
    r = call(emu.http_url, "GET", big .. "/members?per_page=100&page=4", AUTH)
    assert.equal(0, #r.json.result)
    r = call(emu.http_url, "GET", big .. "/members?fuzzyEmail=USER000&direction=desc", AUTH)
    assert.equal(9, r.json.result_info.count)
    assert.equal(240, r.json.result_info.total_count)
    assert.equal(ids.emails[9], r.json.result[1].email)
    r = call(emu.http_url, "GET", big .. "/members?per_page=501", AUTH)
    assert.equal(400, r.status)
  end)

  it("injects a 429 once", function()
    emu:fault({ method = "GET", path = "/members$", status = 429, headers = { ["Retry-After"] = "1" } })
    local r = call(emu.http_url, "GET", big .. "/members", AUTH)
    assert.equal(429, r.status)
    assert.equal("1", r.headers["retry-after"])
    assert.equal(971, r.json.errors[1].code)
    r = call(emu.http_url, "GET", big .. "/members", AUTH)
    assert.equal(200, r.status)
    assert.equal(2, emu:stats().requests)
  end)

  it("serves others while one answer is delayed", function()
    emu:fault({ path = "/members$", delay_ms = 1500 })
    local slow = connect(emu.http_url)
    local t0 = socket.gettime()
    request(slow, "GET", big .. "/members", AUTH)
    local socks = {}
    for i = 1, 20 do
      socks[i] = connect(emu.http_url)
      request(socks[i], "GET", A .. "/iam/user_groups", AUTH)
    end
    for i = 1, 20 do
      assert.equal(200, response(socks[i]).status)
      socks[i]:close()
    end
    assert.is_true(socket.gettime() - t0 < 1.3)   -- before the slow one
    assert.equal(200, response(slow).status)
    assert.is_true(socket.gettime() - t0 >= 1.4)
    slow:close()
  end)

  it("moves multi-MB bodies both ways without stalling", function()
    -- A body that streams in and out in full within the socket's 10 s
    -- timeout (about 0.2 s on an idle machine): the benchmarks' large
    -- groups depend on it. Speed itself is measured by make bench.
    emu:fault({ method = "POST", body_bytes = 10 * 1024 * 1024, chunked = true })
    local sock = connect(emu.http_url)
    request(sock, "POST", small .. "/members", JSON_AUTH, string.rep(" ", 4 * 1024 * 1024) .. "[]")
    local r = response(sock, true)
    sock:close()
    assert.equal(200, r.status)
    assert.is_true(#r.body >= 10 * 1024 * 1024 - 200)
  end)

  it("speaks TLS with the test CA", function()
    local ssl = require("ssl")
    local function tls_call(cafile)
      local sock = connect(emu.https_url)
      sock = assert(ssl.wrap(sock, { mode = "client", protocol = "any", cafile = cafile,
                                     verify = "peer", options = "all" }))
      sock:sni("localhost")
      local ok, err = sock:dohandshake()
      if not ok then sock:close() return nil, err end
      request(sock, "GET", big .. "/members?per_page=1", AUTH)
      local r = response(sock)
      sock:close()
      return r
    end
    local r = assert(tls_call(emu.ca_file))
    assert.equal(200, r.status)
    assert.is_nil(tls_call(emu.other_ca_file))
    assert.equal(1, emu:stats().tls_handshakes)
    assert.is_true(emu:requests()[1].tls)
  end)

  it("counts connections and keep-alive reuse", function()
    local sock = connect(emu.http_url)
    for _ = 1, 3 do
      request(sock, "GET", A .. "/members?per_page=5", AUTH)
      assert.equal(200, response(sock).status)
    end
    sock:close()
    call(emu.http_url, "GET", A .. "/members", AUTH)
    local st = emu:stats()
    assert.same({ 2, 4 }, { st.connections, st.requests })
    local reqs = emu:requests()
    assert.same({ 1, 1, 1, 2 }, { reqs[1].connection, reqs[2].connection,
                                  reqs[3].connection, reqs[4].connection })
    assert.equal("per_page=5", reqs[1].query)
    assert.equal("Bearer test-token", reqs[1].headers.authorization)
  end)
end)
