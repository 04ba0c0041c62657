/* hot_swap_not_a_plugin.c — a valid shared library without the epoll-echo API: a hot-swap must
 * reject it (no epoll_echo_abi_version) and keep the old engine serving. */
int hot_swap_not_a_plugin(void);
int hot_swap_not_a_plugin(void) { return 42; }
