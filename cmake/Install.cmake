# Install rules: the per-layer static libraries the library API needs, an INTERFACE target
# modelmgr::modelmgr over them in an exported CMake package (modelmgrConfig.cmake), a modelmgr.pc for
# pkg-config, the public headers and the binary. Included from the top-level CMakeLists.txt after src/.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

# The layers behind the aggregate library, in link order (a library before the ones it uses).
set(modelmgr_installed_layers catalog manager transfer hub net formats cache util)
set(modelmgr_install_targets modelmgr modelmgr_settings)
foreach(layer ${modelmgr_installed_layers})
  # The build tree uses include/ and src/ (private headers); installed consumers see only the public
  # headers, and an exported target must not carry source-tree paths.
  set_property(TARGET modelmgr_${layer} PROPERTY INTERFACE_INCLUDE_DIRECTORIES
    "$<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>"
    "$<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/src>"
    "$<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>")
  list(APPEND modelmgr_install_targets modelmgr_${layer})
endforeach()

# Components: runtime (the binary, the catalog; also man pages and completions, cmake/Package.cmake) and dev
# (libraries, headers, CMake and pkg-config files). `cmake --install` installs both; the .deb only runtime.
install(TARGETS ${modelmgr_install_targets} EXPORT modelmgrTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS modelmgr_cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT runtime)
# The built-in model catalog, readable (the library carries a compiled-in copy of the same file).
install(FILES ${PROJECT_SOURCE_DIR}/data/catalog.toml DESTINATION ${CMAKE_INSTALL_DATADIR}/modelmgr COMPONENT runtime)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/modelmgr DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} COMPONENT dev
  FILES_MATCHING PATTERN "*.hpp")

set(modelmgr_cmake_dir ${CMAKE_INSTALL_LIBDIR}/cmake/modelmgr)
install(EXPORT modelmgrTargets NAMESPACE modelmgr:: DESTINATION ${modelmgr_cmake_dir} COMPONENT dev)
file(WRITE ${PROJECT_BINARY_DIR}/modelmgrConfig.cmake [=[
# modelmgr: link modelmgr::modelmgr (the static layer libraries and their system dependencies).
include(CMakeFindDependencyMacro)
find_dependency(Threads)
find_dependency(OpenSSL)
find_dependency(CURL)
find_dependency(nlohmann_json)
find_dependency(fmt)
find_dependency(yaml-cpp)
find_dependency(tomlplusplus)
find_dependency(Protobuf)
find_dependency(ONNX)
include(${CMAKE_CURRENT_LIST_DIR}/modelmgrTargets.cmake)
]=])
write_basic_package_version_file(${PROJECT_BINARY_DIR}/modelmgrConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/modelmgrConfig.cmake ${PROJECT_BINARY_DIR}/modelmgrConfigVersion.cmake
  DESTINATION ${modelmgr_cmake_dir} COMPONENT dev)

# pkg-config: static libraries, so every layer and every system dependency is listed for the link.
set(modelmgr_pc_libs "")
foreach(layer ${modelmgr_installed_layers})
  string(APPEND modelmgr_pc_libs " -lmodelmgr_${layer}")
endforeach()
# The prefix is found from the .pc file's own place, so `cmake --install --prefix X` works too.
file(RELATIVE_PATH modelmgr_pc_up "/root/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/root")
file(WRITE ${PROJECT_BINARY_DIR}/modelmgr.pc
"prefix=\${pcfiledir}/${modelmgr_pc_up}
libdir=\${prefix}/${CMAKE_INSTALL_LIBDIR}
includedir=\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}

Name: modelmgr
Description: Verifying download manager for the Hugging Face Hub (shares the HF cache)
Version: ${PROJECT_VERSION}
Requires: libcurl libcrypto fmt nlohmann_json yaml-cpp tomlplusplus protobuf
Cflags: -I\${includedir}
Libs: -L\${libdir}${modelmgr_pc_libs} -lonnx_proto -pthread
")
install(FILES ${PROJECT_BINARY_DIR}/modelmgr.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig COMPONENT dev)
