# cmake --install: epoll-server in bin/, the plugin in lib/epoll_echo/ (where the host looks), the
# header, a relocatable CMake package (epoll_echo::api, epoll_echo_PLUGIN_PATH) and epoll_echo.pc.
include(CMakePackageConfigHelpers)

set(EPOLL_ECHO_INSTALL_PLUGINDIR "${CMAKE_INSTALL_LIBDIR}/epoll_echo")
set(EPOLL_ECHO_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/epoll_echo")

install(TARGETS epoll-server RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
# A plugin, not a library to link: no namelink games, no export, its own folder.
install(TARGETS epoll_echo LIBRARY DESTINATION ${EPOLL_ECHO_INSTALL_PLUGINDIR})
install(FILES api/epoll_echo.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

set_target_properties(epoll_echo_api PROPERTIES EXPORT_NAME api)
install(TARGETS epoll_echo_api EXPORT epoll_echoTargets)
install(EXPORT epoll_echoTargets NAMESPACE epoll_echo:: DESTINATION ${EPOLL_ECHO_INSTALL_CMAKEDIR})
configure_package_config_file(cmake/install/epoll_echoConfig.cmake.in
  ${PROJECT_BINARY_DIR}/install/epoll_echoConfig.cmake
  INSTALL_DESTINATION ${EPOLL_ECHO_INSTALL_CMAKEDIR}
  PATH_VARS EPOLL_ECHO_INSTALL_PLUGINDIR CMAKE_INSTALL_INCLUDEDIR)
# Same major = compatible: the C ABI promises nothing across majors.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/install/epoll_echoConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)
install(FILES ${PROJECT_BINARY_DIR}/install/epoll_echoConfig.cmake
  ${PROJECT_BINARY_DIR}/install/epoll_echoConfigVersion.cmake
  DESTINATION ${EPOLL_ECHO_INSTALL_CMAKEDIR})

# pkg-config: the prefix is computed from the .pc file's own folder (${pcfiledir}, pkgconf and
# pkg-config both know it), so a moved prefix keeps working like the CMake package does.
file(RELATIVE_PATH EPOLL_ECHO_PC_TO_PREFIX "${CMAKE_INSTALL_FULL_LIBDIR}/pkgconfig" "${CMAKE_INSTALL_PREFIX}")
string(REGEX REPLACE "/$" "" EPOLL_ECHO_PC_TO_PREFIX "${EPOLL_ECHO_PC_TO_PREFIX}")
configure_file(cmake/install/epoll_echo.pc.in ${PROJECT_BINARY_DIR}/install/epoll_echo.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/install/epoll_echo.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

# README.md beside docs/, as in the source tree, so that the README's links work where it is read;
# every page of docs/, its figure and the examples (a page added later is installed without a change here).
install(FILES README.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(DIRECTORY docs/ DESTINATION ${CMAKE_INSTALL_DOCDIR}/docs
  FILES_MATCHING PATTERN "*.md" PATTERN "*.svg" PATTERN "*.c" PATTERN "*.cpp")
install(FILES docs/epoll-server.1 DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
