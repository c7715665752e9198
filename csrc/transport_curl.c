/*
 * transport_curl.c: one HTTP exchange over the client's libcurl easy
 * handle. The handle is made on first use and kept, so its connection
 * cache gives keep-alive across calls.
 *
 * Fixed settings: TLS peer and host verification on, redirects never
 * followed, http and https only, no signals. The callbacks only copy bytes
 * into client-owned buffers and never touch Lua; a body over
 * max_response_bytes, or an allocation failure, stops the transfer with a
 * flag that cfiam_curl_kind reads afterwards.
 *
 * After a fork (nginx makes its workers from the master, where
 * init_by_lua may have made a call), parent and child hold the same
 * sockets and TLS state: two processes writing to one connection read
 * each other's answers. The handle remembers the pid that made it; a
 * different pid at the next use (or at close) abandons it in the child:
 * curl_easy_cleanup would send a TLS close_notify on the parent's
 * connection, so the handle is deliberately leaked (once per fork), and
 * only the child's references to its sockets are closed, with close(2),
 * which sends nothing while the parent holds them. A fresh handle (new
 * connections, no shared TLS session) is made on the next call.
 */
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "cfiam.h"

static size_t on_body(char *data, size_t size, size_t n, void *ud) {
    cfiam_client *c = ud;
    size_t len = size * n;
    if (len > c->max_response_bytes - c->resp.len) {
        c->too_large = 1;
        return 0;
    }
    if (!cfiam_buf_append(&c->resp, data, len)) {
        c->oom = 1;
        return 0;
    }
    return len;
}

static size_t on_header(char *line, size_t size, size_t n, void *ud) {
    cfiam_client *c = ud;
    size_t len = size * n;
    /* A status line starts a new response (after 100 Continue, say):
     * forget what the previous one said. */
    if (len >= 5 && memcmp(line, "HTTP/", 5) == 0) {
        memset(&c->rh, 0, sizeof(c->rh));
        c->head_done = 0;
    } else if ((len == 2 && line[0] == '\r' && line[1] == '\n') ||
               (len == 1 && line[0] == '\n')) {
        c->head_done = 1;
    } else {
        cfiam_capture_header(&c->rh, line, len);
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

/* In a forked child: abandons the parent's handle (see the top). */
static void drop_if_forked(cfiam_client *c) {
    int i;
    if (c->curl == NULL || c->curl_pid == getpid())
        return;
    for (i = 0; i < c->nsocks; i++)
        close(c->socks[i]);
    c->nsocks = 0;
    c->curl = NULL; /* leaked on purpose: cleaning it up would write */
}

/* Aborts the transfer once Ctrl-C was caught (the command only); libcurl
 * calls it at least once a second, also while connecting or waiting. */
static int on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut,
                       curl_off_t un) {
    (void)ud, (void)dt, (void)dn, (void)ut, (void)un;
    return cfiam_interrupted();
}

/* Creates and configures the easy handle. Returns 0 on failure. */
static int curl_setup(cfiam_client *c, lua_State *L) {
    CURL *h = curl_easy_init();
    const char *v;
    if (h == NULL)
        return 0;
    c->curl = h;
    c->curl_pid = getpid();
    c->nsocks = 0;
    curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, on_open);
    curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, c);
    curl_easy_setopt(h, CURLOPT_CLOSESOCKETFUNCTION, on_close);
    curl_easy_setopt(h, CURLOPT_CLOSESOCKETDATA, c);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->errbuf);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, c);
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

CURLcode cfiam_curl_perform(cfiam_client *c, const cfiam_request *rq,
                            const char *url) {
    CURL *h = c->curl;
    CURLcode rc;
    c->resp.len = 0;
    c->status = 0;
    c->too_large = c->oom = c->head_done = 0;
    c->errbuf[0] = '\0';
    memset(&c->rh, 0, sizeof(c->rh));
    if (cfiam_interrupted()) { /* nothing starts after Ctrl-C */
        snprintf(c->errbuf, sizeof(c->errbuf), "interrupted");
        return CURLE_ABORTED_BY_CALLBACK;
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    if (rq->has_body) {
        /* never NULL: libcurl would then read the body from stdin */
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, c->body.data ? c->body.data : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)c->body.len);
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
    rc = curl_easy_perform(h);
    /* libcurl 7.88 returns OK when the peer closes inside the headers:
     * no response arrived, which is a (retryable) network failure. */
    if (rc == CURLE_OK && !c->head_done) {
        snprintf(c->errbuf, sizeof(c->errbuf),
                 "the connection closed inside the response headers");
        rc = CURLE_PARTIAL_FILE;
    }
    if (rc == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &c->status);
    return rc;
}

cfiam_kind cfiam_curl_kind(CURLcode rc, const cfiam_client *c) {
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
        return c->too_large ? CFIAM_E_INVALID_RESPONSE : CFIAM_E_NETWORK;
    default:
        return CFIAM_E_NETWORK;
    }
}

void cfiam_curl_close(cfiam_client *c) {
    drop_if_forked(c);
    if (c->curl) {
        curl_easy_cleanup(c->curl);
        c->curl = NULL;
    }
}

/* Called by request.c before the first transfer; the client is at index 1. */
int cfiam_curl_ready(cfiam_client *c, lua_State *L) {
    drop_if_forked(c);
    return c->curl != NULL || curl_setup(c, L);
}
