// open_dataset: the one entry point the trainer uses to get an ImageSet from configuration.
//
// format: "idx" (path = a folder with <split>-images-idx3-ubyte[.gz], e.g. Debian's
// /usr/share/datasets/fashion-mnist, or the images file itself), "cifar-bin" (CIFAR-10 or -100
// in any published form: the python or binary tarball read directly, or the folder it unpacks
// to; see cifar_reader.hpp), "folder" (image files, see folder_reader.hpp), "cache" (a packed
// cache file), or "auto" (a file: cache by magic, IDX by name, else a tar / tar.gz archive is
// read as CIFAR; a folder: recognised by its IDX or CIFAR file names, else an image folder). Every
// source is brought to image_size x image_size (by center_crop_arr when it differs; 0 keeps the
// stored size) and `channels` channels. labels "none" drops labels; for "folder" data it also
// chooses how labels are derived; IDX/CIFAR carry their own labels whenever labels != "none".
// cache: "" = none. When given, the cache is made there once from this source (one process
// writes it, an image folder streamed in chunks) and loaded; a cache made from another source
// or with other settings is refused by name (cache_build.hpp).
#pragma once
#include <string>

#include "dmtrain/data/folder_reader.hpp"
#include "dmtrain/data/image_set.hpp"

namespace dmtrain::data {

struct DatasetOptions {
  std::string format = "auto";
  std::string path;
  std::string split = "train";  // idx / cifar-bin: "train" | "test"
  int64_t image_size = 0;
  int64_t channels = 3;
  std::string labels = "folder";  // "none" | "folder" | "prefix"
  std::string cache;
  std::string on_bad_file = "fail";  // "fail" | "skip"
  int num_threads = 2;               // decoding threads for image folders
};

ImageSet open_dataset(const DatasetOptions& options);

// The image-folder reader's options of a data set (size, channels, labels, on_bad_file, threads).
FolderOptions folder_options(const DatasetOptions& options);

// Resizes (center_crop_arr) and re-channels every image of `set`; returns it unchanged if it
// already has that shape.
ImageSet conform(ImageSet set, int64_t image_size, int64_t channels);

}  // namespace dmtrain::data
