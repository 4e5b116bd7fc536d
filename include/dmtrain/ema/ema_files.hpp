// EMA files: the weights of one EMA as a torch archive keyed by parameter name (Ema::save), inside
// a checkpoint folder (ema_<index>.pt, covered by the checkpoint's manifest) or exported at the
// end of a run (<run_dir>/ema_<rate>.pt, with a checksum sidecar, and the same weights as a plain
// state dict <run_dir>/ema_<rate>.safetensors for Python tools, also with a sidecar). Every reader
// of EMA weights (sample, fid, nll, consistency, ...) loads them through load_ema_weights.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

#include "dmtrain/ema/ema.hpp"
#include "dmtrain/models/unet.hpp"

namespace dmtrain::ema {

// File names: EMA i inside a checkpoint folder, and the final export of a finished run
// (<run_dir>/ema_<rate>.pt, the rate printed with 6 significant digits: 0.9999 -> ema_0.9999.pt).
std::string checkpoint_ema_file(size_t index);
std::string final_ema_file(double rate);
std::string final_ema_safetensors_file(double rate);  // ema_<rate>.safetensors
// Writes EMA `index` of `ema` as <run_dir>/final_ema_file(rate) and as
// <run_dir>/final_ema_safetensors_file(rate) (keys: the reference state_dict names): each into a
// temporary file, fsync'ed, renamed, then its checksum sidecar <file>.fnv (util/file_hash.hpp).
// Returns the .pt file's path.
std::string export_final_ema(const Ema& ema, size_t index, const std::string& run_dir);
// Loads EMA `index` of `rates` from an EMA file (either kind above) into model's weights.
// Throws dmtrain::Error naming the file when it cannot be read, does not fit the model, or does
// not match its checksum sidecar; a final export without a sidecar (older runs) loads with a
// warning (a checkpoint's EMA files are covered by the checkpoint's manifest instead).
void load_ema_weights(models::UNetModel& model, const std::vector<double>& rates, size_t index,
                      const std::string& file);

}  // namespace dmtrain::ema
