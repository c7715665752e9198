-- emulator/server.lua: a small HTTP/1.1 server engine for the emulator.
--
-- One process, one thread.  Every socket is non-blocking; a scheduler
-- built on socket.select runs one coroutine per connection.  A coroutine
-- that would block yields what it waits for:
--   coroutine.yield("read", sock)    until sock is readable
--   coroutine.yield("write", sock)   until sock is writable
--   coroutine.yield("sleep", secs)   timer (the select timeout), never a sleep()
-- so a slow answer on one connection never holds up the others.
--
-- Supported: keep-alive (unless "Connection: close" or HTTP/1.0 without
-- keep-alive), pipelining, request bodies by Content-Length or chunked,
-- "Expect: 100-continue", TLS through LuaSec with a non-blocking handshake.
--
-- The application is a function handler(req, conn) -> resp, run inside the
-- connection's coroutine (it may call server.sleep).
--   req  = { method, target, path, query (raw string or ""), version,
--            headers (lowercased name -> value, repeats joined by ", "),
--            header_list ({name, value} as received), body (string),
--            close (bool: the connection ends after this answer) }
--   conn = { id (accept counter), tls (bool), listener (its name), ... }
--          the application may store its own fields in it.
--   resp = { status = 200, reason = nil, headers = { {name, value}, ... } or
--            { name = value }, body = "",
--            chunked = bool           send with Transfer-Encoding: chunked
--            truncated_chunked = bool chunked, but close before the last chunk
--            truncate_at = N          send only the first N bytes, then close
--            stall_at = N             send only the first N bytes, then stay
--                                     silent until the peer closes
--            drop = bool              close without answering
--            close = bool             close after this answer
--            after = function()       called once the answer is sent }
-- The engine adds Content-Length (or Transfer-Encoding), Date and, when the
-- connection is about to close, "Connection: close", unless the response
-- already carries a header of that name (so a fault can send a lying
-- Content-Length on purpose).

local socket = require("socket")

local M = {}

local MAX_LINE = 64 * 1024          -- request line / one header line
local MAX_HEADERS = 200
local MAX_BODY = 256 * 1024 * 1024  -- refuse larger request bodies (413)
local CHUNK = 64 * 1024             -- chunk size for chunked answers

local REASONS = {
  [100] = "Continue", [200] = "OK", [201] = "Created", [202] = "Accepted",
  [204] = "No Content", [301] = "Moved Permanently", [302] = "Found",
  [303] = "See Other", [304] = "Not Modified", [307] = "Temporary Redirect",
  [308] = "Permanent Redirect", [400] = "Bad Request", [401] = "Unauthorized",
  [403] = "Forbidden", [404] = "Not Found", [405] = "Method Not Allowed",
  [408] = "Request Timeout", [409] = "Conflict", [411] = "Length Required",
  [413] = "Payload Too Large", [415] = "Unsupported Media Type",
  [422] = "Unprocessable Entity", [429] = "Too Many Requests",
  [431] = "Request Header Fields Too Large",
  [500] = "Internal Server Error", [501] = "Not Implemented",
  [502] = "Bad Gateway", [503] = "Service Unavailable",
  [504] = "Gateway Timeout",
}

-- Called by application code running inside a connection coroutine.
function M.sleep(seconds)
  if seconds and seconds > 0 then coroutine.yield("sleep", seconds) end
end

---------------------------------------------------------------------------
-- Non-blocking I/O helpers (run inside a connection coroutine)
---------------------------------------------------------------------------

-- Yields until the socket can make progress after error `err`; a plain
-- "timeout" means "would block" in the direction of the operation
-- (`writing` true for sends).  LuaSec may ask for the other direction
-- ("wantread" while sending, "wantwrite" while receiving).
-- Returns false when `err` is a real error (closed, reset, ...).
local function wait_io(sock, err, writing)
  if err == "timeout" and writing then err = "wantwrite" end
  if err == "timeout" or err == "wantread" then
    coroutine.yield("read", sock)
    return true
  elseif err == "wantwrite" then
    coroutine.yield("write", sock)
    return true
  end
  return false
end

