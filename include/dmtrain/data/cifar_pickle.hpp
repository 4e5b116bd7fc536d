// A minimal, strict unpickler for the CIFAR-10 / CIFAR-100 "python version" files.
//
// What it reads: exactly the objects those files hold -- a dict with bytes or str keys of ints,
// bools, None, byte strings, text, lists, tuples and uint8 numpy arrays -- as written by Python 2's
// cPickle (protocol 2 for the batches; protocol 0 text for small dicts) and by Python 3's
// pickle.dump(obj, f, protocol=2..3). Numpy arrays are recognised in their pickled form,
// numpy.core.multiarray._reconstruct (or numpy._core..., numpy 2) of numpy.ndarray followed by
// BUILD with (version, shape, dtype, is_fortran, raw bytes); dtypes by numpy.dtype(...) + BUILD.
// Python 3's protocol-2 bytes, _codecs.encode(text, "latin1"), become the bytes they encode.
// Anything else -- another opcode, another global (no code is ever called), a non-uint8 array,
// a Fortran-order array -- is a dmtrain::Error naming the file, the opcode or global, and its
// byte offset.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace dmtrain::data {

struct PyValue;
using PyRef = std::shared_ptr<PyValue>;

struct PyValue {
  enum class Kind { None, Bool, Int, Bytes, Text, List, Tuple, Dict, Array, Dtype, Global };
  Kind kind = Kind::None;
  int64_t number = 0;                          // Bool, Int
  std::string bytes;                           // Bytes, Text (UTF-8), Array (raw data), Global
  std::vector<PyRef> items;                    // List, Tuple
  std::vector<std::pair<PyRef, PyRef>> pairs;  // Dict, in insertion order
  std::vector<int64_t> shape;                  // Array
  std::string dtype;                           // Array, Dtype: numpy's type string, e.g. "u1"

  // The value of key `name` (a bytes or str key) of a Dict, or nullptr.
  PyRef get(const std::string& name) const;
};

// Unpickles `data`; `what` (a path) prefixes every error message.
PyRef unpickle(const std::string& data, const std::string& what);

}  // namespace dmtrain::data
