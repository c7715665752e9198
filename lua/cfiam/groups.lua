--- cfiam.groups: list an account's user groups and find one by name.
--
-- Both go through client:request (GET /accounts/{account}/iam/user_groups,
-- paged, per_page up to 500) and return `nil, err` with the core's error
-- table. A filtered listing (name, fuzzy_name) is not checked against
-- total_count, which counts every group of the account.
local type, ipairs = type, ipairs
local format, lower = string.format, string.lower

local A = require("cfiam.args")
local P = require("cfiam.pager")

local _M = {}

local LIST_OPTS = { name = "string", fuzzy_name = "string", direction = "string",
  per_page = "number", max_pages = "number" }

local function list(client, account, opts)
  local err = A.check_paging(opts, P.GROUP_PAGE) or A.check_id(account, "account")
  if err then return nil, err end
  if opts.direction ~= nil and opts.direction ~= "asc" and opts.direction ~= "desc" then
    return nil, A.err("invalid_argument", "direction: expected 'asc' or 'desc', got "
      .. A.quote(opts.direction))
  end
  local p = P.pager{ client = client,
    path = "/accounts/" .. lower(account) .. "/iam/user_groups",
    query = { name = opts.name, fuzzyName = opts.fuzzy_name, direction = opts.direction },
    filtered = opts.name ~= nil or opts.fuzzy_name ~= nil,
    per_page = opts.per_page or P.GROUP_PAGE, max_pages = opts.max_pages,
    what = "the user groups of account " .. account }
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
-- max_pages.
-- @return array of groups ({ id, name, created_on, modified_on, policies }),
--   or nil, err (kind "incomplete" as for list_members).
function _M.list_groups(client, account, opts)
  A.check_string(account, "account", "list_groups")
  opts = A.check_opts(opts, LIST_OPTS, "list_groups")
  return list(client, account, opts)
end

--- Finds the one group with exactly this name.
-- syntax: group, err = client:find_group(account, name)
-- @return the group table, or nil, err: kind "not_found" when no group has
--   that name, "invalid_argument" when several do (err.groups lists them).
function _M.find_group(client, account, name)
  A.check_string(account, "account", "find_group")
  A.check_string(name, "name", "find_group")
  if name == "" then
    return nil, A.err("invalid_argument", "name is empty")
  end
  local groups, err = list(client, account, { name = name })
  if not groups then return nil, err end
  -- The server's name filter is trusted for speed, not for exactness.
  local found = {}
  for _, g in ipairs(groups) do
    if g.name == name then found[#found + 1] = g end
  end
  if #found == 0 then
    return nil, A.err("not_found", format("no user group named %s in account %s",
      A.quote(name), account))
  end
  if #found > 1 then
    return nil, A.err("invalid_argument", format("%d user groups are named %s "
      .. "in account %s; use the group id", #found, A.quote(name), account),
      { groups = found })
  end
  return found[1]
end

return _M
