// elf_check.h — what the dynamic loader will map, checked before it maps it: a truncated or foreign
// ELF file makes dlopen() touch pages past the end of the file (SIGBUS in the host) or fail obscurely.
#pragma once

#include <string>
#include <string_view>

namespace epoll_echo::host {

// Checks that `file` (a whole plugin file's bytes) is a shared library this process can map: ELF
// magic, this process's class (64/32-bit), byte order and machine, type ET_DYN, program headers
// inside the file, every PT_LOAD and the PT_DYNAMIC segment's file bytes inside the file. Returns
// "" when it can be handed to dlopen(), otherwise one sentence that follows the file's name:
// "is truncated: its segment 3 (PT_LOAD) ends at byte 82520, the file has 30000 bytes".
// Section headers are not checked: the loader never reads them. [thread-safe]
std::string findElfProblem(std::string_view file);

}  // namespace epoll_echo::host
