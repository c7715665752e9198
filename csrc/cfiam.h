/*
 * cfiam.h: what the C files of the cfiam module share.
 *
 * The pieces, one file each:
 *   cfiam.c          luaopen_cfiam: the module table, then the Lua helpers
 *   client.c         cfiam.new, options, close/__gc/__tostring, default client
 *   validate.c       ids, base URLs, credentials and header values
 *   prepare.c        one call checked and built: method, API paths, options
 *   body.c           the members body of an ids list, the query string
 *   request.c        client:request and update_members: the single-call
 *                    pacing and retry loop over libcurl
 *   hooks.c          core.prepare/update_request/path/outcome/failure for
 *                    the cosocket transport and the Lua helpers
 *   multi.c          client:request_many, many calls over libcurl's multi
 *                    interface (HTTP/2 multiplexing over TLS)
 *   transport_curl.c one attempt over libcurl: easy handles, shared cache
 *   ratelimit.c      the Ratelimit headers and the pacing they drive
 *   response.c       a response (status, headers, body) into a result or an error
 *   retry.c          Retry-After parsing, backoff, the retry decision
 *   headers.c        the response headers cfiam reads, from raw lines
 *   json.c           JSON text straight into Lua tables
 *   error.c          the error table, its metatable and secret scrubbing
 *   idset.c          a set of ids for paged listings (repeats across pages)
 *   idhash.c         ids as 16-byte keys and their keyed hash (body.c, idset.c)
 *   buf.c            a growable byte buffer
 *
 * Memory rule: everything malloc'd belongs to a client
 * userdata (freed by close/__gc) or is freed before any Lua call that can
 * raise. libcurl callbacks never call the Lua API.
 */
#ifndef CFIAM_H
#define CFIAM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <curl/curl.h>
#include "compat.h"

#define CFIAM_VERSION "0.1.0"
#define CFIAM_CLIENT_MT "cfiam.client"
#define CFIAM_ERROR_MT "cfiam.error"
#define CFIAM_DEFAULT_BASE_URL "https://api.cloudflare.com/client/v4"

#if defined(_WIN32)
#define CFIAM_EXPORT __declspec(dllexport)
#else
#define CFIAM_EXPORT __attribute__((visibility("default")))
#endif

/* Everything below is internal to cfiam.so: hidden here, so that every
 * build (the Makefile's, LuaRocks', a distribution's) exports
 * luaopen_cfiam alone, whatever its compiler flags. */
#if defined(__GNUC__)
#pragma GCC visibility push(hidden)
#endif

/* ---- buf.c ------------------------------------------------------------ */

typedef struct cfiam_buf {
    char *data;
    size_t len, cap;
} cfiam_buf;

int cfiam_buf_reserve(cfiam_buf *b, size_t extra); /* 0 when out of memory */
int cfiam_buf_append(cfiam_buf *b, const char *s, size_t n);
void cfiam_buf_free(cfiam_buf *b);

/* ---- json.c ----------------------------------------------------------- */

#define CFIAM_JSON_MAX_DEPTH 64

/* Decodes one JSON text and pushes it (null becomes nil, whole numbers
 * integers on 5.3+). Strings must be valid UTF-8. Returns 1 on success;
 * on failure pushes nothing, returns 0 and writes a short reason into
 * why[0..whylen). May raise only Lua memory errors. `scratch` holds
 * unescaped strings and is owned by the caller. */
int cfiam_json_decode(lua_State *L, const char *s, size_t len,
                      cfiam_buf *scratch, char *why, size_t whylen);

/* ---- validate.c ------------------------------------------------------- */

#define CFIAM_ID_LEN 32

int cfiam_is_id(const char *s, size_t len);
/* Writes the 32 characters of a valid id in lower case. */
void cfiam_id_lower(char *out, const char *id);

/* ---- idhash.c --------------------------------------------------------- */

/* The 16 bytes of a valid id (either case), and its first slot in an
 * open-addressing table of `cap` slots (a power of two): a keyed hash of
 * all 16 bytes under the table's own seed (cfiam_id_seed_new, once per
 * table). Shared by the request body's de-duplication and the listing id
 * set. */
