# SpokePlugin.cmake: spoke_add_plugin(NAME SOURCES...) builds NAME.so, a
# spoke plugin, with the flags every plugin needs:
#   -fPIC, -fvisibility=hidden  only the SPOKE_PLUGIN descriptor is exported
#   -Wl,--no-undefined          the host exports nothing; a missing symbol is
#                               a link error now, not a dlopen error later
#   -fno-gnu-unique             C++ inline statics would pin the .so in
#                               memory and defeat hot reload's unload
# The target gets no "lib" prefix, so the file is NAME.so.
# SPOKE_PLUGIN_INCLUDE_DIR must point at the directory holding spoke.h.

function(spoke_add_plugin name)
  add_library(${name} MODULE ${ARGN})
  set_target_properties(${name} PROPERTIES
    PREFIX ""
    SUFFIX ".so"
    C_VISIBILITY_PRESET hidden
    CXX_VISIBILITY_PRESET hidden
    POSITION_INDEPENDENT_CODE ON)
  target_include_directories(${name} PRIVATE ${SPOKE_PLUGIN_INCLUDE_DIR})
  target_link_options(${name} PRIVATE -Wl,--no-undefined)
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    target_compile_options(${name} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-fno-gnu-unique>)
  endif()
endfunction()
