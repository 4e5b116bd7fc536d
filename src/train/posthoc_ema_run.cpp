// Implementation of dmtrain/train/posthoc_ema_run.hpp.
#include "dmtrain/train/posthoc_ema_run.hpp"

#include <c10/util/StringUtil.h>
#include <torch/serialize.h>

#include <filesystem>

#include "dmtrain/checkpoint/checkpoint.hpp"
#include "dmtrain/util/error.hpp"
#include "dmtrain/util/file_hash.hpp"
#include "dmtrain/util/log.hpp"

namespace dmtrain::train {
namespace {

namespace fs = std::filesystem;

// The profiles' checkpoint file (TrainState entry).
constexpr const char* kStateFile = "posthoc_ema.pt";

}  // namespace

PosthocEmaRun::PosthocEmaRun(const config::RunConfig& cfg, const torch::nn::Module& model)
    : run_dir_(cfg.train.run_dir),
      every_(cfg.train.posthoc_ema.snapshot_every),
      total_(cfg.train.iterations),
      ema_(model, cfg.train.posthoc_ema.sigma_rels) {}

std::unique_ptr<PosthocEmaRun> PosthocEmaRun::start(const config::RunConfig& cfg,
                                                    const torch::nn::Module& model,
                                                    checkpoint::TrainState& state,
                                                    const std::string& resume, int64_t iteration) {
  if (cfg.train.posthoc_ema.sigma_rels.empty()) return nullptr;
  std::unique_ptr<PosthocEmaRun> run(new PosthocEmaRun(cfg, model));
  ema::PowerEma& ema = run->ema_;
  state.add_entry(
      kStateFile,
      [&ema](const std::string& p) {
        torch::serialize::OutputArchive a;
        ema.save(a);
        a.save_to(p);
      },
      // Loaded below, not by TrainState::load (which ran before this hook existed).
      [](const std::string&) {});
  if (iteration > 0) {
    // The folder the resume loaded: the given one, or (auto) the committed one of `iteration`.
    std::string dir = resume;
    if (resume == "auto") {
      for (const auto& c : checkpoint::list_checkpoints(cfg.train.run_dir + "/checkpoints")) {
        if (c.iteration == iteration) dir = c.dir;
      }
    }
    const std::string file = dir + "/" + kStateFile;
    std::string why;
    if (fs::exists(file)) {
      try {
        torch::serialize::InputArchive a;
        a.load_from(file, at::kCPU);
        ema.load(a);
      } catch (const Error& e) {
        why = e.what();
      } catch (const c10::Error& e) {
        why = e.what_without_backtrace();
      }
    } else {
      why = "the checkpoint has no " + std::string(kStateFile);
    }
    if (!why.empty()) {
      run->ema_ = ema::PowerEma(model, cfg.train.posthoc_ema.sigma_rels);
      log::warn("post-hoc EMA: " + why + "; the profiles restart at iteration " +
                std::to_string(iteration) + " from the current weights");
    }
  }
  // Snapshots past the resumed iteration belong to the interrupted continuation.
  const std::string dir = ema::snapshot_dir(cfg.train.run_dir);
  if (fs::is_directory(dir)) {
    for (const auto& s : ema::list_snapshots(cfg.train.run_dir)) {
      if (s.step <= iteration) continue;
      log::info("post-hoc EMA: removing " + s.path + " (after the resumed iteration)");
      fs::remove(s.path);
      fs::remove(util::hash_sidecar_path(s.path));
    }
  }
  return run;
}

void PosthocEmaRun::after_step(const torch::nn::Module& model, int64_t iteration, bool taken) {
  if (taken) ema_.update(model, iteration);
  if ((iteration % every_ == 0 || iteration == total_) && ema_.step() > 0) {
    ema_.write_snapshots(run_dir_);
  }
}

}  // namespace dmtrain::train
