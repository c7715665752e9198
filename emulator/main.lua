-- emulator/main.lua: a stateful emulator of the Cloudflare IAM user-groups
-- API, for tests and `make demo`.
--
--   lua5.4 emulator/main.lua [--host 127.0.0.1] [--port 0] [--tls-port 0]
--                            [--tls-cert FILE --tls-key FILE]
--                            [--seed FILE.json] [--demo] [--no-stdin]
--                            [--quota Q/W]
--
-- Opens an HTTP listener (port 0 = a free port) and, with a certificate, an
-- HTTPS listener on another port.  When ready it prints ONE line of JSON on
-- stdout and nothing else ever (logs go to stderr):
--   {"http":"http://127.0.0.1:P1","https":"https://127.0.0.1:P2",
--    "admin":"http://127.0.0.1:P1/__emulator"}
-- API base URL: <http or https>/client/v4.
--
-- It exits on SIGTERM/SIGINT, on POST /__emulator/shutdown, and when its
-- stdin reaches EOF (a parent that dies never leaves it running).  Stdin is
-- not watched when it is /dev/null (e.g. `emulator &` in a script) or with
-- --no-stdin.
--
-- Admin API, HTTP listener only, no auth; answers are
-- {"success":true,"errors":[],"messages":[],"result":...}:
--   POST   /__emulator/reset     body: a seed (below; empty body = empty
--                                state).  Replaces all state, clears faults,
--                                recorded requests and stats.  400 if invalid.
--   GET    /__emulator/state     the state, in the seed format
--   POST   /__emulator/faults    body: one rule or an array (faults.lua);
--                                appended; result {added, pending}
--   GET    /__emulator/faults    pending rules
--   DELETE /__emulator/faults
--   GET    /__emulator/requests  recorded API requests, in order:
--                                {method, path, query (raw, "" if none),
--                                 headers (lowercased names), body,
--                                 connection (API connection number, 1..),
--                                 tls (bool), received (arrival, Unix
--                                 time in seconds with a fraction)}
--   DELETE /__emulator/requests
--   GET    /__emulator/stats     {connections, tls_handshakes, requests,
--                                 rate_limited}
--                                connections = connections that carried an
--                                API request (counted again after a reset);
--                                rate_limited = requests refused by the quota
--   POST   /__emulator/quota     body: {"limit":Q,"window":W} or {} (none);
--                                starts a fresh window
--   POST   /__emulator/shutdown  answers, then the process exits (status 0)
-- Admin failures: 400 (bad JSON, bad seed, bad rule) or 404 (no such admin
-- route) with success false and errors[1].code = 1000 + status.
-- Admin requests are never recorded, counted or subject to faults; on the
-- HTTPS listener /__emulator/ is just an unknown API route (404 7000).
--
-- Seed (JSON):
--   { "tokens": [ {"token":"t1"}, {"token":"ro","read_only":true},
--                 {"token":"scoped","accounts":["<a>"]} ],
--     "keys":   [ {"email":"user@example.com","key":"144c9defac04969c7bfad8efaa8ea194"} ],
--     "accounts": { "<a 32 hex>": {
--        "members": [ {"id":"<32 hex>","email":"x@example.com",
--                      "status":"accepted","user_id":"<32 hex>",
--                      "first_name":"..","last_name":".."} ],
--        "groups":  [ {"id":"<32 hex>","name":"Engineering",
--                      "members":["<member id>", ...],
--                      "policies":[...], "scim":true} ] } },
--     "faults": [ ...optional rules... ] }
-- Quota (--quota Q/W, e.g. 1200/300, or the admin route): at most Q API
-- requests per window of W seconds, a window starting with the first
-- request after the previous one ended. Every API answer then carries
--   Ratelimit: "default";r=<left>;t=<seconds to the window's end, rounded up>
--   Ratelimit-Policy: "default";q=Q;w=W
-- and a request beyond the quota gets 429 (code 10100) with Retry-After,
-- is counted in stats.rate_limited, and is neither recorded nor handled.
-- Without a quota neither header is sent.
--
-- Missing user_id: each hex digit of the member id + 1 (mod 16).  Missing
-- group id: 9e0e0e0e followed by a 24-hex counter.  "scim": true makes the
-- group read-only (every write answers 400 1010, see api.lua).  first_name defaults to
-- the e-mail's local part, last_name to "Example".
--
-- --demo seeds (ids for the demo and README):
--   account  0123456789abcdef0123456789abcdef
--   token    demo-token   (also key pair user@example.com /
--                          144c9defac04969c7bfad8efaa8ea194)
--   members  d0000000000000000000000000000001 alice@example.com
--            d0000000000000000000000000000002 bob@example.com
--            d0000000000000000000000000000003 carol@example.com
--            d0000000000000000000000000000004 dave@example.com
--            d0000000000000000000000000000005 erin@example.com
--            d0000000000000000000000000000006 frank@example.com
--            d0000000000000000000000000000007 grace@example.com (pending)
--            d0000000000000000000000000000008 heidi@example.com
--   groups   e0000000000000000000000000000001 Engineering: alice, bob, carol
--            f0000000000000000000000000000002 Finance: dave, erin

