// abi_struct_fuzzer.h — one fuzz step against the C ABI's sized structs: create, stats,
// worker_stats, export_connection, import_connection and last_error get structs of any declared
// size and content, in buffers really that large, and must answer with a documented code only.
// Shared by the deterministic ctest driver (g++) and the optional libFuzzer entry point (clang).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "support/plugin.h"

namespace epoll_echo::test {

// Where the fuzzer's choices come from: a seeded generator or libFuzzer's input bytes.
using ChoiceSource = std::function<std::uint64_t()>;

// Owns the engines the steps run against (a running one, a paused one holding one connection for
// the export calls, a created one that receives imports) and the client socket that keeps the
// paused engine's connection alive. Use from one thread.
class AbiStructFuzzer {
 public:
  explicit AbiStructFuzzer(const PluginApi& api);
  ~AbiStructFuzzer();
  AbiStructFuzzer(const AbiStructFuzzer&) = delete;
  AbiStructFuzzer& operator=(const AbiStructFuzzer&) = delete;

  // "" when the fixture could be built, otherwise why not.
  const std::string& setupError() const { return setupError_; }

  // Runs one randomly chosen call; "" or a description of the broken promise.
  std::string step(const ChoiceSource& next);

 private:
  std::string fuzzCreate(const ChoiceSource& next);
  std::string fuzzStats(const ChoiceSource& next);
  std::string fuzzWorkerStats(const ChoiceSource& next);
  std::string fuzzExportConnection(const ChoiceSource& next);
  std::string fuzzImportConnection(const ChoiceSource& next);
  std::string fuzzLastError(const ChoiceSource& next);
  epoll_echo_engine_t* pickEngine(const ChoiceSource& next);

  PluginApi api_;
  std::string setupError_;
  std::unique_ptr<TestEngine> running_;
  std::unique_ptr<TestEngine> paused_;
  std::unique_ptr<TestEngine> importer_;
  UniqueFd client_;
  std::unique_ptr<unsigned char[]> fakeEngine_;  // random bytes where an engine should be
  std::uint64_t imports_ = 0;
};

}  // namespace epoll_echo::test
