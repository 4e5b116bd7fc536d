// The UNet's architecture as data: which layer sits in which block, with which channel counts.
//
// UNetImpl builds its modules from this plan, and count_parameters / parameter_shapes read the
// same plan without allocating a single weight -- the GD ImageNet128 model has 421M parameters,
// which a test must be able to count in microseconds. The channel bookkeeping (skip-connection
// stack, ds doubling, attention placement) follows the references' UNetModel.__init__ exactly;
// a test checks the plan's shapes against the parameters of a built model.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "dmtrain/models/unet_options.hpp"

namespace dmtrain::models {

enum class LayerKind { kConv, kResBlock, kAttention, kDownsample, kUpsample };

// One child of a TimestepEmbedSequential block (registered as "0", "1", ... in order).
struct LayerSpec {
  LayerKind kind;
  int64_t in_channels;
  int64_t out_channels;
  bool up = false;        // ResBlock with nearest upsampling inside (resblock_updown)
  bool down = false;      // ResBlock with average-pool downsampling inside (resblock_updown)
  int64_t num_heads = 0;  // attention heads (kAttention only)
};

struct UNetPlan {
  int64_t emb_dim = 0;   // 4 * model_channels: width of the timestep (and label) embedding
  int64_t input_ch = 0;  // int(channel_mult[0] * model_channels): first conv out, last conv in
  int64_t final_ch = 0;  // channels entering the output GroupNorm
  std::vector<std::vector<LayerSpec>> input_blocks;
  std::vector<LayerSpec> middle_block;
  std::vector<std::vector<LayerSpec>> output_blocks;
};

// Validates `options` (dmtrain::Error on bad input) and lays out the network.
UNetPlan plan_unet(const UNetOptions& options);

// Every parameter's state_dict key and shape, in the order PyTorch's state_dict lists them.
std::vector<std::pair<std::string, std::vector<int64_t>>> parameter_shapes(
    const UNetOptions& options);

// Number of scalar parameters of the UNet `options` describe, without building it.
int64_t count_parameters(const UNetOptions& options);

}  // namespace dmtrain::models
