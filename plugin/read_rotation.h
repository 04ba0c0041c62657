// ReadRotation: the order in which a worker reads its connections. Each loop pass reads the
// connections epoll reported, then those whose read budget ran out in the previous pass: every
// connection gets at most one read budget per pass, and a busy one waits behind everything that
// became ready while it was being read (round robin), however long it keeps sending.
#pragma once

#include <cassert>
#include <cstddef>
#include <vector>

#include "vector_room.h"

namespace epoll_echo {

// Owned by one worker and used by its thread only. `Item` has a `bool queued` member that this
// class alone sets and clears (true from defer() until the item's turn in serveDue()), so a
// connection is queued at most once and the worker can ask it whether its turn is still to come.
template <typename Item>
class ReadRotation {
 public:
  // Room for `count` items in both lists, so that defer() never allocates. Throws std::bad_alloc.
  void reserve(size_t count) {
    reserveRoom(next_, count);
    reserveRoom(due_, count);
  }

  // True while an item waits for its turn: reading it now would give it a second budget in this
  // pass (the turn reads it anyway, after the connections that were ready before it).
  static bool waiting(const Item& item) noexcept { return item.queued; }

  // The item still has bytes to read after its budget: it is read in the next pass, after the
  // connections that pass's epoll_wait reports. Queued once however often it is deferred.
  void defer(Item& item) noexcept {
    if (item.queued) return;
    assert(next_.size() < next_.capacity());
    item.queued = true;
    next_.push_back(&item);
  }

  // Called once per pass, before its events are read: what was deferred until now is due.
  void beginPass() noexcept {
    assert(due_.empty());
    due_.swap(next_);
  }

  // Reads every due item in the order it was deferred; `read` may defer it again (next pass).
  template <typename Read>
  void serveDue(Read&& read) {
    for (Item* item : due_) {
      item->queued = false;
      read(*item);
    }
    due_.clear();
  }

  // Forgets an item that is going away (rare: a busy connection that failed). One already due in
  // this pass stays listed, since serveDue() may be running: the worker keeps a closed
  // connection's memory until the pass ends and does not read it.
  void remove(Item& item) noexcept {
    if (!item.queued) return;
    item.queued = false;
    for (size_t i = 0; i < next_.size(); ++i) {
      if (next_[i] == &item) {
        next_.erase(next_.begin() + static_cast<std::ptrdiff_t>(i));
        return;
      }
    }
  }

  bool anyDeferred() const noexcept { return !next_.empty(); }

  // Forgets every item without touching it: the worker calls it when its connections are gone.
  void clear() noexcept {
    next_.clear();
    due_.clear();
  }

 private:
  std::vector<Item*> next_;  // deferred in this pass: read in the next one
  std::vector<Item*> due_;   // deferred in the previous pass: read at the end of this one
};

}  // namespace epoll_echo
