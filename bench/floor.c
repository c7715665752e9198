/*
 * bench/floor.c: the floor for make bench. The same requests as cfiam, with
 * one reused libcurl easy handle and nothing else; for the workloads whose
 * answer a Lua user needs as tables (b and c) it also decodes the body with
 * lua-cjson in an embedded Lua 5.4, as the cheapest Lua way to get them.
 *
 *   floor a URL CAFILE N            N small PUTs (one id) on one handle
 *   floor b URL CAFILE BODYFILE     one PUT with the large body, cjson decode
 *   floor c URL CAFILE LISTINGS     list a group page by page (per_page=500,
 *                                   until an empty page), cjson decode each;
 *                                   each listing on a fresh handle, the
 *                                   first untimed (warm-up)
 * URL is the members URL; CAFILE is "-" for none. Prints one line of
 * "key value" pairs: us_per_call (a), ms and rss_kib (b), ms and members (c),
 * and the process CPU time of the timed part (cpu_us_per_call, cpu_ms).
 */
#include <curl/curl.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

typedef struct {
    char *data;
    size_t len, cap;
} buf;

static size_t on_body(char *p, size_t size, size_t n, void *ud) {
    buf *b = ud;
    size_t len = size * n;
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : 16384;
        while (cap < b->len + len)
            cap *= 2;
        if ((b->data = realloc(b->data, cap)) == NULL)
            return 0;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, len);
    b->len += len;
    return len;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what) {
    fprintf(stderr, "floor: %s\n", what);
    exit(1);
}

/* The same request headers as cfiam sends. */
static struct curl_slist *headers(void) {
    struct curl_slist *h = NULL;
    h = curl_slist_append(h, "Content-Type: application/json");
    h = curl_slist_append(h, "Accept: application/json");
    h = curl_slist_append(h, "Authorization: Bearer test-token");
    h = curl_slist_append(h, "User-Agent: cfiam-bench-floor");
    h = curl_slist_append(h, "Expect:");
    return h;
}

static CURL *handle(const char *ca, buf *resp, struct curl_slist *h) {
    CURL *c = curl_easy_init();
    if (c == NULL)
        die("curl_easy_init");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, resp);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");
    if (strcmp(ca, "-") != 0)
        curl_easy_setopt(c, CURLOPT_CAINFO, ca);
    return c;
}

static void perform(CURL *c, buf *resp) {
    long status = 0;
    CURLcode rc;
    resp->len = 0;
    rc = curl_easy_perform(c);
    if (rc != CURLE_OK)
        die(curl_easy_strerror(rc));
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200)
        die("HTTP status is not 200");
}

/* cjson.decode(body).result: leaves the result array on the stack and
 * returns its length. */
static size_t decode(lua_State *L, const buf *resp) {
    size_t n;
    lua_getglobal(L, "decode");
    lua_pushlstring(L, resp->data, resp->len);
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "result");
    lua_remove(L, -2);
    n = (size_t)lua_rawlen(L, -1);
    return n;
}

static lua_State *lua_with_cjson(void) {
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    if (luaL_dostring(L, "decode = require('cjson').decode"))
        die(lua_tostring(L, -1));
    return L;
}

static long peak_rss_kib(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    char *s;
    long n;
    if (f == NULL)
        die("cannot open the body file");
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    rewind(f);
    s = malloc((size_t)n + 1);
    if (s == NULL || fread(s, 1, (size_t)n, f) != (size_t)n)
        die("cannot read the body file");
    fclose(f);
    *len = (size_t)n;
    return s;
}

int main(int argc, char **argv) {
    struct curl_slist *h;
    buf resp = {NULL, 0, 0};
    if (argc != 5)
        die("usage: floor a|b|c URL CAFILE N|BODYFILE|LISTINGS");
    curl_global_init(CURL_GLOBAL_DEFAULT);
    h = headers();
    if (strcmp(argv[1], "a") == 0) {
        static const char body[] = "[{\"id\":\"4f5f0c14a2a41d5063dd301b2f829f04\"}]";
        long i, n = atol(argv[4]);
        double t0, c0;
        CURL *c = handle(argv[3], &resp, h);
        curl_easy_setopt(c, CURLOPT_URL, argv[2]);
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "PUT");
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(sizeof(body) - 1));
        for (i = 0; i < n / 10 + 1; i++) /* warm-up: connection, caches */
            perform(c, &resp);
        t0 = now();
        c0 = cpu();
        for (i = 0; i < n; i++)
            perform(c, &resp);
        printf("us_per_call %.3f cpu_us_per_call %.3f\n", (now() - t0) * 1e6 / (double)n,
               (cpu() - c0) * 1e6 / (double)n);
        curl_easy_cleanup(c);
    } else if (strcmp(argv[1], "b") == 0) {
        size_t blen, members;
        char *body = slurp(argv[4], &blen);
        lua_State *L = lua_with_cjson();
        CURL *c = handle(argv[3], &resp, h);
        double t0, c0;
        curl_easy_setopt(c, CURLOPT_URL, argv[2]);
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "PUT");
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
        t0 = now();
        c0 = cpu();
        perform(c, &resp);
        members = decode(L, &resp);
        printf("ms %.3f cpu_ms %.3f rss_kib %ld members %lu\n", (now() - t0) * 1e3,
               (cpu() - c0) * 1e3, peak_rss_kib(), (unsigned long)members);
        curl_easy_cleanup(c);
        lua_close(L);
        free(body);
    } else if (strcmp(argv[1], "c") == 0) {
        long l, listings = atol(argv[4]);
        size_t len = strlen(argv[2]) + 64, total = 0;
        char *url = malloc(len);
        lua_State *L = lua_with_cjson();
        double t0 = 0, c0 = 0;
        for (l = 0; l <= listings; l++) {
            CURL *c;
            int page;
            if (l == 1) { /* listing 0 is the warm-up */
                t0 = now();
                c0 = cpu();
            }
            c = handle(argv[3], &resp, h);
            total = 0;
            lua_newtable(L); /* all members, as a Lua user would keep them */
            for (page = 1;; page++) {
                size_t n, i;
                snprintf(url, len, "%s?page=%d&per_page=500", argv[2], page);
                curl_easy_setopt(c, CURLOPT_URL, url);
                perform(c, &resp);
                n = decode(L, &resp);
                for (i = 1; i <= n; i++) {
                    lua_rawgeti(L, -1, (lua_Integer)i);
                    lua_rawseti(L, -3, (lua_Integer)(total + i));
                }
                lua_pop(L, 1);
                total += n;
                if (n == 0)
                    break;
            }
            lua_pop(L, 1);
            curl_easy_cleanup(c);
        }
        printf("ms %.3f cpu_ms %.3f members %lu\n", (now() - t0) * 1e3 / (double)listings,
               (cpu() - c0) * 1e3 / (double)listings, (unsigned long)total);
        lua_close(L);
        free(url);
    } else {
        die("unknown workload");
    }
    curl_slist_free_all(h);
    free(resp.data);
    curl_global_cleanup();
    return 0;
}
