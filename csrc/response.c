/*
 * response.c: what a response means. The HTTP status decides the error
 * kind; the body is read for Cloudflare's envelope (success, errors,
 * messages, result, result_info) when it is JSON, and its first line is
 * quoted when it is not. Shared by both transports: libcurl calls it from
 * C, the cosocket transport through core.outcome().
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "cfiam.h"

/* A bounded message builder (no Lua stack use while it runs). */
typedef struct {
    char s[1024];
    size_t n;
    int full; /* cut and marked with "...": later text is dropped */
} msgbuf;

/* Invariant: n <= sizeof(s) - 4 until full, then n == sizeof(s) - 1. */
static void msg_add(msgbuf *m, const char *s, size_t len) {
    size_t i;
    if (m->full)
        return;
    for (i = 0; i < len && m->n + 4 < sizeof(m->s); i++) {
        unsigned char c = (unsigned char)s[i];
        m->s[m->n++] = (c < 0x20 || c == 0x7f) ? ' ' : (char)c; /* one line */
    }
    if (i < len) {
        memcpy(m->s + m->n, "...", 3);
        m->n += 3;
        m->full = 1;
    }
    m->s[m->n] = '\0';
}

static void msg_str(msgbuf *m, const char *s) { msg_add(m, s, strlen(s)); }

/* Appends "[code] message; ..." from an errors array at `idx`. */
static void msg_errors(lua_State *L, msgbuf *m, int idx) {
    size_t i, n = cfiam_rawlen(L, idx);
    for (i = 1; i <= n; i++) {
        lua_rawgeti(L, idx, (int)i);
        if (lua_istable(L, -1)) {
            char code[32] = "";
            lua_getfield(L, -1, "code");
            if (lua_type(L, -1) == LUA_TNUMBER)
                snprintf(code, sizeof(code), "[%.0f] ", (double)lua_tonumber(L, -1));
            lua_getfield(L, -2, "message");
            msg_str(m, i > 1 ? "; " : " ");
            msg_str(m, code);
            if (lua_type(L, -1) == LUA_TSTRING)
                msg_str(m, lua_tostring(L, -1));
            lua_pop(L, 2);
        }
        lua_pop(L, 1);
    }
}

/* Refusals whose reason only Cloudflare's text tells: a case-insensitive
 * phrase of an errors[].message, err.reason, and words for err.message.
 * "do not have DSR enabled" is the API's own phrase; for SCIM-provisioned
 * groups the exact text is not known, so any message naming SCIM counts
 * (the README says where each comes from). */
static const struct {
    const char *phrase, *reason, *words;
} reasons[] = {
    {"dsr enabled", "member_not_eligible",
     " (Cloudflare does not let these members join user groups: they do not"
     " have DSR enabled, a per-user setting the API neither shows nor changes)"},
    {"scim", "scim_managed",
     " (the group is provisioned by SCIM: its name and members are managed at"
     " the identity provider and cannot be changed through the API)"},
};
#define N_REASONS (sizeof(reasons) / sizeof(reasons[0]))

static int contains_ci(const char *s, size_t n, const char *phrase) {
    size_t i, j, k = strlen(phrase);
    for (i = 0; i + k <= n; i++) {
        for (j = 0; j < k; j++) {
            unsigned char c = (unsigned char)s[i + j];
            if (c >= 'A' && c <= 'Z')
                c = (unsigned char)(c - 'A' + 'a');
            if (c != (unsigned char)phrase[j])
                break;
        }
        if (j == k)
            return 1;
    }
    return 0;
}

