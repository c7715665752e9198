--- cfiam.transport: chooses, per call, how a request travels.
--
-- Plain Lua (no `ngx`): nothing is changed, the C methods registered by
-- the module run as they are (libcurl, no Lua in between).
--
-- Under OpenResty / lua-nginx-module, `client:request`,
-- `client:update_members` and `client:request_many` are wrapped (and so
-- the module-level functions, which call the client's methods). Every call
-- looks at the client's
-- `transport` option and at `ngx.get_phase()`:
--   "auto" (default)  cosockets where the phase allows them (the
--                     COSOCKET_PHASES below: rewrite, server_rewrite,
--                     access, content, timer, ssl_cert, ssl_session_fetch,
--                     ssl_client_hello, preread), else libcurl (init,
--                     init_worker, set, header/body filter, log, balancer,
--                     exit_worker, ...); libcurl too when the client has a
--                     proxy, which the cosocket transport does not speak.
--   "curl"            always libcurl (blocks the nginx worker meanwhile).
--   "cosocket"        always cosockets; raises where that is impossible.
-- The helpers (list, plan, sync, ...) call client:request by method
-- lookup, so they take the same path.
--
-- Under nginx the wrappers also log, once per worker (ngx.WARN), what a
-- user would not otherwise notice: a call that falls back to blocking
-- libcurl, and ca_file / ca_path that cosockets cannot apply; and a
-- missing credential's message says how nginx passes the environment.
local _M = {}

local ngx = ngx -- luacheck: globals ngx
local type, setmetatable, require = type, setmetatable, require
local find = string.find

-- Raises at the user's line (not inside cfiam), and C calls made from here
-- re-raise there too: args.raise and args.call, one rule for every helper.
local raise, call = require("cfiam.args").raise, require("cfiam.args").call

-- Logs msg at ngx.WARN once per worker for each key (the master, where
-- init_by_lua runs, is another process: its flag is not the workers').
local warned = {}
local function warn_once(key, msg)
  local pid = ngx.worker.pid()
  if warned[key] == pid then return end
  warned[key] = pid
  ngx.log(ngx.WARN, msg, " (logged once per worker)")
end

-- The phases in which ngx.socket.tcp can be used (lua-nginx-module docs,
-- "ngx.socket.tcp": context).
local COSOCKET_PHASES = {
  rewrite = true, server_rewrite = true, access = true, content = true,
  timer = true, ssl_cert = true, ssl_session_fetch = true,
  ssl_client_hello = true, preread = true,
}
_M.COSOCKET_PHASES = COSOCKET_PHASES

-- client -> its core.config() table; the settings never change after new().
local configs = setmetatable({}, { __mode = "k" })

local function config_of(client)
  local cfg = configs[client]
  if not cfg then
    cfg = require("cfiam.core").config(client) -- raises on a closed client or a non-client
    configs[client] = cfg
  end
  return cfg
end
_M.config_of = config_of

--- Whether this call goes over cosockets (true) or libcurl (false).
-- Raises, at the user's line, when transport = "cosocket" is forced where
-- cosockets cannot run.
-- @param client a cfiam client
function _M.use_cosocket(client)
  local cfg = config_of(client)
  local mode = cfg.transport or "auto"
  if mode == "curl" then return false end
  local phase = ngx.get_phase()
  local can = COSOCKET_PHASES[phase] == true
  if mode == "cosocket" then
    if not can then
      raise("cfiam: transport \"cosocket\" is not available in the nginx '"
        .. phase .. "' phase (cosockets work in rewrite, access, content, "
        .. "timer and ssl_cert phases); use transport \"auto\" to fall back "
        .. "to libcurl there")
    end
    if cfg.proxy then
      raise("cfiam: transport \"cosocket\" does not support the proxy "
        .. "option; use transport \"auto\" or \"curl\"")
    end
    return true
  end
  if not can then
    warn_once(phase, "cfiam: no cosockets in the nginx '" .. phase .. "' phase: "
      .. "calls there use libcurl, which blocks the worker until they end")
  end
  return can and not cfg.proxy
end

local ENV_HINT = "; under nginx, workers see only the environment "
  .. "variables that nginx.conf names with the env directive (env "
  .. "CLOUDFLARE_API_TOKEN;)"

-- Adds the nginx hint to a missing-credential error; passes results on.
local function hinted(res, err)
  if res == nil and type(err) == "table" and err.kind == "invalid_argument"
      and type(err.message) == "string"
      and find(err.message, "no credentials", 1, true) then
    err.message = err.message .. ENV_HINT
  end
  return res, err
end

--- Installs the transport choice on the client methods.
-- Called once by cfiam.extend after the helpers are attached.
-- @param M the module table
-- @param methods the client methods table (the __index of clients)
function _M.install(M, methods) -- luacheck: ignore M
  if type(ngx) ~= "table" or type(ngx.get_phase) ~= "function"
      or type(ngx.socket) ~= "table" then
    return -- plain Lua: the C methods stay, zero overhead
  end
  local c_request, c_update = methods.request, methods.update_members
  local use_cosocket = _M.use_cosocket
  local cosocket -- loaded on first use

  -- The cosocket module when this call goes over cosockets, else nil
  -- (after counting a libcurl call in the shared budget).
  local function route(client)
    local cfg = config_of(client)
    if use_cosocket(client) then
      if cfg.ca_file or cfg.ca_path then
        warn_once("ca", "cfiam: the ca_file and ca_path options apply to "
          .. "libcurl only; cosockets verify certificates against "
          .. "lua_ssl_trusted_certificate")
      end
      cosocket = cosocket or require("cfiam.cosocket")
      return cosocket
    end
    if cfg.shared_dict then
      cosocket = cosocket or require("cfiam.cosocket")
      cosocket.budget_count(client, cfg)
    end
  end

  local function request(client, method, path, opts)
    local cos = route(client)
    if cos then return hinted(cos.request(client, method, path, opts)) end
    return hinted(call(c_request, client, method, path, opts))
  end

  local function update_members(client, account, group, ids, opts)
    local cos = route(client)
    if cos then
      return hinted(cos.update_members(client, account, group, ids, opts))
    end
    return hinted(call(c_update, client, account, group, ids, opts))
  end

  local c_many = methods.request_many
  local function request_many(client, calls, opts)
    if use_cosocket(client, 2) then
      cosocket = cosocket or require("cfiam.cosocket")
      return cosocket.request_many(client, calls, opts)
    end
    if configs[client].shared_dict and type(calls) == "table" then
      cosocket = cosocket or require("cfiam.cosocket")
      for _ = 1, #calls do cosocket.budget_count(client, configs[client]) end
    end
    return call(c_many, client, calls, opts)
  end

  methods.request = request
  methods.update_members = update_members
  methods.request_many = request_many
end

return _M
