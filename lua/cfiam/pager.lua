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
-- checks of a page fetched alone, in page order, so the end of the
-- listing is still decided by the pages, never by the count.
--
-- The rules live in the listing state (want: the pages to ask for next;
-- take: one answered page; finish: the end), so that next_page here and
-- the account-wide lister (many listings in shared request_many rounds)
-- apply the same ones.
local type, pairs, tonumber = type, pairs, tonumber
local ceil, floor, min, max = math.ceil, math.floor, math.min, math.max
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
    size = spec.per_page, done = false, ended = nil,
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

--- The pages to ask for next: from, last (page numbers), or nil when the
-- listing is over (nil, err when max_pages stops it). After page 1 of an
-- unfiltered listing, every page total_count announces (up to the first
-- one that should come back short or empty, which must be read to know
-- the listing ended), at most `limit` of them (nil: no limit); else one.
function _M.want(p, limit)
  if p.done or p.ended then return nil end
  if p.page >= p.max_pages then return stopped(p) end
  local from = p.page + 1
  local last = from
  if p.total and not p.filtered and p.page >= 1 then
    last = max(from, min(floor(p.total / p.size) + 1, p.max_pages))
    if limit then last = min(last, p.page + limit) end
  end
  return from, last
end

--- The request for one page, as client:request_many takes it.
function _M.call(p, page)
  local q = {}
  for k, v in pairs(p.query) do q[k] = v end
  q.page = page
  return { "GET", p.path, query = q, decode = p.decode }
end

--- The page size of an answer: the per_page asked for, or a smaller one
-- the server says it used (result_info.per_page). A page shorter than
-- that is the last one.
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

--- Applies every check to the next page's answer (got: { result, meta }
-- or { err }, as request_many gives them), in page order. Returns the
-- page's new items (an array, maybe empty when the page only repeated
-- earlier items), or nil, err (the listing ended on an error). A short or
-- empty page sets p.ended: the listing is over once P.finish agrees. A
-- page read after it (fetched in the same batch) must be empty.
function _M.take(p, got)
  if p.done then return {} end
  p.page = p.page + 1
  if got.err then return fail(p, got.err) end
  local res = got.result or {} -- C makes a success's null result {}
  if type(res) ~= "table" then
    return fail(p, A.err("invalid_response", "listing " .. p.what
      .. ": result is not an array"))
  end
  if p.ended then
    if #res > 0 then
      return incomplete(p, format("listing %s returned members on page %d "
        .. "after a short page %d", p.what, p.page, p.ended))
    end
    return res
  end
  local info = type(got.meta) == "table" and got.meta.result_info
  if type(info) ~= "table" then info = nil end
  local size = _M.page_size(p.per_page, info)
  p.size = size
  local last = #res < size -- the page as the server sent it
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
  if last then p.ended = p.page end
  return res
end

--- Ends a listing whose short page was taken (and the pages fetched with
-- it): true, or nil, err when an unfiltered listing's count and
-- total_count disagree (either way: a server that miscounts cannot be
-- trusted to have listed everything).
function _M.finish(p)
  p.done = true
  if not p.filtered and p.total and p.count ~= p.total then
    return incomplete(p, format("listing %s ended on page %d with %d "
      .. "listed, but the server's total_count says %d", p.what, p.ended,
      p.count, p.total))
  end
  return true
end

-- The answers of the pages from..last into p.ahead, `concurrency` in
-- flight at once; a batch refused whole gives every page its error.
local function fetch_ahead(p, from, last)
  local calls = {}
  for page = from, last do calls[#calls + 1] = _M.call(p, page) end
  local out, err = p.client:request_many(calls, { concurrency = p.concurrency })
  for i = 1, #calls do p.ahead[from + i - 1] = out and out[i] or { err = err } end
end

--- Fetches the next page. Returns the page's new items (an array, maybe
-- empty when the page only repeated earlier items), or nil when the
-- listing is complete, or nil, err. Pages fetched ahead (concurrency > 1)
-- wait in p.ahead: all of them for collect (which keeps every page
-- anyway), `concurrency` of them for the iterator; those after the last
-- page are never read.
function _M.next_page(p)
  if p.done then return nil end
  local got = p.ahead[p.page + 1]
  if got then
    p.ahead[p.page + 1] = nil
  else
    local from, last = _M.want(p, not p.whole and p.concurrency or nil)
    if not from then return nil, last end
    if p.concurrency > 1 and last > from then
      fetch_ahead(p, from, last)
      got = p.ahead[from]
      p.ahead[from] = nil
    else
      local res, meta = p.client:request("GET", p.path,
        { query = _M.call(p, from).query, decode = p.decode })
      got = res == nil and { err = meta } or { result = res, meta = meta }
    end
  end
  local res, err = _M.take(p, got)
  if not res then return nil, err end
  if p.ended then
    local ok
    ok, err = _M.finish(p)
    if not ok then return nil, err end
    if #res == 0 then return nil end
  end
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
