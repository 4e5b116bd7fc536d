// An image folder read chunk by chunk, for writers that must not hold the whole set in memory
// (a cache of ImageNet: 1.28 million images, 63 GB decoded at 128 px).
//
// for_each_chunk lists the files first (list_image_files's order), then decodes them `chunk` at
// a time on options.num_threads threads (read_folder_image) and hands each chunk's readable
// images, in file order, to `sink` as one uint8 N,H,W,C tensor. The sink runs on a thread of its
// own while the next chunk decodes, one call at a time and in order; its tensor is valid only
// during the call (the buffer is reused for the next chunk). read_image_folder is these chunks
// joined. The rules: an unreadable file, folder or link throws (on_bad_file: fail) or is skipped
// with a warning (skip); all images must share the first one's shape; labels "folder" / "prefix"
// name each kept file's class, and class ids are the sorted distinct names, known once all files
// are read -- so the labels come back at the end, in FolderChunks.
// Memory: two chunks of images (the one being written, the one being decoded) and a name per
// file.
// Errors: dmtrain::Error (bad options, no files, no readable image, shape mismatch, file outside
// a class sub-folder); whatever `sink` throws propagates.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "dmtrain/data/folder_reader.hpp"

namespace dmtrain::data {

struct FolderChunks {
  at::Tensor labels;  // int64, one per kept image; undefined for labels "none"
  std::vector<std::string> class_names;
  int64_t images = 0;   // kept
  int64_t skipped = 0;  // unreadable entries skipped (files, folders, links)
};

// `files_done` / `files_total`: files decoded so far (kept or skipped) and listed in all.
using ChunkSink =
    std::function<void(const at::Tensor& nhwc, int64_t files_done, int64_t files_total)>;

FolderChunks for_each_chunk(const std::string& dir, const FolderOptions& options, int64_t chunk,
                            const ChunkSink& sink);

}  // namespace dmtrain::data
