/* epoll_echo.h — the stable C ABI of libepoll_echo.so, a Linux TCP echo engine.
 * Pure C99; compiles as C and as C++. Load the plugin with dlopen() and look the
 * functions up with dlsym(); nothing else in the library is exported. */
#ifndef EPOLL_ECHO_H
#define EPOLL_ECHO_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------------------------------
 * Versioning
 *
 * The major number changes when an existing function, struct field or error code changes meaning;
 * a host must refuse a plugin whose major differs from the one it was compiled against. The minor
 * number grows when functions or trailing struct fields are added; an older host keeps working.
 * ---------------------------------------------------------------------------------------------- */
#define EPOLL_ECHO_ABI_MAJOR 1
#define EPOLL_ECHO_ABI_MINOR 6

/* Packs a major/minor pair the way epoll_echo_abi_version() returns it. */
#define EPOLL_ECHO_ABI_PACK(major, minor) ((((uint32_t)(major)) << 16) | ((uint32_t)(minor)&0xffffu))
#define EPOLL_ECHO_ABI_MAJOR_OF(version) ((uint32_t)(version) >> 16)
#define EPOLL_ECHO_ABI_MINOR_OF(version) ((uint32_t)(version)&0xffffu)

/* ------------------------------------------------------------------------------------------------
 * Error codes
 *
 * Every function that can fail returns 0 on success or one of these negative codes. The table is
 * an X-macro so that bindings can generate their own lists: X(NAME, value, description).
 * ---------------------------------------------------------------------------------------------- */
#define EPOLL_ECHO_ERROR_TABLE(X)                                                             \
  X(OK, 0, "success")                                                                         \
  X(EINVAL, -1, "invalid argument")                                                           \
  X(ESIZE, -2, "struct size field too small, too large, or unknown trailing fields not zero") \
  X(ESTATE, -3, "operation not allowed in the engine's current state")                        \
  X(ENOMEM, -4, "out of memory")                                                              \
  X(EADDRESS, -5, "bind address is not a numeric IPv4 or IPv6 address")                       \
  X(EBIND, -6, "cannot create, bind or listen on a listening socket")                         \
  X(ESYSTEM, -7, "a system call or thread creation failed")                                   \
  X(ERANGE, -8, "index out of range")                                                         \
  X(EINTERNAL, -9, "unexpected internal failure")

#define EPOLL_ECHO_ERROR_ENUM_ENTRY(name, value, text) EPOLL_ECHO_##name = (value),
typedef enum epoll_echo_error { EPOLL_ECHO_ERROR_TABLE(EPOLL_ECHO_ERROR_ENUM_ENTRY) } epoll_echo_error_t;
#undef EPOLL_ECHO_ERROR_ENUM_ENTRY

/* ------------------------------------------------------------------------------------------------
 * Structs that cross the boundary
 *
 * Each starts with `size`, which the caller sets to sizeof(the struct as it knows it). The plugin
 * reads min(size, its own size) bytes and treats fields it was not given as zero; a struct larger
 * than the plugin's is accepted only when the unknown tail is all zero (the Linux
 * copy_struct_from_user rule), otherwise EPOLL_ECHO_ESIZE. Output structs are filled up to the
 * caller's size: `size` is set to min(caller's size, plugin's size), the bytes the plugin knows,
 * and any caller bytes beyond those are zeroed. Sizes below 8 or above 4096 are
 * EPOLL_ECHO_ESIZE, and so is a size smaller than the plugin's that ends inside one of its fields
 * (10 for a config: half of `listeners`), since no version of this header declares such a struct.
 * Fields are fixed-width integers with explicit padding: the layout is the same for every compiler
 * and language.
 * ---------------------------------------------------------------------------------------------- */

