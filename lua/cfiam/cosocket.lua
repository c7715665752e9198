--- cfiam.cosocket: the non-blocking transport for OpenResty / nginx.
--
-- One HTTP/1.1 exchange over ngx.socket.tcp per attempt: connect (pooled,
-- keep-alive), TLS handshake with certificate and host verification and
-- SNI, the request exactly as core.prepare built it, the response read
-- by Content-Length, chunked encoding or until close. The C core does the
-- rest through its hooks (require "cfiam.core"), so validation, decoding, error tables and
-- the retry decision are those of the libcurl path:
--   core.prepare    validates and builds the request (nothing is sent on
--                   an invalid argument)
--   core.outcome    turns status, headers and body into result, meta or
--                   nil, err, wait, hold
--   core.failure    the error for a transport failure, and its wait
--   core.pace       the quota pacing of every attempt
--   core.rate_limited  the refusal of a request that would wait too long
--                   (a 429's hold, the shared budget), unsent
-- Retries wait with ngx.sleep, which yields: the worker keeps serving.
--
-- With shared_dict set, a rate-limit budget per token is kept in that
-- lua_shared_dict for all workers (see "the shared rate-limit budget").
--
-- Caveats: certificates are checked against nginx's
-- lua_ssl_trusted_certificate (the client's ca_file / ca_path apply to
-- libcurl only), and for an IP-address host only the chain is checked
-- (nginx matches DNS names only); host names need an nginx `resolver`
-- (the connect, resolution included, is bounded by connect_timeout);
-- redirects are not followed (the C core turns a 3xx into an error); no
-- proxy; responses are not compressed (no Accept-Encoding is sent). The
-- header block is bounded (MAX_HEADER_BYTES) line by line, so a single
-- endless header line is bounded only by the timeout. Connections are
-- pooled per worker by scheme, host, port (and pool_size when the client
-- sets one): every location of one nginx should trust the same CA bundle.
-- Without pool_size / keepalive_timeout, nginx's lua_socket_pool_size and
-- lua_socket_keepalive_timeout apply. The User-Agent names this transport
-- instead of libcurl, unless the client set its own.
local _M = {}

local ngx = ngx -- luacheck: globals ngx
if type(ngx) ~= "table" or type(ngx.socket) ~= "table" then
  error("cfiam.cosocket needs lua-nginx-module (ngx.socket); outside nginx "
    .. "cfiam uses libcurl", 2)
end
local tcp, sleep, now, update_time = ngx.socket.tcp, ngx.sleep, ngx.now,
  ngx.update_time
local spawn, join, kill = ngx.thread.spawn, ngx.thread.wait, ngx.thread.kill
local concat, tonumber, tostring, type, error, floor, fmt, lower, find,
  sub, match, gsub = table.concat, tonumber, tostring, type, error,
  math.floor, string.format, string.lower, string.find, string.sub,
  string.match, string.gsub
local require, select, pcall = require, select, pcall

local MAX_HEADER_BYTES = 102400 -- as libcurl's CURL_MAX_HTTP_HEADER
local READ_PIECE = 65536     -- read size for bodies without a length

local transport = require("cfiam.transport")
local A = require("cfiam.args") -- raise and call: raises at the user's line
local setmetatable, pairs = setmetatable, pairs

-- Per-worker counters, for tests and monitoring: connections opened (not
-- taken from the pool) and HTTP exchanges (requests sent).
_M.connections_opened = 0
_M.exchanges = 0

local function ms(seconds) return floor(seconds * 1000 + 0.5) end

-- Per-exchange context: socket, deadline and counters for messages.
local function remaining_ms(x)
  update_time()
  local left = x.deadline - now()
  if left <= 0 then return nil end
  return ms(left) > 0 and ms(left) or 1
end

-- A transport failure: kind, message (the caller turns it into an error).
local function timed_out(x)
  update_time()
  return "timeout", fmt("Operation timed out after %d milliseconds with %d "
    .. "bytes received", ms(now() - x.started), x.received)
end

-- Reads a line; maps errors to kind, message.
local function read_line(x)
  local left = remaining_ms(x)
  if not left then return nil, timed_out(x) end
  x.sock:settimeout(left)
  local line, err = x.sock:receive("*l")
  if not line then
    if err == "timeout" then return nil, timed_out(x) end
    return nil, "closed", err
  end
  x.received = x.received + #line + 2
  return line
end

-- Reads exactly n bytes.
local function read_n(x, n)
  local left = remaining_ms(x)
  if not left then return nil, timed_out(x) end
  x.sock:settimeout(left)
  local data, err, partial = x.sock:receive(n)
  if not data then
    if partial then x.received = x.received + #partial end
    if err == "timeout" then return nil, timed_out(x) end
    return nil, "closed", err
  end
  x.received = x.received + n
  return data
end

local function too_large(cfg)
  return "invalid_response", fmt("the response body is larger than "
    .. "max_response_bytes (%.0f bytes)", cfg.max_response_bytes)
end

-- A failed read: a peer that closed becomes a network error saying `what`;
-- a timeout or other failure passes through.
local function read_failed(k, m, what)
  if k == "closed" then return nil, "network", what end
  return nil, k, m
end

local TRUNCATED = "transfer closed with outstanding read data remaining"

-- Status line and headers. Returns status, headers, or nil, kind, message.
local function read_head(x)
  local status
  repeat -- skip 1xx interim answers
    local line, k, m = read_line(x)
    if not line then
      if k == "closed" then
        if x.received == 0 then
          return nil, "empty", "Empty reply from server"
        end
        return nil, "network", "Connection closed while reading the "
          .. "response head (" .. tostring(m) .. ")"
      end
      return nil, k, m
    end
    local s = match(line, "^HTTP/1%.[01] (%d%d%d)")
    if not s then
      return nil, "network", "Unsupported HTTP response: status line "
        .. fmt("%q", sub(line, 1, 60))
    end
    x.http10 = sub(line, 6, 8) == "1.0"
    status = tonumber(s)
    local headers, bytes = {}, #line
    while true do
      local h
      h, k, m = read_line(x)
      if not h then
        return read_failed(k, m, "Connection closed while reading the "
          .. "response headers")
      end
      if h == "" then break end
      bytes = bytes + #h + 2
      if bytes > MAX_HEADER_BYTES then
        return nil, "network", "The response headers are larger than "
          .. MAX_HEADER_BYTES .. " bytes"
      end
      local name, value = match(h, "^([^:%s]+):[ \t]*(.-)[ \t]*$")
      if not name then
        return nil, "network", "Malformed response header line "
          .. fmt("%q", sub(h, 1, 60))
      end
      name = lower(name)
      local old = headers[name]
      headers[name] = old and (old .. ", " .. value) or value
    end
    x.headers = headers
  until status >= 200 or status == 101
  return status, x.headers
end

-- The body by chunked encoding. Returns body or nil, kind, message.
local function read_chunked(x, cfg)
  local parts, n, total = {}, 0, 0
  while true do
    local line, k, m = read_line(x)
    if not line then
      return read_failed(k, m, TRUNCATED)
    end
    local hex = match(line, "^%s*(%x+)")
    if not hex or #hex > 15 then
      return nil, "network", "Malformed chunk size line "
        .. fmt("%q", sub(line, 1, 40))
    end
    local size = tonumber(hex, 16)
    if size == 0 then break end
    total = total + size
    if total > cfg.max_response_bytes then return nil, too_large(cfg) end
    local data
    data, k, m = read_n(x, size)
    if not data then
      return read_failed(k, m, TRUNCATED)
    end
    n = n + 1
    parts[n] = data
    line, k, m = read_line(x) -- the CRLF after the chunk data
    if line ~= "" then
      if not line and k ~= "closed" then return nil, k, m end
      return nil, "network", "Malformed chunked encoding"
    end
  end
  while true do -- trailers, up to the empty line
    local line, k, m = read_line(x)
    if not line then
      return read_failed(k, m, TRUNCATED)
    end
    if line == "" then break end
  end
  return concat(parts)
end

-- The body until the peer closes (no length given).
local function read_to_close(x, cfg)
  local parts, n, total = {}, 0, 0
  while true do
    local left = remaining_ms(x)
    if not left then return nil, timed_out(x) end
    x.sock:settimeout(left)
    local data, err, partial = x.sock:receive(READ_PIECE)
    data = data or partial
    if data and #data > 0 then
      total = total + #data
      x.received = x.received + #data
      if total > cfg.max_response_bytes then return nil, too_large(cfg) end
      n = n + 1
      parts[n] = data
    end
    if err == "closed" then return concat(parts) end
    if err == "timeout" then return nil, timed_out(x) end
    if err then return nil, "network", "Recv failure: " .. err end
  end
end

-- The response body. Returns body, keepalive or nil, kind, message.
local function read_body(x, cfg, method, status)
  local h = x.headers
  local conn = lower(h["connection"] or "")
  local keep = not x.http10 and not find(conn, "close", 1, true)
  if x.http10 and find(conn, "keep-alive", 1, true) then keep = true end
  if method == "HEAD" or status == 204 or status == 304 then
    return "", keep
  end
  local te = h["transfer-encoding"]
  if te and find(lower(te), "chunked", 1, true) then
    local body, k, m = read_chunked(x, cfg)
    if not body then return nil, k, m end
    return body, keep
  end
  local cl = h["content-length"]
  if cl then
    local len = match(cl, "^(%d+)$")
    len = len and tonumber(len)
    if not len then
      return nil, "network", "Invalid Content-Length: " .. fmt("%q", cl)
    end
    if len > cfg.max_response_bytes then return nil, too_large(cfg) end
    if len == 0 then return "", keep end
    local body, k, m = read_n(x, len)
    if not body then
      return read_failed(k, m, fmt("transfer closed with %d bytes remaining "
        .. "to read", len - (x.received - x.head_bytes)))
    end
    return body, keep
  end
  local body, k, m = read_to_close(x, cfg)
  if not body then return nil, k, m end
  return body, false
end

local function is_ip(host)
  return find(host, ":", 1, true) or match(host, "^%d+%.%d+%.%d+%.%d+$")
end

local function nap(seconds) sleep(seconds) end -- spawn takes Lua functions

-- sock:connect within `limit` ms, name resolution included: nginx bounds
-- that only by resolver_timeout, so for a host name the connect runs in a
-- light thread that is killed when the time is up (killing it cancels the
-- resolution). Where light threads are unavailable, a plain connect.
local function connect(sock, host, port, opts, limit)
  sock:settimeout(limit)
  if is_ip(host) then return sock:connect(host, port, opts) end
  local ok, co = pcall(spawn, function()
    return "done", sock:connect(host, port, opts)
  end)
  if not ok then return sock:connect(host, port, opts) end
  local timer = spawn(nap, limit / 1000)
  local done, tag, res, err = join(co, timer)
  kill(co)
  kill(timer)
  if not done then error(tag, 0) end
  if tag ~= "done" then return nil, "timeout" end
  return res, err
end

-- Connects (or takes a pooled connection) and does the TLS handshake.
-- Returns sock, reused or nil, kind, message.
local function open(x, cfg)
  local sock = tcp()
  x.sock = sock
  local host = cfg.host
  if find(host, ":", 1, true) then host = "[" .. host .. "]" end
  -- Plain HTTP is allowed to loopback only, and "localhost" is loopback
  -- only if it is not resolved: nginx's resolver asks DNS (never
  -- /etc/hosts), and a DNS answer must not receive the credential.
  if cfg.scheme == "http" and lower(host) == "localhost" then host = "127.0.0.1" end
  local left = remaining_ms(x)
  if not left then return nil, timed_out(x) end
  local cto = ms(cfg.connect_timeout)
  local ok, err = connect(sock, host, cfg.port, { pool = x.pool,
    pool_size = cfg.pool_size }, cto < left and cto or left)
  if not ok then
    if err == "timeout" then
      update_time()
      return nil, "timeout", fmt("Connection timed out after %d milliseconds",
        ms(now() - x.started))
    end
    return nil, "network", fmt("Failed to connect to %s port %d: %s",
      cfg.host, cfg.port, tostring(err))
  end
  local reused = (sock:getreusedtimes() or 0) > 0
  if not reused then _M.connections_opened = _M.connections_opened + 1 end
  if cfg.scheme == "https" and not reused then
    left = remaining_ms(x)
    if not left then return nil, timed_out(x) end
    sock:settimeout(left)
    -- (no session object wanted, SNI and host name, verify the chain).
    -- nginx checks the name with X509_check_host, which never matches an
    -- IP address SAN, and SNI must not carry an IP: for an IP literal
    -- base URL only the chain is verified (see the README).
    local name = cfg.host
    if is_ip(name) then name = nil end
    local done, herr = sock:sslhandshake(false, name, true)
    -- lua-nginx-module 0.10.23 reports success when a handshake that
    -- completed at once failed verification; it has closed the socket.
    if done and not sock:getreusedtimes() then
      done, herr = nil, "certificate verify failed (see the nginx error log)"
    end
    if not done then
      sock:close()
      if herr == "timeout" then return nil, timed_out(x) end
      return nil, "tls", "SSL certificate problem or handshake failure: "
        .. tostring(herr) .. " (cosockets verify against nginx's "
        .. "lua_ssl_trusted_certificate)"
    end
  end
  return sock, reused
