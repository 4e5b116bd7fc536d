# Compile through ccache when it is installed: a rebuild on CI's 2 cores then takes seconds.
# The sloppiness settings let ccache cache translation units that use the precompiled header.
find_program(DMTRAIN_CCACHE ccache)
if(DMTRAIN_CCACHE AND NOT CMAKE_CXX_COMPILER_LAUNCHER)
  set(CMAKE_CXX_COMPILER_LAUNCHER
      "${CMAKE_COMMAND};-E;env;CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime;${DMTRAIN_CCACHE}")
  message(STATUS "dmtrain: compiling through ccache (${DMTRAIN_CCACHE})")
endif()
