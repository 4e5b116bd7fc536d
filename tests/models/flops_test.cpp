// forward_flops against a hand count and against the reference sizes in method.md (sec. 6:
// 16.8 GFLOP for ID CIFAR10, 614 GFLOP for GD ImageNet128, per image, forward).
#include <gtest/gtest.h>

#include "dmtrain/models/flops.hpp"

using namespace dmtrain::models;

TEST(Flops, TinyUNetMatchesHandCount) {
  // 8x8, 1 channel in/out, 32 channels, one level, one res block, no scale-shift. By hand
  // (2 FLOPs per multiply-add; emb = 128):
  //   time embedding MLP     2*32*128 + 2*128*128                      =     40,960
  //   input conv 1->32       2*1*32*9*64                               =     36,864
  //   res 32->32             2 * 2*32*32*9*64 + 2*128*32               =  2,367,488
  //   middle res, attn, res  2 * 2,367,488 + (2*32*96*64 + 4*64*64*32 + 2*32*32*64)
  //                                                                    =  5,783,552
  //   2 output res 64->32    2 * (2*64*32*9*64 + 2*128*32 + 2*32*32*9*64 + 2*64*32*64)
  //                                                                    =  7,618,560
  //   out conv 32->1         2*32*1*9*64                               =     36,864
  UNetOptions o;
  o.image_size(8).in_channels(1).out_channels(1).model_channels(32).num_res_blocks(1);
  o.channel_mult({1}).attention_resolutions({}).use_scale_shift_norm(false);
  EXPECT_EQ(forward_flops(o), 15884288);
}

TEST(Flops, ReferenceRecipesMatchMethodDoc) {
  EXPECT_NEAR(forward_flops(id_cifar10()) / 1e9, 16.8, 0.05);
  EXPECT_NEAR(forward_flops(gd_imagenet128()) / 1e9, 614.0, 0.5);
}