/* Engine configuration. A zero field means "the default" named on it. */
typedef struct epoll_echo_config {
  uint32_t size;              /* sizeof(epoll_echo_config_t) as the caller knows it */
  uint32_t port;              /* TCP port, 0..65535; 0 = the kernel picks one free port for all
                               * listeners (read it back from epoll_echo_stats_t.port) */
  uint32_t listeners;         /* worker threads, each with its own SO_REUSEPORT listening socket;
                               * 0 = number of CPUs this process may run on; at most 1024. The
                               * plugin calls them workers; the field keeps its first name, which
                               * callers' source code spells */
  uint32_t backlog;           /* listen() backlog per listener; 0 = SOMAXCONN */
  uint32_t high_water_bytes;  /* the most unsent bytes the server holds for one connection: it is
                               * not read while that many wait, until half have drained;
                               * 0 = 128 KiB; at least 4096 */
  uint32_t read_budget_bytes; /* bytes read from one connection per wake-up before its neighbours
                               * get a turn; 0 = 256 KiB; at least 4096 */
  uint32_t accept_budget;     /* connections accepted per listener per wake-up; 0 = 64 */
  uint32_t reserved0;         /* must be zero */
  char bind_address[64];      /* NUL-terminated numeric IPv4 or IPv6 address ("127.0.0.1",
                               * "::1", "[::1]"); an IPv6 address may carry a zone, an interface
                               * name or index ("fe80::1%eth0", "[fe80::1%2]"), which a link-local
                               * address needs; empty = all interfaces (IPv6 dual-stack "::",
                               * or "0.0.0.0" where IPv6 is unavailable) */
  /* ABI 1.3 */
  uint32_t max_connections; /* the most connections the engine holds open at once, over all its
                             * workers, adopted ones included; at the cap accepting pauses (new
                             * clients wait in the kernel's accept queue, never reset) until one
                             * closes; 0 = no cap */
  uint32_t idle_timeout_ms; /* a connection that moved no byte in either direction for this
                             * long is closed, pending echo or not (a client that never reads
                             * times the flush out the same way); checked every eighth of it
                             * (10 ms..1 s), so closed at most that much late; 0 = never */
  /* ABI 1.4 */
  uint32_t threading; /* EPOLL_ECHO_THREADING_*: who runs the event loop; 0 = the engine's own
                       * threads */
  uint32_t backend; /* EPOLL_ECHO_BACKEND_*: how the workers wait for and move bytes;
                     * 0 = EPOLL_ECHO_BACKEND_EPOLL */
  /* ABI 1.5 */
  uint32_t balance; /* EPOLL_ECHO_BALANCE_*: which worker serves a new connection;
                     * 0 = EPOLL_ECHO_BALANCE_KERNEL */
} epoll_echo_config_t;

/* Values of epoll_echo_config_t.threading [1.4]. */
#define EPOLL_ECHO_THREADING_OWN 0u      /* one worker thread per listener, started by start() */
#define EPOLL_ECHO_THREADING_EXTERNAL 1u /* no thread at all: the application's own event loop
                                          * watches epoll_echo_loop_fd() and calls
                                          * epoll_echo_loop_run() (see "External event loop");
                                          * listeners 0 then means 1 */

/* [1.4] Worker backends, for epoll_echo_config_t.backend and epoll_echo_stats_t.backend. */
#define EPOLL_ECHO_BACKEND_EPOLL 0u    /* epoll, one recv and one send per echoed message */
#define EPOLL_ECHO_BACKEND_IO_URING 1u /* io_uring, one ring per worker (Linux 6.1 or later); when the
                                        * kernel refuses io_uring_setup (the io_uring_disabled sysctl,
                                        * a seccomp filter, an old kernel) epoll_echo_start fails with
                                        * EPOLL_ECHO_ESYSTEM and says why in epoll_echo_last_error();
                                        * with EPOLL_ECHO_THREADING_EXTERNAL, create fails with
                                        * EPOLL_ECHO_EINVAL (the external loop drives epoll workers) */
#define EPOLL_ECHO_BACKEND_AUTO 2u     /* io_uring where it can be set up, epoll where it cannot;
                                        * an EPOLL_ECHO_THREADING_EXTERNAL engine serves with epoll */

/* [1.5] Values of epoll_echo_config_t.balance. */
#define EPOLL_ECHO_BALANCE_KERNEL 0u /* the worker whose SO_REUSEPORT listener the kernel's hash of the
                                      * client's address picked: per connection a uniform random
                                      * choice, so some workers hold more connections than others */
#define EPOLL_ECHO_BALANCE_EXACT 1u  /* a worker that accepts a connection while it holds more than
                                      * another hands it to the worker holding the fewest, which
                                      * registers it: at accept time no worker holds more than one
                                      * connection above another (closes can unbalance them again;
                                      * open connections never move). Costs a lock per accepted
                                      * connection and, when handed off, a wake-up of the target */

