// Minimal .safetensors reader and writer (https://github.com/huggingface/safetensors format):
//   [8-byte little-endian u64 N][N bytes of JSON header][raw tensor bytes]
//   header: {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
//            optionally "__metadata__": {string: string}}; offsets are relative to the data.
// Supported dtypes: F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL. Data is little-endian
// (every platform we run on). Tensors come back on the CPU, contiguous, owning their memory.
// Malformed files throw dmtrain::Error naming the file and what is wrong.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

namespace dmtrain::models {

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

// Tensors in the order of their data offsets (which is the writer's order).
NamedTensors read_safetensors(const std::string& path);

// Writes tensors (any device, made contiguous on the CPU) in the given order; the header is
// padded with spaces to a multiple of 8 bytes as the reference writer does.
void write_safetensors(const NamedTensors& tensors, const std::string& path);

}  // namespace dmtrain::models
