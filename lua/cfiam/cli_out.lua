--- cfiam.cli_out: what the `cfiam` subcommands share (cfiam.cli for
-- members and groups, cfiam.cli_account for plan, apply and dump): the
-- JSON writer, the scrubbed writing of every byte printed, escaping for
-- text lines, usage errors, Ctrl-C, the terminal probe and the
-- confirmation.
--
-- setup() must run once the cfiam module is loaded: from then on every
-- write passes through the C scrubbing with the environment's credentials,
-- user values are quoted by the C quoting, and SIGINT sets a flag.
local type, ipairs, pairs, tostring, getmetatable, setmetatable =
  type, ipairs, pairs, tostring, getmetatable, setmetatable
local require, next = require, next
local concat, sort = table.concat, table.sort
local format, lower, gsub, byte = string.format, string.lower, string.gsub, string.byte
local os = os

local _M = {}

---------------------------------------------------------------------------
-- JSON. A private cjson instance encodes strings and numbers; the
-- structure is written here so that empty arrays come out as [] (cjson
-- writes an empty table as {}). Tables marked with object() are objects.
---------------------------------------------------------------------------

local OBJECT = {}
function _M.object(t) return setmetatable(t, OBJECT) end

local cjson
local huge = math.huge

local function encode(v, out)
  local t = type(v)
  if t == "table" then
    if getmetatable(v) ~= OBJECT and (v[1] ~= nil or next(v) == nil) then
      out[#out + 1] = "["
      for i = 1, #v do
        if i > 1 then out[#out + 1] = "," end
        encode(v[i], out)
      end
      out[#out + 1] = "]"
    else
      local keys = {}
      for k in pairs(v) do keys[#keys + 1] = tostring(k) end
      sort(keys)
      out[#out + 1] = "{"
      for i, k in ipairs(keys) do
        if i > 1 then out[#out + 1] = "," end
        out[#out + 1] = cjson.encode(k)
        out[#out + 1] = ":"
        encode(v[k], out)
      end
      out[#out + 1] = "}"
    end
  elseif t == "number" and (v ~= v or v == huge or v == -huge) then
    out[#out + 1] = "null" -- what JSON cannot hold (inf, nan)
  elseif t == "string" or t == "number" or t == "boolean" then
    out[#out + 1] = cjson.encode(v)
  else
    out[#out + 1] = "null"
  end
end

function _M.json(v)
  cjson = cjson or require("cjson").new()
  local out = {}
  encode(v, out)
  return concat(out)
end

---------------------------------------------------------------------------
-- Text, errors, Ctrl-C
---------------------------------------------------------------------------

local function hex_bytes(c)
  return (gsub(c, ".", function(b) return format("\\x%02x", byte(b)) end))
end

--- A value from the API or the user, for a line of text: control bytes (a
-- newline or a terminal escape in a name or an e-mail) as \xNN, and so
-- the C1 controls (an 8-bit CSI, NEL) and U+2028, U+2029, byte by byte.
function _M.text(s)
  s = gsub(tostring(s), "[%c\127]", hex_bytes)
  s = gsub(s, "\194[\128-\159]", hex_bytes)
  return (gsub(s, "\226\128[\168\169]", hex_bytes))
end

-- Until setup(): no scrubbing (nothing secret is known) and plain quoting.
local core
local scrub = function(v) return v end
local quote = function(s) return "'" .. _M.text(s) .. "'" end

--- A user value in a usage message: the C core's bounded, escaped quoting.
function _M.quote(s) return quote(s) end

_M.Usage = {} -- metatable of the command's own errors (usage, refused, interrupted)

function _M.usage(msg, kind)
  return setmetatable({ kind = kind or "usage", message = msg }, _M.Usage)
end

--- Whether Ctrl-C was pressed (the C module's SIGINT flag, after setup()).
function _M.interrupted() return core ~= nil and core.interrupted() end

function _M.interruption()
  return _M.usage("interrupted: no further request was sent", "interrupted")
end

--- Exit status for an error: 130 interrupted, 2 for the user's mistakes
-- and refusals, 1 for the rest (API, network, incomplete, drift).
function _M.exit_status(err)
  if err.kind == "interrupted" then return 130 end
  if getmetatable(err) == _M.Usage or err.kind == "invalid_argument"
      or err.kind == "guard" or err.kind == "conflict" then
    return 2
  end
  return 1
end

--- Loads the C side's scrubbing, quoting and SIGINT flag (cfiam loaded).
function _M.setup()
  core = require("cfiam.core")
  local secrets = {}
  for _, name in ipairs({ "CLOUDFLARE_API_TOKEN", "CLOUDFLARE_API_KEY" }) do
    local v = os.getenv(name)
    if v then secrets[#secrets + 1] = v end
  end
  scrub = function(v) return core.scrub(secrets, v) end
  quote = function(v) return core.quote(tostring(v), secrets) end
  core.catch_interrupt()
end

---------------------------------------------------------------------------
-- Writing: every byte the command prints goes through write().
---------------------------------------------------------------------------

-- The first write that failed (a full disk, a closed pipe, an unwritable
-- --log): the command then ends with exit status 1, never 0, saying so.
_M.write_error = nil

local function note_failure(ok, err)
  if not ok and not _M.write_error then _M.write_error = tostring(err) end
end

--- v as the command would print it: with the credentials redacted.
function _M.scrubbed(v)
  return scrub(v)
end

function _M.write(stream, ...)
  local parts = { ... }
  for i = 1, #parts do parts[i] = tostring(parts[i]) end
  note_failure(stream:write(scrub(concat(parts))))
end

--- Flushes a stream the command wrote to, noting a failure.
function _M.flush_stream(stream)
  note_failure(stream:flush())
end

--- The exit status once everything is written: `status`, or 1 instead of
-- 0 when some output could not be written (said on standard error).
function _M.finish(io_, status)
  _M.flush_stream(io_.stdout)
  if not _M.write_error then return status end
  local why = _M.write_error
  _M.write_error = nil
  pcall(_M.write, io_.stderr, "cfiam: cannot write the output: ", _M.text(why), "\n")
  return status == 0 and 1 or status
end

--- The one JSON document of a --json run.
function _M.write_json(io_, doc)
  _M.write(io_.stdout, _M.json(scrub(doc)), "\n")
end

--- Writes the text lines gathered so far (not in --json mode).
function _M.flush(out, opts, io_)
  if not opts.json and #out > 0 then _M.write(io_.stdout, concat(out, "\n"), "\n") end
  for i = #out, 1, -1 do out[i] = nil end
end

--- Cloudflare's errors array of an API error, for a JSON document: [{code,
-- message}], or nil when the answer had none.
function _M.errors_doc(err)
  if type(err.errors) ~= "table" then return nil end
  local list = {}
  for i, x in ipairs(err.errors) do
    list[i] = _M.object(type(x) == "table" and { code = x.code, message = x.message } or {})
  end
  return list
end

---------------------------------------------------------------------------
-- Members in documents and lines
---------------------------------------------------------------------------

function _M.entry_doc(e)
  return _M.object({ id = e.id, email = e.email, status = e.status })
end

function _M.entries_doc(list)
  local out = {}
  for i, e in ipairs(list or {}) do out[i] = _M.entry_doc(e) end
  return out
end

--- "EMAIL (ID)", " pending" when not yet accepted.
function _M.label(e)
  local s = format("%s (%s)", _M.text(e.email or "?"), _M.text(e.id))
  if e.status == "pending" then s = s .. " pending" end
  return s
end

---------------------------------------------------------------------------
-- Terminal and confirmation. The probe is os.execute("test -t N") (no C
-- needed); CFIAM_TTY=1 (or 0) overrides it for standard input, so tests
-- and wrappers can drive the prompt through a pipe.
---------------------------------------------------------------------------

function _M.is_terminal(fd)
  local r1, _, r3 = os.execute("test -t " .. fd)
  return r1 == true or r1 == 0 or (r1 == nil and r3 == 0)
end

function _M.stdin_is_tty()
  local forced = os.getenv("CFIAM_TTY")
  if forced == "1" then return true end
  if forced == "0" then return false end
  return _M.is_terminal(0)
end

--- Reads the answer to a [y/N] prompt: true only for "y" or "yes" (any
-- case, blanks around). Ctrl-C at the prompt is not an answer.
function _M.confirmed(io_)
  local answer = lower(io_.stdin:read("*l") or ""):match("^%s*(.-)%s*$")
  if _M.interrupted() then
    _M.write(io_.stderr, "\n")
    return false
  end
  return answer == "y" or answer == "yes"
end

--- nil when a write may go ahead (opts.yes, or "y" at the prompt on a
-- terminal), or the refusal (kind "refused", exit 2) with `fields` added.
-- what: "written", "deleted". no_terminal: standard input was the data.
function _M.confirm(opts, out, io_, prompt, what, fields, no_terminal)
  if opts.yes then return nil end
  local message
  if no_terminal or not _M.stdin_is_tty() then
    message = "not " .. what .. ": standard input is not a terminal to confirm on; pass --yes"
  else
    _M.flush(out, opts, io_)
    _M.write(io_.stderr, prompt)
    io_.stderr:flush()
    if _M.confirmed(io_) then return nil end
    message = "not confirmed: nothing " .. what
  end
  local err = _M.usage(message, "refused")
  for k, v in pairs(fields or {}) do err[k] = v end
  return err
end

return _M
