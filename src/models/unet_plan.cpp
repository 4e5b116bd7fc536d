#include "dmtrain/models/unet_plan.hpp"

#include <algorithm>

namespace dmtrain::models {
namespace {

using Shapes = std::vector<std::pair<std::string, std::vector<int64_t>>>;

bool has_attention(const UNetOptions& o, int64_t ds) {
  const auto& a = o.attention_resolutions();
  return std::find(a.begin(), a.end(), ds) != a.end();
}

int64_t heads_for(const UNetOptions& o, int64_t channels, int64_t num_heads) {
  return o.num_head_channels() == -1 ? num_heads : channels / o.num_head_channels();
}

LayerSpec res(int64_t in, int64_t out, bool up = false, bool down = false) {
  return LayerSpec{LayerKind::kResBlock, in, out, up, down, 0};
}

LayerSpec attn(int64_t ch, int64_t heads) {
  return LayerSpec{LayerKind::kAttention, ch, ch, false, false, heads};
}

void add_group_norm(Shapes& s, const std::string& p, int64_t c) {
  s.push_back({p + "weight", {c}});
  s.push_back({p + "bias", {c}});
}

void add_conv(Shapes& s, const std::string& p, int64_t in, int64_t out, int64_t k, int dims = 2) {
  std::vector<int64_t> w{out, in, k};
  if (dims == 2) w.push_back(k);
  s.push_back({p + "weight", w});
  s.push_back({p + "bias", {out}});
}

void add_linear(Shapes& s, const std::string& p, int64_t in, int64_t out) {
  s.push_back({p + "weight", {out, in}});
  s.push_back({p + "bias", {out}});
}

void add_layer(Shapes& s, const std::string& p, const LayerSpec& l, const UNetOptions& o,
               int64_t emb_dim) {
  switch (l.kind) {
    case LayerKind::kConv:
      add_conv(s, p, l.in_channels, l.out_channels, 3);
      break;
    case LayerKind::kResBlock:
      add_group_norm(s, p + "in_layers.0.", l.in_channels);
      add_conv(s, p + "in_layers.2.", l.in_channels, l.out_channels, 3);
      add_linear(s, p + "emb_layers.1.", emb_dim,
                 o.use_scale_shift_norm() ? 2 * l.out_channels : l.out_channels);
      add_group_norm(s, p + "out_layers.0.", l.out_channels);
      add_conv(s, p + "out_layers.3.", l.out_channels, l.out_channels, 3);
      if (l.out_channels != l.in_channels) {
        add_conv(s, p + "skip_connection.", l.in_channels, l.out_channels, 1);
      }
      break;
    case LayerKind::kAttention:
      add_group_norm(s, p + "norm.", l.in_channels);
      add_conv(s, p + "qkv.", l.in_channels, 3 * l.in_channels, 1, 1);
      add_conv(s, p + "proj_out.", l.in_channels, l.in_channels, 1, 1);
      break;
    case LayerKind::kDownsample:
      if (o.conv_resample()) add_conv(s, p + "op.", l.in_channels, l.out_channels, 3);
      break;
    case LayerKind::kUpsample:
      if (o.conv_resample()) add_conv(s, p + "conv.", l.in_channels, l.out_channels, 3);
      break;
  }
}

}  // namespace

UNetPlan plan_unet(const UNetOptions& o) {
  o.validate();
  UNetPlan plan;
  const int64_t mc = o.model_channels();
  const auto width = [mc](double mult) {
    return static_cast<int64_t>(mult * static_cast<double>(mc));
  };
  const int64_t heads_up = o.num_heads_upsample() == -1 ? o.num_heads() : o.num_heads_upsample();
  plan.emb_dim = 4 * mc;
  int64_t ch = plan.input_ch = width(o.channel_mult()[0]);
  plan.input_blocks.push_back({LayerSpec{LayerKind::kConv, o.in_channels(), ch}});
  std::vector<int64_t> skip_chans{ch};
  int64_t ds = 1;
  const auto levels = o.channel_mult().size();
  for (size_t level = 0; level < levels; ++level) {
    const int64_t level_ch = width(o.channel_mult()[level]);
    for (int64_t i = 0; i < o.num_res_blocks(); ++i) {
      std::vector<LayerSpec> block{res(ch, level_ch)};
      ch = level_ch;
      if (has_attention(o, ds)) block.push_back(attn(ch, heads_for(o, ch, o.num_heads())));
      plan.input_blocks.push_back(block);
      skip_chans.push_back(ch);
    }
    if (level + 1 != levels) {
      plan.input_blocks.push_back({o.resblock_updown()
                                       ? res(ch, ch, false, true)
                                       : LayerSpec{LayerKind::kDownsample, ch, ch}});
      skip_chans.push_back(ch);
      ds *= 2;
    }
  }
  plan.middle_block = {res(ch, ch), attn(ch, heads_for(o, ch, o.num_heads())), res(ch, ch)};
  for (size_t level = levels; level-- > 0;) {
    const int64_t level_ch = width(o.channel_mult()[level]);
    for (int64_t i = 0; i <= o.num_res_blocks(); ++i) {
      const int64_t skip = skip_chans.back();
      skip_chans.pop_back();
      std::vector<LayerSpec> block{res(ch + skip, level_ch)};
      ch = level_ch;
      if (has_attention(o, ds)) block.push_back(attn(ch, heads_for(o, ch, heads_up)));
      if (level != 0 && i == o.num_res_blocks()) {
        block.push_back(o.resblock_updown() ? res(ch, ch, true, false)
                                            : LayerSpec{LayerKind::kUpsample, ch, ch});
        ds /= 2;
      }
      plan.output_blocks.push_back(block);
    }
  }
  plan.final_ch = ch;
  return plan;
}

std::vector<std::pair<std::string, std::vector<int64_t>>> parameter_shapes(const UNetOptions& o) {
  const UNetPlan plan = plan_unet(o);
  Shapes s;
  add_linear(s, "time_embed.0.", o.model_channels(), plan.emb_dim);
  add_linear(s, "time_embed.2.", plan.emb_dim, plan.emb_dim);
  if (o.num_classes() > 0) s.push_back({"label_emb.weight", {o.num_classes(), plan.emb_dim}});
  const auto add_blocks = [&](const std::string& prefix,
                              const std::vector<std::vector<LayerSpec>>& blocks) {
    for (size_t b = 0; b < blocks.size(); ++b) {
      for (size_t l = 0; l < blocks[b].size(); ++l) {
        add_layer(s, prefix + std::to_string(b) + "." + std::to_string(l) + ".", blocks[b][l], o,
                  plan.emb_dim);
      }
    }
  };
  add_blocks("input_blocks.", plan.input_blocks);
  for (size_t l = 0; l < plan.middle_block.size(); ++l) {
    add_layer(s, "middle_block." + std::to_string(l) + ".", plan.middle_block[l], o, plan.emb_dim);
  }
  add_blocks("output_blocks.", plan.output_blocks);
  add_group_norm(s, "out.0.", plan.final_ch);
  add_conv(s, "out.2.", plan.input_ch, o.out_channels(), 3);
  return s;
}

int64_t count_parameters(const UNetOptions& o) {
  int64_t total = 0;
  for (const auto& [name, shape] : parameter_shapes(o)) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    total += n;
  }
  return total;
}

}  // namespace dmtrain::models
