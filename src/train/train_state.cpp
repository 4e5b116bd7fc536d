// Implementation of dmtrain/train/train_state.hpp.
#include "dmtrain/train/train_state.hpp"

#include <ATen/CPUGeneratorImpl.h>
#include <c10/util/StringUtil.h>
#include <torch/serialize.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "dmtrain/config/load.hpp"
#include "dmtrain/config/schema.hpp"
#include "dmtrain/train/checkpoint.hpp"
#include "dmtrain/util/error.hpp"
#include "dmtrain/util/file_hash.hpp"
#include "dmtrain/util/log.hpp"

namespace dmtrain::train {
namespace {

namespace fs = std::filesystem;

int64_t read_int(torch::serialize::InputArchive& a, const std::string& key) {
  at::Tensor t;
  a.read(key, t);
  return t.item<int64_t>();
}

// Keys whose change on resume would make the checkpoint mean something else: the network and
// its process (what the weights are), the data and its order (the loader position), the batch
// (the position's unit), the seed (the data order and the streams) and the EMA rates (the EMA
// files). Everything else (optim.*, schedules, cadences, eval, ...) may change and takes effect.
bool fixed_on_resume(const std::string& key) {
  static const std::vector<std::string> prefixes = {
      "model.",      "diffusion.",       "data.format",      "data.path",  "data.split",
      "data.labels", "data.random_flip", "train.batch_size", "train.seed", "train.ema_rates"};
  for (const auto& p : prefixes) {
    if (key.rfind(p, 0) == 0) return true;
  }
  return false;
}

// The keys whose value differs between two configs, as "key: old -> new".
std::vector<std::pair<std::string, std::string>> changed_keys(const config::RunConfig& saved,
                                                              const config::RunConfig& now) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& f : config::schema()) {
    const std::string a = config::yaml_text(f.get(saved)), b = config::yaml_text(f.get(now));
    if (a != b) out.emplace_back(f.key, a + " -> " + b);
  }
  return out;
}

}  // namespace

TrainState::TrainState(models::UNetModel& model, Ema& ema, optim::MdlrcAdam& optimizer,
                       timestep::TimestepSampler& sampler, LossScaler& scaler,
                       at::Generator t_generator, at::Generator noise_generator)
    : t_gen(std::move(t_generator)),
      noise_gen(std::move(noise_generator)),
      model_(model),
      ema_(ema),
      optimizer_(optimizer),
      sampler_(sampler),
      scaler_(scaler) {
  add(
      "model.pt", [this](const std::string& p) { torch::save(model_, p); },
      [this](const std::string& p) {
        // Loaded on the CPU, then moved: a checkpoint of a GPU run resumes anywhere.
        model_->to(at::kCPU);
        torch::load(model_, p, at::kCPU);
        model_->to(device_);
      });
  for (size_t i = 0; i < ema_.rates().size(); ++i) {
    add(
        checkpoint_ema_file(i),
        [this, i](const std::string& p) {
          torch::serialize::OutputArchive a;
          ema_.save(i, a);
          a.save_to(p);
        },
        [this, i](const std::string& p) {
          torch::serialize::InputArchive a;
          a.load_from(p, at::kCPU);
          ema_.load(i, a);
        });
  }
  add(
      "optimizer.pt", [this](const std::string& p) { torch::save(optimizer_, p); },
      [this](const std::string& p) {
        // The checkpoint brings the moments and the step counts; the options (lr, betas, the
        // schedules, K) stay the configured ones, so a changed optim.* takes effect on resume
        // as the run's config.yaml records (check_same_run logs each change).
        std::vector<std::unique_ptr<torch::optim::OptimizerOptions>> configured;
        for (auto& g : optimizer_.param_groups()) configured.push_back(g.options().clone());
        torch::load(optimizer_, p, device_);
        auto& groups = optimizer_.param_groups();
        TORCH_CHECK(groups.size() == configured.size(), "optimizer.pt has ", groups.size(),
                    " parameter groups, the run ", configured.size());
        for (size_t i = 0; i < groups.size(); ++i) groups[i].set_options(std::move(configured[i]));
      });
  add(
      "state.pt", [this](const std::string& p) { save_state_file(p); },
      [this](const std::string& p) { load_state_file(p); });
}

