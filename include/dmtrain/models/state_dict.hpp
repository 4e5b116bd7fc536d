// State-dict files: load reference checkpoints into a LibTorch module by parameter name, and
// save ours so that Python reads them.
//
// Formats, chosen by the file's extension:
//   .safetensors -> safetensors (safetensors.hpp);
//   anything else -> PyTorch's zip format as written by torch.save(model.state_dict(), f)
//                   (read with torch::pickle_load; a flat {name: tensor} dict, OrderedDict
//                   included). Files we save load in Python with torch.load(f) (weights_only).
// Keys are the module's named_parameters() and named_buffers() (recursive), i.e. exactly the
// reference state_dict keys for UNetModel. Values are copied into the existing tensors, cast to
// their dtype and device (an fp16 checkpoint loads into an fp32 model).
#pragma once
#include <string>
#include <vector>

#include <torch/nn/module.h>

#include "dmtrain/models/safetensors.hpp"

namespace dmtrain::models {

struct LoadReport {
  std::vector<std::string> missing;     // in the module, not in the file (non-strict only)
  std::vector<std::string> unexpected;  // in the file, not in the module (non-strict only)
};

// Reads every tensor of a state-dict file (either format), in file order.
NamedTensors read_state_dict_file(const std::string& path);

enum class StateDictFormat { kPt, kSafetensors };
// The format a file name selects: ".safetensors" -> kSafetensors, anything else -> kPt.
StateDictFormat state_dict_format_of(const std::string& path);

// Writes tensors to `path` in the format its extension selects, or in `format` (parent folder
// must exist).
void write_state_dict_file(const NamedTensors& tensors, const std::string& path);
void write_state_dict_file(const NamedTensors& tensors, const std::string& path,
                           StateDictFormat format);

// Writes tensors to `path` in `format` for other tools to read: into "<path>.tmp", fsync'ed,
// renamed, so that a crash or a full disk never leaves a partial file under `path` (an existing
// file there is replaced only by a complete one). A failed write is a dmtrain::Error naming the
// file and the cause, with no .tmp left behind.
void commit_state_dict_file(const NamedTensors& tensors, const std::string& path,
                            StateDictFormat format);

// Loads `path` into `module`. Throws dmtrain::Error naming the file and listing every
// mis-shaped key (expected vs found shape) and, when strict, every missing and unexpected key;
// nothing is copied unless the whole load can succeed. Non-strict loads skip missing and
// unexpected keys and report them.
LoadReport load_state_dict(torch::nn::Module& module, const std::string& path, bool strict = true);

// Saves the module's parameters and buffers (on the CPU, dtype kept) to `path`.
void save_state_dict(const torch::nn::Module& module, const std::string& path);

}  // namespace dmtrain::models
