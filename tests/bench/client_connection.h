// client_connection.h — the state of one client connection (echo mode) or one connect attempt
// (connect mode), private to ClientThread: stream offsets sent, expected and received.
#pragma once

#include <vector>

#include "client_thread.h"

namespace epoll_echo::bench {

struct ClientThread::Connection {
  int fd = -1;
  uint64_t stream = 0;
  uint64_t sentBytes = 0;      // stream offset handed to send()
  uint64_t issuedBytes = 0;    // stream offset of the end of the last message issued
  uint64_t receivedBytes = 0;  // stream offset verified so far
  uint64_t issued = 0;         // messages issued
  uint64_t completed = 0;      // messages fully echoed
  uint64_t timedSends = 0;     // closed loop: messages whose send() time is in issueTimes
  uint64_t windowMessages = 0;
  uint64_t due = 0;          // open loop: messages whose intended time the schedule has passed
  bool connecting = false;   // connect mode: waiting for the connect to finish
  bool dead = false;
  std::vector<Nanoseconds> issueTimes;  // ring of depth entries, indexed by message number: when
                                        // the message's first byte went to send(); open loop: its
                                        // intended send time
};

}  // namespace epoll_echo::bench
