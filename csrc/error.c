/*
 * error.c: the error value. Every runtime failure is `nil, err` where err
 * is a plain table with the "cfiam.error" metatable:
 *   kind, message, status, errors, messages, ray_id, attempts, retry_after
 * __tostring gives "cfiam <kind>: <message> (cf-ray <id>)" on one line, and
 * __concat lets "x: " .. err work. Secrets never reach these strings:
 * cfiam_error_scrub removes them from anything a server sent back.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cfiam.h"

static const char *const kind_names[] = {
    "invalid_argument", "auth", "permission", "not_found", "rate_limited",
    "api", "server", "timeout", "network", "tls", "invalid_response"};

/* Adds prefix, the field `name` of the table at 1, then suffix, when that
 * field is a string. The field is pushed only while the buffer takes it
 * (luaL_addvalue), so the buffer stays balanced. */
static void add_field(lua_State *L, luaL_Buffer *b, const char *name,
                      const char *prefix, const char *suffix) {
    lua_getfield(L, 1, name);
    if (!lua_isstring(L, -1)) {
        lua_pop(L, 1);
        return;
    }
    lua_pop(L, 1);
    luaL_addstring(b, prefix);
    lua_getfield(L, 1, name);
    luaL_addvalue(b);
    luaL_addstring(b, suffix);
}

/* __tostring: one line, kind first. */
static int error_tostring(lua_State *L) {
    luaL_Buffer b;
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_buffinit(L, &b);
    luaL_addstring(&b, "cfiam ");
    lua_getfield(L, 1, "kind");
    if (lua_isstring(L, -1))
        luaL_addvalue(&b);
    else {
        lua_pop(L, 1);
        luaL_addstring(&b, "error");
    }
    add_field(L, &b, "message", ": ", "");
    add_field(L, &b, "ray_id", " (cf-ray ", ")");
    luaL_pushresult(&b);
    return 1;
}

/* __concat: either operand may be the error. */
static int error_concat(lua_State *L) {
    int i;
    for (i = 1; i <= 2; i++) {
        if (lua_istable(L, i)) {
            lua_pushcfunction(L, error_tostring);
            lua_pushvalue(L, i);
            lua_call(L, 1, 1);
            lua_replace(L, i);
        } else if (!lua_isstring(L, i)) {
            return luaL_error(L, "attempt to concatenate a %s value",
                              luaL_typename(L, i));
        }
    }
    lua_concat(L, 2);
    return 1;
}

void cfiam_error_init(lua_State *L) {
    if (luaL_newmetatable(L, CFIAM_ERROR_MT)) {
        lua_pushcfunction(L, error_tostring);
        lua_setfield(L, -2, "__tostring");
        lua_pushcfunction(L, error_concat);
        lua_setfield(L, -2, "__concat");
        lua_pushliteral(L, CFIAM_ERROR_MT);
        lua_setfield(L, -2, "__name");
    }
    lua_pop(L, 1);
}

void cfiam_push_error(lua_State *L, cfiam_kind k, const char *message) {
    lua_createtable(L, 0, 8);
    lua_pushstring(L, kind_names[k]);
    lua_setfield(L, -2, "kind");
    lua_pushstring(L, message);
    lua_setfield(L, -2, "message");
    lua_newtable(L);
    lua_setfield(L, -2, "errors");
    lua_newtable(L);
    lua_setfield(L, -2, "messages");
    luaL_getmetatable(L, CFIAM_ERROR_MT);
    lua_setmetatable(L, -2);
}

int cfiam_invalid(lua_State *L, const char *const *secrets, const char *fmt,
                  ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    lua_pushnil(L);
    cfiam_push_error(L, CFIAM_E_INVALID_ARGUMENT, msg);
    lua_pushinteger(L, 0);
    lua_setfield(L, -2, "attempts");
    cfiam_error_scrub(L, -1, secrets);
    return 2;
}

/* A secret leaks when any run of CFIAM_SECRET_RUN bytes of it shows, not
 * only the whole of it: a quote cut at 40 bytes, or a caller's substring,
 * would otherwise carry most of a token. Every 8-byte window of every
 * secret is kept as a sorted array of 64-bit words, so a string of n
 * bytes is checked with n binary searches (linear in hostile input). */