local dir = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
package.path = dir .. "/?.lua;" .. package.path

local socket = require("socket")

-- A child started by a test inherits the test's open descriptors (client
-- sockets, the write ends of other emulators' stdin pipes...).  Holding
-- them would hide a client's close from its server and keep other
-- emulators from seeing EOF on stdin, so close them all first.
do
  local closer = socket.tcp()          -- no descriptor until used
  for fd = 3, 1023 do
    closer:setfd(fd)
    closer:close()
  end
end

local server_mod = require("server")
local api = require("api")

local function die(msg)
  io.stderr:write("emulator: ", msg, "\n")
  os.exit(2)
end

-- Arguments
local opts = { host = "127.0.0.1", port = 0, tls_port = 0 }
do
  local i = 1
  local function value()
    i = i + 1
    if arg[i] == nil then die("missing value for " .. arg[i - 1]) end
    return arg[i]
  end
  while arg[i] do
    local a = arg[i]
    if a == "--host" then opts.host = value()
    elseif a == "--port" then opts.port = tonumber(value())
    elseif a == "--tls-port" then opts.tls_port = tonumber(value())
    elseif a == "--tls-cert" then opts.cert = value()
    elseif a == "--tls-key" then opts.key = value()
    elseif a == "--seed" then opts.seed = value()
    elseif a == "--demo" then opts.demo = true
    elseif a == "--no-stdin" then opts.no_stdin = true
    elseif a == "--quota" then
      local q, w = value():match("^(%d+)/(%d+%.?%d*)$")
      if not q or tonumber(w) <= 0 then die("--quota wants LIMIT/SECONDS, e.g. 1200/300") end
      opts.quota = { limit = tonumber(q), window = tonumber(w) }
    elseif a == "--help" or a == "-h" then
      io.stderr:write("usage: main.lua [--host H] [--port P] [--tls-port P] ",
                      "[--tls-cert F --tls-key F] [--seed F.json] [--demo] [--no-stdin] ",
                      "[--quota Q/W]\n")
      os.exit(0)
    else die("unknown argument " .. a) end
    i = i + 1
  end
  if (opts.cert == nil) ~= (opts.key == nil) then die("--tls-cert and --tls-key go together") end
end

local function demo_seed()
  local a = "0123456789abcdef0123456789abcdef"
  local names = { "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi" }
  local members = {}
  for i, n in ipairs(names) do
    members[i] = { id = string.format("d%031d", i), email = n .. "@example.com",
                   status = (n == "grace") and "pending" or "accepted",
                   first_name = n:sub(1, 1):upper() .. n:sub(2), last_name = "Example" }
  end
  return {
    tokens = { { token = "demo-token" } },
    keys = { { email = "user@example.com", key = "144c9defac04969c7bfad8efaa8ea194" } },
    accounts = { [a] = { members = members, groups = {
      { id = "e0000000000000000000000000000001", name = "Engineering",
        members = { members[1].id, members[2].id, members[3].id } },
      { id = "f0000000000000000000000000000002", name = "Finance",
        members = { members[4].id, members[5].id } } } } },
  }
