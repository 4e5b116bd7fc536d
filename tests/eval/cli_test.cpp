// The dmtrain schedule / sample / consistency / fid subcommands end to end (the executable built
// next to this test): their output against the library and closed forms, and their error messages
// for bad input.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include "dmtrain/eval/fid.hpp"
#include "dmtrain/eval/sample_images.hpp"
#include "dmtrain/models/state_dict.hpp"
#include "dmtrain/util/image_io.hpp"
#include "dmtrain/util/npy.hpp"
#include "support/scratch_dir.hpp"
#include "tiny_inception.hpp"
#include "tiny_model.hpp"

#include "run_dmtrain.hpp"

namespace {
namespace fs = std::filesystem;
namespace ev = dmtrain::eval;

using Result = dmtrain::testing::RunResult;
Result run(const std::string& args) {
  return dmtrain::testing::run_dmtrain(args);
}

class Cli : public dmtrain::test_support::ScratchDirTest {
 protected:
  Cli() : ScratchDirTest("eval_cli") {}
  // The YAML model section of ev::testing::tiny_options() (attention at 8 / 2 = 4 pixels).
  static std::string model_yaml(int64_t channels = 32) {
    return "model:\n  image_size: 8\n  in_channels: 3\n  model_channels: " +
           std::to_string(channels) +
           "\n  num_res_blocks: 1\n  channel_mult: [1, 2]\n  attention_resolutions: [4]\n"
           "  num_heads: 2\n  learn_sigma: true\n  dropout: 0.0\n  use_scale_shift_norm: false\n"
           "diffusion:\n  steps: 40\n  noise_schedule: linear\n  rescale_timesteps: true\n";
  }
};

TEST_F(Cli, ScheduleWritesClosedFormCsv) {
  const auto cfg =
      write("run.yaml", model_yaml() +
                            "timestep:\n  sampler: clts\n  clts: {mu: 0.3, sigma: 0.25, "
                            "target_iteration: 100}\n"
                            "optim: {lr: 0.0002, beta1: 0.9, beta1_min: 0.5, momentum_decay: "
                            "true, lr_compensation: true}\n"
                            "train: {iterations: 200}\ndata: {path: /nonexistent}\n");
  const auto csv = (dir_ / "s.csv").string();
  const auto r = run("schedule --config " + cfg + " --at 0,100,200 --out " + csv);
  ASSERT_EQ(r.rc, 0) << r.output;
  std::ifstream is(csv);
  std::string line;
  std::getline(is, line);
  EXPECT_EQ(line, "iteration,t,p,beta1,lr");
  std::vector<std::vector<double>> rows;
  while (std::getline(is, line)) {
    std::vector<double> v;
    std::stringstream ls(line);
    std::string cell;
    while (std::getline(ls, cell, ',')) v.push_back(std::stod(cell));
    rows.push_back(v);
  }
  ASSERT_EQ(rows.size(), 120u);  // 3 iterations x T = 40
  double z = 0.0;
  for (int t = 0; t < 40; ++t) z += std::exp(-std::pow(t / 40.0 - 0.3, 2) / (2 * 0.0625));
  for (int i = 0; i < 40; ++i) {
    EXPECT_DOUBLE_EQ(rows[i][2], 1.0 / 40);  // k = 0: uniform
    const double g = std::exp(-std::pow(i / 40.0 - 0.3, 2) / (2 * 0.0625)) / z;
    EXPECT_NEAR(rows[40 + i][2], g, 1e-15);  // k = K_target: the Gaussian
    EXPECT_NEAR(rows[80 + i][2], g, 1e-15);
  }
  EXPECT_DOUBLE_EQ(rows[0][3], 0.9);
  EXPECT_DOUBLE_EQ(rows[0][4], 0.0002);
  // k = 100 = K/2: r = 0.5, beta1 = 0.45 / 0.55 = 0.8181..., lr = 2e-4 * 0.1 / (1 - beta1).
  EXPECT_NEAR(rows[40][3], 0.45 / 0.55, 1e-15);
  EXPECT_NEAR(rows[40][4], 2e-4 * 0.1 / (1 - 0.45 / 0.55), 1e-18);
  EXPECT_DOUBLE_EQ(rows[80][3], 0.5);  // k = K: the floor
  EXPECT_NEAR(rows[80][4], 4e-5, 1e-18);
}

TEST_F(Cli, SampleFromWeightsMatchesLibrary) {
  auto model = ev::testing::tiny_model(21);
  const auto weights = (dir_ / "w.pt").string();
  dmtrain::models::save_state_dict(*model, weights);
  const auto cfg = write("m.yaml", model_yaml());
  const auto npz = (dir_ / "s.npz").string(), png = (dir_ / "s.png").string();
  const auto r = run("sample --weights " + weights + " --config " + cfg +
                     " --n 3 --batch 2 --sampler ddpm --steps 3 --seed 7 --device cpu --out-npz " +
                     npz + " --out-png " + png);
  ASSERT_EQ(r.rc, 0) << r.output;
  const auto arrays = dmtrain::util::read_npz(npz);
  ASSERT_EQ(arrays.size(), 1u);  // unconditional: no arr_1
  EXPECT_EQ(arrays[0].second.sizes(), (at::IntArrayRef{3, 8, 8, 3}));
  ev::SampleImagesOptions o;
  o.n = 3;
  o.batch = 3;
  o.image_shape = {3, 8, 8};
  o.seed = 7;
  o.sampler = "ddpm";
  const auto want = ev::sample_images(ev::testing::tiny_diffusion(40).respaced("3"),
                                      ev::testing::fn_of(model), o);
  EXPECT_TRUE(at::equal(arrays[0].second, want.images));
  const at::Tensor grid = dmtrain::util::read_png(png);
  EXPECT_EQ(grid.sizes(), (at::IntArrayRef{22, 22, 3}));  // 2 x 2 tiles of 8 + padding 2
  EXPECT_TRUE(at::equal(grid.narrow(0, 2, 8).narrow(1, 2, 8), want.images[0]));

  // --noise: the initial noise from a file is used (x_T = 0 differs from the seeded run).
  const auto noise = (dir_ / "noise.npy").string();
  dmtrain::util::write_npy(noise, at::zeros({3, 3, 8, 8}));
  const auto npz2 = (dir_ / "s2.npz").string();
  const auto r2 = run("sample --weights " + weights + " --config " + cfg +
                      " --n 3 --sampler ddpm --steps 3 --seed 7 --device cpu --noise " + noise +
                      " --out-npz " + npz2);
  ASSERT_EQ(r2.rc, 0) << r2.output;
  o.initial_noise = at::zeros({3, 3, 8, 8});
  const auto want2 = ev::sample_images(ev::testing::tiny_diffusion(40).respaced("3"),
                                       ev::testing::fn_of(model), o);
  EXPECT_TRUE(at::equal(dmtrain::util::read_npz(npz2)[0].second, want2.images));
}

// consistency --samples: the mean pairwise PSNR of sample sets written earlier (uint8 images,
// hand-worked: a constant offset d on every pixel gives PSNR 10 log10(255^2 / d^2)).
TEST_F(Cli, ConsistencyOfSavedSampleSets) {
  const auto set = [&](const std::string& name, int value) {
    const auto path = (dir_ / name).string();
    dmtrain::util::write_samples_npz(path, at::full({3, 4, 4, 3}, value, at::kByte));
    return path;
  };
  const auto a = set("a.npz", 0), b = set("b.npz", 16), c = set("c.npz", 32);
  const auto r = run("consistency --samples " + a + " " + b + " " + c);
  ASSERT_EQ(r.rc, 0) << r.output;
  // (a, b) and (b, c): offset 16, 24.0484 dB; (a, c): offset 32, 18.0278 dB; mean 22.0415 dB
  EXPECT_NE(r.output.find("PSNR 0 1 24.048 dB"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("PSNR 0 2 18.028 dB"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("consistency 22.042 dB (mean PSNR over 3 pairs, 3 samples each)"),
            std::string::npos)
      << r.output;

  const auto expect_error = [](const Result& e, const std::string& needle) {
    EXPECT_EQ(e.rc, 2) << e.output;
    EXPECT_NE(e.output.find(needle), std::string::npos) << e.output;
  };
  const auto missing = (dir_ / "missing.npz").string();
  expect_error(run("consistency --samples " + a + " " + missing), missing);
  const auto labels_only = (dir_ / "labels.npz").string();
  dmtrain::util::write_npz(labels_only, {{"arr_1", at::zeros({3}, at::kLong)}});
  expect_error(run("consistency --samples " + a + " " + labels_only), "has no arr_0");
  const auto floats = (dir_ / "floats.npz").string();
  dmtrain::util::write_npz(floats, {{"arr_0", at::zeros({3, 4, 4, 3})}});
  expect_error(run("consistency --samples " + a + " " + floats), "not uint8 images");
  const auto small = set("small.npz", 0);
  dmtrain::util::write_samples_npz(small, at::zeros({2, 4, 4, 3}, at::kByte));
  expect_error(run("consistency --samples " + a + " " + small), "image sets differ");
  expect_error(run("consistency --samples " + a + " " + b + " --checkpoints " + a + " " + b),
               "either --checkpoints or --samples");
  expect_error(run("consistency"), "either --checkpoints or --samples");
}

// The number after `label` in the command's output (NaN when absent).
double number_after(const std::string& output, const std::string& label) {
  const size_t at = output.find(label);
  return at == std::string::npos ? NAN : std::stod(output.substr(at + label.size()));
}

// dmtrain fid with a tiny feature network (tiny_inception.hpp, 6 features) against the three
// kinds of reference: FID statistics saved by np.savez_compressed (pytorch-fid's layout; refused
// before the reader inflated DEFLATE members), reference images (KID and precision/recall too),
// and the features file --cache-ref wrote from them. Every printed number is checked against the
// library on the same images.
TEST_F(Cli, FidAgainstCompressedStatsImagesAndCachedFeatures) {
  const auto net_path = (dir_ / "net.pt").string();
  ev::testing::save_tiny_net(net_path, 6, false);
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(9);
  const at::Tensor samples = at::randint(0, 256, {12, 8, 8, 3}, g, at::kByte);
  const at::Tensor ref_images = at::randint(0, 256, {10, 8, 8, 3}, g, at::kByte);
  const auto samples_npz = (dir_ / "samples.npz").string();
  const auto ref_npz = (dir_ / "ref_images.npz").string();
  dmtrain::util::write_samples_npz(samples_npz, samples);
  dmtrain::util::write_samples_npz(ref_npz, ref_images);
  const ev::InceptionNet net(net_path, {});  // the command's defaults: 299, tf resize
  const ev::FeatureSet s = ev::compute_feature_set(samples, net, 50);
  const std::string fid = "fid --inception " + net_path + " --samples " + samples_npz + " --ref ";

  const std::string stats = std::string(DMTRAIN_FIXTURES_DIR) + "/eval/stats_compressed.npz";
  auto r = run(fid + stats);
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_NEAR(number_after(r.output, "FID "), ev::fid_from_stats(s.stats, ev::load_stats(stats)),
              1e-5);
  EXPECT_NE(r.output.find("KID and precision/recall n/a: the reference holds only mu/sigma"),
            std::string::npos)
      << r.output;
  EXPECT_EQ(r.output.find(" +- "), std::string::npos) << r.output;  // no KID line

  const ev::FeatureSet ref = ev::compute_feature_set(ref_images, net, 50);
  const ev::Kid kid = ev::kid(s.features, ref.features);
  const ev::PrecisionRecall pr = ev::precision_recall(s.features, ref.features);
  ASSERT_GT(pr.precision + pr.recall, 0.0);  // a case where the numbers say something
  const auto cache = (dir_ / "cache.npz").string();
  std::string first;
  for (const std::string& ref_arg : {ref_npz + " --cache-ref " + cache, cache}) {
    r = run(fid + ref_arg);
    ASSERT_EQ(r.rc, 0) << r.output;
    EXPECT_NEAR(number_after(r.output, "FID "), ev::fid_from_stats(s.stats, ref.stats), 1e-5);
    EXPECT_NEAR(number_after(r.output, "KID "), kid.mean, 1e-6) << r.output;
    EXPECT_NEAR(number_after(r.output, " +- "), kid.std, 1e-6) << r.output;
    EXPECT_NE(r.output.find("(100 subsets of 10)"), std::string::npos) << r.output;
    EXPECT_NEAR(number_after(r.output, "precision "), pr.precision, 1e-6) << r.output;
    EXPECT_NEAR(number_after(r.output, " recall "), pr.recall, 1e-6) << r.output;
    EXPECT_EQ(r.output.find("n/a: the reference"), std::string::npos) << r.output;
    const std::string metrics = r.output.substr(r.output.find("FID "));
    if (first.empty()) {
      first = metrics;
    } else {
      EXPECT_EQ(metrics, first);  // the cached features give the very same numbers
    }
  }
  EXPECT_TRUE(ev::load_feature_set(cache).has_features());

  // A damaged compressed member: exit 2, the file and the member named.
  std::ifstream in(stats, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t name = bytes.find("sigma.npy");
  ASSERT_NE(name, std::string::npos);
  bytes[name + 9 + static_cast<uint8_t>(bytes[name - 2]) + 40] ^= 0x21;
  const auto bad = (dir_ / "bad_stats.npz").string();
  std::ofstream(bad, std::ios::binary) << bytes;
  r = run(fid + bad);
  EXPECT_EQ(r.rc, 2) << r.output;
  EXPECT_NE(r.output.find(bad + ": member 'sigma.npy'"), std::string::npos) << r.output;
}

TEST_F(Cli, ClearErrors) {
  auto expect_error = [](const Result& r, const std::string& needle) {
    EXPECT_EQ(r.rc, 2) << r.output;
    EXPECT_NE(r.output.find(needle), std::string::npos) << r.output;
  };
  const auto missing = (dir_ / "no_such_run").string();
  expect_error(run("sample --checkpoint " + missing + " --out-png x.png"),
               "--checkpoint '" + missing + "' does not exist");
  expect_error(run("sample --checkpoint " + dir_.string() + " --out-png x.png"),
               "neither a checkpoint folder");
  auto model = ev::testing::tiny_model(22);
  const auto weights = (dir_ / "w.pt").string();
  dmtrain::models::save_state_dict(*model, weights);
  const auto no_model = write("nomodel.yaml", "diffusion:\n  steps: 40\n");
  expect_error(run("sample --weights " + weights + " --config " + no_model + " --out-png x.png"),
               "has no model section");
  const auto wider = write("wide.yaml", model_yaml(64));
  const auto r = run("sample --weights " + weights + " --config " + wider + " --out-png x.png");
  expect_error(r, "do not fit the model described by");
  EXPECT_NE(r.output.find("time_embed.0.weight"), std::string::npos) << r.output;
  expect_error(run("sample --weights " + weights + " --out-png x.png"), "--weights needs --config");
  const auto cfg = write("m.yaml", model_yaml());
  expect_error(run("sample --weights " + weights + " --config " + cfg), "--out-png");
  expect_error(run("schedule --config " + cfg + " --at 1,x"), "--at");
}

}  // namespace
