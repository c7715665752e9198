/*
 * multi.c: many calls at once over libcurl's multi interface.
 *
 *   client:request_many(calls [, opts]) -> out | nil, err
 *     calls[i] = { method, path, query =, ids =, json =, decode =,
 *                  allow_empty = }     (the options of client:request)
 *     opts.concurrency: transfers in flight at once, 1..64 (default 8)
 *     out[i] = { result =, meta = } or { err = err }, in the order of calls
 *
 * Every call is validated (cfiam_prepare, as client:request does) before
 * anything is sent; the first bad one fails the whole batch with its index
 * ("calls[7]: ..."). Then up to `concurrency` transfers run on the client's
 * pool of easy handles; over HTTPS libcurl negotiates HTTP/2 and
 * multiplexes them on one connection (PIPEWAIT: a transfer waits for the
 * connection being made rather than opening its own).
 *
 * Each call retries by the single-call rules (cfiam_curl_outcome decides).
 * A 429 holds back the whole batch for its wait; the pacer (ratelimit.c)
 * holds back transfers when the quota is used up. A wait beyond the
 * client's timeout fails the calls still waiting at once, unsent, and the
 * call that got such a 429 ends on it instead of retrying. After Ctrl-C
 * (cfiam_interrupted) nothing starts and nothing is waited for: the
 * transfers in flight are aborted (the progress callback), the calls not
 * sent fail as interrupted.
 *
 * Memory: the slots (and their response buffers, one per slot, so at most
 * `concurrency` of them) belong to the client and live until close/__gc.
 * URLs and bodies are Lua strings anchored on the stack for the batch.
 * libcurl callbacks never call Lua. A Lua error (out of memory) can leave
 * transfers attached to the multi handle: the next batch detaches them
 * before it starts.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cfiam.h"

#define DEFAULT_CONCURRENCY 8

enum { CALL_WAITING, CALL_RUNNING, CALL_DONE };

typedef struct mcall {
    cfiam_request rq;
    const char *url;   /* anchored in the batch's anchor table */
    const char *body;  /* likewise, or NULL */
    size_t body_len;
    int attempt;       /* attempts started */
    int state;
    double not_before; /* monotonic: a retry waits until then */
} mcall;

/* Detaches whatever an aborted batch left in the multi handle. */
static void detach_all(cfiam_client *c) {
    int i;
    c->pacer.stale = 0;
    for (i = 0; i < c->npool; i++) {
        cfiam_xfer *x = c->pool[i];
        if (x->call) {
            curl_multi_remove_handle(c->multi, x->easy);
            x->call = 0;
            if (c->pacer.inflight > 0)
                c->pacer.inflight--;
        }
    }
}

void cfiam_multi_close(cfiam_client *c) {
    int i;
    if (c->multi)
        detach_all(c);
    for (i = 0; i < c->npool; i++) {
        cfiam_xfer *x = c->pool[i];
        if (x->easy)
            curl_easy_cleanup(x->easy);
        cfiam_buf_free(&x->resp);
        free(x);
        c->pool[i] = NULL;
    }
    c->npool = 0;
    if (c->multi) {
        curl_multi_cleanup(c->multi);
        c->multi = NULL;
    }
}

