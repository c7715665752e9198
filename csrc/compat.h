/*
 * compat.h: the few Lua C API differences between 5.1 (and LuaJIT 2.1),
 * 5.2, 5.3 and 5.4 that cfiam needs, as prefixed static shims.
 *
 * Never defines luaL_* or lua_* names itself: LuaJIT already exports some of
 * the 5.2 functions (luaL_setfuncs, luaL_testudata) and a second definition
 * would clash.
 */
#ifndef CFIAM_COMPAT_H
#define CFIAM_COMPAT_H

#include <lua.h>
#include <lauxlib.h>

#if LUA_VERSION_NUM >= 502
#define cfiam_rawlen(L, i) lua_rawlen((L), (i))
#define cfiam_absindex(L, i) lua_absindex((L), (i))
#define cfiam_setfuncs(L, l) luaL_setfuncs((L), (l), 0)
#else
#define cfiam_rawlen(L, i) lua_objlen((L), (i))
#define cfiam_absindex(L, i) \
    (((i) > 0 || (i) <= LUA_REGISTRYINDEX) ? (i) : lua_gettop(L) + (i) + 1)
#if defined(__GNUC__)
__attribute__((unused))
#endif
static void cfiam_setfuncs(lua_State *L, const luaL_Reg *l) {
    for (; l->name != NULL; l++) {
        lua_pushcfunction(L, l->func);
        lua_setfield(L, -2, l->name);
    }
}
#endif

/* The table attached to a client userdata (its configuration strings). */
#if LUA_VERSION_NUM >= 504
#define cfiam_getuservalue(L, i) ((void)lua_getiuservalue((L), (i), 1))
#define cfiam_setuservalue(L, i) ((void)lua_setiuservalue((L), (i), 1))
#elif LUA_VERSION_NUM >= 502
#define cfiam_getuservalue(L, i) ((void)lua_getuservalue((L), (i)))
#define cfiam_setuservalue(L, i) ((void)lua_setuservalue((L), (i)))
#else
#define cfiam_getuservalue(L, i) lua_getfenv((L), (i))
#define cfiam_setuservalue(L, i) ((void)lua_setfenv((L), (i)))
#endif

/* Whole JSON numbers become integers where Lua has them (5.3+). */
#if LUA_VERSION_NUM >= 503
#define CFIAM_HAVE_INTEGERS 1
#else
#define CFIAM_HAVE_INTEGERS 0
#endif

#endif
