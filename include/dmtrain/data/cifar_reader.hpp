// Reader for CIFAR-10 and CIFAR-100 as published at https://www.cs.toronto.edu/~kriz/cifar.html:
// the four tarballs (cifar-10-python.tar.gz, cifar-10-binary.tar.gz, cifar-100-python.tar.gz,
// cifar-100-binary.tar.gz), read directly, or the folders they unpack to.
//
// Layouts, recognised by member / file names (never by the tarball's name):
// - CIFAR-10 binary: data_batch_1..5.bin (train), test_batch.bin (test), batches.meta.txt
//   (class names, one a line). A file is a run of records: 1 label byte, then 3072 pixel bytes.
// - CIFAR-100 binary: train.bin, test.bin, fine_label_names.txt / coarse_label_names.txt.
//   Records have 2 label bytes, coarse then fine.
// - CIFAR-10 python: data_batch_1..5, test_batch, batches.meta: pickles (cifar_pickle.hpp) of a
//   dict with b'data' (uint8 array N x 3072) and b'labels' (list of ints); b'label_names' in
//   batches.meta.
// - CIFAR-100 python: train, test, meta: b'data', b'fine_labels', b'coarse_labels';
//   b'fine_label_names' / b'coarse_label_names' in meta.
// Pixels are 1024 R, 1024 G, 1024 B bytes, each plane 32x32 row-major (C,H,W); images come out
// N,32,32,C. A folder may also be the one the tarball unpacks into (it holds exactly one of
// cifar-10-batches-py, cifar-10-batches-bin, cifar-100-python, cifar-100-binary).
// Errors (dmtrain::Error naming the file or archive member): no CIFAR batches, a missing batch of
// the split, a binary batch that is not a whole number of records (truncated, or the other
// CIFAR variant), a pickle that is not a CIFAR batch, a truncated or corrupt tarball.
#pragma once
#include <string>

#include "dmtrain/data/image_set.hpp"

namespace dmtrain::data {

struct CifarOptions {
  bool fine_labels = true;  // CIFAR-100: fine (100) or coarse (20) labels
  int64_t channels = 3;     // 1 = PIL-style luma
};

// The `split` ("train" | "test") of the CIFAR data at `path` (a tarball or a folder); class
// names from the data set's meta file when present, else "0", "1", ...
ImageSet read_cifar(const std::string& path, const std::string& split,
                    const CifarOptions& options = {});

// True when `dir` (or the one published sub-folder in it) holds CIFAR batches of any layout.
bool is_cifar_folder(const std::string& dir);

}  // namespace dmtrain::data
