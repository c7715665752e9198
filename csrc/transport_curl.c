/*
 * transport_curl.c: one HTTP exchange over a libcurl easy handle. A client
 * has one handle for single calls and a pool for request_many; all of
 * them share one connection cache (a CURLSH, with DNS and TLS sessions),
 * so keep-alive connections serve both paths.
 *
 * Fixed settings: TLS peer and host verification on, redirects never
 * followed, http and https only, no signals, HTTP/2 over TLS when the
 * server offers it (ALPN). The callbacks only copy bytes into the slot's
 * buffers and never touch Lua; a body over max_response_bytes, or an
 * allocation failure, stops the transfer with a flag read afterwards.
 *
 * After a fork (nginx makes its workers from the master, where
 * init_by_lua may have made a call), parent and child hold the same
 * sockets and TLS state: two processes writing to one connection read
 * each other's answers. The client remembers the pid that made its libcurl
 * state; a different pid at the next use (or at close) abandons it in the
 * child: curl_easy_cleanup would send a TLS close_notify on the parent's
 * connection, so the handles are deliberately leaked (once per fork), and
 * only the child's references to their sockets are closed, with close(2),
 * which sends nothing while the parent holds them. Fresh handles (new
 * connections, no shared TLS session) are made on the next call.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "cfiam.h"

static size_t on_body(char *data, size_t size, size_t n, void *ud) {
    cfiam_xfer *x = ud;
    size_t len = size * n;
    if (len > x->max_bytes - x->resp.len) {
        x->too_large = 1;
        return 0;
    }
    if (!cfiam_buf_append(&x->resp, data, len)) {
        x->oom = 1;
        return 0;
    }
    return len;
}

static size_t on_header(char *line, size_t size, size_t n, void *ud) {
    cfiam_xfer *x = ud;
    size_t len = size * n;
    /* A status line starts a new response (after 100 Continue, say):
     * forget what the previous one said. */
    if (len >= 5 && memcmp(line, "HTTP/", 5) == 0) {
        memset(&x->rh, 0, sizeof(x->rh));
        x->head_done = 0;
    } else if ((len == 2 && line[0] == '\r' && line[1] == '\n') ||
               (len == 1 && line[0] == '\n')) {
        x->head_done = 1;
    } else {
        cfiam_capture_header(&x->rh, line, len);
    }
    return len;
}

/* Opens the sockets libcurl asks for (as libcurl would) and records
 * them; a socket beyond CFIAM_MAX_SOCKS is not recorded, so a forked
 * child would only keep (not disturb) it. */
static curl_socket_t on_open(void *ud, curlsocktype purpose,
                             struct curl_sockaddr *a) {
    cfiam_client *c = ud;
    curl_socket_t s = socket(a->family, a->socktype, a->protocol);
    (void)purpose;
    if (s != CURL_SOCKET_BAD && c->nsocks < CFIAM_MAX_SOCKS)
        c->socks[c->nsocks++] = s;
    return s;
}

static int on_close(void *ud, curl_socket_t s) {
    cfiam_client *c = ud;
    int i;
    for (i = 0; i < c->nsocks; i++)
        if (c->socks[i] == s) {
            c->socks[i] = c->socks[--c->nsocks];
            break;
        }
    return close(s);
}

/* In a forked child: abandons the parent's libcurl state (see the top).
 * The slots' buffers are ours to free; their handles are not cleaned up. */
static void drop_if_forked(cfiam_client *c) {
    int i;
    if (c->share == NULL || c->curl_pid == getpid())
        return;
    for (i = 0; i < c->nsocks; i++)
        close(c->socks[i]);
    c->nsocks = 0;
    for (i = 0; i < c->npool; i++) {
        cfiam_buf_free(&c->pool[i]->resp);
        free(c->pool[i]);
        c->pool[i] = NULL;
    }
    c->npool = 0;
    /* leaked on purpose: cleaning them up would write */
    c->multi = NULL;
    c->one.easy = NULL;
    c->share = NULL;
}

/* Aborts the transfer once Ctrl-C was caught (the command only); libcurl
 * calls it at least once a second, also while connecting or waiting. */
static int on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut,
                       curl_off_t un) {
    (void)ud, (void)dt, (void)dn, (void)ut, (void)un;
    return cfiam_interrupted();
}

int cfiam_curl_setup(cfiam_client *c, cfiam_xfer *x, lua_State *L) {
    CURL *h = curl_easy_init();
    const char *v;
    if (h == NULL)
        return 0;
    x->easy = h; /* owned by the slot, which the client owns */
    x->max_bytes = c->max_response_bytes;
    curl_easy_setopt(h, CURLOPT_SHARE, c->share);
    curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, on_open);
    curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, c);
    curl_easy_setopt(h, CURLOPT_CLOSESOCKETFUNCTION, on_close);
    curl_easy_setopt(h, CURLOPT_CLOSESOCKETDATA, c);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(h, CURLOPT_PROTOCOLS, CURLPROTO_HTTP | CURLPROTO_HTTPS);
