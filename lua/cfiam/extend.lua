--- cfiam.extend: attaches the Lua half of cfiam to the module table that
-- the C half (csrc/cfiam.c) built. Called once, from luaopen_cfiam, as
-- require("cfiam.extend")(M).
local _VERSION = "0.1.0"

return function(M)
  if M._VERSION ~= _VERSION then
    error(("cfiam: the C module is version %s but the Lua files are %s; "
      .. "install both from the same release"):format(tostring(M._VERSION), _VERSION), 2)
  end
  return M
end
