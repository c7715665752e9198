--- cfiam.cli: the `cfiam` command (bin/cfiam calls main(arg)).
--
--   cfiam members list    ACCOUNT GROUP            [--json]
--   cfiam members add     ACCOUNT GROUP ID|EMAIL...
--   cfiam members remove  ACCOUNT GROUP ID|EMAIL...
--   cfiam members sync    ACCOUNT GROUP [ID|EMAIL... | --file F | -] ...
--   cfiam groups  list    ACCOUNT [--name N]
--   cfiam groups  show | create | rename | delete ...   (see GROUPS_HELP)
--
-- Arguments are parsed by hand (no dependency). Exit status: 0 success,
-- 1 API or network error, 2 usage error, invalid argument, refused guard
-- or a write that was not confirmed, 130 Ctrl-C. With --json, standard
-- output carries exactly one JSON document for every outcome ({"error":
-- {...}} on failure); the one-line error message goes to standard error.
-- Everything printed goes through write(), that is through the C
-- scrubbing with the credentials of the environment.
--
-- Terminal check: `sync` asks before writing only when standard input is
-- a terminal, probed with os.execute("test -t 0") (no C needed); the
-- environment variable CFIAM_TTY=1 (or 0) overrides the probe, so tests
-- and wrappers can drive the prompt through a pipe. The answer is read
-- from standard input; without a terminal `sync` writes only with --yes.
local type, ipairs, tostring, tonumber, getmetatable, setmetatable =
  type, ipairs, tostring, tonumber, getmetatable, setmetatable
local require, pcall = require, pcall
local concat = table.concat
local format, lower = string.format, string.lower
local io = io

local _M = {}

