--- cfiam.groups: the user groups of an account: list, find, show, create,
-- update (rename, set policies) and delete.
--
-- Everything goes through client:request (GET/POST/PUT/DELETE
-- /accounts/{account}/iam/user_groups[/{id}]) and returns `nil, err` with
-- the core's error table. A filtered listing (name, fuzzy_name) is not
-- checked against total_count, which counts every group of the account.
--
-- `group` is an id or { name = "..." } in every helper that takes one
-- (these and the members helpers, through group_id below): a name costs one
-- filtered listing first. Kind added here: "conflict" (create or rename to
-- a name another group has; nothing written). (err.reason, "scim_managed"
-- or "member_not_eligible", is set by the C core on any API error whose
-- text tells.)
--
-- Caveats: the name check before a create or rename and the write are two
-- requests; a group created by someone else in between is refused by the
-- API itself (its own error, not kind "conflict").
local type, ipairs, pairs, tostring, error = type, ipairs, pairs, tostring, error
local format, lower, byte, gsub = string.format, string.lower, string.byte, string.gsub
local concat, sort = table.concat, table.sort
local floor, huge = math.floor, math.huge

local A = require("cfiam.args")
local P = require("cfiam.pager")

local _M = {}

local LIST_OPTS = { name = "string", fuzzy_name = "string", direction = "string",
  per_page = "number", max_pages = "number", concurrency = "number" }

local function list(client, account, opts)
  local err = A.check_paging(opts, P.GROUP_PAGE) or A.check_id(account, "account", client)
    or A.check_direction(opts.direction, client)
  if err then return nil, err end
  local path
  path, err = require("cfiam.core").path(client, "groups", account)
  if not path then return nil, err end
  local p = P.pager{ client = client, path = path,
    query = { name = opts.name, fuzzyName = opts.fuzzy_name, direction = opts.direction },
    filtered = opts.name ~= nil or opts.fuzzy_name ~= nil,
    per_page = opts.per_page or P.GROUP_PAGE, max_pages = opts.max_pages,
    concurrency = opts.concurrency, what = "the user groups of account " .. account }
  local groups
  groups, err = P.collect(p)
  if not groups then return nil, err end
  for _, g in ipairs(groups) do
    if type(g.name) ~= "string" then
      return nil, A.err("invalid_response", "listing the user groups of account "
        .. account .. ": a group has no string name")
    end
  end
  return groups
end

--- Lists the account's user groups, across all pages.
-- syntax: groups, err = client:list_groups(account [, opts])
-- opts: name (exact), fuzzy_name (substring), direction, per_page (1-500),
-- max_pages, concurrency (pages fetched at once after the first; default 1).
-- @return array of groups ({ id, name, created_on, modified_on, policies }),
--   or nil, err (kind "incomplete" as for list_members).
function _M.list_groups(client, account, opts)
  A.check_string(account, "account", "list_groups")
  opts = A.check_opts(opts, LIST_OPTS, "list_groups", client)
  return list(client, account, opts)
end