-- One line without its CR LF (LuaSocket's "*l" drops the CRs).
local function recv_line(sock)
  local parts, size = nil, 0
  while true do
    local line, err, partial = sock:receive("*l")
    if line then
      if parts then
        parts[#parts + 1] = line
        return table.concat(parts)
      end
      return line
    end
    if partial and partial ~= "" then
      parts = parts or {}
      parts[#parts + 1] = partial
      size = size + #partial
      if size > MAX_LINE then return nil, "line too long" end
    end
    if not wait_io(sock, err) then return nil, err end
  end
end

-- Exactly n bytes, received in large pieces.
local function recv_bytes(sock, n)
  local parts, got = {}, 0
  while got < n do
    local data, err, partial = sock:receive(n - got)
    local piece = data or partial
    if piece and piece ~= "" then
      parts[#parts + 1] = piece
      got = got + #piece
    end
    if not data and not wait_io(sock, err) then return nil, err end
  end
  return table.concat(parts)
end

-- Sends all of `data` (the kernel takes what it can, we wait for the rest).
local function send_all(sock, data)
  local i, n = 1, #data
  while i <= n do
    local last, err, partial = sock:send(data, i)
    if last then return true end
    if partial and partial >= i then i = partial + 1 end
    if not wait_io(sock, err, true) then return nil, err end
  end
  return true
end

---------------------------------------------------------------------------
-- Request parsing
---------------------------------------------------------------------------

local function read_chunked(sock)
  local parts, total = {}, 0
  while true do
    local line, err = recv_line(sock)
    if not line then return nil, err end
    local hex = line:match("^%s*(%x+)")
    if not hex then return nil, "bad chunk size" end
    local size = tonumber(hex, 16)
    if size == 0 then
      -- trailers, up to the empty line
      repeat
        line, err = recv_line(sock)
        if not line then return nil, err end
      until line == ""
      return table.concat(parts)
    end
    total = total + size
    if total > MAX_BODY then return nil, "too large" end
    local data
    data, err = recv_bytes(sock, size)
    if not data then return nil, err end
    parts[#parts + 1] = data
    line, err = recv_line(sock)          -- the CR LF after the data
    if line ~= "" then return nil, err or "bad chunk" end
  end
end

-- Returns req, or nil + "closed" (peer went away) or nil + an error text
-- that deserves a 400 answer (then nil, msg, status).
local function read_request(sock)
  local line, err
  repeat                                  -- tolerate empty lines between requests
    line, err = recv_line(sock)
    if not line then return nil, err or "closed" end
  until line ~= ""
  local method, target, version = line:match("^(%u+) (%S+) HTTP/(%d%.%d)$")
  if not method then return nil, "bad request line", 400 end
  local req = { method = method, target = target, version = version,
                headers = {}, header_list = {} }
  while true do
    line, err = recv_line(sock)
    if not line then return nil, err or "closed" end
    if line == "" then break end
    local name, value = line:match("^([^:%s]+):%s*(.-)%s*$")
    if not name then return nil, "bad header line", 400 end
    if #req.header_list >= MAX_HEADERS then return nil, "too many headers", 431 end
    req.header_list[#req.header_list + 1] = { name, value }
    local lname = name:lower()
    local old = req.headers[lname]
    req.headers[lname] = old and (old .. ", " .. value) or value
  end
  -- absolute-form target (proxy style): keep only the path
  local path = target:gsub("^%a[%w+.-]*://[^/]*", "")
  if path == "" then path = "/" end
  req.path, req.query = path:match("^([^?]*)%??(.*)$")

  local h = req.headers
  local connection = (h["connection"] or ""):lower()
  if version == "1.0" then
    req.close = not connection:find("keep%-alive")
  else
    req.close = connection:find("close") ~= nil
  end

  local te = h["transfer-encoding"]
  local chunked = te and te:lower():find("chunked") ~= nil
  local length = 0
  if not chunked and h["content-length"] then
    length = tonumber(h["content-length"]:match("^%d+$"))
    if not length then return nil, "bad content-length", 400 end
    if length > MAX_BODY then return nil, "body too large", 413 end
  end
  if (chunked or length > 0) and version == "1.1"
     and (h["expect"] or ""):lower() == "100-continue" then
    local ok
    ok, err = send_all(sock, "HTTP/1.1 100 Continue\r\n\r\n")
    if not ok then return nil, err end
  end
  if chunked then
    req.body, err = read_chunked(sock)
    if not req.body then
      if err == "bad chunk size" or err == "bad chunk" then return nil, err, 400 end
      if err == "too large" then return nil, "body too large", 413 end
      return nil, err
    end
  elseif length > 0 then
    req.body, err = recv_bytes(sock, length)
    if not req.body then return nil, err end
  else
    req.body = ""
  end
  return req
end

---------------------------------------------------------------------------
-- Response writing
---------------------------------------------------------------------------

local function header_pairs(headers)
  local list = {}
  if headers then
    if headers[1] ~= nil or next(headers) == nil then
      for _, p in ipairs(headers) do list[#list + 1] = { p[1], tostring(p[2]) } end
    else
      local names = {}
      for k in pairs(headers) do names[#names + 1] = k end
      table.sort(names)
      for _, k in ipairs(names) do
        if headers[k] ~= false then list[#list + 1] = { k, tostring(headers[k]) } end
      end
    end
  end
  return list
end

local function chunk_encode(body, terminate)
  local out, n = {}, #body
  -- small bodies are still split in two chunks to exercise the client
  local step = CHUNK
  if n > 1 and n <= CHUNK then step = math.ceil(n / 2) end
  local i = 1
  while i <= n do
    local piece = body:sub(i, i + step - 1)
    out[#out + 1] = string.format("%x\r\n", #piece)
    out[#out + 1] = piece
    out[#out + 1] = "\r\n"
    i = i + step
  end
  if terminate then out[#out + 1] = "0\r\n\r\n" end
  return table.concat(out)
end

-- Returns true when the connection may serve another request.
local function write_response(sock, req, resp)
  if resp.drop then return false end
  local status = resp.status or 200
  local body = resp.body or ""
  if req.method == "HEAD" or status == 204 or status == 304 then body = "" end
  local chunked = resp.chunked or resp.truncated_chunked
  local closing = req.close or resp.close or resp.truncate_at or resp.stall_at
                  or resp.truncated_chunked

  local list = header_pairs(resp.headers)
  local have = {}
  for _, p in ipairs(list) do have[p[1]:lower()] = true end
  if not have["date"] then
    list[#list + 1] = { "Date", os.date("!%a, %d %b %Y %H:%M:%S GMT") }
  end
  if not have["content-length"] and not have["transfer-encoding"] then
    if chunked then
      list[#list + 1] = { "Transfer-Encoding", "chunked" }
    else
      list[#list + 1] = { "Content-Length", tostring(#body) }
    end
  end
  if closing and not have["connection"] then
    list[#list + 1] = { "Connection", "close" }
  end

  local head = { string.format("HTTP/1.1 %d %s\r\n", status,
                               resp.reason or REASONS[status] or "Unknown") }
  for _, p in ipairs(list) do head[#head + 1] = p[1] .. ": " .. p[2] .. "\r\n" end
  head[#head + 1] = "\r\n"
  head = table.concat(head)
  if chunked and req.method ~= "HEAD" then
    body = chunk_encode(body, not resp.truncated_chunked)
  end

  local cut = resp.truncate_at or resp.stall_at
  if cut then
    local data = (head .. body):sub(1, math.max(0, cut))
    if not send_all(sock, data) then return false end
    if resp.stall_at then
      -- stay silent; swallow anything the client sends until it closes
      while true do
        local _, err = sock:receive(65536)
        if err and not wait_io(sock, err) then break end
      end
    end
    return false
  end
  if #body < 65536 then
    if not send_all(sock, head .. body) then return false end
  else
    if not send_all(sock, head) then return false end
    if not send_all(sock, body) then return false end
  end
  return not closing
end

local function error_response(status, msg)
  local body = string.format(
    '{"success":false,"errors":[{"code":%d,"message":"%s"}],"messages":[],"result":null}',
    status == 413 and 10013 or 10400, msg)
  return { status = status, close = true, body = body,
           headers = { { "Content-Type", "application/json" } } }
end

---------------------------------------------------------------------------
-- The server
---------------------------------------------------------------------------

local Server = {}
Server.__index = Server

-- opts.handler(req, conn) -> resp (required)
-- opts.on_handshake(conn)       called after each completed TLS handshake
-- opts.log(msg)                 where to report internal errors (stderr)
function M.new(opts)
  local self = setmetatable({
    handler = assert(opts.handler, "handler required"),
    on_handshake = opts.on_handshake,
    log = opts.log or function(msg) io.stderr:write("emulator: ", msg, "\n") end,
    listeners = {},      -- { sock, tls_ctx, name, url }
    readers = {},        -- sock -> coroutine waiting to read
    writers = {},        -- sock -> coroutine waiting to write
    sleepers = {},       -- { at = time, co = coroutine }
    conns = {},          -- sock -> conn (open connections)
    watches = {},        -- { obj (with getfd), fn }
    accepted = 0,
    running = false,
  }, Server)
  return self
end

-- Opens a listener on host:port (port 0: any free port).
-- tls: nil or a LuaSec server context.  Returns the bound port.
function Server:listen(host, port, tls, name)
  local sock = assert(socket.bind(host, port or 0, 128))
  sock:settimeout(0)
  local _, bound = sock:getsockname()
  self.listeners[#self.listeners + 1] = { sock = sock, tls = tls, name = name }
  return tonumber(bound)
end

-- Calls fn() whenever obj (anything with getfd()) becomes readable.
function Server:watch(obj, fn)
  self.watches[#self.watches + 1] = { obj = obj, fn = fn }
end

function Server:stop() self.running = false end

-- Resumes co and files it under whatever it yields for.
function Server:resume(co, ...)
  local ok, what, arg = coroutine.resume(co, ...)
  if not ok then
    self.log("internal error: " .. tostring(what))
    return
  end
  if coroutine.status(co) == "dead" then return end
  if what == "read" then
    self.readers[arg] = co
  elseif what == "write" then
    self.writers[arg] = co
  elseif what == "sleep" then
    self.sleepers[#self.sleepers + 1] = { at = socket.gettime() + arg, co = co }
  else
    self.log("bad yield: " .. tostring(what))
  end
end

function Server:serve_connection(sock, listener)
  self.accepted = self.accepted + 1
  local conn = { id = self.accepted, tls = listener.tls ~= nil,
                 listener = listener.name }
  self.conns[sock] = conn
  if listener.tls then
    local ssl = require("ssl")
    local wrapped, err = ssl.wrap(sock, listener.tls)
    if not wrapped then
      self.conns[sock] = nil
      sock:close()
      return self.log("tls wrap: " .. tostring(err))
    end
    self.conns[sock] = nil
    sock = wrapped
    self.conns[sock] = conn
    sock:settimeout(0)
    while true do
      local ok
      ok, err = sock:dohandshake()
      if ok then break end
      if not wait_io(sock, err) then
        self.conns[sock] = nil
        sock:close()
        return
      end
    end
    if self.on_handshake then self.on_handshake(conn) end
  end
  conn.sock = sock
  while true do
    local req, err, status = read_request(sock)
    if not req then
      if status then
        write_response(sock, { method = "GET", close = true },
                       error_response(status, err))
      end
      break
    end
    local ok, resp = pcall(self.handler, req, conn)
    if not ok then
      self.log("handler error: " .. tostring(resp))
      resp = error_response(500, "internal emulator error")
    end
    local keep = write_response(sock, req, resp)
    if resp.after then resp.after() end
    if not keep or not self.running then break end
  end
  self.conns[sock] = nil
  sock:close()
end

function Server:accept(listener)
  while true do
    local client = listener.sock:accept()
    if not client then return end
    client:settimeout(0)
    client:setoption("tcp-nodelay", true)
    local co = coroutine.create(function()
      self:serve_connection(client, listener)
    end)
    self:resume(co)
  end
end

-- The event loop; returns after stop().
function Server:run()
  self.running = true
  while self.running do
    -- timers
    local now = socket.gettime()
    local timeout = 0.5
    local due = {}
    local keep = {}
    for _, s in ipairs(self.sleepers) do
      if s.at <= now then due[#due + 1] = s else keep[#keep + 1] = s end
    end
    self.sleepers = keep
    table.sort(due, function(a, b) return a.at < b.at end)
    for _, s in ipairs(due) do self:resume(s.co) end
    for _, s in ipairs(self.sleepers) do
      if s.at - now < timeout then timeout = math.max(0, s.at - now) end
    end
    if #due > 0 then timeout = 0 end

    local rl, wl, role = {}, {}, {}
    for _, l in ipairs(self.listeners) do rl[#rl + 1] = l.sock; role[l.sock] = l end
    for _, w in ipairs(self.watches) do rl[#rl + 1] = w.obj; role[w.obj] = w end
    for s in pairs(self.readers) do rl[#rl + 1] = s end
    for s in pairs(self.writers) do wl[#wl + 1] = s end
    local r, w = socket.select(rl, wl, timeout)
    for _, s in ipairs(w or {}) do
      local co = self.writers[s]
      if co then self.writers[s] = nil; self:resume(co) end
    end
    for _, s in ipairs(r or {}) do
      local x = role[s]
      if x and x.fn then
        x.fn()
      elseif x then
        self:accept(x)
      else
        local co = self.readers[s]
        if co then self.readers[s] = nil; self:resume(co) end
      end
    end
  end
  self:close_all()
end

function Server:close_all()
  for s in pairs(self.conns) do pcall(s.close, s) end
  for _, l in ipairs(self.listeners) do pcall(l.sock.close, l.sock) end
  self.conns, self.readers, self.writers, self.sleepers = {}, {}, {}, {}
  self.listeners = {}
end

return M
