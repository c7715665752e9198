--- spec/helpers/nginx.lua: starts a real nginx with lua-nginx-module and
-- the cfiam module from this tree, for the OpenResty specs.
--
--   local nginx = require("helpers.nginx")
--   local ngx_srv = nginx.start{
--     http = "lua_ssl_trusted_certificate /x/ca.pem;", -- extra http{} lines
--     server = "location /t { content_by_lua_block { ... } }",
--   }
--   ngx_srv.port, ngx_srv.prefix, ngx_srv:get(path) -> status, body
--   ngx_srv:error_log(), ngx_srv:stop()
--   nginx.check_conf(text) -> ok, output     (nginx -t in a temporary prefix)
--   ngx_srv:get(path, timeout, body) -> status, body (POST when body)
--   local p = nginx.send(port, "/slow")           -- fire, do not wait
--   nginx.wait_all({ p, ... }, timeout) -> { {status=, body=, ms=}, ... }
--
-- The configuration is written into a fresh temporary prefix; the port is
-- picked free (bind to 0); worker_processes 1 (or opts.workers); the ndk
-- and lua modules are loaded from /usr/lib/nginx/modules (Debian's
-- libnginx-mod-http-lua, or NGINX_MODULES); lua_package_path / cpath point at ./lua and the LuaJIT
-- build (CFIAM_LUAJIT_BUILD, default ./build/luajit). nginx runs as a
-- daemon with a pid file; stop() sends QUIT, waits, and removes the prefix.
local socket = require("socket")

local _M = {}

local NGINX = os.getenv("NGINX") or "nginx"
local MODULES = os.getenv("NGINX_MODULES") or "/usr/lib/nginx/modules"

local function sh(cmd)
  local ok, _, code = os.execute(cmd)
  return ok == true or ok == 0, code
end

local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

