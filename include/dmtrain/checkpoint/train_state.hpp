// TrainState: everything a checkpoint holds, in one place. Each piece is registered by name
// (as EDM2's CheckpointIO(state=..., net=..., ema=...)): the name is its file in the checkpoint
// folder, and one save() and one load() walk the same list, so what is saved is what is loaded.
//
//   model.pt        the raw weights (torch::save of the UNet)
//   ema_<i>.pt      EMA i's shadow weights (rate train.ema_rates[i])
//   optimizer.pt    MdlrcAdam's state, its iteration k among it
//   state.pt        the counters (iteration, loader position and world size, non-finite streak,
//                   skipped steps), every random stream (timestep draws, noise, the default CPU
//                   and CUDA generators that parameter init and dropout use), the timestep
//                   sampler's state and the loss scaler's
//   config.yaml     the resolved config that wrote it
// The folder is committed by checkpoint/checkpoint.hpp's manifest, which records kCheckpointFormat.
// save() writes it on the calling thread; save_checkpoint() with checkpoint.async (the default)
// snapshots model.pt's, the EMA files' and optimizer.pt's tensors to host memory
// (checkpoint/host_snapshot.hpp), writes the small files (state.pt, add_entry's, config.yaml) into
// the temporary folder at once, and leaves the large ones, the commit and the prune to a background
// thread (checkpoint/async_checkpoint.hpp). The files are the same either way: the background
// writes the host copies through the same torch::save / archive calls (test:
// async_checkpoint_test). Format 1 (written before the manifest carried a version) has the same
// files: read as is. A newer format than this build knows is refused by name.
//
// Also here: what a resume decides before loading (which folder, whether it is the same run, how
// the data position maps onto another world size), and the EMA file names that the apps read.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "dmtrain/checkpoint/async_checkpoint.hpp"
#include "dmtrain/checkpoint/host_snapshot.hpp"
#include "dmtrain/config/run_config.hpp"
#include "dmtrain/data/loader.hpp"
#include "dmtrain/ema/ema.hpp"
#include "dmtrain/models/unet.hpp"
#include "dmtrain/optim/loss_scaler.hpp"
#include "dmtrain/optim/mdlrc_adam.hpp"
#include "dmtrain/timestep/sampler.hpp"

namespace dmtrain::checkpoint {

inline constexpr int64_t kCheckpointFormat = 2;

// The counters of a run (besides the tensors of the model, EMA and optimizer).
struct TrainCounters {
  int64_t iteration = 0;
  data::LoaderPosition position;  // of every rank (ranks advance in lockstep)
  int64_t world_size = 1;         // the world size the loader position belongs to
  int64_t consecutive_nonfinite = 0, skipped_total = 0;
};

class TrainState {
 public:
  TrainState(models::UNetModel& model, ema::Ema& ema, optim::MdlrcAdam& optimizer,
             timestep::TimestepSampler& sampler, optim::LossScaler& scaler, at::Generator t_gen,
             at::Generator noise_gen);

  TrainCounters counters;
  at::Generator t_gen, noise_gen;  // timestep draws; noise (a CUDA generator on the GPU)

