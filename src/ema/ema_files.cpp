// Implementation of dmtrain/ema/ema_files.hpp.
#include "dmtrain/ema/ema_files.hpp"

#include <torch/serialize.h>

#include <filesystem>

#include "dmtrain/models/state_dict.hpp"
#include "dmtrain/util/checked_write.hpp"
#include "dmtrain/util/error.hpp"
#include "dmtrain/util/file_hash.hpp"
#include "dmtrain/util/log.hpp"

namespace dmtrain::ema {

namespace fs = std::filesystem;

std::string checkpoint_ema_file(size_t index) {
  return "ema_" + std::to_string(index) + ".pt";
}

std::string final_ema_file(double rate) {
  return "ema_" + ema_rate_text(rate) + ".pt";
}

std::string final_ema_safetensors_file(double rate) {
  return "ema_" + ema_rate_text(rate) + ".safetensors";
}

std::string export_final_ema(const Ema& ema, size_t index, const std::string& run_dir) {
  const double rate = ema.rates().at(index);
  const fs::path file = fs::path(run_dir) / final_ema_file(rate);
  const std::string tmp = file.string() + ".tmp";
  // A stale sidecar (a re-exported run) must never vouch for the new bytes: until the new one is
  // written, the file loads as one without a checksum.
  fs::remove(util::hash_sidecar_path(file.string()));
  torch::serialize::OutputArchive a;
  ema.save(index, a);
  try {
    // Checked writes: LibTorch's writer aborts the process on a full disk (util/checked_write.hpp).
    util::write_checked(
        tmp, [&a](const std::string& p) { a.save_to(p); }, "EMA file");
    util::fsync_path(tmp);
    fs::rename(tmp, file);
  } catch (...) {
    std::error_code ec;
    fs::remove(tmp, ec);  // no torn .tmp left behind; a previous export, if any, is untouched
    throw;
  }
  util::write_hash_sidecar(file.string());

  const std::string st = (fs::path(run_dir) / final_ema_safetensors_file(rate)).string();
  fs::remove(util::hash_sidecar_path(st));
  models::NamedTensors tensors;
  for (size_t k = 0; k < ema.names().size(); ++k) {
    tensors.emplace_back(ema.names()[k], ema.params(index)[k]);
  }
  models::commit_state_dict_file(tensors, st, models::StateDictFormat::kSafetensors);
  util::write_hash_sidecar(st);
  return file.string();
}

void load_ema_weights(models::UNetModel& model, const std::vector<double>& rates, size_t index,
                      const std::string& file) {
  if (!fs::is_regular_file(file)) throw Error("EMA file '" + file + "' does not exist");
  // Before parsing: flipped bits in a tensor's data parse fine and give NaN samples.
  if (!util::verify_hash_sidecar(file) && !fs::exists(fs::path(file).parent_path() / "COMMITTED")) {
    log::warn("EMA file '" + file + "' has no checksum file " + util::hash_sidecar_path(file) +
              " (written by an older dmtrain): loading it unverified");
  }
  Ema ema(*model, rates);
  torch::serialize::InputArchive a;
  try {
    a.load_from(file, at::kCPU);
  } catch (const c10::Error& e) {
    throw Error("cannot read EMA file '" + file + "': " + e.what_without_backtrace());
  }
  try {
    ema.load(index, a);
  } catch (const Error& e) {
    throw Error("EMA file '" + file + "' does not match the model of its config.yaml: " + e.what());
  } catch (const c10::Error& e) {
    throw Error("EMA file '" + file +
                "' does not match the model of its config.yaml: " + e.what_without_backtrace());
  }
  ema.copy_to(index, *model);
}

}  // namespace dmtrain::ema
