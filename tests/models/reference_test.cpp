// The C++ UNet against the reference implementations: state_dicts of small random ID- and
// GD-flavour models (tests/fixtures/models, made by make_fixtures.py from /work/refs) load by name,
// and the outputs on a fixed batch agree within 1e-4 relative (max |diff| / max |ref|).
#include <fstream>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "dmtrain/models/attention.hpp"
#include "dmtrain/models/channel_bias.hpp"
#include "dmtrain/models/group_norm_act.hpp"
#include "dmtrain/models/state_dict.hpp"
#include "dmtrain/models/unet.hpp"

namespace dm = dmtrain::models;

namespace {

const std::string kDir = std::string(DMTRAIN_FIXTURES_DIR) + "/models/";

// The kernel switches of the references' numerics (off) or the speed levers that change how ops
// run without changing the model (on): token-major attention, convolution biases added apart.
dm::KernelOptions levers(bool on) {
  dm::KernelOptions k;
  k.attention_token_major = on;
  k.fast_conv_bias = on;
  return k;
}

dm::UNetOptions id_small() {
  dm::UNetOptions o;
  o.image_size(16)
      .in_channels(3)
      .model_channels(32)
      .num_res_blocks(1)
      .attention_resolutions({2})
      .channel_mult({1, 1})
      .num_heads(2)
      .use_scale_shift_norm(true)
      .learn_sigma(true);
  return o;
}

dm::UNetOptions gd_small() {
  dm::UNetOptions o = id_small();
  o.num_heads(1).num_classes(10).num_head_channels(8).resblock_updown(true).use_new_attention_order(
      true);
  return o;
}

std::map<std::string, torch::Tensor> read_io(const std::string& file) {
  std::map<std::string, torch::Tensor> m;
  for (auto& [k, v] : dm::read_state_dict_file(kDir + file)) m[k] = v;
  return m;
}

double rel_err(const torch::Tensor& got, const torch::Tensor& ref) {
  return (got - ref).abs().max().item<double>() / ref.abs().max().item<double>();
}

}  // namespace

TEST(Reference, IdSmallKeysInPyTorchOrder) {
  dm::UNetModel model(id_small());
  const auto file = dm::read_state_dict_file(kDir + "id_small.pt");  // torch.save keeps order
  const auto params = model->named_parameters(true);
  ASSERT_EQ(params.size(), file.size());
  for (size_t i = 0; i < file.size(); ++i) {
    EXPECT_EQ(params[i].key(), file[i].first);
    EXPECT_EQ(params[i].value().sizes(), file[i].second.sizes()) << file[i].first;
  }
}

TEST(Reference, GdSmallKeysInPyTorchOrder) {
  dm::UNetModel model(gd_small());
  std::ifstream in(kDir + "gd_small_keys.txt");
  std::vector<std::string> keys;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) keys.push_back(line);
  }
  const auto params = model->named_parameters(true);
  ASSERT_EQ(params.size(), keys.size());
  for (size_t i = 0; i < keys.size(); ++i) EXPECT_EQ(params[i].key(), keys[i]);
}

TEST(Reference, IdSmallOutputMatches) {
  // The second pass with the speed levers that change how ops run: token-major attention and
  // convolution biases added apart (on the CPU through the same split, on ATen ops).
  for (const bool token_major : {false, true}) {
    dm::UNetModel model(id_small().kernels(levers(token_major)));
    dm::load_state_dict(*model, kDir + "id_small.pt");  // float16 file into float32 model
    model->eval();
    auto io = read_io("id_small_io.pt");
    torch::NoGradGuard g;
    const auto out = model->forward(io["x"], io["t"]);
    ASSERT_EQ(out.sizes(), io["out"].sizes());
    EXPECT_LT(rel_err(out, io["out"]), 1e-4) << "token_major=" << token_major;
    // The comparison has teeth: a different timestep changes the output far beyond tolerance.
    EXPECT_GT(rel_err(model->forward(io["x"], io["t"] + 1), io["out"]), 1e-3);
  }
}

// The same fixture on the GPU, through the fused GroupNorm kernels and flash attention, in float32
// with TF32 off (skipped where there is no GPU).
TEST(Reference, IdSmallOutputMatchesOnCudaThroughFusedKernels) {
  if (!torch::cuda::is_available() || !dm::fused_kernels_built()) {
    GTEST_SKIP() << "needs CUDA and the fused kernels";
  }
  for (const bool token_major : {false, true}) {  // the second pass with the speed levers
    dm::UNetModel model(id_small().kernels(levers(token_major)));
    dm::load_state_dict(*model, kDir + "id_small.pt");
    model->eval();
    model->to(torch::kCUDA);
    auto io = read_io("id_small_io.pt");
    const bool tf32 = at::globalContext().allowTF32CuDNN();
    const bool tf32_mm = at::globalContext().allowTF32CuBLAS();
    at::globalContext().setAllowTF32CuDNN(false);
    at::globalContext().setAllowTF32CuBLAS(false);  // the token-major form's products
    torch::NoGradGuard g;
    const auto out = model->forward(io["x"].cuda(), io["t"].cuda()).cpu();
    at::globalContext().setAllowTF32CuDNN(tf32);
    at::globalContext().setAllowTF32CuBLAS(tf32_mm);
    EXPECT_LT(rel_err(out, io["out"]), 1e-4) << "token_major=" << token_major;
  }
}

TEST(Reference, GdSmallOutputMatchesFromSafetensors) {
  for (const bool token_major : {false, true}) {
    dm::UNetModel model(gd_small().kernels(levers(token_major)));
    dm::load_state_dict(*model, kDir + "gd_small.safetensors");
    model->eval();
    auto io = read_io("gd_small_io.pt");
    torch::NoGradGuard g;
    const auto out = model->forward(io["x"], io["t"], io["y"]);
    EXPECT_LT(rel_err(out, io["out"]), 1e-4) << "token_major=" << token_major;
    EXPECT_GT(rel_err(model->forward(io["x"], io["t"], (io["y"] + 1) % 10), io["out"]), 1e-3);
  }
}

TEST(Reference, GdSmallExplicitAttentionAlsoMatches) {
  dm::UNetModel model(gd_small());
  dm::load_state_dict(*model, kDir + "gd_small.safetensors");
  model->eval();
  for (auto& m : model->modules()) {
    if (auto* a = m->as<dm::AttentionBlockImpl>()) a->options.use_sdpa(false);
  }
  auto io = read_io("gd_small_io.pt");
  torch::NoGradGuard g;
  EXPECT_LT(rel_err(model->forward(io["x"], io["t"], io["y"]), io["out"]), 1e-4);
}

TEST(Reference, WrongAttentionOrderIsDetected) {
  // The GD checkpoint read with the legacy layout must not match: the order matters.
  auto opts = gd_small();
  opts.use_new_attention_order(false);
  dm::UNetModel model(opts);
  dm::load_state_dict(*model, kDir + "gd_small.safetensors");
  model->eval();
  auto io = read_io("gd_small_io.pt");
  torch::NoGradGuard g;
  EXPECT_GT(rel_err(model->forward(io["x"], io["t"], io["y"]), io["out"]), 1e-3);
}