  // Writes a checkpoint of `counters.iteration` under root, commits it, prunes old ones by
  // cfg.checkpoint; returns the committed folder.
  std::string save(const std::string& root, const config::RunConfig& cfg) const;
  // The trainer's save (rank 0): as cfg.checkpoint.async says, in the background (returns once
  // the state is snapshotted; waits first for the one in flight, whose error it throws) or
  // synchronously through save(). Logs `checkpoint <dir> (training stalled <s> s; ...)`.
  void save_checkpoint(const std::string& root, const config::RunConfig& cfg);
  // Before an in-place update of the weights, EMA or optimizer state (the optimizer step): makes
  // the device wait for the host copies of a checkpoint in flight. Cheap when none is.
  void fence_checkpoint();
  // Waits for the checkpoint in flight and throws its error; returns the newest checkpoint that
  // save_checkpoint() committed ("" when none).
  std::string wait_checkpoint();
  // The newest checkpoint save_checkpoint() committed, as of its last call or wait ("" none).
  const std::string& last_checkpoint() const { return checkpoints_->last_committed(); }
  // With checkpoint.async on a GPU: allocates the page-locked host memory of the snapshots once
  // the optimizer state exists (a no-op after that), so that the first checkpoint does not stall
  // on the allocation (seconds for GBs). Called after each step (rank 0): the allocation happens
  // after the first, on the training thread, before a CUDA graph capture could meet it.
  void reserve_checkpoint_memory(const config::RunConfig& cfg);
  // Verifies and loads a committed checkpoint folder (model and optimizer state land on
  // `device`); a file that does not fit this run throws dmtrain::Error naming the folder. The
  // optimizer keeps its configured options (lr, betas, schedules): only its state is loaded.
  void load(const std::string& dir, const at::Device& device);
  // The registered names, in save/load order (for tests and messages).
  std::vector<std::string> names() const;
  // Registers one more checkpoint file (e.g. ema/posthoc_ema.hpp's profiles), saved after and
  // loaded after the ones above; `file` must be new. An async checkpoint writes it on the
  // training thread (its save may read live state), into the same temporary folder.
  void add_entry(std::string file, std::function<void(const std::string&)> save,
                 std::function<void(const std::string&)> load);

 private:
  using FileWriter = std::function<void(const std::string& path)>;
  struct Entry {
    std::string file;
    FileWriter save;
    FileWriter load;
    // For async checkpoints (both or neither): the live tensors the file holds, and the writer
    // of the file from host copies of them (same order) that save() would write from the live
    // ones. Entries without them are written on the training thread.
    std::function<std::vector<at::Tensor>()> tensors;
    std::function<FileWriter(const std::vector<at::Tensor>& host)> from_host;
  };
  void add(std::string file, std::function<void(const std::string&)> save,
           std::function<void(const std::string&)> load);
  // Snapshots the tensors of the entries that have them, writes the others into a new
  // temporary folder: the checkpoint's job for AsyncCheckpointer.
  CheckpointJob begin_async_save(const std::string& root, const config::RunConfig& cfg);
  std::vector<at::Tensor> snapshot_tensors() const;
  void save_state_file(const std::string& path) const;
  void load_state_file(const std::string& path);

  models::UNetModel& model_;
  ema::Ema& ema_;
  optim::MdlrcAdam& optimizer_;
  timestep::TimestepSampler& sampler_;
  optim::LossScaler& scaler_;
  at::Device device_ = at::kCPU;  // where load() puts model and optimizer state
  std::vector<Entry> entries_;
  // Async checkpoints: the host copies (shared with the job in flight) and the background writer
  // (declared last: destroyed first, it waits for the job in flight).
  std::shared_ptr<HostSnapshot> snapshot_ = std::make_shared<HostSnapshot>();
  bool memory_reserved_ = false;
  std::unique_ptr<AsyncCheckpointer> checkpoints_ = std::make_unique<AsyncCheckpointer>();
};

// The checkpoint folder to resume from: "" (fresh), "auto" (the newest valid one under root, or
// "" when none) or a given folder (which must exist).
std::string resolve_resume(const std::string& resume, const std::string& root);
// Compares the checkpoint's config with cfg key by key. Keys that cannot change on resume (the
// model and diffusion sections, the data set and its order: data.format/path/split/labels/
// random_flip, train.batch_size, train.seed, train.ema_rates) throw dmtrain::Error naming each
// (or warn, with allow_change); every other changed key is logged and takes effect (the
// optimizer's options come from cfg, see TrainState::load).
void check_same_run(const std::string& dir, const config::RunConfig& cfg, bool allow_change);
// The loader position for `world` ranks from counters written by counters.world_size ranks.
// Rank r of W reads positions r, r + W, ... of each epoch's permutation (data/shuffle.hpp), so
// when both world sizes divide the data set, offset o of W ranks is the global offset o * W.
data::LoaderPosition reshard_position(const TrainCounters& counters, int64_t n_images,
                                      int64_t world);

}  // namespace dmtrain::checkpoint