void TrainState::add(std::string file, std::function<void(const std::string&)> save,
                     std::function<void(const std::string&)> load) {
  entries_.push_back({std::move(file), std::move(save), std::move(load)});
}

void TrainState::add_entry(std::string file, std::function<void(const std::string&)> save,
                           std::function<void(const std::string&)> load) {
  for (const auto& e : entries_) TORCH_CHECK(e.file != file, "checkpoint file ", file, " twice");
  add(std::move(file), std::move(save), std::move(load));
}

std::vector<std::string> TrainState::names() const {
  std::vector<std::string> out;
  for (const auto& e : entries_) out.push_back(e.file);
  return out;
}

void TrainState::save_state_file(const std::string& path) const {
  torch::serialize::OutputArchive a;
  const auto& c = counters;
  a.write("iteration", at::tensor(c.iteration));
  a.write("loader_epoch", at::tensor(c.position.epoch));
  a.write("loader_offset", at::tensor(c.position.offset));
  a.write("loader_world_size", at::tensor(c.world_size));
  a.write("consecutive_nonfinite", at::tensor(c.consecutive_nonfinite));
  a.write("skipped_total", at::tensor(c.skipped_total));
  a.write("rng_timestep", t_gen.get_state());
  a.write("rng_noise", noise_gen.get_state());
  a.write("rng_cpu_default", at::detail::getDefaultCPUGenerator().get_state());
  if (noise_gen.device().is_cuda()) {
    a.write("rng_cuda_default",
            at::globalContext().defaultGenerator(noise_gen.device()).get_state());
  }
  torch::serialize::OutputArchive s;
  sampler_.save(s);
  a.write("sampler", s);
  torch::serialize::OutputArchive ls;
  scaler_.save(ls);
  a.write("loss_scaler", ls);
  a.save_to(path);
}

void TrainState::load_state_file(const std::string& path) {
  torch::serialize::InputArchive a;
  a.load_from(path, at::kCPU);
  auto& c = counters;
  c.iteration = read_int(a, "iteration");
  c.position = {read_int(a, "loader_epoch"), read_int(a, "loader_offset")};
  at::Tensor ws;
  c.world_size = a.try_read("loader_world_size", ws) ? ws.item<int64_t>() : 1;
  c.consecutive_nonfinite = read_int(a, "consecutive_nonfinite");
  c.skipped_total = read_int(a, "skipped_total");
  at::Tensor s;
  a.read("rng_timestep", s);
  t_gen.set_state(s);
  a.read("rng_noise", s);
  noise_gen.set_state(s);
  a.read("rng_cpu_default", s);
  at::Generator cpu_default = at::detail::getDefaultCPUGenerator();  // a handle: shares state
  cpu_default.set_state(s);
  if (noise_gen.device().is_cuda() && a.try_read("rng_cuda_default", s)) {
    at::Generator cuda_default = at::globalContext().defaultGenerator(noise_gen.device());
    cuda_default.set_state(s);
  }
  torch::serialize::InputArchive sa;
  a.read("sampler", sa);
  sampler_.load(sa);
  torch::serialize::InputArchive la;
  a.read("loss_scaler", la);
  scaler_.load(la);
}

std::string TrainState::save(const std::string& root, const config::RunConfig& cfg) const {
  // A failing write throws dmtrain::Error naming the file and the cause; the writer then removes
  // its temporary folder, and the committed checkpoints stay as they were.
  CheckpointWriter w(root, counters.iteration);
  for (const auto& e : entries_) w.write(e.file, e.save);
  w.write("config.yaml", [&cfg](const std::string& p) {
    std::ofstream out(p);
    if (!(out << config::dump_config(cfg)).flush()) throw Error("cannot write '" + p + "'");
  });
  const std::string dir = w.commit(kCheckpointFormat);
  prune_checkpoints(root, cfg.checkpoint.keep_last, cfg.checkpoint.keep_every);
  return dir;
}

