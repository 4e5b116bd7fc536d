// Reader for folders of image files, the layout improved-/guided-diffusion train on.
//
// Files: every *.jpg/*.jpeg/*.png (any case) below `dir`, recursively, each directory's entries
// visited in sorted (byte-wise) order -- guided-diffusion's _list_image_files_recursively, so
// image i here is image i there (GIF, which the references also list, is not supported: it is
// reported as a bad file). Pixels: decoded, converted to RGB (gray replicated, alpha dropped),
// centre-cropped/resized by center_crop_arr (resize.hpp) to image_size, then mapped to
// `channels`. Labels: "none"; "folder" = the name of the file's parent directory (class
// sub-folders, e.g. cifar10/train/<class>/0001.jpg); "prefix" = the file name up to its first
// "_" (the references' class_cond convention). Class ids are the sorted distinct names.
// Decoding runs on `num_threads` threads; the result does not depend on their timing.
// Bad input: a file that cannot be decoded, an image path that is a folder, a folder that cannot
// be listed (permissions) or a symbolic link that cannot be followed. on_bad_file "fail": a
// dmtrain::Error naming the path and the cause; "skip": a warning naming each, then one with
// their count, and the rest is read.
#pragma once
#include <string>

#include "dmtrain/data/image_set.hpp"

namespace dmtrain::data {

struct FolderOptions {
  int64_t image_size = 0;  // 0: keep sizes (all images must then share one size)
  int64_t channels = 3;
  std::string labels = "none";       // "none" | "folder" | "prefix"
  std::string on_bad_file = "fail";  // "fail" | "skip" (skip logs a warning per file)
  int num_threads = 2;
};

ImageSet read_image_folder(const std::string& dir, const FolderOptions& options);

// The image files read_image_folder would read, in its order. Entries below `dir` that cannot be
// listed or followed are described in *unreadable (path and cause) when given, else the first
// is thrown as a dmtrain::Error.
std::vector<std::string> list_image_files(const std::string& dir,
                                          std::vector<std::string>* unreadable = nullptr);

// One file decoded as read_image_folder decodes each (RGB, center_crop_arr, `channels`); throws
// dmtrain::Error naming the file when it cannot be read.
at::Tensor read_folder_image(const std::string& path, const FolderOptions& options);

}  // namespace dmtrain::data
