// reference_unet: the package and constructor arguments under which the references' own
// UNetModel has this network's state_dict, against the references' published recipes (ID's
// CIFAR10 flags and GD's 128x128 model card) written out by hand.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "dmtrain/models/reference_unet.hpp"
#include "dmtrain/models/unet_options.hpp"

namespace dm = dmtrain::models;
using json = nlohmann::json;

TEST(ReferenceUNet, IdCifar10IsImprovedDiffusionsUNetModel) {
  const dm::ReferenceUNet r = dm::reference_unet(dm::id_cifar10());
  EXPECT_EQ(r.package, "improved_diffusion");
  // ID's README: --image_size 32 --num_channels 128 --num_res_blocks 3 --learn_sigma True
  // --dropout 0.3, channel_mult (1, 2, 2, 2) for 32 px, attention at 16,8 (ds 2, 4), 4 heads.
  const json k = json::parse(r.kwargs_json);
  EXPECT_EQ(k, json::parse(R"({"in_channels": 3, "model_channels": 128, "out_channels": 6,
    "num_res_blocks": 3, "attention_resolutions": [2, 4], "dropout": 0.3,
    "channel_mult": [1, 2, 2, 2], "conv_resample": true, "dims": 2, "num_classes": null,
    "use_checkpoint": false, "num_heads": 4, "num_heads_upsample": -1,
    "use_scale_shift_norm": true})"));
}

TEST(ReferenceUNet, GdImagenet128IsGuidedDiffusionsUNetModel) {
  const dm::ReferenceUNet r = dm::reference_unet(dm::gd_imagenet128());
  EXPECT_EQ(r.package, "guided_diffusion");
  // GD's model card for 128x128_diffusion.pt: --attention_resolutions 32,16,8 --class_cond True
  // --image_size 128 --learn_sigma True --num_channels 256 --num_heads 4 --num_res_blocks 2
  // --resblock_updown True --use_scale_shift_norm True (channel_mult 1,1,2,3,4 for 128 px).
  const json k = json::parse(r.kwargs_json);
  EXPECT_EQ(k["image_size"], 128);
  EXPECT_EQ(k["model_channels"], 256);
  EXPECT_EQ(k["out_channels"], 6);
  EXPECT_EQ(k["attention_resolutions"], json::array({4, 8, 16}));
  EXPECT_EQ(k["channel_mult"], json::array({1, 1, 2, 3, 4}));
  EXPECT_EQ(k["num_classes"], 1000);
  EXPECT_EQ(k["num_heads"], 4);
  EXPECT_EQ(k["num_head_channels"], -1);
  EXPECT_EQ(k["resblock_updown"], true);
  EXPECT_EQ(k["use_new_attention_order"], false);
}

TEST(ReferenceUNet, GuidedDiffusionOnlyOptionsNameGuidedDiffusion) {
  dm::UNetOptions o = dm::id_cifar10();
  o.num_head_channels(64);
  EXPECT_EQ(dm::reference_unet(o).package, "guided_diffusion");
  o = dm::id_cifar10();
  o.channel_mult({0.5, 1, 2});  // GD's 512 px first level: a fractional multiplier
  const dm::ReferenceUNet r = dm::reference_unet(o);
  EXPECT_EQ(r.package, "guided_diffusion");
  EXPECT_EQ(json::parse(r.kwargs_json)["channel_mult"], json::array({0.5, 1, 2}));
}
