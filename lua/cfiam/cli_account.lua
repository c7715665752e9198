--- cfiam.cli_account: the account-wide subcommands of the `cfiam` command
-- (cfiam.cli hands them over):
--
--   cfiam plan  FILE [--json] [--detailed-exitcode] [--group NAME]... [--concurrency N]
--   cfiam apply FILE [--yes] [--json] [--group NAME]... [--concurrency N] [--log FILE.jsonl]
--   cfiam dump  ACCOUNT [GROUP...] [--json]
--
-- A thin layer over cfiam.load_desired, client:plan_account,
-- client:apply_account and client:dump_account. Exit status: 0 success;
-- 1 API or network error, or a group that failed to be written; 2 usage
-- error, invalid file or argument, refused guard, or an apply that was not
-- confirmed. `plan --detailed-exitcode`: 0 no changes, 2 changes, 1 any
-- error (usage errors included).
local ipairs, tostring, tonumber, getmetatable, setmetatable =
  ipairs, tostring, tonumber, getmetatable, setmetatable
local require, pcall = require, pcall
local concat = table.concat
local format = string.format
local io, os = io, os

local _M = {}

_M.HELP = [[
usage:
  cfiam plan  FILE [--json] [--detailed-exitcode] [--group NAME]... [--concurrency N]
      Reads the account's groups named in FILE (YAML or JSON) and the
      account's members, and prints per group the members to add (+) and to
      remove (-), pending invitees marked, then a summary line. Writes
      nothing.
      --detailed-exitcode   exit 0 when nothing would change, 2 when
                            something would, 1 on any error (usage errors
                            included)
  cfiam apply FILE [--yes] [--json] [--group NAME]... [--concurrency N] [--log FILE.jsonl]
      Makes the same plan, refuses to write anything if a group fails, an
      address is unknown or a guard trips (max_removals, allow_empty,
      protect), asks for confirmation on a terminal (--yes without one),
      then writes every group by the difference (additions in one POST, one
      DELETE per removal) and prints each group's outcome.
      --log FILE.jsonl      append one JSON line per group written
  cfiam dump  ACCOUNT [GROUP...] [--json]
      Prints a FILE for the groups as they are now (every group, or those
      named): plan reports it as no changes.

  --group NAME       only this group of FILE (repeatable)
  --concurrency N    requests at a time, 1-64 (default 8)
  --json             one JSON document on standard output

FILE:
  account: 0123456789abcdef0123456789abcdef
  defaults: { max_removals: 10, ignore_pending: false, allow_empty: false }
  protect: [ breakglass@example.com ]
  groups:
    Engineering:                 # exact name, or a 32-hex group id
      members: [ alice@example.com, 4f5f0c14a2a41d5063dd301b2f829f04 ]
    On-call: { create: true, max_removals: 2, members: [ bob@example.com ] }

Exit status: 0 success; 1 API or network error, or a group not written;
2 usage error, invalid file, unknown address, refused guard, or an apply
not confirmed (plan --detailed-exitcode: 0 no changes, 2 changes, 1 error).
]]

local O = require("cfiam.cli_out")
local object, json, usage, Usage = O.object, O.json, O.usage, O.Usage
local interrupted, interruption = O.interrupted, O.interruption
local entries_doc, label, write, flush = O.entries_doc, O.label, O.write, O.flush
local clean = O.text
_M.json = json

---------------------------------------------------------------------------
-- Documents and lines
---------------------------------------------------------------------------

local function err_doc(err)
  if not err then return nil end
  local d = object({ kind = err.kind, message = err.message, status = err.status,
    ray_id = err.ray_id })
  if err.unknown then d.unknown = err.unknown end
  if err.file then d.file, d.line, d.key = err.file, err.line, err.key end
  return d
end

local function plan_doc(plan)
  local groups = {}
  for i, g in ipairs(plan.groups) do
    groups[i] = object({ key = g.key, name = g.name, id = g.id, create = g.create or false,
      changes = g.changes or false, add = entries_doc(g.add),
      remove = entries_doc(g.remove), ignored = entries_doc(g.ignored),
      unchanged = #(g.keep or {}), refused = g.guard and g.guard.message or nil,
      error = err_doc(g.error) })
  end
  local s = plan.summary or {}
  return object({ account = plan.account, groups = groups, summary = object({
    groups = s.groups, change = s.change, create = s.create, add = s.add,
    remove = s.remove, unchanged = s.unchanged, failed = s.failed,
    refused = s.refused }), changes = (s.change or 0) > 0 })
end

local function group_label(g)
  if g.name and g.id then return format("%s (%s)", clean(g.name), g.id) end
  return clean(g.name or g.id or g.key)
end