/* The index in reasons[] that an errors array at `idx` shows, or -1. */
static int refusal_reason(lua_State *L, int idx) {
    size_t i, n = cfiam_rawlen(L, idx), r;
    for (i = 1; i <= n; i++) {
        int found = -1;
        lua_rawgeti(L, idx, (int)i);
        if (lua_istable(L, -1)) {
            lua_getfield(L, -1, "message");
            if (lua_type(L, -1) == LUA_TSTRING) {
                size_t len;
                const char *s = lua_tolstring(L, -1, &len);
                for (r = 0; r < N_REASONS && found < 0; r++)
                    if (contains_ci(s, len, reasons[r].phrase))
                        found = (int)r;
            }
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
        if (found >= 0)
            return found;
    }
    return -1;
}

static cfiam_kind status_kind(long status) {
    if (status == 401) return CFIAM_E_AUTH;
    if (status == 403) return CFIAM_E_PERMISSION;
    if (status == 404) return CFIAM_E_NOT_FOUND;
    if (status == 429) return CFIAM_E_RATE_LIMITED;
    if (status >= 500 && status <= 599) return CFIAM_E_SERVER;
    if (status >= 400 && status <= 499) return CFIAM_E_API;
    return CFIAM_E_INVALID_RESPONSE;
}

/* Sets err.status, err.ray_id, err.attempts (err at the top). */
static void set_common(lua_State *L, long status, const cfiam_resp_headers *h,
                       int attempt) {
    if (status > 0) {
        lua_pushinteger(L, (lua_Integer)status);
        lua_setfield(L, -2, "status");
    }
    if (h && h->ray_id[0]) {
        lua_pushstring(L, h->ray_id);
        lua_setfield(L, -2, "ray_id");
    }
    lua_pushinteger(L, attempt);
    lua_setfield(L, -2, "attempts");
}

/* Copies env[field] (an array) into err[field], or an empty array. */
static void copy_list(lua_State *L, int env, const char *field) {
    if (env) {
        lua_getfield(L, env, field);
        if (!lua_istable(L, -1)) {
            lua_pop(L, 1);
            lua_newtable(L);
        }
    } else {
        lua_newtable(L);
    }
    lua_setfield(L, -2, field);
}

/* Pushes the error for an error status or a success:false envelope.
 * `env` is the decoded envelope's index, or 0 when the body was not one. */
static void push_status_error(lua_State *L, const cfiam_client *c,
                              cfiam_kind kind, long status,
                              const cfiam_resp_headers *h, int env,
                              const char *body, size_t len, int attempt) {
    msgbuf m;
    char head[96];
    int why = -1;
    m.n = 0;
    m.full = 0;
    m.s[0] = '\0';
    if (status >= 300 && status < 400) {
        snprintf(head, sizeof(head), "HTTP %ld redirect", status);
        msg_str(&m, head);
        if (h && h->location[0]) {
            msg_str(&m, " to ");
            msg_str(&m, h->location);
        }
        msg_str(&m, " not followed (cfiam never follows redirects)");
    } else {
        snprintf(head, sizeof(head), "HTTP %ld%s", status,
                 status >= 200 && status < 300 ? ", success false:" : ":");
        msg_str(&m, head);
        if (env) {
            lua_getfield(L, env, "errors");
            if (lua_istable(L, -1) && cfiam_rawlen(L, -1) > 0) {
                msg_errors(L, &m, lua_gettop(L));
                why = refusal_reason(L, lua_gettop(L));
                if (why >= 0)
                    msg_str(&m, reasons[why].words);
            } else
                msg_str(&m, " no error details");
            lua_pop(L, 1);
        } else {
            const char *nl = memchr(body, '\n', len), *line;
            size_t first = nl ? (size_t)(nl - body) : len;
            /* scrub, then cut: no secret may straddle the cut */
            lua_pushlstring(L, body, first > 4096 ? 4096 : first);
            cfiam_scrub_top(L, c->secrets);
            line = lua_tolstring(L, -1, &first);
            if (first > 200)
                first = 200;
            while (first > 0 && (line[first - 1] == '\r' || line[first - 1] == ' '))
                first--;
            if (first == 0) {
                msg_str(&m, " empty body");
            } else {
                msg_str(&m, " ");
                msg_add(&m, line, first);
            }
            lua_pop(L, 1);
        }
    }
    cfiam_push_error(L, kind, m.s);
    copy_list(L, env, "errors");
    copy_list(L, env, "messages");
    set_common(L, status, h, attempt);
    if (why >= 0) {
        lua_pushstring(L, reasons[why].reason);
        lua_setfield(L, -2, "reason");
    }
}

/* Checks a members result at the top (nil becomes {}). NULL when fine. */
static const char *check_members(lua_State *L) {
    size_t i, n;
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_newtable(L);
        return NULL;
    }
    if (!lua_istable(L, -1))
        return "result is not an array of members";
    n = cfiam_rawlen(L, -1);
    if (n == 0) { /* {} from a JSON object has only string keys */
        lua_pushnil(L);
        if (lua_next(L, -2)) {
            lua_pop(L, 2);
            return "result is not an array of members";
        }
    }
    for (i = 1; i <= n; i++) {
        int ok;
        lua_rawgeti(L, -1, (int)i);
        ok = lua_istable(L, -1);
        if (ok) {
            lua_getfield(L, -1, "id");
            ok = lua_type(L, -1) == LUA_TSTRING;
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
        if (!ok)
            return "result has a member without a string id";
    }
    return NULL;
}

static int fail_invalid(lua_State *L, cfiam_client *c, long status,
                        const cfiam_resp_headers *h, int attempt,
                        const char *what, const char *why) {
    char msg[300];
    snprintf(msg, sizeof(msg), "HTTP %ld: %s%s%s", status, what,
             why ? ": " : "", why ? why : "");
    cfiam_push_error(L, CFIAM_E_INVALID_RESPONSE, msg);
    set_common(L, status, h, attempt);
    cfiam_error_scrub(L, -1, c->secrets);
    return -1;
}

/* Pushes the meta table of a success: status, result_info, messages,
 * ray_id, attempts, ratelimit (when the answer carried a usable one). The
 * envelope is at `env`. */
static void push_meta(lua_State *L, int env, long status,
                      const cfiam_resp_headers *h, int attempt) {
    cfiam_rl_reading rl;
    lua_createtable(L, 0, 6);
    cfiam_rl_parse(h, &rl);
    if (rl.have) {
        cfiam_rl_push(L, &rl);
        lua_setfield(L, -2, "ratelimit");
    }
    lua_getfield(L, env, "result_info");
    lua_setfield(L, -2, "result_info");
    lua_getfield(L, env, "messages");
    lua_setfield(L, -2, "messages");
    set_common(L, status, h, attempt);
}

/* A 2xx: the envelope's result (and meta), or an error when the body is
 * not the envelope or says success = false. Returns as
 * cfiam_response_outcome; never asks for a retry. */
static int success_outcome(lua_State *L, cfiam_client *c,
                           const cfiam_request *rq, long status,
                           const cfiam_resp_headers *h, const char *body,
                           size_t len, int attempt) {
    char why[96];
    int top = lua_gettop(L), env = top + 1;
    const char *bad;
    if (!cfiam_json_decode(L, body, len, &c->scratch, why, sizeof(why)))
        return fail_invalid(L, c, status, h, attempt, "the body is not JSON",
                            why);
    if (lua_istable(L, env))
        lua_getfield(L, env, "success");
    else
        lua_pushnil(L);
    if (!lua_isboolean(L, -1)) {
        lua_settop(L, top);
        return fail_invalid(L, c, status, h, attempt,
                            "the body is not the API envelope", NULL);
    }
    if (!lua_toboolean(L, -1)) {
        lua_pop(L, 1);
        cfiam_scrub_table(L, env, c->secrets);
        push_status_error(L, c, CFIAM_E_API, status, h, env, body, len,
                          attempt);
        lua_remove(L, env);
        cfiam_error_scrub(L, -1, c->secrets);
        return -1;
    }
    lua_pop(L, 1);
    lua_getfield(L, env, "result");
    if (rq->decode == CFIAM_DECODE_MEMBERS && (bad = check_members(L))) {
        lua_settop(L, top);
        return fail_invalid(L, c, status, h, attempt, bad, NULL);
    }
    if (lua_isnil(L, -1)) { /* success without result: {} (never nil, */
        lua_pop(L, 1);      /* which callers would take for failure) */
        lua_newtable(L);
    }
    if (!rq->want_meta) {
        lua_remove(L, env);
        return 1;
    }
    push_meta(L, env, status, h, attempt);
    lua_remove(L, env);
    return 2;
}

/* Any other status: the error of its kind (the body's envelope, when it
 * is JSON, adds the API's errors), and the wait before a retry. */
static int error_outcome(lua_State *L, cfiam_client *c, long status,
                         const cfiam_resp_headers *h, const char *body,
                         size_t len, int attempt, double *wait) {
    int top = lua_gettop(L), env = 0;
    if (len > 0 && cfiam_json_decode(L, body, len, &c->scratch, NULL, 0)) {
        if (lua_istable(L, -1))
            env = top + 1;
        else
            lua_settop(L, top);
    }
    if (env) /* before the message is cut from it: no partial secret */
        cfiam_scrub_table(L, env, c->secrets);
    push_status_error(L, c, status_kind(status), status, h, env, body, len,
                      attempt);
    if (env)
        lua_remove(L, env);
    if (status >= 400 && cfiam_status_retryable(status, h)) {
        double sw = cfiam_server_wait(h, (double)time(NULL));
        if (sw > 0) {
            lua_pushnumber(L, sw);
            lua_setfield(L, -2, "retry_after");
        }
        if (sw > CFIAM_RETRY_AFTER_CAP)
            *wait = -1; /* not worth a hang: the caller decides */
        else
            *wait = sw > 0 ? sw : cfiam_backoff(attempt - 1);
    }
    cfiam_error_scrub(L, -1, c->secrets);
    return -1;
}

int cfiam_response_outcome(lua_State *L, cfiam_client *c,
                           const cfiam_request *rq, long status,
                           const cfiam_resp_headers *h, const char *body,
                           size_t len, int attempt, double *wait) {
    *wait = -1;
    cfiam_pacer_note(&c->pacer, h, cfiam_now()); /* every answer counts */
    if (status >= 200 && status < 300)
        return success_outcome(L, c, rq, status, h, body, len, attempt);
    return error_outcome(L, c, status, h, body, len, attempt, wait);
}

void cfiam_transport_outcome(lua_State *L, cfiam_client *c, cfiam_kind kind,
                             const char *message, int attempt, double *wait) {
    cfiam_push_error(L, kind, message);
    set_common(L, 0, NULL, attempt);
    cfiam_error_scrub(L, -1, c->secrets);
    *wait = (kind == CFIAM_E_NETWORK || kind == CFIAM_E_TIMEOUT)
                ? cfiam_backoff(attempt - 1)
                : -1;
}
