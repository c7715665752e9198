--- cfiam.cli: the `cfiam` command (bin/cfiam calls main(arg)).
--
--   cfiam members list | add | remove | sync  ACCOUNT GROUP ...
--   cfiam groups  list | show | create | rename | delete  ACCOUNT ...
--   cfiam plan | apply | dump ...             (cfiam.cli_account)
--
-- Arguments are parsed by argparse (cfiam.cli_args; the help texts are
-- cfiam.cli_help's). Exit status: 0 success, 1 API or network error, 2
-- usage error, invalid argument, refused guard or a write that was not
-- confirmed, 130 Ctrl-C. With --json, standard output carries exactly one
-- JSON document for every outcome ({"error": {...}} on failure); the
-- one-line error message goes to standard error. Everything printed goes
-- through write(), that is through the C scrubbing with the credentials of
-- the environment.
--
-- Terminal check: `sync` asks before writing only when standard input is
-- a terminal, probed with os.execute("test -t 0") (no C needed); the
-- environment variable CFIAM_TTY=1 (or 0) overrides the probe, so tests
-- and wrappers can drive the prompt through a pipe. The answer is read
-- from standard input; without a terminal `sync` writes only with --yes.
local type, ipairs, pairs, tostring, getmetatable =
  type, ipairs, pairs, tostring, getmetatable
local require, pcall = require, pcall
local concat = table.concat
local format, lower = string.format, string.lower
local io = io

local _M = {}

local O = require("cfiam.cli_out")
local object, json, text, usage, Usage = O.object, O.json, O.text, O.usage, O.Usage
local interrupted, interruption = O.interrupted, O.interruption
local entries_doc, label = O.entries_doc, O.label
local write, write_json = O.write, O.write_json
local quote = O.quote
_M.text = text
_M.flush = O.flush
local Args = require("cfiam.cli_args")
-- Every input read whole is bounded (16 MiB); loaded when used, once the
-- cfiam module is known to load.
local function read_all(f) return require("cfiam.desired").read_all(f) end

---------------------------------------------------------------------------
-- Documents
---------------------------------------------------------------------------

local function plan_doc(plan)
  return object({ add = entries_doc(plan.add), remove = entries_doc(plan.remove),
    keep = entries_doc(plan.keep) })
end

local function error_doc(err)
  local e = object({ kind = err.kind, message = err.message, status = err.status,
    ray_id = err.ray_id })
  e.errors = O.errors_doc(err)
  if err.plan then e.plan = plan_doc(err.plan) end
  if err.missing then e.missing = entries_doc(err.missing) end
  if err.unexpected then e.unexpected = entries_doc(err.unexpected) end
  if err.unknown then e.unknown = err.unknown end
  if err.invalid then e.invalid = err.invalid end
  return object({ error = e })
end

-- Ids and e-mail addresses from a text: white space or commas between
-- them, '#' to the end of a line is a comment.
local function read_list(s)
  local out = {}
  if s:sub(1, 3) == "\239\187\191" then s = s:sub(4) end -- a UTF-8 byte-order mark
  for line in (s .. "\n"):gmatch("([^\n]*)\n") do
    line = line:gsub("#.*$", "")
    for word in line:gmatch("[^%s,]+") do out[#out + 1] = word end
  end
  return out
end

-- The whole of a file, or nil, a usage error: a file that cannot be read
-- (missing, a directory, a read error) is never an empty list.
local function read_file(path, option)
  option = option or "--file"
  local f, why = io.open(path, "rb")
  local content
  if f then
    content, why = read_all(f)
    f:close()
  end
  if not content then
    why = tostring(why or "read error")
    if why:sub(1, #path + 2) == path .. ": " then why = why:sub(#path + 3) end
    return nil, usage(format("cannot read %s %s: %s", option, quote(path), text(why)))
  end
  return content
end

---------------------------------------------------------------------------
-- Subcommands
---------------------------------------------------------------------------

local function group_id(client, cfiam, account, group)
  if cfiam.is_id(group) then return lower(group) end
  local g, err = client:find_group(account, group)
  if not g then return nil, err end
  return g.id
end

-- The subcommands: each takes the client, the module, the parsed
-- arguments (cfiam.cli_args), the text lines to print and the streams,
-- and returns a JSON document (or nil), or nil, err.
local run = {}

run["members list"] = function(c, cfiam, a, out)
  local g, err = group_id(c, cfiam, a.account, a.group)
  if not g then return nil, err end
  local members
  members, err = c:list_members(a.account, g, { concurrency = a.concurrency })
  if not members then return nil, err end
  if a.json then return entries_doc(members) end
  for _, m in ipairs(members) do
    out[#out + 1] = format("%s\t%s\t%s", text(m.id), text(m.email or ""), text(m.status or ""))
  end
end

run["members add"] = function(c, cfiam, a, out)
  local g, err = group_id(c, cfiam, a.account, a.group)
  if not g then return nil, err end
  local members
  members, err = c:add_members(a.account, g, a.ids, { concurrency = a.concurrency })
  if not members then return nil, err end
  -- Report the members given, with the e-mail the API knows them by.
  local wanted = {}
  for _, v in ipairs(a.ids) do wanted[lower(v)] = true end
  local added = {}
  for _, m in ipairs(members) do
    if (type(m.id) == "string" and wanted[lower(m.id)])
        or (type(m.email) == "string" and wanted[lower(m.email)]) then
      added[#added + 1] = m
      out[#out + 1] = "+ " .. label(m)
    end
  end
  out[#out + 1] = format("%d member%s in the group", #members, #members == 1 and "" or "s")
  if a.json then
    return object({ added = entries_doc(added), members = entries_doc(members) })
  end
end

run["members remove"] = function(c, cfiam, a, out)
  local g, err = group_id(c, cfiam, a.account, a.group)
  if not g then return nil, err end
  local res
  res, err = c:remove_members(a.account, g, a.ids, { concurrency = a.concurrency })
  if not res then return nil, err end
  if a.json then
    return object({ removed = res.removed, not_members = res.not_members })
  end
  for _, id in ipairs(res.removed) do out[#out + 1] = "- " .. text(id) end
  for _, id in ipairs(res.not_members) do out[#out + 1] = "not a member: " .. text(id) end
  out[#out + 1] = format("%d removed, %d not members", #res.removed, #res.not_members)
end

---------------------------------------------------------------------------
-- members sync, in steps: the list, the plan (printed), the confirmation,
-- the write of exactly that plan.
---------------------------------------------------------------------------

-- The members to sync to: from the arguments, --file F or standard input
-- ('-'): list, from_stdin or nil, err.
local function sync_list(a, io_)
  local rest = a.ids
  if a.file and #rest > 0 then
    return nil, usage("give the members either as arguments, with --file, or with -")
  end
  if #rest == 1 and rest[1] == "-" then
    local content, why = read_all(io_.stdin)
    if not content then
      return nil, usage("cannot read standard input (-): " .. text(why))
    end
    return read_list(content), true
  elseif a.file then
    local content, err = read_file(a.file)
    if not content then return nil, err end
    return read_list(content), false
  end
  for _, v in ipairs(rest) do
    if v == "-" then return nil, usage("'-' (standard input) must be the only member argument") end
  end
  return rest, false
end

-- The library's write options for the guards and --replace, --concurrency.
local function sync_opts(a, extra)
  local o = { max_removals = a.max_removals, allow_empty = a.allow_empty and true or nil,
    concurrency = a.concurrency }
  for k, v in pairs(extra) do o[k] = v end
  return o
end

-- The plan and the guards, without writing (what the user confirms is then
-- written as is), printed as a diff: plan or nil, err.
local function sync_plan(c, a, g, list, out)
  local plan, err = c:sync_members(a.account, g, list, sync_opts(a, { dry_run = true }))
  if not plan then return nil, err end
  for _, x in ipairs(plan.add) do out[#out + 1] = "+ " .. label(x) end
  for _, x in ipairs(plan.remove) do out[#out + 1] = "- " .. label(x) end
  out[#out + 1] = format("%d to add, %d to remove, %d unchanged", #plan.add,
    #plan.remove, #plan.keep)
  return plan
end

run["members sync"] = function(c, cfiam, a, out, io_)
  local list, from_stdin = sync_list(a, io_)
  if not list then return nil, from_stdin end
  local g, err = group_id(c, cfiam, a.account, a.group)
  if not g then return nil, err end
  local plan
  plan, err = sync_plan(c, a, g, list, out)
  if not plan then return nil, err end
  local doc = plan_doc(plan)
  doc.dry_run, doc.written = a.dry_run and true or false, false
  if a.dry_run or (#plan.add == 0 and #plan.remove == 0) then
    out[#out + 1] = a.dry_run and "dry run: nothing written" or "nothing to change"
    return doc
  end
  err = O.confirm(a, out, io_, format("Apply this plan to group %s? [y/N] ", g), "written",
    { plan = plan }, from_stdin)
  if err then return nil, err end
  if interrupted() then return nil, interruption() end
  local written
  written, err = c:apply_plan(a.account, g, plan,
    sync_opts(a, { strategy = a.replace and "replace" or nil }))
  if not written then return nil, err end
  out[#out + 1] = format("written: %d added, %d removed", #plan.add, #plan.remove)
  doc.written = true
  return doc
end

run["groups list"] = function(c, _, a, out)
  local groups, err
  if a.name then
    local g
    g, err = c:find_group(a.account, a.name)
    groups = g and { g }
  else
    groups, err = c:list_groups(a.account, { concurrency = a.concurrency })
  end
  if not groups then return nil, err end
  if a.json then
    local list = {}
    for i, g in ipairs(groups) do list[i] = object(g) end
    return list
  end
  for _, g in ipairs(groups) do out[#out + 1] = format("%s\t%s", text(g.id), text(g.name)) end
end

---------------------------------------------------------------------------
-- groups show | create | rename | delete
---------------------------------------------------------------------------

-- GROUP as the library takes it: an id, or { name = } for anything else.
local function group_ref(cfiam, s)
  if cfiam.is_id(s) then return s end
  return { name = s }
end

-- The ids of a policy's permission or resource groups, with names if any.
local function policy_ids(list)
  local out = {}
  for i, x in ipairs(type(list) == "table" and list or {}) do
    local id = type(x) == "table" and tostring(x.id) or "?"
    out[i] = (type(x) == "table" and type(x.name) == "string")
      and format("%s (%s)", id, x.name) or id
  end
  return #out > 0 and text(concat(out, ", ")) or "none"
end

-- Text lines describing a group and its member count.
local function describe_group(g, n, out)
  out[#out + 1] = "id        " .. text(g.id)
  out[#out + 1] = "name      " .. text(g.name)
  if g.created_on then out[#out + 1] = "created   " .. text(g.created_on) end
  if g.modified_on then out[#out + 1] = "modified  " .. text(g.modified_on) end
  out[#out + 1] = "members   " .. tostring(n)
  local pols = type(g.policies) == "table" and g.policies or {}
  out[#out + 1] = "policies  " .. #pols
  for _, p in ipairs(pols) do
    if type(p) == "table" then
      out[#out + 1] = format("  %s  permission groups: %s; resource groups: %s",
        text(p.access), policy_ids(p.permission_groups), policy_ids(p.resource_groups))
    else -- not an object: shown as it came
      out[#out + 1] = "  " .. text(p)
    end
  end
end

-- The group and its member count: g, n or nil, err.
local function group_and_count(c, cfiam, account, ref)
  local g, err = c:get_group(account, group_ref(cfiam, ref))
  if not g then return nil, err end
  local n
  n, err = require("cfiam.groups")._member_count(c, account, g.id)
  if not n then return nil, err end
  return g, n
end

run["groups show"] = function(c, cfiam, a, out)
  local g, n = group_and_count(c, cfiam, a.account, a.group)
  if not g then return nil, n end
  if a.json then return object({ group = object(g), members = n }) end
  describe_group(g, n, out)
end

run["groups create"] = function(c, _, a, out)
  local spec = { name = a.name }
  if a.policies then
    local content, ferr = read_file(a.policies, "--policies")
    if not content then return nil, ferr end
    local ok, pols = pcall(require("cjson").new().decode, content)
    if not ok or type(pols) ~= "table" then
      return nil, usage("--policies: " .. quote(a.policies) .. " is not a JSON array of policies")
    end
    spec.policies = pols
  end
  local g, err = c:create_group(a.account, spec)
  if not g then return nil, err end
  if a.json then return object(g) end
  out[#out + 1] = format("%s\t%s", text(g.id), text(g.name))
end

run["groups rename"] = function(c, cfiam, a, out)
  local g, err = c:update_group(a.account, group_ref(cfiam, a.group), { name = a.new_name })
  if not g then return nil, err end
  if a.json then return object(g) end
  out[#out + 1] = format("%s\t%s", text(g.id), text(g.name))
end

run["groups delete"] = function(c, cfiam, a, out, io_)
  local g, n = group_and_count(c, cfiam, a.account, a.group)
  if not g then return nil, n end
  describe_group(g, n, out)
  local doc = object({ group = object(g), members = n, deleted = false })
  if n > 0 and not a.force then
    return nil, require("cfiam.args").err("guard", format("group %s has %d member%s; "
      .. "deleting it removes their access through it; pass --force to mean that",
      g.id, n, n == 1 and "" or "s"), { members = n })
  end
  local err = O.confirm(a, out, io_, format("Delete group %s (%s)? [y/N] ", text(g.name),
    text(g.id)), "deleted")
  if err then return nil, err end
  -- Without --force the library counts again: members added meanwhile
  -- still stop the delete.
  if interrupted() then return nil, interruption() end
  local ok
  ok, err = c:delete_group(a.account, g.id, { force = a.force and true or nil })
  if not ok then return nil, err end
  out[#out + 1] = "deleted group " .. text(g.id)
  doc.deleted = true
  return doc
end

---------------------------------------------------------------------------
-- The command: load, parse, help, run, report.
---------------------------------------------------------------------------

local ACCOUNT = { plan = true, apply = true, dump = true }

-- Reports a failure: the JSON document (--json), the one-line message on
-- standard error, and for a usage error where to find help.
local function fail(err, area, opts, out, io_)
  _M.flush(out, opts, io_)
  if opts.json then write_json(io_, error_doc(err)) end
  if getmetatable(err) == Usage then
    write(io_.stderr, "cfiam: ", text(err.message), "\n")
  else -- a cfiam error already reads "cfiam <kind>: <message>"
    write(io_.stderr, text(tostring(err)), "\n")
  end
  if getmetatable(err) == Usage and err.kind == "usage" and not opts.json then
    write(io_.stderr, "(see cfiam ", area and area .. " " or "", "--help)\n")
  end
  return O.exit_status(err)
end

-- A usage error found while parsing (argparse's, or a bad option value).
local function parse_failure(err, argv, io_)
  local area, opts = Args.area(argv), { json = Args.given(argv, "--json") }
  if ACCOUNT[area] then
    return require("cfiam.cli_account").fail(err, area, opts, {}, io_,
      area == "plan" and Args.given(argv, "--detailed-exitcode"))
  end
  return fail(err, area, opts, {}, io_)
end

-- Help on standard output (status 0) or, for a level given without its
-- subcommand, on standard error (status 2); with --json as {"help": "..."}
-- or, for the latter, a usage error.
local function help(h, argv, io_)
  local opts = { json = Args.given(argv, "--json") }
  if opts.json and h.missing then
    return fail(usage("missing command"), nil, opts, {}, io_)
  elseif opts.json then
    write_json(io_, object({ help = h.help }))
  else
    write(h.missing and io_.stderr or io_.stdout, h.help)
  end
  return h.missing and 2 or 0
end

-- Runs a members or groups subcommand and reports its outcome.
local function run_command(p, io_, cfiam)
  local a, out = p.args, {}
  local cok, client = pcall(cfiam.default_client)
  if not cok then return fail(usage(tostring(client)), p.area, a, out, io_) end
  local doc, err = run[p.command](client, cfiam, a, out, io_)
  if interrupted() then err = interruption() end
  if err then return fail(err, p.area, a, out, io_) end
  _M.flush(out, a, io_)
  if a.json then write_json(io_, doc or {}) end
  return 0
end

-- The command, once cfiam and argparse are loaded.
local function main(argv, io_, cfiam)
  local p, err = Args.parse(argv)
  if not p then return parse_failure(err, argv, io_) end
  if p.help then return help(p, argv, io_) end
  if ACCOUNT[p.area] then return require("cfiam.cli_account").run(p, io_, cfiam) end
  return run_command(p, io_, cfiam)
end

-- require(name), or nil and the one-line reason it failed.
local function load(name, why)
  local ok, m = pcall(require, name)
  if ok then return m end
  return nil, format("cannot load %s: %s", why, tostring(m):match("^[^\n]*"))
end

--- Runs the command. argv as in the global `arg`; io_ (optional) holds
-- stdin, stdout, stderr. Returns the exit status.
function _M.main(argv, io_)
  io_ = io_ or { stdin = io.stdin, stdout = io.stdout, stderr = io.stderr }
  local cfiam, msg = load("cfiam", "the cfiam module")
  if cfiam then
    local _
    _, msg = load("argparse", "argparse (Debian lua-argparse, LuaRocks argparse)")
  end
  if msg then
    if Args.given(argv, "--json") then
      write(io_.stdout, json(object({ error = object({ kind = "usage", message = msg }) })), "\n")
    end
    write(io_.stderr, "cfiam: ", msg, "\n")
    return 1
  end
  O.setup()
  -- Last resort: whatever goes wrong (an answer of a shape no check
  -- foresaw) ends as one scrubbed line, one JSON document with --json, and
  -- exit 1, never a traceback.
  local ok, status = pcall(main, argv, io_, cfiam)
  if ok then return O.finish(io_, status) end
  local e = { kind = "internal",
    message = "unexpected failure: " .. text(tostring(status):match("^[^\n]*")) }
  if Args.given(argv, "--json") then write_json(io_, error_doc(e)) end
  write(io_.stderr, "cfiam: ", e.message, "\n")
  return 1
end

return _M
