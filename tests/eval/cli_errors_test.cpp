// Bad input through the executable (DMTRAIN_BINARY): ends with `dmtrain: error: ...` and
// exit code 2, never an abort (134) or a segfault (139); a dry run refuses what the run would
// refuse later; and a damaged final EMA export is refused by the commands that read it (a flipped
// bit used to give `bits/dim nan` and exit 0).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "run_dmtrain.hpp"
#include "support/scratch_dir.hpp"

namespace {
namespace fs = std::filesystem;

using Result = dmtrain::testing::RunResult;
Result run(const std::string& args) {
  return dmtrain::testing::run_dmtrain(args);
}

class CliErrors : public dmtrain::test_support::ScratchDirTest {
 protected:
  CliErrors() : ScratchDirTest("cli_errors") {}
  void SetUp() override {
    ScratchDirTest::SetUp();
    write_idx(dir_ / "idx");
  }
  // 16 gray 8x8 images with labels, in the IDX layout of MNIST.
  static void write_idx(const fs::path& d) {
    fs::create_directories(d);
    auto be32 = [](std::ofstream& f, uint32_t v) {
      const char b[4] = {char(v >> 24), char(v >> 16), char(v >> 8), char(v)};
      f.write(b, 4);
    };
    std::ofstream im(d / "train-images-idx3-ubyte", std::ios::binary);
    for (uint32_t v : {0x803u, 16u, 8u, 8u}) be32(im, v);
    for (int i = 0; i < 16 * 64; ++i) im.put(char((i * 37) % 256));
    std::ofstream lb(d / "train-labels-idx1-ubyte", std::ios::binary);
    for (uint32_t v : {0x801u, 16u}) be32(lb, v);
    for (int i = 0; i < 16; ++i) lb.put(char(i % 10));
  }
  // A tiny CPU run of one iteration on the IDX data; `extra` is appended YAML.
  std::string config(const std::string& extra = "") {
    return write("run.yaml",
                 "model: {image_size: 8, in_channels: 1, model_channels: 32, num_res_blocks: 1,\n"
                 "        channel_mult: [1, 2], attention_resolutions: [4], num_heads: 1}\n"
                 "diffusion: {steps: 20}\n"
                 "data: {format: idx, path: " +
                     (dir_ / "idx").string() +
                     ", num_workers: 1}\n"
                     "train: {iterations: 1, batch_size: 4, device: cpu, ema_rates: [0.9],\n"
                     "        run_dir: " +
                     (dir_ / "run").string() +
                     "}\n"
                     "sample: {count: 2, steps: '2'}\nlog: {every: 1}\n" +
                     extra);
  }
};

#define EXPECT_HAS(r, part) EXPECT_NE((r).output.find(part), std::string::npos) << (r).output

TEST_F(CliErrors, FinalEmaExportCarriesAChecksumThatReadersVerify) {
  const auto cfg = config();
  ASSERT_EQ(run("--config " + cfg).rc, 0);
  const fs::path ema = dir_ / "run" / "ema_0.9.pt";
  ASSERT_TRUE(fs::exists(ema));
  ASSERT_TRUE(fs::exists(ema.string() + ".fnv")) << "no checksum sidecar";
  const std::string run_dir = (dir_ / "run").string();
  const std::string sample = "sample --checkpoint " + run_dir + " --n 2 --device cpu --out-npz " +
                             (dir_ / "s.npz").string();
  const std::string nll =
      "nll --checkpoint " + run_dir + " --data-split train --n 2 --batch 2 --device cpu";
  ASSERT_EQ(run(sample).rc, 0);
  // One flipped bit in the middle of the archive: inside a tensor's data, which parses fine.
  {
    std::fstream f(ema, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(fs::file_size(ema) / 2));
    const char c = static_cast<char>(f.get());
    f.seekp(static_cast<std::streamoff>(fs::file_size(ema) / 2));
    f.put(static_cast<char>(c ^ 0x10));
  }
  for (const std::string& cmd : {sample, nll}) {
    const auto r = run(cmd);
    EXPECT_EQ(r.rc, 2) << cmd << "\n" << r.output;
    EXPECT_HAS(r, "corrupt: its hash does not match");
    EXPECT_HAS(r, ema.string());
  }
  // Without the sidecar (a run of an older dmtrain) the file loads, with a warning.
  fs::remove(ema.string() + ".fnv");
  const auto r = run(sample);
  EXPECT_EQ(r.rc, 0) << r.output;
  EXPECT_HAS(r, "no checksum file");
}

TEST_F(CliErrors, IdxDataPathThatIsMissingOrNotAnIdxFile) {
  // These aborted in the IDX path handling (std::out_of_range from basic_string::replace).
  auto r = run("--config " + config() + " --set data.path=" + (dir_ / "nope").string());
  EXPECT_EQ(r.rc, 2) << r.output;
  EXPECT_HAS(r, "data.path '" + (dir_ / "nope").string() + "' (data.format: idx) does not exist");
  const auto odd = write("odd.bin", "\x01\x02");
  r = run("--config " + config() + " --set data.path=" + odd);
  EXPECT_EQ(r.rc, 2) << r.output;
  EXPECT_HAS(r, "IDX file '" + odd + "' is truncated or corrupt");
}

TEST_F(CliErrors, IdxHeaderClaimingMoreThanTheFileHolds) {
  // Was a c10::Error from an overflowing allocation (exit 3).
  fs::create_directories(dir_ / "huge");
  std::ofstream f(dir_ / "huge" / "train-images-idx3-ubyte", std::ios::binary);
  f.write("\x00\x00\x08\x03\xff\xff\xff\xff\x00\x01\x00\x00\x00\x01\x00\x00", 16);
  f.close();
  const auto r = run("--config " + config() + " --set data.path=" + (dir_ / "huge").string());
  EXPECT_EQ(r.rc, 2) << r.output;
  EXPECT_HAS(r, "its header claims 4294967295 images of 65536x65536");
}

TEST_F(CliErrors, EmptyEmaRatesAreRefusedAtLoad) {
  // Accepted before, then a segfault (139) at the first sample grid.
  const auto r = run("--config " + config() + " --set train.ema_rates=[]");
  EXPECT_EQ(r.rc, 2) << r.output;
  EXPECT_HAS(r, "train.ema_rates");
}

TEST_F(CliErrors, MalformedYamlIsAnErrorNotAnAbort) {
  for (const std::string text : {"? [a, b]\n: 1\n", "base: [[a.yaml]]\n"}) {
    const auto r = run("--config " + write("bad.yaml", text) + " --dry-run");
    EXPECT_EQ(r.rc, 2) << text << r.output;
    EXPECT_HAS(r, "dmtrain: error: ");
  }
  fs::create_directories(dir_ / "folder.yaml");
  const auto r = run("--config " + (dir_ / "folder.yaml").string() + " --dry-run");
  EXPECT_EQ(r.rc, 2) << r.output;
  EXPECT_HAS(r, "is not a file");
}

TEST_F(CliErrors, DryRunRefusesWhatTheRunWouldRefuseLater) {
  for (const std::string key : {"sample.steps", "eval.steps"}) {
    const auto r = run("--config " + config() + " --dry-run --set " + key +
                       "=ddimX --set eval.fid_every=1 --set eval.inception=i.pt "
                       "--set eval.reference=r.npz");
    EXPECT_EQ(r.rc, 2) << r.output;
    EXPECT_HAS(r, key + " 'ddimX'");
  }
  // Too many steps for the 20 of the process: failed at the final grid, after training.
  auto r = run("--config " + config() + " --set sample.steps=50");
  EXPECT_EQ(r.rc, 2) << r.output;
  EXPECT_HAS(r, "sample.steps '50'");
  EXPECT_FALSE(fs::exists(dir_ / "run" / "checkpoints")) << "it trained first";
  // Attention the net never reaches: a warning naming the key and the net's resolutions.
  r = run("--config " + config() + " --dry-run --set model.attention_resolutions=[16,4]");
  EXPECT_EQ(r.rc, 0) << r.output;
  EXPECT_HAS(r, "model.attention_resolutions: the net never reaches 16 (its resolutions are 8, 4");
}

}  // namespace