/* Engine lifecycle states, as reported in epoll_echo_stats_t.state. */
#define EPOLL_ECHO_STATE_CREATED 1u /* created, not yet started */
#define EPOLL_ECHO_STATE_RUNNING 2u /* workers are serving */
#define EPOLL_ECHO_STATE_STOPPED 3u /* stopped: every thread joined, every descriptor closed */
#define EPOLL_ECHO_STATE_PAUSED 4u  /* [1.1] threads joined, sockets kept open for a hand-over */

/* Every state as X(NAME, "name"): NAME completes EPOLL_ECHO_STATE_NAME above, "name" is the word
 * logs and stats lines print for it. Bindings and tools generate their lists from this table
 * instead of copying them; a new state is added here and above. */
#define EPOLL_ECHO_STATE_TABLE(X) \
  X(CREATED, "created")           \
  X(RUNNING, "running")           \
  X(STOPPED, "stopped")           \
  X(PAUSED, "paused")

/* Counters of one worker, or of the whole engine when summed. Every field but `active` only
 * grows; `active` is a gauge, which falls as connections close or are handed over. */
typedef struct epoll_echo_counters {
  uint64_t accepted;            /* connections accepted */
  uint64_t active;              /* connections open now: accepted + adopted - closed - handed_over */
  uint64_t closed;              /* connections closed */
  uint64_t bytes_in;            /* bytes this engine read from clients */
  uint64_t bytes_out;           /* bytes this engine wrote back to clients. An engine that adopted
                                 * connections also writes the bytes its predecessor had read and
                                 * not yet echoed, so its bytes_out can exceed its bytes_in; over
                                 * both engines the sums match */
  uint64_t backpressure_pauses; /* times a connection stopped being read above its high water */
  uint64_t accept_errors;       /* failed accept() calls, EMFILE/ENFILE included */
  uint64_t accept_pauses;       /* times accepting was paused because no fd was available */
  uint64_t syscalls;            /* system calls made by the worker threads, epoll_wait included */
  uint64_t wakeups;             /* epoll_wait calls that returned events */
  /* ABI 1.1 */
  uint64_t adopted;     /* connections taken over from a previous engine (hot-swap) */
  uint64_t handed_over; /* connections given to a next engine; not counted as closed */
  /* ABI 1.2 */
  uint64_t worker_failures; /* workers whose event loop stopped on an unexpected error (epoll_wait
                             * failed): they serve nothing more until stop; the reason is in
                             * epoll_echo_last_error(). Nonzero means: stop the engine */
  /* ABI 1.3 */
  uint64_t accept_cap_pauses; /* times a worker stopped accepting because the engine held
                               * max_connections (clients waited in the accept queue) */
  uint64_t idle_closed;       /* connections closed by idle_timeout_ms (counted in closed too) */
} epoll_echo_counters_t;

/* What a counter measures, as a metrics system names it. */
#define EPOLL_ECHO_METRIC_COUNTER 1u /* only grows */
#define EPOLL_ECHO_METRIC_GAUGE 2u   /* rises and falls */

/* Every field of epoll_echo_counters_t in declaration order, as X(field, KIND, minor): KIND
 * completes EPOLL_ECHO_METRIC_KIND, minor is the ABI minor that added the field. Bindings,
 * exporters and the plugin itself generate their per-counter code from this table; a new counter
 * is added at the end of the struct and here. */
#define EPOLL_ECHO_COUNTER_TABLE(X)  \
  X(accepted, COUNTER, 0)            \
  X(active, GAUGE, 0)                \
  X(closed, COUNTER, 0)              \
  X(bytes_in, COUNTER, 0)            \
  X(bytes_out, COUNTER, 0)           \
  X(backpressure_pauses, COUNTER, 0) \
  X(accept_errors, COUNTER, 0)       \
  X(accept_pauses, COUNTER, 0)       \
  X(syscalls, COUNTER, 0)            \
  X(wakeups, COUNTER, 0)             \
  X(adopted, COUNTER, 1)             \
  X(handed_over, COUNTER, 1)         \
  X(worker_failures, COUNTER, 2)     \
  X(accept_cap_pauses, COUNTER, 3)   \
  X(idle_closed, COUNTER, 3)

/* [1.5] What only the io_uring backend counts: all zero under epoll. The struct is the last field
 * of both stats structs, so it can grow at its end (epoll_echo_counters_t cannot: it sits inside
 * epoll_echo_stats_t ahead of that struct's 1.4 fields). Every field only grows. */
