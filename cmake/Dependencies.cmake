# Finds every third-party dependency, and says plainly what is missing and how to get it.
#
# LibTorch is looked up, in order: Torch_DIR / CMAKE_PREFIX_PATH as given; the torch package of
# DMTRAIN_PYTHON (default: python3 on PATH, then the virtual environment scripts/bootstrap makes
# in ${DMTRAIN_HOME:-~/.local/share/dmtrain}/venv).

set(_dm_fix "Run scripts/bootstrap (it installs everything), or install it yourself")

function(dmtrain_require found what how)
  if(NOT ${found})
    message(FATAL_ERROR "dmtrain: ${what} was not found.\n  ${how}\n  ${_dm_fix}.")
  endif()
endfunction()

# ---- LibTorch --------------------------------------------------------------------------------
find_package(Torch QUIET)
if(NOT Torch_FOUND)
  if(DEFINED ENV{DMTRAIN_HOME})
    set(_dm_home "$ENV{DMTRAIN_HOME}")
  else()
    set(_dm_home "$ENV{HOME}/.local/share/dmtrain")
  endif()
  set(_dm_pythons "${DMTRAIN_PYTHON}")
  find_program(_dm_path_python NAMES python3 python)
  list(APPEND _dm_pythons "${_dm_path_python}" "${_dm_home}/venv/bin/python3")
  foreach(_py IN LISTS _dm_pythons)
    if(_py AND EXISTS "${_py}")
      execute_process(
        COMMAND "${_py}" -c "import torch; print(torch.utils.cmake_prefix_path, end='')"
        OUTPUT_VARIABLE _dm_torch_prefix RESULT_VARIABLE _dm_rc ERROR_QUIET)
      if(_dm_rc EQUAL 0 AND EXISTS "${_dm_torch_prefix}")
        message(STATUS "dmtrain: using the LibTorch of ${_py}: ${_dm_torch_prefix}")
        list(APPEND CMAKE_PREFIX_PATH "${_dm_torch_prefix}")
        # The tests read our files with this python's torch (tests/support/python.hpp).
        set(DMTRAIN_TORCH_PYTHON "${_py}" CACHE INTERNAL "python whose torch the build links")
        break()
      endif()
    endif()
  endforeach()
  find_package(Torch QUIET)
endif()
dmtrain_require(Torch_FOUND "LibTorch (CMake package 'Torch')"
  "Pass -DTorch_DIR=<libtorch>/share/cmake/Torch, or make 'import torch' work for python3 (pip install torch==2.11.0).")
message(STATUS "dmtrain: LibTorch ${Torch_VERSION}, CUDA in LibTorch: ${TORCH_CUDA_LIBRARIES}")
if(TORCH_CUDA_LIBRARIES OR TARGET torch_cuda)
  set(DMTRAIN_TORCH_HAS_CUDA ON)
else()
  set(DMTRAIN_TORCH_HAS_CUDA OFF)
endif()

# ---- NCCL headers (c10d's ProcessGroupNCCL; the NCCL library itself comes with LibTorch) ------
# ProcessGroupNCCL.hpp includes nccl.h and sizes its class by NCCL's version macros, so the header
# must be the NCCL that LibTorch was built against: the wheel's nvidia-nccl package first, then a
# CUDA toolkit's or the system's. Without it dmtrain builds, and multi-GPU training says why not.
set(DMTRAIN_HAS_NCCL OFF)
if(DMTRAIN_TORCH_HAS_CUDA)
  find_path(DMTRAIN_NCCL_INCLUDE_DIR nccl.h
    HINTS "${Torch_DIR}/../../../../nvidia/nccl/include" "${CUDAToolkit_INCLUDE_DIRS}"
          /usr/local/cuda/include /usr/include
    NO_CACHE)
  if(DMTRAIN_NCCL_INCLUDE_DIR)
    set(DMTRAIN_HAS_NCCL ON)
    message(STATUS "dmtrain: NCCL header for c10d: ${DMTRAIN_NCCL_INCLUDE_DIR}/nccl.h")
  else()
    message(WARNING "dmtrain: nccl.h not found; multi-GPU (NCCL) training is disabled. "
                    "pip install the nvidia-nccl package that matches the torch wheel.")
  endif()