end

math.randomseed(os.time())
local app = api.new()
do
  local seed = {}
  if opts.seed then
    local f = io.open(opts.seed, "rb") or die("cannot read " .. opts.seed)
    local text = f:read("*a")
    f:close()
    seed = api.decode(text) or die("seed file is not JSON: " .. opts.seed)
  elseif opts.demo then
    seed = demo_seed()
  end
  local ok, err = app:reset(seed)
  if not ok then die("bad seed: " .. err) end
end

---------------------------------------------------------------------------
-- Quota
---------------------------------------------------------------------------

local quota = { rule = opts.quota, count = 0, ends = 0, rate_limited = 0 }

function quota.set(rule)
  quota.rule, quota.count, quota.ends, quota.rate_limited = rule, 0, 0, 0
end

local function add_header(resp, name, value)
  local h = resp.headers or {}
  resp.headers = h
  if h[1] ~= nil or next(h) == nil then h[#h + 1] = { name, value } else h[name] = value end
end

-- Runs `handle` within the quota: the answer with the quota headers, or
-- a 429 without calling it.
function quota.apply(req, conn, handle)
  local rule = quota.rule
  if not rule then return handle(req, conn) end
  local now = socket.gettime()
  if now >= quota.ends then quota.count, quota.ends = 0, now + rule.window end
  local resp
  if quota.count >= rule.limit then
    quota.rate_limited = quota.rate_limited + 1
    resp = { status = 429, headers = { { "Content-Type", "application/json" },
                                       { "Retry-After", tostring(math.ceil(quota.ends - now)) } },
             body = api.encode({ success = false, messages = {}, result = api.null,
               errors = { api.object({ code = 10100, message = string.format(
                 "More than %d requests per %s seconds", rule.limit, tostring(rule.window)) }) } }) }
  else
    quota.count = quota.count + 1
    resp = handle(req, conn)
  end
  -- after the answer is made (a fault may delay it): seconds left now
  local left_s = math.max(0, math.ceil(quota.ends - socket.gettime()))
  add_header(resp, "Ratelimit", string.format('"default";r=%d;t=%d', rule.limit - quota.count, left_s))
  add_header(resp, "Ratelimit-Policy", string.format('"default";q=%d;w=%s', rule.limit,
    tostring(rule.window):gsub("%.0$", "")))
  return resp
end

---------------------------------------------------------------------------
-- Admin API
---------------------------------------------------------------------------

local srv

local function admin_answer(status, result, err)
  local doc
  if status == 200 then
    doc = { success = true, errors = {}, messages = {}, result = result }
  else
    doc = { success = false, messages = {}, result = api.null,
            errors = { api.object({ code = 1000 + status, message = err }) } }
  end
  return { status = status, headers = { { "Content-Type", "application/json" } },
           body = api.encode(doc) }
end

local function admin(req)
  local what, m = req.path:match("^/__emulator/([%w_]+)$"), req.method
  local function body_json(default)
    if req.body:match("^%s*$") then return default end
    return api.decode(req.body)
  end
  if what == "reset" and m == "POST" then
    local seed = body_json({})
    if seed == nil then return admin_answer(400, nil, "body is not JSON") end
    local ok, err = app:reset(seed)
    if not ok then return admin_answer(400, nil, err) end
    quota.set(quota.rule)
    return admin_answer(200, true)
  elseif what == "state" and m == "GET" then
    return admin_answer(200, app:dump())
  elseif what == "faults" and m == "POST" then
    local rules = body_json(nil)
    if rules == nil then return admin_answer(400, nil, "body is not JSON") end
    local n, err = app.faults:add(rules)
    if not n then return admin_answer(400, nil, err) end
    return admin_answer(200, api.object({ added = n, pending = #app.faults:list() }))
  elseif what == "faults" and m == "GET" then
    return admin_answer(200, app.faults:list())
  elseif what == "faults" and m == "DELETE" then
    app.faults:clear()
    return admin_answer(200, true)
  elseif what == "requests" and m == "GET" then
    return admin_answer(200, app.requests)
  elseif what == "requests" and m == "DELETE" then
    app.requests = {}
    return admin_answer(200, true)
  elseif what == "stats" and m == "GET" then
    local st = api.object({ rate_limited = quota.rate_limited })
    for k, v in pairs(app.stats) do st[k] = v end
    return admin_answer(200, st)
  elseif what == "quota" and m == "POST" then
    local rule = body_json(nil)
    if type(rule) ~= "table" then return admin_answer(400, nil, "body is not a JSON object") end
    if rule.limit == nil and rule.window == nil then
      quota.set(nil)
    elseif type(rule.limit) ~= "number" or rule.limit < 0 or type(rule.window) ~= "number"
        or rule.window <= 0 then
      return admin_answer(400, nil, "quota: want {\"limit\": Q >= 0, \"window\": W > 0}")
    else
      quota.set({ limit = math.floor(rule.limit), window = rule.window })
    end
    return admin_answer(200, true)
  elseif what == "shutdown" and m == "POST" then
    local r = admin_answer(200, true)
    r.close = true
    r.after = function() srv:stop() end
    return r
  end
  return admin_answer(404, nil, "no admin route " .. m .. " " .. req.path)
end

---------------------------------------------------------------------------
-- Server
---------------------------------------------------------------------------

srv = server_mod.new({
  handler = function(req, conn)
    if not conn.tls and (req.path == "/__emulator" or req.path:sub(1, 12) == "/__emulator/") then
      return admin(req)
    end
    return quota.apply(req, conn, function(r, c)
      -- app:handle records the request before anything can yield
      local n, at = #app.requests, socket.gettime()
      local resp = app:handle(r, c)
      if app.requests[n + 1] then app.requests[n + 1].received = at end
      return resp
    end)
  end,
  on_handshake = function() app:on_handshake() end,
})

local http_port = srv:listen(opts.host, opts.port, nil, "http")
local host_url = opts.host:find(":") and ("[" .. opts.host .. "]") or opts.host
local ready = { http = "http://" .. host_url .. ":" .. http_port,
                admin = "http://" .. host_url .. ":" .. http_port .. "/__emulator" }
if opts.cert then
  local ssl = require("ssl")
  local ctx, err = ssl.newcontext({
    mode = "server", protocol = "any", key = opts.key, certificate = opts.cert,
    verify = "none", options = { "all", "no_sslv2", "no_sslv3" },
  })
  if not ctx then die("TLS context: " .. tostring(err)) end
  local tls_port = srv:listen(opts.host, opts.tls_port, ctx, "https")
  ready.https = "https://" .. host_url .. ":" .. tls_port
end

-- Stop when stdin reaches EOF, unless it is /dev/null.
if not opts.no_stdin then
  local target
  local p = io.popen("readlink /proc/self/fd/0 2>/dev/null")
  if p then target = p:read("*l"); p:close() end
  if target ~= "/dev/null" then
    srv:watch({ getfd = function() return 0 end, dirty = function() return false end },
              function()
                if io.stdin:read(1) == nil then srv:stop() end
              end)
  end
end

io.stdout:write(api.encode(api.object(ready)), "\n")
io.stdout:flush()

local ok, err = pcall(srv.run, srv)
srv:close_all()
if not ok then
  if tostring(err):find("interrupted") then os.exit(130) end
  die(tostring(err))
end
os.exit(0)
