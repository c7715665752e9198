--- cfiam.members: the membership workflow on top of the C request
-- primitive: list (all pages), iterate, add, remove, plan and sync.
--
-- Every HTTP call goes through client:request / client:update_members
-- (looked up as methods, so the transport cfiam.transport chose applies),
-- and every failure is `nil, err` with the core's error table. Kinds added
-- here: "incomplete" (a listing that did not reach its end), "guard" (a
-- sync refused before writing; err.plan) and "drift" (verify found a
-- difference after the write; err.plan, err.missing, err.unexpected).
--
-- Caveats: plan and sync read the whole group first (per_page 500), and
-- the account's member list (50 a page) when they add someone or were
-- given e-mail addresses. A sync writes the plan's difference (a POST of
-- the additions, a DELETE per removal), so a member the listing did not
-- show is never touched. strategy = "replace" writes one PUT of the whole
-- set instead: it removes whoever the listing missed or someone else added
-- meanwhile; use verify to notice.
local ipairs, tostring, tonumber, type =
  ipairs, tostring, tonumber, type
local format = string.format

local A = require("cfiam.args")
local P = require("cfiam.pager")
local I = require("cfiam.ids")
local G = require("cfiam.groups")
local err_ = A.err

local _M = {}

local LIST_OPTS = { per_page = "number", max_pages = "number",
  fuzzy_email = "string", direction = "string", concurrency = "number" }
local PLAN_OPTS = { per_page = "number", max_pages = "number",
  concurrency = "number" }
local SYNC_OPTS = { per_page = "number", max_pages = "number",
  dry_run = "boolean", max_removals = "number", allow_empty = "boolean",
  verify = "boolean", strategy = "string", concurrency = "number" }
local APPLY_OPTS = { per_page = "number", max_pages = "number",
  max_removals = "number", allow_empty = "boolean", verify = "boolean",
  strategy = "string", concurrency = "number" }
local WRITE_OPTS = { concurrency = "number" }
local STRATEGIES = { difference = true, replace = true }

-- A pager over the group's members, or nil, err (invalid arguments).
local function member_pager(client, account, group, opts)
  local err = A.check_paging(opts, P.GROUP_PAGE) or A.check_direction(opts.direction, client)
  if err then return nil, err end
  local path
  path, err = require("cfiam.core").path(client, "group_members", account, group)
  if not path then return nil, err end
  return P.pager{ client = client, path = path, decode = "members",
    query = { fuzzyEmail = opts.fuzzy_email, direction = opts.direction },
    filtered = opts.fuzzy_email ~= nil,
    per_page = opts.per_page or P.GROUP_PAGE, max_pages = opts.max_pages,
    concurrency = opts.concurrency, what = "the members of group " .. group }
end

-- `group` (an id or { name = }) is checked and resolved by G._group_id.
local function check_ids_args(account, group, fname) -- luacheck: ignore group
  A.check_string(account, "account", fname)
end

--- Lists every member of a group, across all pages.
-- syntax: members, err = client:list_members(account, group [, opts])
-- opts: per_page (1-500, default 500), max_pages (default: enough for
-- total_count, plus one), fuzzy_email, direction ("asc"|"desc"),
-- concurrency (pages fetched at once after page 1, 1-64, default 1).
-- @return array of { id, email, status } (as the API sent them), or nil,
--   err; kind "incomplete" when the listing did not reach its end or (when
--   unfiltered) came back with fewer members than total_count.
function _M.list_members(client, account, group, opts)
  check_ids_args(account, group, "list_members")
  opts = A.check_opts(opts, LIST_OPTS, "list_members", client)
  local gerr
  group, gerr = G._group_id(client, account, group, "list_members")
  if not group then return nil, gerr end
  local p, err = member_pager(client, account, group, opts)
  if not p then return nil, err end
  return P.collect(p)
end