end

-- The keep-alive pool of a client's connections. nginx sizes a pool when
-- it creates it, so a client with its own pool_size gets its own pool.
local function pool_name(cfg)
  local name = "cfiam:" .. cfg.scheme .. ":" .. cfg.host .. ":" .. cfg.port
  if cfg.pool_size then name = name .. ":" .. cfg.pool_size end
  return name
end

-- One attempt, which started at `started` and must end by `deadline`:
-- returns status, headers, body or nil, kind, message. A pooled
-- connection that the server closed meanwhile is replaced once by a fresh
-- one (as libcurl does), within the same attempt.
local function exchange(cfg, req, wire, started, deadline)
  local x
  for _ = 1, 2 do
    x = { started = started, deadline = deadline, received = 0,
      head_bytes = 0, pool = pool_name(cfg) }
    local sock, reused_or_kind, msg = open(x, cfg)
    if not sock then return nil, reused_or_kind, msg end
    local reused = reused_or_kind
    local left = remaining_ms(x)
    if not left then sock:close() return nil, timed_out(x) end
    sock:settimeout(left)
    _M.exchanges = _M.exchanges + 1
    local ok, err = sock:send(wire)
    local status, headers, k, m
    if not ok then
      if err == "timeout" then
        sock:close()
        return nil, timed_out(x)
      end
      k, m = "closed", err
    else
      status, k, m = read_head(x)
      headers = k
    end
    if status then
      x.head_bytes = x.received
      local body, keep
      body, k, m = read_body(x, cfg, req.method, status)
      if not body then
        sock:close()
        return nil, k, m
      end
      keep = k
      if keep then
        sock:setkeepalive(cfg.keepalive_timeout
          and ms(cfg.keepalive_timeout), cfg.pool_size)
      else
        sock:close()
      end
      return status, headers, body
    end
    sock:close()
    if not (reused and (k == "closed" or k == "empty") and x.received == 0) then
      if k == "timeout" then return nil, k, m end
      if k == "closed" then
        return nil, "network", "Send failure: " .. tostring(m)
      end
      if k == "empty" then k = "network" end
      return nil, k, m
    end
    -- the pooled connection was stale: try once more on a new one
  end
  return nil, "network", "Empty reply from server"