typedef struct cfiam_id_seed {
    uint64_t k0, k1;
} cfiam_id_seed;
void cfiam_id_key(const char *id, unsigned char key[16]);
void cfiam_id_seed_new(cfiam_id_seed *seed);
size_t cfiam_id_slot(const unsigned char key[16], const cfiam_id_seed *seed,
                     size_t cap);
/* Writes at most `cap` bytes of `s` into out as a quoted, printable
 * rendering for error messages. */
void cfiam_quote(char *out, size_t cap, const char *s, size_t len);

typedef struct cfiam_url {
    int https;
    char host[256];     /* without brackets for IPv6 */
    int ipv6;
    int port;           /* explicit or the scheme's default */
    size_t prefix_off;  /* offset of the path prefix in the base URL */
} cfiam_url;

/* NULL when `url` is acceptable, else a message (static storage). */
const char *cfiam_check_base_url(const char *url, size_t len, cfiam_url *out);
const char *cfiam_check_header_value(const char *v, size_t len);
const char *cfiam_check_credential(const char *v, size_t len);
int cfiam_is_header_name(const char *s, size_t len);
int cfiam_is_reserved_header(const char *s, size_t len);
int cfiam_is_path(const char *s, size_t len);

/* ---- error.c ---------------------------------------------------------- */

/* Error kinds, in the order of the error table in the README. */
typedef enum {
    CFIAM_E_INVALID_ARGUMENT, CFIAM_E_AUTH, CFIAM_E_PERMISSION,
    CFIAM_E_NOT_FOUND, CFIAM_E_RATE_LIMITED, CFIAM_E_API, CFIAM_E_SERVER,
    CFIAM_E_TIMEOUT, CFIAM_E_NETWORK, CFIAM_E_TLS, CFIAM_E_INVALID_RESPONSE
} cfiam_kind;

void cfiam_error_init(lua_State *L);         /* the metatable, once */
/* Pushes a new error table {kind=, message=} with the error metatable. */
void cfiam_push_error(lua_State *L, cfiam_kind k, const char *message);
/* Pushes `nil, err` for an invalid argument, scrubbed of `secrets` (the
 * quoted value may be a token passed in the wrong place); returns 2. */
int cfiam_invalid(lua_State *L, const char *const *secrets, const char *fmt,
                  ...);
/* Replaces the string at the top of the stack by a copy without secrets. */
void cfiam_scrub_top(lua_State *L, const char *const *secrets);
/* cfiam_quote, or "[redacted]" when the value holds 8 bytes of a secret. */
void cfiam_quote_arg(char *out, size_t cap, const char *s, size_t len,
                     const char *const *secrets);
/* Scrubs the strings of the error table at `idx` (message, ray_id, errors
 * and messages at any depth). Scrubbing replaces every run of 8 or more
 * bytes that occurs in a secret by "[redacted]", not only whole secrets. */
void cfiam_error_scrub(lua_State *L, int idx, const char *const *secrets);
/* Removes the secrets from every string value in the table at `idx` and
 * its sub-tables (decoded JSON: depth bounded by CFIAM_JSON_MAX_DEPTH). */
void cfiam_scrub_table(lua_State *L, int idx, const char *const *secrets);
/* core.scrub and core.quote (require "cfiam.core"): the same scrubbing and quoting for the
 * Lua helpers and the command. */
int cfiam_scrub_hook(lua_State *L);
int cfiam_quote_hook(lua_State *L);

/* ---- retry.c ---------------------------------------------------------- */

#define CFIAM_MAX_SECRETS 4 /* api_token, api_key and their variables */
#define CFIAM_RETRY_AFTER_CAP 60.0 /* seconds: longer waits are not waited */

typedef struct cfiam_resp_headers {
    char ray_id[64];
    char retry_after[64];
    char retry_after_ms[32];
    char should_retry[8];
    char location[256];
    char ratelimit[256];            /* repeated lines joined by ", " */
    char ratelimit_policy[256];
} cfiam_resp_headers;

/* Seconds the server asked us to wait (retry-after-ms, then Retry-After as
 * seconds or HTTP date), or -1 when it said nothing usable. */
