#include "dmtrain/models/flops.hpp"

#include "dmtrain/models/unet_plan.hpp"

namespace dmtrain::models {
namespace {

int64_t conv(int64_t in, int64_t out, int64_t k, int64_t side) {
  return 2 * in * out * k * k * side * side;
}

// FLOPs of one layer whose input has spatial side `side`; updates `side` to its output's.
int64_t layer_flops(const LayerSpec& l, const UNetOptions& o, int64_t emb_dim, int64_t& side) {
  switch (l.kind) {
    case LayerKind::kConv:
      return conv(l.in_channels, l.out_channels, 3, side);
    case LayerKind::kResBlock: {
      // in_layers: norm, SiLU, [resample], conv -- the conv runs at the resampled side.
      if (l.down) side /= 2;
      if (l.up) side *= 2;
      int64_t f = conv(l.in_channels, l.out_channels, 3, side);
      f += 2 * emb_dim * (o.use_scale_shift_norm() ? 2 : 1) * l.out_channels;
      f += conv(l.out_channels, l.out_channels, 3, side);
      if (l.in_channels != l.out_channels) f += conv(l.in_channels, l.out_channels, 1, side);
      return f;
    }
    case LayerKind::kAttention: {
      const int64_t t = side * side, c = l.in_channels;
      return 2 * c * 3 * c * t + 2 * 2 * t * t * c + 2 * c * c * t;
    }
    case LayerKind::kDownsample:
      side /= 2;
      return o.conv_resample() ? conv(l.in_channels, l.out_channels, 3, side) : 0;
    case LayerKind::kUpsample:
      side *= 2;
      return o.conv_resample() ? conv(l.in_channels, l.out_channels, 3, side) : 0;
  }
  return 0;
}

}  // namespace

int64_t forward_flops(const UNetOptions& o) {
  const UNetPlan plan = plan_unet(o);
  const int64_t mc = o.model_channels();
  int64_t side = o.image_size();
  // Timestep embedding MLP (mc -> emb -> emb); the label embedding is a lookup.
  int64_t f = 2 * mc * plan.emb_dim + 2 * plan.emb_dim * plan.emb_dim;
  for (const auto& block : plan.input_blocks) {
    for (const auto& l : block) f += layer_flops(l, o, plan.emb_dim, side);
  }
  for (const auto& l : plan.middle_block) f += layer_flops(l, o, plan.emb_dim, side);
  for (const auto& block : plan.output_blocks) {
    for (const auto& l : block) f += layer_flops(l, o, plan.emb_dim, side);
  }
  f += conv(plan.final_ch, o.out_channels(), 3, side);  // out: norm, SiLU, conv
  return f;
}

}  // namespace dmtrain::models
