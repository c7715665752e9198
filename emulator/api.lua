-- emulator/api.lua: state and routes of the emulated Cloudflare IAM
-- user-groups API (everything under /client/v4).
--
-- Routes (a = account id, g = user group id, m = account member id):
--   GET    /accounts/{a}/members                        list account members
--   GET    /accounts/{a}/iam/user_groups                list groups
--   POST   /accounts/{a}/iam/user_groups                create group
--   GET    /accounts/{a}/iam/user_groups/{g}            group details
--   PUT    /accounts/{a}/iam/user_groups/{g}            update group
--   DELETE /accounts/{a}/iam/user_groups/{g}            delete group -> {id}
--   GET    /accounts/{a}/iam/user_groups/{g}/members    list group members
--   POST   /accounts/{a}/iam/user_groups/{g}/members    add members
--   PUT    /accounts/{a}/iam/user_groups/{g}/members    replace members
--   GET    /accounts/{a}/iam/user_groups/{g}/members/{m}  detailed member
--   DELETE /accounts/{a}/iam/user_groups/{g}/members/{m}  remove member
--
-- Checks, in this order, and the answers they give:
--   path outside /client/v4/, unknown route or method
--                        404  7000 "No route for that URI"
--   an id in the path that is not 32 hex characters (either case)
--                        400  7003 "Could not route to <path without
--                             /client/v4>, perhaps your object identifier is
--                             invalid?" + 7000 "No route for that URI"
--   no Authorization and not both X-Auth-Email and X-Auth-Key
--                        401  9106 "Missing X-Auth-Key, X-Auth-Email or
--                             Authorization headers"
--   unknown token / unknown email+key pair (or a non-Bearer Authorization)
--                        401 10000 "Authentication error"
--   token whose `accounts` list lacks the account, or read_only token doing
--   anything but GET/HEAD
--                        403 10000 "Authentication error"
--   unknown account      404  1003 "Account not found"
--   unknown group        404  1003 "User group not found"
--   member not in group (GET/DELETE .../members/{m})
--                        404  1003 "Member not found in user group"
--   bad query parameter (page < 1, per_page out of range, non-numbers,
--   direction not asc/desc, bad status/order on account members)
--                        400  1004 "Invalid query parameter: ..."
--   body on POST/PUT without Content-Type application/json (parameters such
--   as "; charset=utf-8" allowed)
--                        415  6003 "Invalid request headers" with
--                             error_chain [{6105, "Invalid Content-Type
--                             header, valid values are application/json"}]
--   body that is not JSON
--                        400  6007 "Malformed JSON in request body"
--   body of the wrong shape (members: not an array, item not an object, id
--   missing or not 32 hex; groups: not an object, name missing/empty/not a
--   string, policies not an array)
--                        400  1001 "Invalid request body: ..."
--   member id (body of POST/PUT members) that is not a member of the account
--                        400  1002 "Member <id> is not a member of this
--                             account" (one error per unknown id, body order)
--   POST group / PUT group with a name another group of the account has
--                        400  1005 "A user group named '<name>' already exists"
--   any write (PUT/DELETE group, POST/PUT/DELETE members) on a group seeded
--   with "scim": true (provisioned by SCIM, read-only at Cloudflare)
--                        400  1010 "User group is provisioned by SCIM and
--                             cannot be modified" (code and wording are the
--                             emulator's: no public source gives the API's)
-- Ids are compared exactly (an upper-case id passes the format check but is
-- not found).  Nothing is changed when a request fails.
--
-- Account members: default order user.email, direction asc; status filter.
-- Lists: result_info = { count = items on this page, page, per_page,
-- total_count = size of the whole collection WITHOUT search parameters
-- (all groups of the account / all members of the group / all members of
-- the account), as the API documents it }.  A page past the end is a 200
-- with an empty result.
-- Group members are sorted by e-mail (case-insensitive, then id); groups by
-- name (case-insensitive, then id).
-- POST/PUT .../members answer with the whole resulting member list of the
-- group ([{id,email,status}] sorted by e-mail, no result_info).

local cjson = require("cjson").new()
local faults = require("faults")

local M = {}

local PREFIX = "/client/v4"
local null = cjson.null
M.null = null

---------------------------------------------------------------------------
-- JSON
---------------------------------------------------------------------------

-- Tables carrying this metatable are always encoded as objects ({} when
-- empty); other tables are arrays when empty or when t[1] ~= nil.
local OBJECT = { __jsontype = "object" }
local function object(t) return setmetatable(t or {}, OBJECT) end
M.object = object

local ESC = { ['"'] = '\\"', ['\\'] = '\\\\', ['\b'] = '\\b', ['\f'] = '\\f',
              ['\n'] = '\\n', ['\r'] = '\\r', ['\t'] = '\\t' }
local function esc(c) return ESC[c] or string.format("\\u%04x", c:byte()) end

local function encode_value(v, out)
  local t = type(v)
  if t == "string" then
    out[#out + 1] = '"' .. v:gsub('[%c"\\]', esc) .. '"'
  elseif t == "number" then
    if v ~= v or v == math.huge or v == -math.huge then
      out[#out + 1] = "null"
    elseif v == math.floor(v) and v > -2^53 and v < 2^53 then
      out[#out + 1] = string.format("%d", v)
    else
      out[#out + 1] = string.format("%.17g", v)
    end
  elseif t == "boolean" then
    out[#out + 1] = tostring(v)
  elseif t == "table" then
    if getmetatable(v) ~= OBJECT and (v[1] ~= nil or next(v) == nil) then
      out[#out + 1] = "["
      for i = 1, #v do
        if i > 1 then out[#out + 1] = "," end
        encode_value(v[i], out)
      end
      out[#out + 1] = "]"
    else
      local keys = {}
      for k in pairs(v) do keys[#keys + 1] = tostring(k) end
      table.sort(keys)
      out[#out + 1] = "{"
      for i, k in ipairs(keys) do
        if i > 1 then out[#out + 1] = "," end
        encode_value(k, out)
        out[#out + 1] = ":"
        local val = v[k]
        if val == nil then val = v[tonumber(k)] end
        encode_value(val, out)
      end
      out[#out + 1] = "}"
    end
  else -- nil, cjson.null and anything else
    out[#out + 1] = "null"
  end
end

function M.encode(v)
  local out = {}
  encode_value(v, out)
  return table.concat(out)
end

-- Returns the decoded value, or nil + message.
function M.decode(text)
  local ok, v = pcall(cjson.decode, text)
  if not ok then return nil, tostring(v) end
  return v
end

---------------------------------------------------------------------------
-- Helpers
---------------------------------------------------------------------------

local function is_id(s) return type(s) == "string" and #s == 32 and not s:find("[^%x]") end
M.is_id = is_id

local function tbl(x) if type(x) == "table" then return x end return {} end

local function now_iso() return os.date("!%Y-%m-%dT%H:%M:%SZ") end

-- Deterministic user id for a member id: each hex digit + 1 (mod 16).
local HEXNEXT = {}
do
  local digits = "0123456789abcdef"
  for i = 1, 16 do
    local c, n = digits:sub(i, i), digits:sub(i % 16 + 1, i % 16 + 1)
    HEXNEXT[c], HEXNEXT[c:upper()] = n, n
  end
end
function M.user_id_for(member_id) return (member_id:gsub("%x", HEXNEXT)) end

local function unescape(s)
  s = s:gsub("+", " ")
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

local function parse_query(raw)
  local q = {}
  for pair in (raw or ""):gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    q[unescape(k)] = unescape(v)
  end
  return q
end

local function ok_doc(result, info)
  return { success = true, errors = {}, messages = {}, result = result,
           result_info = info }
end

local function fail_doc(errors)
  return { success = false, errors = errors, messages = {}, result = null }
end

-- A handler's answer: { status = N, doc = envelope }.
local function ok(result, info) return { status = 200, doc = ok_doc(result, info) } end

local function fail(status, code, message, extra)
  local e = object({ code = code, message = message })
  if extra then for k, v in pairs(extra) do e[k] = v end end
  return { status = status, doc = fail_doc({ e }) }
end

local function fail_many(status, errors)
  local list = {}
  for i, e in ipairs(errors) do list[i] = object({ code = e[1], message = e[2] }) end
  return { status = status, doc = fail_doc(list) }
end

local function lower_less(ka, kb, ia, ib)
  if ka ~= kb then return ka < kb end
  return ia < ib
end

-- Integer query parameter within [min, max]; returns value or nil + answer.
local function int_param(q, name, default, min, max)
  local raw = q[name]
  if raw == nil or raw == "" then return default end
  local n = tonumber(raw)
  if not n or n ~= math.floor(n) or n < min or (max and n > max) then
    return nil, fail(400, 1004, string.format(
      "Invalid query parameter: %s must be an integer%s", name,
      max and string.format(" between %d and %d", min, max)
          or string.format(" >= %d", min)))
  end
  return n
end

local function direction_param(q)
  local d = q.direction
  if d == nil or d == "" then return "asc" end
  d = d:lower()
  if d ~= "asc" and d ~= "desc" then
    return nil, fail(400, 1004, "Invalid query parameter: direction must be asc or desc")
  end
  return d
end

-- page, per_page (default and range per endpoint) and direction; returns
-- the three, or nil + answer.
local function paging_params(q, default_pp, min_pp, max_pp)
  local page, err = int_param(q, "page", 1, 1)
  if not page then return nil, err end
  local per_page
  per_page, err = int_param(q, "per_page", default_pp, min_pp, max_pp)
  if not per_page then return nil, err end
  local dir
  dir, err = direction_param(q)
  if not dir then return nil, err end
  return page, per_page, dir
end

-- One page of `list` (already sorted ascending); desc walks it backwards.
-- `filter(item)` (optional) keeps matching items only.
local function paginate(list, page, per_page, direction, filter, total, shape)
  local matched = list
  if filter then
    matched = {}
    for _, item in ipairs(list) do
      if filter(item) then matched[#matched + 1] = item end
    end
  end
  local n = #matched
  local items = {}
  local first = (page - 1) * per_page + 1
  for i = first, math.min(n, first + per_page - 1) do
    local item = (direction == "desc") and matched[n - i + 1] or matched[i]
    items[#items + 1] = shape(item)
  end
  return ok(items, object({ count = #items, page = page, per_page = per_page,
                            total_count = total or #list }))
end

---------------------------------------------------------------------------
-- State
---------------------------------------------------------------------------

local App = {}
App.__index = App

function M.new()
  local self = setmetatable({ faults = faults.new(), id_counter = 0,
                              generation = 0 }, App)
  self:reset({})
  return self
end

-- Replaces the whole state from a seed (format: see main.lua).
-- Clears faults, recorded requests and stats.
-- Returns true, or nil + message (the state is then unchanged).
function App:reset(seed)
  if type(seed) ~= "table" then return nil, "seed must be an object" end
  local st = { tokens = {}, keys = {}, accounts = {} }
  for i, t in ipairs(tbl(seed.tokens)) do
    if type(t) ~= "table" or type(t.token) ~= "string" or t.token == "" then
      return nil, "tokens[" .. i .. "]: token must be a non-empty string"
    end
    local rec = { token = t.token, read_only = t.read_only == true }
    if type(t.accounts) == "table" then
      rec.accounts, rec.account_list = {}, {}
      for _, a in ipairs(t.accounts) do
        rec.accounts[a] = true
        rec.account_list[#rec.account_list + 1] = a
      end
    end
    st.tokens[t.token] = rec
  end
  for i, k in ipairs(tbl(seed.keys)) do
    if type(k) ~= "table" or type(k.email) ~= "string" or type(k.key) ~= "string" then
      return nil, "keys[" .. i .. "]: email and key must be strings"
    end
    st.keys[k.email:lower() .. "\0" .. k.key] = { email = k.email, key = k.key }
  end
  local stamp = now_iso()
  for aid, a in pairs(tbl(seed.accounts)) do
    if not is_id(aid) then return nil, "account id '" .. tostring(aid) .. "' is not 32 hex" end
    local acct = { id = aid, members = {}, member_count = 0, groups = {}, sorted = {} }
    for i, m in ipairs(tbl(type(a) == "table" and a.members)) do
      if type(m) ~= "table" or not is_id(m.id) then
        return nil, aid .. ".members[" .. i .. "]: id must be 32 hex"
      end
      if type(m.email) ~= "string" then
        return nil, aid .. ".members[" .. i .. "]: email must be a string"
      end
      if acct.members[m.id] then return nil, "duplicate member id " .. m.id end
      local local_part = m.email:match("^([^@]*)") or m.email
      acct.members[m.id] = {
        id = m.id, email = m.email, status = m.status or "accepted",
        user_id = m.user_id or M.user_id_for(m.id),
        first_name = m.first_name or local_part,
        last_name = m.last_name or "Example",
        created_at = m.created_at or stamp,
      }
      if acct.members[m.id].user_id == m.id then
        return nil, "member " .. m.id .. ": user_id must differ from the member id"
      end
      acct.member_count = acct.member_count + 1
    end
    for i, g in ipairs(tbl(type(a) == "table" and a.groups)) do
      if type(g) ~= "table" or type(g.name) ~= "string" then
        return nil, aid .. ".groups[" .. i .. "]: name must be a string"
      end
      local gid = g.id or self:new_id(acct)
      if not is_id(gid) then return nil, aid .. ".groups[" .. i .. "]: id must be 32 hex" end
      if acct.groups[gid] then return nil, "duplicate group id " .. gid end
      local group = { id = gid, name = g.name, created_on = g.created_on or stamp,
                      modified_on = g.modified_on or stamp, scim = g.scim == true,
                      policies = type(g.policies) == "table" and g.policies or {},
                      members = {}, count = 0 }
      for _, mid in ipairs(tbl(g.members)) do
        if not acct.members[mid] then
          return nil, "group " .. g.name .. ": " .. tostring(mid) .. " is not a member of account " .. aid
        end
        if not group.members[mid] then
          group.members[mid] = true
          group.count = group.count + 1
        end
      end
      acct.groups[gid] = group
    end
    st.accounts[aid] = acct
  end
  self.state = st
  self.faults:clear()
  self.requests = {}
  self.stats = { connections = 0, tls_handshakes = 0, requests = 0 }
  self.generation = self.generation + 1
  if type(seed.faults) == "table" then
    local n, err = self.faults:add(seed.faults)
    if not n then return nil, err end
  end
  return true
end

-- A fresh 32-hex id, unique among the account's groups.
function App:new_id(acct)
  repeat
    self.id_counter = self.id_counter + 1
    local id = string.format("9e0e0e0e%024x", self.id_counter)
    if not acct.groups[id] then return id end
  until false
end

-- Members of the account sorted by `key` (cached; members never change
-- between resets).
local MEMBER_ORDERS = {
  ["user.email"] = function(m) return m.email:lower() end,
  ["user.first_name"] = function(m) return m.first_name:lower() end,
  ["user.last_name"] = function(m) return m.last_name:lower() end,
  ["status"] = function(m) return m.status end,
}
local function account_members_sorted(acct, order)
  local cached = acct.sorted[order]
  if cached then return cached end
  local keyf = MEMBER_ORDERS[order]
  local list, keys = {}, {}
  for _, m in pairs(acct.members) do
    list[#list + 1] = m
    keys[m] = keyf(m)
  end
  table.sort(list, function(a, b) return lower_less(keys[a], keys[b], a.id, b.id) end)
  acct.sorted[order] = list
  return list
end

-- Members of a group sorted by e-mail (cached until the group changes).
local function group_members_sorted(acct, g)
  if g.sorted then return g.sorted end
  local list, keys = {}, {}
  for mid in pairs(g.members) do
    local m = acct.members[mid]
    list[#list + 1] = m
    keys[m] = m.email:lower()
  end
  table.sort(list, function(a, b) return lower_less(keys[a], keys[b], a.id, b.id) end)
  g.sorted = list
  return list
end

local function groups_sorted(acct)
  if acct.group_list then return acct.group_list end
  local list = {}
  for _, g in pairs(acct.groups) do list[#list + 1] = g end
  table.sort(list, function(a, b) return lower_less(a.name:lower(), b.name:lower(), a.id, b.id) end)
  acct.group_list = list
  return list
end

local function member_short(m)
  return object({ id = m.id, email = m.email, status = m.status })
end

local function user_of(m)
  return object({ id = m.user_id, email = m.email, first_name = m.first_name,
                  last_name = m.last_name })
end

local function group_view(g)
  return object({ id = g.id, name = g.name, created_on = g.created_on,
                  modified_on = g.modified_on, policies = g.policies })
end

local function group_member_list(acct, g)
  local out = {}
  for i, m in ipairs(group_members_sorted(acct, g)) do out[i] = member_short(m) end
  return out
end

-- The whole state, in the seed format (reset(dump()) restores it).
function App:dump()
  local st = self.state
  local tokens, keys, accounts = {}, {}, object()
  local names = {}
  for t in pairs(st.tokens) do names[#names + 1] = t end
  table.sort(names)
  for _, t in ipairs(names) do
    local rec = st.tokens[t]
    tokens[#tokens + 1] = object({ token = t, read_only = rec.read_only,
                                   accounts = rec.account_list })
  end
  names = {}
  for k in pairs(st.keys) do names[#names + 1] = k end
  table.sort(names)
  for _, k in ipairs(names) do
    keys[#keys + 1] = object({ email = st.keys[k].email, key = st.keys[k].key })
  end
  for aid, acct in pairs(st.accounts) do
    local members, groups = {}, {}
    for _, m in ipairs(account_members_sorted(acct, "user.email")) do
      members[#members + 1] = object({ id = m.id, email = m.email, status = m.status,
        user_id = m.user_id, first_name = m.first_name, last_name = m.last_name,
        created_at = m.created_at })
    end
    for _, g in ipairs(groups_sorted(acct)) do
      local ids = {}
      for i, m in ipairs(group_members_sorted(acct, g)) do ids[i] = m.id end
      local v = group_view(g)
      v.members = ids
      if g.scim then v.scim = true end
      groups[#groups + 1] = v
    end
    accounts[aid] = object({ members = members, groups = groups })
  end
  return object({ tokens = tokens, keys = keys, accounts = accounts })
end

---------------------------------------------------------------------------
-- Request bodies
---------------------------------------------------------------------------

local function json_body(req)
  local ct = (req.headers["content-type"] or ""):lower()
  if not (ct:match("^%s*application/json%s*$") or ct:match("^%s*application/json%s*;")) then
    return nil, fail(415, 6003, "Invalid request headers", { error_chain = {
      object({ code = 6105, message = "Invalid Content-Type header, valid values are application/json" }) } })
  end
  local v = M.decode(req.body)
  if v == nil then return nil, fail(400, 6007, "Malformed JSON in request body") end
  return v
end

local function first_char(body) return body:match("^%s*(.)") end

-- The member ids of a POST/PUT .../members body (deduplicated, body order).
local function member_ids_body(req, acct)
  local v, err = json_body(req)
  if v == nil then return nil, err end
  if type(v) ~= "table" or first_char(req.body) ~= "[" then
    return nil, fail(400, 1001, 'Invalid request body: expected a JSON array of objects like {"id":"<member id>"}')
  end
  local ids, seen = {}, {}
  for i, item in ipairs(v) do
    if type(item) ~= "table" or item[1] ~= nil then
      return nil, fail(400, 1001, string.format("Invalid request body: item %d is not an object", i - 1))
    end
    if not is_id(item.id) then
      return nil, fail(400, 1001, string.format(
        "Invalid request body: item %d: id must be a 32-character hexadecimal string", i - 1))
    end
    if not seen[item.id] then
      seen[item.id] = true
      ids[#ids + 1] = item.id
    end
  end
  if #v == 0 and next(v) ~= nil then   -- e.g. {"0":...} decoded oddly
    return nil, fail(400, 1001, "Invalid request body: expected a JSON array")
  end
  local unknown = {}
  for _, id in ipairs(ids) do
    if not acct.members[id] then
      unknown[#unknown + 1] = { 1002, "Member " .. id .. " is not a member of this account" }
    end
  end
  if #unknown > 0 then return nil, fail_many(400, unknown) end
  return ids
end

local function check_policies(p)
  if p == nil then return {} end
  if type(p) ~= "table" or (next(p) ~= nil and p[1] == nil) then
    return nil, fail(400, 1001, "Invalid request body: policies must be an array")
  end
  for i, pol in ipairs(p) do
    if type(pol) ~= "table" or (pol.access ~= "allow" and pol.access ~= "deny")
       or type(pol.permission_groups) ~= "table" or type(pol.resource_groups) ~= "table" then
      return nil, fail(400, 1001, string.format(
        "Invalid request body: policies[%d] needs access (allow/deny), permission_groups and resource_groups", i - 1))
    end
  end
  return p
end

local function group_body(req)
  local v, err = json_body(req)
  if v == nil then return nil, err end
  if type(v) ~= "table" or first_char(req.body) ~= "{" then
    return nil, fail(400, 1001, "Invalid request body: expected a JSON object")
  end
  return v
end

local function name_taken(acct, name, except)
  for _, g in pairs(acct.groups) do
    if g.name == name and g ~= except then return true end
  end
  return false
end

local function touch(acct, g)
  g.modified_on = now_iso()
  g.sorted = nil
  acct.group_list = nil
end

---------------------------------------------------------------------------
-- Handlers: h(self, ctx) -> { status, doc }
-- ctx = { req, q (query), acct, a, g, m (ids from the path) }
---------------------------------------------------------------------------

local H = {}

function H.list_account_members(_, c)
  local page, per_page, dir = paging_params(c.q, 20, 5, 50)
  if not page then return per_page end
  local order = (c.q.order ~= nil and c.q.order ~= "") and c.q.order or "user.email"
  if not MEMBER_ORDERS[order] then
    return fail(400, 1004, "Invalid query parameter: order must be one of "
                           .. "user.first_name, user.last_name, user.email, status")
  end
  local status = c.q.status
  if status == "" then status = nil end
  if status and status ~= "accepted" and status ~= "pending" and status ~= "rejected" then
    return fail(400, 1004, "Invalid query parameter: status must be accepted, pending or rejected")
  end
  local filter = status and function(m) return m.status == status end
  return paginate(account_members_sorted(c.acct, order), page, per_page, dir, filter,
                  c.acct.member_count, function(m)
    return object({ id = m.id, email = m.email, status = m.status, user = user_of(m),
                    roles = {}, policies = {} })
  end)
end

function H.list_groups(_, c)
  local page, per_page, dir = paging_params(c.q, 100, 1, 500)
  if not page then return per_page end
  local id, name, fuzzy = c.q.id, c.q.name, c.q.fuzzyName
  if id == "" then id = nil end
  if name == "" then name = nil end
  fuzzy = (fuzzy and fuzzy ~= "") and fuzzy:lower() or nil
  local filter
  if id or name or fuzzy then
    filter = function(g)
      return (not id or g.id == id) and (not name or g.name == name)
         and (not fuzzy or g.name:lower():find(fuzzy, 1, true) ~= nil)
    end
  end
  local list = groups_sorted(c.acct)
  return paginate(list, page, per_page, dir, filter, #list, group_view)
end

function H.create_group(self, c)
  local v, err = group_body(c.req)
  if not v then return err end
  if type(v.name) ~= "string" or v.name == "" then
    return fail(400, 1001, "Invalid request body: name is required (non-empty string)")
  end
  local pol
  pol, err = check_policies(v.policies)
  if not pol then return err end
  if name_taken(c.acct, v.name) then
    return fail(400, 1005, "A user group named '" .. v.name .. "' already exists")
  end
  local stamp = now_iso()
  local g = { id = self:new_id(c.acct), name = v.name, created_on = stamp,
              modified_on = stamp, policies = pol, members = {}, count = 0 }
  c.acct.groups[g.id] = g
  c.acct.group_list = nil
  return ok(group_view(g))
end

function H.get_group(_, c) return ok(group_view(c.group)) end

function H.update_group(_, c)
  local v, err = group_body(c.req)
  if not v then return err end
  if v.name ~= nil and (type(v.name) ~= "string" or v.name == "") then
    return fail(400, 1001, "Invalid request body: name must be a non-empty string")
  end
  local pol
  if v.policies ~= nil then
    pol, err = check_policies(v.policies)
    if not pol then return err end
  end
  if v.name and name_taken(c.acct, v.name, c.group) then
    return fail(400, 1005, "A user group named '" .. v.name .. "' already exists")
  end
  if v.name then c.group.name = v.name end
  if pol then c.group.policies = pol end
  touch(c.acct, c.group)
  return ok(group_view(c.group))
end

function H.delete_group(_, c)
  c.acct.groups[c.group.id] = nil
  c.acct.group_list = nil
  return ok(object({ id = c.group.id }))
end

function H.list_group_members(_, c)
  local page, per_page, dir = paging_params(c.q, 100, 1, 500)
  if not page then return per_page end
  local fuzzy = c.q.fuzzyEmail
  local filter
  if fuzzy and fuzzy ~= "" then
    fuzzy = fuzzy:lower()
    filter = function(m) return m.email:lower():find(fuzzy, 1, true) ~= nil end
  end
  return paginate(group_members_sorted(c.acct, c.group), page, per_page, dir, filter,
                  c.group.count, member_short)
end

function H.add_group_members(_, c)
  local ids, err = member_ids_body(c.req, c.acct)
  if not ids then return err end
  local g = c.group
  local changed = false
  for _, id in ipairs(ids) do
    if not g.members[id] then
      g.members[id] = true
      g.count = g.count + 1
      changed = true
    end
  end
  if changed then touch(c.acct, g) end
  return ok(group_member_list(c.acct, g))
end

function H.replace_group_members(_, c)
  local ids, err = member_ids_body(c.req, c.acct)
  if not ids then return err end
  local g = c.group
  g.members, g.count = {}, #ids
  for _, id in ipairs(ids) do g.members[id] = true end
  touch(c.acct, g)
  return ok(group_member_list(c.acct, g))
end

local function member_in_group(c)
  local m = c.acct.members[c.m]
  if not m or not c.group.members[c.m] then
    return nil, fail(404, 1003, "Member not found in user group")
  end
  return m
end

function H.get_group_member(_, c)
  local m, err = member_in_group(c)
  if not m then return err end
  return ok(object({ id = m.id, email = m.email, status = m.status,
                     created_at = m.created_at, user = user_of(m) }))
end

function H.remove_group_member(_, c)
  local m, err = member_in_group(c)
  if not m then return err end
  c.group.members[m.id] = nil
  c.group.count = c.group.count - 1
  touch(c.acct, c.group)
  return ok(member_short(m))
end

---------------------------------------------------------------------------
-- Routing
---------------------------------------------------------------------------

local ROUTES = {
  { { "accounts", ":a", "members" }, GET = H.list_account_members },
  { { "accounts", ":a", "iam", "user_groups" },
    GET = H.list_groups, POST = H.create_group },
  { { "accounts", ":a", "iam", "user_groups", ":g" },
    GET = H.get_group, PUT = H.update_group, DELETE = H.delete_group },
  { { "accounts", ":a", "iam", "user_groups", ":g", "members" },
    GET = H.list_group_members, POST = H.add_group_members, PUT = H.replace_group_members },
  { { "accounts", ":a", "iam", "user_groups", ":g", "members", ":m" },
    GET = H.get_group_member, DELETE = H.remove_group_member },
}

local function split(path)
  local segs = {}
  for seg in (path:sub(2) .. "/"):gmatch("([^/]*)/") do segs[#segs + 1] = seg end
  return segs
end

local function match_route(segs)
  for _, r in ipairs(ROUTES) do
    local pat = r[1]
    if #pat == #segs then
      local params, okm = {}, true
      for i, p in ipairs(pat) do
        if p:sub(1, 1) == ":" then
          params[p:sub(2)] = segs[i]
        elseif p ~= segs[i] then
          okm = false
          break
        end
      end
      if okm then return r, params end
    end
  end
end

local function authenticate(self, h)
  local authz, email, key = h["authorization"], h["x-auth-email"], h["x-auth-key"]
  if not authz and not (email and key) then
    return nil, fail(401, 9106, "Missing X-Auth-Key, X-Auth-Email or Authorization headers")
  end
  if authz then
    local tok = authz:match("^[Bb][Ee][Aa][Rr][Ee][Rr]%s+(%S+)%s*$")
    local rec = tok and self.state.tokens[tok]
    if rec then return rec end
  end
  if email and key and self.state.keys[email:lower() .. "\0" .. key] then
    return { read_only = false }
  end
  return nil, fail(401, 10000, "Authentication error")
end

-- The normal answer to an API request: { status, doc }.
function App:route(req)
  local no_route = fail(404, 7000, "No route for that URI")
  if req.path:sub(1, #PREFIX + 1) ~= PREFIX .. "/" then return no_route end
  local rel = req.path:sub(#PREFIX + 1)
  local route, p = match_route(split(rel))
  if not route then return no_route end
  local handler = route[req.method] or (req.method == "HEAD" and route.GET)
  if not handler then return no_route end
  for _, k in ipairs({ "a", "g", "m" }) do
    if p[k] and not is_id(p[k]) then
      return fail_many(400, {
        { 7003, "Could not route to " .. rel .. ", perhaps your object identifier is invalid?" },
        { 7000, "No route for that URI" } })
    end
  end
  local principal, err = authenticate(self, req.headers)
  if not principal then return err end
  if principal.accounts and not principal.accounts[p.a] then
    return fail(403, 10000, "Authentication error")
  end
  if principal.read_only and req.method ~= "GET" and req.method ~= "HEAD" then
    return fail(403, 10000, "Authentication error")
  end
  local acct = self.state.accounts[p.a]
  if not acct then return fail(404, 1003, "Account not found") end
  local c = { req = req, q = parse_query(req.query), acct = acct, a = p.a, g = p.g, m = p.m }
  if p.g then
    c.group = acct.groups[p.g]
    if not c.group then return fail(404, 1003, "User group not found") end
    if c.group.scim and req.method ~= "GET" and req.method ~= "HEAD" then
      return fail(400, 1010, "User group is provisioned by SCIM and cannot be modified")
    end
  end
  return handler(self, c)
end

---------------------------------------------------------------------------
-- Entry points used by main.lua
---------------------------------------------------------------------------

local function ray()
  return string.format("%08x%08x-EMU", math.random(0, 0x7fffffff), math.random(0, 0x7fffffff))
end

local function std_headers()
  return { { "Content-Type", "application/json" }, { "cf-ray", ray() } }
end
M.std_headers = std_headers

function App:on_handshake()
  self.stats.tls_handshakes = self.stats.tls_handshakes + 1
end

-- Handles one API request (faults included); returns a server response.
function App:handle(req, conn)
  local stats = self.stats
  stats.requests = stats.requests + 1
  if conn.api_generation ~= self.generation then
    conn.api_generation = self.generation
    stats.connections = stats.connections + 1
    conn.api_number = stats.connections
  end
  local headers = object()
  for k, v in pairs(req.headers) do headers[k] = v end
  self.requests[#self.requests + 1] = object({
    method = req.method, path = req.path, query = req.query, headers = headers,
    body = req.body, connection = conn.api_number, tls = conn.tls == true })

  local function normal(rule)
    local r = self:route(req)
    if rule and rule.result_null and r.doc.success then r.doc.result = null end
    if rule and rule.total_count and type(r.doc.result_info) == "table" then
      r.doc.result_info.total_count = rule.total_count
    end
    return { status = r.status, headers = std_headers(), body = M.encode(r.doc) }
  end
  -- Another client's removal: a DELETE of that member in the path's group.
  local function remove_member(id)
    local group = req.path:match("^(.-/user_groups/[^/]+)")
    if group then
      self:route({ method = "DELETE", path = group .. "/members/" .. id, query = "",
                   headers = req.headers, body = "" })
    end
  end
  local rule = self.faults:take(req.method, req.path, req.query)
  if not rule then return normal(nil) end
  return faults.respond(rule, req, {
    normal = normal,
    remove_member = remove_member,
    headers = std_headers,
    fail = function(_, code, message)
      return M.encode(fail_doc({ object({ code = code, message = message }) }))
    end,
  })
end

return M
