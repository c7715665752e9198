-- spec/06-tls_spec.lua: TLS: peer and host verification always on;
-- ca_file / ca_path; keep-alive over TLS. The emulator serves
-- HTTPS with a CA made at test time (helpers.tls).
--
-- Proxies: a proxy is used only for https:// base URLs (CONNECT, TLS end to
-- end); a plain-http (loopback) base URL never goes through one, so the
-- credentials are never sent in clear to a proxy. A listener that never
-- answers stands in for the proxy and counts the connections it gets.
local cfiam = require("cfiam")
local core = require("helpers.core")
local emulator = require("helpers.emulator")
local socket = require("socket")
local rel = require("helpers.reliability")

local A, G = core.ACCOUNT, core.GROUP
local m = core.member

-- A host name other than localhost that resolves to 127.0.0.1 (from
-- /etc/hosts), i.e. a name the test certificate does not carry; or nil.
local function loopback_alias()
  local f = io.open("/etc/hosts", "r")
  if not f then return nil end
  local found
  for line in f:lines() do
    local addr, names = line:match("^%s*(127%.0%.0%.1)%s+([^#]+)")
    if addr then
      for name in names:gmatch("%S+") do
        if not found and name ~= "localhost" and not name:find("^localhost%.")
           and name:find("^[%w][%w%.%-]*$") and socket.dns.toip(name) == "127.0.0.1" then
          found = name
        end
      end
    end
  end
  f:close()
  return found
end

local function run(cmd)
  local r1, _, r3 = os.execute(cmd)
  return r1 == true or r1 == 0 or (r1 == nil and r3 == 0)
end

