/*
 * client.c: cfiam.new(opts), the client userdata and its lifetime.
 *
 * A client owns its libcurl handles (one easy handle, request_many's multi
 * handle and pool, and the share that keeps connections alive across
 * calls), its header list, its buffers and its rate-limit state. Its configuration strings live
 * in the userdata's user value table; the C struct keeps pointers into
 * them. Option names and Lua types are checked here and raise; the values
 * of credentials, base URL and headers are checked here too but reported
 * as an `invalid_argument` error by every call (they often come from the
 * environment, and a script should get `nil, err`, not a crash).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "cfiam.h"

#define DEFAULT_MAX_RESPONSE (64 * 1024 * 1024)

enum opt_type { O_STRING, O_NUMBER, O_TABLE };
static const struct {
    const char *name;
    enum opt_type type;
} options[] = {
    {"api_token", O_STRING}, {"api_email", O_STRING}, {"api_key", O_STRING},
    {"base_url", O_STRING}, {"timeout", O_NUMBER},
    {"connect_timeout", O_NUMBER}, {"max_retries", O_NUMBER},
    {"ca_file", O_STRING}, {"ca_path", O_STRING}, {"proxy", O_STRING},
    {"user_agent", O_STRING}, {"headers", O_TABLE},
    {"max_response_bytes", O_NUMBER}, {"transport", O_STRING},
    {"shared_dict", O_STRING}, {"pool_size", O_NUMBER},
    {"keepalive_timeout", O_NUMBER}, {NULL, O_STRING}};

static const char *const type_names[] = {"string", "number", "table"};

/* A credential to scrub from every error. Real tokens and keys are 37 to
 * 40 characters; one under 8 is a test value, and scrubbing it would
 * garble ordinary words ("t" in "timeout"). */
#define CFIAM_MIN_SECRET 8

/* Every credential a client could read, used or not: api_token and
 * api_key of `opts` (string or absent: checked before) and the
 * environment's token and key. A key passed by mistake while the token
 * authenticates is then scrubbed too. Fills the NULL-ended `secrets` with
 * strings anchored in the table pushed on the stack. */
static void push_secrets(lua_State *L, int opts, const char **secrets) {
    static const char *const names[] = {"api_token", "api_key",
                                        "CLOUDFLARE_API_TOKEN",
                                        "CLOUDFLARE_API_KEY"};
    int i, n = 0;
    lua_createtable(L, CFIAM_MAX_SECRETS, 0);
    for (i = 0; i < CFIAM_MAX_SECRETS; i++) {
        const char *e = i < 2 ? NULL : getenv(names[i]);
        size_t len;
        if (i < 2)
            lua_getfield(L, opts, names[i]);
        else if (e)
            lua_pushstring(L, e);
        else
            lua_pushnil(L);
        if (lua_type(L, -1) == LUA_TSTRING &&
            (lua_tolstring(L, -1, &len), len >= CFIAM_MIN_SECRET)) {
            secrets[n++] = lua_tostring(L, -1);
            lua_rawseti(L, -2, n);
        } else {
            lua_pop(L, 1);
        }
    }
    secrets[n] = NULL;
}

/* Raises on unknown option names and wrong types. */
static void check_options(lua_State *L, int opts) {
    lua_pushnil(L);
    while (lua_next(L, opts)) {
        const char *name;
        int i;
        if (lua_type(L, -2) != LUA_TSTRING)
            luaL_error(L, "cfiam.new: option names must be strings");
        name = lua_tostring(L, -2);
        for (i = 0; options[i].name; i++)
            if (strcmp(options[i].name, name) == 0)
                break;
        if (options[i].name == NULL) {
            /* the name may be a misplaced credential (or part of one) */
            const char *secrets[CFIAM_MAX_SECRETS + 1];
            char q[64];
            push_secrets(L, opts, secrets); /* anchored until the raise */
            cfiam_quote_arg(q, sizeof(q), name, strlen(name), secrets);
            if (strcmp(q, "[redacted]") == 0)
                luaL_error(L, "cfiam.new: unknown option [redacted]");
            luaL_error(L, "cfiam.new: unknown option '%s'", name);
        }
        if ((options[i].type == O_STRING && lua_type(L, -1) != LUA_TSTRING) ||
            (options[i].type == O_NUMBER && lua_type(L, -1) != LUA_TNUMBER) ||
            (options[i].type == O_TABLE && lua_type(L, -1) != LUA_TTABLE))
            luaL_error(L, "cfiam.new: option '%s' must be a %s, got %s", name,
                       type_names[options[i].type], luaL_typename(L, -1));
        lua_pop(L, 1);
    }
}

