/*
 * fuzz/response.c: a response body into a result or an error table.
 *
 * Input: byte 0 picks the HTTP status (low 4 bits, fuzz_statuses) and,
 * with its high bit, a success without meta (as update_members asks); byte 1
 * the decode mode ('m' = members, else raw), the rest is the body. Runs
 * cfiam_json_decode on its own, then cfiam_response_outcome as the libcurl
 * transport does, inside lua_pcall (a Lua memory error must not abort).
 * Invariants: the stack is balanced; success pushes result + meta (a table),
 * the result any non-nil JSON value (a table when decoding members), failure
 * one error table with a string kind and a one-line message of at most
 * 1023 bytes; the retry wait is -1 or within the cap; and the client's
 * secret never appears in any string of the error, even when the body
 * echoes it.
 */
#include "fuzz_common.h"

static lua_State *L;
static cfiam_client client;

/* Whether any string in the value at idx (tables walked, depth-bounded)
 * contains FUZZ_SECRET. */
static int has_secret(lua_State *L, int idx, int depth) {
    int found = 0;
    idx = cfiam_absindex(L, idx);
    if (lua_type(L, idx) == LUA_TSTRING) {
        size_t len, n = strlen(FUZZ_SECRET), i;
        const char *s = lua_tolstring(L, idx, &len);
        for (i = 0; i + n <= len; i++)
            if (memcmp(s + i, FUZZ_SECRET, n) == 0)
                return 1;
        return 0;
    }
    if (!lua_istable(L, idx) || depth > 80)
        return 0;
    lua_pushnil(L);
    while (!found && lua_next(L, idx)) {
        found = has_secret(L, -1, depth + 1);
        lua_pop(L, 1);
    }
    if (found)
        lua_pop(L, 1); /* the key */
    return found;
}

typedef struct {
    const char *body;
    size_t len;
    long status;
    cfiam_request rq;
} input;

static int run(lua_State *L) {
    input *in = lua_touserdata(L, 1);
    cfiam_resp_headers h;
    char why[96];
    double wait = -2;
    int top, n;
    lua_settop(L, 0);
    /* the decoder alone */
    why[0] = 'x';
    if (cfiam_json_decode(L, in->body, in->len, &client.scratch, why, sizeof(why))) {
        CHECK(lua_gettop(L) == 1);
    } else {
        CHECK(lua_gettop(L) == 0);
        CHECK(memchr(why, '\0', sizeof(why)) != NULL);
    }
    lua_settop(L, 0);
    /* the whole outcome, with a cf-ray header that echoes the secret */
    memset(&h, 0, sizeof(h));
    cfiam_capture_header(&h, "cf-ray: " FUZZ_SECRET, strlen("cf-ray: " FUZZ_SECRET));
    top = lua_gettop(L);
    n = cfiam_response_outcome(L, &client, &in->rq, in->status, &h, in->body,
                               in->len, 1, &wait);
    if (n > 0) {
        /* result and meta, or the result alone when no meta was asked */
        CHECK(n == (in->rq.want_meta ? 2 : 1));
        CHECK(in->status >= 200 && in->status < 300);
        CHECK(lua_gettop(L) == top + n);
        /* a raw result is any JSON value (a string, a number, ...), never
         * nil; members are a table; meta is always a table */
        CHECK(!lua_isnil(L, -n));
        if (in->rq.want_meta)
            CHECK(lua_istable(L, -1));
        if (in->rq.decode == CFIAM_DECODE_MEMBERS)
            CHECK(lua_istable(L, -n));
        CHECK(wait == -1);
    } else {
        size_t ml;
        const char *m;
        CHECK(n == -1);
        CHECK(lua_gettop(L) == top + 1);
        CHECK(lua_istable(L, -1));
        lua_getfield(L, -1, "kind");
        CHECK(lua_type(L, -1) == LUA_TSTRING);
        lua_pop(L, 1);
        lua_getfield(L, -1, "message");
        CHECK(lua_type(L, -1) == LUA_TSTRING);
        m = lua_tolstring(L, -1, &ml);
        CHECK(ml <= 1023 + 64);
        CHECK(memchr(m, '\n', ml) == NULL);
        lua_pop(L, 1);
        CHECK(wait == -1 || (wait >= 0 && wait <= CFIAM_RETRY_AFTER_CAP));
        CHECK(!has_secret(L, -1, 0));
        /* tostring(err) as a user would print it */
        CHECK(luaL_callmeta(L, -1, "__tostring"));
        CHECK(!has_secret(L, -1, 0));
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    input in;
    if (L == NULL) {
        L = luaL_newstate();
        luaL_openlibs(L);
        cfiam_error_init(L);
        client.secrets[0] = FUZZ_SECRET;
    }
    if (size < 2)
        return 0;
    in.status = fuzz_status(data[0]);
    in.rq.method = "GET";
    in.rq.has_body = 0;
    in.rq.decode = data[1] == 'm' ? CFIAM_DECODE_MEMBERS : CFIAM_DECODE_RAW;
    in.rq.want_meta = !(data[0] & 0x80);
    /* the body in its own allocation, so ASan sees any read past its end */
    in.len = size - 2;
    in.body = in.len ? memcpy(malloc(in.len), data + 2, in.len) : "";
    lua_pushcfunction(L, run);
    lua_pushlightuserdata(L, &in);
    if (lua_pcall(L, 1, 0, 0) != 0) {
        /* only memory errors may be raised; anything else is a bug */
        fprintf(stderr, "raised: %s\n", lua_tostring(L, -1));
        abort();
    }
    lua_settop(L, 0);
    if (in.len)
        free((void *)in.body);
    return 0;
}
