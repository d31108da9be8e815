// The embedded API server's HTTP side: the Kubernetes REST wire protocol over cpp-httplib,
// in front of a `store` (see store.hpp). Enough of it that the real kubectl and our own
// client work: discovery, CRUD, patch, watch (chunked newline-delimited JSON), server-side
// Table printing, Status errors. httplib stays out of this header (pimpl).
#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <memory>
#include <string>

#include "runtime/error.hpp"

namespace tidesync::apiserver {

class store;

struct server_options {
  std::string host = "127.0.0.1";
  int port = 0;                                  // 0: pick a free port
  size_t threads = 256;                          // each open watch holds one
  bool debug_endpoints = true;                   // POST /debug/tidesync/compact and /close-watches
  std::chrono::seconds max_watch_timeout{1800};  // when the client gives no timeoutSeconds
  // Bearer token -> user name ("system:serviceaccount:NS:NAME"). A request with one of these
  // tokens is authorized by the RBAC objects in the store (rbac.hpp) and gets 403 Forbidden
  // when no rule allows it; every other request is an administrator's, as before.
  std::map<std::string, std::string> token_users;
};

class server {
 public:
  server(store& s, server_options options = {});
  ~server();
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  // Binds and starts serving on a background thread; returns the port.
  expected<int> start();
  // Ends open watches, stops accepting, and joins the worker threads.
  void stop();
  [[nodiscard]] int port() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace tidesync::apiserver