typedef struct epoll_echo_uring_counters {
  uint64_t recv_buffer_waits;    /* times a connection's recv found every provided buffer taken
                                  * (ENOBUFS: they hold echoes still being sent) and was armed
                                  * again on the next loop pass, its bytes waiting that long in
                                  * the socket. A steady rise means more connections send at once
                                  * than a worker has buffers (256) */
  uint64_t completion_overflows; /* loop passes after which completions had spilled past the
                                  * completion queue into the kernel's overflow list (about 4,000
                                  * connections busy at once on one worker): nothing is lost, the
                                  * kernel hands them over at the next io_uring_enter, at the cost
                                  * of an allocation each. A completion the kernel could not keep
                                  * fails the worker (worker_failures, epoll_echo_last_error) */
} epoll_echo_uring_counters_t;

/* Every field of epoll_echo_uring_counters_t in declaration order, as EPOLL_ECHO_COUNTER_TABLE
 * lists those of epoll_echo_counters_t: X(field, KIND, minor). */
#define EPOLL_ECHO_URING_COUNTER_TABLE(X) \
  X(recv_buffer_waits, COUNTER, 5)        \
  X(completion_overflows, COUNTER, 5)

/* Engine statistics: a consistent-enough snapshot (each counter is read atomically, the set is
 * not read at one instant). */
typedef struct epoll_echo_stats {
  uint32_t size;               /* sizeof(epoll_echo_stats_t) as the caller knows it */
  uint32_t state;              /* EPOLL_ECHO_STATE_* */
  uint32_t port;               /* the bound TCP port (the kernel's choice when configured as 0); 0 before start */
  uint32_t listeners;          /* worker threads configured */
  epoll_echo_counters_t total; /* summed over every worker */
  /* ABI 1.4 */
  uint32_t backend;   /* the EPOLL_ECHO_BACKEND_* serving since start (EPOLL or IO_URING, never
                       * AUTO); before start, the configured one */
  uint32_t reserved1; /* zero */
  /* ABI 1.5 */
  epoll_echo_uring_counters_t uring; /* summed over every worker */
} epoll_echo_stats_t;

/* Statistics of one worker. */
typedef struct epoll_echo_worker_stats {
  uint32_t size;  /* sizeof(epoll_echo_worker_stats_t) as the caller knows it */
  uint32_t index; /* the worker's index, 0..listeners-1 */
  epoll_echo_counters_t counters;
  /* ABI 1.5 */
  epoll_echo_uring_counters_t uring;
} epoll_echo_worker_stats_t;

/* An engine. Opaque; owned by the caller between epoll_echo_create() and epoll_echo_destroy(). */
typedef struct epoll_echo_engine epoll_echo_engine_t;

/* ------------------------------------------------------------------------------------------------
 * Functions
 *
 * Thread rules: [any-thread] functions may be called from any thread at any time, concurrently.
 * [control] functions take an engine and may be called from any thread, but the plugin serialises
 * them per engine: a second control call waits for the first. Engines are independent of each
 * other; several may run in one process. No function throws, aborts, exits, or touches signal
 * dispositions; the plugin never calls back into the host.
 *
 * A handle belongs to the loaded copy of the plugin that created it, in the process that created
 * it. A hot-swap host holds two copies at once: each copy refuses the other's engines (EINVAL)
 * without touching them. After fork() the child has the parent's memory, sockets and eventfds
 * but none of its threads: there every call on an inherited engine returns ESTATE and touches
 * nothing, destroy frees nothing, and the parent's engine serves on. The child's copies of the
 * descriptors are close-on-exec, so they go when the child execs or exits; until then they keep
 * the parent's sockets open (a listening port outlives the parent's stop). In both cases
 * epoll_echo_last_error() returns a message saying why instead of the engine's record.
 * ---------------------------------------------------------------------------------------------- */

/* Returns EPOLL_ECHO_ABI_PACK(major, minor) of the loaded plugin. [any-thread] */
uint32_t epoll_echo_abi_version(void);

/* Returns the plugin's version ("1.0.0") and its build id (the hex GNU build-id of the loaded
 * file, or "unknown"): static strings, valid until the plugin is unloaded. [any-thread] */
const char* epoll_echo_version(void);
const char* epoll_echo_build_id(void);

/* Returns a static description of an error code ("unknown error" for codes not in the table),
 * valid until the plugin is unloaded. Never NULL. [any-thread] */
const char* epoll_echo_strerror(int code);

/* Returns the code's symbolic name ("EPOLL_ECHO_EBIND"), or "EPOLL_ECHO_UNKNOWN". [any-thread] */
const char* epoll_echo_error_name(int code);