endif()

# ---- C++ libraries from the system's packages -------------------------------------------------
find_package(yaml-cpp CONFIG QUIET)
dmtrain_require(yaml-cpp_FOUND "yaml-cpp" "Debian/Ubuntu: apt-get install libyaml-cpp-dev")
find_package(spdlog CONFIG QUIET)
dmtrain_require(spdlog_FOUND "spdlog" "Debian/Ubuntu: apt-get install libspdlog-dev")
find_package(CLI11 CONFIG QUIET)
dmtrain_require(CLI11_FOUND "CLI11" "Debian/Ubuntu: apt-get install libcli11-dev")
# JSON (metrics.jsonl): nlohmann/json, header-only. Its CMake package, or the header alone (e.g.
# -DDMTRAIN_JSON_INCLUDE_DIR=<dir holding nlohmann/json.hpp> where only the header was copied).
find_package(nlohmann_json 3 CONFIG QUIET)
add_library(dmtrain_json INTERFACE)
if(nlohmann_json_FOUND)
  target_link_libraries(dmtrain_json INTERFACE nlohmann_json::nlohmann_json)
else()
  find_path(DMTRAIN_JSON_INCLUDE_DIR nlohmann/json.hpp)
  set(_dm_json_found FALSE)
  if(DMTRAIN_JSON_INCLUDE_DIR)
    set(_dm_json_found TRUE)
  endif()
  dmtrain_require(_dm_json_found "nlohmann/json"
                  "Debian/Ubuntu: apt-get install nlohmann-json3-dev")
  target_include_directories(dmtrain_json SYSTEM INTERFACE "${DMTRAIN_JSON_INCLUDE_DIR}")
endif()
find_package(PNG QUIET)
dmtrain_require(PNG_FOUND "libpng" "Debian/Ubuntu: apt-get install libpng-dev")
find_package(ZLIB QUIET)
dmtrain_require(ZLIB_FOUND "zlib" "Debian/Ubuntu: apt-get install zlib1g-dev")
find_package(JPEG QUIET)
dmtrain_require(JPEG_FOUND "libjpeg" "Debian/Ubuntu: apt-get install libjpeg62-turbo-dev (or libjpeg-dev)")
find_package(Threads REQUIRED)
if(DMTRAIN_BUILD_TESTS)
  find_package(GTest QUIET)
  dmtrain_require(GTest_FOUND "GoogleTest" "Debian/Ubuntu: apt-get install libgtest-dev")
endif()

# yaml-cpp 0.7 names its target 'yaml-cpp', newer releases 'yaml-cpp::yaml-cpp'.
if(TARGET yaml-cpp::yaml-cpp)
  set(DMTRAIN_YAML_TARGET yaml-cpp::yaml-cpp)
else()
  set(DMTRAIN_YAML_TARGET yaml-cpp)
endif()

# The LibTorch wheel exports its own (older, statically linked) copy of std::filesystem from
# libtorch.so and libtorch_cpu.so. If the linker meets those first, calls such as
# std::filesystem::remove_all bind to them and crash. Naming the shared libstdc++ before any object
# or library makes the loader resolve the standard library to libstdc++. It is named by file
# (-l:libstdc++.so.6), not -lstdc++: some toolchains (the GPU machine's /opt/gcc) ship no
# libstdc++.so link, and there -lstdc++ silently picks the static archive and changes nothing.
add_library(dmtrain_stdcxx_first INTERFACE)
target_link_options(dmtrain_stdcxx_first INTERFACE "LINKER:--no-as-needed" "-l:libstdc++.so.6")
