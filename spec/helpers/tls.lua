-- spec/helpers/tls.lua: throw-away certificates for the TLS tests.
--
--   local tls = require("helpers.tls")
--   local c = tls.make_ca()      -- or tls.make_ca(dir)
--   c.ca_file        test CA certificate (PEM)
--   c.cert_file      server certificate for 127.0.0.1, ::1 and localhost
--                    (subjectAltName), signed by that CA
--   c.key_file       its private key (unencrypted PEM)
--   c.other_ca_file  an unrelated CA: verifying the server with it fails
--
-- Made with the `openssl` command (EC P-256 keys, quick), once per process
-- and per directory.  Without `dir` a temporary directory is used, removed
-- when the Lua state closes.

local M = {}

local cache = {}
local tempdir

local function sh_quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function run(cmd)
  local r1, _, r3 = os.execute(cmd)
  -- Lua 5.4: true/nil, "exit", code; LuaJIT/5.1: the status number
  return r1 == true or r1 == 0 or (r1 == nil and r3 == 0)
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() return true end
  return false
end

local function make_temp_dir()
  local p = io.popen("mktemp -d \"${TMPDIR:-/tmp}/cfiam-tls.XXXXXX\"")
  local d = p and p:read("*l")
  if p then p:close() end
  assert(d and d ~= "", "tls helper: mktemp -d failed")
  -- remove it when the Lua state is closed (busted ends)
  local function cleanup() os.execute("rm -rf " .. sh_quote(d)) end
  if _G.newproxy then                      -- LuaJIT / 5.1
    local proxy = newproxy(true)
    getmetatable(proxy).__gc = cleanup
    M._sentinel = proxy
  else
    M._sentinel = setmetatable({}, { __gc = cleanup })
  end
  return d
end

function M.make_ca(dir)
  if not dir then
    tempdir = tempdir or make_temp_dir()
    dir = tempdir
  end
  if cache[dir] then return cache[dir] end
  local q = function(name) return sh_quote(dir .. "/" .. name) end
  local log = dir .. "/openssl.log"
  local ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
  assert(run("mkdir -p " .. sh_quote(dir)), "tls helper: cannot create " .. dir)
  local ext = assert(io.open(dir .. "/server.ext", "wb"))
  ext:write("basicConstraints=CA:FALSE\n",
            "keyUsage=critical,digitalSignature\n",
            "extendedKeyUsage=serverAuth\n",
            "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\n")
  ext:close()
  local steps = {
    -- the test CA
    "openssl req -x509 " .. ec .. " -keyout " .. q("ca.key") .. " -out " .. q("ca.pem")
      .. " -days 3650 -subj '/CN=cfiam test CA'"
      .. " -addext basicConstraints=critical,CA:TRUE"
      .. " -addext keyUsage=critical,keyCertSign,cRLSign",
    -- an unrelated CA
    "openssl req -x509 " .. ec .. " -keyout " .. q("other-ca.key") .. " -out " .. q("other-ca.pem")
      .. " -days 3650 -subj '/CN=cfiam unrelated CA'"
      .. " -addext basicConstraints=critical,CA:TRUE"
      .. " -addext keyUsage=critical,keyCertSign,cRLSign",
    -- the server key and certificate request
    "openssl req " .. ec .. " -keyout " .. q("server.key") .. " -out " .. q("server.csr")
      .. " -subj '/CN=127.0.0.1'",
    "openssl x509 -req -in " .. q("server.csr") .. " -CA " .. q("ca.pem")
      .. " -CAkey " .. q("ca.key") .. " -CAcreateserial -CAserial " .. q("ca.srl")
      .. " -days 825 -sha256 -extfile " .. q("server.ext") .. " -out " .. q("server.pem"),
  }
  for _, cmd in ipairs(steps) do
    if not run(cmd .. " >>" .. sh_quote(log) .. " 2>&1") then
      local f = io.open(log, "rb")
      local text = f and f:read("*a") or ""
      if f then f:close() end
      error("tls helper: command failed: " .. cmd .. "\n" .. text, 2)
    end
  end
  local result = {
    dir = dir,
    ca_file = dir .. "/ca.pem",
    cert_file = dir .. "/server.pem",
    key_file = dir .. "/server.key",
    other_ca_file = dir .. "/other-ca.pem",
  }
  for _, k in ipairs({ "ca_file", "cert_file", "key_file", "other_ca_file" }) do
    assert(exists(result[k]), "tls helper: missing " .. result[k])
  end
  cache[dir] = result
  return result
end

return M