#endif
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    /* keep request_many's connections alive between batches */
    curl_easy_setopt(h, CURLOPT_MAXCONNECTS, (long)CFIAM_MAX_CONCURRENCY);
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)(c->timeout * 1000));
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)(c->connect_timeout * 1000));
    curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE,
                     (curl_off_t)c->max_response_bytes);
    /* ca_file, ca_path, proxy: anchored in the user value table, and
     * libcurl copies them anyway. */
    cfiam_getuservalue(L, 1);
    lua_getfield(L, -1, "ca_file");
    if ((v = lua_tostring(L, -1)) != NULL)
        curl_easy_setopt(h, CURLOPT_CAINFO, v);
    lua_getfield(L, -2, "ca_path");
    if ((v = lua_tostring(L, -1)) != NULL)
        curl_easy_setopt(h, CURLOPT_CAPATH, v);
    lua_getfield(L, -3, "proxy");
    if (!c->url.https) {
        /* Plain http (loopback only) never goes through a proxy, which
         * would see the credentials in clear: "" overrides the proxy
         * environment variables, "*" exempts every host. The proxy option
         * is refused with such a base URL (client.c). */
        curl_easy_setopt(h, CURLOPT_PROXY, "");
        curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    } else if ((v = lua_tostring(L, -1)) != NULL) {
        curl_easy_setopt(h, CURLOPT_PROXY, v);
    }
    lua_pop(L, 4);
    return 1;
}

void cfiam_curl_start(cfiam_client *c, cfiam_xfer *x, const cfiam_request *rq,
                      const char *url, const char *body, size_t len) {
    CURL *h = x->easy;
    x->resp.len = 0;
    x->status = 0;
    x->too_large = x->oom = x->head_done = 0;
    x->errbuf[0] = '\0';
    memset(&x->rh, 0, sizeof(x->rh));
    curl_easy_setopt(h, CURLOPT_URL, url);
    if (rq->has_body) {
        /* never NULL: libcurl would then read the body from stdin */
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST,
                         strcmp(rq->method, "POST") ? rq->method : NULL);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, c->headers);
    } else {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST,
                         strcmp(rq->method, "GET") ? rq->method : NULL);
        /* skip the leading Content-Type: a body-less request has none */
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, c->headers->next);
    }
}

CURLcode cfiam_curl_finish(cfiam_xfer *x, CURLcode rc) {
    /* libcurl 7.88 returns OK when the peer closes inside the headers:
     * no response arrived, which is a (retryable) network failure. */
    if (rc == CURLE_OK && !x->head_done) {
        snprintf(x->errbuf, sizeof(x->errbuf),
                 "the connection closed inside the response headers");
        rc = CURLE_PARTIAL_FILE;
    }
    if (rc == CURLE_OK)
        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &x->status);
    else if (rc == CURLE_ABORTED_BY_CALLBACK) /* on_progress: Ctrl-C */
        snprintf(x->errbuf, sizeof(x->errbuf), "interrupted");
    return rc;
}

CURLcode cfiam_curl_perform(cfiam_client *c, const cfiam_request *rq,
                            const char *url) {
    cfiam_curl_start(c, &c->one, rq, url, c->body.data, c->body.len);
    if (cfiam_interrupted()) { /* nothing starts after Ctrl-C */
        snprintf(c->one.errbuf, sizeof(c->one.errbuf), "interrupted");
        return CURLE_ABORTED_BY_CALLBACK;
    }
    return cfiam_curl_finish(&c->one, curl_easy_perform(c->one.easy));
}

static cfiam_kind curl_kind(CURLcode rc, const cfiam_xfer *x) {
    switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
        return CFIAM_E_TIMEOUT;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_USE_SSL_FAILED:
        return CFIAM_E_TLS;
    case CURLE_FILESIZE_EXCEEDED:
        return CFIAM_E_INVALID_RESPONSE;
    case CURLE_WRITE_ERROR:
        return x->too_large ? CFIAM_E_INVALID_RESPONSE : CFIAM_E_NETWORK;
    default:
        return CFIAM_E_NETWORK;
    }
}

int cfiam_curl_outcome(lua_State *L, cfiam_client *c, cfiam_xfer *x,
                       const cfiam_request *rq, CURLcode rc, int attempt,
                       double *wait) {
    char msg[CURL_ERROR_SIZE + 64];
    if (rc == CURLE_OK)
        return cfiam_response_outcome(L, c, rq, x->status, &x->rh,
                                      x->resp.data ? x->resp.data : "",
                                      x->resp.len, attempt, wait);
    if (x->oom)
        return luaL_error(L, "cfiam: out of memory");
    if (x->too_large || rc == CURLE_FILESIZE_EXCEEDED)
        snprintf(msg, sizeof(msg), "the response body is larger than "
                 "max_response_bytes (%.0f bytes)", (double)x->max_bytes);
    else
        snprintf(msg, sizeof(msg), "%s",
                 x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc));
    cfiam_transport_outcome(L, c, curl_kind(rc, x), msg, attempt, wait);
    return -1;
}

void cfiam_curl_close(cfiam_client *c) {
    drop_if_forked(c);
    cfiam_multi_close(c); /* its handles use the share: first */
    if (c->one.easy) {
        curl_easy_cleanup(c->one.easy);
        c->one.easy = NULL;
    }
    cfiam_buf_free(&c->one.resp);
    if (c->share) {
        curl_share_cleanup(c->share);
        c->share = NULL;
    }
}

/* Called by request.c before the first transfer; the client is at index 1. */
int cfiam_curl_ready(cfiam_client *c, lua_State *L) {
    drop_if_forked(c);
    if (c->share == NULL) {
        CURLSH *sh = curl_share_init();
        if (sh == NULL)
            return 0;
        c->share = sh;
        c->curl_pid = getpid();
        c->nsocks = 0;
        curl_share_setopt(sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
        curl_share_setopt(sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
        curl_share_setopt(sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    }
    return c->one.easy != NULL || cfiam_curl_setup(c, &c->one, L);
}