/* Copies opts[name] (or the environment variable, when given and set to a
 * non-empty value) into the config table at `cfg`; returns it or NULL. */
static const char *take(lua_State *L, int opts, int cfg, const char *name,
                        const char *env, size_t *len) {
    const char *v;
    lua_getfield(L, opts, name);
    if (lua_isnil(L, -1) && env) {
        const char *e = getenv(env);
        lua_pop(L, 1);
        if (e == NULL || *e == '\0')
            return NULL;
        lua_pushstring(L, e);
    } else if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return NULL;
    }
    v = lua_tolstring(L, -1, len);
    lua_setfield(L, cfg, name);
    return v;
}

static double number_opt(lua_State *L, int opts, const char *name, double def,
                         double min, double max) {
    double v;
    lua_getfield(L, opts, name);
    v = lua_isnil(L, -1) ? def : lua_tonumber(L, -1);
    lua_pop(L, 1);
    if (!(v >= min && v <= max))
        luaL_error(L, "cfiam.new: option '%s' is out of range", name);
    return v;
}

/* An optional number for the cosocket transport, kept in the config table
 * only when given (nil: nginx's own directive applies). */
static void optional_number(lua_State *L, int opts, int cfg, const char *name,
                            double min, double max) {
    lua_getfield(L, opts, name);
    if (!lua_isnil(L, -1)) {
        double v = lua_tonumber(L, -1);
        if (!(v >= min && v <= max))
            luaL_error(L, "cfiam.new: option '%s' is out of range", name);
        lua_setfield(L, cfg, name);
    } else {
        lua_pop(L, 1);
    }
}

/* Records the first configuration error; every call will report it. */
static void config_fail(lua_State *L, cfiam_client *c, int cfg,
                        const char *fmt, const char *what, const char *why) {
    if (c->config_error)
        return;
    lua_pushfstring(L, fmt, what, why);
    c->config_error = lua_tostring(L, -1);
    lua_setfield(L, cfg, "config_error");
}

static void add_header(lua_State *L, cfiam_client *c, const char *line) {
    struct curl_slist *l = curl_slist_append(c->headers, line);
    if (l == NULL)
        luaL_error(L, "cfiam.new: out of memory");
    c->headers = l;
}

/* Credentials: api_token wins, then api_email + api_key; the environment
 * only when opts gives none of the three. */
static void resolve_auth(lua_State *L, cfiam_client *c, int opts, int cfg) {
    size_t tl = 0, el = 0, kl = 0;
    const char *t, *e, *k, *why;
    int from_opts;
    lua_getfield(L, opts, "api_token");
    lua_getfield(L, opts, "api_email");
    lua_getfield(L, opts, "api_key");
    from_opts = !lua_isnil(L, -1) || !lua_isnil(L, -2) || !lua_isnil(L, -3);
    lua_pop(L, 3);
    t = take(L, opts, cfg, "api_token",
             from_opts ? NULL : "CLOUDFLARE_API_TOKEN", &tl);
    if (t) {
        c->auth = CFIAM_AUTH_TOKEN;
        if ((why = cfiam_check_credential(t, tl)) != NULL)
            config_fail(L, c, cfg, "%s %s", "api_token", why);
        return;
    }
    e = take(L, opts, cfg, "api_email", from_opts ? NULL : "CLOUDFLARE_EMAIL",
             &el);
    k = take(L, opts, cfg, "api_key", from_opts ? NULL : "CLOUDFLARE_API_KEY",
             &kl);
    if (e && k) {
        c->auth = CFIAM_AUTH_KEY;
        if ((why = cfiam_check_credential(e, el)) != NULL)
            config_fail(L, c, cfg, "%s %s", "api_email", why);
        if ((why = cfiam_check_credential(k, kl)) != NULL)
            config_fail(L, c, cfg, "%s %s", "api_key", why);
    } else if (e || k) {
        config_fail(L, c, cfg, "%s without %s", e ? "api_email" : "api_key",
                    e ? "api_key" : "api_email");
    } else {
        config_fail(L, c, cfg, "%s%s",
                    "no credentials: set api_token (or api_email and api_key),"
                    " or CLOUDFLARE_API_TOKEN (or CLOUDFLARE_EMAIL and ",
                    "CLOUDFLARE_API_KEY)");
    }
}

