--- cfiam.cli_args: the `cfiam` command's arguments, parsed by argparse
-- (the command's dependency, never the library's: only the command loads
-- this file).
--
-- argparse is used so that it never prints and never exits: its own -h
-- is off, parsing goes through pparse, and this file turns the outcome
-- into values; cfiam.cli prints them through cfiam.cli_out's scrubbed
-- writer. Its messages are made one bounded line (a user's word in them
-- is quoted by the C quoting). The help texts are cfiam.cli_help's.
local ipairs, tonumber, require = ipairs, tonumber, require
local format = string.format

local H = require("cfiam.cli_help")
local O = require("cfiam.cli_out")

local _M = {}

--- Whether the flag `name` is among argv's options (before a "--"): for
-- the outcomes decided before, or without, a successful parse.
function _M.given(argv, name)
  for i = 1, #argv do
    if argv[i] == "--" then return false end
    if argv[i] == name then return true end
  end
  return false
end

-- The words of argv that are not options, up to `n` of them: the command
-- path ("members", "sync") of a parse that failed.
local function words(argv, n)
  local out = {}
  for i = 1, #argv do
    if #out == n or argv[i] == "--" then break end
    if argv[i]:sub(1, 1) ~= "-" then out[#out + 1] = argv[i] end
  end
  return out
end

local AREAS = { members = true, groups = true, plan = true, apply = true, dump = true }

--- The area (members, groups, plan, apply, dump) argv names first, or nil.
function _M.area(argv)
  local w = words(argv, 1)[1]
  return AREAS[w] and w or nil
end

---------------------------------------------------------------------------
-- Options shared by several subcommands: one definition each, with its
-- check (a bad value is a usage error during the parse: nothing is sent).
---------------------------------------------------------------------------

-- A converter for a whole number from min to max (max nil: no bound).
local function whole(option, min, max)
  local want = max and format("a whole number from %d to %d", min, max)
    or format("a whole number >= %d", min)
  return function(s)
    local n = tonumber(s)
    if not n or n ~= n or n < min or (max and n > max) or n % 1 ~= 0 then
      return nil, format("%s: expected %s, got %s", option, want, O.quote(s))
    end
    return n
  end
end

local function concurrency(cmd)
  cmd:option("--concurrency"):argname("N")
    :convert(whole("--concurrency", 1, require("cfiam.args").MAX_CONCURRENCY))
end

local function yes(cmd) cmd:flag("-y --yes") end

---------------------------------------------------------------------------
-- The command tree
---------------------------------------------------------------------------

-- A command level with its help text; -h/--help records the text of the
-- deepest level it was given at (argparse's own would print and exit).
local function level(cmd, text, asked)
  cmd:add_help(false):help(text)
  cmd:flag("-h --help"):action(function() asked.text = text end)
  return cmd
end

local function positional(cmd, name, target, n)
  cmd:argument(name):target(target):args(n or 1)
end

local function members(top, asked)
  local area = level(top:command("members"), H.MEMBERS, asked)
    :require_command(false):command_target("verb")
  local function verb(name, list)
    local cmd = level(area:command(name), H.MEMBERS, asked)
    positional(cmd, "ACCOUNT", "account")
    positional(cmd, "GROUP", "group")
    if list then positional(cmd, "ID|EMAIL", "ids", list) end
    concurrency(cmd)
    return cmd
  end
  verb("list")
  verb("add", "+")
  verb("remove", "+")
  local sync = verb("sync", "*")
  sync:option("--file"):argname("F")
  sync:flag("--dry-run")
  sync:flag("--allow-empty")
  sync:option("--max-removals"):argname("N"):convert(whole("--max-removals", 0))
  sync:flag("--replace")
  yes(sync)
end

local function groups(top, asked)
  local area = level(top:command("groups"), H.GROUPS, asked)
    :require_command(false):command_target("verb")
  local function verb(name, ...)
    local cmd = level(area:command(name), H.GROUPS, asked)
    for _, arg in ipairs({ ... }) do positional(cmd, arg, arg:lower()) end
    return cmd
  end
  local list = verb("list", "ACCOUNT")
  list:option("--name"):argname("N")
  concurrency(list)
  verb("show", "ACCOUNT", "GROUP")
  verb("create", "ACCOUNT", "NAME"):option("--policies"):argname("FILE.json")
  verb("rename", "ACCOUNT", "GROUP", "NEW_NAME")
  local delete = verb("delete", "ACCOUNT", "GROUP")
  delete:flag("--force")
  yes(delete)
end

local function account(top, asked)
  local function area(name)
    local cmd = level(top:command(name), H.ACCOUNT, asked)
    concurrency(cmd)
    return cmd
  end
  local plan = area("plan")
  positional(plan, "FILE", "file")
  plan:flag("--detailed-exitcode")
  plan:option("--group"):argname("NAME"):count("*")
  local apply = area("apply")
  positional(apply, "FILE", "file")
  apply:option("--group"):argname("NAME"):count("*")
  apply:option("--log"):argname("FILE.jsonl")
  yes(apply)
  local dump = area("dump")
  positional(dump, "ACCOUNT", "account")
  positional(dump, "GROUP", "groups", "*")
end

local function parser(asked)
  local top = level(require("argparse")("cfiam"), H.MAIN, asked)
    :require_command(false):command_target("area")
  top:flag("--json")
  members(top, asked)
  groups(top, asked)
  account(top, asked)
  -- `cfiam help ...`: the main help, whatever follows
  top:command("help"):add_help(false):hidden(true):handle_options(false)
    :argument("rest"):args("*")
  return top
end

---------------------------------------------------------------------------
-- Messages
---------------------------------------------------------------------------

local MAX_MESSAGE = 300

-- argparse's message as one bounded line: the user's word in "unknown
-- option|command '...'" quoted by the C quoting (bounded, escaped,
-- redacted), a "Did you mean" tip (our names) kept on the same line, the
-- hint for a word too many added.
local function message(msg, argv)
  local head, tip = msg, nil
  local at = msg:find("\nDid you mean [^\n]*$")
  if at then head, tip = msg:sub(1, at - 1), msg:sub(at + 1) end
  local what, word = head:match("^unknown (%a+) '(.*)'$")
  if what then
    head = "unknown " .. what .. " " .. O.quote(word)
  elseif head == "too many arguments" then
    local w = words(argv, 2)
    local hint = H.TOO_MANY[w[1]] or H.TOO_MANY[(w[1] or "") .. " " .. (w[2] or "")]
    if hint then head = head .. " (" .. hint .. ")" end
  end
  if tip then head = head .. "; d" .. tip:sub(2) end
  if #head > MAX_MESSAGE then head = head:sub(1, MAX_MESSAGE) .. "..." end
  return O.text(head)
end

-- No option or command name is this long: longer words are refused before
-- argparse, whose "did you mean" search takes time quadratic in a word.
local MAX_NAME = 64

-- A usage message for an over-long option or command word, or nil.
local function too_long(argv)
  for i = 1, #argv do
    if argv[i] == "--" then break end
    local name = argv[i]:match("^(%-%-?[^=]*)")
    if name and #name > MAX_NAME then return "unknown option " .. O.quote(name) end
  end
  local w = words(argv, 2)
  if w[1] and #w[1] > MAX_NAME then return "unknown command " .. O.quote(w[1]) end
  if (w[1] == "members" or w[1] == "groups") and w[2] and #w[2] > MAX_NAME then
    return "unknown command " .. O.quote(w[2])
  end
end

--- Parses argv (the words after the command's name). Returns a table:
--   { help = TEXT }                 help asked for: -h/--help at some level
--                                   or `cfiam help`
--   { help = TEXT, missing = true } a level without its subcommand
--   { area =, verb =, command =, args = }  a subcommand and its values
-- or nil, a usage error. --json is args.json (or given(argv, "--json")
-- when no parse succeeded).
function _M.parse(argv)
  local long = too_long(argv)
  if long then return nil, O.usage(long) end
  local asked = {}
  local ok, res = parser(asked):pparse(argv)
  if asked.text then return { help = asked.text } end
  if not ok then return nil, O.usage(message(res, argv)) end
  if res.area == "help" then return { help = H.MAIN } end
  if res.area == nil then return { help = H.MAIN, missing = true, args = res } end
  local verb_help = res.area == "members" and H.MEMBERS or res.area == "groups" and H.GROUPS
  if verb_help and res.verb == nil then return { help = verb_help, missing = true, args = res } end
  if (res.area == "plan" or res.area == "apply") and #res.group == 0 then
    res.group = nil -- no --group: every group of the file
  end
  return { area = res.area, verb = res.verb,
    command = res.verb and res.area .. " " .. res.verb or res.area, args = res }
end

return _M
