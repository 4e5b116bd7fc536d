// The reference UNetModel that a dmtrain UNet's weights load into, and how to build it there.
//
// reference_unet(options) names the package whose UNetModel has exactly this network's modules
// and state_dict keys -- "improved_diffusion" when the options use none of Guided-Diffusion's
// additions (resblock_updown, num_head_channels, the new attention order, a first width other
// than model_channels), else "guided_diffusion" -- and the keyword arguments of that UNetModel's
// constructor as a JSON object, e.g. for ID's CIFAR10 recipe
//   {"in_channels": 3, "model_channels": 128, "out_channels": 6, "num_res_blocks": 3,
//    "attention_resolutions": [2, 4], "dropout": 0.3, "channel_mult": [1, 2, 2, 2], ...}
// so that Python builds the model with UNetModel(**kwargs) and loads an export strictly.
#pragma once
#include <string>

#include "dmtrain/models/unet_options.hpp"

namespace dmtrain::models {

struct ReferenceUNet {
  std::string package;      // "improved_diffusion" | "guided_diffusion"
  std::string kwargs_json;  // the constructor's keyword arguments, one JSON object
};

ReferenceUNet reference_unet(const UNetOptions& options);

}  // namespace dmtrain::models
