--- cfiam.account: every group of an account from one desired state
-- (cfiam.load_desired): plan_account, apply_account and dump_account.
--
-- A plan reads the account's groups once, then the account's members (once,
-- shared by every group) and each named group's members, as many requests
-- at a time as `concurrency` allows (client:request_many when the C module
-- has it, one request after another otherwise). Listings are complete or
-- an error: pages are read until one comes back short, and the members seen
-- must be exactly total_count.
--
-- An apply writes each group by the difference (one POST of the additions,
-- one DELETE per removal), so a member that no listing showed is never
-- touched; it refuses to write anything when the plan has an error or a
-- guard trips. One group's failure does not stop the others.
local type, ipairs, pairs, tostring, require =
  type, ipairs, pairs, tostring, require
local format, lower, find = string.format, string.lower, string.find
local concat, sort = table.concat, table.sort

local A = require("cfiam.args")
local I = require("cfiam.ids")
local P = require("cfiam.pager")
local D = require("cfiam.desired")
local err_ = A.err

local _M = {}

local PLAN_OPTS = { concurrency = "number", groups = "table", progress = "function" }
local APPLY_OPTS = { concurrency = "number", log = "function", progress = "function" }
local DUMP_OPTS = { concurrency = "number", groups = "table" }

local DEFAULT_CONCURRENCY = 8

-- Raises unless the option groups, when given, is a list of strings.
local function check_group_names(names, fname)
  if names == nil then return end
  A.check_list(names, "option groups", fname)
  for i = 1, #names do
    if type(names[i]) ~= "string" then
      A.raise(format("bad argument to '%s' (option groups[%d]: string "
        .. "expected, got %s)", fname, i, type(names[i])))
    end
  end
end

-- The option's value (default 8), or nil, invalid_argument (as for every
-- helper's concurrency).
local function concurrency_of(opts)
  local err = A.check_concurrency(opts)
  if err then return nil, err end
  return opts.concurrency or DEFAULT_CONCURRENCY
end

---------------------------------------------------------------------------
-- Many requests: client:request_many when the C module has it, else one
-- client:request after another (same results: out[i] = { result, meta } or
-- { err }; a batch refused whole gives every call its error).
---------------------------------------------------------------------------

local function fetch_all(client, calls, concurrency)
  if #calls == 0 then return {} end
  if client.request_many then
    local out, err = client:request_many(calls, { concurrency = concurrency })
    if not out then
      -- The whole batch failed (nothing sent, or a bad call): every call
      -- carries that error.
      out = {}
      for i = 1, #calls do out[i] = { err = err } end
    end
    return out
  end
  local out = {}
  for i, c in ipairs(calls) do
    local res, meta = client:request(c[1], c[2], { query = c.query, ids = c.ids,
      json = c.json, decode = c.decode })
    if res == nil and type(meta) == "table" and meta.kind then
      out[i] = { err = meta }
    else
      out[i] = { result = res, meta = meta }
    end
  end
  return out
end
_M._fetch_all = fetch_all

