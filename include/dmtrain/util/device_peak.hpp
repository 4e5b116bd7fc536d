// The dense bf16 tensor-core peak of a GPU from its vendor's data sheet, found by the device name
// CUDA reports (e.g. "NVIDIA H200"), for `dmtrain bench`'s "share of the peak" line. Dense means
// without 2:4 sparsity (the data sheets' headline figure is the sparse one, twice this).
#pragma once
#include <string>

namespace dmtrain::util {

// TFLOP/s: H100 and H200 SXM 989.4, H100 PCIe 756, A100 312; 0 for a device not listed.
double bf16_dense_peak_tflops(const std::string& device_name);

}  // namespace dmtrain::util