local function write(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

--- A free loopback TCP port (bound to 0 and released).
function _M.free_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
end

local function cwd()
  local p = io.popen("pwd")
  local d = p:read("*l")
  p:close()
  return d
end

--- Runs `nginx -t` on a configuration text in a temporary prefix.
-- Returns ok (boolean) and nginx's output.
function _M.check_conf(text)
  local p = io.popen("mktemp -d /tmp/cfiam-nginx-t.XXXXXX")
  local prefix = p:read("*l")
  p:close()
  assert(sh("mkdir -p '" .. prefix .. "/logs'"))
  write(prefix .. "/nginx.conf", text)
  local ok = sh(NGINX .. " -t -p '" .. prefix .. "' -c '" .. prefix
    .. "/nginx.conf' -e '" .. prefix .. "/logs/error.log' >'" .. prefix
    .. "/out.log' 2>&1")
  local out = read(prefix .. "/out.log") or ""
  sh("rm -rf '" .. prefix .. "'")
  return ok, out
end

--- The repository root (the current directory, where busted runs).
function _M.root() return cwd() end

local mt = {}
mt.__index = mt

--- Starts nginx. opts.http: extra lines for http{}; opts.server: lines
-- inside server{}; opts.main: extra main-context lines; opts.workers: the
-- number of worker processes (default 1; with more, the listening socket
-- has reuseport, so the kernel spreads connections over all workers).
function _M.start(opts)
  opts = opts or {}
  local root = cwd()
  local build = os.getenv("CFIAM_LUAJIT_BUILD") or (root .. "/build/luajit")
  local p = io.popen("mktemp -d /tmp/cfiam-nginx.XXXXXX")
  local prefix = p:read("*l")
  p:close()
  assert(prefix and #prefix > 0, "mktemp failed")
  assert(sh("mkdir -p '" .. prefix .. "/logs' '" .. prefix .. "/tmp'"))
  local port = _M.free_port()
  -- As root, nginx runs its worker as nobody, who cannot read a checkout
  -- in a private (0700) directory such as mktemp -d makes: keep our user.
  local idp = io.popen("id -u; id -un; id -gn")
  local uid, uname, gname = idp:read("*l"), idp:read("*l"), idp:read("*l")
  idp:close()
  local conf = table.concat({
    uid == "0" and ("user " .. uname .. " " .. gname .. ";") or "",
    "load_module " .. MODULES .. "/ndk_http_module.so;",
    "load_module " .. MODULES .. "/ngx_http_lua_module.so;",
    "worker_processes " .. (opts.workers or 1) .. ";",
    "error_log " .. prefix .. "/logs/error.log info;",
    "pid " .. prefix .. "/logs/nginx.pid;",
    opts.main or "",
    "events { worker_connections 1024; }",
    "http {",
    "  access_log off;",
    "  client_body_temp_path " .. prefix .. "/tmp/body;",
    "  proxy_temp_path " .. prefix .. "/tmp/proxy;",
    "  fastcgi_temp_path " .. prefix .. "/tmp/fastcgi;",
    "  uwsgi_temp_path " .. prefix .. "/tmp/uwsgi;",
    "  scgi_temp_path " .. prefix .. "/tmp/scgi;",
    "  lua_package_path '" .. root .. "/lua/?.lua;;';",
    "  lua_package_cpath '" .. build .. "/?.so;;';",
    opts.http or "",
    "  server {",
    "    listen 127.0.0.1:" .. port
      .. ((opts.workers or 1) > 1 and " reuseport;" or ";"),
    "    location = /ping { content_by_lua_block { ngx.say('pong') } }",
    opts.server or "",
    "  }",
    "}",
  }, "\n")
  write(prefix .. "/nginx.conf", conf)
  local self = setmetatable({ prefix = prefix, port = port, conf = conf }, mt)
  local ok = sh(NGINX .. " -p '" .. prefix .. "' -c '" .. prefix
    .. "/nginx.conf' -e '" .. prefix .. "/logs/error.log' 2>>'" .. prefix
    .. "/logs/start.log'")
  if not ok then
    local log = (read(prefix .. "/logs/start.log") or "")
      .. (read(prefix .. "/logs/error.log") or "")
    sh("rm -rf '" .. prefix .. "'")
    error("nginx did not start:\n" .. log, 2)
  end
  -- Ready once it answers /ping (bounded: a readiness poll, not a delay).
  local deadline = socket.gettime() + 10
  while true do
    local status = self:get("/ping", 1)
    if status == 200 then break end
    if socket.gettime() > deadline then
      local log = self:error_log()
      self:stop()
      error("nginx does not answer:\n" .. log, 2)
    end
    socket.select(nil, nil, 0.02)
  end
  return self
end

--- The error log so far.
function mt:error_log()
  return read(self.prefix .. "/logs/error.log") or ""
end

local function pid_alive(pid)
  return sh("kill -0 " .. pid .. " 2>/dev/null")
end

--- Stops nginx (QUIT, then TERM/KILL if needed) and removes the prefix.
function mt:stop()
  if self.stopped then return end
  self.stopped = true
  local pid = (read(self.prefix .. "/logs/nginx.pid") or ""):match("%d+")
  if pid then
    sh("kill -QUIT " .. pid .. " 2>/dev/null")
    local deadline = socket.gettime() + 10
    while pid_alive(pid) and socket.gettime() < deadline do
      socket.select(nil, nil, 0.02)
    end
    if pid_alive(pid) then sh("kill -KILL " .. pid .. " 2>/dev/null") end
  end
  if os.getenv("CFIAM_KEEP_NGINX") then
    io.stderr:write("nginx prefix kept: " .. self.prefix .. "\n")
  else
    sh("rm -rf '" .. self.prefix .. "'")
  end
end

-- Parses a raw HTTP/1.0 response (nginx closes after it).
local function parse(raw)
  local status = tonumber(raw:match("^HTTP/%d%.%d (%d%d%d)"))
  local body = raw:match("\r\n\r\n(.*)$")
  return status, body
end

--- GET (or, with a body, POST) path with HTTP/1.0 on a new connection.
-- Returns status, body.
function mt:get(path, timeout, body)
  local c = socket.tcp()
  c:settimeout(timeout or 30)
  local ok = c:connect("127.0.0.1", self.port)
  if not ok then c:close() return nil end
  if body then
    c:send("POST " .. path .. " HTTP/1.0\r\nHost: localhost\r\n"
      .. "Content-Length: " .. #body .. "\r\n\r\n" .. body)
  else
    c:send("GET " .. path .. " HTTP/1.0\r\nHost: localhost\r\n\r\n")
  end
  local raw, err, partial = c:receive("*a")
  c:close()
  raw = raw or (err == "closed" and partial) or nil
  if not raw then return nil, err end
  return parse(raw)
end

--- Sends one GET (HTTP/1.0, its own connection) without waiting for the
-- answer. Returns a pending request for nginx.wait_all.
function _M.send(port, path)
  local c = socket.tcp()
  c:settimeout(5)
  -- connect completes in the kernel even while the worker is busy
  assert(c:connect("127.0.0.1", port))
  c:settimeout(0)
  local t0 = socket.gettime()
  assert(c:send("GET " .. path .. " HTTP/1.0\r\nHost: localhost\r\n\r\n"))
  return { sock = c, t0 = t0, buf = {} }
end

--- Waits (socket.select) for the answers of pending requests. Returns, in
-- the same order, { status, body, ms } with ms the time from sending the
-- request to the end of its answer (math.huge if none within timeout).
function _M.wait_all(pending, timeout)
  local results, left = {}, #pending
  local deadline = socket.gettime() + (timeout or 30)
  while left > 0 and socket.gettime() < deadline do
    local rs, owner = {}, {}
    for i, st in ipairs(pending) do
      if not st.done then
        rs[#rs + 1] = st.sock
        owner[st.sock] = i
      end
    end
    local ready = socket.select(rs, nil, 0.5)
    for _, s in ipairs(ready) do
      local i = owner[s]
      local st = pending[i]
      local data, err, partial = s:receive(8192)
      local piece = data or partial
      if piece and #piece > 0 then st.buf[#st.buf + 1] = piece end
      if err == "closed" then
        st.done = true
        left = left - 1
        s:close()
        local status, body = parse(table.concat(st.buf))
        results[i] = { status = status, body = body,
          ms = (socket.gettime() - st.t0) * 1000 }
      end
    end
  end
  for i, st in ipairs(pending) do
    if not st.done then
      st.sock:close()
      results[i] = { ms = math.huge }
    end
  end
  return results
end

return _M
