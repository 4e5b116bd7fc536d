// Implementation of step_plan.hpp.
#include "step_plan.hpp"

#include <c10/util/StringUtil.h>

#include "dmtrain/optim/flat_update.hpp"
#include "dmtrain/train/cuda_graph_step.hpp"

namespace dmtrain::train::detail {

StepPlan plan_step(Run& r, int64_t first_iteration) {
  const auto& tc = r.cfg.train;
  const bool distributed = r.group.is_distributed();
  const bool one_chunk_no_fp16 = tc.micro_batches == 1 && r.precision != at::kHalf;
  const std::string flat_why = optim::flat_unsupported(r.params, *r.optimizer, ema_copies(r.ema));
  StepPlan p;
  p.capture_at = first_iteration + 3;

  if (!r.cfg.dist.graph_step) {
    p.not_bucketed = "dist.graph_step is off";
  } else if (!distributed) {
    p.not_bucketed = "one process";
  } else if (tc.micro_batches != 1) {
    p.not_bucketed = "train.micro_batches > 1";
  } else if (r.precision == at::kHalf) {
    p.not_bucketed = "fp16 loss scaling";
  } else {
    p.not_bucketed = flat_why;
  }
  p.bucketed = p.not_bucketed.empty();

  // One chunk, no fp16 loss scaling; one process, or several with dist.graph_step, whose graph
  // must then hold the update too (the bucketed all-reduce averages the flat gradients that only
  // the captured update reads).
  if (!tc.cuda_graphs) {
    p.not_graph = "train.cuda_graphs is off";
  } else if (!r.device.is_cuda()) {
    p.not_graph = "not on a GPU";
  } else if (!one_chunk_no_fp16) {
    p.not_graph = "train.micro_batches > 1 or fp16 loss scaling";
  } else if (distributed && !p.bucketed) {
    p.not_graph = "several processes without dist.graph_step";
  } else if (!CudaGraphStep::available()) {
    p.not_graph = "this LibTorch has no CUDA graphs";
  }
  p.graph = p.not_graph.empty();

  if (!tc.graph_optimizer) {
    p.not_optimizer_in_graph = "train.graph_optimizer is off";
  } else if (!p.graph) {
    p.not_optimizer_in_graph =
        "the step is not a CUDA graph (train.cuda_graphs, one GPU, one micro-batch, no fp16)";
  } else if (!optim::flat_update_kernel_available()) {
    p.not_optimizer_in_graph = "this build has no CUDA kernels";
  } else {
    p.not_optimizer_in_graph = flat_why;
  }
  p.optimizer_in_graph = p.not_optimizer_in_graph.empty();
  if (distributed && !p.optimizer_in_graph && p.graph) {
    p.graph = false;
    p.not_graph =
        "several processes need the optimizer inside the graph (" + p.not_optimizer_in_graph + ")";
  }

  if (!tc.prefetch_inputs) {
    p.not_prefetch = "train.prefetch_inputs is off";
  } else if (r.sampler->uses_losses()) {
    p.not_prefetch = "the timestep sampler learns from each step's losses";
  }
  p.prefetch = p.not_prefetch.empty();
  return p;
}

std::string StepPlan::describe(bool distributed) const {
  std::string s = "training step: ";
  s += graph ? c10::str("CUDA graph from iteration ", capture_at) : "eager (" + not_graph + ")";
  s += optimizer_in_graph
           ? "; optimizer and EMA update: inside the CUDA graph, on flat buffers"
           : "; optimizer and EMA update: eager, after each step (" + not_optimizer_in_graph + ")";
  if (distributed) {
    s += bucketed
             ? std::string(
                   "; data-parallel step: bucketed all-reduce of the flat gradient buffer "
                   "(dist.graph_step), ") +
                   (graph ? c10::str("inside the step's CUDA graph from iteration ", capture_at)
                          : std::string("eager (no CUDA graph: train.cuda_graphs, CUDA, "
                                        "train.graph_optimizer)"))
             : "; data-parallel step: eager, c10d's Reducer (" + not_bucketed + ")";
  }
  s += prefetch ? "; inputs prefetched during the step before"
                : "; inputs drawn at each step (" + not_prefetch + ")";
  return s;
}

}  // namespace dmtrain::train::detail
