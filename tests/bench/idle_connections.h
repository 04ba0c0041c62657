// idle_connections.h — idle mode: what N open, idle connections cost the server in resident memory.
#pragma once

#include "bench_options.h"
#include "bench_report.h"
#include "echo_pattern.h"

namespace epoll_echo::bench {

// Samples the server's RSS, opens options.connections connections, echoes one verified message on
// each, waits (bounded) until the server's RSS is stable, samples it again, closes everything.
// Throws when the file-descriptor limit cannot hold the connections.
BenchReport runIdle(const BenchOptions& options, const EchoPattern& pattern);

}  // namespace epoll_echo::bench
