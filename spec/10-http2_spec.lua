-- spec/10-http2_spec.lua: request_many over HTTPS negotiates HTTP/2 (ALPN)
-- and multiplexes a whole batch over ONE connection. A local nginx with
-- `http2` and TLS proxies to the emulator and logs, per request, the
-- connection serial number and the protocol; connections are counted there.
local core = require("helpers.core")
local emulator = require("helpers.emulator")
local nginx = require("helpers.nginx")
local tls = require("helpers.tls")

local MEMBERS = core.MEMBERS_PATH

describe("request_many over HTTP/2", function()
  local emu, srv, port, certs, log

  setup(function()
    emu = emulator.start({ seed = core.seed() })
    certs = tls.make_ca()
    port = nginx.free_port()
    srv = nginx.start({
      http = table.concat({
        "log_format h2 '$connection $server_protocol $status';",
        "upstream emulator { server " .. emu.host .. ":" .. emu.port .. "; keepalive 16; }",
        "server {",
        "  listen 127.0.0.1:" .. port .. " ssl http2;",
        "  ssl_certificate " .. certs.cert_file .. ";",
        "  ssl_certificate_key " .. certs.key_file .. ";",
        "  access_log logs/h2.log h2;", -- relative to the prefix
        "  location / {",
        "    proxy_pass http://emulator;",
        "    proxy_http_version 1.1;",
        "    proxy_set_header Connection \"\";",
        "  }",
        "}",
      }, "\n"),
    })
    log = srv.prefix .. "/logs/h2.log"
  end)

  teardown(function()
    if srv then srv:stop() end
    if emu then emu:stop() end
  end)

  -- { [connection] = count }, protocols seen, lines
  local function read_log()
    local f = io.open(log, "rb")
    local conns, protos, n = {}, {}, 0
    if f then
      for line in f:lines() do
        local conn, proto = line:match("^(%d+) (%S+)")
        if conn then
          conns[conn] = (conns[conn] or 0) + 1
          protos[proto] = true
          n = n + 1
        end
      end
      f:close()
    end
    local count = 0
    for _ in pairs(conns) do count = count + 1 end
    return count, protos, n
  end

  it("a batch of 24 calls at concurrency 8 travels over one HTTP/2 connection", function()
    emu:fault({ method = "GET", delay_ms = 50, times = -1 }) -- answers overlap
    local c = core.client(emu, { base_url = "https://127.0.0.1:" .. port .. "/client/v4",
                                 ca_file = certs.ca_file })
    local calls = {}
    for i = 1, 24 do calls[i] = { "GET", MEMBERS } end
    local out = c:request_many(calls, { concurrency = 8 })
    for i = 1, 24 do assert.is_nil(out[i].err, i) end
    assert.equals(3, #out[24].result)
    -- a second batch and a single call reuse it
    out = c:request_many(calls, { concurrency = 8 })
    for i = 1, 24 do assert.is_nil(out[i].err, i) end
    assert(c:request("GET", MEMBERS))
    c:close()
    emu:clear_faults()
    local conns, protos, n = read_log()
    assert.equals(49, n)
    assert.same({ ["HTTP/2.0"] = true }, protos)
    assert.equals(1, conns)
  end)
end)
