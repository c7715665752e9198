/*
 * request.c: client:request and client:update_members over libcurl: the
 * single-call pacing and retry loop.
 *
 *   client:request(method, path [, opts]) -> result, meta | nil, err
 *   client:update_members(account, group, ids [, opts]) -> members | nil, err
 *
 * opts of request: query (table), ids (array of ids: a members body),
 * allow_empty, json (a pre-encoded body string), decode ("members"); as
 * in the Lua helpers, other names and wrong Lua types raise.
 * Steps: prepare (prepare.c: nothing is sent on a bad argument), then
 * pace/attempt/decide/wait up to max_retries times. request_many
 * (multi.c) and the cosocket transport (hooks.c) use the same preparing
 * and the same outcome, so every transport validates, retries and fails
 * alike.
 */
#include <time.h>
#include "cfiam.h"

void cfiam_sleep(double s) {
    struct timespec ts;
    if (!(s > 0))
        return;
    ts.tv_sec = (time_t)s;
    ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &ts) != 0 && !cfiam_interrupted())
        ;
}

/* Waits until the quota lets one more request go, if that fits in the
 * timeout. Returns 0, or pushes nil, err (rate_limited) and returns 2. */
static int pace(lua_State *L, cfiam_client *c, int attempt) {
    for (;;) {
        double wait = cfiam_pacer_wait(&c->pacer, cfiam_now());
        if (wait <= 0)
            break;
        if (wait > c->timeout)
            return cfiam_rl_refuse(L, wait, attempt - 1);
        if (cfiam_interrupted()) /* the transfer then refuses to start */
            break;
        cfiam_sleep(wait);
    }
    cfiam_pacer_sent(&c->pacer);
    return 0;
}

/* Attempts, decides and waits; the target is at the top of the stack.
 * Returns the Lua results: result, meta or nil, err. */
static int perform(lua_State *L, cfiam_client *c, const cfiam_request *rq) {
    int attempt;
    lua_pushlstring(L, c->base_url, c->base_len);
    lua_insert(L, -2);
    lua_concat(L, 2);
    if (!cfiam_curl_ready(c, L))
        return luaL_error(L, "cfiam: cannot create a libcurl handle");
    for (attempt = 1;; attempt++) {
        double wait = -1;
        int n;
        CURLcode rc;
        if ((n = pace(L, c, attempt)) != 0)
            return n;
        c->pacer.inflight++;
        rc = cfiam_curl_perform(c, rq, lua_tostring(L, -1));
        c->pacer.inflight--;
        n = cfiam_curl_outcome(L, c, &c->one, rq, rc, attempt, &wait);
        if (n > 0)
            return n;
        if (wait < 0 || attempt > c->max_retries || cfiam_interrupted()) {
            lua_pushnil(L);
            lua_insert(L, -2);
            return 2;
        }
        lua_pop(L, 1);
        cfiam_sleep(wait);
    }
}

/* client:request(method, path [, opts]) */
static int client_request(lua_State *L) {
    cfiam_client *c = cfiam_check_client(L, 1);
    cfiam_request rq;
    int r = cfiam_prepare_request(L, c, &rq);
    return r ? r : perform(L, c, &rq);
}

/* client:update_members(account, group, ids [, opts]) -> members, or
 * nil, err */
static int client_update_members(lua_State *L) {
    cfiam_client *c = cfiam_check_client(L, 1);
    cfiam_request rq;
    int r = cfiam_prepare_update(L, c, &rq);
    return r ? r : perform(L, c, &rq);
}

/* cfiam.is_id(s) -> boolean */
static int module_is_id(lua_State *L) {
    size_t len;
    const char *s = lua_tolstring(L, 1, &len);
    lua_pushboolean(L, lua_type(L, 1) == LUA_TSTRING && cfiam_is_id(s, len));
    return 1;
}

void cfiam_request_init(lua_State *L) {
    static const luaL_Reg client_methods[] = {
        {"request", client_request},
        {"update_members", client_update_members},
        {NULL, NULL}};
    /* cfiam.request and cfiam.update_members, on the default client, are
     * made with the helpers' by cfiam.extend. */
    static const luaL_Reg module_funcs[] = {
        {"is_id", module_is_id},
        {NULL, NULL}};
    /* module table at -1 */
    cfiam_setfuncs(L, module_funcs);
    cfiam_add_functions(L, 0, client_methods, NULL);
}
