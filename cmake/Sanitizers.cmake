# dmtrain_sanitizers: interface target adding -fsanitize=<list> to project code and links.
# LibTorch itself is not instrumented; AddressSanitizer needs ASAN_OPTIONS=protect_shadow_gap=0
# when CUDA is initialised, and detect_leaks=0 because LibTorch keeps global allocations alive.
add_library(dmtrain_sanitizers INTERFACE)
if(DMTRAIN_SANITIZERS)
  list(JOIN DMTRAIN_SANITIZERS "," _dm_san)
  target_compile_options(dmtrain_sanitizers INTERFACE -fsanitize=${_dm_san} -fno-omit-frame-pointer)
  target_link_options(dmtrain_sanitizers INTERFACE -fsanitize=${_dm_san})
  message(STATUS "dmtrain: sanitizers ${_dm_san}")
endif()
