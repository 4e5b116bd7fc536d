// Structure of the UNet: exact parameter counts of the paper's two recipes (numbers counted from
// the reference code, method.md section 6), plan shapes == built module's parameters, option
// validation, and the small building blocks against hand-worked values.
#include <cmath>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "dmtrain/models/attention.hpp"
#include "dmtrain/models/group_norm32.hpp"
#include "dmtrain/models/timestep_embedding.hpp"
#include "dmtrain/models/unet.hpp"
#include "dmtrain/util/error.hpp"

namespace dm = dmtrain::models;

namespace {

dm::UNetOptions tiny_gd() {
  dm::UNetOptions o;
  o.image_size(16)
      .in_channels(3)
      .model_channels(32)
      .num_res_blocks(1)
      .attention_resolutions({2})
      .channel_mult({1, 2})
      .num_classes(10)
      .num_head_channels(8)
      .use_scale_shift_norm(true)
      .resblock_updown(true)
      .use_new_attention_order(true)
      .learn_sigma(true);
  return o;
}

dm::UNetOptions tiny_id() {
  dm::UNetOptions o;
  o.image_size(16)
      .model_channels(32)
      .num_res_blocks(2)
      .attention_resolutions({1, 2})
      .channel_mult({1, 1})
      .num_heads(2)
      .dropout(0.1);
  return o;
}

}  // namespace

TEST(UNetCount, IdCifar10RecipeMatchesReference) {
  EXPECT_EQ(dm::count_parameters(dm::id_cifar10()), 52546438);
}

TEST(UNetCount, GdImageNet128RecipeMatchesReference) {
  EXPECT_EQ(dm::count_parameters(dm::gd_imagenet128()), 421529606);
}

TEST(UNetOptions, PresetsFollowTheRecipes) {
  const auto id = dm::id_cifar10();
  EXPECT_EQ(id.out_channels(), 6);
  EXPECT_EQ(id.attention_resolutions(), (std::vector<int64_t>{2, 4}));
  EXPECT_DOUBLE_EQ(id.dropout(), 0.3);
  const auto gd = dm::gd_imagenet128();
  EXPECT_EQ(gd.attention_resolutions(), (std::vector<int64_t>{4, 8, 16}));
  EXPECT_EQ(gd.num_classes(), 1000);
  EXPECT_EQ(gd.num_heads(), 4);
  EXPECT_EQ(gd.num_head_channels(), -1);
  EXPECT_TRUE(gd.resblock_updown());
}

TEST(UNetOptions, AttentionDsFromResolutions) {
  EXPECT_EQ(dm::attention_ds_from_resolutions(32, {16, 8}), (std::vector<int64_t>{2, 4}));
  EXPECT_EQ(dm::attention_ds_from_resolutions(64, {32, 16, 8}), (std::vector<int64_t>{2, 4, 8}));
  EXPECT_THROW(dm::attention_ds_from_resolutions(32, {12}), dmtrain::Error);
}

TEST(UNetOptions, ValidateNamesTheField) {
  auto o = tiny_id();
  o.model_channels(48);  // 48 channels do not split into 32 groups
  try {
    dm::UNetModel m(o);
    FAIL() << "expected dmtrain::Error";
  } catch (const dmtrain::Error& e) {
    EXPECT_NE(std::string(e.what()).find("channel_mult"), std::string::npos) << e.what();
  }
  o = tiny_id();
  o.num_heads(3);
  EXPECT_THROW(dm::count_parameters(o), dmtrain::Error);
  o = tiny_id();
  o.image_size(15);
  EXPECT_THROW(dm::count_parameters(o), dmtrain::Error);
}

TEST(UNetStructure, BuiltParametersMatchPlanShapes) {
  for (const auto& opts : {tiny_gd(), tiny_id(), tiny_id().conv_resample(false)}) {
    dm::UNetModel model(opts);
    const auto expected = dm::parameter_shapes(opts);
    const auto params = model->named_parameters(true);
    ASSERT_EQ(params.size(), expected.size());
    int64_t total = 0;
    for (size_t i = 0; i < expected.size(); ++i) {
      EXPECT_EQ(params[i].key(), expected[i].first);
      EXPECT_EQ(params[i].value().sizes().vec(), expected[i].second) << expected[i].first;
      total += params[i].value().numel();
    }
    EXPECT_EQ(total, dm::count_parameters(opts));
    EXPECT_TRUE(model->named_buffers(true).is_empty());
  }
}

TEST(UNetStructure, ReferenceKeyNamesPresent) {
  dm::UNetModel model(tiny_gd());
  const auto params = model->named_parameters(true);
  for (const char* key :
       {"time_embed.0.weight", "time_embed.2.bias", "label_emb.weight", "input_blocks.0.0.weight",
        "input_blocks.1.0.in_layers.0.weight", "input_blocks.1.0.emb_layers.1.weight",
        "input_blocks.1.0.out_layers.3.weight", "input_blocks.2.0.in_layers.2.weight",
        "input_blocks.3.0.skip_connection.weight", "input_blocks.3.1.qkv.weight",
        "middle_block.1.proj_out.weight", "middle_block.2.out_layers.0.bias",
        "output_blocks.0.1.norm.weight", "out.0.weight", "out.2.weight"}) {
    EXPECT_NE(params.find(key), nullptr) << key;
  }
}

