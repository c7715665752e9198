--- cfiam.cli_account: the account-wide subcommands of the `cfiam` command
-- (cfiam.cli hands them over):
--
--   cfiam plan  FILE [--json] [--detailed-exitcode] [--group NAME]... [--concurrency N]
--   cfiam apply FILE [--yes] [--json] [--group NAME]... [--concurrency N] [--log FILE.jsonl]
--   cfiam dump  ACCOUNT [GROUP...] [--json] [--concurrency N]
--
-- (arguments parsed by cfiam.cli_args, help in cfiam.cli_help)
--
-- A thin layer over cfiam.load_desired, client:plan_account,
-- client:apply_account and client:dump_account. Exit status: 0 success;
-- 1 API or network error, or a group that failed to be written; 2 usage
-- error, invalid file or argument, refused guard, or an apply that was not
-- confirmed. `plan --detailed-exitcode`: 0 no changes, 2 changes, 1 any
-- error (usage errors included).
local ipairs, tostring, getmetatable, setmetatable =
  ipairs, tostring, getmetatable, setmetatable
local require, pcall = require, pcall
local concat = table.concat
local format = string.format
local io, os = io, os

local _M = {}

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
    ray_id = err.ray_id, errors = O.errors_doc(err) })
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
-- Progress
---------------------------------------------------------------------------

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

local function load_plan(c, cfiam, a, io_, what)
  local cfg, err = cfiam.load_desired(a.file)
  if not cfg then return nil, err end
  local tick, clear = progress_for(what, a, io_)
  local plan
  plan, err = c:plan_account(cfg, { concurrency = a.concurrency,
    groups = a.group, progress = tick })
  clear()
  return plan, err
end

run.plan = function(c, cfiam, a, out, io_)
  local plan, err = load_plan(c, cfiam, a, io_, "plan")
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

-- client:apply_account on the plan plan_account made from the server's
-- answers: a raise (an answer with an odd member id, say) is that answer's
-- fault, reported as invalid_response rather than as a bad argument.
local function apply_account(c, plan, opts)
  local ok, res, err = pcall(c.apply_account, c, plan, opts)
  if ok then return res, err end
  return nil, require("cfiam.args").err("invalid_response", "the plan made from the "
    .. "server's answers cannot be applied, nothing written: "
    .. tostring(res):gsub("^[^\n]-:%d+: ", ""):match("^[^\n]*"))
end

-- Plans, confirms and writes, logging to logf (or not): doc or nil, err.
local function apply(c, cfiam, a, out, io_, logf)
  local plan, err = load_plan(c, cfiam, a, io_, "plan")
  if not plan then
    if err and err.plan then plan_lines(err.plan, out) end
    return nil, err
  end
  plan_lines(plan, out)
  local doc = object({ plan = plan_doc(plan), written = false })
  if #plan.refused > 0 then
    local _, rerr = apply_account(c, plan)
    rerr.plan_doc = doc.plan
    return nil, rerr
  end
  if plan.summary.change == 0 then
    out[#out + 1] = "nothing to change"
    return doc
  end
  err = O.confirm(a, out, io_, format("Apply this plan to %d group%s of account %s? [y/N] ",
    plan.summary.change, plan.summary.change == 1 and "" or "s", plan.account), "written",
    { plan_doc = doc.plan })
  if err then return nil, err end
  if interrupted() then return nil, interruption() end
  local tick, clear = progress_for("apply", a, io_)
  local result
  result, err = apply_account(c, plan, { concurrency = a.concurrency, progress = tick,
    log = logf and function(rec)
      write(logf, json(object(rec)), "\n")
      O.flush_stream(logf)
    end })
  clear()
  result = result or err.result
  if not result then return nil, err end
  outcome_lines(result, out)
  doc.written = true
  doc.result = result_doc(result)
  if interrupted() then
    -- Stopped while writing: the outcomes say which groups were written.
    err = interruption()
  end
  if err then
    err.result_doc = doc
    return nil, err
  end
  return doc
end

run.apply = function(c, cfiam, a, out, io_)
  local logf
  if a.log then
    local ferr
    logf, ferr = io.open(a.log, "ab")
    if not logf then return nil, usage("cannot open --log: " .. clean(ferr)) end
  end
  local doc, err = apply(c, cfiam, a, out, io_, logf)
  if logf then logf:close() end
  return doc, err
end

run.dump = function(c, _, a, out)
  local state, err = c:dump_account(a.account, { concurrency = a.concurrency,
    groups = #a.groups > 0 and a.groups or nil })
  if not state then return nil, err end
  -- A name holding a credential would print redacted: as a key it would
  -- name no group (or, "[redacted]:", read as a list), so it is keyed by id.
  for _, g in ipairs(state.groups) do
    if O.scrubbed(g.key) ~= g.key then g.key = g.id end
  end
  if a.json then
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

--- Reports a failure of `cfiam cmd`: the JSON document (--json: the
-- error, and the plan or the outcomes so far), the one-line message, for a
-- usage error where to find help. detailed: plan --detailed-exitcode
-- (every error is 1). Returns the exit status.
function _M.fail(err, cmd, opts, out, io_, detailed)
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

--- Runs `cfiam plan|apply|dump ...` (p: cfiam.cli_args.parse's, cfiam
-- loaded, cfiam.cli_out set up). Returns the exit status.
function _M.run(p, io_, cfiam)
  local cmd, a, out = p.area, p.args, {}
  local detailed = a.detailed_exitcode
  local doc, err, changes
  local cok, client = pcall(cfiam.default_client)
  if not cok then
    err = usage(tostring(client))
  else
    doc, err, changes = run[cmd](client, cfiam, a, out, io_)
  end
  if interrupted() and not (err and err.kind == "interrupted") then
    -- Stopped while reading: what was gathered is partial, not a plan.
    for i = #out, 1, -1 do out[i] = nil end
    err = interruption()
  end
  if err then return _M.fail(err, cmd, a, out, io_, detailed) end
  flush(out, a, io_)
  if a.json then write(io_.stdout, json(doc or {}), "\n") end
  if detailed and changes then return 2 end
  return 0
end

return _M