void TrainState::load(const std::string& dir, const at::Device& device) {
  verify_checkpoint(dir);
  const int64_t format = checkpoint_format(dir);
  if (format > kCheckpointFormat) {
    throw Error(c10::str("checkpoint '", dir, "' has format ", format,
                         "; this dmtrain reads up to ", kCheckpointFormat,
                         " (written by a newer dmtrain?)"));
  }
  device_ = device;
  for (const auto& e : entries_) {
    try {
      e.load(dir + "/" + e.file);
    } catch (const c10::Error& err) {
      throw Error("checkpoint '" + dir + "': " + e.file +
                  " cannot be loaded into this run: " + err.what_without_backtrace());
    }
  }
}

std::string resolve_resume(const std::string& resume, const std::string& root) {
  if (resume.empty()) return "";
  if (resume == "auto") {
    auto latest = latest_valid_checkpoint(root);
    if (!latest) {
      log::info("--resume auto: no checkpoint in " + root + ", starting fresh");
      return "";
    }
    return latest->dir;
  }
  if (!fs::is_directory(resume))
    throw Error("--resume '" + resume + "' is not a checkpoint folder");
  return resume;
}

void check_same_run(const std::string& dir, const config::RunConfig& cfg, bool allow_change) {
  const std::string path = dir + "/config.yaml";
  config::RunConfig saved;
  try {
    saved = config::load_config(path);
  } catch (const Error& e) {
    throw Error(std::string("cannot read the resolved config of the checkpoint: ") + e.what());
  }
  std::string fixed;
  for (const auto& [key, change] : changed_keys(saved, cfg)) {
    if (fixed_on_resume(key)) {
      fixed += (fixed.empty() ? "" : ", ") + key + " (" + change + ")";
    } else if (key.rfind("train.run_dir", 0) != 0) {
      log::info("resume: " + key + " " + change + " (takes effect from the checkpoint on)");
    }
  }
  if (fixed.empty()) return;
  const std::string msg = "cannot change on resume: " + fixed + " differ from the checkpoint's " +
                          path + " (what its weights, data position or EMA files mean)";
  if (!allow_change) throw Error(msg + "; pass --allow-config-change to resume anyway");
  log::warn(msg + "; resuming anyway (--allow-config-change)");
}

data::LoaderPosition reshard_position(const TrainCounters& c, int64_t n_images, int64_t world) {
  if (c.world_size == world) return c.position;
  const int64_t global = c.position.offset * c.world_size;
  if (n_images % c.world_size != 0 || n_images % world != 0 || global % world != 0) {
    throw Error(c10::str("the checkpoint was written by a run of ", c.world_size,
                         " ranks and this run has ", world, "; its data position (epoch ",
                         c.position.epoch, ", ", global, " of ", n_images,
                         " images) cannot be split evenly over ", world, " ranks. Resume with ",
                         c.world_size, " ranks, or use a data set size divisible by both"));
  }
  log::warn(c10::str("resuming a ", c.world_size, "-rank checkpoint on ", world,
                     " ranks: data position resharded (epoch ", c.position.epoch, ", image ",
                     global, "); dropout masks on ranks > 0 are reseeded"));
  return {c.position.epoch, global / world};
}

std::string checkpoint_ema_file(size_t index) {
  return "ema_" + std::to_string(index) + ".pt";
}

std::string final_ema_file(double rate) {
  return "ema_" + ema_rate_text(rate) + ".pt";
}

std::string export_final_ema(const Ema& ema, size_t index, const std::string& run_dir) {
  const fs::path file = fs::path(run_dir) / final_ema_file(ema.rates().at(index));
  const std::string tmp = file.string() + ".tmp";
  // A stale sidecar (a re-exported run) must never vouch for the new bytes: until the new one is
  // written, the file loads as one without a checksum.
  fs::remove(util::hash_sidecar_path(file.string()));
  torch::serialize::OutputArchive a;
  ema.save(index, a);
  a.save_to(tmp);
  util::fsync_path(tmp);
  fs::rename(tmp, file);
  util::write_hash_sidecar(file.string());
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

}  // namespace dmtrain::train
