--- cfiam.resolve: e-mail addresses to account-member ids, and the pieces
-- the other helpers share (argument checks, errors, the pager, the
-- "ids or e-mails" normaliser).
--
-- The table this module returns holds only the public helper
-- (resolve_members); cfiam.extend attaches every function in it as a client
-- method. The shared internals live behind __index, so pairs() (and thus
-- extend) does not see them, while require("cfiam.resolve").pager etc. work
-- for members.lua, groups.lua and cli.lua.
--
-- Caveats: account members are listed with at most 50 a page (the API's
-- maximum), so resolving addresses in a large account costs
-- total_count / 50 + 1 requests; each call lists once and resolves every
-- address it was given from that one listing.
local type, pairs, ipairs, tostring, tonumber, error =
  type, pairs, ipairs, tostring, tonumber, error
local setmetatable, require = setmetatable, require
local ceil, huge = math.ceil, math.huge
local concat, sort = table.concat, table.sort
local lower, find, sub, format = string.lower, string.find, string.sub, string.format

local _M = {}
local _P = {}
setmetatable(_M, { __index = _P })

-- Pages fetched at most when the server gives no total_count (and the
-- caller no max_pages): a bound for a listing that never runs out.
_P.FALLBACK_MAX_PAGES = 1000
-- The API's largest page sizes.
_P.GROUP_PAGE = 500
_P.ACCOUNT_PAGE = 50

local function cfiam()
  return require("cfiam")
end

--- Builds an error value the way the C core does (same metatable).
-- @param kind a short stable token (invalid_argument, incomplete, guard, ...)
-- @param message one line
-- @param extra optional table of more fields (plan, missing, ...)
function _P.err(kind, message, extra)
  local e = { kind = kind, message = message, errors = {}, messages = {},
    attempts = 0 }
  if extra then
    for k, v in pairs(extra) do e[k] = v end
  end
  return cfiam()._error(e)
end

-- 'value', shortened, for messages.
function _P.quote(s)
  s = tostring(s)
  if #s > 60 then s = sub(s, 1, 57) .. "..." end
  return "'" .. s .. "'"
end

--- Raises (a programmer error) unless v is a string.
function _P.check_string(v, name, fname)
  if type(v) ~= "string" then
    error(format("bad argument to '%s' (%s: string expected, got %s)",
      fname, name, type(v)), 3)
  end
end

--- Raises on an unknown option name or a wrong Lua type. `allowed` maps
-- each option name to its Lua type ("number", "boolean", "string").
function _P.check_opts(opts, allowed, fname)
  if opts == nil then return {} end
  if type(opts) ~= "table" then
    error(format("bad argument to '%s' (options: table expected, got %s)",
      fname, type(opts)), 3)
  end
  for k, v in pairs(opts) do
    local want = allowed[k]
    if not want then
      error(format("bad argument to '%s' (unknown option %s)", fname,
        _P.quote(k)), 3)
    end
    if type(v) ~= want then
      error(format("bad argument to '%s' (option %s: %s expected, got %s)",
        fname, k, want, type(v)), 3)
    end
  end
  return opts
end

-- nil, or an invalid_argument error when s is not a 32-hex id.
function _P.check_id(s, what)
  if not cfiam().is_id(s) then
    return _P.err("invalid_argument", what
      .. ": expected a 32-character hexadecimal id, got " .. _P.quote(s))
  end
end

-- nil, or an invalid_argument error for a bad page size or page limit.
function _P.check_paging(opts, max_per_page)
  local pp = opts.per_page
  if pp ~= nil and (pp ~= pp or pp < 1 or pp > max_per_page or pp % 1 ~= 0) then
    return _P.err("invalid_argument", format(
      "per_page: expected a whole number from 1 to %d, got %s", max_per_page,
      tostring(pp)))
  end
  local mp = opts.max_pages
  if mp ~= nil and (mp ~= mp or mp < 1 or (mp % 1 ~= 0 and mp ~= huge)) then
    return _P.err("invalid_argument",
      "max_pages: expected a whole number of at least 1, got " .. tostring(mp))
  end
end

---------------------------------------------------------------------------
-- The pager: page=1,2,... until an empty page, or until total_count
-- members were seen (unfiltered listings only); never more than max_pages.
---------------------------------------------------------------------------

--- Creates a pager over a paginated GET.
-- @param spec { client, path, query (filters; page and per_page are added),
--   per_page, max_pages (nil: enough for total_count, plus one), filtered
--   (total_count then counts more than the listing, so it is not used),
--   decode ("members" or nil), what ("members of group X", for messages) }
function _P.pager(spec)
  local p = {
    client = spec.client, path = spec.path, per_page = spec.per_page,
    decode = spec.decode, what = spec.what, filtered = spec.filtered,
    fixed_max = spec.max_pages, max_pages = spec.max_pages or _P.FALLBACK_MAX_PAGES,
    page = 0, count = 0, seen = {}, total = nil, overshoot = false, done = false,
    query = {},
  }
  for k, v in pairs(spec.query or {}) do p.query[k] = v end
  p.query.per_page = p.per_page
  return p
