#include "dmtrain/data/cifar_reader.hpp"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "dmtrain/data/cifar_pickle.hpp"
#include "dmtrain/util/error.hpp"
#include "dmtrain/util/tar_reader.hpp"

namespace dmtrain::data {
namespace fs = std::filesystem;
namespace {

enum class Layout { Bin10, Py10, Bin100, Py100 };

const char* const kSubfolders[] = {"cifar-10-batches-py", "cifar-10-batches-bin",
                                   "cifar-100-python", "cifar-100-binary"};

const char* layout_name(Layout l) {
  switch (l) {
    case Layout::Bin10:
      return "CIFAR-10 binary";
    case Layout::Py10:
      return "CIFAR-10 python";
    case Layout::Bin100:
      return "CIFAR-100 binary";
    case Layout::Py100:
      return "CIFAR-100 python";
  }
  return "?";
}

// The batch files of `split` in layout `l`.
std::vector<std::string> batch_names(Layout l, const std::string& split) {
  const bool test = split == "test";
  const std::string ext = l == Layout::Bin10 || l == Layout::Bin100 ? ".bin" : "";
  if (l == Layout::Bin100 || l == Layout::Py100) return {(test ? "test" : "train") + ext};
  if (test) return {"test_batch" + ext};
  std::vector<std::string> v;
  for (int i = 1; i <= 5; ++i) v.push_back("data_batch_" + std::to_string(i) + ext);
  return v;
}

std::string meta_name(Layout l, bool fine) {
  switch (l) {
    case Layout::Bin10:
      return "batches.meta.txt";
    case Layout::Py10:
      return "batches.meta";
    case Layout::Bin100:
      return fine ? "fine_label_names.txt" : "coarse_label_names.txt";
    case Layout::Py100:
      return "meta";
  }
  return "";
}

// Which layout a set of present file names is; false if none.
bool detect(const std::set<std::string>& have, Layout* out) {
  auto has = [&](const char* n) { return have.count(n) > 0; };
  if (has("data_batch_1.bin") || has("test_batch.bin")) {
    *out = Layout::Bin10;
  } else if (has("data_batch_1") || has("test_batch")) {
    *out = Layout::Py10;
  } else if (has("train.bin") || has("test.bin")) {
    *out = Layout::Bin100;
  } else if ((has("train") || has("test")) && has("meta")) {
    *out = Layout::Py100;
  } else {
    return false;
  }
  return true;
}

const char* kExpected =
    "expected the files of a published CIFAR archive: data_batch_1..5 + test_batch (+ "
    "batches.meta), data_batch_1..5.bin + test_batch.bin, train + test + meta, or train.bin + "
    "test.bin";

// The CIFAR files of a folder or tarball, by base name: where each came from and its bytes.
struct Files {
  Layout layout = Layout::Bin10;
  std::map<std::string, std::string> where;  // base name -> path (or archive:member)
  std::map<std::string, std::string> data;   // base name -> bytes, for the names read
};

std::string read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) throw Error(c10::str("cannot open CIFAR file '", p.string(), "'"));
  std::ostringstream ss;
  ss << f.rdbuf();
  if (!f.good() && !f.eof()) throw Error(c10::str("cannot read CIFAR file '", p.string(), "'"));
  return ss.str();
}

// Which of the names a CIFAR layout is told by are regular files in `dir` (probed one by one, so
// a folder of a million images is not listed).
std::set<std::string> regular_files(const fs::path& dir) {
  std::set<std::string> names;
  for (const char* n : {"data_batch_1.bin", "test_batch.bin", "data_batch_1", "test_batch",
                        "train.bin", "test.bin", "train", "test", "meta"}) {
    std::error_code ec;
    if (fs::is_regular_file(dir / n, ec)) names.insert(n);
  }
  return names;
}

// The folder holding the batches: `dir` itself or its one published sub-folder; empty if none.
fs::path batches_folder(const fs::path& dir) {
  Layout l;
  if (detect(regular_files(dir), &l)) return dir;
  std::vector<fs::path> subs;
  for (const char* s : kSubfolders) {
    std::error_code ec;
    if (fs::is_directory(dir / s, ec)) subs.push_back(dir / s);
  }
  if (subs.size() > 1) {
    throw Error(c10::str("'", dir.string(), "' holds several CIFAR folders (", subs[0].string(),
                         ", ", subs[1].string(), "...): point data.path at one of them"));
  }
  if (subs.size() == 1 && detect(regular_files(subs[0]), &l)) return subs[0];
  return {};
}

