#include "runtime/watch/informer.hpp"

#include <utility>

namespace tidesync::watch {

informer::informer(transport& t, watcher_options options)
    : watcher_(t, *this, std::move(options)) {}

informer::~informer() = default;

void informer::add_handler(handler h) {
  handlers_.push_back(std::move(h));
}

void informer::start() {
  watcher_.start();
}

void informer::stop() {
  watcher_.stop();
}

void informer::on_list(std::vector<object> items) {
  // A relist is authoritative: it replaces the cache, and every key that appeared,
  // changed or vanished (deleted while we were not watching) is reported.
  for (const auto& [key, what] : cache_.replace(std::move(items)))
    notify(key);
}

void informer::on_event(watch_event ev) {
  std::string key = ev.obj.key();
  if (cache_.apply(ev.type, std::move(ev.obj)) != cache::change::none) notify(key);
}

void informer::notify(const std::string& key) {
  for (const auto& h : handlers_)
    h(key);
}

}  // namespace tidesync::watch
