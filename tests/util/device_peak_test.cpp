// The data-sheet bf16 peaks by the names CUDA reports for the cards this project has run on.
#include <gtest/gtest.h>

#include "dmtrain/util/device_peak.hpp"

using dmtrain::util::bf16_dense_peak_tflops;

TEST(DevicePeak, DataSheetDenseBf16ByDeviceName) {
  EXPECT_DOUBLE_EQ(bf16_dense_peak_tflops("NVIDIA H200"), 989.4);
  EXPECT_DOUBLE_EQ(bf16_dense_peak_tflops("NVIDIA H100 80GB HBM3"), 989.4);  // SXM
  EXPECT_DOUBLE_EQ(bf16_dense_peak_tflops("NVIDIA H100 PCIe"), 756.0);
  EXPECT_DOUBLE_EQ(bf16_dense_peak_tflops("NVIDIA A100-SXM4-80GB"), 312.0);
  EXPECT_DOUBLE_EQ(bf16_dense_peak_tflops("NVIDIA GeForce RTX 4090"), 0.0);  // not listed
  EXPECT_DOUBLE_EQ(bf16_dense_peak_tflops("CPU (2 threads)"), 0.0);
}
