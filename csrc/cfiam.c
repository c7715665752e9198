/*
 * cfiam.c: luaopen_cfiam, the entry point of `require "cfiam"`.
 *
 * Builds the module table from the C parts (cfiam.new, the request
 * primitive, update_members, the error metatable) and the internal table
 * of hooks the Lua half uses (require "cfiam.core"), then hands the module
 * to the pure-Lua part, lua/cfiam/extend.lua, which attaches the helpers
 * (list, plan, sync, ...) and picks the transport. Both halves carry
 * _VERSION and refuse to run with the other half of another version; a
 * failure leaves neither table in package.loaded.
 */
#include <signal.h>
#include <string.h>
#include "cfiam.h"

/* Ctrl-C for the command. The handler only sets a flag: the libcurl
 * progress callback aborts the transfer when it sees it, and the retry
 * sleep ends; the command then reports and exits. Library users who never
 * call core.catch_interrupt keep their own SIGINT handling. */
static volatile sig_atomic_t interrupted = 0;

int cfiam_interrupted(void) { return interrupted != 0; }

static void on_sigint(int sig) {
    (void)sig;
    interrupted = 1;
}

/* core.catch_interrupt() -> true when the handler is installed. Without
 * SA_RESTART, so that a read of standard input (the prompt) ends too. */
static int core_catch_interrupt(lua_State *L) {
#if defined(_WIN32)
    lua_pushboolean(L, signal(SIGINT, on_sigint) != SIG_ERR);
#else
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    lua_pushboolean(L, sigaction(SIGINT, &sa, NULL) == 0);
#endif
    return 1;
}

/* core.interrupted() -> whether Ctrl-C came since catch_interrupt. */
static int core_interrupted(lua_State *L) {
    lua_pushboolean(L, interrupted != 0);
    return 1;
}

/* core.error(t) -> t with the error metatable, for errors made in Lua. */
static int core_error(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    luaL_getmetatable(L, CFIAM_ERROR_MT);
    lua_setmetatable(L, 1);
    return 1;
}

/* package.loaded[name] = the value at `idx` (index taken before any push). */
static void set_loaded(lua_State *L, const char *name, int idx) {
    lua_pushvalue(L, idx);
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "loaded");
    lua_pushvalue(L, -3);
    lua_setfield(L, -2, name);
    lua_pop(L, 3);
}

CFIAM_EXPORT int luaopen_cfiam(lua_State *L) {
    static int curl_ready = 0;
    static const luaL_Reg funcs[] = {
        {"new", cfiam_client_new},
        {"default_client", cfiam_default_client},
        {"configure", cfiam_configure},
        {NULL, NULL}};
    int core;
    if (!curl_ready) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
            return luaL_error(L, "cfiam: curl_global_init failed");
        curl_ready = 1;
    }
    /* The core table: what the Lua half needs from C and the README does
     * not document (require "cfiam.core"), kept off the public tables. */
    lua_newtable(L);
    core = lua_gettop(L);
    lua_pushcfunction(L, core_error);
    lua_setfield(L, core, "error");
    lua_pushcfunction(L, cfiam_scrub_hook);
    lua_setfield(L, core, "scrub");
    lua_pushcfunction(L, cfiam_quote_hook);
    lua_setfield(L, core, "quote");
    lua_pushcfunction(L, core_catch_interrupt);
    lua_setfield(L, core, "catch_interrupt");
    lua_pushcfunction(L, core_interrupted);
    lua_setfield(L, core, "interrupted");
    cfiam_error_init(L);
    cfiam_client_init(L);
    cfiam_idset_init(L);
    lua_newtable(L);
    cfiam_setfuncs(L, funcs);
    cfiam_request_init(L);
    cfiam_hooks_init(L, core);
    cfiam_multi_init(L, core);
    lua_pushliteral(L, CFIAM_VERSION);
    lua_setfield(L, -2, "_VERSION");

    /* package.loaded.cfiam = M and package.loaded["cfiam.core"] first, so
     * that the Lua part can require both without a loop; then
     * require("cfiam.extend")(M). */
    set_loaded(L, "cfiam", -1);
    set_loaded(L, "cfiam.core", core);
    lua_getglobal(L, "require");
    lua_pushliteral(L, "cfiam.extend");
    if (lua_pcall(L, 1, 1, 0) == 0) {
        lua_pushvalue(L, -2);
        if (lua_pcall(L, 1, 0, 0) == 0)
            return 1;
    }
    /* Missing Lua files or another version: no half-built module stays
     * behind for the next require to return. */
    lua_pushnil(L);
    set_loaded(L, "cfiam", -1);
    set_loaded(L, "cfiam.core", -1);
    lua_pop(L, 1);
    return lua_error(L);
}