/* Validates `config` and creates a stopped engine; nothing is bound and no thread starts yet.
 * On success stores the engine in *engine_out and returns 0. On failure returns a code, leaves
 * *engine_out NULL and, when `detail` is not NULL, writes a NUL-terminated explanation of at most
 * detail_size bytes ("listeners 5000 is above the maximum 1024"). The config is copied: the
 * caller's struct may be freed after the call. [any-thread] */
int epoll_echo_create(const epoll_echo_config_t* config, epoll_echo_engine_t** engine_out, char* detail,
                      size_t detail_size);

/* Binds every listener, then starts one worker thread per listener (none in external mode
 * [1.4]: the caller's loop serves them through loop_run()). Returns 0 when all are serving. On failure (EBIND: port in use, permission, address not on this host; ESYSTEM;
 * ENOMEM) nothing is left running or open, the engine stays CREATED and
 * epoll_echo_last_error() explains ("bind 127.0.0.1:8080: Address already in use"). Only a
 * CREATED engine can be started (ESTATE otherwise): an engine runs once. Worker threads block
 * no signals of their own: they inherit the calling thread's signal mask. [control] */
int epoll_echo_start(epoll_echo_engine_t* engine);

/* Wakes every worker, joins every thread the engine started and closes every descriptor it holds:
 * its sockets, and each worker's epoll instance and eventfd. After it returns, no plugin code runs
 * for this engine and it holds only memory: the counters, which stats() still reports.
 * Idempotent: stopping a CREATED, PAUSED or STOPPED engine returns 0 and moves it to STOPPED.
 * [control] */
int epoll_echo_stop(epoll_echo_engine_t* engine);

/* Stops the engine if it runs, then frees it. NULL, another loaded copy's engine and, in a forked
 * child, the parent's engine are ignored. The engine must not be used after, and no other call on
 * it may be in progress. [control] */
void epoll_echo_destroy(epoll_echo_engine_t* engine);

/* Fills *stats (up to stats->size bytes, which the caller sets) with the engine's counters summed
 * over its workers. Counters survive stop. Returns 0, EINVAL for NULL, ESIZE for a bad size.
 * [any-thread] between create and destroy. */
int epoll_echo_stats(const epoll_echo_engine_t* engine, epoll_echo_stats_t* stats);

/* Fills *stats for worker `index` (0..listeners-1), or returns ERANGE. [any-thread] */
int epoll_echo_worker_stats(const epoll_echo_engine_t* engine, uint32_t index, epoll_echo_worker_stats_t* stats);

/* Copies the engine's most recent error detail (empty when there was none) into buffer as a
 * NUL-terminated string truncated to buffer_size bytes; returns the full length of the message
 * (like snprintf), or EINVAL. Every call on an engine that fails records its own message there,
 * from any thread, [any-thread] calls included (stats with a NULL struct, worker_stats out of
 * range); a successful call leaves the message as it was, so read it right after the failure.
 * The only failure that records nothing is this function's own (buffer NULL with a non-zero
 * buffer_size), which must not replace the message being read. The copy is taken under a lock:
 * it cannot race a control call. [any-thread] */
int epoll_echo_last_error(const epoll_echo_engine_t* engine, char* buffer, size_t buffer_size);

/* ------------------------------------------------------------------------------------------------
 * Hot-swap hand-over [ABI 1.1]
 *
 * Moves a running engine's listening sockets and live connections, with the bytes it has read
 * but not yet echoed, to a new engine, possibly of another build of the plugin, in one process:
 *
 *   old: epoll_echo_pause()                      workers joined, every socket kept open
 *   for each listener i:   epoll_echo_export_listener(old, i)   -> fd (still owned by old)
 *                          epoll_echo_import_listener(new, fd)  new keeps its own dup
 *   for each connection i: epoll_echo_export_connection(old, i) -> fd, flags, pending bytes
 *                          epoll_echo_import_connection(new, ...)
 *   new: epoll_echo_start()                      serves the adopted sockets; binds nothing
 *   old: epoll_echo_handover_complete(); epoll_echo_destroy()   closes only old's copies
 *
 * On any failure before the new engine starts: destroy the new engine (it closes its dups) and
 * epoll_echo_resume(old); nothing was lost, since a socket stays open while any copy of it is.
 * Listening sockets are never closed and reopened: closing a SO_REUSEPORT listener resets the
 * connections waiting in its accept queue. Clients see a pause, never a reset.
 *
 * Ahead of the pause [ABI 1.5, both engines]: to shorten it, pause the old engine only to dup()
 * every exported connection's descriptor, resume it, and import the copies (no pending bytes,
 * no flags) into the new engine while the old one serves on; then, in the real pause, export
 * again, epoll_echo_drop_connection() the copies whose socket the old engine has closed since,
 * drop and import again those with pending bytes or flags, import the ones accepted since, and
 * start the new engine. Close your copies once the hand-over is complete or given up.
 * ---------------------------------------------------------------------------------------------- */