TEST(UNetStructure, ForwardShapeAndZeroInitOutput) {
  dm::UNetModel model(tiny_gd());
  const auto x = torch::randn({2, 3, 16, 16});
  const auto out = model->forward(x, torch::tensor({3, 700}), torch::tensor({1, 9}));
  EXPECT_EQ(out.sizes().vec(), (std::vector<int64_t>{2, 6, 16, 16}));
  // out.2 is zero-initialised as in the references, so a fresh model outputs exactly zero.
  EXPECT_EQ(out.abs().max().item<float>(), 0.f);
  EXPECT_THROW(model->forward(x, torch::tensor({3, 700})), c10::Error);  // y missing
}

TEST(UNetStructure, CloneIsDeepAndEquivalent) {
  dm::UNetModel model(tiny_gd());
  {
    torch::NoGradGuard g;
    for (auto& p : model->parameters()) p.normal_(0, 0.05);
  }
  model->eval();
  auto copy = std::dynamic_pointer_cast<dm::UNetModelImpl>(model->clone());
  ASSERT_TRUE(copy);
  const auto x = torch::randn({2, 3, 16, 16});
  const auto t = torch::tensor({5.5, 900.0});
  const auto y = torch::tensor({0, 4});
  const auto a = model->forward(x, t, y);
  EXPECT_TRUE(torch::equal(a, copy->forward(x, t, y)));
  EXPECT_GT(a.abs().max().item<float>(), 0.f);
  {
    torch::NoGradGuard g;
    copy->named_parameters()["out.2.weight"].add_(1.0);
  }
  EXPECT_TRUE(torch::equal(a, model->forward(x, t, y)));  // the original did not change
  EXPECT_FALSE(torch::equal(a, copy->forward(x, t, y)));
}

TEST(TimestepEmbedding, HandWorkedValues) {
  // dim 5: half = 2, freqs = [1, exp(-ln(1e4) / 2) = 0.01], plus one zero column.
  const auto e = dm::timestep_embedding(torch::tensor({0.0, 2.5}), 5);
  ASSERT_EQ(e.sizes().vec(), (std::vector<int64_t>{2, 5}));
  const std::vector<double> t{0.0, 2.5};
  for (int i = 0; i < 2; ++i) {
    EXPECT_NEAR(e[i][0].item<float>(), std::cos(t[i]), 1e-6);
    EXPECT_NEAR(e[i][1].item<float>(), std::cos(0.01 * t[i]), 1e-6);
    EXPECT_NEAR(e[i][2].item<float>(), std::sin(t[i]), 1e-6);
    EXPECT_NEAR(e[i][3].item<float>(), std::sin(0.01 * t[i]), 1e-6);
    EXPECT_EQ(e[i][4].item<float>(), 0.f);
  }
  // Integer timesteps give the same embedding as their float values.
  EXPECT_TRUE(torch::equal(dm::timestep_embedding(torch::tensor({int64_t{7}}), 8),
                           dm::timestep_embedding(torch::tensor({7.0f}), 8)));
}

TEST(Attention, SdpaEqualsExplicitSoftmaxBothOrders) {
  torch::manual_seed(0);
  const auto qkv = torch::randn({2, 3 * 64, 37});
  for (bool new_order : {false, true}) {
    const auto a = dm::qkv_attention(qkv, 4, new_order, true);
    const auto b = dm::qkv_attention(qkv, 4, new_order, false);
    EXPECT_LT((a - b).abs().max().item<float>(), 1e-5) << "new_order=" << new_order;
  }
  // The two layouts really differ on the same buffer.
  EXPECT_GT((dm::qkv_attention(qkv, 4, false) - dm::qkv_attention(qkv, 4, true))
                .abs()
                .max()
                .item<float>(),
            1e-2);
}

TEST(Attention, ExplicitMatchesHandWrittenSingleHead) {
  // One head, legacy order: q, k, v are consecutive channel blocks.
  torch::manual_seed(1);
  const int64_t ch = 4, len = 5;
  const auto qkv = torch::randn({1, 3 * ch, len}, torch::kDouble);
  const auto q = qkv[0].slice(0, 0, ch), k = qkv[0].slice(0, ch, 2 * ch),
             v = qkv[0].slice(0, 2 * ch);
  const auto w = torch::softmax(q.t().matmul(k) / std::sqrt(double(ch)), -1);  // [T, S]
  const auto expected = v.matmul(w.t());                                       // [ch, T]
  EXPECT_TRUE(torch::allclose(dm::qkv_attention(qkv, 1, false, false)[0], expected, 1e-6, 1e-6));
  EXPECT_TRUE(torch::allclose(dm::qkv_attention(qkv, 1, true, true)[0], expected, 1e-10, 1e-10));
}

TEST(GroupNorm32, ComputesInFloatAndCastsBack) {
  dm::GroupNorm32 norm(64);
  const auto x = torch::randn({2, 64, 4, 4}).mul(100).add(3);
  const auto y = norm->forward(x);
  // Each group of 2 channels x 16 positions has mean 0, variance 1 (weight 1, bias 0).
  const auto g = y.reshape({2, 32, -1});
  EXPECT_LT(g.mean(-1).abs().max().item<float>(), 1e-5);
  EXPECT_LT((g.var(-1, false) - 1).abs().max().item<float>(), 1e-3);
  const auto yh = norm->forward(x.to(torch::kBFloat16));
  EXPECT_EQ(yh.scalar_type(), torch::kBFloat16);
  EXPECT_LT((yh.to(torch::kFloat) - y).abs().max().item<float>(), 0.05);
}