local HELP = [[
cfiam: manage Cloudflare account user-group membership

usage:
  cfiam members list    ACCOUNT GROUP            [--json]
  cfiam members add     ACCOUNT GROUP ID|EMAIL... [--json]
  cfiam members remove  ACCOUNT GROUP ID|EMAIL... [--json]
  cfiam members sync    ACCOUNT GROUP [ID|EMAIL... | --file F | -]
                        [--dry-run] [--allow-empty] [--max-removals N] [--yes] [--json]
  cfiam groups  list    ACCOUNT [--name N] [--json]
  cfiam groups  show    ACCOUNT GROUP [--json]
  cfiam groups  create  ACCOUNT NAME [--policies FILE.json] [--json]
  cfiam groups  rename  ACCOUNT GROUP NEW_NAME [--json]
  cfiam groups  delete  ACCOUNT GROUP [--force] [--yes] [--json]
  cfiam plan    FILE [--json] [--detailed-exitcode] [--group NAME]... [--concurrency N]
  cfiam apply   FILE [--yes] [--json] [--group NAME]... [--concurrency N] [--log FILE.jsonl]
  cfiam dump    ACCOUNT [GROUP...] [--json]
  cfiam --help | cfiam members --help | cfiam groups --help | cfiam plan --help

ACCOUNT is the 32-character account id. GROUP is a 32-character user group
id or a group name (looked up with an exact match). Members are given as
account-member ids or e-mail addresses (matched case-insensitively against
the account's members).

Options:
  --json             print one JSON document on standard output (also on
                     failure: {"error": {...}})
  -h, --help         show help

Environment:
  CLOUDFLARE_API_TOKEN, or CLOUDFLARE_EMAIL and CLOUDFLARE_API_KEY
                     credentials
  CLOUDFLARE_BASE_URL
                     API base URL (default https://api.cloudflare.com/client/v4)
  CFIAM_TTY=1|0      treat standard input as a terminal (or not) for the
                     sync confirmation, instead of probing it

Exit status:
  0  success
  1  API or network error (including an incomplete listing or drift)
  2  usage error, invalid argument, refused guard, or a sync that was not
     confirmed; the error's one-line message is on standard error
  130  interrupted (Ctrl-C): no further request was sent
]]

local MEMBERS_HELP = [[
usage:
  cfiam members list    ACCOUNT GROUP [--json]
      Every member of the group (all pages), one per line:
      ID<TAB>EMAIL<TAB>STATUS. --json: an array of {id, email, status}.

  cfiam members add     ACCOUNT GROUP ID|EMAIL... [--json]
      Adds the members with one request. Prints "+ EMAIL (ID)" per member
      given. --json: {"added": [...], "members": [...]} (the whole group).

  cfiam members remove  ACCOUNT GROUP ID|EMAIL... [--json]
      Removes exactly these members. A member that was not in the group is
      reported ("not a member: ID"), not an error.
      --json: {"removed": [ids], "not_members": [ids]}.

  cfiam members sync    ACCOUNT GROUP [ID|EMAIL... | --file F | -] [options]
      Makes the group's members the list given: adds (one POST) and removes
      (one DELETE each) what the plan shows, nothing else. The list
      comes from the arguments, from file F, or from standard input (-):
      ids or e-mail addresses separated by white space or commas, '#'
      starts a comment. Prints the plan as a diff first:
          + EMAIL (ID)      to add (" pending" when not yet accepted)
          - EMAIL (ID)      to remove
          N to add, N to remove, N unchanged
      then asks for confirmation when standard input is a terminal (only
      "y" or "yes" writes); without a terminal it writes only with --yes.
      A file that cannot be read is an error, never an empty list.
      --dry-run           print the plan, write nothing
      --allow-empty       allow a plan that leaves the group empty
      --max-removals N    refuse a plan that removes more than N (default 10)
      --yes, -y           write without asking
      --replace           write one PUT of the whole list instead: also
                          removes members the listing did not show
      --json              {"add", "remove", "keep", "dry_run", "written"}

Exit status: 0 success, 1 API or network error, 2 usage error, invalid
argument, refused guard or a sync not confirmed (message on standard error).
Credentials: CLOUDFLARE_API_TOKEN (or CLOUDFLARE_EMAIL and
CLOUDFLARE_API_KEY); CLOUDFLARE_BASE_URL for another API endpoint.
]]

local GROUPS_HELP = [[
usage:
  cfiam groups list ACCOUNT [--name N] [--json]
      The account's user groups, one per line: ID<TAB>NAME. --name N keeps
      the group named exactly N. --json: an array of the group objects.

  cfiam groups show ACCOUNT GROUP [--json]
      The group: id, name, dates, member count and policies.
      --json: {"group": {...as the API sent it}, "members": N}.

  cfiam groups create ACCOUNT NAME [--policies FILE.json] [--json]
      Creates a group, unless one is named NAME already (a conflict, exit
      2). FILE.json holds a JSON array of policies, each {"access": "allow"
      or "deny", "permission_groups": [{"id": ...}], "resource_groups":
      [{"id": ...}]}. Prints ID<TAB>NAME. --json: the new group.

  cfiam groups rename ACCOUNT GROUP NEW_NAME [--json]
      Renames the group (its policies and members stay). NEW_NAME taken by
      another group is a conflict (exit 2). --json: the group.

  cfiam groups delete ACCOUNT GROUP [--force] [--yes] [--json]
      Prints the group (name, member count, policies), then deletes it
      after confirmation on a terminal; without a terminal only with
      --yes. A group that has members is refused unless --force: deleting
      it removes their access through it.
      --json: {"group": {...}, "members": N, "deleted": true}.

GROUP is a 32-character group id or an exact group name.
Exit status: 0 success, 1 API or network error, 2 usage error, invalid
argument, conflict, refused guard or a delete not confirmed.
]]

local O = require("cfiam.cli_out")
local object, json, text, usage, Usage = O.object, O.json, O.text, O.usage, O.Usage
local interrupted, interruption = O.interrupted, O.interruption
local entries_doc, label, parse = O.entries_doc, O.label, O.parse
local write, write_json, confirmed, is_tty = O.write, O.write_json, O.confirmed, O.stdin_is_tty
local quote = O.quote
_M.text = text
_M.flush = O.flush

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
  if type(err.errors) == "table" then
    local list = {}
    for i, x in ipairs(err.errors) do
      list[i] = object({ code = x.code, message = x.message })
    end
    e.errors = list
  end
  if err.plan then e.plan = plan_doc(err.plan) end
  if err.missing then e.missing = entries_doc(err.missing) end
  if err.unexpected then e.unexpected = entries_doc(err.unexpected) end
  if err.unknown then e.unknown = err.unknown end
  if err.invalid then e.invalid = err.invalid end
  return object({ error = e })
end

-- Options each subcommand takes; true = takes a value.
local OPTIONS = {
  ["members list"] = { json = false },
  ["members add"] = { json = false },
  ["members remove"] = { json = false },
  ["members sync"] = { json = false, file = true, ["dry-run"] = false,
    ["allow-empty"] = false, ["max-removals"] = true, yes = false, replace = false },
  ["groups list"] = { json = false, name = true },
  ["groups show"] = { json = false },
  ["groups create"] = { json = false, policies = true },
  ["groups rename"] = { json = false },
  ["groups delete"] = { json = false, force = false, yes = false },
}

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
    content, why = f:read("*a")
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
-- Subcommands: each returns a JSON document (or nil) and text lines, or
-- nil, err.
---------------------------------------------------------------------------

local function group_id(client, cfiam, account, group)
  if cfiam.is_id(group) then return lower(group) end
  local g, err = client:find_group(account, group)
  if not g then return nil, err end
  return g.id
end

local function need(pos, n, what)
  if #pos < n then return usage("missing " .. what) end
end

local run = {}

run["members list"] = function(c, cfiam, pos, opts, out)
  local e = need(pos, 2, "ACCOUNT GROUP")
  if e then return nil, e end
  if #pos > 2 then return nil, usage("too many arguments") end
  local g, err = group_id(c, cfiam, pos[1], pos[2])
  if not g then return nil, err end
  local members
  members, err = c:list_members(pos[1], g)
  if not members then return nil, err end
  if opts.json then return entries_doc(members) end
  for _, m in ipairs(members) do
    out[#out + 1] = format("%s\t%s\t%s", text(m.id), text(m.email or ""), text(m.status or ""))
  end
end

-- ACCOUNT GROUP ID|EMAIL...: the group's id and the list, or nil, err.
local function group_and_list(c, cfiam, pos)
  local e = need(pos, 3, "ACCOUNT GROUP ID|EMAIL...")
  if e then return nil, e end
  local g, err = group_id(c, cfiam, pos[1], pos[2])
  if not g then return nil, err end
  local list = {}
  for i = 3, #pos do list[#list + 1] = pos[i] end
  return g, list
end

run["members add"] = function(c, cfiam, pos, opts, out)
  local g, list = group_and_list(c, cfiam, pos)
  if not g then return nil, list end
  local members, err = c:add_members(pos[1], g, list)
  if not members then return nil, err end
  -- Report the members given, with the e-mail the API knows them by.
  local wanted = {}
  for _, v in ipairs(list) do wanted[lower(v)] = true end
  local added = {}
  for _, m in ipairs(members) do
    if wanted[lower(m.id)] or (m.email and wanted[lower(m.email)]) then
      added[#added + 1] = m
      out[#out + 1] = "+ " .. label(m)
    end
  end
  out[#out + 1] = format("%d member%s in the group", #members, #members == 1 and "" or "s")
  if opts.json then
    return object({ added = entries_doc(added), members = entries_doc(members) })
  end
end

run["members remove"] = function(c, cfiam, pos, opts, out)
  local g, list = group_and_list(c, cfiam, pos)
  if not g then return nil, list end
  local res, err = c:remove_members(pos[1], g, list)
  if not res then return nil, err end
  if opts.json then
    return object({ removed = res.removed, not_members = res.not_members })
  end
  for _, id in ipairs(res.removed) do out[#out + 1] = "- " .. text(id) end
  for _, id in ipairs(res.not_members) do out[#out + 1] = "not a member: " .. text(id) end
  out[#out + 1] = format("%d removed, %d not members", #res.removed, #res.not_members)
end

run["members sync"] = function(c, cfiam, pos, opts, out, io_)
  local e = need(pos, 2, "ACCOUNT GROUP")
  if e then return nil, e end
  local list, from_stdin = {}, false
  local rest = {}
  for i = 3, #pos do rest[#rest + 1] = pos[i] end
  if opts.file and #rest > 0 then
    return nil, usage("give the members either as arguments, with --file, or with -")
  end
  if #rest == 1 and rest[1] == "-" then
    from_stdin = true
    list = read_list(io_.stdin:read("*a") or "")
  elseif opts.file then
    local content, ferr = read_file(opts.file)
    if not content then return nil, ferr end
    list = read_list(content)
  else
    for _, v in ipairs(rest) do
      if v == "-" then return nil, usage("'-' (standard input) must be the only member argument") end
      list[#list + 1] = v
    end
  end
  local max_removals
  if opts["max-removals"] then
    max_removals = tonumber(opts["max-removals"])
    if not max_removals or max_removals < 0 or max_removals % 1 ~= 0 then
      return nil, usage("--max-removals: expected a whole number >= 0, got "
        .. quote(opts["max-removals"]))
    end
  end
  local account = pos[1]
  local g, err = group_id(c, cfiam, account, pos[2])
  if not g then return nil, err end
  local allow_empty = opts["allow-empty"] and true or nil
  -- The plan and the guards, without writing: what the user confirms is
  -- then written as is (its difference, or one PUT with --replace).
  local plan
  plan, err = c:sync_members(account, g, list, { dry_run = true,
    max_removals = max_removals, allow_empty = allow_empty })
  if plan then
    for _, x in ipairs(plan.add) do out[#out + 1] = "+ " .. label(x) end
    for _, x in ipairs(plan.remove) do out[#out + 1] = "- " .. label(x) end
    out[#out + 1] = format("%d to add, %d to remove, %d unchanged", #plan.add,
      #plan.remove, #plan.keep)
  end
  if not plan then return nil, err end
  local doc = plan_doc(plan)
  doc.dry_run, doc.written = opts["dry-run"] and true or false, false
  if opts["dry-run"] then
    out[#out + 1] = "dry run: nothing written"
    return doc
  end
  if #plan.add == 0 and #plan.remove == 0 then
    out[#out + 1] = "nothing to change"
    return doc
  end
  if not opts.yes then
    if from_stdin or not is_tty() then
      return nil, setmetatable({ kind = "refused", plan = plan, message =
        "not written: standard input is not a terminal to confirm on; pass --yes" }, Usage)
    end
    _M.flush(out, opts, io_)
    write(io_.stderr, format("Apply this plan to group %s? [y/N] ", g))
    io_.stderr:flush()
    if not confirmed(io_) then
      return nil, setmetatable({ kind = "refused", plan = plan,
        message = "not confirmed: nothing written" }, Usage)
    end
  end
  if interrupted() then return nil, interruption() end
  local written
  written, err = c:apply_plan(account, g, plan, { max_removals = max_removals,
    allow_empty = allow_empty, strategy = opts.replace and "replace" or nil })
  if not written then return nil, err end
  out[#out + 1] = format("written: %d added, %d removed", #plan.add, #plan.remove)
  doc.written = true
  return doc
end

run["groups list"] = function(c, _, pos, opts, out)
  local e = need(pos, 1, "ACCOUNT")
  if e then return nil, e end
  if #pos > 1 then return nil, usage("too many arguments") end
  local groups, err
  if opts.name then
    local g
    g, err = c:find_group(pos[1], opts.name)
    groups = g and { g }
  else
    groups, err = c:list_groups(pos[1])
  end
  if not groups then return nil, err end
  if opts.json then
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
    out[#out + 1] = format("  %s  permission groups: %s; resource groups: %s",
      text(p.access), policy_ids(p.permission_groups), policy_ids(p.resource_groups))
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

run["groups show"] = function(c, cfiam, pos, opts, out)
  local e = need(pos, 2, "ACCOUNT GROUP")
  if e then return nil, e end
  if #pos > 2 then return nil, usage("too many arguments") end
  local g, n = group_and_count(c, cfiam, pos[1], pos[2])
  if not g then return nil, n end
  if opts.json then return object({ group = object(g), members = n }) end
  describe_group(g, n, out)
end

run["groups create"] = function(c, _, pos, opts, out)
  local e = need(pos, 2, "ACCOUNT NAME")
  if e then return nil, e end
  if #pos > 2 then return nil, usage("too many arguments (quote a NAME with spaces)") end
  local spec = { name = pos[2] }
  if opts.policies then
    local content, ferr = read_file(opts.policies, "--policies")
    if not content then return nil, ferr end
    local ok, pols = pcall(require("cjson").new().decode, content)
    if not ok or type(pols) ~= "table" then
      return nil, usage("--policies: " .. quote(opts.policies) .. " is not a JSON array of policies")
    end
    spec.policies = pols
  end
  local g, err = c:create_group(pos[1], spec)
  if not g then return nil, err end
  if opts.json then return object(g) end
  out[#out + 1] = format("%s\t%s", text(g.id), text(g.name))
end

run["groups rename"] = function(c, cfiam, pos, opts, out)
  local e = need(pos, 3, "ACCOUNT GROUP NEW_NAME")
  if e then return nil, e end
  if #pos > 3 then return nil, usage("too many arguments (quote a NEW_NAME with spaces)") end
  local g, err = c:update_group(pos[1], group_ref(cfiam, pos[2]), { name = pos[3] })
  if not g then return nil, err end
  if opts.json then return object(g) end
  out[#out + 1] = format("%s\t%s", text(g.id), text(g.name))
end

run["groups delete"] = function(c, cfiam, pos, opts, out, io_)
  local e = need(pos, 2, "ACCOUNT GROUP")
  if e then return nil, e end
  if #pos > 2 then return nil, usage("too many arguments") end
  local account = pos[1]
  local g, n = group_and_count(c, cfiam, account, pos[2])
  if not g then return nil, n end
  describe_group(g, n, out)
  local doc = object({ group = object(g), members = n, deleted = false })
  if n > 0 and not opts.force then
    return nil, require("cfiam.args").err("guard", format("group %s has %d member%s; "
      .. "deleting it removes their access through it; pass --force to mean that",
      g.id, n, n == 1 and "" or "s"), { members = n })
  end
  if not opts.yes then
    if not is_tty() then
      return nil, setmetatable({ kind = "refused", message =
        "not deleted: standard input is not a terminal to confirm on; pass --yes" }, Usage)
    end
    _M.flush(out, opts, io_)
    write(io_.stderr, format("Delete group %s (%s)? [y/N] ", text(g.name), text(g.id)))
    io_.stderr:flush()
    if not confirmed(io_) then
      return nil, setmetatable({ kind = "refused", message = "not confirmed: nothing deleted" },
        Usage)
    end
  end
  -- Without --force the library counts again: members added meanwhile
  -- still stop the delete.
  if interrupted() then return nil, interruption() end
  local ok, err = c:delete_group(account, g.id, { force = opts.force and true or nil })
  if not ok then return nil, err end
  out[#out + 1] = "deleted group " .. text(g.id)
  doc.deleted = true
  return doc
end

-- Whether --json was given (before a "--").
local function json_flag(argv)
  for i = 1, #argv do
    if argv[i] == "--" then return false end
    if argv[i] == "--json" then return true end
  end
  return false
end

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

-- Help on standard output (status 0) or, when asked for wrongly, on
-- standard error (status 2); with --json as {"help": "..."}.
local function help(io_, opts, txt, ok)
  if opts.json and not ok then
    return fail(usage("missing command"), nil, opts, {}, io_)
  elseif opts.json then
    write_json(io_, object({ help = txt }))
  else
    write(ok and io_.stdout or io_.stderr, txt)
  end
  return ok and 0 or 2
end

-- The command, once cfiam is loaded.
local function main(argv, io_, cfiam)
  local area, verb = argv[1], argv[2]
  local opts = { json = json_flag(argv) }
  local out = {}
  if area == nil or area == "--json" then return help(io_, opts, HELP, false) end
  if area == "-h" or area == "--help" or area == "help" then
    return help(io_, opts, HELP, true)
  end
  if area == "plan" or area == "apply" or area == "dump" then
    return require("cfiam.cli_account").main(argv, io_)
  end
  local area_help = area == "members" and MEMBERS_HELP or area == "groups" and GROUPS_HELP
  if not area_help then
    return fail(usage("unknown command " .. quote(area)), nil, opts, out, io_)
  end
  if verb == nil or verb == "-h" or verb == "--help" or verb == "--json" then
    return help(io_, opts, area_help, verb ~= nil and verb ~= "--json")
  end
  local key = area .. " " .. verb
  local allowed = OPTIONS[key]
  if not allowed then
    return fail(usage("unknown command " .. quote(key)), area, opts, out, io_)
  end
  local pos, parsed = parse(argv, 3, allowed)
  if not pos then return fail(parsed, area, opts, out, io_) end -- opts.json as given
  if parsed.help then return help(io_, opts, area_help, true) end
  opts = parsed
  local cok, client = pcall(cfiam.default_client)
  if not cok then return fail(usage(tostring(client)), area, opts, out, io_) end
  local doc, err = run[key](client, cfiam, pos, opts, out, io_)
  if interrupted() then err = interruption() end
  if err then return fail(err, area, opts, out, io_) end
  _M.flush(out, opts, io_)
  if opts.json then write_json(io_, doc or {}) end
  return 0
end

--- Runs the command. argv as in the global `arg`; io_ (optional) holds
-- stdin, stdout, stderr. Returns the exit status.
function _M.main(argv, io_)
  io_ = io_ or { stdin = io.stdin, stdout = io.stdout, stderr = io.stderr }
  local ok, cfiam = pcall(require, "cfiam")
  if not ok then
    local msg = "cannot load the cfiam module: " .. tostring(cfiam):match("^[^\n]*")
    if json_flag(argv) then
      write(io_.stdout, json(object({ error = object({ kind = "usage", message = msg }) })), "\n")
    end
    write(io_.stderr, "cfiam: ", msg, "\n")
    return 1
  end
  O.setup()
  return main(argv, io_, cfiam)
end

return _M
