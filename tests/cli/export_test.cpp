// dmtrain export end to end: a tiny run shaped as the reference fixture's improved-diffusion UNet
// (tests/fixtures/models/id_small.pt, made by ID's own UNetModel) is trained, exported in both
// formats, and read back by Python's torch.load(weights_only=True) and safetensors: the keys and
// shapes must be exactly the reference state_dict's (what a strict load_state_dict requires), the
// values those of the run's EMA file, and the .json card the constructor arguments the fixture
// was made with. The README's Python snippet runs on the exported files.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "dmtrain/config/load.hpp"
#include "dmtrain/ema/ema_files.hpp"
#include "dmtrain/models/state_dict.hpp"
#include "dmtrain/recipe/build.hpp"
#include "support/python.hpp"
#include "support/scratch_dir.hpp"
#include "support/tiny_run.hpp"

#include "../eval/run_dmtrain.hpp"

namespace {
namespace fs = std::filesystem;
using dmtrain::test_support::file_text;
using json = nlohmann::json;

// The model section of the fixture's ID UNetModel: 16 px, 32 channels, mult (1, 1), one res
// block, attention at ds 2 (8 px) with 2 heads, scale-shift norm, learned sigma.
const char* kConfig = R"(model:
  image_size: 16
  in_channels: 3
  model_channels: 32
  channel_mult: [1, 1]
  num_res_blocks: 1
  attention_resolutions: [8]
  num_heads: 2
  dropout: 0.0
  learn_sigma: true
  use_scale_shift_norm: true
diffusion:
  steps: 20
data:
  format: synthetic
train:
  iterations: 2
  batch_size: 2
  device: cpu
  ema_rates: [0.9, 0.99]
log:
  level: warn
sample:
  count: 1
  steps: ddim2
)";

class Export : public dmtrain::test_support::ScratchDirTest {
 protected:
  Export() : ScratchDirTest("export") {}
  void SetUp() override {
    ScratchDirTest::SetUp();
    std::ofstream(dir_ / "run.yaml") << kConfig;
    run_ = dir_ / "run";
    const auto r = dmtrain::testing::run_dmtrain("--config " + (dir_ / "run.yaml").string() +
                                                 " --run-dir " + run_.string());
    ASSERT_EQ(r.rc, 0) << r.output;
  }
  dmtrain::testing::RunResult run(const std::string& args) {
    return dmtrain::testing::run_dmtrain("export --run " + run_.string() + " " + args);
  }
  // Runs a python script, returning its stdout.
  std::string python(const std::string& py, const std::string& script) {
    std::ofstream(dir_ / "check.py") << script;
    const std::string cmd =
        "cd '" + dir_.string() + "' && '" + py + "' check.py > py.txt 2> py.err";
    const int rc = std::system(cmd.c_str());
    EXPECT_EQ(rc, 0) << file_text(dir_ / "py.err");
    return file_text(dir_ / "py.txt");
  }
  fs::path run_;
};

TEST_F(Export, PythonReadsBothFormatsWithTheReferenceKeysAndTheRunsWeights) {
  ASSERT_EQ(run("--weights ema:0.99 --out " + (dir_ / "m.pt").string()).rc, 0);
  const auto r =
      run("--weights ema:0.99 --format safetensors --out " + (dir_ / "m.safetensors").string());
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_NE(r.output.find("improved_diffusion.unet.UNetModel"), std::string::npos) << r.output;

  // The values: those of the run's final EMA archive (ema_0.99.pt), read by the C++ loader.
  const auto cfg = dmtrain::config::load_config((run_ / "config.yaml").string(), {},
                                                dmtrain::config::ConfigUse::kModel);
  dmtrain::models::UNetModel model(dmtrain::recipe::unet_options(cfg));
  dmtrain::ema::load_ema_weights(model, cfg.train.ema_rates, 1, (run_ / "ema_0.99.pt").string());
  const auto exported = dmtrain::models::read_state_dict_file((dir_ / "m.pt").string());
  const auto params = model->named_parameters(true);
  ASSERT_EQ(exported.size(), params.size());
  for (size_t i = 0; i < exported.size(); ++i) {
    EXPECT_EQ(exported[i].first, params[i].key());
    EXPECT_TRUE(exported[i].second.equal(params[i].value())) << exported[i].first;
  }
  EXPECT_TRUE(fs::exists(run_ / "ema_0.99.safetensors.fnv"));
  EXPECT_TRUE(fs::exists(run_ / "ema_0.9.safetensors"));

  const std::string py = dmtrain::test_support::find_python({"torch", "safetensors"});
  if (py.empty())
    GTEST_SKIP() << "no python with torch and safetensors (scripts/bootstrap installs both)";
  const std::string out = python(py, R"(
import torch
from safetensors.torch import load_file
ref = torch.load(")" + std::string(DMTRAIN_FIXTURES_DIR) +
                                         R"(/models/id_small.pt", weights_only=True)
pt = torch.load("m.pt", weights_only=True)
st = load_file("m.safetensors")
final = load_file("run/ema_0.99.safetensors")
print(list(pt) == list(ref), sorted(pt) == sorted(ref), sorted(st) == sorted(ref))
print(all(pt[k].shape == ref[k].shape for k in ref), all(st[k].shape == ref[k].shape for k in ref))
print(all(pt[k].dtype == torch.float32 and torch.equal(pt[k], st[k]) and torch.equal(st[k], final[k]) for k in ref))
print(len(ref), sum(float(v.double().abs().sum()) > 0 for v in pt.values()))
)");
  std::istringstream in(out);
  std::string order, keys_pt, keys_st, shapes_pt, shapes_st, values;
  size_t n = 0, nonzero = 0;
  in >> order >> keys_pt >> keys_st >> shapes_pt >> shapes_st >> values >> n >> nonzero;
  EXPECT_EQ(keys_pt, "True") << out;
  EXPECT_EQ(keys_st, "True") << out;
  EXPECT_EQ(order, "True") << "the reference's key order: " << out;
  EXPECT_EQ(shapes_pt, "True") << out;
  EXPECT_EQ(shapes_st, "True") << out;
  EXPECT_EQ(values, "True") << out;
  EXPECT_GT(n, 20u);
  EXPECT_GT(nonzero, n / 2) << "an export of zeros";
}