end

local function incomplete(p, message)
  p.done = true
  return nil, _P.err("incomplete", message, {
    count = p.count, total_count = p.total, pages = p.page })
end

--- Fetches the next page. Returns the page's new items (an array, maybe
-- empty when the page only repeated earlier items), or nil when the
-- listing is complete, or nil, err.
function _P.next_page(p)
  if p.done then return nil end
  if p.page >= p.max_pages then
    local claim = p.total and format(", while the server's total_count says %d",
      p.total) or ""
    return incomplete(p, format("listing %s stopped after %d page%s "
      .. "(max_pages) with %d listed%s", p.what, p.page,
      p.page == 1 and "" or "s", p.count, claim))
  end
  p.page = p.page + 1
  p.query.page = p.page
  local res, meta = p.client:request("GET", p.path,
    { query = p.query, decode = p.decode })
  if res == nil then
    if type(meta) == "table" and meta.kind then
      p.done = true
      return nil, meta
    end
    res = {} -- success without a result: an empty page
  end
  if type(res) ~= "table" then
    p.done = true
    return nil, _P.err("invalid_response", "listing " .. p.what
      .. ": result is not an array")
  end
  local info = type(meta) == "table" and meta.result_info
  local total = type(info) == "table" and tonumber(info.total_count)
  if total then
    p.total = total
    if not p.fixed_max then
      -- The first claim sets the bound; a later, larger claim (members
      -- added during the listing) may raise it.
      local need = ceil(total / p.per_page) + 1
      if not p.sized or need > p.max_pages then
        p.max_pages, p.sized = need, true
      end
    end
  end
  if #res == 0 then
    p.done = true
    if not p.filtered and p.total and p.count < p.total then
      return incomplete(p, format("listing %s ended on page %d with %d "
        .. "listed, but the server's total_count says %d", p.what, p.page,
        p.count, p.total))
    end
    return nil
  end
  local new = {}
  for _, item in ipairs(res) do
    local id = type(item) == "table" and item.id
    if type(id) ~= "string" then
      p.done = true
      return nil, _P.err("invalid_response", "listing " .. p.what
        .. ": an item has no string id")
    end
    id = lower(id)
    if not p.seen[id] then
      p.seen[id] = true
      p.count = p.count + 1
      new[#new + 1] = item
    end
  end
  if p.total and p.count > p.total then
    -- total_count cannot be trusted any more: go on to an empty page.
    p.overshoot = true
  end
  if not p.filtered and not p.overshoot and p.total and p.count == p.total then
    p.done = true
  end
  return new
end

--- Lists every item through a pager: array | nil, err.
function _P.collect(p)
  local all = {}
  while true do
    local items, err = _P.next_page(p)
    if not items then
      if err then return nil, err end
      return all
    end
    for i = 1, #items do all[#all + 1] = items[i] end
  end
end

---------------------------------------------------------------------------
-- Ids or e-mail addresses
---------------------------------------------------------------------------

local function is_email(s)
  return find(s, "^[^@%s]+@[^@%s]+$") ~= nil
end

--- Splits a list of member ids and e-mail addresses.
-- Entries: "id", "address", { id = "..." } or { email = "..." }.
-- Returns ids (lower case, unique, in order), emails (unique ignoring case,
-- as given, in order), or nil, invalid_argument naming the bad entries.
-- Raises when list is not a table or an entry has a wrong Lua type.
function _P.split(list, what, fname)
  if type(list) ~= "table" then
    error(format("bad argument to '%s' (%s: table expected, got %s)", fname,
      what, type(list)), 3)
  end
  local ids, emails, seen, bad = {}, {}, {}, {}
  local is_id = cfiam().is_id
  for i = 1, #list do
    local v = list[i]
    if type(v) == "table" then v = v.id or v.email end
    if type(v) ~= "string" then
      error(format("bad argument to '%s' (%s[%d]: string or table with id or "
        .. "email expected, got %s)", fname, what, i, type(v)), 3)
    end
    if is_id(v) then
      local id = lower(v)
      if not seen[id] then seen[id] = true; ids[#ids + 1] = id end
    elseif is_email(v) then
      local key = "@" .. lower(v)
      if not seen[key] then seen[key] = true; emails[#emails + 1] = v end
    else
      bad[#bad + 1] = _P.quote(v)
    end
  end
  if #bad > 0 then
    return nil, _P.err("invalid_argument", what
      .. ": neither a 32-character hexadecimal member id nor an e-mail address: "
      .. concat(bad, ", "))
  end
  return ids, emails
end

local function entry(m)
  local email = m.email
  if type(email) ~= "string" and type(m.user) == "table" then
    email = m.user.email
  end
  return { id = lower(m.id), email = type(email) == "string" and email or nil,
    status = type(m.status) == "string" and m.status or nil }
end
_P.entry = entry

--- Lists the account's members once: { by_id = {id = entry},
-- by_email = {lower(address) = entry} } | nil, err.
function _P.account_index(client, account)
  local err = _P.check_id(account, "account")
  if err then return nil, err end
  local p = _P.pager{ client = client, decode = "members",
    path = "/accounts/" .. lower(account) .. "/members",
    per_page = _P.ACCOUNT_PAGE, what = "the members of account " .. account }
  local list
  list, err = _P.collect(p)
  if not list then return nil, err end
  local index = { by_id = {}, by_email = {} }
  for _, m in ipairs(list) do
    local e = entry(m)
    index.by_id[e.id] = e
    if e.email and not index.by_email[lower(e.email)] then
      index.by_email[lower(e.email)] = e
    end
  end
  return index
end

--- Resolves addresses with an index: { [address as given] = entry } |
-- nil, invalid_argument naming every unknown address.
function _P.lookup(index, emails, account)
  local out, unknown = {}, {}
  for _, address in ipairs(emails) do
    local e = index.by_email[lower(address)]
    if e then
      out[address] = { id = e.id, email = e.email, status = e.status }
    else
      unknown[#unknown + 1] = address
    end
  end
  if #unknown > 0 then
    return nil, _P.err("invalid_argument", format("%s not a member of "
      .. "account %s: %s", #unknown == 1 and "e-mail address is"
      or "e-mail addresses are", account, concat(unknown, ", ")),
      { unknown = unknown })
  end
  return out
end

--- The "ids or e-mails" normaliser: returns ids (lower case, unique, in
-- the order given, e-mails replaced by their member ids) and the account
-- index when one was fetched (nil otherwise), or nil, err. The account is
-- listed only when the list holds an e-mail address or `need_index` is set.
function _P.normalise(client, account, list, what, fname, need_index)
  local ids, emails = _P.split(list, what, fname)
  if not ids then return nil, emails end
  local index, err
  if #emails > 0 or need_index then
    index, err = _P.account_index(client, account)
    if not index then return nil, err end
  end
  if #emails > 0 then
    local resolved
    resolved, err = _P.lookup(index, emails, account)
    if not resolved then return nil, err end
    local by_lower = {}
    for address, e in pairs(resolved) do by_lower[lower(address)] = e.id end
    -- The caller's order, each address replaced by its member id.
    local out, seen = {}, {}
    for i = 1, #list do
      local v = list[i]
      if type(v) == "table" then v = v.id or v.email end
      local id = by_lower[lower(v)] or lower(v)
      if not seen[id] then seen[id] = true; out[#out + 1] = id end
    end
    ids = out
  end
  return ids, index
end

-- Sorted keys, for stable messages.
function _P.sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  sort(keys)
  return keys
end

---------------------------------------------------------------------------
-- Public helper
---------------------------------------------------------------------------

--- Turns e-mail addresses into account-member ids.
-- syntax: map, err = client:resolve_members(account, emails)
-- Lists GET /accounts/{account}/members (50 a page) once and matches each
-- address case-insensitively.
-- @return { [address as given] = { id, email, status } }, or nil, err
--   (invalid_argument naming unknown addresses; the listing's error).
function _M.resolve_members(client, account, emails)
  _P.check_string(account, "account", "resolve_members")
  if type(emails) ~= "table" then
    error("bad argument to 'resolve_members' (emails: table expected, got "
      .. type(emails) .. ")", 2)
  end
  local list, bad = {}, {}
  for i = 1, #emails do
    local v = emails[i]
    if type(v) ~= "string" then
      error(format("bad argument to 'resolve_members' (emails[%d]: string "
        .. "expected, got %s)", i, type(v)), 2)
    end
    if is_email(v) then list[#list + 1] = v else bad[#bad + 1] = _P.quote(v) end
  end
  if #bad > 0 then
    return nil, _P.err("invalid_argument", "emails: not an e-mail address: "
      .. concat(bad, ", "))
  end
  local err = _P.check_id(account, "account")
  if err then return nil, err end
  if #list == 0 then return {} end
  local index
  index, err = _P.account_index(client, account)
  if not index then return nil, err end
  return _P.lookup(index, list, account)
end

return _M
