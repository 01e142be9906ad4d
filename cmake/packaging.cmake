# Installation and the Debian package: `cpack -G DEB` in the build dir makes
# depot_<version>_amd64.deb with /usr/bin/depot, the shipped scripts (/usr/share/depot/scripts,
# with their specs for `depot test`, and the stand-in upstreams those use in
# /usr/share/depot/tests/stubs),
# the docs (/usr/share/doc/depot), the default config as /etc/depot/depot.json (a conffile: dpkg
# keeps an operator's edits) and the hardened systemd unit (cmake/debian/depot.service).
# tests/package/check_deb.sh builds, installs, checks and removes it.

# The packaged config is config/depot.json with the package's paths, so that both list the same
# services and settings.
file(READ ${CMAKE_SOURCE_DIR}/config/depot.json DEPOT_PACKAGED_CONFIG)
string(JSON DEPOT_PACKAGED_CONFIG SET "${DEPOT_PACKAGED_CONFIG}" data_dir "\"/var/lib/depot\"")
string(JSON DEPOT_PACKAGED_CONFIG SET "${DEPOT_PACKAGED_CONFIG}" scripts_dir "\"/usr/share/depot/scripts\"")
file(WRITE ${CMAKE_BINARY_DIR}/package/depot.json "${DEPOT_PACKAGED_CONFIG}\n")
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/config/depot.json)

install(TARGETS depot RUNTIME DESTINATION bin)
install(DIRECTORY ${CMAKE_SOURCE_DIR}/scripts/ DESTINATION share/depot/scripts
        PATTERN "*.py" EXCLUDE PATTERN "node_modules" EXCLUDE)
# Next to the scripts, where `depot test` looks for them (bindings/spec_server.cpp, stubs_dir).
install(DIRECTORY ${CMAKE_SOURCE_DIR}/tests/stubs/ DESTINATION share/depot/tests/stubs)
install(FILES ${CMAKE_SOURCE_DIR}/README.md DESTINATION share/doc/depot)
install(DIRECTORY ${CMAKE_SOURCE_DIR}/docs/ DESTINATION share/doc/depot)
install(FILES ${CMAKE_BINARY_DIR}/package/depot.json DESTINATION /etc/depot)
install(FILES ${CMAKE_SOURCE_DIR}/cmake/debian/depot.service DESTINATION /lib/systemd/system)

set(CPACK_PACKAGE_NAME depot)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "Depot maintainers <depot@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "Embeddable HTTP/1.1 server with Lua route scripts")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # depot_<version>_<arch>.deb
set(CPACK_DEBIAN_PACKAGE_SECTION httpd)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)   # the library packages, from the binary's own links
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser")
# `depot test` runs specs with busted; serving does not need it.
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "lua-busted")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${CMAKE_SOURCE_DIR}/cmake/debian/conffiles ${CMAKE_SOURCE_DIR}/cmake/debian/postinst
    ${CMAKE_SOURCE_DIR}/cmake/debian/prerm ${CMAKE_SOURCE_DIR}/cmake/debian/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
