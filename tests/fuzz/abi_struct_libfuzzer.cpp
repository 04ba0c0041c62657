// abi_struct_libfuzzer.cpp — libFuzzer entry point (clang only, -DEPOLL_ECHO_FUZZ=ON): the same
// steps as the ctest driver, with choices taken from the fuzzer's input, 8 bytes at a time.
#include <cstring>

#include "abi_struct_fuzzer.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace epoll_echo::test;
  static Plugin plugin;  // one load for the whole run; the fuzzer exits the process at the end
  static AbiStructFuzzer fuzzer(plugin.api());
  if (!plugin.loaded() || !fuzzer.setupError().empty()) __builtin_trap();
  std::size_t offset = 0;
  const ChoiceSource next = [&] {
    std::uint64_t value = 0;
    const std::size_t take = std::min<std::size_t>(sizeof value, size - offset);
    if (take > 0) std::memcpy(&value, data + offset, take);
    offset += take;
    return value;
  };
  for (int step = 0; step < 16 && offset < size; ++step) {
    if (!fuzzer.step(next).empty()) __builtin_trap();
  }
  return 0;
}