-- The groups named exactly `name` (the server's name filter is trusted for
-- speed, not for exactness): array, or nil, err.
local function named(client, account, name)
  local groups, err = list(client, account, { name = name })
  if not groups then return nil, err end
  local found = {}
  for _, g in ipairs(groups) do
    if g.name == name then found[#found + 1] = g end
  end
  return found
end

-- The one group named `name`, or nil, err (not_found, invalid_argument).
local function find_one(client, account, name)
  if name == "" then
    return nil, A.err("invalid_argument", "name is empty")
  end
  local found, err = named(client, account, name)
  if not found then return nil, err end
  if #found == 0 then
    return nil, A.err("not_found", format("no user group named %s in account %s",
      A.quote(name, client), account))
  end
  if #found > 1 then
    return nil, A.err("invalid_argument", format("%d user groups are named %s "
      .. "in account %s; use the group id", #found, A.quote(name, client), account),
      { groups = found })
  end
  return found[1]
end

--- Finds the one group with exactly this name.
-- syntax: group, err = client:find_group(account, name)
-- @return the group table, or nil, err: kind "not_found" when no group has
--   that name, "invalid_argument" when several do (err.groups lists them).
function _M.find_group(client, account, name)
  A.check_string(account, "account", "find_group")
  A.check_string(name, "name", "find_group")
  return find_one(client, account, name)
end

---------------------------------------------------------------------------
-- Internal: used by the members helpers and the command too. Names that
-- start with "_" are not made client methods (cfiam.extend).
---------------------------------------------------------------------------

--- Raises unless `group` is an id string or { name = string }.
local function check_group_arg(group, fname, client)
  if type(group) == "string" then return end
  if type(group) == "table" and type(group.name) == "string" then
    for k in pairs(group) do
      if k ~= "name" then
        A.raise(format("bad argument to '%s' (group: unknown field %s; expected "
          .. "an id or { name = ... })", fname, A.quote(k, client)))
      end
    end
    return
  end
  A.raise(format("bad argument to '%s' (group: id string or { name = string } "
    .. "expected, got %s)", fname, type(group)))
end

--- The group's id: `group` itself when it is a string (checked later, where
-- the path is built), or the id of the one group with that exact name.
-- Raises on a wrong type (the caller of `fname`); returns id or nil, err.
-- syntax: id, err = groups._group_id(client, account, group, fname)
function _M._group_id(client, account, group, fname)
  check_group_arg(group, fname, client)
  if type(group) == "string" then return group end
  local err = A.check_id(account, "account", client)
  if err then return nil, err end
  local g
  g, err = find_one(client, account, group.name)
  if not g then return nil, err end
  if type(g.id) ~= "string" then
    return nil, A.err("invalid_response", "the user group named " .. A.quote(group.name, client)
      .. " has no string id")
  end
  return g.id
end


--- How many members the group has (one request, per_page 1, read from
-- total_count; a full listing when the server gives none).
-- syntax: n, err = groups._member_count(client, account, id)
function _M._member_count(client, account, id)
  local path, err = require("cfiam.core").path(client, "group_members", account, id)
  if not path then return nil, err end
  local res, meta = client:request("GET", path,
    { query = { page = 1, per_page = 1 }, decode = "members" })
  if res == nil and type(meta) == "table" and meta.kind then return nil, meta end
  local info = type(meta) == "table" and meta.result_info
  local n = type(info) == "table" and tonumber(info.total_count)
  -- a page that lists a member outweighs a total_count of 0: a server may
  -- miscount, and this count guards members' access
  local listed = type(res) == "table" and #res or 0
  if n then return n > listed and n or listed end
  local p = P.pager{ client = client, path = path, decode = "members",
    per_page = P.GROUP_PAGE, what = "the members of group " .. id }
  local all
  all, err = P.collect(p)
  if not all then return nil, err end
  return #all
end

---------------------------------------------------------------------------
-- JSON bodies. Written here rather than with cjson: lua-cjson writes an
-- empty table as {} and escapes "/", while the API wants [] for an empty
-- list and the SDKs send "/" as it is. Keys are sorted (a stable body).
---------------------------------------------------------------------------

-- Keys whose value is a list even when it is empty.
local ARRAY_KEYS = { policies = true, permission_groups = true,
  resource_groups = true, objects = true }

local ESC = { ['"'] = '\\"', ['\\'] = '\\\\', ['\b'] = '\\b', ['\f'] = '\\f',
  ['\n'] = '\\n', ['\r'] = '\\r', ['\t'] = '\\t', ['\127'] = '\127' }
local function esc(c) return ESC[c] or format("\\u%04x", byte(c)) end

-- Appends the JSON text of v to out; returns nil, or a message naming
-- `where` for a value JSON cannot carry.
local function encode(v, key, where, out, depth)
  local t = type(v)
  if t == "string" then
    out[#out + 1] = '"' .. gsub(v, '[%c"\\]', esc) .. '"'
  elseif t == "number" then
    if v ~= v or v == huge or v == -huge then
      return where .. ": not a finite number"
    end
    if v == floor(v) and v > -2^53 and v < 2^53 then
      out[#out + 1] = format("%d", v)
    else
      out[#out + 1] = format("%.17g", v)
    end
  elseif t == "boolean" then
    out[#out + 1] = v and "true" or "false"
  elseif t == "table" then
    if depth > 16 then return where .. ": nested too deep" end
    local count, n = 0, #v
    for _ in pairs(v) do count = count + 1 end
    if count == 0 then
      out[#out + 1] = ARRAY_KEYS[key] and "[]" or "{}"
    elseif count == n then
      out[#out + 1] = "["
      for i = 1, n do
        if i > 1 then out[#out + 1] = "," end
        local e = encode(v[i], nil, format("%s[%d]", where, i), out, depth + 1)
        if e then return e end
      end
      out[#out + 1] = "]"
    else
      local keys = {}
      for k in pairs(v) do
        if type(k) ~= "string" then
          return where .. ": a table mixing list items and fields"
        end
        keys[#keys + 1] = k
      end
      sort(keys)
      out[#out + 1] = "{"
      for i, k in ipairs(keys) do
        if i > 1 then out[#out + 1] = "," end
        encode(k, nil, where, out, depth)
        out[#out + 1] = ":"
        local e = encode(v[k], k, where .. "." .. k, out, depth + 1)
        if e then return e end
      end
      out[#out + 1] = "}"
    end
  else
    return format("%s: %s cannot be sent as JSON", where, t)
  end
end

-- The body text, or nil, invalid_argument error.
local function json_body(t)
  local out = {}
  local e = encode(t, nil, "body", out, 0)
  if e then return nil, A.err("invalid_argument", e) end
  return concat(out)
end

local function is_list(t)
  if type(t) ~= "table" then return false end
  local count = 0
  for _ in pairs(t) do count = count + 1 end
  return count == #t
end

-- nil, or an invalid_argument error for the first bad policy. `need_id`:
-- the update body requires each policy's id (the API's schema).
local function check_policies(pols, need_id)
  if not is_list(pols) then
    return A.err("invalid_argument", "policies: expected a list of policies")
  end
  for i, pol in ipairs(pols) do
    local where = format("policies[%d]", i)
    if type(pol) ~= "table" then
      return A.err("invalid_argument", where .. ": expected a table, got " .. type(pol))
    end
    if need_id and (type(pol.id) ~= "string" or pol.id == "") then
      return A.err("invalid_argument", where .. ".id: a policy id is required to "
        .. "update (pass back the policies get_group returned)")
    end
    if pol.access ~= "allow" and pol.access ~= "deny" then
      return A.err("invalid_argument", where .. ".access: expected 'allow' or "
        .. "'deny', got " .. A.quote(pol.access))
    end
    for _, k in ipairs({ "permission_groups", "resource_groups" }) do
      local l = pol[k]
      if not is_list(l) then
        return A.err("invalid_argument", format("%s.%s: expected a list of "
          .. "{ id = ... }", where, k))
      end
      for j, item in ipairs(l) do
        local id = type(item) == "table" and item.id or nil
        local err = A.check_id(id, format("%s.%s[%d].id", where, k, j))
        if err then return err end
      end
    end
  end
end

-- nil when no other group than `except` (an id, or nil) has `name`; else
-- a conflict error, or the listing's error.
local function check_name_free(client, account, name, except)
  local found, err = named(client, account, name)
  if not found then return err end
  for _, g in ipairs(found) do
    if type(g.id) ~= "string" or lower(g.id) ~= except then
      return A.err("conflict", format("a user group named %s already exists in "
        .. "account %s (id %s)", A.quote(name), account, tostring(g.id)), { group = g })
    end
  end
end

-- A group answer must be a table with a string id.
local function group_result(res, meta, what)
  if res == nil then
    if type(meta) == "table" and meta.kind then return nil, meta end
    return nil, A.err("invalid_response", what .. ": the answer has no group")
  end
  if type(res) ~= "table" or type(res.id) ~= "string" then
    return nil, A.err("invalid_response", what .. ": the answer is not a group")
  end
  return res
end

local function check_spec(spec, fname)
  if type(spec) ~= "table" then
    error(format("bad argument to '%s' (group: table expected, got %s)", fname,
      type(spec)), 4)
  end
end

--- Reads one group.
-- syntax: group, err = client:get_group(account, group)
-- @return { id, name, created_on, modified_on, policies, ... } as the API
--   sent it, or nil, err (not_found for an unknown id or name).
function _M.get_group(client, account, group)
  A.check_string(account, "account", "get_group")
  check_group_arg(group, "get_group", client)
  local err = A.check_id(account, "account")
  if err then return nil, err end
  local id
  id, err = _M._group_id(client, account, group, "get_group")
  if not id then return nil, err end
  local path
  path, err = require("cfiam.core").path(client, "group", account, id)
  if not path then return nil, err end
  local res, meta = client:request("GET", path)
  return group_result(res, meta, "reading group " .. id)
end

local CREATE_FIELDS = { name = "string", policies = "table" }

--- Creates a group, unless one with that name exists already.
-- syntax: group, err = client:create_group(account, { name = , policies = })
-- The name is looked up first (exact); an existing one is kind "conflict"
-- (err.group) and nothing is created.
-- @return the new group as the API sent it, or nil, err.
function _M.create_group(client, account, spec)
  A.check_string(account, "account", "create_group")
  check_spec(spec, "create_group")
  A.check_opts(spec, CREATE_FIELDS, "create_group", client)
  A.check_string(spec.name, "name", "create_group")
  local err = A.check_id(account, "account")
  if err then return nil, err end
  if spec.name == "" then return nil, A.err("invalid_argument", "name is empty") end
  local body = { name = spec.name }
  if spec.policies ~= nil then
    err = check_policies(spec.policies, false)
    if err then return nil, err end
    body.policies = spec.policies
  end
  local text
  text, err = json_body(body)
  if not text then return nil, err end
  err = check_name_free(client, account, spec.name, nil)
  if err then return nil, err end
  local path
  path, err = require("cfiam.core").path(client, "groups", account)
  if not path then return nil, err end
  local res, meta = client:request("POST", path, { json = text })
  return group_result(res, meta, "creating group " .. A.quote(spec.name))
end

local UPDATE_FIELDS = { name = "string", policies = "table", allow_empty = "boolean" }

--- Renames a group and/or replaces its policies (PUT, with only the fields
-- given: a rename alone leaves the policies alone).
-- syntax: group, err = client:update_group(account, group, { name = ,
--   policies = , allow_empty = })
-- policies = {} removes every policy and is refused unless allow_empty.
-- Each policy needs its id (as get_group returns it); fields cfiam does not
-- know are sent back unchanged. A new name another group has is kind
-- "conflict".
-- @return the group as the API sent it after the change, or nil, err.
function _M.update_group(client, account, group, spec)
  A.check_string(account, "account", "update_group")
  check_group_arg(group, "update_group", client)
  check_spec(spec, "update_group")
  A.check_opts(spec, UPDATE_FIELDS, "update_group", client)
  local err = A.check_id(account, "account")
  if err then return nil, err end
  if spec.name == nil and spec.policies == nil then
    return nil, A.err("invalid_argument", "nothing to update: give name and/or policies")
  end
  if spec.name == "" then return nil, A.err("invalid_argument", "name is empty") end
  local body = { name = spec.name }
  if spec.policies ~= nil then
    err = check_policies(spec.policies, true)
    if err then return nil, err end
    if #spec.policies == 0 and not spec.allow_empty then
      return nil, A.err("invalid_argument", "policies is empty: that removes every "
        .. "policy of the group; pass allow_empty to mean that")
    end
    body.policies = spec.policies
  end
  local text
  text, err = json_body(body)
  if not text then return nil, err end
  local id
  id, err = _M._group_id(client, account, group, "update_group")
  if not id then return nil, err end
  local path
  path, err = require("cfiam.core").path(client, "group", account, id)
  if not path then return nil, err end
  if spec.name ~= nil then
    err = check_name_free(client, account, spec.name, lower(id))
    if err then return nil, err end
  end
  local res, meta = client:request("PUT", path, { json = text })
  return group_result(res, meta, "updating group " .. id)
end

local DELETE_OPTS = { force = "boolean" }

--- Deletes a group; one that still has members only with force.
-- syntax: ok, err = client:delete_group(account, group [, { force = true }])
-- Deleting a group removes its members' access through it, so a group with
-- members is refused (kind "guard", err.members = how many) unless force.
-- @return true, or nil, err.
function _M.delete_group(client, account, group, opts)
  A.check_string(account, "account", "delete_group")
  check_group_arg(group, "delete_group", client)
  opts = A.check_opts(opts, DELETE_OPTS, "delete_group", client)
  local err = A.check_id(account, "account")
  if err then return nil, err end
  local id
  id, err = _M._group_id(client, account, group, "delete_group")
  if not id then return nil, err end
  local path
  path, err = require("cfiam.core").path(client, "group", account, id)
  if not path then return nil, err end
  if not opts.force then
    local n
    n, err = _M._member_count(client, account, id)
    if not n then return nil, err end
    if n > 0 then
      return nil, A.err("guard", format("group %s has %d member%s; deleting it "
        .. "removes their access through it; pass force to mean that", id, n,
        n == 1 and "" or "s"), { members = n })
    end
  end
  local res, meta = client:request("DELETE", path)
  if res == nil and type(meta) == "table" and meta.kind then return nil, meta end
  return true
end

return _M