static void resolve_base_url(lua_State *L, cfiam_client *c, int opts, int cfg) {
    size_t len = 0;
    const char *u = take(L, opts, cfg, "base_url", "CLOUDFLARE_BASE_URL", &len);
    const char *why;
    if (u == NULL) {
        lua_pushliteral(L, CFIAM_DEFAULT_BASE_URL);
        lua_setfield(L, cfg, "base_url");
        lua_getfield(L, cfg, "base_url");
        u = lua_tolstring(L, -1, &len);
        lua_pop(L, 1);
    }
    while (len > 0 && u[len - 1] == '/')
        len--;
    if ((why = cfiam_check_base_url(u, len, &c->url)) != NULL) {
        config_fail(L, c, cfg, "%s %s", "base_url", why);
        return;
    }
    lua_pushlstring(L, u, len); /* anchored copy without the trailing '/' */
    c->base_url = lua_tolstring(L, -1, &c->base_len);
    lua_setfield(L, cfg, "base_url");
}

/* The header list: Content-Type first, so that requests without a body
 * can start at its second element. */
static void build_headers(lua_State *L, cfiam_client *c, int opts, int cfg) {
    size_t len;
    const char *ua, *why;
    add_header(L, c, "Content-Type: application/json");
    add_header(L, c, "Accept: application/json");
    lua_getfield(L, cfg, "api_token");
    lua_getfield(L, cfg, "api_email");
    lua_getfield(L, cfg, "api_key");
    if (c->auth == CFIAM_AUTH_TOKEN) {
        add_header(L, c, lua_pushfstring(L, "Authorization: Bearer %s",
                                         lua_tostring(L, -3)));
        lua_pop(L, 1);
    } else if (c->auth == CFIAM_AUTH_KEY) {
        add_header(L, c, lua_pushfstring(L, "X-Auth-Email: %s",
                                         lua_tostring(L, -2)));
        add_header(L, c, lua_pushfstring(L, "X-Auth-Key: %s",
                                         lua_tostring(L, -2)));
        lua_pop(L, 2);
    }
    lua_pop(L, 3);
    lua_getfield(L, opts, "user_agent");
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_pushfstring(L, "cfiam/%s (%s; libcurl/%s)", CFIAM_VERSION,
                        LUA_VERSION, curl_version_info(CURLVERSION_NOW)->version);
    }
    ua = lua_tolstring(L, -1, &len);
    if ((why = cfiam_check_header_value(ua, len)) != NULL)
        config_fail(L, c, cfg, "%s %s", "user_agent", why);
    add_header(L, c, lua_pushfstring(L, "User-Agent: %s", ua));
    lua_pop(L, 2);
    lua_getfield(L, opts, "headers");
    if (lua_istable(L, -1)) {
        int t = lua_gettop(L);
        lua_pushnil(L);
        while (lua_next(L, t)) {
            const char *name, *value;
            size_t nl, vl;
            char q[64];
            if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
                luaL_error(L, "cfiam.new: option 'headers' must map strings "
                              "to strings");
            name = lua_tolstring(L, -2, &nl);
            value = lua_tolstring(L, -1, &vl);
            cfiam_quote(q, sizeof(q), name, nl);
            if (!cfiam_is_header_name(name, nl))
                config_fail(L, c, cfg, "headers: %s %s", q,
                            "is not a valid header name");
            else if (cfiam_is_reserved_header(name, nl))
                config_fail(L, c, cfg, "headers: %s %s", q,
                            "cannot be set through headers (auth and content "
                            "headers are cfiam's)");
            else if ((why = cfiam_check_header_value(value, vl)) != NULL)
                config_fail(L, c, cfg, "headers: the value of %s %s", q, why);
            else {
                add_header(L, c, lua_pushfstring(L, "%s: %s", name, value));
                lua_pop(L, 1);
            }
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
    /* No "Expect: 100-continue" round trip before large bodies. */
    add_header(L, c, "Expect:");
}

static int client_close(lua_State *L) {
    cfiam_client *c = luaL_checkudata(L, 1, CFIAM_CLIENT_MT);
    if (!c->closed) {
        cfiam_curl_close(c);
        curl_slist_free_all(c->headers);
        c->headers = NULL;
        cfiam_buf_free(&c->body);
        cfiam_buf_free(&c->scratch);
        c->closed = 1;
    }
    return 0;
}

/* The base URL may hold a credential put there by mistake: scrubbed. */
static int client_tostring(lua_State *L) {
    cfiam_client *c = luaL_checkudata(L, 1, CFIAM_CLIENT_MT);
    if (c->closed) {
        lua_pushfstring(L, "cfiam.client (closed): %p", (void *)c);
        return 1;
    }
    lua_pushfstring(L, "cfiam.client (%s, %s): %p",
                    c->base_url ? c->base_url : "invalid base_url",
                    c->auth == CFIAM_AUTH_TOKEN ? "token auth"
                    : c->auth == CFIAM_AUTH_KEY ? "key auth"
                                                : "no credentials",
                    (void *)c);
    cfiam_scrub_top(L, c->secrets);
    return 1;
}

/* core.config(client) -> the non-secret settings, for the Lua transports. */
static int client_config(lua_State *L) {
    cfiam_client *c = cfiam_check_client(L, 1);
    static const char *const copied[] = {
        "transport", "shared_dict", "ca_file", "ca_path", "proxy", "pool_size",
        "keepalive_timeout", NULL};
    int i;
    lua_createtable(L, 0, 16);
    cfiam_getuservalue(L, 1);
    for (i = 0; copied[i]; i++) {
        lua_getfield(L, -1, copied[i]);
        lua_setfield(L, -3, copied[i]);
    }
    lua_pop(L, 1);
    if (c->base_url) {
        lua_pushlstring(L, c->base_url, c->base_len);
        lua_setfield(L, -2, "base_url");
        lua_pushstring(L, c->url.https ? "https" : "http");
        lua_setfield(L, -2, "scheme");
        lua_pushstring(L, c->url.host);
        lua_setfield(L, -2, "host");
        lua_pushinteger(L, c->url.port);
        lua_setfield(L, -2, "port");
        lua_pushlstring(L, c->base_url + c->url.prefix_off,
                        c->base_len - c->url.prefix_off);
        lua_setfield(L, -2, "prefix"); /* "/client/v4": goes before targets */
    }
    lua_pushnumber(L, c->timeout);
    lua_setfield(L, -2, "timeout");
    lua_pushnumber(L, c->connect_timeout);
    lua_setfield(L, -2, "connect_timeout");
    lua_pushinteger(L, c->max_retries);
    lua_setfield(L, -2, "max_retries");
    lua_pushnumber(L, (lua_Number)c->max_response_bytes);
    lua_setfield(L, -2, "max_response_bytes");
    return 1;
}

/* client:ratelimit() -> the latest reading, its reset counted down to now */
static int client_ratelimit(lua_State *L) {
    cfiam_client *c = cfiam_check_client(L, 1);
    cfiam_rl_reading r = c->pacer.last;
    if (r.have) {
        r.reset -= cfiam_now() - c->pacer.last_at;
        r.reset = r.reset < 0 ? 0 : ceil(r.reset);
    }
    cfiam_rl_push(L, &r);
    return 1;
}

cfiam_client *cfiam_check_client(lua_State *L, int idx) {
    cfiam_client *c = luaL_checkudata(L, idx, CFIAM_CLIENT_MT);
    if (c->closed)
        luaL_error(L, "cfiam: attempt to use a closed client");
    return c;
}

/* Without ca_file and ca_path, the CA bundle curl users name in the
 * environment: CURL_CA_BUNDLE, else SSL_CERT_FILE (a private CA). */
static void ca_from_env(lua_State *L, int cfg) {
    const char *e;
    int given;
    lua_getfield(L, cfg, "ca_file");
    lua_getfield(L, cfg, "ca_path");
    given = !lua_isnil(L, -1) || !lua_isnil(L, -2);
    lua_pop(L, 2);
    if (given)
        return;
    e = getenv("CURL_CA_BUNDLE");
    if (e == NULL || *e == '\0')
        e = getenv("SSL_CERT_FILE");
    if (e == NULL || *e == '\0')
        return;
    lua_pushstring(L, e);
    lua_setfield(L, cfg, "ca_file");
}

/* cfiam.new([opts]) -> client. */
int cfiam_client_new(lua_State *L) {
    cfiam_client *c;
    int opts, cfg;
    const char *tr;
    if (lua_isnoneornil(L, 1)) {
        lua_settop(L, 0);
        lua_newtable(L);
    }
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    opts = 1;
    check_options(L, opts);
    lua_getfield(L, opts, "transport");
    tr = lua_tostring(L, -1);
    if (tr && strcmp(tr, "auto") && strcmp(tr, "curl") && strcmp(tr, "cosocket"))
        luaL_error(L, "cfiam.new: option 'transport' must be \"auto\", "
                      "\"curl\" or \"cosocket\"");
    lua_pop(L, 1);

    /* The userdata owns everything from here on: zeroed, with its
     * metatable set before anything is allocated. */
    c = lua_newuserdata(L, sizeof(*c));
    memset(c, 0, sizeof(*c));
    luaL_getmetatable(L, CFIAM_CLIENT_MT);
    lua_setmetatable(L, -2);
    lua_newtable(L);
    cfg = lua_gettop(L);
    lua_pushvalue(L, cfg);
    cfiam_setuservalue(L, cfg - 1);

    c->timeout = number_opt(L, opts, "timeout", 60, 0.001, 1e6);
    c->connect_timeout = number_opt(L, opts, "connect_timeout", 10, 0.001, 1e6);
    c->max_retries = (int)number_opt(L, opts, "max_retries", 2, 0, 100);
    c->max_response_bytes = (size_t)number_opt(
        L, opts, "max_response_bytes", DEFAULT_MAX_RESPONSE, 1, 1e15);
    take(L, opts, cfg, "transport", NULL, NULL);
    take(L, opts, cfg, "shared_dict", NULL, NULL);
    optional_number(L, opts, cfg, "pool_size", 1, 1e6);
    optional_number(L, opts, cfg, "keepalive_timeout", 0, 1e6);
    {
        static const char *const paths[] = {"ca_file", "ca_path", "proxy", NULL};
        int i;
        for (i = 0; paths[i]; i++) {
            size_t len;
            const char *v = take(L, opts, cfg, paths[i], NULL, &len);
            if (v && strlen(v) != len)
                config_fail(L, c, cfg, "%s %s", paths[i], "contains a NUL byte");
        }
    }
    ca_from_env(L, cfg);
    resolve_auth(L, c, opts, cfg);
    push_secrets(L, opts, c->secrets);
    lua_setfield(L, cfg, "secrets"); /* anchors them for the client's life */
    resolve_base_url(L, c, opts, cfg);
    lua_getfield(L, cfg, "proxy");
    if (c->base_url && !c->url.https && cfiam_rawlen(L, -1) > 0)
        /* it would see the credentials in clear: see transport_curl.c */
        config_fail(L, c, cfg, "%s %s", "proxy",
                    "is used only with an https:// base_url (a plain http "
                    "base_url never goes through a proxy)");
    lua_pop(L, 1);
    build_headers(L, c, opts, cfg);
    lua_pop(L, 1); /* cfg */
    return 1;
}

/* cfiam.default_client() -> the client made from the environment on
 * first use, shared by the module-level functions. */
int cfiam_default_client(lua_State *L) {
    lua_getfield(L, LUA_REGISTRYINDEX, "cfiam.default");
    if (lua_isnil(L, -1) ||
        ((cfiam_client *)lua_touserdata(L, -1))->closed) {
        lua_pop(L, 1);
        lua_pushcfunction(L, cfiam_client_new);
        lua_call(L, 0, 1);
        lua_pushvalue(L, -1);
        lua_setfield(L, LUA_REGISTRYINDEX, "cfiam.default");
    }
    return 1;
}

/* cfiam.configure([opts]) -> client: replaces the default client with
 * cfiam.new(opts) (the environment alone when opts is nil). The previous
 * one is left to the collector: a caller may still hold it. */
int cfiam_configure(lua_State *L) {
    lua_settop(L, 1);
    lua_pushcfunction(L, cfiam_client_new);
    lua_pushvalue(L, 1);
    lua_call(L, 1, 1);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, "cfiam.default");
    return 1;
}

