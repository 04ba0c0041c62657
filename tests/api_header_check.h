/* api_header_check.h — the layout probe that api_header_check.c and .cpp compile once per language
 * standard, so api_header_test can compare what C and C++ compilers make of the ABI header. */
#ifndef EPOLL_ECHO_API_HEADER_CHECK_H
#define EPOLL_ECHO_API_HEADER_CHECK_H

#include <stddef.h>

/* Room for the values a probe writes; their order is fixed by api_header_check.inc. */
#define EPOLL_ECHO_LAYOUT_CAPACITY 96

#ifdef __cplusplus
extern "C" {
#endif

/* Each writes sizes and offsets (at most capacity) into values and returns how many it has
 * (a mismatch means the probes were compiled from different .inc files). */
size_t epollEchoLayoutC99(size_t* values, size_t capacity);
size_t epollEchoLayoutC11(size_t* values, size_t capacity);
size_t epollEchoLayoutCxx11(size_t* values, size_t capacity);
size_t epollEchoLayoutCxx17(size_t* values, size_t capacity);

#ifdef __cplusplus
}
#endif

#endif