void need(const Files& f, const std::vector<std::string>& names, const std::string& source,
          const std::string& split) {
  for (const std::string& n : names) {
    if (!f.data.count(n)) {
      throw Error(c10::str(layout_name(f.layout), " data '", source, "' has no '", n,
                           "' (needed for split '", split, "')"));
    }
  }
}

Files from_folder(const std::string& path, const std::string& split, bool fine) {
  const fs::path dir = batches_folder(path);
  if (dir.empty()) throw Error(c10::str("no CIFAR batches in '", path, "': ", kExpected));
  Files f;
  detect(regular_files(dir), &f.layout);
  std::vector<std::string> names = batch_names(f.layout, split);
  const std::string meta = meta_name(f.layout, fine);
  for (const std::string& n : names) {
    if (!fs::is_regular_file(dir / n)) {
      throw Error(c10::str(layout_name(f.layout), " folder '", dir.string(), "' has no '", n,
                           "' (needed for split '", split, "')"));
    }
  }
  names.push_back(meta);
  for (const std::string& n : names) {
    if (!fs::is_regular_file(dir / n)) continue;  // the meta file is optional
    f.where[n] = (dir / n).string();
    f.data[n] = read_file(dir / n);
  }
  return f;
}

Files from_tarball(const std::string& path, const std::string& split, bool fine) {
  if (!util::is_tar_archive(path)) {
    throw Error(c10::str("data path '", path,
                         "' is a file but not a tar or tar.gz archive (CIFAR tarballs), a cache "
                         "or an IDX file; set data.format or point data.path at a folder"));
  }
  // Every name any layout could need for this split; the layout is told after the pass.
  std::set<std::string> wanted;
  for (Layout l : {Layout::Bin10, Layout::Py10, Layout::Bin100, Layout::Py100}) {
    for (const std::string& n : batch_names(l, split)) wanted.insert(n);
    wanted.insert(meta_name(l, fine));
  }
  std::set<std::string> seen;
  auto want = [&](const std::string& member) {
    const std::string base = fs::path(member).filename().string();
    seen.insert(base);
    return wanted.count(base) > 0;
  };
  std::vector<util::TarMember> members = util::read_tar(path, want);
  Files f;
  if (!detect(seen, &f.layout)) {
    throw Error(c10::str("archive '", path, "' holds no CIFAR batches: ", kExpected));
  }
  for (util::TarMember& m : members) {
    const std::string base = fs::path(m.name).filename().string();
    const std::string where = path + ":" + m.name;
    if (f.data.count(base)) {
      throw Error(c10::str("archive '", path, "' holds '", base, "' twice ('", f.where[base],
                           "' and '", where, "')"));
    }
    f.where[base] = where;
    f.data[base] = std::move(m.data);
  }
  need(f, batch_names(f.layout, split), path, split);
  return f;
}

struct Batch {
  at::Tensor images;  // uint8 N,32,32,3
  at::Tensor labels;  // int64 N
};

Batch decode_bin(const std::string& bytes, const std::string& where, bool cifar100, bool fine) {
  const int64_t label_bytes = cifar100 ? 2 : 1;
  const int64_t record = label_bytes + 3072;
  const int64_t size = static_cast<int64_t>(bytes.size());
  if (size == 0 || size % record != 0) {
    throw Error(c10::str("CIFAR batch '", where, "' has ", size, " bytes, not a whole number of ",
                         record, "-byte ", cifar100 ? "CIFAR-100" : "CIFAR-10",
                         " records (truncated file, or the other CIFAR variant?)"));
  }
  const int64_t n = size / record;
  at::Tensor raw = at::empty({n, record}, at::kByte);
  std::memcpy(raw.data_ptr(), bytes.data(), bytes.size());
  Batch b;
  b.labels = raw.select(1, cifar100 && fine ? 1 : 0).to(at::kLong);
  b.images = raw.narrow(1, label_bytes, 3072).view({n, 3, 32, 32}).permute({0, 2, 3, 1});
  return b;
}