#define CFIAM_SECRET_RUN 8
#define MAX_WINDOWS 512

typedef struct windows {
    uint64_t w[MAX_WINDOWS];
    size_t n;
    unsigned char first[32];         /* bitmap of the windows' first bytes */
    const char *const *long_secrets; /* set when the array overflowed */
} windows;

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t load8(const char *p) {
    uint64_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

static void windows_init(windows *ws, const char *const *secrets) {
    int k;
    size_t i;
    ws->n = 0;
    ws->long_secrets = NULL;
    memset(ws->first, 0, sizeof(ws->first));
    for (k = 0; secrets && secrets[k]; k++) {
        size_t len = strlen(secrets[k]);
        for (i = 0; i + CFIAM_SECRET_RUN <= len; i++) {
            unsigned char c = (unsigned char)secrets[k][i];
            if (ws->n == MAX_WINDOWS) {
                ws->long_secrets = secrets; /* a pathological credential */
                return;
            }
            ws->w[ws->n++] = load8(secrets[k] + i);
            ws->first[c >> 3] |= (unsigned char)(1u << (c & 7));
        }
    }
    qsort(ws->w, ws->n, sizeof(ws->w[0]), cmp_u64);
}

/* Whether the CFIAM_SECRET_RUN bytes at p occur in a secret. */
static int window_hit(const windows *ws, const char *p) {
    unsigned char c = (unsigned char)p[0];
    size_t lo = 0, hi = ws->n;
    uint64_t v;
    int k;
    if (ws->long_secrets) { /* slow but exact */
        for (k = 0; ws->long_secrets[k]; k++) {
            const char *s = ws->long_secrets[k];
            size_t len = strlen(s), i;
            for (i = 0; i + CFIAM_SECRET_RUN <= len; i++)
                if (memcmp(s + i, p, CFIAM_SECRET_RUN) == 0)
                    return 1;
        }
        return 0;
    }
    if (!(ws->first[c >> 3] & (1u << (c & 7))))
        return 0;
    v = load8(p);
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ws->w[mid] == v)
            return 1;
        if (ws->w[mid] < v)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

/* Offset of the first secret window in s[0..len), or len when none. */
static size_t first_hit(const windows *ws, const char *s, size_t len) {
    size_t i;
    if (ws->n == 0 && ws->long_secrets == NULL)
        return len;
    for (i = 0; i + CFIAM_SECRET_RUN <= len; i++)
        if (window_hit(ws, s + i))
            return i;
    return len;
}

/* Quotes a bad argument for a message, or "[redacted]" when it holds part
 * of a secret (a token passed in the wrong place, or a piece of one). */
void cfiam_quote_arg(char *out, size_t cap, const char *s, size_t len,
                     const char *const *secrets) {
    windows ws;
    windows_init(&ws, secrets);
    if (first_hit(&ws, s, len) < len) {
        snprintf(out, cap, "[redacted]");
        return;
    }
    cfiam_quote(out, cap, s, len);
}

/* Replaces the string at the top of the stack by a copy in which every
 * run of bytes covered by secret windows reads "[redacted]". */
void cfiam_scrub_top(lua_State *L, const char *const *secrets) {
    size_t len, i, covered = 0;
    const char *s = lua_tolstring(L, -1, &len);
    int in_run = 0;
    windows ws;
    luaL_Buffer b;
    if (secrets == NULL || secrets[0] == NULL || s == NULL)
        return;
    windows_init(&ws, secrets);
    i = first_hit(&ws, s, len);
    if (i == len)
        return;
    luaL_buffinit(L, &b); /* the original string stays below the buffer */
    luaL_addlstring(&b, s, i);
    for (; i < len; i++) {
        if (i + CFIAM_SECRET_RUN <= len && window_hit(&ws, s + i))
            covered = i + CFIAM_SECRET_RUN;
        if (i < covered) {
            if (!in_run)
                luaL_addstring(&b, "[redacted]");
            in_run = 1;
        } else {
            in_run = 0;
            luaL_addchar(&b, s[i]);
        }
    }
    luaL_pushresult(&b);
    lua_remove(L, -2);
}

static void scrub_field(lua_State *L, int t, const char *field,
                        const char *const *secrets) {
    lua_getfield(L, t, field);
    if (lua_type(L, -1) == LUA_TSTRING) {
        cfiam_scrub_top(L, secrets);
        lua_setfield(L, t, field);
    } else {
        lua_pop(L, 1);
    }
}

/* Every string value, at any depth: servers echo input in message,
 * error_chain[i].message, documentation_url, source.pointer... */
static void scrub_values(lua_State *L, int t, const char *const *secrets,
                         int depth) {
    if (depth > CFIAM_JSON_MAX_DEPTH + 1 || !lua_checkstack(L, 6))
        return;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        if (lua_type(L, -1) == LUA_TSTRING) {
            cfiam_scrub_top(L, secrets);
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_rawset(L, t); /* an existing key: allowed during lua_next */
        } else {
            if (lua_istable(L, -1))
                scrub_values(L, lua_gettop(L), secrets, depth + 1);
            lua_pop(L, 1);
        }
    }
}

