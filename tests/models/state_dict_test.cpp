// State-dict I/O: error messages name the file and the missing / unexpected / mis-shaped keys,
// save -> load round trips in both formats, and the safetensors reader against a file written
// by the safetensors Python package (tests/fixtures/models/mixed_dtypes.safetensors).
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "dmtrain/models/state_dict.hpp"
#include "dmtrain/models/unet.hpp"
#include "dmtrain/util/error.hpp"
#include "support/python.hpp"

namespace dm = dmtrain::models;
namespace fs = std::filesystem;

namespace {

const std::string kDir = std::string(DMTRAIN_FIXTURES_DIR) + "/models/";

dm::UNetOptions tiny() {
  dm::UNetOptions o;
  o.image_size(8)
      .model_channels(32)
      .num_res_blocks(1)
      .attention_resolutions({2})
      .channel_mult({1, 2})
      .num_classes(3)
      .use_scale_shift_norm(true);
  return o;
}

class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() /
            ("dmtrain_models_" + std::to_string(::getpid()) + "_" + std::to_string(counter_++));
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  static inline int counter_ = 0;
  fs::path path_;
};

std::string load_error(torch::nn::Module& m, const std::string& path, bool strict = true) {
  try {
    dm::load_state_dict(m, path, strict);
  } catch (const dmtrain::Error& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

void randomize(torch::nn::Module& m, uint64_t seed) {
  torch::manual_seed(seed);
  torch::NoGradGuard g;
  for (auto& p : m.parameters()) p.normal_();
}

}  // namespace

TEST(StateDict, RoundTripBothFormats) {
  TempDir dir;
  dm::UNetModel a(tiny());
  randomize(*a, 1);
  for (const std::string name : {"m.pt", "m.safetensors"}) {
    dm::save_state_dict(*a, dir.file(name));
    dm::UNetModel b(tiny());
    randomize(*b, 2);
    const auto report = dm::load_state_dict(*b, dir.file(name));
    EXPECT_TRUE(report.missing.empty() && report.unexpected.empty());
    const auto pb = b->named_parameters();
    for (const auto& p : a->named_parameters()) {
      EXPECT_TRUE(torch::equal(p.value(), pb[p.key()])) << name << " " << p.key();
    }
  }
}

TEST(StateDict, HalfPrecisionRoundTripKeepsDtypeInFile) {
  TempDir dir;
  dm::NamedTensors t{{"w", torch::tensor({0.5, -1.25}).to(torch::kHalf)},
                     {"b", torch::tensor({3.0, 4.0}).to(torch::kBFloat16)},
                     {"i", torch::tensor({int64_t{1} << 40})}};
  for (const std::string name : {"t.pt", "t.safetensors"}) {
    dm::write_state_dict_file(t, dir.file(name));
    const auto back = dm::read_state_dict_file(dir.file(name));
    ASSERT_EQ(back.size(), 3u);
    for (size_t i = 0; i < 3; ++i) {
      EXPECT_EQ(back[i].first, t[i].first);
      EXPECT_EQ(back[i].second.scalar_type(), t[i].second.scalar_type());
      EXPECT_TRUE(torch::equal(back[i].second, t[i].second));
    }
  }
}

TEST(StateDict, MissingAndMisShapedKeysAreNamed) {
  TempDir dir;
  dm::UNetModel a(tiny());
  dm::NamedTensors tensors;
  for (const auto& p : a->named_parameters()) {
    if (p.key() == "out.2.bias") continue;  // missing
    if (p.key() == "label_emb.weight") {
      tensors.emplace_back(p.key(), torch::zeros({5, 128}));  // mis-shaped (3 classes expected)
      continue;
    }
    tensors.emplace_back(p.key(), p.value());
  }
  tensors.emplace_back("extra.weight", torch::zeros({1}));  // unexpected
  const std::string path = dir.file("bad.safetensors");
  dm::write_state_dict_file(tensors, path);

  dm::UNetModel b(tiny());
  const auto before = b->named_parameters()["time_embed.0.weight"].clone();
  const std::string msg = load_error(*b, path);
  EXPECT_TRUE(contains(msg, path)) << msg;
  EXPECT_TRUE(contains(msg, "missing keys (1)")) << msg;
  EXPECT_TRUE(contains(msg, "out.2.bias")) << msg;
  EXPECT_TRUE(contains(msg, "unexpected keys (1)")) << msg;
  EXPECT_TRUE(contains(msg, "extra.weight")) << msg;
  EXPECT_TRUE(contains(msg, "label_emb.weight (expected [3, 128], found [5, 128])")) << msg;
  // Nothing was copied by the failed load.
  EXPECT_TRUE(torch::equal(before, b->named_parameters()["time_embed.0.weight"]));

  // Non-strict: missing/unexpected are reported, but a shape mismatch still fails.
  const std::string lax = load_error(*b, path, false);
  EXPECT_TRUE(contains(lax, "label_emb.weight")) << lax;
  EXPECT_FALSE(contains(lax, "out.2.bias")) << lax;
}

TEST(StateDict, NonStrictLoadReportsAndCopiesTheRest) {
  TempDir dir;
  dm::UNetModel a(tiny());
  randomize(*a, 3);
  dm::NamedTensors tensors;
  for (const auto& p : a->named_parameters()) {
    if (p.key() != "out.2.bias") tensors.emplace_back(p.key(), p.value());
  }
  tensors.emplace_back("ema_rate", torch::ones({1}));
  const std::string path = dir.file("partial.pt");
  dm::write_state_dict_file(tensors, path);
  dm::UNetModel b(tiny());
  EXPECT_FALSE(load_error(*b, path).empty());  // strict refuses
  const auto report = dm::load_state_dict(*b, path, false);
  EXPECT_EQ(report.missing, std::vector<std::string>{"out.2.bias"});
  EXPECT_EQ(report.unexpected, std::vector<std::string>{"ema_rate"});
  EXPECT_TRUE(
      torch::equal(a->named_parameters()["out.2.weight"], b->named_parameters()["out.2.weight"]));
}

TEST(Safetensors, ReadsFileFromPythonPackage) {
  const auto t = dm::read_safetensors(kDir + "mixed_dtypes.safetensors");
  std::map<std::string, torch::Tensor> m(t.begin(), t.end());
  ASSERT_EQ(m.size(), 4u);
  EXPECT_EQ(m["a_f32"].scalar_type(), torch::kFloat);
  EXPECT_TRUE(torch::equal(m["a_f32"], torch::arange(6, torch::kFloat).reshape({2, 3})));
  EXPECT_EQ(m["b_bf16"].scalar_type(), torch::kBFloat16);
  EXPECT_EQ(m["b_bf16"][0].item<float>(), 1.5f);
  EXPECT_EQ(m["b_bf16"][1].item<float>(), -2.25f);
  EXPECT_EQ(m["c_i64"].scalar_type(), torch::kLong);
  EXPECT_EQ(m["c_i64"][0].item<int64_t>(), -3);
  EXPECT_EQ(m["c_i64"][1].item<int64_t>(), int64_t{1} << 40);
  EXPECT_EQ(m["d_f16"].scalar_type(), torch::kHalf);
  EXPECT_EQ(m["d_f16"].sizes().vec(), (std::vector<int64_t>{1, 1}));
  EXPECT_EQ(m["d_f16"][0][0].item<float>(), 0.5f);
}

TEST(Safetensors, MalformedFilesGiveErrorsNamingTheFile) {
  TempDir dir;
  const auto write = [&](const std::string& name, const std::string& header, size_t data) {
    std::ofstream out(dir.file(name), std::ios::binary);
    const uint64_t n = header.size();
    for (int i = 0; i < 8; ++i) out.put(static_cast<char>((n >> (8 * i)) & 0xFF));
    out << header << std::string(data, '\0');
    return dir.file(name);
  };
  const auto expect_error = [](const std::string& path, const std::string& part) {
    try {
      dm::read_safetensors(path);
      ADD_FAILURE() << "no error for " << path;
    } catch (const dmtrain::Error& e) {
      EXPECT_TRUE(contains(e.what(), path)) << e.what();
      EXPECT_TRUE(contains(e.what(), part)) << e.what();
    }
  };
  expect_error(
      write("offsets.safetensors", R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", 4),
      "data_offsets");
  expect_error(write("dtype.safetensors",
                     R"({"w":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[0,1]}})", 1),
               "F8_E4M3");
  expect_error(write("json.safetensors", R"({"w":{"dtype":"F32",)", 0), "malformed JSON");
  {
    std::ofstream out(dir.file("short.safetensors"), std::ios::binary);
    out << "abc";
  }
  expect_error(dir.file("short.safetensors"), "8-byte");
  EXPECT_THROW(dm::read_state_dict_file(dir.file("short.pt")), dmtrain::Error);  // no such file
}

TEST(StateDict, NotATorchFileIsAnError) {
  TempDir dir;
  {
    std::ofstream out(dir.file("junk.pt"));
    out << "this is not a zip archive";
  }
  dm::UNetModel m(tiny());
  const std::string msg = load_error(*m, dir.file("junk.pt"));
  EXPECT_TRUE(contains(msg, "junk.pt")) << msg;
}

TEST(StateDict, PythonTorchLoadReadsOurPtFile) {
  // Independent check of the writer: PyTorch itself (weights_only torch.load) reads the file.
  const std::string py = dmtrain::test_support::find_python({"torch"});
  if (py.empty()) GTEST_SKIP() << "no python with torch (scripts/bootstrap makes one)";
  TempDir dir;
  dm::UNetModel a(tiny());
  randomize(*a, 4);
  dm::save_state_dict(*a, dir.file("py.pt"));
  const std::string cmd =
      "'" + py +
      "' -c \"import torch\nd = "
      "torch.load('" +
      dir.file("py.pt") +
      "', weights_only=True); print(len(d), repr(sum(float(v.double().sum()) for v in "
      "d.values())), list(d)[0], list(d)[-1], tuple(d['label_emb.weight'].shape))\" > " +
      dir.file("py.txt");
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  std::ifstream in(dir.file("py.txt"));
  size_t n = 0;
  double sum = 0;
  std::string first, last, shape;
  in >> n >> sum >> first >> last;
  std::getline(in, shape);
  double expected = 0;
  for (const auto& p : a->parameters()) expected += p.to(torch::kDouble).sum().item<double>();
  EXPECT_EQ(n, a->parameters().size());
  EXPECT_NEAR(sum, expected, 1e-9 * std::max(1.0, std::abs(expected)));
  EXPECT_EQ(first, "time_embed.0.weight");
  EXPECT_EQ(last, "out.2.bias");
  EXPECT_EQ(shape, " (3, 128)");
}

// A small file's bytes reach the disk at the final flush: a full disk there is an error naming
// the file (before, only the buffered writes were checked and the call returned as if it wrote).
TEST(Safetensors, AFullDiskIsAnError) {
  if (!fs::exists("/dev/full")) GTEST_SKIP() << "no /dev/full";
  TempDir dir;
  fs::create_symlink("/dev/full", dir.file("w.safetensors"));
  const dm::NamedTensors t{{"w", torch::ones({3})}};
  try {
    dm::write_safetensors(t, dir.file("w.safetensors"));
    ADD_FAILURE() << "no error";
  } catch (const dmtrain::Error& e) {
    EXPECT_TRUE(contains(e.what(), dir.file("w.safetensors"))) << e.what();
  }
}

TEST(Safetensors, PythonPackageReadsOurFile) {
  // Independent check of the safetensors writer by the Python package.
  const std::string py = dmtrain::test_support::find_python({"torch", "safetensors"});
  if (py.empty())
    GTEST_SKIP() << "no python with torch and safetensors (scripts/bootstrap installs both)";
  TempDir dir;
  dm::NamedTensors t{{"w", torch::tensor({0.5, -1.25, 3.0}).to(torch::kHalf)},
                     {"i", torch::tensor({int64_t{-7}, int64_t{1} << 40})},
                     {"m", torch::arange(6, torch::kFloat).reshape({3, 2})}};
  dm::write_safetensors(t, dir.file("py.safetensors"));
  const std::string cmd =
      "'" + py + "' -c \"from safetensors.torch import load_file\nd = load_file('" +
      dir.file("py.safetensors") +
      "'); print(d['w'].dtype, d['w'].tolist(), d['i'].tolist(), d['m'].shape[0], "
      "float(d['m'].sum()))\" > " +
      dir.file("py.txt");
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  std::ifstream in(dir.file("py.txt"));
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, "torch.float16 [0.5, -1.25, 3.0] [-7, 1099511627776] 3 15.0");
}