--- Iterates over a group's members, one page in memory at a time.
-- syntax: for member, err in client:each_member(account, group [, opts]) do
-- Same opts and paging rules as list_members (with concurrency, up to that
-- many pages are held at once). When a page fails (or the listing is
-- incomplete) the iterator yields false, err once, then ends.
function _M.each_member(client, account, group, opts)
  check_ids_args(account, group, "each_member")
  opts = A.check_opts(opts, LIST_OPTS, "each_member", client)
  local p, failure
  group, failure = G._group_id(client, account, group, "each_member")
  if group then p, failure = member_pager(client, account, group, opts) end
  local items, i = nil, 0
  return function()
    if failure then
      local e = failure
      failure, p = nil, nil
      return false, e
    end
    while p do
      if items and i < #items then
        i = i + 1
        return items[i]
      end
      local e
      items, e = P.next_page(p)
      i = 0
      if not items then
        p = nil
        if e then return false, e end
      end
    end
    return nil
  end
end

-- The checks and lookups add_members and remove_members share: raises on
-- wrong types; returns the `kind` path (core.path), the ids (unique, e-mails
-- resolved) and the group id, or nil, err (nothing sent but the lookups).
local function write_args(client, account, group, ids, opts, fname, kind, verb)
  check_ids_args(account, group, fname)
  opts = A.check_opts(opts, WRITE_OPTS, fname, client)
  local err = A.check_concurrency(opts)
  if err then return nil, err end
  group, err = G._group_id(client, account, group, fname)
  if not group then return nil, err end
  local path
  path, err = require("cfiam.core").path(client, kind, account, group, fname)
  if not path then return nil, err end
  local list
  list, err = I.normalise(client, account, ids, "ids", fname, opts.concurrency)
  if not list then return nil, err end
  if #list == 0 then
    return nil, err_("invalid_argument", "ids is empty: nothing to " .. verb)
  end
  return path, list, group
end

--- Adds members with one POST (ids de-duplicated; e-mails resolved).
-- syntax: members, err = client:add_members(account, group, ids [, opts])
-- opts: concurrency (pages of the account listing fetched at once when
-- e-mail addresses are resolved; default 1).
-- @return the API's member list (array of { id, email, status }), or nil, err.
function _M.add_members(client, account, group, ids, opts)
  local path, list = write_args(client, account, group, ids, opts, "add_members",
    "group_members", "add")
  if not path then return nil, list end
  local members, err = client:request("POST", path, { ids = list, decode = "members" })
  if not members then return nil, err end
  return members
end

