# SpokePlugin.cmake: spoke_add_plugin(NAME SOURCES...) builds NAME.so, a
# spoke plugin, with the flags every plugin needs:
#   -fPIC, -fvisibility=hidden  only the SPOKE_PLUGIN descriptor is exported
#   -Wl,--no-undefined          the host exports nothing; a missing symbol is
#                               a link error now, not a dlopen error later
#   -fno-gnu-unique             (C++ with GCC) inline statics would pin the
#                               .so in memory and defeat hot reload's unload
# The target gets no "lib" prefix, so the file is NAME.so.
#
# One file for both users: this tree's CMakeLists.txt includes it after
# setting SPOKE_PLUGIN_INCLUDE_DIR to sdk/include, and the installed
# package's spokeConfig.cmake (find_package(spoke)) includes it after
# setting it to PREFIX/include. Either way the header is reached through
# the interface target spoke::sdk, made here once; link it yourself for
# code that includes spoke.h but is not a plugin (a test helper, say).
#
# Sanitizers. With clang, -fsanitize=... never links the sanitizer runtime
# into a shared object: it lives in the executable, which exports it to
# the plugins it dlopens, so a sanitized plugin has undefined symbols and
# --no-undefined would fail its link. (GCC links libasan/libubsan into
# the .so as a dependency, so --no-undefined keeps working.) The variable
# SPOKE_PLUGIN_NO_UNDEFINED decides, read when spoke_add_plugin is called:
#   AUTO (default)  --no-undefined, unless the compiler is clang and
#                   -fsanitize= appears in CMAKE_<LANG>_FLAGS[_<CONFIG>],
#                   the shared/module linker flags, or the directory's
#                   compile or link options (add_compile_options)
#   ON / OFF        always / never
# Set it OFF when you add -fsanitize only per target, after the call.

if(NOT TARGET spoke::sdk)
  if(NOT SPOKE_PLUGIN_INCLUDE_DIR OR
     NOT EXISTS "${SPOKE_PLUGIN_INCLUDE_DIR}/spoke.h")
    message(FATAL_ERROR "SpokePlugin.cmake: SPOKE_PLUGIN_INCLUDE_DIR "
      "(\"${SPOKE_PLUGIN_INCLUDE_DIR}\") must be the directory holding "
      "spoke.h; use find_package(spoke) instead of including this file")
  endif()
  add_library(spoke::sdk INTERFACE IMPORTED GLOBAL)
  set_target_properties(spoke::sdk PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "${SPOKE_PLUGIN_INCLUDE_DIR}")
endif()

# Sets OUT to TRUE when --no-undefined must be left out (see above).
function(_spoke_plugin_allow_undefined out)
  set(mode AUTO)
  if(DEFINED SPOKE_PLUGIN_NO_UNDEFINED)
    string(TOUPPER "${SPOKE_PLUGIN_NO_UNDEFINED}" mode)
  endif()
  if(NOT mode STREQUAL "AUTO")
    if(SPOKE_PLUGIN_NO_UNDEFINED)
      set(${out} FALSE PARENT_SCOPE)
    else()
      set(${out} TRUE PARENT_SCOPE)
    endif()
    return()
  endif()
  set(${out} FALSE PARENT_SCOPE)
  if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang" AND
     NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    return()
  endif()
  string(TOUPPER "${CMAKE_BUILD_TYPE}" config)
  get_directory_property(copts COMPILE_OPTIONS)
  get_directory_property(lopts LINK_OPTIONS)
  set(flags "${CMAKE_C_FLAGS} ${CMAKE_CXX_FLAGS} ${CMAKE_SHARED_LINKER_FLAGS}"
            " ${CMAKE_MODULE_LINKER_FLAGS} ${copts} ${lopts}")
  if(config)
    string(APPEND flags " ${CMAKE_C_FLAGS_${config}}"
                        " ${CMAKE_CXX_FLAGS_${config}}")
  endif()
  if(flags MATCHES "-fsanitize=")
    set(${out} TRUE PARENT_SCOPE)
  endif()
endfunction()

function(spoke_add_plugin name)
  if(ARGC LESS 2)
    message(FATAL_ERROR "spoke_add_plugin(${name}): no sources "
                        "(spoke_add_plugin(NAME SOURCES...))")
  endif()
  add_library(${name} MODULE ${ARGN})
  set_target_properties(${name} PROPERTIES
    PREFIX ""
    SUFFIX ".so"
    C_VISIBILITY_PRESET hidden
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON
    POSITION_INDEPENDENT_CODE ON)
  # Not target_link_libraries: that would lock the target to its keyword
  # signature, and a caller's plain target_link_libraries(NAME m) would fail.
  target_include_directories(${name} PRIVATE
    $<TARGET_PROPERTY:spoke::sdk,INTERFACE_INCLUDE_DIRECTORIES>)
  _spoke_plugin_allow_undefined(allow)
  if(NOT allow)
    target_link_options(${name} PRIVATE -Wl,--no-undefined)
  endif()
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    target_compile_options(${name} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-fno-gnu-unique>)
  endif()
endfunction()