end

-- ---- the shared rate-limit budget ----------------------------------------
-- Cloudflare allows 1200 requests per 5 minutes per token and blocks every
-- call for five minutes beyond that. With shared_dict = "name", the
-- workers count their requests in that lua_shared_dict, per token (keyed
-- by an MD5 of the credentials, never the credentials), as a sliding
-- window (the previous window weighted by how much of it still overlaps).
-- The quota that the answers' Ratelimit headers give is kept there too
-- (quota_take). A request that would take the count over `soft` x limit,
-- or beyond that quota, waits with ngx.sleep until it fits; a wait beyond RETRY_CAP seconds, or beyond what
-- is left of the attempt's timeout, fails at once with kind
-- "rate_limited" and err.retry_after, as a long Retry-After does in the C
-- core. A 429 answer stops every worker using the token for its
-- Retry-After (or the C core's backoff).
local BUDGET = { limit = 1200, window = 300, soft = 0.9 }
local RETRY_CAP = 60
local PROBE_WAIT = 0.005 -- seconds between looks while the probe is out
local budget_keys = setmetatable({}, { __mode = "k" })

--- Changes the budget: { limit = 1200, window = 300 (seconds), soft = 0.9
-- (the share of the limit used before waiting) }. Per worker: call it from
-- init_by_lua so every worker agrees.
function _M.set_budget(t)
  for k, v in pairs(t) do
    if BUDGET[k] == nil or type(v) ~= "number" or v <= 0 then
      error("cfiam.cosocket.set_budget: bad field '" .. tostring(k) .. "'", 2)
    end
    BUDGET[k] = v
  end
end

local function budget_dict(cfg)
  local dict = ngx.shared[cfg.shared_dict]
  if not dict then
    A.raise("cfiam: shared_dict '" .. cfg.shared_dict .. "' is not "
      .. "declared (add `lua_shared_dict " .. cfg.shared_dict .. " 1m;` to "
      .. "http{})")
  end
  return dict
end

local function budget_key(client, req)
  local key = budget_keys[client]
  if not key then
    local auth = match(req.headers, "\nAuthorization: ([^\r]*)")
      or match(req.headers, "^Authorization: ([^\r]*)")
      or match(req.headers, "X%-Auth%-Key: ([^\r]*)") or ""
    key = "cfiam:" .. ngx.md5(auth) .. ":"
    budget_keys[client] = key
  end
  return key
end

-- The quota the answers' Ratelimit headers give, shared by the workers:
-- key.."rl" the requests left (decremented per request sent, expires at
-- the reset), key.."rlat" that reset (absolute), key.."rlseen" an answer
-- came in this window (without it one request, holding key.."rlprobe",
-- goes first and the others wait for its answer). Returns the seconds to
-- wait (0: go) and how: "took" (one request counted), "probe", "used up".
local function quota_take(dict, key, t, timeout)
  if dict:get(key .. "rl") then
    local n = dict:incr(key .. "rl", -1)
    if n and n >= 0 then return 0, "took" end
    if n then
      dict:incr(key .. "rl", 1) -- not sent: not counted
      local wait = (dict:get(key .. "rlat") or t) - t
      return wait > 0.001 and wait or 0.001, "used up"
    end -- expired meanwhile: the window has reset
  end
  if dict:get(key .. "rlseen") then return 0 end
  if dict:add(key .. "rlprobe", true, timeout) then return 0, "probe" end
  return PROBE_WAIT
end

-- Waits until one more request fits, by `deadline` at the latest;
-- returns true (and true when the request is the quota's probe) or nil,
-- err.
local function budget_take(client, cfg, req, attempt, deadline)
  local dict, key = budget_dict(cfg), budget_key(client, req)
  local W, soft = BUDGET.window, BUDGET.limit * BUDGET.soft
  while true do
    update_time()
    local t = now()
    local wait = (dict:get(key .. "until") or 0) - t
    local how
    if wait <= 0 then wait, how = quota_take(dict, key, t, cfg.timeout) end
    if wait <= 0 then
      local w = floor(t / W)
      local into = t - w * W
      local cur = dict:get(key .. w) or 0
      local prev = dict:get(key .. (w - 1)) or 0
      if prev * (1 - into / W) + cur + 1 <= soft then
        dict:incr(key .. w, 1, 0, 2 * W + 1)
        return true, how == "probe"
      end
      if how == "probe" then dict:delete(key .. "rlprobe") end
      if how == "took" then dict:incr(key .. "rl", 1) end -- not sent
      if cur + 1 > soft or prev <= 0 then
        wait = W - into -- not before the next window
      else -- when prev's remaining weight lets one more in
        wait = (1 - (soft - cur - 1) / prev) * W - into
      end
      if wait < 0.001 then wait = 0.001 end
    end
    if wait > RETRY_CAP or t + wait > deadline then
      local beyond = wait > RETRY_CAP and "" or " (beyond the timeout of this call)"
      return require("cfiam.core").rate_limited(wait, attempt - 1, how == "used up"
        and fmt("the quota of this token is used up (its Ratelimit header, "
          .. "kept in lua_shared_dict %s); retry after %.0f s%s",
          cfg.shared_dict, wait, beyond)
        or fmt("the shared request budget of this token is used up (%d "
          .. "requests per %d s, lua_shared_dict %s); retry after %.0f s%s",
          BUDGET.limit, W, cfg.shared_dict, wait, beyond))
    end
    sleep(wait)
  end
end

-- After an answer: the quota's reading (client:ratelimit(), which the C
-- core takes from the Ratelimit headers) for every worker, the lower
-- count kept within a window (requests in flight may not be in it yet).
local function quota_note(client, cfg, req, probe)
  local dict, key = budget_dict(cfg), budget_key(client, req)
  local r = client:ratelimit()
  if r and r.reset > 0 then
    update_time()
    local left = dict:get(key .. "rl")
    if not left or r.remaining < left then
      dict:set(key .. "rl", r.remaining, r.reset)
      dict:set(key .. "rlat", now() + r.reset, r.reset)
    end
    dict:set(key .. "rlseen", true, r.reset)
  elseif not r then -- no quota announced: no probing for a while
    dict:set(key .. "rlseen", true, RETRY_CAP)
  end
  if probe then dict:delete(key .. "rlprobe") end
end

-- After a 429: every worker holds off for the time the answer asked for.
local function budget_note(client, cfg, req, err, wait)
  if err.status ~= 429 then return end
  local hold = err.retry_after or wait
  if not hold or hold <= 0 then return end
  local dict, key = budget_dict(cfg), budget_key(client, req)
  update_time()
  local till = now() + hold
  if till > (dict:get(key .. "until") or 0) then
    dict:set(key .. "until", till, hold + 1)
  end
end

--- Counts one request made outside the cosocket transport (libcurl under
-- nginx) in the shared budget, without waiting.
function _M.budget_count(client, cfg)
  local req = true
  if not budget_keys[client] then
    req = require("cfiam.core").prepare(client, "GET", "/")
    if not req then return end -- an invalid client sends nothing
  end
  local dict, key = budget_dict(cfg), budget_key(client, req)
  update_time()
  dict:incr(key .. floor(now() / BUDGET.window), 1, 0, 2 * BUDGET.window + 1)
end

-- "Host: name[:port]" as libcurl writes it.
local function host_header(cfg)
  local h = cfg.host
  if find(h, ":", 1, true) then h = "[" .. h .. "]" end
  local default = cfg.scheme == "https" and 443 or 80
  if cfg.port ~= default then h = h .. ":" .. cfg.port end
  return h
end

-- The default User-Agent, "cfiam/V (Lua 5.1; libcurl/x)", names this
-- transport instead of libcurl; a User-Agent the client set is kept.
local UA_DEFAULT = "(User%-Agent: cfiam/[^ \r]+ %([^;\r]+); libcurl/[^)\r]*%)"
local ua_ours -- the replacement, made on first use

local function headers_of(req)
  if not ua_ours then
    local v, n = ngx.config.ngx_lua_version, ngx.config.nginx_version
    ua_ours = fmt("%%1; lua-nginx-module/%d.%d.%d; nginx/%d.%d.%d)",
      floor(v / 1000000), floor(v / 1000) % 1000, v % 1000,
      floor(n / 1000000), floor(n / 1000) % 1000, n % 1000)
  end
  return (gsub(req.headers, UA_DEFAULT, ua_ours, 1))
end

-- ---- the gate before every attempt --------------------------------------
-- Every attempt, first or retry, of a single call or of a request_many
-- batch (`batch`: { hold, timeout, many }; a single call has a batch of
-- its own), waits first for the batch's hold and then for the quota pacing of
-- the C core (core.pace, which learns from every answer's Ratelimit
-- headers through core.outcome; while the quota is unknown one request
-- goes first and the others wait for its answer). As in the libcurl path
-- (multi.c): a 429 answer, retried or final, holds back the whole batch
-- for as long as its call waits (or would wait) before a retry, else for
-- its Retry-After; a retry is made once its own wait is over, then at the
-- gate like any other attempt; a hold or a pacing wait beyond the
-- client's timeout fails the call at once, unsent, with the refusal of
-- the C core (core.rate_limited, core.pace), and in a request_many batch
-- the call whose 429 asks for such a wait ends on that 429.

-- Waits until the batch's hold and the quota let attempt `attempt` go:
-- true (the request then counts as in flight until core.pace_done), or
-- nil, err.
local function gate(core, client, batch, attempt)
  while true do
    update_time()
    local hold = batch.hold - now()
    if hold > 0 then
      if hold > batch.timeout then
        return core.rate_limited(hold, attempt - 1)
      end
      sleep(hold)
    else
      local ok, w = core.pace(client, attempt - 1)
      if ok then return true end
      if ok == nil then return nil, w end
      sleep(w > 0 and w or PROBE_WAIT)
    end
  end
end

-- After an error answer of a call of `batch`: a 429 holds the batch back
-- for `hold` (the wait before a retry, retries left or not: core.outcome),
-- else for its Retry-After. Returns the wait before the call's retry: nil
-- in a request_many batch when that is beyond the timeout (as multi.c).
local function hold_batch(batch, err, wait, hold)
  if err.status ~= 429 then return wait end
  update_time()
  local till = now() + (hold or err.retry_after or 0)
  if till > batch.hold then batch.hold = till end
  if batch.many and wait and wait > batch.timeout then
    err.retry_after = wait
    return nil
  end
  return wait
end

-- Runs a prepared request with retries, each attempt after the gate of
-- `batch`. Returns what client:request does.
local function run(client, req, batch)
  local core = require("cfiam.core")
  local cfg = transport.config_of(client)
  local parts = { req.method, " ", cfg.prefix or "", req.target,
    " HTTP/1.1\r\nHost: ", host_header(cfg), "\r\n", headers_of(req) }
  if req.body then
    parts[#parts + 1] = "Content-Length: " .. #req.body .. "\r\n\r\n"
    parts[#parts + 1] = req.body
  else
    parts[#parts + 1] = "\r\n"
  end
  local wire = concat(parts)
  local shared = cfg.shared_dict
  local attempt = 0
  while true do
    attempt = attempt + 1
    local ok, gerr = gate(core, client, batch, attempt)
    if not ok then return nil, gerr end
    update_time()
    local started = now()
    local deadline = started + cfg.timeout -- the budget's wait counts too
    local probe
    if shared then
      ok, probe = budget_take(client, cfg, req, attempt, deadline)
      if not ok then
        core.pace_done(client)
        return nil, probe
      end
    end
    local status, headers, body = exchange(cfg, req, wire, started, deadline)
    core.pace_done(client) -- before the answer's quota is read, as libcurl
    local res, second, wait, hold
    if status then
      res, second, wait, hold = core.outcome(client, req.decode, attempt, status,
        headers, body)
      if shared then quota_note(client, cfg, req, probe) end
      if res ~= nil then return res, second end -- result, meta
      if shared then budget_note(client, cfg, req, second, wait) end
      wait = hold_batch(batch, second, wait, hold)
    else
      if probe then budget_dict(cfg):delete(budget_key(client, req) .. "rlprobe") end
      second, wait = select(2, core.failure(client, headers, body, attempt))
    end
    if wait == nil then return nil, second end
    sleep(wait)
  end
end

--- client:request over cosockets (same arguments and results).
-- @return result, meta | nil, err
function _M.request(client, method, path, opts)
  -- (through args.call: a raise names the caller's line, not this file)
  local req, err = A.call(require("cfiam.core").prepare, client,
    method, path, opts)
  if not req then return nil, err end
  return _M.paced_run(client, req)
end

--- client:update_members over cosockets (same arguments and results).
-- @return members | nil, err
function _M.update_members(client, account, group, ids, opts)
  local req, err = A.call(require("cfiam.core").update_request,
    client, account, group, ids, opts)
  if not req then return nil, err end
  local members, meta = _M.paced_run(client, req)
  if members == nil then return nil, meta end
  return members
end

-- ---- many calls at once (client:request_many) ---------------------------
-- Up to `concurrency` light threads (ngx.thread.spawn) take the calls in
-- order; each call goes through run, whose every attempt passes the gate
-- of the batch (above).

--- run for one call (client:request, update_members), with a batch of
-- its own: the same rules as libcurl's single calls.
-- @return what run returns
function _M.paced_run(client, req)
  return run(client, req, { hold = 0,
    timeout = transport.config_of(client).timeout })
end

--- client:request_many over cosockets (same arguments and results).
-- @return out | nil, err
function _M.request_many(client, calls, opts)
  -- a raise (a bad option) names the caller's line, not this file's
  local reqs, concurrency = A.call(require("cfiam.core").prepare_many,
    client, calls, opts)
  if not reqs then return nil, concurrency end
  local n, out, nexti = #reqs, {}, 0
  local batch = { hold = 0, timeout = transport.config_of(client).timeout, many = true }
  local function worker()
    while nexti < n do
      nexti = nexti + 1
      local i = nexti
      local res, second = run(client, reqs[i], batch)
      if res ~= nil then
        out[i] = { result = res, meta = second }
      else
        out[i] = { err = second }
      end
    end
  end
  local threads = {}
  for t = 1, (concurrency < n and concurrency or n) do
    threads[t] = spawn(worker)
  end
  for t = 1, #threads do
    local done, e = join(threads[t])
    if not done then A.raise(e) end
  end
  return out
end

return _M