double cfiam_server_wait(const cfiam_resp_headers *h, double now);
/* The SDKs' backoff: min(0.5 * 2^retries, 8) * (1 - 0.25 * jitter). */
double cfiam_backoff(int retries_taken);
/* Whether a status is retried by default (408, 409, 429, 5xx); a
 * x-should-retry header wins. */
int cfiam_status_retryable(long status, const cfiam_resp_headers *h);

/* ---- headers.c -------------------------------------------------------- */

/* Sets one captured header from a raw "Name: value" line; ignores others. */
void cfiam_capture_header(cfiam_resp_headers *h, const char *line, size_t len);

/* ---- client.c --------------------------------------------------------- */

typedef enum { CFIAM_AUTH_NONE, CFIAM_AUTH_TOKEN, CFIAM_AUTH_KEY } cfiam_auth;

/* ---- ratelimit.c ------------------------------------------------------ */

/* One reading of the Ratelimit / Ratelimit-Policy headers. */
typedef struct cfiam_rl_reading {
    int have;                /* Ratelimit had a usable item (r and t) */
    int have_policy;         /* Ratelimit-Policy had a usable item (q, w) */
    double remaining, reset; /* r: requests left, t: seconds to the reset */
    double limit, window;    /* q per w seconds */
} cfiam_rl_reading;

/* What the client knows of its quota, and what it has sent since. */
typedef struct cfiam_pacer {
    cfiam_rl_reading last;   /* the latest reading, as received */
    double last_at;          /* monotonic time it arrived */
    int known;               /* `remaining` holds until reset_at */
    double remaining;        /* requests that may still go before reset_at */
    double reset_at;         /* monotonic seconds */
    int contacted;           /* a response came since the last expiry */
    int inflight;            /* requests sent, not yet answered */
    int epoch;               /* counts expiries */
    int stale;               /* the answer being read was sent before the
                                last expiry: it teaches nothing */
} cfiam_pacer;

#define CFIAM_MAX_CONCURRENCY 64

/* Sockets a client's handles may hold at once (connection cache, connects
 * in progress); more are not tracked (see transport_curl.c). */
#define CFIAM_MAX_SOCKS (2 * CFIAM_MAX_CONCURRENCY + 8)

/* One libcurl transfer slot: its easy handle and what its callbacks fill. */
typedef struct cfiam_xfer {
    CURL *easy;
    cfiam_buf resp;                 /* response body */
    cfiam_resp_headers rh;          /* headers of the response */
    long status;
    size_t max_bytes;               /* max_response_bytes */
    int too_large, oom;             /* set by the write callback */
    int head_done;                  /* the blank line ending headers came */
    int call;                       /* multi: index of the call, 0 if idle */
    int epoch;                      /* the pacer's epoch when it was sent */
    char errbuf[CURL_ERROR_SIZE];
} cfiam_xfer;

typedef struct cfiam_client {
    cfiam_xfer one;                 /* the single-call transfer */
    CURLSH *share;                  /* connections, DNS, TLS sessions */
    CURLM *multi;                   /* request_many; NULL until used */
    cfiam_xfer *pool[CFIAM_MAX_CONCURRENCY]; /* its slots, each calloc'd */
    int npool;
    struct curl_slist *headers;     /* Content-Type first, then the rest */
    cfiam_buf body;                 /* request body, reused */
    cfiam_buf scratch;              /* JSON unescaping, body de-duplication */
    cfiam_pacer pacer;
    /* Fork safety (transport_curl.c): the process that made the libcurl
     * state, and the sockets its handles have open. */
    pid_t curl_pid;
    curl_socket_t socks[CFIAM_MAX_SOCKS];
    int nsocks;
    int closed;
    /* Configuration: these point into strings anchored in the userdata's
     * user value table, so they live as long as the client. */
    const char *base_url;           /* without trailing '/' */
    size_t base_len;
    const char *config_error;       /* every call fails with this, or NULL */
    /* every credential it could read, used or not, to scrub; NULL-ended */
    const char *secrets[CFIAM_MAX_SECRETS + 1];
    cfiam_auth auth;
    cfiam_url url;
    double timeout, connect_timeout;
    int max_retries;
    size_t max_response_bytes;
} cfiam_client;

