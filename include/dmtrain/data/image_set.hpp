// ImageSet: a whole dataset decoded into memory, the one currency between readers, the packed
// cache and the Loader.
//
// Invariants (checked by validate()): `images` is a contiguous CPU uint8 tensor N,H,W,C with
// C in {1,3}; `labels`, when defined, is a CPU int64 tensor of N entries in [0, num_classes);
// `class_names[k]` names label k (may be empty when the source has no names). An ImageSet is
// immutable once built and shared read-only (std::shared_ptr<const ImageSet>) by loader threads.
#pragma once
#include <ATen/ATen.h>

#include <string>
#include <vector>

namespace dmtrain::data {

struct ImageSet {
  at::Tensor images;  // uint8 N,H,W,C
  at::Tensor labels;  // int64 N, or undefined (unconditional data)
  std::vector<std::string> class_names;

  int64_t size() const { return images.defined() ? images.size(0) : 0; }
  bool has_labels() const { return labels.defined(); }
  // Throws dmtrain::Error (prefixed with `what`, e.g. a path) if an invariant does not hold.
  void validate(const std::string& what) const;
};

// Maps a uint8 N,H,W,C tensor to `channels` channels: 1 -> 3 replicates the gray value (PIL's
// convert("RGB")); 3 -> 1 uses ITU-R 601-2 luma in PIL's fixed-point form (as convert("L")):
// L = (R*19595 + G*38470 + B*7471 + 32768) >> 16. Equal counts return the input.
at::Tensor to_channels(const at::Tensor& nhwc, int64_t channels);

}  // namespace dmtrain::data
