#include "dmtrain/models/unet_options.hpp"

#include <sstream>

#include "dmtrain/util/error.hpp"

namespace dmtrain::models {
namespace {

[[noreturn]] void fail(const std::string& field, const std::string& what) {
  throw Error("UNetOptions." + field + ": " + what);
}

void require_positive(const std::string& field, int64_t value) {
  if (value <= 0) fail(field, "must be positive, got " + std::to_string(value));
}

}  // namespace

void UNetOptions::validate() const {
  require_positive("image_size", image_size_);
  require_positive("in_channels", in_channels_);
  require_positive("model_channels", model_channels_);
  require_positive("out_channels", out_channels_);
  require_positive("num_res_blocks", num_res_blocks_);
  if (channel_mult_.empty()) fail("channel_mult", "must list at least one level");
  if (dropout_ < 0.0 || dropout_ >= 1.0) {
    fail("dropout", "must be in [0, 1), got " + std::to_string(dropout_));
  }
  if (num_classes_ < 0) fail("num_classes", "must be >= 0 (0 = unconditional)");
  for (double mult : channel_mult_) {
    const auto ch = static_cast<int64_t>(mult * static_cast<double>(model_channels_));
    if (ch <= 0 || ch % 32 != 0) {
      std::ostringstream msg;
      msg << "level width int(" << mult << " * " << model_channels_ << ") = " << ch
          << " must be a positive multiple of 32 (GroupNorm with 32 groups)";
      fail("channel_mult", msg.str());
    }
    if (num_head_channels_ != -1 && (num_head_channels_ <= 0 || ch % num_head_channels_ != 0)) {
      fail("num_head_channels", "must divide every level width; " + std::to_string(ch) +
                                    " is not divisible by " + std::to_string(num_head_channels_));
    }
    if (num_head_channels_ == -1) {
      for (int64_t heads :
           {num_heads_, num_heads_upsample_ == -1 ? num_heads_ : num_heads_upsample_}) {
        if (heads <= 0 || ch % heads != 0) {
          fail("num_heads",
               "heads " + std::to_string(heads) + " must divide level width " + std::to_string(ch));
        }
      }
    }
  }
  const int64_t levels = static_cast<int64_t>(channel_mult_.size());
  const int64_t total_down = int64_t{1} << (levels - 1);
  if (image_size_ % total_down != 0) {
    fail("image_size",
         std::to_string(image_size_) + " is not divisible by the total downsampling " +
             std::to_string(total_down) + " of " + std::to_string(levels) + " levels");
  }
  for (int64_t ds : attention_resolutions_) {
    if (ds <= 0) fail("attention_resolutions", "downsample rates must be positive");
  }
}

std::vector<int64_t> attention_ds_from_resolutions(int64_t image_size,
                                                   const std::vector<int64_t>& resolutions) {
  std::vector<int64_t> ds;
  ds.reserve(resolutions.size());
  for (int64_t r : resolutions) {
    if (r <= 0 || image_size % r != 0) {
      throw Error("attention resolution " + std::to_string(r) + " does not divide image_size " +
                  std::to_string(image_size));
    }
    ds.push_back(image_size / r);
  }
  return ds;
}

UNetOptions id_cifar10() {
  UNetOptions o;
  o.image_size(32)
      .in_channels(3)
      .model_channels(128)
      .num_res_blocks(3)
      .attention_resolutions(attention_ds_from_resolutions(32, {16, 8}))
      .dropout(0.3)
      .channel_mult({1, 2, 2, 2})
      .num_classes(0)
      .num_heads(4)
      .num_head_channels(-1)
      .num_heads_upsample(-1)
      .use_scale_shift_norm(true)
      .resblock_updown(false)
      .use_new_attention_order(false)
      .learn_sigma(true);
  return o;
}

UNetOptions gd_imagenet128() {
  UNetOptions o;
  o.image_size(128)
      .in_channels(3)
      .model_channels(256)
      .num_res_blocks(2)
      .attention_resolutions(attention_ds_from_resolutions(128, {32, 16, 8}))
      .dropout(0.0)
      .channel_mult({1, 1, 2, 3, 4})
      .num_classes(1000)
      .num_heads(4)
      .num_head_channels(-1)
      .num_heads_upsample(-1)
      .use_scale_shift_norm(true)
      .resblock_updown(true)
      .use_new_attention_order(false)
      .learn_sigma(true);
  return o;
}

}  // namespace dmtrain::models
