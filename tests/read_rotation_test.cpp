// Unit tests of ReadRotation, driven the way a worker drives it: each pass reads the connections
// epoll reports (skipping those whose turn is still to come), then the deferred ones. A model
// worker records who was read when, so the tests check the service order, not a speed.
#include "read_rotation.h"

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace epoll_echo {
namespace {

struct FakeConnection {
  std::string name;
  int budgetsLeft = 0;  // reads that fill the whole budget before the socket is empty
  bool queued = false;
};

// A worker's loop pass, reduced to its read order: the reported connections in the kernel's
// order, then the deferred ones. A connection with budgets left is deferred after its read.
class ModelWorker {
 public:
  ModelWorker() { rotation_.reserve(16); }

  void pass(const std::vector<FakeConnection*>& reported) {
    rotation_.beginPass();
    for (FakeConnection* connection : reported) read(*connection);
    rotation_.serveDue([this](FakeConnection& connection) { read(connection); });
    reads_.push_back("|");
  }

  std::string order() const {
    std::string text;
    for (const std::string& read : reads_) text += read;
    return text;
  }

  ReadRotation<FakeConnection>& rotation() { return rotation_; }

 private:
  void read(FakeConnection& connection) {
    if (ReadRotation<FakeConnection>::waiting(connection)) return;
    reads_.push_back(connection.name);
    if (connection.budgetsLeft-- > 0) rotation_.defer(connection);
  }

  ReadRotation<FakeConnection> rotation_;
  std::vector<std::string> reads_;
};

TEST(ReadRotationTest, BusyConnectionGetsOneBudgetPerPass) {
  FakeConnection busy{"B", 5};
  ModelWorker worker;
  // The busy client keeps sending, so epoll reports it in every pass too.
  for (int i = 0; i < 4; ++i) worker.pass({&busy});
  EXPECT_EQ(worker.order(), "B|B|B|B|");
}

TEST(ReadRotationTest, NoConnectionIsReadTwiceBeforeAReadyOneIsReadOnce) {
  FakeConnection busy{"B", 10}, a{"a"}, c{"c"};
  ModelWorker worker;
  worker.pass({&busy});
  // a and c became ready while B was read: they go first, then B's deferred turn.
  worker.pass({&a, &busy, &c});
  worker.pass({&busy, &a});
  EXPECT_EQ(worker.order(), "B|acB|aB|");
}

TEST(ReadRotationTest, DeferredConnectionsTakeTurnsInTheOrderTheyRanOut) {
  FakeConnection x{"x", 2}, y{"y", 2}, z{"z", 2};
  ModelWorker worker;
  worker.pass({&x, &y, &z});
  worker.pass({&z, &y, &x});  // epoll's order does not let anyone jump the rotation
  worker.pass({});
  worker.pass({});
  EXPECT_EQ(worker.order(), "xyz|xyz|xyz||");
}

TEST(ReadRotationTest, EveryReadyConnectionIsServedAlikeUnderLoad) {
  std::vector<FakeConnection> connections(8);
  for (size_t i = 0; i < connections.size(); ++i) {
    connections[i].name = std::string(1, static_cast<char>('a' + i));
    connections[i].budgetsLeft = i % 2 == 0 ? 1000 : 0;  // half of them never run dry
  }
  ModelWorker worker;
  std::map<std::string, int> reads;
  for (int pass = 0; pass < 50; ++pass) {
    std::vector<FakeConnection*> reported;
    for (size_t i = 0; i < connections.size(); ++i) {
      // Every client has a new message in every pass; epoll's order varies.
      reported.push_back(&connections[(i + static_cast<size_t>(pass)) % connections.size()]);
    }
    worker.pass(reported);
  }
  for (char name : worker.order()) {
    if (name != '|') ++reads[std::string(1, name)];
  }
  for (const auto& [name, count] : reads) EXPECT_EQ(count, 50) << name;
}

TEST(ReadRotationTest, RemovedConnectionIsNotServed) {
  FakeConnection gone{"g", 3}, kept{"k", 3};
  ModelWorker worker;
  worker.pass({&gone, &kept});
  worker.rotation().remove(gone);
  EXPECT_FALSE(gone.queued);
  worker.pass({});
  EXPECT_EQ(worker.order(), "gk|k|");
}

TEST(ReadRotationTest, ClearForgetsEveryDeferredConnectionWithoutTouchingIt) {
  auto one = std::make_unique<FakeConnection>(FakeConnection{"1", 3});
  ModelWorker worker;
  worker.pass({one.get()});
  ASSERT_TRUE(worker.rotation().anyDeferred());
  one.reset();  // a worker's connections are gone when it clears the rotation
  worker.rotation().clear();
  EXPECT_FALSE(worker.rotation().anyDeferred());
  worker.pass({});
  EXPECT_EQ(worker.order(), "1||");
}

}  // namespace
}  // namespace epoll_echo