void cfiam_client_init(lua_State *L) {
    static const luaL_Reg meta[] = {
        {"__gc", client_close}, {"__tostring", client_tostring},
#if LUA_VERSION_NUM >= 504
        {"__close", client_close},
#endif
        {NULL, NULL}};
    static const luaL_Reg methods[] = {
        {"close", client_close}, {"ratelimit", client_ratelimit}, {NULL, NULL}};
    luaL_newmetatable(L, CFIAM_CLIENT_MT);
    cfiam_setfuncs(L, meta);
    lua_pushliteral(L, CFIAM_CLIENT_MT);
    lua_setfield(L, -2, "__name");
    /* A fresh method table on every load: a second require (busted's
     * insulation, package.loaded reset) re-attaches the Lua helpers. */
    lua_newtable(L);
    cfiam_setfuncs(L, methods);
    lua_pushvalue(L, -1);
    lua_setfield(L, -4, "client_methods"); /* core.client_methods */
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
    lua_pushcfunction(L, client_config);
    lua_setfield(L, -2, "config");
}

void cfiam_add_functions(lua_State *L, int core, const luaL_Reg *methods,
                         const luaL_Reg *hooks) {
    if (methods) {
        luaL_getmetatable(L, CFIAM_CLIENT_MT);
        lua_getfield(L, -1, "__index");
        cfiam_setfuncs(L, methods);
        lua_pop(L, 2);
    }
    if (hooks) {
        lua_pushvalue(L, core);
        cfiam_setfuncs(L, hooks);
        lua_pop(L, 1);
    }
}
