// KernelProfile on the CPU: the summary counts the ops actually run (call counts known by
// construction), CPU self times do not double count nested ops (their sum cannot exceed the
// wall time of the single thread that ran them), the Chrome trace is written, start/stop misuse
// is caught, and kernel_category maps real CUDA kernel names (copied from H100 profiles of
// these UNets' ops) to the expected categories.
#include "dmtrain/observe/kernel_profile.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <ATen/ATen.h>
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace fs = std::filesystem;
using dmtrain::observe::busy_fraction;
using dmtrain::observe::kernel_category;
using dmtrain::observe::KernelProfile;

namespace {

// The "calls" and "total ms" columns of the top-table row whose name is `name`; calls -1 when
// there is no such row.
struct RowValues {
  int64_t calls = -1;
  double ms = 0;
};
RowValues row_of(const std::string& summary, const std::string& name) {
  std::istringstream lines(summary);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream fields(line);
    std::string first;
    RowValues r;
    if (fields >> first && first == name && fields >> r.calls >> r.ms) return r;
  }
  return {};
}

// Total ms of the category-table row `cat`; -1 when absent.
double category_ms(const std::string& summary, const std::string& cat) {
  std::istringstream lines(summary);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream fields(line);
    std::string first;
    double ms = 0;
    if (fields >> first && first == cat && fields >> ms && fields.peek() != EOF) {
      std::string rest;
      std::getline(fields, rest);
      // Category rows have exactly two numbers after the name; top rows have four.
      std::istringstream nums(rest);
      double a = 0;
      int n = 0;
      while (nums >> a) ++n;
      if (n == 1) return ms;
    }
  }
  return -1;
}

}  // namespace

TEST(KernelProfile, CountsCpuOpsAndWritesTrace) {
  const at::Tensor a = at::randn({32, 32});
  const at::Tensor b = at::randn({32, 32});
  const fs::path trace = fs::temp_directory_path() /
                         ("dmtrain_kernel_profile_" + std::to_string(::getpid()) + ".json");
  fs::remove(trace);

  KernelProfile prof;
  prof.start();
  EXPECT_TRUE(prof.recording());
  at::Tensor c = a;
  for (int i = 0; i < 7; ++i) c = at::mm(c, b);
  for (int i = 0; i < 3; ++i) c = at::add(c, a);
  const std::string summary = prof.stop(trace.string(), /*steps=*/5);
  EXPECT_FALSE(prof.recording());

  SCOPED_TRACE(summary);
  EXPECT_EQ(row_of(summary, "aten::mm").calls, 7);
  EXPECT_EQ(row_of(summary, "aten::add").calls, 3);
  EXPECT_EQ(summary.rfind("CPU time", 0), 0u);  // no CUDA here
  EXPECT_NE(summary.find(" over 5 steps = "), std::string::npos);
  EXPECT_GE(category_ms(summary, "conv/gemm"), 0.0);
  EXPECT_GE(category_ms(summary, "elementwise"), 0.0);

  ASSERT_TRUE(fs::exists(trace));
  std::ifstream in(trace);
  std::stringstream text;
  text << in.rdbuf();
  const std::string json = text.str();
  const size_t first = json.find_first_not_of(" \t\r\n");
  ASSERT_NE(first, std::string::npos);
  EXPECT_EQ(json[first], '{');
  EXPECT_NE(json.find("\"traceEvents\""), std::string::npos);
  EXPECT_NE(json.find("aten::mm"), std::string::npos);
  fs::remove(trace);
}

TEST(KernelProfile, SelfTimesOfNestedOpsDoNotExceedWallTime) {
  // aten::linear runs aten::t and aten::addmm inside it: summing inclusive times would count the
  // matmul twice, about 2x the wall time of this single-threaded loop.
  const at::Tensor x = at::randn({128, 512});
  const at::Tensor w = at::randn({512, 512});
  const at::Tensor bias = at::randn({512});
  KernelProfile prof;
  prof.start();
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 20; ++i) (void)at::linear(x, w, bias);
  const double wall_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  const std::string summary = prof.stop("", /*steps=*/20, /*top=*/10);
  SCOPED_TRACE(summary);

  std::istringstream head(summary.substr(summary.find(": ") + 2));
  double total_ms = 0;
  ASSERT_TRUE(head >> total_ms);
  EXPECT_GT(total_ms, 0.0);
  // The ops of the loop, not the total: with CUDA present (the GPU machine) the profiler also
  // records CUDA runtime calls made while it starts and stops, outside the timed loop.
  const double loop_ms = row_of(summary, "aten::addmm").ms + row_of(summary, "aten::linear").ms +
                         row_of(summary, "aten::t").ms;
  EXPECT_LE(loop_ms, wall_ms);
  EXPECT_EQ(row_of(summary, "aten::addmm").calls, 20);
  // addmm is nearly all of linear's time; with self times it is the top row.
  EXPECT_LE(row_of(summary, "aten::addmm").ms, total_ms);
  EXPECT_GT(row_of(summary, "aten::addmm").ms, 0.5 * loop_ms);
  // top = 10 keeps at most ten rows after the table's header (linear, t, addmm, ... at least).
  const size_t header = summary.find("\nname ");
  ASSERT_NE(header, std::string::npos);
  const std::string rows = summary.substr(summary.find('\n', header + 1) + 1);
  EXPECT_LE(std::count(rows.begin(), rows.end(), '\n'), 10);
  EXPECT_GE(std::count(rows.begin(), rows.end(), '\n'), 3);
}

