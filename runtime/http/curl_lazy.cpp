// libcurl, loaded on first use instead of at process start.
//
// Why: Debian's libcurl pulls in about 30 shared libraries (GnuTLS, Kerberos, LDAP, RTMP,
// SSH, ...). Mapping and relocating them cost every `tidesync` process ~490 page faults and
// ~15 ms at start-up (measured: an empty main() linked with -lcurl against one without),
// which was a third of a no-change local re-sync (docs/benchmarks.md). Commands that never
// talk HTTP (`tidesync sync` between local folders, `tidesync version`) now never load it;
// the controller loads it when its HTTP loop starts.
//
// How: this file defines the libcurl functions tidesync calls. The binary does not link
// libcurl; each definition resolves the real function from "libcurl.so.4" (dlopen once, then
// dlsym) and forwards to it. The variadic setopt functions forward their one argument with
// the type its option number encodes (CURLOPTTYPE_*), exactly as curl reads it.
#define CURL_DISABLE_TYPECHECK 1
#include <curl/curl.h>
#include <dlfcn.h>

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <mutex>

namespace {

void* library() {
  static void* handle = [] {
    void* h = ::dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
    if (h == nullptr) {
      std::fprintf(stderr,
                   "tidesync: cannot load libcurl (libcurl.so.4): %s; install it (Debian: "
                   "apt-get install libcurl4) — it is needed for remotes and the Kubernetes "
                   "API\n",
                   ::dlerror());
      std::abort();
    }
    return h;
  }();
  return handle;
}

template <class Fn>
Fn resolve(const char* name) {
  void* sym = ::dlsym(library(), name);
  if (sym == nullptr) {
    std::fprintf(stderr, "tidesync: libcurl.so.4 has no %s (libcurl 7.68 or newer is needed)\n",
                 name);
    std::abort();
  }
  return reinterpret_cast<Fn>(sym);
}

// The real function `name` of type `Fn`, resolved once.
#define TIDESYNC_CURL_REAL(Fn, name) static const auto real = resolve<Fn>(name)

// One argument of a setopt call, read with the type its option number says.
template <class Real, class Handle, class Option>
auto forward_option(Real real, Handle h, Option option, va_list args) {
  const long kind = static_cast<long>(option) / 10000 * 10000;
  if (kind == CURLOPTTYPE_LONG) return real(h, option, va_arg(args, long));
  if (kind == CURLOPTTYPE_OFF_T) return real(h, option, va_arg(args, curl_off_t));
  if (kind == CURLOPTTYPE_FUNCTIONPOINT) {
    using any_function = void (*)();
    return real(h, option, va_arg(args, any_function));
  }
  return real(h, option, va_arg(args, void*));  // object, string, slist, blob
}

}  // namespace