---------------------------------------------------------------------------
-- Complete listings of many paged collections at once, in shared rounds:
-- each round asks, in one batch, for the pages every open listing wants
-- (cfiam.pager's rules: page 1, then every page total_count calls for,
-- then one page at a time while the last came back full) and feeds each
-- listing its answers in page order. on_done(spec, err, items) is called
-- as each listing ends and may return more specs to list in the same
-- rounds (the group listings once the account's groups are known). Each
-- spec gets spec.index; returns out[index] = items and errs[index] = err.
---------------------------------------------------------------------------

local function list_all(client, specs, concurrency, on_done)
  local st = {}
  local function add(s)
    local p = P.pager{ client = client, path = s.path, query = s.query,
      per_page = s.per_page, decode = s.decode, what = s.what }
    st[#st + 1] = { spec = s, p = p, items = {} }
    s.index = #st
  end
  for _, s in ipairs(specs) do add(s) end
  local out, errs = {}, {}
  local function finish(l, err)
    l.closed = true
    if err then errs[l.spec.index] = err else out[l.spec.index] = l.items end
    if on_done then
      local more = on_done(l.spec, err, l.items)
      for _, s in ipairs(more or {}) do add(s) end
    end
  end
  while true do
    local calls, owner = {}, {}
    for _, l in ipairs(st) do
      if not l.closed then
        local from, last = P.want(l.p)
        if not from then
          finish(l, last)
        else
          for page = from, last do
            calls[#calls + 1] = P.call(l.p, page)
            owner[#calls] = l
          end
        end
      end
    end
    if #calls == 0 then break end
    local res = fetch_all(client, calls, concurrency)
    for n, r in ipairs(res) do
      local l = owner[n]
      if not l.closed then
        local items, err = P.take(l.p, r)
        if not items then
          finish(l, err)
        else
          for k = 1, #items do l.items[#l.items + 1] = items[k] end
        end
      end
    end
    -- A listing whose last page was short is complete once all its pages
    -- of this round were read.
    for _, l in ipairs(st) do
      if not l.closed and l.p.ended then
        local ok, err = P.finish(l.p)
        finish(l, not ok and err or nil)
      end
    end
  end
  return out, errs
end
_M._list_all = list_all

---------------------------------------------------------------------------
-- Plans
---------------------------------------------------------------------------

local function sort_key(e)
  return (e.email and lower(e.email) or "\255") .. "\0" .. e.id
end

-- Sorts entries by e-mail, then id. Listings come in e-mail order, so the
-- usual case is a check that finds them sorted already.
local function sorted(list)
  local keys, in_order = {}, true
  local prev
  for i = 1, #list do
    local e = list[i]
    local k = sort_key(e)
    keys[e] = k
    if prev and k < prev then in_order = false end
    prev = k
  end
  if not in_order then
    sort(list, function(a, b) return keys[a] < keys[b] end)
  end
  return list
end

local function copy(e)
  return { id = e.id, email = e.email, status = e.status }
end

-- The account's member index from a listing.
local index_of = I.index_of

-- Resolves a list of ids and addresses: entries, and the places of the
-- unknown ones.
local function resolve(index, list, where, lines, source)
  local entries, unknown, places, seen = {}, {}, {}, {}
  for i, v in ipairs(list) do
    local e = I.is_email(v) and index.by_email[lower(v)] or index.by_id[v]
    if e then
      if not seen[e.id] then seen[e.id] = true; entries[#entries + 1] = e end
    else
      unknown[#unknown + 1] = v
      local line = lines and lines[i]
      places[#places + 1] = format("%s%s: %s", source and line and
        (source .. ":" .. line .. ": ") or "", where[i], v)
    end
  end
  return entries, unknown, places
end

local function unknown_error(account, unknown, places)
  local shown = {}
  for i = 1, #places do
    if i > 5 then
      shown[#shown + 1] = format("and %d more", #places - 5)
      break
    end
    shown[#shown + 1] = places[i]
  end
  return err_("invalid_argument", format("%d %s not a member of account %s: %s",
    #unknown, #unknown == 1 and "entry is" or "entries are", account,
    concat(shown, "; ")), { unknown = unknown })
end

local function plural(n, word)
  return format("%d %s%s", n, word, n == 1 and "" or "s")
end

-- The guard error for one group's plan, or nil: `after` is how many
-- members the group holds once written, `hit` the protected members it
-- removes. plan_account sets it; apply_account checks it again.
local function guard_of(p, after, hit, account)
  local label = p.name and A.quote(p.name) or p.id
  local e
  if #hit > 0 then
    e = err_("guard", format("the plan removes protected member%s %s "
      .. "from group %s", #hit == 1 and "" or "s", A.quote_list(hit), label))
  elseif #p.remove > 0 and after == 0 and not p.allow_empty then
    e = err_("guard", format("the plan empties group %s (%s removed); "
      .. "set allow_empty: true to mean that", label, plural(#p.remove, "member")))
  elseif #p.remove > p.max_removals then
    e = err_("guard", format("the plan removes %d members from group %s, "
      .. "more than max_removals (%s)", #p.remove, label, tostring(p.max_removals)))
  end
  if e then e.account = account end
  return e
end

-- No limit (.inf) in a plan: 2^53, which JSON holds (inf it cannot) and no
-- group's removals reach, so a stored plan keeps its meaning.
local NO_LIMIT = 2 ^ 53

-- One group's plan from its desired entries and its current members.
local function plan_group(g, desired, current, protected, account)
  local want = {}
  for _, e in ipairs(desired) do want[e.id] = true end
  local p = { key = g.key, name = g.name, id = g.id, create = g.create_needed or false,
    max_removals = g.max_removals == math.huge and NO_LIMIT or g.max_removals,
    allow_empty = g.allow_empty,
    ignore_pending = g.ignore_pending,
    add = {}, remove = {}, keep = {}, ignored = {} }
  local have, stay = {}, 0
  for _, m in ipairs(current) do
    local e = I.entry(m)
    have[e.id] = true
    if want[e.id] then
      p.keep[#p.keep + 1] = e
      stay = stay + 1
    elseif g.ignore_pending and e.status == "pending" then
      e.member = true -- in the group now, and stays (apply counts it)
      p.ignored[#p.ignored + 1] = e
      stay = stay + 1
    else
      p.remove[#p.remove + 1] = e
    end
  end
  for _, e in ipairs(desired) do
    if not have[e.id] then
      if g.ignore_pending and e.status == "pending" then
        p.ignored[#p.ignored + 1] = copy(e)
      else
        p.add[#p.add + 1] = copy(e)
      end
    end
  end
  sorted(p.add); sorted(p.remove); sorted(p.keep); sorted(p.ignored)
  local hit = {}
  for _, e in ipairs(p.remove) do
    if protected[e.id] then hit[#hit + 1] = e.email or e.id end
  end
  p.guard = guard_of(p, stay + #p.add, hit, account)
  p.changes = #p.add + #p.remove > 0 or p.create
  return p
end

-- One line for a plan's counts (plan.summary.line).
local function summary_line(plan)
  local s = plan.summary
  local line = format("%s change%s: %d to add, %d to remove; %s unchanged",
    plural(s.change, "group"), s.change == 1 and "s" or "",
    s.add, s.remove, plural(s.unchanged, "group"))
  if s.create > 0 then line = line .. format("; %d to create", s.create) end
  if s.failed > 0 then line = line .. format("; %d failed", s.failed) end
  if s.refused > 0 then line = line .. format("; %d refused", s.refused) end
  return line
end

local function summarise(plan)
  local s = { groups = #plan.groups, change = 0, create = 0, add = 0, remove = 0,
    unchanged = 0, failed = 0, refused = 0 }
  for _, g in ipairs(plan.groups) do
    if g.error then
      s.failed = s.failed + 1
    else
      if g.changes then s.change = s.change + 1 else s.unchanged = s.unchanged + 1 end
      if g.create then s.create = s.create + 1 end
      s.add, s.remove = s.add + #g.add, s.remove + #g.remove
      if g.guard then s.refused = s.refused + 1 end
    end
  end
  plan.summary = s
  s.line = summary_line(plan)
  return s
end

local function select_groups(cfg, only)
  if not only then return cfg.groups end
  local by, out = {}, {}
  for _, g in ipairs(cfg.groups) do by[g.key] = g end
  for i = 1, #only do
    local name = only[i]
    local g = by[name] or by[lower(name)]
    if not g then
      return nil, err_("invalid_argument", format("group %s is not in the "
        .. "desired state", A.quote(name)))
    end
    if not out[g] then out[g] = true; out[#out + 1] = g end
  end
  return out
end

-- The API path of `kind` (core.path): path, or nil, err for a malformed id
-- (an id a server sent, or a plan table edited by hand).
local function path_of(client, kind, ...)
  return require("cfiam.core").path(client, kind, ...)
end

--- Computes what an apply would do for every group of the desired state.
-- syntax: plan, err = client:plan_account(cfg [, opts])
-- cfg: what cfiam.load_desired returns, or a table it accepts. opts:
-- concurrency (1-64, default 8), groups (only these keys of the file),
-- progress (function(done, total), called as group listings complete).
-- @return plan = { account, groups = { sorted by name: { key, name, id,
--   create, add, remove, keep, ignored, guard?, changes } }, refused =
--   { guard errors }, summary }, or nil, err (err.plan holds the partial
--   plan when some groups failed; err.failed names them).
function _M.plan_account(client, cfg, opts)
  opts = A.check_opts(opts, PLAN_OPTS, "plan_account", client)
  check_group_names(opts.groups, "plan_account")
  if type(cfg) ~= "table" then
    A.raise("bad argument to 'plan_account' (cfg: table expected, got " .. type(cfg) .. ")")
  end
  local concurrency, cerr = concurrency_of(opts)
  if not concurrency then return nil, cerr end
  local desired, err = D.load_desired(cfg)
  if not desired then return nil, err end
  local chosen
  chosen, err = select_groups(desired, opts.groups)
  if not chosen then return nil, err end
  local account = desired.account
  local plan = { account = account, source = desired.source, groups = {}, refused = {} }
  local groups, spec_of = {}, {}
  for _, g in ipairs(chosen) do
    groups[#groups + 1] = { key = g.key, name = g.name, id = g.id, cfg = g }
  end
  local total, done = #groups, 0
  local progress = opts.progress
  local listing_err
  -- Once the account's groups are known: each group found, and a listing
  -- of its members in the same rounds as the account's members.
  local function resolve_groups(list)
    local by_name, by_id = {}, {}
    for _, g in ipairs(list) do
      if type(g.name) ~= "string" or type(g.id) ~= "string" then
        listing_err = err_("invalid_response", "listing the user groups of account "
          .. account .. ": a group has no string id or name")
        return
      end
      local same = by_name[g.name] or {}
      same[#same + 1] = g
      by_name[g.name] = same
      by_id[lower(g.id)] = g
    end
    local more, seen = {}, {}
    for _, p in ipairs(groups) do
      local g = p.cfg
      if g.id then
        local found = by_id[g.id]
        if found then p.name = found.name
        else
          p.error = err_("not_found", format("no user group with id %s in account %s",
            g.id, account))
        end
      else
        local found = by_name[g.name] or {}
        if #found == 1 then
          p.id = lower(found[1].id)
        elseif #found > 1 then
          p.error = err_("invalid_argument", format("%d user groups are named %s in "
            .. "account %s; use the group id", #found, A.quote(g.name), account))
        elseif g.create then
          p.create_needed = true
        else
          p.error = err_("not_found", format("no user group named %s in account %s "
            .. "(set create: true to create it)", A.quote(g.name), account))
        end
      end
      if p.id then
        if seen[p.id] then
          p.error = err_("invalid_argument", format("group %s is named twice in the "
            .. "desired state (as %s and %s)", p.id, A.quote(seen[p.id]), A.quote(g.key)))
        else
          seen[p.id] = g.key
          local path, perr = path_of(client, "group_members", account, p.id)
          if path then
            local spec = { path = path, decode = "members",
              per_page = P.GROUP_PAGE, what = "the members of group " .. p.id }
            more[#more + 1] = spec
            spec_of[spec] = p
          else
            p.error = perr
          end
        end
      end
      if p.error or p.create_needed then done = done + 1 end
    end
    if progress then progress(done, total) end
    return more
  end
  local groups_path, account_path
  groups_path, err = path_of(client, "groups", account)
  if groups_path then account_path, err = path_of(client, "account_members", account) end
  if not account_path then return nil, err end
  local groups_spec = { path = groups_path,
    per_page = P.GROUP_PAGE, what = "the user groups of account " .. account }
  local account_spec = { path = account_path, decode = "members",
    per_page = P.ACCOUNT_PAGE, what = "the members of account " .. account }
  local lists, errs = list_all(client, { groups_spec, account_spec }, concurrency,
    function(spec, e, items)
      if spec == groups_spec then
        if not e then return resolve_groups(items) end
      elseif spec_of[spec] then
        local p = spec_of[spec]
        p.current, p.error = items, e
        done = done + 1
        if progress then progress(done, total) end
      end
    end)
  if errs[groups_spec.index] then return nil, errs[groups_spec.index] end
  if listing_err then return nil, listing_err end
  if errs[account_spec.index] then return nil, errs[account_spec.index] end
  local index = index_of(lists[account_spec.index])
  local protected = {}
  local pe, unknown, places = resolve(index, desired.protect,
    desired.protect_where or {}, nil, desired.source)
  if #unknown > 0 then return nil, unknown_error(account, unknown, places) end
  plan.protect = {}
  for _, e in ipairs(pe) do
    if not protected[e.id] then plan.protect[#plan.protect + 1] = e.id end
    protected[e.id] = true
  end
  sort(plan.protect)
  local failed, first_err = {}, nil
  for _, p in ipairs(groups) do
    local g = p.cfg
    if not p.error then
      local entries
      entries, unknown, places = resolve(index, g.members, g.member_where,
        g.member_lines, desired.source)
      if #unknown > 0 then
        p.error = unknown_error(account, unknown, places)
      else
        local q = plan_group({ key = g.key, name = p.name, id = p.id,
          create_needed = p.create_needed, max_removals = g.max_removals,
          allow_empty = g.allow_empty, ignore_pending = g.ignore_pending },
          entries, p.current or {}, protected, account)
        for k, v in pairs(q) do p[k] = v end
      end
    end
    p.cfg, p.current, p.create_needed = nil, nil, nil
    if p.error then
      p.add, p.remove, p.keep, p.ignored = {}, {}, {}, {}
    end
  end
  sort(groups, function(a, b)
    local x, y = a.name or a.id or a.key, b.name or b.id or b.key
    if x ~= y then return x < y end
    return (a.id or "") < (b.id or "")
  end)
  plan.groups = groups
  for _, p in ipairs(groups) do
    if p.error then
      failed[#failed + 1] = p.name or p.key
      first_err = first_err or p.error
    elseif p.guard then
      plan.refused[#plan.refused + 1] = p.guard
    end
  end
  summarise(plan)
  if #failed > 0 then
    plan.failed = failed
    return nil, err_(first_err.kind, format("planning account %s: %s of %d "
      .. "failed: %s", account, plural(#failed, "group"), #groups,
      tostring(first_err.message)), { plan = plan, failed = failed,
      status = first_err.status, ray_id = first_err.ray_id,
      unknown = first_err.unknown, errors = first_err.errors })
  end
  return plan
end

---------------------------------------------------------------------------
-- Apply
---------------------------------------------------------------------------

-- Raises unless `plan` has the shape plan_account gives it: a plan may have
-- been stored, edited or built by hand, and a wrong one must fail before
-- anything is sent, naming the place.
local function check_plan(plan, client)
  local function bad(where, what)
    A.raise(format("bad argument to 'apply_account' (plan%s: %s)", where, what))
  end
  if type(plan) ~= "table" then bad("", "a plan from plan_account expected, got " .. type(plan)) end
  if not require("cfiam").is_id(plan.account) then
    bad(".account", "a 32-character hexadecimal id expected, got " .. A.quote(plan.account, client))
  end
  if plan.protect ~= nil then
    if type(plan.protect) ~= "table" then bad(".protect", "table expected, got " .. type(plan.protect)) end
    A.check_list(plan.protect, "plan.protect", "apply_account")
    for i, id in ipairs(plan.protect) do
      if not require("cfiam").is_id(id) then
        bad(format(".protect[%d]", i), "a 32-character hexadecimal id expected, got " .. A.quote(id, client))
      end
    end
  end
  if plan.failed ~= nil then
    if type(plan.failed) ~= "table" then bad(".failed", "table expected, got " .. type(plan.failed)) end
    A.check_list(plan.failed, "plan.failed", "apply_account")
  end
  if type(plan.groups) ~= "table" then bad(".groups", "table expected, got " .. type(plan.groups)) end
  A.check_list(plan.groups, "plan.groups", "apply_account")
  for i, g in ipairs(plan.groups) do
    local at = format(".groups[%d]", i)
    if type(g) ~= "table" then bad(at, "table expected, got " .. type(g)) end
    if g.create and type(g.name) ~= "string" then
      bad(at .. ".name", "string expected for a group to create")
    end
    if (g.id ~= nil or not (g.create or g.error)) and not require("cfiam").is_id(g.id) then
      bad(at .. ".id", "a 32-character hexadecimal id expected, got " .. A.quote(g.id, client))
    end
    local mr = g.max_removals
    if not g.error and (type(mr) ~= "number" or mr ~= mr or mr < 0) then
      bad(at .. ".max_removals", "a number from 0 up expected, got " .. A.quote(mr, client))
    end
    if g.guard ~= nil and (type(g.guard) ~= "table" or type(g.guard.message) ~= "string") then
      bad(at .. ".guard", "a guard error with a message expected")
    end
    for _, part in ipairs({ "add", "remove", "keep", "ignored" }) do
      local list = g[part]
      if list ~= nil or part ~= "ignored" then
        if type(list) ~= "table" then bad(at .. "." .. part, "table expected, got " .. type(list)) end
        A.check_list(list, "plan" .. at .. "." .. part, "apply_account")
        for j, e in ipairs(list) do
          if type(e) ~= "table" or not require("cfiam").is_id(e.id) then
            bad(format("%s.%s[%d]", at, part, j), "a member with a 32-character "
              .. "hexadecimal id expected")
          end
        end
      end
    end
  end
end

local function ids_of(list)
  local out = {}
  for i, e in ipairs(list) do out[i] = e.id end
  return out
end

local function now_iso()
  return os.date("!%Y-%m-%dT%H:%M:%SZ")
end

-- Creates a group: the client's create_group when it has one, else one
-- POST (same request). Returns the group's id or nil, err.
local function create_group(client, account, name)
  if client.create_group then
    local g, err = client:create_group(account, { name = name })
    if not g then return nil, err end
    return lower(g.id)
  end
  local body = require("cjson").new().encode({ name = name })
  local path, err = path_of(client, "groups", account)
  if not path then return nil, err end
  local g
  g, err = client:request("POST", path, { json = body })
  if not g then return nil, err end
  if type(g) ~= "table" or type(g.id) ~= "string" then
    return nil, err_("invalid_response", "creating group " .. A.quote(name)
      .. ": the answer has no group id")
  end
  return lower(g.id)
end

-- One batch of writes for the groups of `pending` not failed so far:
-- "add" (one POST of each group's additions) or "remove" (one DELETE per
-- removal). A group whose write fails is marked failed (w.failed): it gets
-- no removals after a failed addition. A 404 to a DELETE is noted
-- (w.not_found) for check_gone.
local function write_batch(client, account, pending, op, concurrency)
  local calls, owner = {}, {}
  -- a path from a malformed id fails its group, nothing sent for it
  local function path(w, kind, id)
    local p, err = path_of(client, kind, account, w.r.id, id)
    if not p then
      w.r.errors[#w.r.errors + 1] = err
      w.failed = true
    end
    return p
  end
  for _, w in ipairs(pending) do
    if not w.failed and op == "add" and #w.g.add > 0 then
      local p = path(w, "group_members")
      if p then
        calls[#calls + 1] = { "POST", p, ids = ids_of(w.g.add), decode = "members" }
        owner[#calls] = { w = w }
      end
    elseif not w.failed and op == "remove" then
      for _, e in ipairs(w.g.remove) do
        local p = path(w, "group_member", e.id)
        if not p then break end
        calls[#calls + 1] = { "DELETE", p }
        owner[#calls] = { w = w, id = e.id }
      end
    end
  end
  if #calls == 0 then return end
  local res = fetch_all(client, calls, concurrency)
  for n, out in ipairs(res) do
    local o = owner[n]
    local r = o.w.r
    local meta = out.meta or out.err
    if type(meta) == "table" and meta.ray_id then r.ray_ids[#r.ray_ids + 1] = meta.ray_id end
    if out.err and op == "remove" and out.err.kind == "not_found" then
      o.w.not_found = true -- the member was gone already, or the group is
      r.removed[#r.removed + 1] = o.id
    elseif out.err then
      r.errors[#r.errors + 1] = out.err
      o.w.failed = true
    elseif op == "add" then
      r.added = ids_of(o.w.g.add)
    else
      r.removed[#r.removed + 1] = o.id
    end
  end
end

-- A 404 to a DELETE means the member was gone already, unless the group
-- itself is: each group that had one is read once, and a missing group
-- fails (its "removals" did not happen).
local function check_gone(client, account, pending)
  for _, w in ipairs(pending) do
    if w.not_found then
      local ok, err = path_of(client, "group", account, w.r.id)
      if ok then ok, err = client:request("GET", ok) end
      if ok == nil and err.kind == "not_found" then
        w.r.removed = {}
        w.r.errors[#w.r.errors + 1] = err_("not_found", format("group %s no "
          .. "longer exists; nothing removed", w.r.id), { status = err.status,
          ray_id = err.ray_id })
      elseif ok == nil then
        w.r.errors[#w.r.errors + 1] = err
      end
    end
  end
end

--- Applies a plan from plan_account: every group by the difference.
-- syntax: result, err = client:apply_account(plan [, opts])
-- opts: concurrency (1-64, default 8), log (function(record), called once
-- per group written, record = { time, account, group_id, group_name,
-- created, added, removed, outcome, ray_id, error? }), progress
-- (function(done, total)).
-- @return result = { groups = { { name, id, outcome = "written" |
--   "partial" | "failed" | "unchanged", created, added, removed, errors } },
--   written, failed }, or nil, err: kind "guard" (refused; nothing
--   written; err.plan), or the first failure's kind with err.result when a
--   group failed (the others were written).
function _M.apply_account(client, plan, opts)
  opts = A.check_opts(opts, APPLY_OPTS, "apply_account", client)
  check_plan(plan, client)
  local concurrency, cerr = concurrency_of(opts)
  if not concurrency then return nil, cerr end
  local account = lower(plan.account)
  if plan.failed and #plan.failed > 0 then
    return nil, err_("invalid_argument", format("not applied: the plan has "
      .. "failed groups (%s); nothing written", A.quote_list(plan.failed, client)), { plan = plan })
  end
  local refused, protected = {}, {}
  for _, id in ipairs(plan.protect or {}) do protected[lower(id)] = true end
  for _, g in ipairs(plan.groups) do
    if g.error then
      return nil, err_("invalid_argument", "not applied: the plan of group "
        .. A.quote(g.name or g.key) .. " failed; nothing written", { plan = plan })
    end
    -- The guards again, from the plan's own lists: a stored or edited
    -- plan cannot drop its refusal (the group is empty after the write when
    -- it keeps and adds no one, and no ignored entry is a member now).
    local hit = {}
    for _, e in ipairs(g.remove) do
      if protected[lower(e.id)] then hit[#hit + 1] = e.email or e.id end
    end
    local stay = #g.keep + #g.add -- and the ignored who are members now
    for _, e in ipairs(g.ignored or {}) do
      if e.member == true then stay = stay + 1 end
    end
    local guard = g.guard or guard_of(g, stay, hit, account)
    if guard then refused[#refused + 1] = guard end
  end
  if #refused > 0 then
    local msgs = {}
    for _, e in ipairs(refused) do msgs[#msgs + 1] = e.message end
    return nil, err_("guard", format("not applied, nothing written: %s",
      concat(msgs, "; ")), { plan = plan, refused = refused })
  end
  local results, pending = {}, {}
  for _, g in ipairs(plan.groups) do
    local r = { name = g.name, id = g.id and lower(g.id), key = g.key, outcome = "unchanged",
      created = false, added = {}, removed = {}, errors = {}, ray_ids = {},
      planned = #g.add + #g.remove }
    results[#results + 1] = r
    if #g.add + #g.remove > 0 or g.create then pending[#pending + 1] = { g = g, r = r } end
  end
  local total, done = #pending, 0
  if opts.progress then opts.progress(0, total) end
  -- Groups to create first (their ids are needed for the members).
  for _, w in ipairs(pending) do
    if w.g.create then
      local id, err = create_group(client, account, w.g.name)
      if id then
        w.r.id, w.r.created = id, true
      else
        w.r.errors[#w.r.errors + 1] = err
        w.failed = true
      end
    end
  end
  -- Then the additions of every group, in one batch; then the removals of
  -- the groups whose additions landed: a refused addition (a member that
  -- cannot join, a 5xx) must not leave a group emptied by its removals.
  write_batch(client, account, pending, "add", concurrency)
  write_batch(client, account, pending, "remove", concurrency)
  check_gone(client, account, pending)
  local written, failed, first_err = 0, {}, nil
  for _, w in ipairs(pending) do
    local r = w.r
    local did = #r.added + #r.removed
    if #r.errors == 0 then
      r.outcome = "written"
      written = written + 1
    else
      r.outcome = (did > 0 or r.created) and "partial" or "failed"
      failed[#failed + 1] = r.name or r.key
      first_err = first_err or r.errors[1]
    end
    sort(r.removed)
    done = done + 1
    if opts.progress then opts.progress(done, total) end
    if opts.log then
      local last = r.errors[1]
      opts.log({ time = now_iso(), account = account, group_id = r.id,
        group_name = r.name, created = r.created, added = r.added,
        removed = r.removed, outcome = r.outcome,
        ray_id = (last and last.ray_id) or r.ray_ids[1], ray_ids = r.ray_ids,
        error = last and tostring(last.message) or nil })
    end
  end
  local result = { account = account, groups = results, written = written,
    failed = #failed }
  if #failed > 0 then
    -- The cause before the list, which names five: the message is bounded.
    return nil, err_(first_err.kind, format("applying to account %s: %s of %d "
      .. "failed, %d written: %s; failed: %s", account, plural(#failed, "group"), total,
      written, tostring(first_err.message), A.quote_list(failed, client)),
      { result = result, failed = failed, status = first_err.status,
        ray_id = first_err.ray_id, reason = first_err.reason, errors = first_err.errors })
  end
  return result
end

---------------------------------------------------------------------------
-- Dump
---------------------------------------------------------------------------

--- What the account's groups hold now, as a desired state that a plan
-- reports as no changes.
-- syntax: state, err = client:dump_account(account [, opts])
-- opts: groups (names or ids; default every group), concurrency.
-- @return { account, groups = { sorted: { key, name, id, members = {
--   sorted addresses, or ids where the account knows no address } } } },
--   or nil, err.
function _M.dump_account(client, account, opts)
  A.check_string(account, "account", "dump_account")
  opts = A.check_opts(opts, DUMP_OPTS, "dump_account", client)
  check_group_names(opts.groups, "dump_account")
  local concurrency, cerr = concurrency_of(opts)
  if not concurrency then return nil, cerr end
  local err = A.check_id(account, "account")
  if err then return nil, err end
  account = lower(account)
  local groups_path, account_path
  groups_path, err = path_of(client, "groups", account)
  if groups_path then account_path, err = path_of(client, "account_members", account) end
  if not account_path then return nil, err end
  local lists, errs = list_all(client, { { path = groups_path, per_page = P.GROUP_PAGE,
    what = "the user groups of account " .. account } }, concurrency)
  if errs[1] then return nil, errs[1] end
  local all, count = {}, {}
  for _, g in ipairs(lists[1]) do
    if type(g.name) ~= "string" or type(g.id) ~= "string" then
      return nil, err_("invalid_response", "listing the user groups of account "
        .. account .. ": a group has no string id or name")
    end
    all[#all + 1] = { id = lower(g.id), name = g.name }
    count[g.name] = (count[g.name] or 0) + 1
  end
  local chosen = all
  if opts.groups then
    chosen = {}
    local taken = {}
    for i = 1, #opts.groups do
      local want = opts.groups[i]
      local hit
      for _, g in ipairs(all) do
        if g.id == lower(want) or g.name == want then
          if hit and hit ~= g then
            return nil, err_("invalid_argument", format("%d user groups are named "
              .. "%s in account %s; use the group id", count[want], A.quote(want), account))
          end
          hit = g
        end
      end
      if not hit then
        return nil, err_("not_found", format("no user group %s in account %s",
          A.quote(want), account))
      end
      if not taken[hit] then taken[hit] = true; chosen[#chosen + 1] = hit end
    end
  end
  local specs = {}
  for i, g in ipairs(chosen) do
    local path
    path, err = path_of(client, "group_members", account, g.id)
    if not path then return nil, err end
    specs[i] = { path = path, decode = "members",
      per_page = P.GROUP_PAGE, what = "the members of group " .. g.id }
  end
  specs[#specs + 1] = { path = account_path, decode = "members",
    per_page = P.ACCOUNT_PAGE, what = "the members of account " .. account }
  lists, errs = list_all(client, specs, concurrency)
  for i = 1, #specs do
    if errs[i] then return nil, errs[i] end
  end
  local index = index_of(lists[#specs])
  local out = { account = account, groups = {} }
  for i, g in ipairs(chosen) do
    local entries = {}
    for _, m in ipairs(lists[i]) do
      local e = I.entry(m)
      local known = index.by_id[e.id]
      -- An address only when it leads back to this very member.
      local email = known and known.email
      if email and index.by_email[lower(email)] ~= known then email = nil end
      entries[#entries + 1] = { id = e.id, email = email }
    end
    sorted(entries)
    local members = {}
    for k, e in ipairs(entries) do members[k] = e.email or e.id end
    -- A name shared by several groups, or that reads as an id, is written
    -- as the id.
    local by_id = count[g.name] > 1 or require("cfiam").is_id(g.name)
      or find(g.name, "\0", 1, true) -- YAML readers cut a string at a NUL
    out.groups[#out.groups + 1] = { key = by_id and g.id or g.name, name = g.name,
      id = g.id, members = members }
  end
  sort(out.groups, function(a, b)
    if a.name ~= b.name then return a.name < b.name end
    return a.id < b.id
  end)
  return out
end

return _M
