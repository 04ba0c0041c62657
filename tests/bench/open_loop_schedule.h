// open_loop_schedule.h — the fixed send schedule of open-loop mode (--rate): `rate` messages per
// second in total, spread evenly over the connections and staggered so that the sends of all
// connections together are evenly spaced. Latency is measured from these intended times (as
// wrk2 does), so a server that stalls cannot hide its stall by delaying the generator's sends.
#pragma once

#include <cstdint>

namespace epoll_echo::bench {

class OpenLoopSchedule {
 public:
  // `rate` messages/s in total (> 0) over `connections` (> 0) connections, from `start` (ns).
  OpenLoopSchedule(double rate, uint32_t connections, int64_t start)
      : rate_(rate), connections_(connections), start_(start) {}

  // Each connection sends every connections / rate seconds.
  double intervalNanoseconds() const { return static_cast<double>(connections_) * 1e9 / rate_; }

  // When message `index` (0, 1, ...) of connection `connection` (0..connections-1) is due:
  // connection c starts c / rate seconds after `start`, so the global order is 0, 1, ..., n-1, 0, ...
  int64_t intendedTime(uint32_t connection, uint64_t index) const {
    return slotTime(index * connections_ + connection);
  }

  // The sends of all connections in the order they fall due: slot k (0, 1, ...) is message
  // indexOf(k) of connection connectionOf(k), due at slotTime(k). A generator that walks the slots
  // with a cursor does O(1) work per send, whatever the number of connections.
  int64_t slotTime(uint64_t slot) const { return start_ + static_cast<int64_t>(static_cast<double>(slot) * 1e9 / rate_); }
  uint32_t connectionOf(uint64_t slot) const { return static_cast<uint32_t>(slot % connections_); }
  uint64_t indexOf(uint64_t slot) const { return slot / connections_; }

  // How many slots are due at `now` (those with slotTime <= now).
  uint64_t slotsDueBy(int64_t now) const {
    if (now < start_) return 0;
    auto due = static_cast<uint64_t>(static_cast<double>(now - start_) * rate_ / 1e9) + 1;
    // Rounding of the doubles: settle on the exact answer of slotTime().
    while (due > 0 && slotTime(due - 1) > now) --due;
    while (slotTime(due) <= now) ++due;
    return due;
  }

  // How many messages of `connection` are due at `now` (those with intended time <= now).
  uint64_t dueBy(uint32_t connection, int64_t now) const {
    if (now < intendedTime(connection, 0)) return 0;
    const double elapsedSlots = static_cast<double>(now - start_) * rate_ / 1e9;
    auto due = static_cast<uint64_t>((elapsedSlots - connection) / connections_) + 1;
    // Rounding of the doubles: settle on the exact answer of intendedTime().
    while (due > 0 && intendedTime(connection, due - 1) > now) --due;
    while (intendedTime(connection, due) <= now) ++due;
    return due;
  }

 private:
  double rate_;
  uint32_t connections_;
  int64_t start_;
};

}  // namespace epoll_echo::bench