Batch decode_pickle(const std::string& bytes, const std::string& where, const char* labels_key) {
  const PyRef root = unpickle(bytes, where);
  if (root->kind != PyValue::Kind::Dict) {
    throw Error(c10::str("CIFAR batch '", where, "' is not a pickled dict"));
  }
  const PyRef data = root->get("data");
  const PyRef labels = root->get(labels_key);
  if (!data || data->kind != PyValue::Kind::Array || data->shape.size() != 2 ||
      data->shape[1] != 3072) {
    throw Error(
        c10::str("CIFAR batch '", where, "': its 'data' is not a uint8 array of N x 3072 pixels"));
  }
  const int64_t n = data->shape[0];
  if (!labels || labels->kind != PyValue::Kind::List ||
      static_cast<int64_t>(labels->items.size()) != n) {
    throw Error(c10::str("CIFAR batch '", where, "': its '", labels_key, "' is not a list of ", n,
                         " labels"));
  }
  Batch b;
  b.labels = at::empty({n}, at::kLong);
  int64_t* out = b.labels.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    const PyRef& v = labels->items[static_cast<size_t>(i)];
    if (v->kind != PyValue::Kind::Int || v->number < 0) {
      throw Error(c10::str("CIFAR batch '", where, "': ", labels_key, "[", i,
                           "] is not a non-negative int"));
    }
    out[i] = v->number;
  }
  at::Tensor raw = at::empty({n, 3072}, at::kByte);
  std::memcpy(raw.data_ptr(), data->bytes.data(), data->bytes.size());
  b.images = raw.view({n, 3, 32, 32}).permute({0, 2, 3, 1});
  return b;
}

std::vector<std::string> text_names(const std::string& bytes) {
  std::vector<std::string> names;
  std::istringstream in(bytes);
  for (std::string line; std::getline(in, line);) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (!line.empty()) names.push_back(line);
  }
  return names;
}

std::vector<std::string> pickle_names(const std::string& bytes, const std::string& where,
                                      const char* key) {
  const PyRef root = unpickle(bytes, where);
  const PyRef list = root->kind == PyValue::Kind::Dict ? root->get(key) : nullptr;
  if (!list || list->kind != PyValue::Kind::List) {
    throw Error(c10::str("CIFAR meta file '", where, "' has no list '", key, "'"));
  }
  std::vector<std::string> names;
  for (const PyRef& v : list->items) {
    if (v->kind != PyValue::Kind::Bytes && v->kind != PyValue::Kind::Text) {
      throw Error(c10::str("CIFAR meta file '", where, "': '", key, "' holds a non-string"));
    }
    names.push_back(v->bytes);
  }
  return names;
}

}  // namespace

bool is_cifar_folder(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return false;
  try {
    return !batches_folder(dir).empty();
  } catch (const Error&) {
    return true;  // several CIFAR folders: read_cifar says so
  }
}

ImageSet read_cifar(const std::string& path, const std::string& split, const CifarOptions& o) {
  if (split != "train" && split != "test") {
    throw Error(c10::str("CIFAR split '", split, "': expected train or test"));
  }
  std::error_code ec;
  if (!fs::exists(path, ec)) throw Error(c10::str("CIFAR data path '", path, "' does not exist"));
  Files f = fs::is_directory(path, ec) ? from_folder(path, split, o.fine_labels)
                                       : from_tarball(path, split, o.fine_labels);
  const bool cifar100 = f.layout == Layout::Bin100 || f.layout == Layout::Py100;
  const bool python = f.layout == Layout::Py10 || f.layout == Layout::Py100;
  const char* labels_key = !cifar100 ? "labels" : o.fine_labels ? "fine_labels" : "coarse_labels";
  std::vector<at::Tensor> images, labels;
  for (const std::string& name : batch_names(f.layout, split)) {
    std::string& bytes = f.data.at(name);
    Batch b = python ? decode_pickle(bytes, f.where.at(name), labels_key)
                     : decode_bin(bytes, f.where.at(name), cifar100, o.fine_labels);
    std::string().swap(bytes);  // free the raw batch once decoded
    images.push_back(b.images);
    labels.push_back(b.labels);
  }
  ImageSet set;
  set.images = to_channels(at::cat(images).contiguous(), o.channels).contiguous();
  set.labels = at::cat(labels);
  const int64_t max_label = set.labels.numel() ? set.labels.max().item<int64_t>() : -1;
  const std::string meta = meta_name(f.layout, o.fine_labels);
  if (f.data.count(meta)) {
    const std::string& where = f.where.at(meta);
    set.class_names = python ? pickle_names(f.data.at(meta), where,
                                            !cifar100       ? "label_names"
                                            : o.fine_labels ? "fine_label_names"
                                                            : "coarse_label_names")
                             : text_names(f.data.at(meta));
    if (static_cast<int64_t>(set.class_names.size()) <= max_label) {
      throw Error(c10::str("CIFAR class names '", where, "' list ", set.class_names.size(),
                           " classes but label ", max_label, " occurs"));
    }
  } else {
    for (int64_t k = 0; k <= max_label; ++k) set.class_names.push_back(std::to_string(k));
  }
  set.validate(path);
  return set;
}

}  // namespace dmtrain::data