/* The multi handle and `n` slots; the client is at stack index 1. */
static void multi_ready(lua_State *L, cfiam_client *c, int n) {
    if (!cfiam_curl_ready(c, L))
        luaL_error(L, "cfiam: cannot create a libcurl handle");
    if (c->multi == NULL) {
        if ((c->multi = curl_multi_init()) == NULL)
            luaL_error(L, "cfiam: cannot create a libcurl multi handle");
        curl_multi_setopt(c->multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
    }
    detach_all(c);
    while (c->npool < n) {
        cfiam_xfer *x = calloc(1, sizeof(*x));
        if (x == NULL)
            luaL_error(L, "cfiam: out of memory");
        c->pool[c->npool++] = x; /* owned by the client from here */
        if (!cfiam_curl_setup(c, x, L))
            luaL_error(L, "cfiam: cannot create a libcurl handle");
        curl_easy_setopt(x->easy, CURLOPT_PRIVATE, (void *)x);
        curl_easy_setopt(x->easy, CURLOPT_PIPEWAIT, 1L);
    }
}

/* Reads opts.concurrency (the only option); raises on anything else. */
static int concurrency_opt(lua_State *L, const cfiam_client *c, int opts) {
    int conc = DEFAULT_CONCURRENCY;
    if (lua_isnoneornil(L, opts))
        return conc;
    if (!lua_istable(L, opts))
        luaL_error(L, "bad argument to 'request_many' (options: table "
                      "expected, got %s)", luaL_typename(L, opts));
    lua_pushnil(L);
    while (lua_next(L, opts)) {
        if (lua_type(L, -2) != LUA_TSTRING ||
            strcmp(lua_tostring(L, -2), "concurrency") != 0) {
            char q[64];
            size_t len;
            const char *name;
            lua_pop(L, 1);
            if (lua_type(L, -1) != LUA_TSTRING)
                luaL_error(L, "bad argument to 'request_many' (option names "
                              "must be strings)");
            name = lua_tolstring(L, -1, &len);
            cfiam_quote_arg(q, sizeof(q), name, len, c->secrets); /* a misplaced token? */
            luaL_error(L, "bad argument to 'request_many' (unknown option %s)",
                       q);
        }
        lua_pop(L, 1);
    }
    lua_getfield(L, opts, "concurrency");
    if (!lua_isnil(L, -1)) {
        double d = lua_type(L, -1) == LUA_TNUMBER ? (double)lua_tonumber(L, -1) : 0;
        if (!(d >= 1 && d <= CFIAM_MAX_CONCURRENCY && d == floor(d)))
            luaL_error(L, "bad argument to 'request_many' (option "
                          "'concurrency' must be a whole number from 1 to "
                          "%d)", CFIAM_MAX_CONCURRENCY);
        conc = (int)d;
    }
    lua_pop(L, 1);
    return conc;
}

/* Validates every call and fills mc[]; URLs and bodies go into the table
 * at `anchor`. Returns 0, or pushes nil, err and returns 2. */
static int prepare_all(lua_State *L, cfiam_client *c, int calls, size_t n,
                       mcall *mc, int anchor) {
    size_t i;
    int top = lua_gettop(L);
    for (i = 0; i < n; i++) {
        char where[48];
        int r;
        lua_rawgeti(L, calls, (int)(i + 1));
        if (!lua_istable(L, -1))
            luaL_error(L, "bad argument to 'request_many' (calls[%d]: table "
                          "{ method, path, ... } expected, got %s)",
                       (int)(i + 1), luaL_typename(L, -1));
        lua_rawgeti(L, top + 1, 1);
        lua_rawgeti(L, top + 1, 2);
        lua_pushvalue(L, top + 1);
        snprintf(where, sizeof(where), "calls[%d]: ", (int)(i + 1));
        if ((r = cfiam_prepare(L, c, &mc[i].rq, top + 2, where)) != 0)
            return r;
        lua_pushlstring(L, c->base_url, c->base_len);
        lua_insert(L, -2);
        lua_concat(L, 2);
        mc[i].url = lua_tostring(L, -1);
        lua_rawseti(L, anchor, (int)(2 * i + 1));
        mc[i].body = NULL;
        mc[i].body_len = 0;
        if (mc[i].rq.has_body) {
            lua_pushlstring(L, c->body.data ? c->body.data : "", c->body.len);
            mc[i].body = lua_tolstring(L, -1, &mc[i].body_len);
            lua_rawseti(L, anchor, (int)(2 * i + 2));
        }
        mc[i].attempt = 0;
        mc[i].state = CALL_WAITING;
        mc[i].not_before = 0;
        lua_settop(L, top);
    }
    return 0;
}

/* out[i] = { err = <error at the top> } (pops it). */
static void set_err(lua_State *L, int out, int i) {
    lua_createtable(L, 0, 1);
    lua_insert(L, -2);
    lua_setfield(L, -2, "err");
    lua_rawseti(L, out, i);
}

/* Fails call i unsent: the quota or a 429 asks for a wait beyond the
 * client's timeout. */
static void refuse(lua_State *L, int out, mcall *m, int i, double wait) {
    cfiam_rl_refuse(L, wait, m->attempt);
    lua_remove(L, -2); /* the nil */
    set_err(L, out, i);
    m->state = CALL_DONE;
}

/* A finished transfer on slot x: its call's result, error or retry.
 * Returns 1 when the call is done. *hold is raised after a 429. */
static int finish(lua_State *L, cfiam_client *c, cfiam_xfer *x, CURLcode rc,
                  mcall *mc, int out, double *hold) {
    int i = x->call - 1, r;
    mcall *m = &mc[i];
    double wait = -1, now;
    x->call = 0;
    c->pacer.inflight--;
    rc = cfiam_curl_finish(x, rc);
    c->pacer.stale = x->epoch != c->pacer.epoch;
    r = cfiam_curl_outcome(L, c, x, &m->rq, rc, m->attempt, &wait);
    c->pacer.stale = 0;
    now = cfiam_now();
    if (r > 0) { /* result, meta */
        lua_createtable(L, 0, 2);
        lua_insert(L, -3);
        lua_setfield(L, -3, "meta");
        lua_setfield(L, -2, "result");
        lua_rawseti(L, out, i + 1);
        m->state = CALL_DONE;
        return 1;
    }
    if (rc == CURLE_OK && x->status == 429) {
        /* the whole batch holds off: as long as this call waits, or as
         * the server asked when that is too long to retry */
        double h = wait;
        if (h < 0) {
            lua_getfield(L, -1, "retry_after");
            h = lua_type(L, -1) == LUA_TNUMBER ? (double)lua_tonumber(L, -1) : 0;
            lua_pop(L, 1);
        }
        if (now + h > *hold)
            *hold = now + h;
        if (wait > c->timeout && m->attempt <= c->max_retries) {
            /* its retry would be held beyond the timeout: none */
            lua_pushnumber(L, wait);
            lua_setfield(L, -2, "retry_after");
            wait = -1;
        }
    }
    if (wait >= 0 && m->attempt <= c->max_retries && !cfiam_interrupted()) {
        lua_pop(L, 1);
        m->state = CALL_WAITING;
        m->not_before = now + wait;
        return 0;
    }
    set_err(L, out, i + 1);
    m->state = CALL_DONE;
    return 1;
}

/* Picks the next call to start: a retry whose wait is over (in call
 * order), else the next fresh call. -1 when none; *wake is lowered to the
 * earliest pending retry. */
static int pick(const mcall *mc, int next, int n, int retries, double now,
                double *wake) {
    int i;
    if (retries > 0) {
        for (i = 0; i < next; i++) {
            if (mc[i].state != CALL_WAITING)
                continue;
            if (mc[i].not_before <= now)
                return i;
            if (mc[i].not_before < *wake)
                *wake = mc[i].not_before;
        }
    }
    return next < n ? next : -1;
}

/* One request_many batch in progress. The Lua values it uses stay on the
 * stack for the call: mc (a userdata), the anchors, `out` (the results). */
typedef struct batch {
    lua_State *L;
    cfiam_client *c;
    mcall *mc;
    int n, conc, out;
    int next;          /* the first call never started */
    int running;       /* transfers in flight */
    int retries;       /* calls waiting to be tried again */
    int done;          /* calls with their outcome in out */
    double hold;       /* monotonic: a 429's wait holds every call back */
} batch;

/* Call i leaves the queue (started or refused). */
static void dequeue(batch *b, int i) {
    if (i == b->next)
        b->next++;
    else
        b->retries--;
}

/* Fails call i unsent: its wait is beyond the client's timeout. */
static void refuse_call(batch *b, int i, double wait) {
    refuse(b->L, b->out, &b->mc[i], i + 1, wait);
    b->done++;
    dequeue(b, i);
}

/* Starts call i on a free slot of the pool. */
static void start_call(batch *b, int i) {
    cfiam_client *c = b->c;
    mcall *m = &b->mc[i];
    int s;
    for (s = 0; s < b->conc && c->pool[s]->call; s++)
        ;
    cfiam_curl_start(c, c->pool[s], &m->rq, m->url, m->body, m->body_len);
    if (curl_multi_add_handle(c->multi, c->pool[s]->easy) != CURLM_OK)
        luaL_error(b->L, "cfiam: libcurl refused a transfer");
    c->pool[s]->call = i + 1;
    c->pool[s]->epoch = c->pacer.epoch;
    cfiam_pacer_sent(&c->pacer);
    c->pacer.inflight++;
    b->running++;
    m->attempt++;
    m->state = CALL_RUNNING;
    dequeue(b, i);
}

/* After Ctrl-C: every call not sent yet (a first attempt or a retry)
 * fails as interrupted, with the attempts it made. */
static void interrupt_waiting(batch *b) {
    int i;
    for (i = 0; i < b->n; i++) {
        double w;
        if (b->mc[i].state != CALL_WAITING)
            continue;
        cfiam_transport_outcome(b->L, b->c, CFIAM_E_NETWORK, "interrupted",
                                b->mc[i].attempt, &w);
        set_err(b->L, b->out, i + 1);
        b->mc[i].state = CALL_DONE;
        b->done++;
    }
    b->next = b->n;
    b->retries = 0;
}

/* Starts what may go now, up to the concurrency, unless a hold, the quota
 * or a probe in flight says to wait; *wake is when to look again. */
static void start_ready(batch *b, double now, double *wake) {
    cfiam_client *c = b->c;
    while (b->running < b->conc) {
        double w;
        int i = pick(b->mc, b->next, b->n, b->retries, now, wake);
        if (i < 0)
            break;
        if (now < b->hold) {
            if (b->hold - now > c->timeout) {
                refuse_call(b, i, b->hold - now);
                continue;
            }
            if (b->hold < *wake)
                *wake = b->hold;
            break;
        }
        w = cfiam_pacer_wait(&c->pacer, now);
        if (w > c->timeout) {
            refuse_call(b, i, w);
            continue;
        }
        if (w > 0) {
            if (now + w < *wake)
                *wake = now + w;
            break;
        }
        if (b->running > 0 && !c->pacer.contacted)
            break; /* quota unknown: one probe, then its answer */
        start_call(b, i);
    }
}

/* Lets the transfers run and takes the outcome of those that ended;
 * when none did, waits for the network or until `wake`. */
static void collect(batch *b, double wake) {
    cfiam_client *c = b->c;
    CURLMsg *msg;
    int still, left, finished = 0;
    curl_multi_perform(c->multi, &still);
    while ((msg = curl_multi_info_read(c->multi, &left)) != NULL) {
        cfiam_xfer *x = NULL;
        CURLcode rc = msg->data.result;
        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        curl_multi_remove_handle(c->multi, msg->easy_handle);
        b->running--;
        finished++;
        if (finish(b->L, c, x, rc, b->mc, b->out, &b->hold))
            b->done++;
        else
            b->retries++;
    }
    if (finished == 0) {
        double ms = (wake - cfiam_now()) * 1000;
        curl_multi_poll(c->multi, NULL, 0,
                        ms < 0 ? 0 : ms > 1000 ? 1000 : (int)ceil(ms), NULL);
    }
}

/* client:request_many(calls [, opts]) */
static int client_request_many(lua_State *L) {
    cfiam_client *c = cfiam_check_client(L, 1);
    batch b;
    size_t count;
    int r, conc;
    if (!lua_istable(L, 2))
        luaL_error(L, "bad argument to 'request_many' (calls: table expected, "
                      "got %s)", luaL_typename(L, 2));
    conc = concurrency_opt(L, c, 3);
    lua_settop(L, 3);
    count = cfiam_rawlen(L, 2);
    if (count > 1000000)
        luaL_error(L, "bad argument to 'request_many' (at most 1000000 "
                      "calls at once)");
    memset(&b, 0, sizeof(b));
    b.L = L;
    b.c = c;
    b.n = (int)count;
    b.mc = lua_newuserdata(L, (count ? count : 1) * sizeof(mcall)); /* 4 */
    lua_createtable(L, 2 * b.n, 0);                                 /* 5 */
    if ((r = prepare_all(L, c, 2, count, b.mc, 5)) != 0)
        return r;
    lua_createtable(L, b.n, 0);                                     /* 6 */
    b.out = 6;
    if (b.n == 0)
        return 1;
    b.conc = conc > b.n ? b.n : conc;
    multi_ready(L, c, b.conc);
    while (b.done < b.n) {
        double now = cfiam_now(), wake = now + 1.0;
        if (cfiam_interrupted())
            interrupt_waiting(&b);
        else
            start_ready(&b, now, &wake);
        if (b.done == b.n)
            break;
        if (b.running == 0) { /* everything left waits: a retry, a hold */
            if (wake > now)
                cfiam_sleep(wake - now);
            continue;
        }
        collect(&b, wake);
    }
    return 1;
}

/* ---- the pieces the cosocket transport reuses --------------------------- */

/* core.prepare_many(client, calls [, opts]) -> { prepared, ... },
 * concurrency | nil, err: every call checked as request_many does, each
 * then as core.prepare gives it. */
static int client_prepare_many(lua_State *L) {
    cfiam_client *c = cfiam_check_client(L, 1);
    int conc, top, i, n;
    if (!lua_istable(L, 2))
        luaL_error(L, "bad argument to 'request_many' (calls: table expected, "
                      "got %s)", luaL_typename(L, 2));
    conc = concurrency_opt(L, c, 3);
    lua_settop(L, 3);
    n = (int)cfiam_rawlen(L, 2);
    lua_createtable(L, n, 0); /* 4 */
    top = lua_gettop(L);
    for (i = 1; i <= n; i++) {
        char where[48];
        cfiam_request rq;
        int r;
        lua_rawgeti(L, 2, i);
        if (!lua_istable(L, -1))
            luaL_error(L, "bad argument to 'request_many' (calls[%d]: table "
                          "{ method, path, ... } expected, got %s)", i,
                       luaL_typename(L, -1));
        lua_rawgeti(L, top + 1, 1);
        lua_rawgeti(L, top + 1, 2);
        lua_pushvalue(L, top + 1);
        snprintf(where, sizeof(where), "calls[%d]: ", i);
        if ((r = cfiam_prepare(L, c, &rq, top + 2, where)) != 0)
            return r;
        cfiam_push_prepared(L, c, &rq);
        lua_rawseti(L, top, i);
        lua_settop(L, top);
    }
    lua_pushinteger(L, conc);
    return 2;
}

/* core.pace(client [, attempts]) -> true when one more request may go now
 * (it is counted as sent and in flight until core.pace_done(client)),
 * false, seconds when it must wait that long first (0: until an answer to
 * the request in flight tells the quota), or nil, err (rate_limited, with
 * the call's attempts so far, default 0) when the wait is beyond the
 * timeout. */
static int client_pace(lua_State *L) {
    cfiam_client *c = cfiam_check_client(L, 1);
    double w = cfiam_pacer_wait(&c->pacer, cfiam_now());
    if (w > c->timeout)
        return cfiam_rl_refuse(L, w, (int)luaL_optinteger(L, 2, 0));
    if (w > 0 || (!c->pacer.contacted && c->pacer.inflight > 0)) {
        lua_pushboolean(L, 0);
        lua_pushnumber(L, w > 0 ? w : 0);
        return 2;
    }
    cfiam_pacer_sent(&c->pacer);
    c->pacer.inflight++;
    lua_pushboolean(L, 1);
    return 1;
}

/* core.pace_done(client): a request core.pace let go is over. */
static int client_pace_done(lua_State *L) {
    cfiam_client *c = cfiam_check_client(L, 1);
    if (c->pacer.inflight > 0)
        c->pacer.inflight--;
    return 0;
}

void cfiam_multi_init(lua_State *L, int core) {
    static const luaL_Reg client_methods[] = {
        {"request_many", client_request_many}, {NULL, NULL}};
    static const luaL_Reg hooks[] = {
        {"prepare_many", client_prepare_many},
        {"pace", client_pace},
        {"pace_done", client_pace_done},
        {"rate_limited", cfiam_rl_refuse_hook},
        {NULL, NULL}};
    cfiam_add_functions(L, core, client_methods, hooks);
}
