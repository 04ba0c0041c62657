// api_header_check.cpp — compiles the ABI header as strict C++ (-std=c++11/17 -pedantic -Werror)
// and records the struct layout that C++ compilers see.
#include <epoll_echo.h>

#include "api_header_check.h"

#include "api_header_check.inc"