cfiam_client *cfiam_check_client(lua_State *L, int idx); /* raises if closed */
/* The client metatable; core.client_methods (its __index) and core.config
 * go into the core table at -1. */
void cfiam_client_init(lua_State *L);
int cfiam_client_new(lua_State *L);
int cfiam_default_client(lua_State *L);
int cfiam_configure(lua_State *L);
/* Adds C functions to the clients' method table and to the core table at
 * index `core` (either list may be NULL). */
void cfiam_add_functions(lua_State *L, int core, const luaL_Reg *methods,
                         const luaL_Reg *hooks);

/* ---- ratelimit.c (functions) ---------------------------------------- */

double cfiam_now(void); /* monotonic seconds */
/* Parses the captured headers; out->have / have_policy say what was usable.
 * Malformed items are skipped, never an error. */
void cfiam_rl_parse(const cfiam_resp_headers *h, cfiam_rl_reading *out);
/* Learns from a response's headers (any response: it also ends a probe). */
void cfiam_pacer_note(cfiam_pacer *p, const cfiam_resp_headers *h, double now);
/* 0 when one more request may be sent now, else the seconds to wait. */
double cfiam_pacer_wait(cfiam_pacer *p, double now);
/* Counts one request as sent (after cfiam_pacer_wait said 0). */
void cfiam_pacer_sent(cfiam_pacer *p);
/* Pushes { remaining, reset, limit, window } for a reading, or nil. */
void cfiam_rl_push(lua_State *L, const cfiam_rl_reading *r);
/* Pushes nil, err: rate_limited, nothing sent, retry_after = wait. */
int cfiam_rl_refuse(lua_State *L, double wait, int attempts);
/* core.rate_limited(wait, attempts [, message]): cfiam_rl_refuse for Lua. */
int cfiam_rl_refuse_hook(lua_State *L);

/* ---- idset.c ---------------------------------------------------------- */

/* Registers the id set type and core.idset (core table at -1). */
void cfiam_idset_init(lua_State *L);

/* ---- prepare.c -------------------------------------------------------- */

typedef enum { CFIAM_DECODE_RAW, CFIAM_DECODE_MEMBERS } cfiam_decode;

typedef struct cfiam_request {
    const char *method;
    int has_body;
    cfiam_decode decode;
    int want_meta; /* 0: success pushes the result only (update_members) */
} cfiam_request;

/* Validates one call (method at `base`, path at base + 1, opts at
 * base + 2, a table or nil), fills rq and c->body and pushes the target
 * (path and query). `where` prefixes every message ("" or "calls[3]: ").
 * Returns 0, or pushes nil, err and returns 2. Raises on wrong Lua types. */
int cfiam_prepare(lua_State *L, cfiam_client *c, cfiam_request *rq, int base,
                  const char *where);
/* cfiam_prepare of client:request's arguments (method, path, opts at 2-4). */
int cfiam_prepare_request(lua_State *L, cfiam_client *c, cfiam_request *rq);
/* The same for client:update_members(account, group, ids [, opts]) at
 * 2-5: its checks and raises, then the PUT to the group's members. */
int cfiam_prepare_update(lua_State *L, cfiam_client *c, cfiam_request *rq);

/* The API paths, one builder for all. */
typedef enum {
    CFIAM_PATH_ACCOUNT_MEMBERS, /* /accounts/A/members */
    CFIAM_PATH_GROUPS,          /* /accounts/A/iam/user_groups */
    CFIAM_PATH_GROUP,           /* .../user_groups/G */
    CFIAM_PATH_GROUP_MEMBERS,   /* .../user_groups/G/members */
    CFIAM_PATH_GROUP_MEMBER     /* .../user_groups/G/members/M */
} cfiam_path_kind;
/* How many ids (account, group, member) a kind takes. */
int cfiam_path_ids(cfiam_path_kind kind);
/* Pushes the path of `kind` from the ids at first, first + 1, ...: each
 * must be a string (else raises naming `fname`) and a 32-hex id (else
 * pushes nil, err and returns 2); written in lower case. Returns 0. */
int cfiam_push_path(lua_State *L, cfiam_client *c, cfiam_path_kind kind,
                    int first, const char *fname);
