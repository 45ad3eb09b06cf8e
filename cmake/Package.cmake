# Man pages, shell completions and the Debian package. Included from the top-level CMakeLists.txt after
# src/ and python/.
#
# Man pages: one per command, written at build time by the built binary's hidden `modelmgr __man DIR` from the
# same CLI11 objects that parse the command line (so a page cannot disagree with --help), re-made whenever the
# binary changes.
set(modelmgr_man_dir ${PROJECT_BINARY_DIR}/man)
add_custom_command(
  OUTPUT ${modelmgr_man_dir}/.stamp
  COMMAND ${CMAKE_COMMAND} -E rm -rf ${modelmgr_man_dir}
  COMMAND $<TARGET_FILE:modelmgr_cli> __man ${modelmgr_man_dir}
  COMMAND ${CMAKE_COMMAND} -E touch ${modelmgr_man_dir}/.stamp
  DEPENDS modelmgr_cli
  COMMENT "Writing the man pages")
add_custom_target(modelmgr_man ALL DEPENDS ${modelmgr_man_dir}/.stamp)
install(DIRECTORY ${modelmgr_man_dir}/ DESTINATION ${CMAKE_INSTALL_MANDIR}/man1 COMPONENT runtime
        FILES_MATCHING PATTERN "*.1")

# Shell completions, where bash-completion, zsh (Debian's vendor folder) and fish look for them. They ask
# `modelmgr __complete` for candidates.
set(modelmgr_completions ${PROJECT_SOURCE_DIR}/packaging/completions)
install(FILES ${modelmgr_completions}/modelmgr.bash DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions
        RENAME modelmgr COMPONENT runtime)
install(FILES ${modelmgr_completions}/_modelmgr DESTINATION ${CMAKE_INSTALL_DATADIR}/zsh/vendor-completions
        COMPONENT runtime)
install(FILES ${modelmgr_completions}/modelmgr.fish DESTINATION ${CMAKE_INSTALL_DATADIR}/fish/vendor_completions.d
        COMPONENT runtime)

# The Debian package (`cpack -G DEB` in the build folder): the binary, the catalog, man pages, completions and
# the Python module (component deb_python: the same module installed into /usr/lib/python3/dist-packages,
# where Debian's python3 looks for packaged modules). The C++ development files (static libraries, headers,
# CMake package; component dev) are not in it. Dependencies come from dpkg-shlibdeps.
set(CPACK_PACKAGE_NAME modelmgr)
set(CPACK_PACKAGE_VENDOR modelmgr)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "modelmgr maintainers <modelmgr@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "Fast, verifying download manager for Hugging Face Hub models")
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
    "Downloads files or whole repo snapshots into the standard Hugging Face cache (shared with\n"
    "huggingface_hub, the hf CLI, transformers and llama.cpp), checks every byte against the Hub's hash,\n"
    "resumes after crashes and works offline. Includes the Python module modelmgr.")
set(CPACK_DEBIAN_PACKAGE_SECTION utils)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_GROUPING ALL_COMPONENTS_IN_ONE)
set(CPACK_COMPONENTS_ALL runtime)
if(MODELMGR_PYTHON)
  list(APPEND CPACK_COMPONENTS_ALL deb_python)
  # The extension is built for this interpreter's ABI.
  set(CPACK_DEBIAN_PACKAGE_DEPENDS
      "python3 (>= ${Python3_VERSION_MAJOR}.${Python3_VERSION_MINOR}), python3 (<< ${Python3_VERSION_MAJOR}.${Python3_VERSION_MINOR}.99)")
endif()
set(CPACK_OUTPUT_FILE_PREFIX ${PROJECT_BINARY_DIR}/packages)
include(CPack)