local function plan_lines(plan, out)
  for _, g in ipairs(plan.groups) do
    if g.error then
      out[#out + 1] = format("x %s: %s", group_label(g), clean(tostring(g.error)))
    elseif g.changes or #g.ignored > 0 or g.guard then
      local head = g.create and "+" or "~"
      local what = g.create and " (to create)" or ""
      out[#out + 1] = format("%s %s%s", head, group_label(g), what)
      for _, e in ipairs(g.add) do out[#out + 1] = "    + " .. label(e) end
      for _, e in ipairs(g.remove) do out[#out + 1] = "    - " .. label(e) end
      for _, e in ipairs(g.ignored) do
        out[#out + 1] = "    = " .. label(e) .. " (ignore_pending: left as is)"
      end
      if g.guard then out[#out + 1] = "    refused: " .. clean(g.guard.message) end
    end
  end
  out[#out + 1] = plan.summary.line
end

---------------------------------------------------------------------------
-- Arguments
---------------------------------------------------------------------------

local OPTIONS = {
  plan = { json = false, ["detailed-exitcode"] = false, group = "list", concurrency = true },
  apply = { json = false, yes = false, group = "list", concurrency = true, log = true },
  dump = { json = false, concurrency = true },
}

local function concurrency(opts)
  if not opts.concurrency then return nil end
  local n = tonumber(opts.concurrency)
  if not n or n < 1 or n > 64 or n % 1 ~= 0 then
    return nil, usage("--concurrency: expected a whole number from 1 to 64, got "
      .. clean(opts.concurrency))
  end
  return n
end

-- A progress line on standard error, on a terminal only, once a run has
-- lasted a second: "plan: 12/200 groups".
local function progress_for(what, opts, io_)
  if opts.json or not O.is_terminal(2) then return nil, function() end end
  local start, shown = os.time(), false
  local function tick(done, total)
    if shown or os.difftime(os.time(), start) >= 1 then
      shown = true
      write(io_.stderr, format("\r%s: %d/%d groups", what, done, total))
      io_.stderr:flush()
    end
  end
  local function clear()
    if shown then write(io_.stderr, "\r\27[K"); io_.stderr:flush() end
  end
  return tick, clear
end

---------------------------------------------------------------------------
-- Subcommands: doc, nil | nil, err (out collects text lines)
---------------------------------------------------------------------------

local run = {}

local function load_plan(c, cfiam, pos, opts, io_, what)
  if #pos < 1 then return nil, usage("missing FILE") end
  if #pos > 1 then return nil, usage("too many arguments (give groups with --group NAME)") end
  local n, e = concurrency(opts)
  if e then return nil, e end
  local cfg, err = cfiam.load_desired(pos[1])
  if not cfg then return nil, err end
  local tick, clear = progress_for(what, opts, io_)
  local plan
  plan, err = c:plan_account(cfg, { concurrency = n,
    groups = opts.group, progress = tick })
  clear()
  return plan, err, n
end

run.plan = function(c, cfiam, pos, opts, out, io_)
  local plan, err = load_plan(c, cfiam, pos, opts, io_, "plan")
  if not plan then
    if err and err.plan then plan_lines(err.plan, out) end
    return nil, err
  end
  plan_lines(plan, out)
  local doc = plan_doc(plan)
  if #plan.refused > 0 then
    local msgs = {}
    for _, e in ipairs(plan.refused) do msgs[#msgs + 1] = e.message end
    return nil, setmetatable({ kind = "guard", plan_doc = doc, message =
      "apply would refuse this plan: " .. concat(msgs, "; ") }, Usage)
  end
  return doc, nil, plan.summary.change > 0
end

local function outcome_lines(result, out)
  for _, r in ipairs(result.groups) do
    if r.outcome ~= "unchanged" then
      local what = format("+%d -%d", #r.added, #r.removed)
      if r.created then what = "created, " .. what end
      local line = format("%s: %s: %s", r.outcome, group_label(r), what)
      if r.errors[1] then
        line = line .. format(" (%d of %d changes made): %s", #r.added + #r.removed,
          r.planned, clean(tostring(r.errors[1])))
      end
      out[#out + 1] = line
    end
  end
  out[#out + 1] = format("%d group%s written, %d failed", result.written,
    result.written == 1 and "" or "s", result.failed)
end

local function result_doc(result)
  local groups = {}
  for _, r in ipairs(result.groups) do
    local errs = {}
    for i, e in ipairs(r.errors) do errs[i] = err_doc(e) end
    groups[#groups + 1] = object({ key = r.key, name = r.name, id = r.id,
      outcome = r.outcome, created = r.created, added = r.added,
      removed = r.removed, errors = errs })
  end
  return object({ account = result.account, groups = groups,
    written = result.written, failed = result.failed })
end

run.apply = function(c, cfiam, pos, opts, out, io_)
  local logf
  if opts.log then
    local ferr
    logf, ferr = io.open(opts.log, "ab")
    if not logf then return nil, usage("cannot open --log: " .. clean(ferr)) end
  end
  local plan, err, n = load_plan(c, cfiam, pos, opts, io_, "plan")
  if not plan then
    if logf then logf:close() end
    if err and err.plan then plan_lines(err.plan, out) end
    return nil, err
  end
  plan_lines(plan, out)
  local doc = object({ plan = plan_doc(plan), written = false })
  if #plan.refused > 0 or plan.summary.change == 0 then
    if logf then logf:close() end
    if #plan.refused == 0 then
      out[#out + 1] = "nothing to change"
      return doc
    end
    local _, rerr = c:apply_account(plan)
    rerr.plan_doc = doc.plan
    return nil, rerr
  end
  if not opts.yes then
    if not O.stdin_is_tty() then
      if logf then logf:close() end
      return nil, setmetatable({ kind = "refused", plan_doc = doc.plan, message =
        "not written: standard input is not a terminal to confirm on; pass --yes" }, Usage)
    end
    flush(out, opts, io_)
    write(io_.stderr, format("Apply this plan to %d group%s of account %s? [y/N] ",
      plan.summary.change, plan.summary.change == 1 and "" or "s", plan.account))
    io_.stderr:flush()
    if not O.confirmed(io_) then
      if logf then logf:close() end
      return nil, setmetatable({ kind = "refused", plan_doc = doc.plan,
        message = "not confirmed: nothing written" }, Usage)
    end
  end
  if interrupted() then
    if logf then logf:close() end
    return nil, interruption()
  end
  local tick, clear = progress_for("apply", opts, io_)
  local result
  result, err = c:apply_account(plan, { concurrency = n, progress = tick,
    log = logf and function(rec)
      write(logf, json(object(rec)), "\n")
      logf:flush()
    end })
  clear()
  if logf then logf:close() end
  result = result or err.result
  if not result then return nil, err end
  outcome_lines(result, out)
  doc.written = true
  doc.result = result_doc(result)
  if interrupted() then
    -- Stopped while writing: the outcomes say which groups were written.
    local e = interruption()
    e.result_doc = doc
    return nil, e
  end
  if err then
    err.result_doc = doc
    return nil, err
  end
  return doc
end

run.dump = function(c, _, pos, opts, out)
  if #pos < 1 then return nil, usage("missing ACCOUNT") end
  local n, e = concurrency(opts)
  if e then return nil, e end
  local names = {}
  for i = 2, #pos do names[#names + 1] = pos[i] end
  local state, err = c:dump_account(pos[1], { concurrency = n,
    groups = #names > 0 and names or nil })
  if not state then return nil, err end
  if opts.json then
    local groups = {}
    for _, g in ipairs(state.groups) do
      groups[g.key] = object({ members = g.members })
    end
    return object({ account = state.account, groups = object(groups) })
  end
  out[#out + 1] = (require("cfiam.desired").to_yaml(state,
    "cfiam dump of account " .. state.account .. " at " .. os.date("!%Y-%m-%dT%H:%M:%SZ"))
    :gsub("\n$", ""))
end

--- Runs `cfiam plan|apply|dump ...`. Returns the exit status.
function _M.main(argv, io_)
  io_ = io_ or { stdin = io.stdin, stdout = io.stdout, stderr = io.stderr }
  local ok, cfiam = pcall(require, "cfiam")
  if not ok then
    write(io_.stderr, "cfiam: cannot load the cfiam module: ", tostring(cfiam), "\n")
    return 1
  end
  O.setup() -- before anything is printed, usage errors included
  local cmd = argv[1]
  local allowed = OPTIONS[cmd]
  local pos, opts = O.parse(argv, 2, allowed)
  local detailed, json_mode = false, false
  for i = 2, #argv do
    if argv[i] == "--json" then json_mode = true end
    if argv[i] == "--detailed-exitcode" and cmd == "plan" then detailed = true end
  end
  local out = {}
  local doc, err, changes
  if not pos then
    err, opts = opts, { json = json_mode }
  elseif opts.help then
    write(io_.stdout, _M.HELP)
    return 0
  else
    local cok, client = pcall(cfiam.default_client)
    if not cok then
      err = usage(tostring(client))
    else
      doc, err, changes = run[cmd](client, cfiam, pos, opts, out, io_)
    end
  end
  if interrupted() and not (err and err.kind == "interrupted") then
    -- Stopped while reading: what was gathered is partial, not a plan.
    for i = #out, 1, -1 do out[i] = nil end
    err = interruption()
  end
  if err then
    local status = O.exit_status(err)
    if detailed and status == 2 then status = 1 end
    flush(out, opts, io_)
    if opts.json then
      local d = err.result_doc or object({})
      d.error = err_doc(err)
      if err.plan_doc then d.plan = err.plan_doc
      elseif err.plan then d.plan = plan_doc(err.plan) end
      write(io_.stdout, json(d), "\n")
    end
    if getmetatable(err) == Usage then
      write(io_.stderr, "cfiam: ", clean(err.message), "\n")
      if err.kind == "usage" then write(io_.stderr, "(see cfiam ", cmd, " --help)\n") end
    else
      write(io_.stderr, clean(tostring(err)), "\n")
    end
    return status
  end
  flush(out, opts, io_)
  if opts.json then write(io_.stdout, json(doc or {}), "\n") end
  if detailed and changes then return 2 end
  return 0
end

return _M
