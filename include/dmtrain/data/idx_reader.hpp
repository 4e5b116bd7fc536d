// Reader for the IDX format of MNIST and Fashion-MNIST (optionally gzipped; zlib's gzread reads
// plain files too).
//
// Format (big-endian): images file = magic 0x00000803 (ubyte, 3 dims), N, rows, cols, then N*rows*
// cols pixel bytes, row-major; labels file = magic 0x00000801, N, then N label bytes. A missing or
// short file, a wrong magic or a count mismatch between the two files throws dmtrain::Error
// naming the file.
#pragma once
#include <string>

#include "dmtrain/data/image_set.hpp"

namespace dmtrain::data {

// Reads images (and labels unless `labels_path` is empty) into an ImageSet with `channels`
// channels (1 = as stored, 3 = gray replicated). class_names are "0".."9" style decimal strings
// covering max(label)+1 classes (IDX files carry no names).
ImageSet read_idx(const std::string& images_path, const std::string& labels_path,
                  int64_t channels = 1);

// Locates the IDX pair for `split` ("train" or "test" -> "t10k") in directory `dir`, accepting
// "<split>-images-idx3-ubyte" with or without ".gz"; returns {images, labels} paths or throws.
std::pair<std::string, std::string> find_idx_files(const std::string& dir,
                                                   const std::string& split);

}  // namespace dmtrain::data
