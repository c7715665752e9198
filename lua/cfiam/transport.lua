--- cfiam.transport: chooses how requests travel. Plain Lua: libcurl, in C
-- (the methods the C module registered are left as they are).
local _M = {}

function _M.install(M, methods) -- luacheck: ignore M methods
end

return _M
