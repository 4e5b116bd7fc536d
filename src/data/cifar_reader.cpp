#include "dmtrain/data/cifar_reader.hpp"

#include <filesystem>
#include <fstream>

#include "dmtrain/util/error.hpp"

namespace dmtrain::data {

ImageSet read_cifar_bin(const std::vector<std::string>& files, const CifarOptions& options,
                        const std::string& names_file) {
  const int64_t label_bytes = options.cifar100 ? 2 : 1;
  const int64_t record = label_bytes + 3072;
  std::vector<at::Tensor> images, labels;
  for (const std::string& path : files) {
    std::ifstream f(path, std::ios::binary | std::ios::ate);
    if (!f) throw Error(c10::str("cannot open CIFAR batch '", path, "'"));
    const int64_t size = f.tellg();
    if (size == 0 || size % record != 0) {
      throw Error(c10::str("CIFAR batch '", path, "' has ", size, " bytes, not a whole number of ",
                           record, "-byte ", options.cifar100 ? "CIFAR-100" : "CIFAR-10",
                           " records (truncated file, or the other CIFAR variant?)"));
    }
    const int64_t n = size / record;
    at::Tensor raw = at::empty({n, record}, at::kByte);
    f.seekg(0);
    f.read(reinterpret_cast<char*>(raw.data_ptr()), size);
    if (!f) throw Error(c10::str("cannot read CIFAR batch '", path, "'"));
    const int64_t which = options.cifar100 && options.fine_labels ? 1 : 0;
    labels.push_back(raw.select(1, which).to(at::kLong));
    images.push_back(raw.narrow(1, label_bytes, 3072).view({n, 3, 32, 32}).permute({0, 2, 3, 1}));
  }
  if (images.empty()) throw Error("CIFAR reader: no batch files given");
  ImageSet set;
  set.images = to_channels(at::cat(images).contiguous(), options.channels).contiguous();
  set.labels = at::cat(labels);
  const int64_t max_label = set.labels.max().item<int64_t>();
  if (!names_file.empty()) {
    std::ifstream f(names_file);
    if (!f) throw Error(c10::str("cannot open CIFAR class names '", names_file, "'"));
    for (std::string line; std::getline(f, line);) {
      while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
      if (!line.empty()) set.class_names.push_back(line);
    }
    if (static_cast<int64_t>(set.class_names.size()) <= max_label) {
      throw Error(c10::str("CIFAR class names '", names_file, "' list ", set.class_names.size(),
                           " classes but label ", max_label, " occurs"));
    }
  } else {
    for (int64_t k = 0; k <= max_label; ++k) set.class_names.push_back(std::to_string(k));
  }
  set.validate(files.front());
  return set;
}

std::vector<std::string> find_cifar_files(const std::string& dir, const std::string& split,
                                          CifarOptions* options, std::string* names_file) {
  namespace fs = std::filesystem;
  const fs::path d(dir);
  auto have = [&](const std::string& name) { return fs::exists(d / name); };
  std::vector<std::string> files;
  names_file->clear();
  if (have("data_batch_1.bin") || have("test_batch.bin")) {
    options->cifar100 = false;
    if (split == "test") {
      files.push_back((d / "test_batch.bin").string());
    } else {
      for (int i = 1; i <= 5; ++i)
        files.push_back((d / c10::str("data_batch_", i, ".bin")).string());
    }
    if (have("batches.meta.txt")) *names_file = (d / "batches.meta.txt").string();
  } else if (have("train.bin") || have("test.bin")) {
    options->cifar100 = true;
    files.push_back((d / (split == "test" ? "test.bin" : "train.bin")).string());
    const std::string names =
        options->fine_labels ? "fine_label_names.txt" : "coarse_label_names.txt";
    if (have(names)) *names_file = (d / names).string();
  } else {
    throw Error(
        c10::str("no CIFAR binary batches in '", dir,
                 "' (expected data_batch_1.bin ... / test_batch.bin, or train.bin / test.bin)"));
  }
  for (const std::string& f : files) {
    if (!fs::exists(f)) throw Error(c10::str("CIFAR batch '", f, "' is missing"));
  }
  return files;
}

}  // namespace dmtrain::data
