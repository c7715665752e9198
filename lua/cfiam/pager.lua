--- cfiam.pager: paged listings (page = 1, 2, ... with per_page) that end
-- on a short or empty page, and never run past max_pages. total_count is
-- not trusted to end a listing (a server may miscount); an unfiltered
-- listing whose pages and total_count disagree, in either direction, is an
-- `incomplete` error, as is one stopped by max_pages: never a silent
-- partial list.
--
-- With concurrency > 1 (unfiltered listings), once page 1 has given
-- total_count the pages it announces are fetched `concurrency` at a time
-- through client:request_many; each page then goes through exactly the
-- checks of a page fetched alone, in page order (prefetch below), so the
-- end of the listing is still decided by the pages, never by the count.
local type, pairs, tonumber = type, pairs, tonumber
local ceil, floor, min = math.ceil, math.floor, math.min
local format = string.format
local A = require("cfiam.args")

local _M = {}

-- Pages fetched at most when the server gives no total_count (and the
-- caller no max_pages): a bound for a listing that never runs out.
_M.FALLBACK_MAX_PAGES = 1000
-- The API's largest page sizes.
_M.GROUP_PAGE = 500
_M.ACCOUNT_PAGE = 50

--- Creates a pager over a paginated GET.
-- @param spec { client, path, query (filters; page and per_page are added),
--   per_page, max_pages (nil: enough for total_count, plus one), filtered
--   (total_count then counts more than the listing, so it is not used),
--   decode ("members" or nil), what ("members of group X", for messages),
--   concurrency (pages in flight at once after page 1; default 1) }
function _M.pager(spec)
  local p = {
    client = spec.client, path = spec.path, per_page = spec.per_page,
    concurrency = spec.concurrency or 1, ahead = {},
    decode = spec.decode, what = spec.what, filtered = spec.filtered,
    fixed_max = spec.max_pages, max_pages = spec.max_pages or _M.FALLBACK_MAX_PAGES,
    page = 0, count = 0, seen = require("cfiam.core").idset(), total = nil,
    done = false,
    query = {},
  }
  for k, v in pairs(spec.query or {}) do p.query[k] = v end
  p.query.per_page = p.per_page
  return p
end

-- Ends the listing on an error: nil, err.
local function fail(p, err)
  p.done = true
  return nil, err
end

local function incomplete(p, message)
  return fail(p, A.err("incomplete", message, {
    count = p.count, total_count = p.total, pages = p.page }))
end

-- Fetches the pages after p.page that total_count announces (up to the
-- first one that should come back short or empty) into
-- p.ahead[page] = { result =, meta = } or { err = }, `concurrency` in
-- flight at once: all of them in one batch for collect (which keeps every
-- page anyway; no pause between batches), `concurrency` of them for the
-- iterator (which holds that many pages). Nothing when the listing is
-- filtered, total_count unknown, or the next page is already there.
local function prefetch(p)
  local from = p.page + 1
  if p.concurrency <= 1 or p.filtered or not p.total or p.ahead[from] then
    return
  end
  local last = min(floor(p.total / p.per_page) + 1, p.max_pages)
  if not p.whole then last = min(last, p.page + p.concurrency) end
  if last - from < 1 then return end -- one page: next_page asks for it
  local calls = {}
  for page = from, last do
    local q = {}
    for k, v in pairs(p.query) do q[k] = v end
    q.page = page
    calls[#calls + 1] = { "GET", p.path, query = q, decode = p.decode }
  end
  local out, err = p.client:request_many(calls, { concurrency = p.concurrency })
  if not out then
    p.ahead[from] = { err = err }
    return
  end
  for i = 1, #out do p.ahead[from + i - 1] = out[i] end
end

-- The listing has reached max_pages: always incomplete.
local function stopped(p)
  if p.sized then
    return incomplete(p, format("listing %s stopped after %d page%s with "
      .. "%d listed and more to come, while the server's total_count says %d",
      p.what, p.page, p.page == 1 and "" or "s", p.count, p.total))
  end
  local claim = p.total and format(", while the server's total_count says %d",
    p.total) or ""
  return incomplete(p, format("listing %s stopped after %d page%s "
    .. "(max_pages) with %d listed%s", p.what, p.page,
    p.page == 1 and "" or "s", p.count, claim))
end

-- The next page's answer, prefetched or asked for now: result, meta or
-- nil, err.
local function fetch(p)
  prefetch(p)
  p.page = p.page + 1
  p.query.page = p.page
  local got = p.ahead[p.page]
  if got then
    p.ahead[p.page] = nil
    return got.result, got.meta or got.err
  end
  return p.client:request("GET", p.path, { query = p.query, decode = p.decode })
end

-- The page size: the one asked for, or a smaller one the server says it
-- used (info: the page's result_info table, or nil). A page shorter than
-- that is the last one.
--- The page size of an answer: the per_page asked for, or a smaller one
-- the server says it used (result_info.per_page). Shared with the
-- account-wide lister.
function _M.page_size(asked, info)
  local said = type(info) == "table" and tonumber(info.per_page)
  if said and said >= 1 and said < asked then return said end
  return asked
end

-- Takes the page's total_count. Unless the caller fixed max_pages, the
-- first claim sets the bound; a later, larger claim (members added during
-- the listing) may raise it.
local function note_total(p, info, size)
  local total = info and tonumber(info.total_count)
  if not total then return end
  p.total = total
  if not p.fixed_max then
    local need = ceil(total / size) + 1
    if not p.sized or need > p.max_pages then
      p.max_pages, p.sized = need, true
    end
  end
end

-- A short or empty page ends the listing: an unfiltered one whose count
-- and total_count disagree is incomplete. Returns the page's new items,
-- or nil when none are left (res after the repeats were dropped).
local function last_page(p, res)
  p.done = true
  if not p.filtered and p.total and p.count ~= p.total then
    return incomplete(p, format("listing %s ended on page %d with %d "
      .. "listed, but the server's total_count says %d", p.what, p.page,
      p.count, p.total))
  end
  if #res == 0 then return nil end
  return res
end

--- Fetches the next page. Returns the page's new items (an array, maybe
-- empty when the page only repeated earlier items), or nil when the
-- listing is complete, or nil, err.
function _M.next_page(p)
  if p.done then return nil end
  if p.page >= p.max_pages then return stopped(p) end
  local res, meta = fetch(p)
  if res == nil then return fail(p, meta) end -- a success always has a result (C makes it {})
  if type(res) ~= "table" then
    return fail(p, A.err("invalid_response", "listing " .. p.what
      .. ": result is not an array"))
  end
  local info = type(meta) == "table" and meta.result_info
  if type(info) ~= "table" then info = nil end
  local size = _M.page_size(p.per_page, info)
  local last = #res == 0 or #res < size -- the page as the server sent it
  note_total(p, info, size)
  -- Items seen on an earlier page (pages shift when the group changes
  -- during the listing) are dropped from the page, in place, by the C id
  -- set: each member is counted once.
  local kept = p.seen:add_page(res)
  if not kept then
    return fail(p, A.err("invalid_response", "listing " .. p.what
      .. ": an item has no string id"))
  end
  p.count = p.count + kept
  if last then return last_page(p, res) end
  return res
end

--- Lists every item through a pager: array | nil, err.
function _M.collect(p)
  local all = {}
  p.whole = true
  while true do
    local items, err = _M.next_page(p)
    if not items then
      if err then return nil, err end
      return all
    end
    for i = 1, #items do all[#all + 1] = items[i] end
  end
end

return _M
