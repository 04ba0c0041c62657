/* seccomp_launcher.c — runs a program where io_uring is refused, as under Docker's default seccomp
 * profile: installs a filter that fails io_uring_setup with the given errno (every other system
 * call is allowed), then execs. Usage: seccomp_launcher ERRNO PROGRAM [ARGS...]. Exit 127 if it
 * cannot install the filter or exec. */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__)
#define LAUNCHER_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define LAUNCHER_AUDIT_ARCH AUDIT_ARCH_AARCH64
#else
#error "seccomp_launcher: add this architecture's AUDIT_ARCH_* value"
#endif

int main(int argc, char** argv) {
  unsigned error;
  if (argc < 3) {
    fprintf(stderr, "usage: seccomp_launcher ERRNO PROGRAM [ARGS...]\n");
    return 127;
  }
  error = (unsigned)atoi(argv[1]) & SECCOMP_RET_DATA;
  {
    /* A call from another architecture's ABI is let through: the program under test uses ours. */
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, LAUNCHER_AUDIT_ARCH, 0, 3),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | error),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog program = {(unsigned short)(sizeof filter / sizeof filter[0]), filter};
    /* Without new privileges an unprivileged process may install a filter; it survives exec. */
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program) != 0) {
      perror("seccomp_launcher: prctl");
      return 127;
    }
  }
  execv(argv[2], argv + 2);
  perror("seccomp_launcher: execv");
  return 127;
}
