// abi_struct_fuzz.cpp — the deterministic fuzz driver run by ctest: a fixed seed and a bounded
// number of steps (seconds), so any failure replays exactly. The seed can be overridden with
// EPOLL_ECHO_FUZZ_SEED and the step count with EPOLL_ECHO_FUZZ_STEPS for longer local runs.
#include <gtest/gtest.h>

#include <cstdlib>
#include <random>

#include "abi_struct_fuzzer.h"
#include "support/echo_traffic.h"

namespace epoll_echo::test {
namespace {

constexpr std::uint64_t kDefaultSeed = 0xab15eed;
constexpr std::uint64_t kDefaultSteps = kSanitizedBuild ? 20000 : 100000;

std::uint64_t fromEnvironment(const char* name, std::uint64_t fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? std::strtoull(value, nullptr, 0) : fallback;
}

TEST(AbiStructFuzzTest, AnyStructSizeAndContentGetsADocumentedAnswer) {
  Plugin plugin;
  ASSERT_TRUE(plugin.loaded()) << plugin.error();
  AbiStructFuzzer fuzzer(plugin.api());
  ASSERT_EQ(fuzzer.setupError(), "");
  const std::uint64_t seed = fromEnvironment("EPOLL_ECHO_FUZZ_SEED", kDefaultSeed);
  const std::uint64_t steps = fromEnvironment("EPOLL_ECHO_FUZZ_STEPS", kDefaultSteps);
  std::mt19937_64 random(seed);
  const ChoiceSource next = [&random] { return random(); };
  for (std::uint64_t i = 0; i < steps; ++i) {
    const std::string failure = fuzzer.step(next);
    ASSERT_EQ(failure, "") << "step " << i << " of seed " << seed;
  }
  RecordProperty("fuzz_steps", static_cast<int>(steps));
}

}  // namespace
}  // namespace epoll_echo::test
