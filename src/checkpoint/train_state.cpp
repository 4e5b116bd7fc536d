// Implementation of dmtrain/checkpoint/train_state.hpp.
#include "dmtrain/checkpoint/train_state.hpp"

#include <ATen/CPUGeneratorImpl.h>
#include <c10/util/StringUtil.h>
#include <torch/serialize.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "dmtrain/checkpoint/checkpoint.hpp"
#include "dmtrain/config/diff.hpp"
#include "dmtrain/config/load.hpp"
#include "dmtrain/ema/ema_files.hpp"
#include "dmtrain/util/error.hpp"
#include "dmtrain/util/file_hash.hpp"
#include "dmtrain/util/log.hpp"

namespace dmtrain::checkpoint {
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

// The tensors torch::save of `module` writes, in the order it writes them: as
// torch::nn::Module::save walks a module (its parameters, its buffers, then its serializable
// children, recursively).
void module_tensors(const torch::nn::Module& module, std::vector<at::Tensor>& out) {
  for (const auto& p : module.named_parameters(/*recurse=*/false)) out.push_back(p.value());
  for (const auto& b : module.named_buffers(/*recurse=*/false)) out.push_back(b.value());
  for (const auto& c : module.named_children()) {
    if (c.value()->is_serializable()) module_tensors(*c.value(), out);
  }
}

// A plain module of live's structure (names, nesting, requires_grad) holding host[pos...] in
// module_tensors order: torch::save of it writes what torch::save of `live` writes, but from
// the host copies.
std::shared_ptr<torch::nn::Module> host_module(const torch::nn::Module& live,
                                               const std::vector<at::Tensor>& host, size_t& pos) {
  auto out = std::make_shared<torch::nn::Module>();
  for (const auto& p : live.named_parameters(false)) {
    out->register_parameter(p.key(), host.at(pos++), p.value().requires_grad());
  }
  for (const auto& b : live.named_buffers(false)) out->register_buffer(b.key(), host.at(pos++));
  for (const auto& c : live.named_children()) {
    if (c.value()->is_serializable())
      out->register_module(c.key(), host_module(*c.value(), host, pos));
  }
  return out;
}

void write_config_file(const config::RunConfig& cfg, const std::string& p) {
  std::ofstream out(p);
  if (!(out << config::dump_config(cfg)).flush()) throw Error("cannot write '" + p + "'");
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

TrainState::TrainState(models::UNetModel& model, ema::Ema& ema, optim::MdlrcAdam& optimizer,
                       timestep::TimestepSampler& sampler, optim::LossScaler& scaler,
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
  entries_.back().tensors = [this] {
    std::vector<at::Tensor> out;
    module_tensors(*model_, out);
    return out;
  };
  entries_.back().from_host = [this](const std::vector<at::Tensor>& host) -> FileWriter {
    size_t pos = 0;
    std::shared_ptr<torch::nn::Module> copy = host_module(*model_, host, pos);
    return [copy](const std::string& p) { torch::save(copy, p); };
  };
  for (size_t i = 0; i < ema_.rates().size(); ++i) {
    add(
        ema::checkpoint_ema_file(i),
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
    entries_.back().tensors = [this, i] { return ema_.params(i); };
    entries_.back().from_host = [this](const std::vector<at::Tensor>& host) -> FileWriter {
      // As Ema::save writes the live averages.
      return [names = ema_.names(), host](const std::string& p) {
        torch::serialize::OutputArchive a;
        for (size_t j = 0; j < names.size(); ++j) a.write(names[j], host.at(j));
        a.save_to(p);
      };
    };
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
  // The moments of every parameter, in the order of the state map (which torch's optimizer
  // serialization walks).
  entries_.back().tensors = [this] {
    std::vector<at::Tensor> out;
    for (const auto& item : optimizer_.state()) {
      const auto& st = static_cast<const optim::MdlrcAdamParamState&>(*item.second);
      out.push_back(st.exp_avg());
      out.push_back(st.exp_avg_sq());
    }
    return out;
  };
  // A second MdlrcAdam with the live one's groups (the same parameter tensors: the state is keyed
  // by their addresses), options, iteration and step counts, but the moments' host copies, its
  // state inserted in the live map's order (so it is walked, and written, in the same order).
  entries_.back().from_host = [this](const std::vector<at::Tensor>& host) -> FileWriter {
    std::vector<torch::optim::OptimizerParamGroup> groups;
    for (const auto& g : optimizer_.param_groups())
      groups.emplace_back(g.params(), g.options().clone());
    auto copy = std::make_shared<optim::MdlrcAdam>(
        groups, static_cast<const optim::MdlrcAdamOptions&>(optimizer_.defaults()));
    copy->set_iteration(optimizer_.iteration());
    size_t pos = 0;
    for (const auto& item : optimizer_.state()) {
      auto st = std::make_unique<optim::MdlrcAdamParamState>(
          static_cast<const optim::MdlrcAdamParamState&>(*item.second));
      st->exp_avg(host.at(pos));
      st->exp_avg_sq(host.at(pos + 1));
      pos += 2;
      copy->state()[item.first] = std::move(st);
    }
    return [copy](const std::string& p) { torch::save(*copy, p); };
  };
  add(
      "state.pt", [this](const std::string& p) { save_state_file(p); },
      [this](const std::string& p) { load_state_file(p); });
}

void TrainState::add(std::string file, std::function<void(const std::string&)> save,
                     std::function<void(const std::string&)> load) {
  entries_.push_back({std::move(file), std::move(save), std::move(load), nullptr, nullptr});
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
  w.write("config.yaml", [&cfg](const std::string& p) { write_config_file(cfg, p); });
  const std::string dir = w.commit(kCheckpointFormat);
  prune_checkpoints(root, cfg.checkpoint.keep_last, cfg.checkpoint.keep_every);
  return dir;
}

std::vector<at::Tensor> TrainState::snapshot_tensors() const {
  std::vector<at::Tensor> live;
  for (const auto& e : entries_) {
    if (!e.tensors) continue;
    auto t = e.tensors();
    live.insert(live.end(), t.begin(), t.end());
  }
  return live;
}

CheckpointJob TrainState::begin_async_save(const std::string& root, const config::RunConfig& cfg) {
  // The snapshot first: its device copies overlap the small files' writing below.
  std::vector<size_t> counts;
  std::vector<at::Tensor> live;
  for (const auto& e : entries_) {
    if (!e.tensors) continue;
    auto t = e.tensors();
    counts.push_back(t.size());
    live.insert(live.end(), t.begin(), t.end());
  }
  const std::vector<at::Tensor> host = snapshot_->take(live);
  CheckpointJob job;
  job.writer = std::make_unique<CheckpointWriter>(root, counters.iteration);
  size_t next = 0, begin = 0;
  for (const auto& e : entries_) {
    if (!e.tensors) {
      job.writer->write(e.file, e.save);
      continue;
    }
    const std::vector<at::Tensor> mine(
        host.begin() + static_cast<std::ptrdiff_t>(begin),
        host.begin() + static_cast<std::ptrdiff_t>(begin + counts[next]));
    begin += counts[next++];
    job.files.emplace_back(e.file, e.from_host(mine));
  }
  job.writer->write("config.yaml", [&cfg](const std::string& p) { write_config_file(cfg, p); });
  job.before_write = [snapshot = snapshot_] { snapshot->wait_copied(); };
  job.before_join = [snapshot = snapshot_] { snapshot->finish_copies(); };
  job.root = root;
  job.format = kCheckpointFormat;
  job.keep_last = cfg.checkpoint.keep_last;
  job.keep_every = cfg.checkpoint.keep_every;
  return job;
}

void TrainState::save_checkpoint(const std::string& root, const config::RunConfig& cfg) {
  const auto t0 = std::chrono::steady_clock::now();
  if (cfg.checkpoint.async) {
    // The previous one first (at most one in flight; its error surfaces here, before a new
    // snapshot overwrites the host copies it may still be reading).
    checkpoints_->wait();
    checkpoints_->start(begin_async_save(root, cfg), seconds_since(t0));
    return;
  }
  checkpoints_->wait();  // none in flight unless the config changed between calls
  const std::string dir = save(root, cfg);
  const double secs = seconds_since(t0);
  char buf[96];
  std::snprintf(buf, sizeof buf, " (training stalled %.3f s; written synchronously)", secs);
  log::info("checkpoint " + dir + buf);
  checkpoints_->set_committed(dir);
}

void TrainState::fence_checkpoint() {
  const auto t0 = std::chrono::steady_clock::now();
  if (snapshot_->fence()) checkpoints_->add_stall(seconds_since(t0));
}

std::string TrainState::wait_checkpoint() {
  return checkpoints_->wait();
}

void TrainState::reserve_checkpoint_memory(const config::RunConfig& cfg) {
  if (memory_reserved_ || !cfg.checkpoint.async) return;
  const auto params = model_->parameters();
  if (params.empty() || !params.front().is_cuda()) {
    memory_reserved_ = true;  // host copies of CPU tensors: plain memory, allocated at the save
    return;
  }
  if (optimizer_.state().empty()) return;  // before the first step: its moments do not exist yet
  // Now, on the training thread, before the CUDA graph capture (a few steps in): see
  // HostSnapshot::reserve. A one-time stall at the start instead of at the first checkpoint.
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t bytes = HostSnapshot::pinned_bytes(snapshot_tensors());
  if (snapshot_->reserve(bytes, params.front().device())) {
    char buf[128];
    std::snprintf(buf, sizeof buf,
                  "checkpoint snapshots: %.2f GiB of page-locked host memory in %.3f s",
                  static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0), seconds_since(t0));
    log::info(buf);
  }
  memory_reserved_ = true;
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
  // train.iterations is the K of MDLRC's momentum decay and of the lr schedules: changing it
  // moves every remaining beta1_k and lr_k off the run's curve (constant lr, no decay: free).
  const auto uses_k = [](const config::RunConfig& c) {
    return c.optim.momentum_decay || c.optim.lr_schedule != "constant";
  };
  std::string fixed;
  for (const auto& [key, change] : config::changed_keys(saved, cfg)) {
    if (key == "train.iterations" && (uses_k(saved) || uses_k(cfg))) {
      fixed += (fixed.empty() ? "" : ", ") + key + " (" + change +
               "; the K of optim.momentum_decay / optim.lr_schedule)";
    } else if (fixed_on_resume(key)) {
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

}  // namespace dmtrain::checkpoint