TEST_F(Export, CardGivesTheReferenceConstructorArguments) {
  ASSERT_EQ(run("--weights raw --out " + (dir_ / "raw.safetensors").string()).rc, 0);
  const json card = json::parse(file_text(dir_ / "raw.json"));
  EXPECT_EQ(card["reference"], "improved_diffusion");
  // make_fixtures.py's IDUNet(in_channels=3, model_channels=32, out_channels=6, num_res_blocks=1,
  // attention_resolutions=(2,), dropout=0.0, channel_mult=(1, 1), num_heads=2,
  // use_scale_shift_norm=True).
  const json& k = card["unet_kwargs"];
  EXPECT_EQ(k["in_channels"], 3);
  EXPECT_EQ(k["model_channels"], 32);
  EXPECT_EQ(k["out_channels"], 6);
  EXPECT_EQ(k["num_res_blocks"], 1);
  EXPECT_EQ(k["attention_resolutions"], json::array({2}));
  EXPECT_EQ(k["dropout"], 0);
  EXPECT_EQ(k["channel_mult"], json::array({1, 1}));
  EXPECT_EQ(k["num_heads"], 2);
  EXPECT_EQ(k["use_scale_shift_norm"], true);
  EXPECT_TRUE(k["num_classes"].is_null());
  EXPECT_FALSE(k.contains("resblock_updown")) << "ID's UNetModel has no such argument";
}

// The README's "Using your weights in Python" block, run as a user would after the two exports.
TEST_F(Export, ReadmeSnippetLoadsTheExports) {
  ASSERT_EQ(run("--out " + (dir_ / "model.pt").string()).rc, 0);
  ASSERT_EQ(run("--out " + (dir_ / "model.safetensors").string()).rc, 0);
  const std::string readme = file_text(fs::path(DMTRAIN_SOURCE_DIR) / "README.md");
  const size_t marker = readme.find("<!-- python-snippet:");
  ASSERT_NE(marker, std::string::npos) << "README lost its Python snippet";
  const size_t begin = readme.find("```python\n", marker);
  ASSERT_NE(begin, std::string::npos);
  const size_t body = begin + std::string("```python\n").size();
  const std::string snippet = readme.substr(body, readme.find("```", body) - body);
  const std::string py = dmtrain::test_support::find_python({"torch", "safetensors"});
  if (py.empty())
    GTEST_SKIP() << "no python with torch and safetensors (scripts/bootstrap installs both)";
  const std::string out = python(py, snippet + "\nprint(type(state).__name__, sorted(card))\n");
  EXPECT_EQ(out.substr(0, out.find('\n')), "improved_diffusion 126 tensors") << out;
  EXPECT_NE(out.find("dict ['format_version', 'loaded', 'reference', 'unet_kwargs', 'weights']"),
            std::string::npos)
      << out;
}

TEST_F(Export, ClearErrors) {
  auto r = run("--weights ema:0.5 --out " + (dir_ / "x.pt").string());
  EXPECT_EQ(r.rc, 2) << r.output;
  EXPECT_NE(r.output.find("no EMA of rate 0.5 (train.ema_rates = [0.9, 0.99])"), std::string::npos)
      << r.output;
  r = run("--weights phema:0.1 --out " + (dir_ / "x.pt").string());
  EXPECT_EQ(r.rc, 2) << r.output;
  EXPECT_NE(r.output.find("train.posthoc_ema"), std::string::npos) << r.output;
  r = run("--weights best --out " + (dir_ / "x.pt").string());
  EXPECT_EQ(r.rc, 2) << r.output;
  EXPECT_NE(r.output.find("--weights 'best'"), std::string::npos) << r.output;
  r = run("--format pt --out " + (dir_ / "x.safetensors").string());
  EXPECT_EQ(r.rc, 2) << r.output;
  r = run("--out " + (dir_ / "no" / "x.pt").string());
  EXPECT_EQ(r.rc, 2) << r.output;
  EXPECT_NE(r.output.find("does not exist"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir_ / "x.pt"));
  EXPECT_FALSE(fs::exists(dir_ / "x.pt.tmp"));
}

}  // namespace
