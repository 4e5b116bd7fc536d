#include "dmtrain/models/state_dict.hpp"

#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>

#include <ATen/ATen.h>
#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/serialization/pickler.h>
#include <torch/csrc/jit/serialization/pickler_helper.h>
#include <torch/serialize.h>

#include "dmtrain/util/checked_write.hpp"
#include "dmtrain/util/error.hpp"
#include "dmtrain/util/file_hash.hpp"

namespace dmtrain::models {
namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

NamedTensors read_torch_zip(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot open state-dict file " + path);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  c10::IValue value;
  try {
    value = torch::pickle_load(bytes);
  } catch (const c10::Error& e) {
    throw Error("state-dict file " + path +
                " is not a PyTorch zip checkpoint (torch.save) or .safetensors file: " +
                e.what_without_backtrace());
  }
  if (!value.isGenericDict()) {
    throw Error("state-dict file " + path + " holds a " + value.tagKind() +
                ", expected a {name: tensor} dict as written by torch.save(model.state_dict())");
  }
  NamedTensors out;
  for (const auto& entry : value.toGenericDict()) {
    if (!entry.key().isString()) throw Error("state-dict file " + path + ": a key is not a string");
    const std::string key = entry.key().toStringRef();
    if (!entry.value().isTensor()) {
      throw Error("state-dict file " + path + ": value of '" + key + "' is a " +
                  entry.value().tagKind() + ", expected a tensor");
    }
    out.emplace_back(key, entry.value().toTensor());
  }
  return out;
}

std::string shape_str(at::IntArrayRef s) {
  std::ostringstream os;
  os << s;
  return os.str();
}

}  // namespace

NamedTensors read_state_dict_file(const std::string& path) {
  return ends_with(path, ".safetensors") ? read_safetensors(path) : read_torch_zip(path);
}

StateDictFormat state_dict_format_of(const std::string& path) {
  return ends_with(path, ".safetensors") ? StateDictFormat::kSafetensors : StateDictFormat::kPt;
}

void write_state_dict_file(const NamedTensors& tensors, const std::string& path) {
  write_state_dict_file(tensors, path, state_dict_format_of(path));
}

void commit_state_dict_file(const NamedTensors& tensors, const std::string& path,
                            StateDictFormat format) {
  const std::string tmp = path + ".tmp";
  try {
    // Checked writes: LibTorch's zip writer aborts the process on a full disk.
    util::write_checked(
        tmp, [&](const std::string& p) { write_state_dict_file(tensors, p, format); },
        "state-dict file");
    util::fsync_path(tmp);
    std::filesystem::rename(tmp, path);
  } catch (const std::filesystem::filesystem_error& e) {
    std::error_code ec;
    std::filesystem::remove(tmp, ec);
    throw Error("cannot write state-dict file '" + path + "': " + e.code().message());
  } catch (...) {
    std::error_code ec;
    std::filesystem::remove(tmp, ec);
    throw;
  }
}

void write_state_dict_file(const NamedTensors& tensors, const std::string& path,
                           StateDictFormat format) {
  if (format == StateDictFormat::kSafetensors) {
    write_safetensors(tensors, path);
    return;
  }
  // torch::pickle_save tags the dict with torch.jit._pickle.restore_type_tag, a global that
  // Python's torch.load(weights_only=True) -- the default since torch 2.6 -- refuses. So pickle
  // without aggregate tags and write the zip container ourselves, with the layout torch.save
  // uses: <archive>/data.pkl plus one record data/<i> per tensor storage.
  c10::impl::GenericDict dict(c10::StringType::get(), c10::TensorType::get());
  for (const auto& [name, t] : tensors) {
    // A fresh contiguous CPU copy: each tensor gets a storage of exactly its own bytes.
    dict.insert(name, t.detach().to(at::kCPU).contiguous().clone());
  }
  std::vector<char> pickled;
  torch::jit::Pickler pickler(
      [&pickled](const char* data, size_t size) {
        pickled.insert(pickled.end(), data, data + size);
      },
      /*tensor_table=*/nullptr, /*type_renamer=*/nullptr, /*memoized_class_types=*/nullptr,
      /*get_tensor_id=*/nullptr, /*tag_aggregates=*/false);
  pickler.protocol();
  pickler.pushIValue(dict);
  pickler.stop();
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw Error("cannot write state-dict file " + path);
  caffe2::serialize::PyTorchStreamWriter writer([&out](const void* data, size_t size) -> size_t {
    out.write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
    return out ? size : 0;
  });
  writer.writeRecord("data.pkl", pickled.data(), pickled.size());
  const auto& storages = pickler.tensorData();
  for (size_t i = 0; i < storages.size(); ++i) {
    const auto w = torch::jit::getWriteableTensorData(storages[i]);
    writer.writeRecord("data/" + std::to_string(i), w.data(), w.sizeInBytes());
  }
  writer.writeEndOfFile();
  if (!out.flush()) throw Error("write failed for state-dict file " + path);
}

LoadReport load_state_dict(torch::nn::Module& module, const std::string& path, bool strict) {
  const NamedTensors file = read_state_dict_file(path);
  std::map<std::string, at::Tensor> by_name;
  for (const auto& [name, t] : file) by_name.emplace(name, t);

  // Destinations in module order: parameters, then buffers.
  std::vector<std::pair<std::string, at::Tensor>> targets;
  for (const auto& p : module.named_parameters(true)) targets.emplace_back(p.key(), p.value());
  for (const auto& b : module.named_buffers(true)) targets.emplace_back(b.key(), b.value());

  LoadReport report;
  std::vector<std::string> mis_shaped;
  std::map<std::string, bool> known;
  for (const auto& [name, dst] : targets) {
    known[name] = true;
    const auto it = by_name.find(name);
    if (it == by_name.end()) {
      report.missing.push_back(name);
    } else if (it->second.sizes() != dst.sizes()) {
      mis_shaped.push_back(name + " (expected " + shape_str(dst.sizes()) + ", found " +
                           shape_str(it->second.sizes()) + ")");
    }
  }
  for (const auto& [name, t] : file) {
    if (!known.count(name)) report.unexpected.push_back(name);
  }
  if (!mis_shaped.empty() || (strict && (!report.missing.empty() || !report.unexpected.empty()))) {
    std::ostringstream msg;
    msg << "cannot load state dict from " << path << ":";
    const auto list = [&msg](const char* what, const std::vector<std::string>& keys) {
      if (keys.empty()) return;
      msg << "\n  " << what << " (" << keys.size() << "):";
      for (const auto& k : keys) msg << "\n    " << k;
    };
    list("mis-shaped keys", mis_shaped);
    if (strict) {
      list("missing keys", report.missing);
      list("unexpected keys", report.unexpected);
    }
    throw Error(msg.str());
  }
  torch::NoGradGuard no_grad;
  for (auto& [name, dst] : targets) {
    const auto it = by_name.find(name);
    if (it != by_name.end()) dst.copy_(it->second);
  }
  return report;
}

void save_state_dict(const torch::nn::Module& module, const std::string& path) {
  NamedTensors tensors;
  for (const auto& p : module.named_parameters(true)) tensors.emplace_back(p.key(), p.value());
  for (const auto& b : module.named_buffers(true)) tensors.emplace_back(b.key(), b.value());
  write_state_dict_file(tensors, path);
}

}  // namespace dmtrain::models