TEST(KernelProfile, MisuseIsCaughtAndDestructorStopsTheProfiler) {
  {
    KernelProfile prof;
    EXPECT_THROW(prof.stop("", 1), c10::Error);
    prof.start();
    EXPECT_THROW(prof.start(), c10::Error);
    EXPECT_THROW(prof.stop("", 0), c10::Error);  // steps checked before stopping
    EXPECT_TRUE(prof.recording());
  }  // destroyed while recording: must switch the profiler off
  KernelProfile again;
  again.start();
  const at::Tensor x = at::ones({4});
  // Tensor * Tensor: a Scalar factor would show up twice (aten::mul.Scalar redispatches to
  // aten::mul.Tensor, and rows are by name, not overload).
  (void)at::mul(x, x);
  EXPECT_EQ(row_of(again.stop("", 1), "aten::mul").calls, 1);
}

TEST(KernelProfile, CategoriesOfKnownKernelNames) {
  EXPECT_EQ(
      kernel_category("sm90_xmma_gemm_f32f32_tf32f32_f32_tn_n_tilesize128x128x32_warpgroupsize"
                      "1x1x1_execute_segment_k_off_kernel__5x_cublas"),
      "conv/gemm");
  EXPECT_EQ(
      kernel_category("void cutlass::Kernel2<cutlass_80_tensorop_s1688gemm_128x128_16x4_nn_"
                      "align4>(cutlass_80_tensorop_s1688gemm_128x128_16x4_nn_align4::Params)"),
      "conv/gemm");
  EXPECT_EQ(kernel_category("void cudnn::cnn::conv2d_grouped_direct_kernel<false, true, false>"),
            "conv/gemm");
  EXPECT_EQ(
      kernel_category("void at::native::(anonymous namespace)::RowwiseMomentsCUDAKernel<float>"
                      "(long, float, float const*, float*, float*)"),
      "norm");
  EXPECT_EQ(kernel_category("void at::native::(anonymous namespace)::ComputeBackwardFusedParams"
                            "CUDAKernel<float>(long, long, long, float const*)"),
            "norm");
  // A matmul's split-K pass, not a tensor reduction.
  EXPECT_EQ(kernel_category("void cublasLt::splitKreduce_kernel<32, 16, int, float, float>"),
            "conv/gemm");
  EXPECT_EQ(kernel_category("void at::native::elementwise_kernel<128, 2, at::native::(anonymous "
                            "namespace)::GroupNorm1dForward<float>::{lambda(float, float)#1}>"),
            "norm");
  EXPECT_EQ(kernel_category("void at::native::vectorized_elementwise_kernel<4, at::native::"
                            "CUDAFunctor_add<float>, std::array<char*, 3ul> >(int, ...)"),
            "elementwise");
  EXPECT_EQ(kernel_category("void at::native::reduce_kernel<512, 1, at::native::ReduceOp<float, "
                            "at::native::func_wrapper_t<float, at::native::sum_functor>>>"),
            "reduce");
  EXPECT_EQ(kernel_category("void at::native::(anonymous namespace)::multi_tensor_apply_kernel<"
                            "at::native::(anonymous namespace)::FusedAdamMathFunctor<float, 4>>"),
            "optimizer");
  // Both name "cutlass"/"sm80" too; attention must win.
  EXPECT_EQ(
      kernel_category("fmha_cutlassF_f32_aligned_64x64_rf_sm80(PyTorchMemEffAttention::"
                      "AttentionKernel<float, cutlass::arch::Sm80, true, 64, 64, 64>::Params)"),
      "attention");
  EXPECT_EQ(kernel_category("void pytorch_flash::flash_fwd_kernel<Flash_fwd_kernel_traits<64>>"),
            "attention");
  EXPECT_EQ(kernel_category("Memcpy HtoD (Pageable -> Device)"), "memcpy/memset");
  EXPECT_EQ(kernel_category("Memset (Device)"), "memcpy/memset");
  EXPECT_EQ(kernel_category("aten::mm"), "conv/gemm");
  EXPECT_EQ(kernel_category("aten::convolution"), "conv/gemm");
  EXPECT_EQ(kernel_category("aten::native_group_norm"), "norm");
  EXPECT_EQ(kernel_category("aten::add"), "elementwise");
  EXPECT_EQ(kernel_category("aten::sum"), "reduce");
  EXPECT_EQ(kernel_category("aten::_foreach_lerp_"), "optimizer");
  EXPECT_EQ(kernel_category("aten::addmmx"), "other");  // exact op names, not prefixes
  EXPECT_EQ(kernel_category("cudaLaunchKernel"), "other");
}

TEST(KernelProfile, BusyFractionIsTheUnionOfTheIntervalsOverTheirSpan) {
  // [0, 10) and [5, 20) overlap: 20 ns covered, then a 10 ns gap, then [30, 40): 30 of 40 ns.
  EXPECT_DOUBLE_EQ(busy_fraction({{30, 40}, {5, 20}, {0, 10}}), 0.75);
  // A kernel inside another (two streams) adds nothing; touching intervals leave no gap.
  EXPECT_DOUBLE_EQ(busy_fraction({{0, 100}, {10, 20}}), 1.0);
  EXPECT_DOUBLE_EQ(busy_fraction({{0, 10}, {10, 30}}), 1.0);
  EXPECT_DOUBLE_EQ(busy_fraction({{0, 10}, {90, 100}}), 0.2);
  EXPECT_DOUBLE_EQ(busy_fraction({}), 1.0);
  EXPECT_DOUBLE_EQ(busy_fraction({{5, 5}}), 1.0);
}