/* A connection exported for a hand-over. */
#define EPOLL_ECHO_CONNECTION_PEER_CLOSED 1u /* the client's FIN was read: echo pending, then close */

typedef struct epoll_echo_connection_state {
  uint32_t size;          /* sizeof(epoll_echo_connection_state_t) as the caller knows it */
  int32_t fd;             /* borrowed: still owned by the exporting engine */
  uint32_t worker;        /* index of the worker that served it */
  uint32_t flags;         /* EPOLL_ECHO_CONNECTION_* */
  uint64_t pending_bytes; /* bytes read from the client and not yet echoed to it */
} epoll_echo_connection_state_t;

/* Stops and joins the workers of a RUNNING engine but keeps every socket and every pending byte;
 * the engine becomes PAUSED. While paused, new connections wait in the kernel's accept queues
 * and client bytes in the socket buffers. ESTATE unless RUNNING. [control] */
int epoll_echo_pause(epoll_echo_engine_t* engine);

/* Restarts the workers of a PAUSED engine on the sockets it kept: the rollback of a failed
 * hand-over, or [1.6] the first run of an engine brought up by epoll_echo_start_paused().
 * ESTATE unless PAUSED; ESYSTEM if a worker cannot start (the workers started before it are
 * joined again: the engine then stays PAUSED with no thread, and may be resumed again or
 * stopped; an engine brought up paused counts as having run from the first resume() on, failed
 * or not). [control] */
int epoll_echo_resume(epoll_echo_engine_t* engine);

/* Number of listening sockets and of live connections of a PAUSED engine (ESTATE otherwise).
 * [control] */
int epoll_echo_handover_counts(const epoll_echo_engine_t* engine, uint32_t* listeners, uint32_t* connections);

/* Stores in *fd the listening socket `index` of a PAUSED engine. The descriptor stays owned by the
 * engine: it is closed by epoll_echo_stop()/destroy(); the importer duplicates it. ERANGE, ESTATE.
 * [control] */
int epoll_echo_export_listener(const epoll_echo_engine_t* engine, uint32_t index, int32_t* fd);

/* Fills *state (caller sets state->size) for connection `index` of a PAUSED engine. When
 * `pending` is not NULL, also copies the connection's pending bytes into it; if pending_capacity
 * is smaller than state->pending_bytes nothing is copied and EINVAL is returned, with *state
 * filled so the caller can retry with a larger buffer. With `pending` NULL only *state is
 * filled. The engine keeps owning the descriptor. Since ABI 1.5 the caller may keep a dup of it
 * and resume() the engine: an exported connection is taken out of its worker's epoll set before
 * the engine closes it, so a copy held elsewhere cannot wake the engine for a connection it has
 * closed (earlier engines must not be resumed while such a copy is open). ERANGE, ESTATE, ESIZE.
 * [control] */
int epoll_echo_export_connection(const epoll_echo_engine_t* engine, uint32_t index,
                                 epoll_echo_connection_state_t* state, void* pending, size_t pending_capacity);

/* Ends a successful hand-over: the PAUSED engine closes its copies of every descriptor (the
 * sockets live on in the engine that imported them), counts its connections as handed_over, not
 * closed, and becomes STOPPED. ESTATE unless PAUSED. [control] */
int epoll_echo_handover_complete(epoll_echo_engine_t* engine);

/* Gives a CREATED engine a listening socket to serve instead of binding its own: the engine
 * duplicates `fd` (close-on-exec) and the caller keeps ownership of `fd`. An engine with imported
 * listeners binds nothing (config.port and bind_address are ignored) and runs
 * max(config.listeners, imported count) workers; worker i serves imported socket i % count, so
 * one inherited socket (systemd socket activation) can feed every worker.
 * EINVAL when fd is not a listening TCP socket, or is one this engine has already imported
 * through any descriptor (dup() included); ESTATE unless CREATED. [control] */