void cfiam_scrub_table(lua_State *L, int idx, const char *const *secrets) {
    idx = cfiam_absindex(L, idx);
    if (secrets == NULL || secrets[0] == NULL || !lua_istable(L, idx))
        return;
    scrub_values(L, idx, secrets, 0);
}

static void scrub_list(lua_State *L, int t, const char *field,
                       const char *const *secrets) {
    lua_getfield(L, t, field);
    if (lua_istable(L, -1))
        scrub_values(L, lua_gettop(L), secrets, 0);
    lua_pop(L, 1);
}

void cfiam_error_scrub(lua_State *L, int idx, const char *const *secrets) {
    idx = cfiam_absindex(L, idx);
    if (secrets == NULL || secrets[0] == NULL)
        return;
    scrub_field(L, idx, "message", secrets);
    scrub_field(L, idx, "ray_id", secrets); /* a cf-ray header echoing it */
    scrub_list(L, idx, "errors", secrets);
    scrub_list(L, idx, "messages", secrets);
}

/* The secrets named by the value at `idx`: a client's, or the strings of
 * an array (the command's environment, before any client exists). `buf`
 * holds up to `cap - 1` pointers, anchored by that value. */
static const char *const *hook_secrets(lua_State *L, int idx, const char **buf,
                                       int cap) {
    int n = 0, i;
    if (lua_type(L, idx) == LUA_TUSERDATA && lua_getmetatable(L, idx)) {
        int same;
        luaL_getmetatable(L, CFIAM_CLIENT_MT);
        same = lua_rawequal(L, -1, -2);
        lua_pop(L, 2);
        if (same)
            return ((cfiam_client *)lua_touserdata(L, idx))->secrets;
    } else if (lua_istable(L, idx)) {
        for (i = 1; n < cap - 1; i++) {
            size_t len;
            const char *s;
            lua_rawgeti(L, idx, i);
            if (lua_isnil(L, -1)) {
                lua_pop(L, 1);
                break;
            }
            s = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len)
                                                : NULL;
            lua_pop(L, 1); /* still anchored by the array */
            if (s && len >= CFIAM_SECRET_RUN && strlen(s) == len)
                buf[n++] = s;
        }
    }
    buf[n] = NULL;
    return buf;
}

/* core.scrub(client | {secret, ...}, v): v without secrets. A string
 * comes back scrubbed; a table (an error, a plan) is scrubbed in place,
 * every string value at any depth. For the Lua helpers and the command,
 * so that every message goes through this one function. */
int cfiam_scrub_hook(lua_State *L) {
    const char *buf[9];
    const char *const *secrets;
    lua_settop(L, 2);
    secrets = hook_secrets(L, 1, buf, 9);
    if (lua_type(L, 2) == LUA_TSTRING)
        cfiam_scrub_top(L, secrets);
    else if (lua_istable(L, 2))
        cfiam_scrub_table(L, 2, secrets);
    return 1;
}

/* core.quote(s [, client | {secret, ...}]): the C quoting for a value
 * in a message: bounded, control bytes escaped, "[redacted]" when it
 * holds part of a secret. */
int cfiam_quote_hook(lua_State *L) {
    const char *buf[9];
    char q[64];
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    cfiam_quote_arg(q, sizeof(q), s, len, hook_secrets(L, 2, buf, 9));
    lua_pushstring(L, q);
    return 1;
}
