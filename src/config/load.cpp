// Loading YAML into RunConfig: flatten each document into dotted leaf keys with their origin
// (file:line), merge base < file < --set key by key, then convert through the schema.
#include "dmtrain/config/load.hpp"

#include <algorithm>
#include <filesystem>
#include <map>

#include "dmtrain/config/find.hpp"
#include "dmtrain/config/schema.hpp"
#include "dmtrain/util/error.hpp"

namespace dmtrain::config {
namespace {

namespace fs = std::filesystem;

struct Entry {
  YAML::Node value;
  std::string where;  // "file:line" or "--set"
};
using Flat = std::map<std::string, Entry>;

std::string where_of(const std::string& file, const YAML::Node& node) {
  return file + ":" + std::to_string(node.Mark().line + 1);
}

// Whether `key` names a section (a prefix of schema keys: "model", "timestep.clts").
bool is_section(const std::string& key) {
  for (const auto& f : schema()) {
    if (f.key.rfind(key + ".", 0) == 0) return true;
  }
  return false;
}

// A key is a leaf when the schema knows it; maps under unknown keys are sections to descend into.
// A section left empty (`model:` with its keys commented out) sets nothing.
void flatten(const YAML::Node& map, const std::string& prefix, const std::string& file, Flat& out) {
  for (const auto& kv : map) {
    if (!kv.first.IsScalar()) {
      // yaml-cpp's as<std::string>() would throw a bare YAML::Exception (an abort in main).
      throw Error(where_of(file, kv.first) + ": a key must be a name, got " + yaml_text(kv.first) +
                  (prefix.empty() ? "" : " (under '" + prefix + "')"));
    }
    const std::string key = prefix + kv.first.Scalar();
    const YAML::Node& value = kv.second;
    if (value.IsMap() && !find_field(key)) {
      flatten(value, key + ".", file, out);
    } else if (value.IsNull() && !find_field(key) && is_section(key)) {
      continue;
    } else {
      out[key] = Entry{value, where_of(file, kv.first)};
    }
  }
}

YAML::Node parse_file(const fs::path& path) {
  if (!fs::exists(path)) throw Error("config file '" + path.string() + "' does not exist");
  if (!fs::is_regular_file(path)) {
    throw Error("config file '" + path.string() + "' is not a file (a folder?)");
  }
  try {
    return YAML::LoadFile(path.string());
  } catch (const YAML::Exception& e) {
    throw Error(path.string() + ":" + std::to_string(e.mark.line + 1) +
                ": not valid YAML: " + e.msg);
  } catch (const std::exception& e) {  // I/O errors of the stream yaml-cpp reads
    throw Error("cannot read config file '" + path.string() + "': " + e.what());
  }
}

// One config file as read: its own keys and the base files it names (resolved to paths).
struct ConfigFile {
  std::string name;                // as the user or the including file wrote it
  YAML::Node doc;                  // without 'base'
  std::vector<std::string> bases;  // canonical paths, in the order written
};
using Files = std::map<std::string, ConfigFile>;  // by canonical path

// Linearizes the inheritance graph of `path` (C3, as Python orders a class's bases): the result
// lists every reachable file once, most-derived first. Bases are taken in REVERSE of the order
// written, so that a later base outranks an earlier one ("later files win", as a list of bases
// always read here), and a base shared by several files comes after every file that extends it
// (a shared base never overrides what a file above it set). A graph with no such order is
// refused, naming the two files whose orders contradict each other.
std::vector<std::string> linearize(const fs::path& path, Files& files,
                                   std::vector<std::string>& stack) {
  const std::string canonical = fs::weakly_canonical(path).string();
  if (std::find(stack.begin(), stack.end(), canonical) != stack.end()) {
    throw Error("config '" + path.string() + "' extends itself (base: cycle)");
  }
  if (!files.count(canonical)) {
    ConfigFile file;
    file.name = path.string();
    YAML::Node doc = parse_file(path);
    if (!doc.IsNull() && !doc.IsMap()) {
      throw Error(path.string() + ": a config must be a map of sections");
    }
    if (doc.IsMap()) {
      if (YAML::Node base = doc["base"]) {
        std::vector<std::string> written;
        if (base.IsScalar()) {
          written.push_back(base.Scalar());
        } else if (base.IsSequence()) {
          for (const auto& b : base) {
            if (!b.IsScalar()) {
              throw Error(where_of(path.string(), b) + ": key 'base' expects file names, got " +
                          yaml_text(b) + " in its list");
            }
            written.push_back(b.Scalar());
          }
        } else {
          throw Error(where_of(path.string(), base) + ": key 'base' expects a file name or a list");
        }
        for (const auto& b : written) {
          const fs::path bp = fs::path(b).is_absolute() ? fs::path(b) : path.parent_path() / b;
          file.bases.push_back(fs::weakly_canonical(bp).string());
          if (!files.count(file.bases.back()) && !fs::exists(bp)) {
            throw Error(where_of(path.string(), base) + ": base config '" + bp.string() +
                        "' does not exist");
          }
        }
        doc.remove("base");
      }
    }
    file.doc = doc;
    files[canonical] = file;
  }
  stack.push_back(canonical);
  const std::vector<std::string> bases = files[canonical].bases;
  // The lists to merge: each base's linearization, then the bases themselves; all reversed.
  std::vector<std::vector<std::string>> lists;
  for (auto b = bases.rbegin(); b != bases.rend(); ++b)
    lists.push_back(linearize(*b, files, stack));
  lists.emplace_back(bases.rbegin(), bases.rend());
  stack.pop_back();

  std::vector<std::string> order{canonical};
  auto in_a_tail = [&](const std::string& f) {
    for (const auto& l : lists) {
      if (std::find(l.begin() + (l.empty() ? 0 : 1), l.end(), f) != l.end()) return true;
    }
    return false;
  };
  for (;;) {
    std::string next;
    bool any = false;
    for (const auto& l : lists) {
      if (l.empty()) continue;
      any = true;
      if (!in_a_tail(l.front())) {
        next = l.front();
        break;
      }
    }
    if (!any) break;
    if (next.empty()) {
      // Every head is ranked below some other file: name two heads that contradict each other.
      std::vector<std::string> heads;
      for (const auto& l : lists) {
        if (!l.empty() && std::find(heads.begin(), heads.end(), l.front()) == heads.end()) {
          heads.push_back(l.front());
        }
      }
      const std::string a = files[heads[0]].name;
      const std::string b = heads.size() > 1 ? files[heads[1]].name : a;
      throw Error("config '" + path.string() + "': its bases order '" + a + "' and '" + b +
                  "' both before and after each other (no consistent order; list the bases "
                  "so that every file comes after the files it extends)");
    }
    order.push_back(next);
    for (auto& l : lists) {
      if (!l.empty() && l.front() == next) l.erase(l.begin());
    }
  }
  return order;
}

// Merges the keys of `path` and all its bases: the least-derived file first, so that each file
// overrides what the files below it in the linearization set.
void load_flat(const fs::path& path, Flat& out) {
  Files files;
  std::vector<std::string> stack;
  const auto order = linearize(path, files, stack);
  for (auto f = order.rbegin(); f != order.rend(); ++f) {
    const ConfigFile& file = files.at(*f);
    if (file.doc.IsMap()) flatten(file.doc, "", file.name, out);
  }
}

void add_overrides(const std::vector<std::string>& overrides, Flat& out) {
  for (const auto& o : overrides) {
    const auto eq = o.find('=');
    if (eq == std::string::npos || eq == 0) {
      throw Error("--set '" + o + "': expected section.key=value");
    }
    const std::string key = o.substr(0, eq);
    const std::string text = o.substr(eq + 1);
    YAML::Node value;
    const Field* field = find_field(key);
    if (field && field->type == "string") {
      // Taken literally: a path is not YAML ("runs/exp #1" would lose " #1" to a comment; "~",
      // "null", "!x", "%x" and "a: b" would not be strings at all).
      value = YAML::Node(text);
    } else {
      try {
        value = YAML::Load(text);
      } catch (const YAML::Exception& e) {
        throw Error("--set '" + o + "': value is not valid YAML: " + e.msg);
      }
      if (value.IsNull()) value = YAML::Node(std::string());  // "key=" means the empty string
    }
    out[key] = Entry{value, "--set " + o};
  }
}

void apply_flat(const Flat& flat, RunConfig& cfg) {
  for (const auto& [key, entry] : flat) {
    const Field* field = find_field(key);
    if (!field && is_section(key)) {
      throw Error(entry.where + ": key '" + key + "' is a section: it expects a map of its keys (" +
                  key + ".<name>: value), got " + yaml_text(entry.value));
    }
    if (!field) {
      std::string hint = closest_key(key);
      throw Error(entry.where + ": unknown key '" + key + "'" +
                  (hint.empty() ? "" : " (did you mean '" + hint + "'?)"));
    }
    field->set(cfg, entry.value, entry.where);
  }
}

}  // namespace

RunConfig load_config(const std::string& path, const std::vector<std::string>& overrides,
                      ConfigUse use) {
  Flat flat;
  load_flat(find_config(path), flat);
  add_overrides(overrides, flat);
  RunConfig cfg;
  apply_flat(flat, cfg);
  validate(cfg, use);
  return cfg;
}

bool config_sets(const std::string& path, const std::string& key) {
  Flat flat;
  load_flat(find_config(path), flat);
  for (const auto& [k, entry] : flat) {
    (void)entry;
    if (k == key || k.rfind(key + ".", 0) == 0) return true;
  }
  return false;
}

void apply_overrides(RunConfig& cfg, const std::vector<std::string>& overrides) {
  Flat flat;
  add_overrides(overrides, flat);
  apply_flat(flat, cfg);
}

void validate(const RunConfig& cfg, ConfigUse use) {
  const auto& o = cfg.optim;
  if (o.beta1_min > o.beta1) {
    throw Error("optim.beta1_min (" + std::to_string(o.beta1_min) +
                ") must not exceed optim.beta1 (" + std::to_string(o.beta1) + ")");
  }
  if (o.lr_compensation && o.lr_schedule != "constant") {
    throw Error("optim.lr_schedule '" + o.lr_schedule +
                "' together with optim.lr_compensation: true gives two rules for the learning "
                "rate; use one (lr_schedule: mdlrc is the compensation's lr with beta1 held)");
  }
  if (use == ConfigUse::kTrain && cfg.train.iterations <= 0) {
    throw Error("train.iterations is required: set it to the run's total number of iterations");
  }
  const auto& m = cfg.model;
  const int64_t levels = static_cast<int64_t>(m.channel_mult.size());
  if ((m.image_size >> (levels - 1)) < 1 || m.image_size % (int64_t{1} << (levels - 1)) != 0) {
    throw Error("model.image_size " + std::to_string(m.image_size) + " cannot be halved " +
                std::to_string(levels - 1) + " times (model.channel_mult has " +
                std::to_string(levels) + " levels)");
  }
  if (m.num_head_channels == 0 || m.num_head_channels < -1) {
    throw Error("model.num_head_channels must be -1 or >= 1, got " +
                std::to_string(m.num_head_channels));
  }
  if (m.num_head_channels > 0 && m.model_channels % m.num_head_channels != 0) {
    throw Error("model.model_channels (" + std::to_string(m.model_channels) +
                ") must be a multiple of model.num_head_channels (" +
                std::to_string(m.num_head_channels) + ")");
  }
  if (m.model_channels % 32 != 0) {
    throw Error("model.model_channels must be a multiple of 32 (GroupNorm32), got " +
                std::to_string(m.model_channels));
  }
  if (cfg.loss_weight.kind != "none" && cfg.diffusion.mean_type != "epsilon") {
    throw Error("loss_weight.kind '" + cfg.loss_weight.kind +
                "' is defined for diffusion.mean_type 'epsilon' only");
  }
  const bool weighted = cfg.loss_weight.kind != "none" ||
                        (cfg.timestep.sampler == "speed" && cfg.timestep.speed.weighting);
  const bool vb_only = cfg.diffusion.loss == "kl" || cfg.diffusion.loss == "rescaled_kl";
  if (weighted && vb_only && cfg.loss_weight.terms == "mse") {
    throw Error("loss_weight.terms 'mse' with diffusion.loss '" + cfg.diffusion.loss +
                "': that loss has no MSE term for the loss weight to multiply; set "
                "loss_weight.terms: all (or a diffusion.loss with an MSE term)");
  }
  if (use == ConfigUse::kTrain && cfg.eval.fid_every > 0 &&
      (cfg.eval.inception.empty() || cfg.eval.reference.empty())) {
    throw Error("eval.fid_every is " + std::to_string(cfg.eval.fid_every) +
                " but eval.inception and eval.reference are not both set (the FID network file "
                "and the reference statistics .npz; see docs/evaluation.md)");
  }
  if (use == ConfigUse::kTrain && !cfg.train.posthoc_ema.sigma_rels.empty() &&
      cfg.train.posthoc_ema.snapshot_every <= 0) {
    throw Error("train.posthoc_ema.sigma_rels is set but train.posthoc_ema.snapshot_every is " +
                std::to_string(cfg.train.posthoc_ema.snapshot_every) +
                ": set the iterations between snapshots (> 0)");
  }
  if (use == ConfigUse::kTrain && cfg.data.path.empty() && cfg.data.format != "synthetic") {
    throw Error("data.path is required: the data set to train on");
  }
}

std::string dump_config(const RunConfig& cfg) {
  YAML::Node root(YAML::NodeType::Map);
  for (const auto& f : schema()) {
    // Split "a.b.c" into nested maps.
    YAML::Node node = root;
    std::string key = f.key;
    size_t dot;
    while ((dot = key.find('.')) != std::string::npos) {
      const std::string part = key.substr(0, dot);
      if (!node[part]) node[part] = YAML::Node(YAML::NodeType::Map);
      node.reset(node[part]);
      key = key.substr(dot + 1);
    }
    node[key] = f.get(cfg);
  }
  YAML::Emitter out;
  out << root;
  return std::string(out.c_str()) + "\n";
}

}  // namespace dmtrain::config