int epoll_echo_import_listener(epoll_echo_engine_t* engine, int32_t fd);

/* Gives a CREATED engine a live connection with the bytes still to be echoed to it (copied;
 * `pending` may be NULL when state->pending_bytes is 0). The engine duplicates state->fd; the
 * caller keeps ownership of its descriptor. The connection goes to worker
 * state->worker modulo the worker count. Since ABI 1.6 an engine brought up by
 * epoll_echo_start_paused() takes connections too until its first resume(): its worker adopts
 * the duplicate at once (registered, not read until resume()). EINVAL for:
 *  - a descriptor that is not a connected TCP socket: unbound, only bound, listening, or still
 *    connecting (a socket whose connection failed and holds the error, say one its client reset
 *    during a hand-over, is taken: its worker closes it at once, and the hand-over goes on);
 *  - a socket this engine has already imported, through any descriptor (dup() included): two
 *    workers reading one socket would reorder its echo;
 *  - flags bits this plugin does not know (EPOLL_ECHO_CONNECTION_* only);
 *  - pending_bytes above this engine's high_water_bytes + read_budget_bytes, the most an engine
 *    ever holds for one connection: engines configured alike always hand over within it.
 * ESTATE unless CREATED or [1.6] PAUSED by start_paused() and not resumed since, even by a
 * resume() that failed (an engine that has run takes no connection), ENOMEM. [control] */
int epoll_echo_import_connection(epoll_echo_engine_t* engine, const epoll_echo_connection_state_t* state,
                                 const void* pending);

/* Takes back a connection imported into a CREATED engine [ABI 1.5]: the engine closes its
 * duplicate and will not serve it; the caller's descriptor is untouched. `fd` is any descriptor
 * of the socket (the one passed to import_connection, or a dup of it). This lets a host import
 * connections ahead of a hand-over, while their exporter still serves them, and in the pause
 * drop those the exporter closed meanwhile, or drop and import again one whose pending bytes or
 * flags changed (an import is refused for a socket the engine holds). Since ABI 1.6 an engine
 * brought up by start_paused() drops too until its first resume(): the connection leaves its
 * worker's table and epoll set, the engine's duplicate is closed, and it counts as handed_over
 * (its import counted it adopted). EINVAL when `fd` is not an open descriptor or not a
 * connection this engine holds (never imported, or already dropped: a second drop of one
 * socket fails); ESTATE unless CREATED or PAUSED by start_paused() and not resumed since, even
 * by a resume() that failed. [control] */
int epoll_echo_drop_connection(epoll_echo_engine_t* engine, int32_t fd);

/* Does all of epoll_echo_start() but run the workers [ABI 1.6]: binds or takes the imported
 * listeners, creates every worker with its epoll instance and eventfd, gives each imported
 * connection to its worker (registered in its epoll set; io_uring arms nothing), and leaves the
 * engine PAUSED with no thread started. epoll_echo_resume() then starts the threads (external
 * mode: the loop fd exists from here on and stays quiet until resume). The point is a hand-over
 * whose pause holds only the threads' start: start_paused the new engine on the connections sent
 * ahead while their exporter still serves them, then in the pause drop and import the changes
 * (both accept an engine brought up paused, until it resumes) and resume. Registering a socket
 * the exporter still reads is sound: no one waits on the new engine until resume, and a byte the exporter leaves unread
 * either arrived before the registration (reported by it) or after (an edge in both engines), so
 * at worst a worker wakes once to find nothing. A paused engine with its own listeners (nothing
 * imported) already accepts into the kernel's queues: clients connect and wait until resume, and
 * a stop without resume resets them, as for any paused engine. stop() and destroy() without
 * resume close everything; no thread ever ran. Failures, and the state afterwards, as start();
 * ESTATE unless CREATED. [control] */
int epoll_echo_start_paused(epoll_echo_engine_t* engine);

