--- cfiam.resolve: resolve_members, e-mail addresses to account-member ids.
--
-- Caveats: account members are listed with at most 50 a page (the API's
-- maximum), so resolving addresses in a large account costs
-- total_count / 50 + 1 requests; each call lists once and resolves every
-- address it was given from that one listing.
local type = type
local format = string.format
local A = require("cfiam.args")
local I = require("cfiam.ids")

local _M = {}

--- Turns e-mail addresses into account-member ids.
-- syntax: map, err = client:resolve_members(account, emails [, opts])
-- Lists GET /accounts/{account}/members (50 a page) once and matches each
-- address case-insensitively. opts: concurrency (pages fetched at once
-- after the first, 1-64, default 1).
-- @return { [address as given] = { id, email, status } }, or nil, err
--   (invalid_argument naming unknown addresses; the listing's error).
function _M.resolve_members(client, account, emails, opts)
  A.check_string(account, "account", "resolve_members")
  opts = A.check_opts(opts, { concurrency = "number" }, "resolve_members", client)
  if type(emails) ~= "table" then
    A.raise("bad argument to 'resolve_members' (emails: table expected, got "
      .. type(emails) .. ")")
  end
  A.check_list(emails, "emails", "resolve_members")
  local list, bad = {}, {}
  for i = 1, #emails do
    local v = emails[i]
    if type(v) ~= "string" then
      A.raise(format("bad argument to 'resolve_members' (emails[%d]: string "
        .. "expected, got %s)", i, type(v)))
    end
    if I.is_email(v) then list[#list + 1] = v else bad[#bad + 1] = v end
  end
  if #bad > 0 then
    return nil, A.err("invalid_argument", "emails: not an e-mail address: "
      .. A.quote_list(bad, client), { invalid = bad })
  end
  local err = A.check_id(account, "account", client) or A.check_concurrency(opts)
  if err then return nil, err end
  if #list == 0 then return {} end
  local index
  index, err = I.account_index(client, account, opts.concurrency)
  if not index then return nil, err end
  return I.lookup(index, list, account, client)
end

return _M
