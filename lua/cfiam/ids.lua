--- cfiam.ids: lists that mix member ids and e-mail addresses, turned into
-- account-member ids through one listing of the account's members
-- (GET /accounts/{id}/members, 50 a page; the member id, not the user id).
local type, pairs, ipairs, require = type, pairs, ipairs, require
local lower, find, format = string.lower, string.find, string.format
local A = require("cfiam.args")
local P = require("cfiam.pager")

local _M = {}

--- Whether s looks like an e-mail address (anything@anything, no spaces).
function _M.is_email(s)
  return find(s, "^[^@%s]+@[^@%s]+$") ~= nil
end

--- Splits a list of member ids and e-mail addresses.
-- Entries: "id", "address", { id = "..." } or { email = "..." }.
-- Returns ids (lower case, unique, in order), emails (unique ignoring case,
-- as given, in order), or nil, invalid_argument naming the bad entries.
-- Raises when list is not a table or an entry has a wrong Lua type.
function _M.split(list, what, fname, client)
  if type(list) ~= "table" then
    A.raise(format("bad argument to '%s' (%s: table expected, got %s)", fname,
      what, type(list)))
  end
  A.check_list(list, what, fname)
  local ids, emails, seen, bad = {}, {}, {}, {}
  local is_id = require("cfiam").is_id
  for i = 1, #list do
    local v = list[i]
    if type(v) == "table" then v = v.id or v.email end
    if type(v) ~= "string" then
      A.raise(format("bad argument to '%s' (%s[%d]: string or table with id or "
        .. "email expected, got %s)", fname, what, i, type(v)))
    end
    if is_id(v) then
      local id = lower(v)
      if not seen[id] then seen[id] = true; ids[#ids + 1] = id end
    elseif _M.is_email(v) then
      local key = "@" .. lower(v)
      if not seen[key] then seen[key] = true; emails[#emails + 1] = v end
    else
      bad[#bad + 1] = v
    end
  end
  if #bad > 0 then
    return nil, A.err("invalid_argument", what
      .. ": neither a 32-character hexadecimal member id nor an e-mail address: "
      .. A.quote_list(bad, client), { invalid = bad })
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
_M.entry = entry

--- Lists the account's members once: { by_id = {id = entry},
-- by_email = {lower(address) = entry} } | nil, err. `concurrency`: pages
-- fetched at once after the first (default 1).
function _M.account_index(client, account, concurrency)
  local err = A.check_id(account, "account", client)
  if err then return nil, err end
  local path
  path, err = require("cfiam.core").path(client, "account_members", account)
  if not path then return nil, err end
  local p = P.pager{ client = client, decode = "members", path = path,
    per_page = P.ACCOUNT_PAGE, concurrency = concurrency,
    what = "the members of account " .. account }
  local list
  list, err = P.collect(p)
  if not list then return nil, err end
  return _M.index_of(list)
end

--- The index of an account-member listing: { by_id = {id = entry},
-- by_email = {lower(address) = entry} } (the first of a repeated address).
function _M.index_of(list)
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
-- nil, invalid_argument naming the first unknown addresses (err.unknown
-- lists them all).
function _M.lookup(index, emails, account, client)
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
    return nil, A.err("invalid_argument", format("%s not a member of "
      .. "account %s: %s", #unknown == 1 and "e-mail address is"
      or "e-mail addresses are", account, A.quote_list(unknown, client)),
      { unknown = unknown })
  end
  return out
end

--- The "ids or e-mails" normaliser: returns ids (lower case, unique, in
-- the order given, e-mails replaced by their member ids) and the account
-- index when one was fetched (nil otherwise), or nil, err. The account is
-- listed only when the list holds an e-mail address, `concurrency` pages
-- at once.
function _M.normalise(client, account, list, what, fname, concurrency)
  local ids, emails = _M.split(list, what, fname, client)
  if not ids then return nil, emails end
  local index, err
  if #emails > 0 then
    index, err = _M.account_index(client, account, concurrency)
    if not index then return nil, err end
    local resolved
    resolved, err = _M.lookup(index, emails, account, client)
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

return _M