/* ------------------------------------------------------------------------------------------------
 * External event loop [ABI 1.4]
 *
 * An engine created with threading = EPOLL_ECHO_THREADING_EXTERNAL starts no thread: start()
 * binds (or imports) and registers everything, and the application's own loop (poll(), epoll,
 * Boost.Asio, libuv, Qt...) serves it, the way libcurl's multi_socket API or c-ares are driven:
 *
 *   epoll_echo_start(engine);
 *   epoll_echo_loop_fd(engine, &fd);              watch fd for readability in your loop
 *   loop: wait until fd is readable or next_timeout_ms has passed, then
 *         epoll_echo_loop_run(engine, &next_timeout_ms);
 *   take fd out of your loop; epoll_echo_stop(engine);   stop closes fd
 *
 * The engine works exactly as with its own threads (byte-exact echo, backpressure and its memory
 * bound, the read and accept budgets, half-close, EMFILE back-off, idle timeout, max_connections,
 * stats, the hand-over), one step at a time on the caller's thread. Each worker keeps its own
 * epoll instance; the loop fd is one more epoll instance that holds them all, so an engine with
 * any number of listeners is one fd to watch.
 *
 * When the caller stops calling loop_run(), nothing is lost and nothing is refused: new clients
 * wait in the kernel's accept queue, bytes wait in the socket buffers, and a client that keeps
 * sending is held back by TCP flow control. Everything is served when loop_run() is called again.
 * While the engine is PAUSED the fd never becomes readable, so a host may keep watching it across
 * a failed hand-over and its resume().
 *
 * Thread rules: [loop] functions may be called by one thread at a time, any thread (the one
 * running the application's loop); a second thread calling while the first is inside is refused
 * with ESTATE rather than made to wait. [control] functions, stats and destroy may be called from
 * the loop thread between two loop_run() calls. From another thread a [control] call waits for a
 * loop_run() in progress to return (which never blocks); [any-thread] calls never wait; destroy
 * still needs every other call on the engine to have returned.
 * ---------------------------------------------------------------------------------------------- */

/* Stores in *fd the engine's loop descriptor: it becomes readable (POLLIN, EPOLLIN) whenever
 * loop_run() has work to do, and stays readable until that work is done (level-triggered). It is
 * created by start() and closed by stop() and handover_complete(); it stays the same descriptor
 * in between, pause and resume included. The engine owns it: never read, close or dup it; remove
 * it from your loop before stop(). EINVAL for NULL; ESTATE unless the engine was created with
 * EPOLL_ECHO_THREADING_EXTERNAL and is RUNNING or PAUSED. [any-thread] */
int epoll_echo_loop_fd(const epoll_echo_engine_t* engine, int32_t* fd);

/* Does the engine's ready work without blocking: accepts, reads, echoes and closes within the
 * same fairness budgets as a worker thread's pass over its events (a busy connection cannot
 * monopolise one call), then stores in *next_timeout_ms when it must be called again even if the
 * loop fd stays quiet: -1, only when the fd is readable; 0, at once (a connection's read budget
 * ran out with data left, or the accept budget with clients queued); > 0, after that many
 * milliseconds (the EMFILE/ENFILE accept back-off, the next idle_timeout_ms sweep). Calling it
 * early or when nothing is ready is harmless. Returns 0; EINVAL for NULL; ESTATE when the engine
 * does not run in external mode, is not RUNNING (before start, paused, after stop), or another
 * thread is inside loop_run() for this engine; ESYSTEM when a worker's epoll_wait failed (the
 * worker serves nothing more, worker_failures counts it, last_error() says why; stop the engine).
 * *next_timeout_ms is written on success only. [loop] */
int epoll_echo_loop_run(epoll_echo_engine_t* engine, int32_t* next_timeout_ms);

/* ------------------------------------------------------------------------------------------------
 * Every exported function as X(name, minor): its name without the epoll_echo_ prefix and the ABI
 * minor that added it. A host that looks the functions up with dlsym() can generate its table of
 * pointers (and skip the functions its plugin's minor does not have) instead of copying the list.
 * ---------------------------------------------------------------------------------------------- */
#define EPOLL_ECHO_FUNCTION_TABLE(X) \
  X(abi_version, 0)                  \
  X(version, 0)                      \
  X(build_id, 0)                     \
  X(strerror, 0)                     \
  X(error_name, 0)                   \
  X(create, 0)                       \
  X(start, 0)                        \
  X(stop, 0)                         \
  X(destroy, 0)                      \
  X(stats, 0)                        \
  X(worker_stats, 0)                 \
  X(last_error, 0)                   \
  X(pause, 1)                        \
  X(resume, 1)                       \
  X(handover_counts, 1)              \
  X(export_listener, 1)              \
  X(export_connection, 1)            \
  X(handover_complete, 1)            \
  X(import_listener, 1)              \
  X(import_connection, 1)            \
  X(loop_fd, 4)                      \
  X(loop_run, 4)                     \
  X(drop_connection, 5)              \
  X(start_paused, 6)

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* EPOLL_ECHO_H */
