// error_of(f): the message of the dmtrain::Error that f throws, or "<no error>" when it throws
// none (so that an expectation on the message fails with a readable value). Other exceptions
// propagate: the test fails on them.
#pragma once
#include <string>

#include "dmtrain/util/error.hpp"

namespace dmtrain::test_support {

template <class F>
std::string error_of(F f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

}  // namespace dmtrain::test_support
