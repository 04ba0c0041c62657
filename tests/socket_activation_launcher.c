/* socket_activation_launcher.c — does what a service manager does between fork and exec: puts the
 * inherited socket at fd 3, sets LISTEN_FDS=1 and LISTEN_PID to this (the child's) pid, execs.
 * Usage: socket_activation_launcher FD PROGRAM [ARGS...]. Exit 127 if it cannot exec. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char** argv) {
  char pid[32];
  int fd;
  if (argc < 3) {
    fprintf(stderr, "usage: socket_activation_launcher FD PROGRAM [ARGS...]\n");
    return 127;
  }
  fd = atoi(argv[1]);
  /* dup2 leaves the new fd 3 without FD_CLOEXEC, as the protocol requires. */
  if (fd != 3 && (dup2(fd, 3) != 3 || close(fd) != 0)) {
    perror("socket_activation_launcher: dup2");
    return 127;
  }
  /* LISTEN_PID names the process that may take the fds: after exec, still this pid. */
  snprintf(pid, sizeof pid, "%ld", (long)getpid());
  if (setenv("LISTEN_PID", pid, 1) != 0 || setenv("LISTEN_FDS", "1", 1) != 0 ||
      setenv("LISTEN_FDNAMES", "echo", 1) != 0) {
    perror("socket_activation_launcher: setenv");
    return 127;
  }
  execv(argv[2], argv + 2);
  fprintf(stderr, "socket_activation_launcher: exec %s: %s\n", argv[2], strerror(errno));
  return 127;
}