/* Replaces the target at the top by the table core.prepare returns
 * ({ method, target, headers, body, decode }) for the cosocket transport. */
void cfiam_push_prepared(lua_State *L, cfiam_client *c,
                         const cfiam_request *rq);

/* ---- body.c ----------------------------------------------------------- */

/* Validates the ids list at `t` and writes `[{"id":"..."},...]` into
 * c->body, dropping duplicates (case-insensitive) and keeping first
 * occurrences in order (c->scratch holds the duplicate set). Raises on
 * wrong Lua types; returns 0, or pushes nil, err and returns 2. */
int cfiam_ids_body(lua_State *L, cfiam_client *c, int t, int allow_empty,
                   const char *fname, const char *where, const char *what);
/* Pushes the query string ("" or "?a=1&b=x") of the table at `q`, keys
 * sorted, and returns 0. Raises on keys or values of the wrong Lua type;
 * a NaN or infinite number pushes nil, err and returns 2. */
int cfiam_push_query(lua_State *L, int q, const char *where,
                     const cfiam_client *c);

/* ---- request.c -------------------------------------------------------- */

/* Registers the request methods and cfiam.is_id (module table at -1). */
void cfiam_request_init(lua_State *L);
void cfiam_sleep(double seconds);

/* ---- hooks.c ---------------------------------------------------------- */

/* Registers core.prepare, update_request, path, outcome and failure (and
 * the other hooks hooks.c lists) in the core table at index `core`. */
void cfiam_hooks_init(lua_State *L, int core);

/* ---- multi.c ---------------------------------------------------------- */

/* client:request_many, and its cosocket hooks in the core table at `core` */
void cfiam_multi_init(lua_State *L, int core);
void cfiam_multi_close(cfiam_client *c);

/* ---- transport_curl.c ------------------------------------------------- */

/* Whether the command's SIGINT handler fired (cfiam.c): a transfer in
 * progress is aborted and no retry is waited for. */
int cfiam_interrupted(void);

/* Creates the share and the single easy handle on first use (client at
 * stack index 1). Returns 0 when libcurl cannot make them. */
int cfiam_curl_ready(cfiam_client *c, lua_State *L);
/* Creates and configures an easy handle for slot x. Returns 0 on failure. */
int cfiam_curl_setup(cfiam_client *c, cfiam_xfer *x, lua_State *L);
/* Clears slot x and sets URL, method and body for one attempt; the body
 * (len bytes, has_body) must outlive the transfer. */
void cfiam_curl_start(cfiam_client *c, cfiam_xfer *x, const cfiam_request *rq,
                      const char *url, const char *body, size_t len);
/* After the transfer: a response without its end of headers is a network
 * failure; fills x->status. Returns the (maybe changed) code. */
CURLcode cfiam_curl_finish(cfiam_xfer *x, CURLcode rc);
/* Performs one attempt on the single handle with c->body: CURLE_OK when a
 * response arrived, else the libcurl code. Never raises. */
CURLcode cfiam_curl_perform(cfiam_client *c, const cfiam_request *rq,
                            const char *url);
/* The outcome of a finished attempt on slot x: pushes result, meta (returns
 * 2; 1 without meta) or the error (returns -1, *wait as in
 * cfiam_response_outcome). Raises only on out-of-memory. */
int cfiam_curl_outcome(lua_State *L, cfiam_client *c, cfiam_xfer *x,
                       const cfiam_request *rq, CURLcode rc, int attempt,
                       double *wait);
void cfiam_curl_close(cfiam_client *c);

/* ---- response.c ------------------------------------------------------- */

/* Turns a response into the call's outcome. On success pushes result and
 * meta and returns 2. On failure pushes the error table and returns -1;
 * *wait is then the seconds to wait before a retry, or -1 for no retry. */
int cfiam_response_outcome(lua_State *L, cfiam_client *c,
                           const cfiam_request *rq, long status,
                           const cfiam_resp_headers *h, const char *body,
                           size_t len, int attempt, double *wait);
/* The same for a failure before any response (kind from the transport). */
void cfiam_transport_outcome(lua_State *L, cfiam_client *c, cfiam_kind kind,
                             const char *message, int attempt, double *wait);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#endif
