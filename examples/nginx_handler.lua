--- examples/nginx_handler.lua: an internal endpoint that replaces or syncs
-- the members of a Cloudflare user group, for content_by_lua_file (see
-- examples/nginx.conf).
--
--   POST /cfiam/groups/<group id or name>/members
--   { "members": ["ana@example.com", "4f5f0c14a2a41d5063dd301b2f829f04", ...],
--     "mode": "sync" | "replace",        -- default "sync"
--     "dry_run": false, "allow_empty": false, "max_removals": 10 }
--
-- mode "sync" computes a plan against a complete listing and writes its
-- difference (a POST of the additions, a DELETE per removal: nobody the
-- plan does not remove is removed), refusing (409, kind "guard") to
-- remove more than max_removals members or to empty the group unless
-- allowed; the answer carries the plan. mode "replace" resolves e-mails
-- and sends the PUT as is (no guard beyond allow_empty); the answer
-- carries the new members. With dry_run, either mode only answers the
-- plan and writes nothing.
-- Answers are JSON: { "ok": true, ... } or { "ok": false, "error": {...} };
-- lists are JSON arrays, empty ones included.
--
-- The account comes from the nginx variable $cfiam_account, credentials
-- and base URL from the environment (CLOUDFLARE_API_TOKEN, ...; nginx
-- passes them to workers only when nginx.conf names them with `env`).
-- Runs in the content phase, so every cfiam call goes over cosockets and
-- the worker keeps serving other requests meanwhile.
local cjson = require("cjson.safe").new()
local cfiam = require("cfiam")

local ngx = ngx -- luacheck: globals ngx

-- HTTP status for each error kind.
local STATUS = {
  invalid_argument = 400, guard = 409, not_found = 404, rate_limited = 429,
  drift = 409, incomplete = 502, auth = 502, permission = 502, api = 502,
  server = 502, timeout = 504, network = 502, tls = 502,
  invalid_response = 502,
}

-- JSON with every empty table written as [] (lua-cjson writes {}): each
-- object in these answers has fields, so an empty table is a list.
local function encode(v)
  if type(v) ~= "table" then return cjson.encode(v) end
  if next(v) == nil then return "[]" end
  local out = {}
  if #v > 0 then
    for i = 1, #v do out[i] = encode(v[i]) end
    return "[" .. table.concat(out, ",") .. "]"
  end
  for k, x in pairs(v) do
    out[#out + 1] = cjson.encode(tostring(k)) .. ":" .. encode(x)
  end
  return "{" .. table.concat(out, ",") .. "}"
end

local function reply(status, doc)
  ngx.status = status
  ngx.header["Content-Type"] = "application/json"
  ngx.say(encode(doc))
  return ngx.exit(status)
end

local function fail(err)
  return reply(STATUS[err.kind] or 500, { ok = false, error = {
    kind = err.kind, message = err.message, status = err.status,
    ray_id = err.ray_id, errors = err.errors }, plan = err.plan })
end

if ngx.req.get_method() ~= "POST" then
  ngx.header["Allow"] = "POST"
  return reply(405, { ok = false, error = { kind = "invalid_argument",
    message = "use POST" } })
end

ngx.req.read_body()
local body = ngx.req.get_body_data() -- nil when nginx spooled it to a file
local req = body and cjson.decode(body)
-- An array only: a JSON object's keys are no list (the helpers raise on it).
local function is_array(t)
  if type(t) ~= "table" then return false end
  local n = #t
  for k in pairs(t) do
    if type(k) ~= "number" or k < 1 or k > n or k % 1 ~= 0 then return false end
  end
  return true
end
if type(req) ~= "table" or not is_array(req.members) then
  return reply(400, { ok = false, error = { kind = "invalid_argument",
    message = "expected a JSON object with a \"members\" array" } })
end
for i, m in ipairs(req.members) do
  if type(m) ~= "string" then
    return reply(400, { ok = false, error = { kind = "invalid_argument",
      message = "members[" .. i .. "] must be a string (id or e-mail)" } })
  end
end

local account = ngx.var.cfiam_account
-- A client per request is cheap: under cosockets, connections are reused
-- through nginx's pool, not through the client.
-- With `lua_shared_dict cfiam` declared, workers share a rate budget.
local client = cfiam.new{ shared_dict = ngx.shared.cfiam and "cfiam" or nil }

local group = ngx.var.cfiam_group
if not cfiam.is_id(group) then -- a name: find its id
  local g, err = client:find_group(account, ngx.unescape_uri(group))
  if not g then return fail(err) end
  group = g.id
end

local mode = req.mode or "sync"
if mode ~= "sync" and mode ~= "replace" then
  return reply(400, { ok = false, error = { kind = "invalid_argument",
    message = "mode must be \"sync\" or \"replace\"" } })
end
local dry_run = req.dry_run == true
if mode == "sync" then
  local plan, err = client:sync_members(account, group, req.members, {
    dry_run = dry_run, allow_empty = req.allow_empty == true,
    max_removals = tonumber(req.max_removals) })
  if not plan then return fail(err) end
  return reply(200, { ok = true, group = group, dry_run = dry_run,
    plan = plan })
elseif dry_run then -- replace, planned only: what the PUT would change
  if #req.members == 0 and req.allow_empty ~= true then
    return reply(400, { ok = false, error = { kind = "invalid_argument",
      message = "an empty members list empties the group: set allow_empty" } })
  end
  local plan, err = client:plan_members(account, group, req.members)
  if not plan then return fail(err) end
  return reply(200, { ok = true, group = group, dry_run = true, plan = plan })
else -- replace
  -- update_members takes ids; resolve the e-mail addresses first
  local ids, emails = {}, {}
  for _, m in ipairs(req.members) do
    if cfiam.is_id(m) then ids[#ids + 1] = m else emails[#emails + 1] = m end
  end
  if #emails > 0 then
    local found, err = client:resolve_members(account, emails)
    if not found then return fail(err) end
    for _, e in ipairs(emails) do ids[#ids + 1] = found[e].id end
  end
  local members, err = client:update_members(account, group, ids,
    { allow_empty = req.allow_empty == true })
  if not members then return fail(err) end
  return reply(200, { ok = true, group = group, dry_run = false,
    members = members })
end
