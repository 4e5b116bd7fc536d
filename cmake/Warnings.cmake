# dmtrain_warnings: an interface target that carries the warning flags for project code only.
# Third-party headers (LibTorch, spdlog, ...) come in as SYSTEM includes and stay quiet.
add_library(dmtrain_warnings INTERFACE)
if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
  target_compile_options(dmtrain_warnings INTERFACE
    # (-Wnull-dereference is left out: at -O3 it fires inside inlined LibTorch headers.)
    -Wall -Wextra -Wshadow=local -Wnon-virtual-dtor -Wcast-align -Woverloaded-virtual
    -Wformat=2 -Wimplicit-fallthrough)
  if(DMTRAIN_WARNINGS_AS_ERRORS)
    target_compile_options(dmtrain_warnings INTERFACE -Werror)
  endif()
endif()
