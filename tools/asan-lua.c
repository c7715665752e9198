/*
 * tools/asan-lua.c: a minimal Lua 5.4 interpreter for make test-asan, built
 * and linked with -fsanitize=address,undefined so that the ASan runtime is
 * part of the program instead of being preloaded (LD_PRELOAD would leak
 * into every child process: sh, mktemp, the emulator, node).
 *
 * It understands what the suite uses: `lua script [args]`, `lua -e code
 * [...]`, `lua -` and `lua` (code from stdin); `arg` is set as lua.c does.
 * The state is closed at the end (os.exit(n, true) too), so whatever is
 * still allocated then is a leak for LeakSanitizer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

static lua_State *globalL; /* keeps the state reachable for LSan */

/* LeakSanitizer's tracking of dynamic TLS (GCC 12's runtime on glibc 2.36)
 * can read a bogus range for a block that a library of libcurl's
 * (gnutls, p11-kit) gets through __tls_get_addr; its tracer then crashes
 * at exit ("Tracer caught signal 11"), or not, depending on the heap
 * layout. Not intercepting __tls_get_addr avoids it: those blocks are then
 * not scanned as roots, so a leak could be reported falsely, never hidden.
 * ASAN_OPTIONS still adds to this (and child interpreters get it too). */
const char *__asan_default_options(void);
const char *__asan_default_options(void) {
    return "intercept_tls_get_addr=0";
}

static int traceback(lua_State *L) {
    const char *msg = lua_tostring(L, 1);
    if (msg == NULL && !luaL_callmeta(L, 1, "__tostring"))
        msg = lua_pushfstring(L, "(error object is a %s value)",
                              luaL_typename(L, 1));
    else if (msg == NULL)
        msg = lua_tostring(L, -1);
    luaL_traceback(L, L, msg, 1);
    return 1;
}

static int report(lua_State *L, int status, const char *progname) {
    if (status != LUA_OK) {
        fprintf(stderr, "%s: %s\n", progname, lua_tostring(L, -1));
        fflush(stderr);
        lua_pop(L, 1);
    }
    return status;
}

/* Calls the chunk at the top with n arguments below it. */
static int docall(lua_State *L, int narg) {
    int base = lua_gettop(L) - narg, status;
    lua_pushcfunction(L, traceback);
    lua_insert(L, base);
    status = lua_pcall(L, narg, 0, base);
    lua_remove(L, base);
    return status;
}

int main(int argc, char **argv) {
    lua_State *L = luaL_newstate();
    const char *prog = argv[0];
    int i, script = 0, status = LUA_OK;
    if (L == NULL)
        return 1;
    globalL = L;
    luaL_openlibs(L);
    /* find the script (the first argument that is not an option) */
    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-e") == 0) { i++; continue; }
        if (strcmp(argv[i], "--") == 0) { script = i + 1 < argc ? i + 1 : 0; break; }
        script = i;
        break;
    }
    /* arg: arg[0] is the script, negative indices the interpreter and options */
    {
        int base = script; /* no script: arg[0] is the interpreter, as lua.c */
        lua_createtable(L, argc, 1);
        for (i = 0; i < argc; i++) {
            lua_pushstring(L, argv[i]);
            lua_rawseti(L, -2, i - base);
        }
        lua_setglobal(L, "arg");
    }
    for (i = 1; i < argc && (script == 0 || i < script); i++) {
        if (strcmp(argv[i], "-e") == 0 && i + 1 < argc) {
            i++;
            status = luaL_loadbuffer(L, argv[i], strlen(argv[i]), "=(command line)");
            if (status == LUA_OK)
                status = docall(L, 0);
            if (report(L, status, prog) != LUA_OK)
                goto done;
        }
    }
    if (script || argc == 1 || (argc > 1 && strcmp(argv[argc - 1], "-") == 0 && script == 0)) {
        const char *fname = script ? argv[script] : NULL;
        int n = 0;
        if (fname && strcmp(fname, "-") == 0)
            fname = NULL;
        if (script == 0 && argc > 1 && strcmp(argv[1], "-e") == 0 && strcmp(argv[argc - 1], "-") != 0)
            goto done;
        status = luaL_loadfile(L, fname);
        if (status == LUA_OK) {
            if (script)
                for (i = script + 1; i < argc; i++, n++)
                    lua_pushstring(L, argv[i]);
            status = docall(L, n);
        }
        report(L, status, prog);
    }
done:
    lua_close(L);
    globalL = NULL;
    return status == LUA_OK ? EXIT_SUCCESS : EXIT_FAILURE;
}
