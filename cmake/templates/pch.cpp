// Translation unit that exists only to build the precompiled header (see src/CMakeLists.txt).