describe("TLS", function()
  local emu

  setup(function()
    emu = emulator.start({ tls = true, seed = core.seed() })
  end)

  teardown(function()
    if emu then emu:stop() end
  end)

  before_each(function()
    emu:reset(core.seed())
  end)

  it("verifies the emulator's certificate with ca_file and works", function()
    local c = core.client(emu, { base_url = emu.tls_base_url, ca_file = emu.ca_file })
    local members, err = c:update_members(A, G, { m(4), m(5) })
    assert.is_nil(err)
    assert.equals(2, #members)
    assert.same({ m(4), m(5) }, core.group_members(emu))
    local r = core.only_request(emu)
    assert.is_true(r.tls)
    assert.equals("Bearer " .. core.TOKEN, core.header(r, "authorization"))
    c:close()
  end)

  it("keeps one TLS connection (one handshake) across calls", function()
    local c = core.client(emu, { base_url = emu.tls_base_url, ca_file = emu.ca_file })
    for i = 1, 10 do
      local members, err = c:update_members(A, G, { m(i) })
      assert.is_nil(err)
      assert.equals(1, #members)
    end
    assert.is_table((c:request("GET", core.MEMBERS_PATH)))
    local stats = emu:stats()
    assert.equals(11, stats.requests)
    assert.equals(1, stats.tls_handshakes)
    assert.equals(1, stats.connections)
    c:close()
  end)

  it("accepts the certificate for the name localhost too", function()
    local port = emu.tls_base_url:match(":(%d+)/")
    local c = core.client(emu, { base_url = "https://localhost:" .. port .. "/client/v4", ca_file = emu.ca_file })
    local members, err = c:update_members(A, G, { m(6) })
    assert.is_nil(err)
    assert.equals(1, #members)
    c:close()
  end)

  it("refuses a certificate from another CA (other_ca_file): kind tls, nothing sent", function()
    local c = core.client(emu, { base_url = emu.tls_base_url, ca_file = emu.other_ca_file, max_retries = 2 })
    local members, err = c:update_members(A, G, { m(4) })
    assert.is_nil(members)
    assert.equals("tls", err.kind)
    assert.is_nil(err.status)
    assert.equals(1, err.attempts) -- certificate failures are not retried
    assert.is_true(#err.message > 0)
    assert.same({}, emu:requests())
    assert.same({ m(1), m(2), m(3) }, core.group_members(emu))
    c:close()
  end)

  it("without ca_file the system store does not know the test CA: kind tls", function()
    local c = core.client(emu, { base_url = emu.tls_base_url })
    local _, err = c:update_members(A, G, { m(4) })
    assert.equals("tls", err.kind)
    assert.same({}, emu:requests())
    c:close()
  end)

  it("a ca_file that does not exist is kind tls, not a fallback", function()
    local c = core.client(emu, { base_url = emu.tls_base_url, ca_file = "/nonexistent/cfiam-ca.pem" })
    local _, err = c:update_members(A, G, { m(4) })
    assert.equals("tls", err.kind)
    assert.same({}, emu:requests())
    c:close()
  end)

  it("refuses a certificate that does not name the host: kind tls", function()
    local alias = loopback_alias()
    local port = emu.tls_base_url:match(":(%d+)/")
    local c
    if alias then
      -- the right CA, a name that reaches the server but is not in its certificate
      c = core.client(emu, { base_url = "https://" .. alias .. ":" .. port .. "/client/v4",
                             ca_file = emu.ca_file })
    else
      -- no such name on this machine: an unrelated CA is the other way to fail verification
      c = core.client(emu, { base_url = emu.tls_base_url, ca_file = emu.other_ca_file })
    end
    local _, err = c:update_members(A, G, { m(4) })
    assert.equals("tls", err.kind)
    if alias then assert.matches(alias, err.message, 1, true) end
    assert.same({}, emu:requests())
    c:close()
  end)

  describe("ca_path", function()
    local dir

    before_each(function()
      dir = os.tmpname()
      os.remove(dir)
      assert.is_true(run("mkdir -p " .. core.shquote(dir)))
    end)

    after_each(function()
      if dir then run("rm -rf " .. core.shquote(dir)) end
    end)

    local function hashed_dir_with(ca)
      assert.is_true(run("cp " .. core.shquote(ca) .. " " .. core.shquote(dir .. "/ca.pem")))
      assert.is_true(run("openssl rehash " .. core.shquote(dir) .. " >/dev/null 2>&1")
        or run("c_rehash " .. core.shquote(dir) .. " >/dev/null 2>&1"))
    end

    it("a hashed directory with the test CA verifies the emulator", function()
      hashed_dir_with(emu.ca_file)
      local c = core.client(emu, { base_url = emu.tls_base_url, ca_path = dir })
      local members, err = c:update_members(A, G, { m(9) })
      assert.is_nil(err)
      assert.equals(1, #members)
      c:close()
    end)

    it("a hashed directory with another CA is kind tls", function()
      hashed_dir_with(emu.other_ca_file)
      local c = core.client(emu, { base_url = emu.tls_base_url, ca_path = dir })
      local _, err = c:update_members(A, G, { m(9) })
      assert.equals("tls", err.kind)
      assert.same({}, emu:requests())
      c:close()
    end)
  end)

  it("has no option to turn verification off", function()
    for _, name in ipairs({ "ssl_verify", "verify", "insecure", "ssl_verify_peer" }) do
      assert.has_error(function() cfiam.new({ [name] = false }) end,
        "cfiam.new: unknown option '" .. name .. "'")
    end
  end)

  it("plain http to the HTTPS port fails without sending anything in clear", function()
    local port = emu.tls_base_url:match(":(%d+)/")
    local c = core.client(emu, { base_url = "http://127.0.0.1:" .. port .. "/client/v4", timeout = 2 })
    local members, err = c:update_members(A, G, { m(4) })
    assert.is_nil(members)
    assert.is_table(err)
    assert.are_not.equal("invalid_argument", err.kind)
    assert.same({}, emu:requests())
    c:close()
  end)

  describe("proxies", function()
    local l
    before_each(function() l = rel.listener() end)
    after_each(function() l:close() end)

    -- every variable libcurl reads for an http:// or https:// URL
    local function proxy_env(url)
      return { http_proxy = url, HTTP_PROXY = url, https_proxy = url, HTTPS_PROXY = url,
               all_proxy = url, ALL_PROXY = url,
               CLOUDFLARE_API_TOKEN = core.TOKEN }
    end
    local CALL = core.CHILD_REPORT .. [[
local c = cfiam.new({ timeout = 2, connect_timeout = 2, max_retries = 0, ca_file = os.getenv("CA") })
report(c:update_members("]] .. A .. [[", "]] .. G .. [[", { "]] .. m(4) .. [[" }))
]]

    it("the proxy option with an http base URL is refused: invalid_argument, nothing sent", function()
      local c = core.client(emu, { proxy = "http://127.0.0.1:" .. l.port, timeout = 2 })
      local members, err = c:update_members(A, G, { m(4) })
      assert.is_nil(members)
      assert.equals("invalid_argument", err.kind)
      assert.matches("proxy", err.message)
      assert.matches("https", err.message)
      assert.equals(0, l:connections())
      assert.same({}, emu:requests())
      c:close()
    end)

    it("proxy environment variables never apply to an http base URL", function()
      local env = proxy_env("http://127.0.0.1:" .. l.port)
      env.CLOUDFLARE_BASE_URL = emu.base_url
      local out = core.child(env, CALL)
      assert.equals("ok 1\n", out)
      assert.equals(0, l:connections())
      assert.equals(1, #emu:requests())
    end)

    it("an https base URL goes through the proxy option", function()
      local c = core.client(emu, { base_url = emu.tls_base_url, ca_file = emu.ca_file,
                                   proxy = "http://127.0.0.1:" .. l.port, timeout = 1 })
      local members, err = c:update_members(A, G, { m(4) })
      assert.is_nil(members)
      assert.equals("timeout", err.kind) -- the stand-in never answers the CONNECT
      assert.equals(1, l:connections())
      assert.same({}, emu:requests())
      c:close()
    end)

    it("an https base URL goes through the proxy of the environment", function()
      local env = proxy_env("http://127.0.0.1:" .. l.port)
      env.CLOUDFLARE_BASE_URL, env.CA = emu.tls_base_url, emu.ca_file
      local out = core.child(env, CALL)
      assert.matches("^err timeout ", out)
      assert.equals(1, l:connections())
      assert.same({}, emu:requests())
    end)
  end)
end)

-- A private CA from the environment, as curl users expect: CURL_CA_BUNDLE,
-- else SSL_CERT_FILE, when the client is given neither ca_file nor ca_path.
describe("TLS: the CA bundle from the environment", function()
  local emu

  setup(function()
    emu = emulator.start({ tls = true, seed = core.seed() })
  end)
  teardown(function()
    if emu then emu:stop() end
  end)
  before_each(function() emu:reset(core.seed()) end)

  local function env_with(extra)
    local env = { CLOUDFLARE_API_TOKEN = core.TOKEN, CLOUDFLARE_BASE_URL = emu.tls_base_url }
    for k, v in pairs(extra) do env[k] = v end
    return env
  end

  -- a library call from a child with exactly `extra` in its environment
  local function list_in_child(extra, opts)
    local out = core.child(env_with(extra), core.CHILD_REPORT .. ([[
      local c = cfiam.new(%s)
      report(c:request("GET", %q))
    ]]):format(opts or "{}", core.MEMBERS_PATH))
    return out
  end

  it("without one, the test CA is unknown: kind tls", function()
    local out = list_in_child({})
    assert.matches("^err tls ", out)
  end)

  it("CURL_CA_BUNDLE, else SSL_CERT_FILE, is the client's ca_file", function()
    assert.matches("^ok 3\n", list_in_child({ CURL_CA_BUNDLE = emu.ca_file }))
    assert.matches("^ok 3\n", list_in_child({ SSL_CERT_FILE = emu.ca_file }))
    -- CURL_CA_BUNDLE wins, as in curl; an empty one counts as unset
    assert.matches("^err tls ", list_in_child({ CURL_CA_BUNDLE = emu.other_ca_file,
                                               SSL_CERT_FILE = emu.ca_file }))
    assert.matches("^ok 3\n", list_in_child({ CURL_CA_BUNDLE = "", SSL_CERT_FILE = emu.ca_file }))
  end)

  it("the client's own ca_file or ca_path wins over the environment", function()
    assert.matches("^err tls ", list_in_child({ CURL_CA_BUNDLE = emu.ca_file },
      ("{ ca_file = %q }"):format(emu.other_ca_file)))
    assert.matches("^ok 3\n", list_in_child({ CURL_CA_BUNDLE = emu.other_ca_file },
      ("{ ca_file = %q }"):format(emu.ca_file)))
  end)

  it("the cfiam command trusts the CA named by CURL_CA_BUNDLE or SSL_CERT_FILE", function()
    for _, name in ipairs({ "CURL_CA_BUNDLE", "SSL_CERT_FILE", false }) do
      local parts = { "env -i PATH=/usr/bin:/bin",
        "LUA_PATH=" .. core.shquote("./lua/?.lua;;"),
        "LUA_CPATH=" .. core.shquote("./" .. core.BUILD .. "/?.so;;"),
        "CLOUDFLARE_API_TOKEN=" .. core.TOKEN,
        "CLOUDFLARE_BASE_URL=" .. core.shquote(emu.tls_base_url) }
      if name then parts[#parts + 1] = name .. "=" .. core.shquote(emu.ca_file) end
      parts[#parts + 1] = core.LUA .. " bin/cfiam members list " .. A .. " " .. G .. " 2>&1"
      local p = io.popen(table.concat(parts, " "))
      local out = p:read("*a")
      p:close()
      if name then
        assert.matches(m(1), out, 1, true)
      else
        assert.matches("cfiam tls: ", out, 1, true)
      end
    end
  end)
end)
