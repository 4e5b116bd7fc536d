// Implementation of dmtrain/models/reference_unet.hpp.
#include "dmtrain/models/reference_unet.hpp"

#include <cmath>
#include <sstream>

namespace dmtrain::models {
namespace {

bool integral(double v) {
  return std::floor(v) == v;
}

// A double as Python reads it back exactly (17 significant digits where needed).
std::string number(double v) {
  if (integral(v) && std::abs(v) < 1e15) return std::to_string(static_cast<int64_t>(v));
  std::ostringstream os;
  os.precision(17);
  os << v;
  return os.str();
}

}  // namespace

ReferenceUNet reference_unet(const UNetOptions& o) {
  bool gd = o.resblock_updown() || o.num_head_channels() != -1 || o.use_new_attention_order();
  for (size_t i = 0; i < o.channel_mult().size(); ++i) {
    // ID's first conv is model_channels wide, GD's int(channel_mult[0] * model_channels); ID's
    // widths are int(mult) * model_channels only for whole multipliers.
    if (!integral(o.channel_mult()[i]) || (i == 0 && o.channel_mult()[0] != 1.0)) gd = true;
  }
  std::ostringstream js;
  const auto list = [&js](const auto& values) {
    js << '[';
    for (size_t i = 0; i < values.size(); ++i) {
      js << (i ? ", " : "") << number(static_cast<double>(values[i]));
    }
    js << ']';
  };
  const auto flag = [](bool b) { return b ? "true" : "false"; };
  js << '{';
  if (gd) js << "\"image_size\": " << o.image_size() << ", ";
  js << "\"in_channels\": " << o.in_channels() << ", \"model_channels\": " << o.model_channels()
     << ", \"out_channels\": " << o.out_channels() << ", \"num_res_blocks\": " << o.num_res_blocks()
     << ", \"attention_resolutions\": ";
  list(o.attention_resolutions());
  js << ", \"dropout\": " << number(o.dropout()) << ", \"channel_mult\": ";
  list(o.channel_mult());
  js << ", \"conv_resample\": " << flag(o.conv_resample()) << ", \"dims\": 2, \"num_classes\": ";
  if (o.num_classes() > 0) {
    js << o.num_classes();
  } else {
    js << "null";
  }
  js << ", \"use_checkpoint\": false, \"num_heads\": " << o.num_heads();
  if (gd) js << ", \"num_head_channels\": " << o.num_head_channels();
  js << ", \"num_heads_upsample\": " << o.num_heads_upsample()
     << ", \"use_scale_shift_norm\": " << flag(o.use_scale_shift_norm());
  if (gd) {
    js << ", \"resblock_updown\": " << flag(o.resblock_updown())
       << ", \"use_new_attention_order\": " << flag(o.use_new_attention_order());
  }
  js << '}';
  return {gd ? "guided_diffusion" : "improved_diffusion", js.str()};
}

}  // namespace dmtrain::models
