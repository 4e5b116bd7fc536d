// Reader for the CIFAR-10 / CIFAR-100 "binary version" files.
//
// Layout: a file is a sequence of fixed-size records, each `label bytes` then 3072 pixel bytes
// (1024 R, 1024 G, 1024 B, each 32x32 row-major, i.e. C,H,W). CIFAR-10 records have 1 label
// byte; CIFAR-100 records have 2 (coarse, fine). A file whose size is not a whole number of
// records is truncated or of the other variant: dmtrain::Error naming it.
#pragma once
#include <string>
#include <vector>

#include "dmtrain/data/image_set.hpp"

namespace dmtrain::data {

struct CifarOptions {
  bool cifar100 = false;
  bool fine_labels = true;  // CIFAR-100: fine (100) or coarse (20) labels
  int64_t channels = 3;     // 1 = PIL-style luma
};

// Reads and concatenates `files` in order; class_names from `names_file` if non-empty (one name
// per line, blank lines ignored), else "0", "1", ...
ImageSet read_cifar_bin(const std::vector<std::string>& files, const CifarOptions& options,
                        const std::string& names_file = "");

// The files of `split` ("train" | "test") in `dir`: CIFAR-10 data_batch_1..5.bin / test_batch.bin
// (names in batches.meta.txt), CIFAR-100 train.bin / test.bin (fine_label_names.txt or
// coarse_label_names.txt). Sets options->cifar100 from what it finds; throws if none.
std::vector<std::string> find_cifar_files(const std::string& dir, const std::string& split,
                                          CifarOptions* options, std::string* names_file);

}  // namespace dmtrain::data