extern "C" {

CURLcode curl_global_init(long flags) {
  TIDESYNC_CURL_REAL(CURLcode(*)(long), "curl_global_init");
  return real(flags);
}

curl_version_info_data* curl_version_info(CURLversion v) {
  TIDESYNC_CURL_REAL(curl_version_info_data * (*)(CURLversion), "curl_version_info");
  return real(v);
}

CURL* curl_easy_init() {
  TIDESYNC_CURL_REAL(CURL * (*)(), "curl_easy_init");
  return real();
}

void curl_easy_cleanup(CURL* h) {
  TIDESYNC_CURL_REAL(void (*)(CURL*), "curl_easy_cleanup");
  real(h);
}

void curl_easy_reset(CURL* h) {
  TIDESYNC_CURL_REAL(void (*)(CURL*), "curl_easy_reset");
  real(h);
}

CURLcode curl_easy_perform(CURL* h) {
  TIDESYNC_CURL_REAL(CURLcode(*)(CURL*), "curl_easy_perform");
  return real(h);
}

const char* curl_easy_strerror(CURLcode c) {
  TIDESYNC_CURL_REAL(const char* (*)(CURLcode), "curl_easy_strerror");
  return real(c);
}

CURLcode curl_easy_setopt(CURL* h, CURLoption option, ...) {
  TIDESYNC_CURL_REAL(CURLcode(*)(CURL*, CURLoption, ...), "curl_easy_setopt");
  va_list args;
  va_start(args, option);
  const CURLcode rc = forward_option(real, h, option, args);
  va_end(args);
  return rc;
}

CURLcode curl_easy_getinfo(CURL* h, CURLINFO info, ...) {
  TIDESYNC_CURL_REAL(CURLcode(*)(CURL*, CURLINFO, ...), "curl_easy_getinfo");
  va_list args;
  va_start(args, info);
  void* out = va_arg(args, void*);  // every CURLINFO_* takes a pointer to its result
  va_end(args);
  return real(h, info, out);
}

curl_slist* curl_slist_append(curl_slist* list, const char* s) {
  TIDESYNC_CURL_REAL(curl_slist * (*)(curl_slist*, const char*), "curl_slist_append");
  return real(list, s);
}

void curl_slist_free_all(curl_slist* list) {
  TIDESYNC_CURL_REAL(void (*)(curl_slist*), "curl_slist_free_all");
  real(list);
}

CURLM* curl_multi_init() {
  TIDESYNC_CURL_REAL(CURLM * (*)(), "curl_multi_init");
  return real();
}

CURLMcode curl_multi_cleanup(CURLM* m) {
  TIDESYNC_CURL_REAL(CURLMcode(*)(CURLM*), "curl_multi_cleanup");
  return real(m);
}

CURLMcode curl_multi_add_handle(CURLM* m, CURL* h) {
  TIDESYNC_CURL_REAL(CURLMcode(*)(CURLM*, CURL*), "curl_multi_add_handle");
  return real(m, h);
}

CURLMcode curl_multi_remove_handle(CURLM* m, CURL* h) {
  TIDESYNC_CURL_REAL(CURLMcode(*)(CURLM*, CURL*), "curl_multi_remove_handle");
  return real(m, h);
}

CURLMcode curl_multi_perform(CURLM* m, int* running) {
  TIDESYNC_CURL_REAL(CURLMcode(*)(CURLM*, int*), "curl_multi_perform");
  return real(m, running);
}

CURLMcode curl_multi_poll(CURLM* m, curl_waitfd extra[], unsigned int n, int timeout_ms, int* ret) {
  TIDESYNC_CURL_REAL(CURLMcode(*)(CURLM*, curl_waitfd[], unsigned int, int, int*),
                     "curl_multi_poll");
  return real(m, extra, n, timeout_ms, ret);
}

CURLMcode curl_multi_wakeup(CURLM* m) {
  TIDESYNC_CURL_REAL(CURLMcode(*)(CURLM*), "curl_multi_wakeup");
  return real(m);
}

CURLMcode curl_multi_timeout(CURLM* m, long* ms) {
  TIDESYNC_CURL_REAL(CURLMcode(*)(CURLM*, long*), "curl_multi_timeout");
  return real(m, ms);
}

CURLMsg* curl_multi_info_read(CURLM* m, int* left) {
  TIDESYNC_CURL_REAL(CURLMsg * (*)(CURLM*, int*), "curl_multi_info_read");
  return real(m, left);
}

const char* curl_multi_strerror(CURLMcode c) {
  TIDESYNC_CURL_REAL(const char* (*)(CURLMcode), "curl_multi_strerror");
  return real(c);
}

CURLMcode curl_multi_setopt(CURLM* m, CURLMoption option, ...) {
  TIDESYNC_CURL_REAL(CURLMcode(*)(CURLM*, CURLMoption, ...), "curl_multi_setopt");
  va_list args;
  va_start(args, option);
  const CURLMcode rc = forward_option(real, m, option, args);
  va_end(args);
  return rc;
}

}  // extern "C"