-- Sends DELETE .../members/{id} for each id: in order, stopping at the
-- first failure, or with concurrency > 1 all of them through
-- request_many, `concurrency` at a time. The one place removals are sent.
-- A 404 means the member is not in the group: not_members, unless it
-- answered a retry (err.attempts > 1), when the attempt that failed (a
-- timeout, a cut connection, a 5xx) most likely removed it: removed.
-- Returns { removed = {ids}, not_members = {ids} }, or nil, err (the first
-- failure) with err.removed and err.not_members (what was done besides).
local function delete_each(client, account, group, ids, concurrency)
  local out = { removed = {}, not_members = {} }
  local paths = {}
  for i, id in ipairs(ids) do
    local path, err = require("cfiam.core").path(client, "group_member", account, group, id)
    if not path then
      err.removed, err.not_members = out.removed, out.not_members
      return nil, err
    end
    paths[i] = path
  end
  -- one outcome: true to go on, or the failure
  local function note(id, ok, err)
    if ok ~= nil then
      out.removed[#out.removed + 1] = id
    elseif err.kind == "not_found" and (tonumber(err.attempts) or 1) > 1 then
      out.removed[#out.removed + 1] = id
    elseif err.kind == "not_found" then
      out.not_members[#out.not_members + 1] = id
    else
      return err
    end
  end
  if (concurrency or 1) > 1 and #ids > 1 then
    local calls = {}
    for i in ipairs(ids) do calls[i] = { "DELETE", paths[i] } end
    local res, err = client:request_many(calls, { concurrency = concurrency })
    if not res then return nil, err end
    local first
    for i, id in ipairs(ids) do
      local e = note(id, res[i].result, res[i].err)
      if e and not first then first = e end
    end
    if first then
      first.removed, first.not_members = out.removed, out.not_members
      return nil, first
    end
    return out
  end
  for i, id in ipairs(ids) do
    local err = note(id, client:request("DELETE", paths[i]))
    if err then
      err.removed, err.not_members = out.removed, out.not_members
      return nil, err
    end
  end
  return out
end

--- Removes exactly the given members (DELETE .../members/{id} each).
-- syntax: res, err = client:remove_members(account, group, ids [, opts])
-- opts: concurrency (DELETEs, and pages of the account listing behind
-- e-mail addresses, in flight at once; default 1: one after another,
-- stopping at the first failure).
-- The group is read first, so a missing group is not_found rather than
-- every id being reported as not a member.
-- @return { removed = {ids}, not_members = {ids} }, or nil, err; after a
--   failure part way, err.removed and err.not_members say what was done
--   (with concurrency, every DELETE is sent; err is the first failure).
--   A 404 to a retried DELETE counts as removed (see delete_each).
function _M.remove_members(client, account, group, ids, opts)
  opts = opts or {}
  local group_path, list, gid = write_args(client, account, group, ids, opts,
    "remove_members", "group", "remove")
  if not group_path then return nil, list end
  -- the group is read first: a missing one is not_found, not N non-members
  local ok, err = client:request("GET", group_path)
  if ok == nil then return nil, err end
  return delete_each(client, account, gid, list, opts.concurrency)
end

-- The plan, computed from a complete listing (no arguments checks here:
-- the public functions did them). Returns plan or nil, err.
local function make_plan(client, account, group, desired, opts, fname)
  local path, err = require("cfiam.core").path(client, "group_members", account, group, fname)
  if not path then return nil, err end
  local ids, emails = I.split(desired, "desired", fname)
  if not ids then return nil, emails end
  local p
  p, err = member_pager(client, account, group, opts)
  if not p then return nil, err end
  local index
  if #emails > 0 then
    -- Resolve first: an unknown address fails before the long listing.
    ids, index = I.normalise(client, account, desired, "desired", fname,
      opts.concurrency)
    if not ids then return nil, index end
  end
  local current
  current, err = P.collect(p)
  if not current then return nil, err end
  local want = {}
  for _, id in ipairs(ids) do want[id] = true end
  local plan = { add = {}, remove = {}, keep = {} }
  local have = {}
  for _, m in ipairs(current) do
    local e = I.entry(m)
    have[e.id] = true
    if want[e.id] then plan.keep[#plan.keep + 1] = e
    else plan.remove[#plan.remove + 1] = e end
  end
  local unknown = {}
  for _, id in ipairs(ids) do
    if not have[id] then
      if not index then
        index, err = I.account_index(client, account, opts.concurrency)
        if not index then return nil, err end
      end
      local e = index.by_id[id]
      if e then
        plan.add[#plan.add + 1] = { id = e.id, email = e.email, status = e.status }
      else
        unknown[#unknown + 1] = id
      end
    end
  end
  if #unknown > 0 then
    return nil, err_("invalid_argument", format("%s not a member of account %s: %s",
      #unknown == 1 and "id is" or "ids are", account, A.quote_list(unknown, client)),
      { unknown = unknown })
  end
  return plan
end

--- Computes what a sync would do, writing nothing.
-- syntax: plan, err = client:plan_members(account, group, desired [, opts])
-- desired mixes member ids and e-mail addresses. opts: per_page, max_pages,
-- concurrency (pages fetched at once, for both listings; default 1).
-- @return { add = {...}, remove = {...}, keep = {...} }, entries
--   { id, email, status } (from the group listing, or from the account's
--   member list for additions), or nil, err.
function _M.plan_members(client, account, group, desired, opts)
  check_ids_args(account, group, "plan_members")
  opts = A.check_opts(opts, PLAN_OPTS, "plan_members", client)
  local gerr
  group, gerr = G._group_id(client, account, group, "plan_members")
  if not group then return nil, gerr end
  return make_plan(client, account, group, desired, opts, "plan_members")
end

-- Entries of `list` whose id is not in set `ids`.
local function missing_from(list, ids)
  local out = {}
  for _, e in ipairs(list) do
    if not ids[e.id] then out[#out + 1] = e end
  end
  return out
end

-- The ids of a plan's entries in the given parts, in order.
local function plan_ids(plan, ...)
  local out = {}
  for _, part in ipairs({ ... }) do
    for _, e in ipairs(plan[part]) do out[#out + 1] = e.id end
  end
  return out
end

-- Raises unless plan is { add, remove, keep } of entries with string ids;
-- returns a copy with lower-case ids, or nil, invalid_argument for an id
-- that is not 32 hex or is in two parts.
local function check_plan(plan, fname)
  if type(plan) ~= "table" then
    A.raise(format("bad argument to '%s' (plan: table expected, got %s)", fname,
      type(plan)))
  end
  local copy, where = {}, {}
  for _, part in ipairs({ "add", "remove", "keep" }) do
    local list = plan[part]
    if type(list) ~= "table" then
      A.raise(format("bad argument to '%s' (plan.%s: table expected, got %s)",
        fname, part, type(list)))
    end
    copy[part] = {}
    for i = 1, #list do
      local e = list[i]
      if type(e) ~= "table" or type(e.id) ~= "string" then
        A.raise(format("bad argument to '%s' (plan.%s[%d]: table with a string "
          .. "id expected)", fname, part, i))
      end
      local bad = A.check_id(e.id, format("plan.%s[%d].id", part, i))
      if bad then return nil, bad end
      local id = e.id:lower()
      if where[id] then
        return nil, err_("invalid_argument", format("plan: id %s is in both "
          .. "%s and %s", id, where[id], part))
      end
      where[id] = part
      copy[part][i] = { id = id, email = e.email, status = e.status }
    end
  end
  return copy
end

-- Checks the options sync_members and apply_plan share: max_removals,
-- strategy. Returns max_removals, or nil, err.
local function check_write_opts(opts)
  local max_removals = opts.max_removals or 10
  if max_removals ~= max_removals or max_removals < 0 then
    return nil, err_("invalid_argument",
      "max_removals: expected a number of at least 0, got " .. tostring(max_removals))
  end
  if opts.strategy ~= nil and not STRATEGIES[opts.strategy] then
    return nil, err_("invalid_argument", "strategy: expected 'difference' or "
      .. "'replace', got " .. A.quote(opts.strategy))
  end
  return max_removals
end

-- nil, or the guard error that refuses the plan.
local function guard(plan, group, max_removals, allow_empty)
  local n_remove = #plan.remove
  -- Empties: something is removed and nothing stays (an empty group kept
  -- empty is no change).
  if n_remove > 0 and #plan.add + #plan.keep == 0 and not allow_empty then
    return err_("guard", format("the plan empties group %s (%d member%s "
      .. "removed); pass allow_empty to mean that", group, n_remove,
      n_remove == 1 and "" or "s"), { plan = plan })
  end
  if n_remove > max_removals then
    return err_("guard", format("the plan removes %d members from group "
      .. "%s, more than max_removals (%s)", n_remove, group,
      tostring(max_removals)), { plan = plan })
  end
end

-- Writes the plan's difference: one POST of the additions, then one
-- DELETE per removal (a 404: already gone). Members in no part of the plan
-- are never touched. Returns true, or nil, err with err.added and
-- err.removed (ids written before the failure).
local function write_difference(client, account, group, plan, concurrency)
  local added = {}
  local path, perr = require("cfiam.core").path(client, "group_members", account, group)
  if not path then
    perr.added, perr.removed = added, {}
    return nil, perr
  end
  if #plan.add > 0 then
    local ids = plan_ids(plan, "add")
    local members, err = client:request("POST", path,
      { ids = ids, decode = "members" })
    if not members then
      err.added, err.removed = added, {}
      return nil, err
    end
    added = ids
  end
  if #plan.remove > 0 then
    local res, err = delete_each(client, account, group, plan_ids(plan, "remove"),
      concurrency)
    if not res then
      local removed = err.removed
      for _, id in ipairs(err.not_members) do removed[#removed + 1] = id end
      err.not_members = nil
      err.added, err.removed = added, removed
      return nil, err
    end
  end
  return true
end

-- Guards, write and verify of a checked plan (shared by sync_members and
-- apply_plan). Returns plan or nil, err.
local function apply(client, account, group, plan, opts, max_removals)
  local gerr = guard(plan, group, max_removals, opts.allow_empty)
  if gerr then return nil, gerr end
  if opts.dry_run or #plan.add + #plan.remove + #plan.keep == 0 then return plan end
  local ok, err
  if opts.strategy == "replace" then
    ok, err = client:update_members(account, group, plan_ids(plan, "keep", "add"),
      { allow_empty = opts.allow_empty and true or nil })
  else
    ok, err = write_difference(client, account, group, plan, opts.concurrency)
  end
  if not ok then
    err.plan = plan
    return nil, err
  end
  if opts.verify then
    local p, now
    p, err = member_pager(client, account, group, { per_page = opts.per_page,
      max_pages = opts.max_pages, concurrency = opts.concurrency })
    if p then now, err = P.collect(p) end
    if not now then
      err.plan = plan -- the write happened; the check could not be made
      return nil, err
    end
    -- What the group should hold: what the listing showed before (keep and
    -- remove), plus add, less remove.
    local expected, want = {}, {}
    for _, part in ipairs({ "keep", "add" }) do
      for _, e in ipairs(plan[part]) do
        expected[#expected + 1] = e
        want[e.id] = true
      end
    end
    local got, entries = {}, {}
    for _, m in ipairs(now) do
      local e = I.entry(m)
      got[e.id] = true
      entries[#entries + 1] = e
    end
    local missing = missing_from(expected, got)
    local unexpected = missing_from(entries, want)
    if #missing > 0 or #unexpected > 0 then
      return nil, err_("drift", format("after the write, group %s differs "
        .. "from what it held before plus the plan: %d missing, %d unexpected",
        group, #missing, #unexpected),
        { plan = plan, missing = missing, unexpected = unexpected })
    end
  end
  return plan
end

--- Makes the group's members `desired`, safely: plan, guards, write.
-- syntax: plan, err = client:sync_members(account, group, desired [, opts])
-- opts: dry_run (plan only), max_removals (default 10), allow_empty,
-- verify (list again after the write), strategy ("difference", the
-- default: a POST of the additions and a DELETE per removal; "replace":
-- one PUT of the whole set), per_page, max_pages, concurrency (pages of
-- the listings, and the DELETEs of "difference", at once; default 1).
-- @return plan, or nil, err: kind "guard" (err.plan, nothing written), "drift"
--   (err.plan, err.missing, err.unexpected), the listing's error (nothing
--   written), or the write's error with err.plan (and, for "difference",
--   err.added and err.removed: the ids already written).
function _M.sync_members(client, account, group, desired, opts)
  check_ids_args(account, group, "sync_members")
  opts = A.check_opts(opts, SYNC_OPTS, "sync_members", client)
  local max_removals, err = check_write_opts(opts)
  if not max_removals then return nil, err end
  group, err = G._group_id(client, account, group, "sync_members")
  if not group then return nil, err end
  local plan_opts = { per_page = opts.per_page, max_pages = opts.max_pages,
    concurrency = opts.concurrency }
  local plan
  plan, err = make_plan(client, account, group, desired, plan_opts, "sync_members")
  if not plan then return nil, err end
  return apply(client, account, group, plan, opts, max_removals)
end

--- Writes a plan made earlier (plan_members, sync_members{dry_run}) as is,
-- behind the same guards, without listing the group again.
-- syntax: plan, err = client:apply_plan(account, group, plan [, opts])
-- opts: max_removals, allow_empty, verify, strategy, per_page, max_pages,
-- concurrency (as sync_members).
-- @return the plan (ids in lower case), or nil, err as for sync_members.
function _M.apply_plan(client, account, group, plan, opts)
  check_ids_args(account, group, "apply_plan")
  opts = A.check_opts(opts, APPLY_OPTS, "apply_plan", client)
  local checked, err = check_plan(plan, "apply_plan")
  if not checked then return nil, err end
  local max_removals
  max_removals, err = check_write_opts(opts)
  if not max_removals then return nil, err end
  err = A.check_paging(opts, P.GROUP_PAGE)
  if err then return nil, err end
  group, err = G._group_id(client, account, group, "apply_plan")
  if not group then return nil, err end
  return apply(client, account, group, checked, opts, max_removals)
end

return _M
