// NumPy .npy / .npz files, the sample format of improved-diffusion and guided-diffusion
// (image_sample.py saves np.savez(path, arr) -> "arr_0" uint8 N,H,W,3 and, class-conditional,
// "arr_1" int64 labels), so FID tools written for those repos read our samples unchanged.
//
// Contract: .npy version 1.0, little-endian, C order; dtypes uint8, int32, int64, float32,
// float64. .npz is a ZIP of "<name>.npy" members. Written STORED (no compression, like
// np.savez) with CRC-32 from zlib; archives over 4 GiB are refused (no ZIP64). Read: members
// STORED (np.savez) or DEFLATE-compressed (ZIP method 8, np.savez_compressed and pytorch-fid's
// statistics written with it), found through the central directory (so ZIP64 records and
// streamed members with data descriptors read too); every member's CRC-32 is checked. Files are
// written to "<path>.tmp" and renamed, so readers never see half a file. Errors throw
// dmtrain::Error naming the path (and, for a damaged, truncated or unsupported member, the
// member).
#pragma once
#include <ATen/ATen.h>

#include <string>
#include <utility>
#include <vector>

namespace dmtrain::util {

// Serialises a CPU tensor as the bytes of a .npy file.
std::string npy_bytes(const at::Tensor& array);
// Parses .npy bytes (`what` names the source in errors).
at::Tensor parse_npy(const std::string& bytes, const std::string& what);

void write_npy(const std::string& path, const at::Tensor& array);
at::Tensor read_npy(const std::string& path);

// Writes named arrays (names without ".npy") into a stored .npz archive.
void write_npz(const std::string& path,
               const std::vector<std::pair<std::string, at::Tensor>>& arrays);
// Convenience for samples: arr_0 = images (uint8 N,H,W,C), arr_1 = labels (int64 N) if defined.
void write_samples_npz(const std::string& path, const at::Tensor& images_nhwc_uint8,
                       const at::Tensor& labels = {});
// Reads every member of a .npz (stored or deflated: np.savez, np.savez_compressed, write_npz) in
// archive order; a member whose data is truncated, fails to inflate or fails its CRC-32 is a
// dmtrain::Error naming the file and the member.
std::vector<std::pair<std::string, at::Tensor>> read_npz(const std::string& path);

}  // namespace dmtrain::util
