// Sweeps: grid parsing, expansion order / names / run dirs, the printed commands (checked by a
// real /bin/sh), --index selection, the metrics.jsonl parser, the summary (losses, FID columns,
// iters_to_fid) of hand-written metrics.jsonl files, and one real 2-run x 2-iteration sweep
// through the trainer. The parallel executor: sweep_executor_test.cpp.
#include "dmtrain/sweep/sweep.hpp"
#include "support/error_of.hpp"
#include "support/scratch_dir.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "dmtrain/config/load.hpp"
#include "dmtrain/util/error.hpp"
#include "support/finished_run.hpp"
#include "support/tiny_run.hpp"

namespace fs = std::filesystem;
using namespace dmtrain;
using sweep::SweepAxis;
using sweep::SweepRun;
using sweep::SweepSpec;

namespace {

using dmtrain::test_support::error_of;

fs::path scratch(const std::string& name) {
  return dmtrain::test_support::scratch_dir("sweep_" + name);
}

void write_file(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << text;
}

// A minimal valid base config whose run_dir is root/runs (data.path: an existing folder).
fs::path write_base(const fs::path& root) {
  const fs::path base = root / "base.yaml";
  fs::create_directories(root / "data");
  write_file(base, "data:\n  path: " + (root / "data").string() +
                       "\n"
                       "train:\n  iterations: 10\n  run_dir: " +
                       (root / "runs").string() + "\n");
  return base;
}

// Runs a, b, c of one axis (values "0", "1", "2") in root/a, root/b, root/c, each planned for
// `iterations`: what summarize() reads.
std::vector<SweepRun> runs_abc(const fs::path& root, int64_t iterations) {
  std::vector<SweepRun> runs(3);
  const char* names[] = {"a", "b", "c"};
  for (int i = 0; i < 3; ++i) {
    runs[i].name = names[i];
    runs[i].values = {std::to_string(i)};
    runs[i].run_dir = (root / names[i]).string();
    runs[i].iterations = iterations;
  }
  return runs;
}

}  // namespace

TEST(SweepGrid, SplitsOnCommasButNotInsideBrackets) {
  auto a = sweep::parse_grid("timestep.clts.mu=0.1, 0.2,0.3");
  EXPECT_EQ(a.key, "timestep.clts.mu");
  EXPECT_EQ(a.values, (std::vector<std::string>{"0.1", "0.2", "0.3"}));
  auto b = sweep::parse_grid("model.channel_mult=[1,2],[1,2,2],[1, 2, {x: 3}]");
  EXPECT_EQ(b.values, (std::vector<std::string>{"[1,2]", "[1,2,2]", "[1, 2, {x: 3}]"}));
  auto c = sweep::parse_grid("data.path='a,b',c");
  EXPECT_EQ(c.values, (std::vector<std::string>{"'a,b'", "c"}));
}

TEST(SweepGrid, BadInputThrowsWithAHelpfulMessage) {
  // A short key that is the unique tail of a schema key suggests the full key.
  EXPECT_NE(error_of([] {
              sweep::parse_grid("clts.mu=0.1");
            }).find("unknown key 'clts.mu' (did you mean 'timestep.clts.mu'?)"),
            std::string::npos);
  // A misspelt key suggests the closest one.
  EXPECT_NE(error_of([] {
              sweep::parse_grid("timestep.clts.muu=0.1");
            }).find("did you mean 'timestep.clts.mu'"),
            std::string::npos);
  EXPECT_NE(error_of([] { sweep::parse_grid("timestep.clts.mu"); }).find("expected key=v1,v2"),
            std::string::npos);
  EXPECT_NE(error_of([] { sweep::parse_grid("timestep.clts.mu="); }).find("value 1 of 1 is empty"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              sweep::parse_grid("timestep.clts.mu=0.1,,0.2");
            }).find("value 2 of 3 is empty"),
            std::string::npos);
  EXPECT_NE(error_of([] { sweep::parse_grid("model.channel_mult=[1,2"); }).find("unbalanced"),
            std::string::npos);
  EXPECT_NE(error_of([] { sweep::parse_grid("train.run_dir=a,b"); }).find("cannot be swept"),
            std::string::npos);
}

TEST(SweepExpand, FirstAxisSlowestWithNamesRunDirsAndOverrides) {
  const fs::path root = scratch("expand");
  SweepSpec spec;
  spec.base_config = write_base(root).string();
  spec.sets = {"optim.lr=0.001"};
  spec.axes = {sweep::parse_grid("timestep.clts.mu=0.1,0.2,0.3"),
               sweep::parse_grid("timestep.clts.target_iteration=50000,100000")};
  const auto runs = sweep::expand(spec);
  ASSERT_EQ(runs.size(), 6u);
  const std::vector<std::string> names{
      "mu0.1_target_iteration50000", "mu0.1_target_iteration100000",
      "mu0.2_target_iteration50000", "mu0.2_target_iteration100000",
      "mu0.3_target_iteration50000", "mu0.3_target_iteration100000"};
  for (size_t i = 0; i < runs.size(); ++i) {
    EXPECT_EQ(runs[i].index, static_cast<int64_t>(i));
    EXPECT_EQ(runs[i].name, names[i]);
    EXPECT_EQ(runs[i].run_dir, (root / "runs" / names[i]).string());
    EXPECT_EQ(runs[i].iterations, 10);
  }
  EXPECT_EQ(runs[3].values, (std::vector<std::string>{"0.2", "100000"}));
  EXPECT_EQ(runs[3].overrides, (std::vector<std::string>{"optim.lr=0.001", "timestep.clts.mu=0.2",
                                                         "timestep.clts.target_iteration=100000"}));
  // The overrides really produce that run's config.
  const auto cfg = config::load_config(spec.base_config, runs[3].overrides);
  EXPECT_DOUBLE_EQ(cfg.timestep.clts.mu, 0.2);
  EXPECT_EQ(cfg.timestep.clts.target_iteration, 100000);

  spec.out_dir = (root / "elsewhere").string();
  EXPECT_EQ(sweep::expand(spec)[0].run_dir, (root / "elsewhere" / names[0]).string());
}

TEST(SweepExpand, LeavesLengthenWhenTheyClashAndValuesAreSanitized) {
  const fs::path root = scratch("names");
  SweepSpec spec;
  spec.base_config = write_base(root).string();
  spec.name_prefix = "abl ation";
  spec.axes = {sweep::parse_grid("diffusion.steps=50"),
               sweep::parse_grid("sample.steps=ddim2,ddim4"),
               sweep::parse_grid("model.channel_mult=[1,2],[1,2,2]")};
  const auto runs = sweep::expand(spec);
  ASSERT_EQ(runs.size(), 4u);
  EXPECT_EQ(runs[0].name, "abl-ation_diffusion.steps50_sample.stepsddim2_channel_mult-1-2");
  EXPECT_EQ(runs[3].name, "abl-ation_diffusion.steps50_sample.stepsddim4_channel_mult-1-2-2");
}

TEST(SweepExpand, InvalidRunOrDuplicateAxisFailsUpFront) {
  const fs::path root = scratch("invalid");
  SweepSpec spec;
  spec.base_config = write_base(root).string();
  spec.axes = {sweep::parse_grid("timestep.clts.mu=0.1"),
               sweep::parse_grid("train.batch_size=8,0")};
  const std::string msg = error_of([&] { sweep::expand(spec); });
  EXPECT_NE(msg.find("sweep run 1 (mu0.1_batch_size0)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("train.batch_size"), std::string::npos) << msg;
  EXPECT_FALSE(fs::exists(root / "runs"));  // nothing was created
  // Before: a value the run refuses at its start (not the config loader) was found after the
  // runs before it had trained.
  spec.axes = {sweep::parse_grid("train.micro_batches=1,3")};
  const std::string chunks = error_of([&] { sweep::expand(spec); });
  EXPECT_NE(chunks.find("sweep run 1 (micro_batches3)"), std::string::npos) << chunks;
  EXPECT_NE(chunks.find("train.micro_batches (3) must divide train.batch_size"), std::string::npos)
      << chunks;
  EXPECT_FALSE(fs::exists(root / "runs"));

  spec.axes = {sweep::parse_grid("timestep.clts.mu=0.1"), sweep::parse_grid("timestep.clts.mu=2")};
  EXPECT_NE(error_of([&] { sweep::expand(spec); }).find("swept twice"), std::string::npos);
  spec.axes = {sweep::parse_grid("data.path=a b,a-b")};
  EXPECT_NE(error_of([&] { sweep::expand(spec); }).find("both be named 'patha-b'"),
            std::string::npos);
  spec.axes.clear();
  EXPECT_NE(error_of([&] { sweep::expand(spec); }).find("at least one"), std::string::npos);
}

TEST(SweepFile, BaseGridNameSetAndOutRelativeToTheFile) {
  const fs::path root = scratch("file");
  write_base(root / "cfg");
  write_file(root / "sweeps" / "s.yaml",
             "base: ../cfg/base.yaml\n"
             "name: clts\n"
             "set: [optim.lr=0.002]\n"
             "out: ../out\n"
             "grid:\n"
             "  timestep.clts.target_iteration: [5, 7]\n"
             "  model.channel_mult: [[1, 2], [1, 2, 2]]\n");
  const SweepSpec spec = sweep::load_sweep_file((root / "sweeps" / "s.yaml").string());
  EXPECT_EQ(fs::path(spec.base_config), (root / "cfg" / "base.yaml").lexically_normal());
  EXPECT_EQ(fs::path(spec.out_dir), (root / "out").lexically_normal());
  EXPECT_EQ(spec.sets, (std::vector<std::string>{"optim.lr=0.002"}));
  ASSERT_EQ(spec.axes.size(), 2u);
  EXPECT_EQ(spec.axes[0].key, "timestep.clts.target_iteration");  // file order kept
  EXPECT_EQ(spec.axes[1].values, (std::vector<std::string>{"[1, 2]", "[1, 2, 2]"}));
  const auto runs = sweep::expand(spec);
  ASSERT_EQ(runs.size(), 4u);
  EXPECT_EQ(runs[1].name, "clts_target_iteration5_channel_mult-1-2-2");
  EXPECT_EQ(config::load_config(spec.base_config, runs[1].overrides).model.channel_mult,
            (std::vector<int64_t>{1, 2, 2}));

  write_file(root / "bad.yaml", "base: cfg/base.yaml\ngrid:\n  clts.sigma: [1]\n");
  EXPECT_NE(error_of([&] { sweep::load_sweep_file((root / "bad.yaml").string()); })
                .find("bad.yaml:3: grid: unknown key 'clts.sigma' (did you mean "
                      "'timestep.clts.sigma'?)"),
            std::string::npos);
  write_file(root / "typo.yaml", "base: cfg/base.yaml\ngrids: {}\n");
  EXPECT_NE(error_of([&] {
              sweep::load_sweep_file((root / "typo.yaml").string());
            }).find("unknown sweep key 'grids'"),
            std::string::npos);
}

TEST(SweepCommand, PrintedLinesAreShellWordsOfTheRun) {
  SweepSpec spec;
  spec.base_config = "configs/base.yaml";
  SweepRun run;
  run.name = "channel_mult-1-2";
  run.run_dir = "runs/sw/channel_mult-1-2";
  run.overrides = {"model.channel_mult=[1,2]", "data.path=it's here"};
  EXPECT_EQ(sweep::run_command_line(spec, run, "/opt/dmtrain"),
            "/opt/dmtrain --config configs/base.yaml --set 'model.channel_mult=[1,2]' --set "
            "'data.path=it'\\''s here' --run-dir runs/sw/channel_mult-1-2 --resume auto");
  // A real shell splits the line back into exactly run_argv.
  const std::string line = "printf '%s\\n' " + sweep::run_command_line(spec, run, "x");
  const auto argv = sweep::run_argv(spec, run, "x");
  FILE* p = ::popen(("sh -c " + sweep::shell_quote(line)).c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::vector<std::string> words;
  char buf[512];
  while (std::fgets(buf, sizeof buf, p)) {
    std::string w(buf);
    if (!w.empty() && w.back() == '\n') w.pop_back();
    words.push_back(w);
  }
  ::pclose(p);
  EXPECT_EQ(words, argv);
  EXPECT_EQ(sweep::shell_quote(""), "''");
}

TEST(SweepCommand, IndexSelectsOneRunAndNamesTheCountWhenOutOfRange) {
  std::vector<SweepRun> runs(4);
  for (int i = 0; i < 4; ++i) runs[i].index = i, runs[i].name = "r" + std::to_string(i);
  EXPECT_EQ(sweep::select_runs(runs, -1).size(), 4u);
  const auto one = sweep::select_runs(runs, 2);
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].name, "r2");
  EXPECT_NE(error_of([&] {
              sweep::select_runs(runs, 4);
            }).find("--index 4 is out of range: the sweep has 4 runs (indices 0..3)"),
            std::string::npos);
}

TEST(SweepSummary, FinalLossTailMeanImgPerSecondAndStatus) {
  const fs::path root = scratch("summary");
  // Run a: 20 records, loss = step / 10 at steps 5,10,...,100; the tail is the last
  // ceil(20 / 10) = 2 records: loss 9.5 and 10 -> mean 9.75; img/s 100+19, 100+20 -> 119.5.
  std::string a;
  for (int i = 1; i <= 20; ++i) {
    a += "{\"step\": " + std::to_string(5 * i) +
         ", \"images\": 1, \"loss\": " + std::to_string(0.5 * i) +
         ", \"grad_norm\": 1, \"img_per_s\": " + std::to_string(100 + i) + ", \"loss_q0\": 99}\n";
  }
  write_file(root / "a" / "metrics.jsonl", a);
  // Run b: 3 records, the last with a null loss (a skipped interval): final loss NaN; tail = 1
  // record -> no finite loss; stopped at 30 of 100 iterations.
  write_file(root / "b" / "metrics.jsonl",
             "{\"step\": 10, \"loss\": 2.5, \"img_per_s\": 7}\n"
             "{\"step\": 20, \"loss\": 1.5, \"img_per_s\": 8}\n"
             "{\"step\": 30, \"loss\": null, \"img_per_s\": 9}\n");
  const std::vector<SweepRun> runs = runs_abc(root, 100);
  const auto rows = sweep::summarize(runs);
  EXPECT_EQ(rows[0].status, "done");
  EXPECT_EQ(rows[0].final_step, 100);
  EXPECT_DOUBLE_EQ(rows[0].final_loss, 10.0);
  EXPECT_DOUBLE_EQ(rows[0].tail_loss, 9.75);
  EXPECT_DOUBLE_EQ(rows[0].img_per_s, 119.5);
  EXPECT_EQ(rows[1].status, "incomplete");
  EXPECT_EQ(rows[1].final_step, 30);
  EXPECT_TRUE(std::isnan(rows[1].final_loss));
  EXPECT_TRUE(std::isnan(rows[1].tail_loss));
  EXPECT_DOUBLE_EQ(rows[1].img_per_s, 9.0);
  EXPECT_EQ(rows[2].status, "missing");

  const std::vector<SweepAxis> axes{{"timestep.clts.mu", {"0", "1", "2"}}};
  EXPECT_EQ(sweep::summary_csv(axes, rows),
            "run,timestep.clts.mu,final_step,final_loss,tail_loss,img_per_s,status\n"
            "a,0,100,10,9.75,119.5,done\n"
            "b,1,30,nan,nan,9,incomplete\n"
            "c,2,,,,,missing\n");
  EXPECT_EQ(sweep::summary_table(axes, rows),
            "run  mu  final_step  final_loss  tail_loss  img_per_s  status\n"
            "a    0   100         10          9.75       119.5      done\n"
            "b    1   30          nan         nan        9          incomplete\n"
            "c    2                                                 missing\n");
  const std::string csv = sweep::write_summary((root / "out").string(), axes, rows);
  std::ifstream in(csv);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), sweep::summary_csv(axes, rows));
}

TEST(SweepMetrics, ReadsARunsRecordsAndItsLastLoggedStep) {
  // A killed run's torn last line is skipped; the last whole record gives the step.
  const fs::path root = scratch("metrics");
  write_file(root / "metrics.jsonl",
             "{\"step\": 5, \"loss\": 1}\n{\"step\": 10, \"fid\": 3}\n{\"step\": 15, \"lo");
  EXPECT_EQ(sweep::read_metrics(root.string()).size(), 2u);
  EXPECT_EQ(sweep::last_logged_step(root.string()), 10);
  EXPECT_EQ(sweep::last_logged_step((root / "none").string()), 0);
}

TEST(SweepSummary, FidAtEachEvaluationFinalBestAndItersToFid) {
  const fs::path root = scratch("fid");
  auto fid = [](int step, const std::string& v) {
    return "{\"step\": " + std::to_string(step) + ", \"fid\": " + v +
           ", \"fid_samples\": 2000, \"fid_seconds\": 16.6}\n";
  };
  auto loss = [](int step, const std::string& v, int ips) {
    return "{\"step\": " + std::to_string(step) + ", \"loss\": " + v +
           ", \"img_per_s\": " + std::to_string(ips) + "}\n";
  };
  // a: FID 100, 60, null, 30, 35 at 1000..5000, and a torn last line.
  write_file(root / "a" / "metrics.jsonl",
             loss(1000, "0.5", 10) + fid(1000, "100") + loss(2000, "0.4", 10) + fid(2000, "60") +
                 fid(3000, "null") + fid(4000, "30") + loss(5000, "0.3", 10) + fid(5000, "35") +
                 "{\"step\": 5000, \"fi");
  // b: evaluated at other steps: 80 at 1500, 40 at 3000.
  write_file(root / "b" / "metrics.jsonl",
             fid(1500, "80") + fid(3000, "40") + loss(3000, "0.25", 20));
  // c: never evaluated.
  write_file(root / "c" / "metrics.jsonl", loss(10, "1", 5));
  const std::vector<SweepRun> runs = runs_abc(root, 5000);
  const auto rows = sweep::summarize(runs);
  ASSERT_EQ(rows[0].fid.size(), 5u);
  EXPECT_EQ(rows[0].fid[2].step, 3000);
  EXPECT_TRUE(std::isnan(rows[0].fid[2].fid));
  EXPECT_DOUBLE_EQ(rows[0].final_fid, 35);
  EXPECT_DOUBLE_EQ(rows[0].best_fid, 30);
  EXPECT_TRUE(std::isnan(rows[2].final_fid) && std::isnan(rows[2].best_fid));

  // Target 40 for a: first evaluation <= 40 is 4000; interpolated across the null at 3000
  // between (2000, 60) and (4000, 30): 2000 + (60 - 40) / (60 - 30) * 2000 = 3333.3.
  EXPECT_EQ(sweep::iters_to_fid(rows[0].fid, 40), 4000);
  EXPECT_NEAR(sweep::iters_to_fid_interp(rows[0].fid, 40), 2000 + 2000.0 * 20 / 30, 1e-9);
  EXPECT_NEAR(sweep::iters_to_fid_interp(rows[0].fid, 50), 2000 + 2000.0 * 10 / 30, 1e-9);
  // Already reached at the first evaluation: its step; never reached: -1 / NaN.
  EXPECT_EQ(sweep::iters_to_fid(rows[0].fid, 150), 1000);
  EXPECT_DOUBLE_EQ(sweep::iters_to_fid_interp(rows[0].fid, 150), 1000);
  EXPECT_EQ(sweep::iters_to_fid(rows[0].fid, 20), -1);
  EXPECT_TRUE(std::isnan(sweep::iters_to_fid_interp(rows[0].fid, 20)));
  // b reaches 40 exactly at 3000: 1500 + (80 - 40) / (80 - 40) * 1500.
  EXPECT_EQ(sweep::iters_to_fid(rows[1].fid, 40), 3000);
  EXPECT_DOUBLE_EQ(sweep::iters_to_fid_interp(rows[1].fid, 40), 3000);

  const std::vector<SweepAxis> axes{{"timestep.clts.mu", {"0", "1", "2"}}};
  EXPECT_EQ(sweep::summary_csv(axes, rows, 40),
            "run,timestep.clts.mu,final_step,final_loss,tail_loss,img_per_s,fid_at_1000,"
            "fid_at_1500,fid_at_2000,fid_at_3000,fid_at_4000,fid_at_5000,final_fid,best_fid,"
            "iters_to_fid,iters_to_fid_interp,status\n"
            "a,0,5000,0.3,0.3,10,100,,60,nan,30,35,35,30,4000,3333,done\n"
            "b,1,3000,0.25,0.25,20,,80,,40,,,40,40,3000,3000,incomplete\n"
            "c,2,10,1,1,5,,,,,,,,,,,incomplete\n");
  // Without a target: no iters_to_fid columns; without any evaluation: no FID columns at all.
  const std::string plain = sweep::summary_csv(axes, rows);
  EXPECT_EQ(
      plain.substr(0, plain.find('\n')),
      "run,timestep.clts.mu,final_step,final_loss,tail_loss,img_per_s,fid_at_1000,"
      "fid_at_1500,fid_at_2000,fid_at_3000,fid_at_4000,fid_at_5000,final_fid,best_fid,status");
  EXPECT_EQ(sweep::summary_csv(axes, {rows[2]}),
            "run,timestep.clts.mu,final_step,final_loss,tail_loss,img_per_s,status\n"
            "c,2,10,1,1,5,incomplete\n");
  const std::string table = sweep::summary_table(axes, rows, 40);
  EXPECT_EQ(table.substr(0, table.find('\n')),
            "run  mu  final_step  final_loss  tail_loss  img_per_s  fid_at_1000  fid_at_1500  "
            "fid_at_2000  fid_at_3000  fid_at_4000  fid_at_5000  final_fid  best_fid  "
            "iters_to_fid  iters_to_fid_interp  status");
  const std::string csv = sweep::write_summary((root / "out").string(), axes, rows, 40);
  std::ifstream in(csv);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}),
            sweep::summary_csv(axes, rows, 40));
}

TEST(SweepExpand, MissingDataIsRefusedBeforeAnyRunTrains) {
  const fs::path root = scratch("nodata");
  SweepSpec spec;
  spec.base_config = write_base(root).string();
  spec.axes = {sweep::parse_grid("optim.lr=0.0001,0.0002")};
  spec.sets = {"data.path=" + (root / "missing").string()};
  const std::string msg = test_support::error_of([&] { sweep::expand(spec); });
  EXPECT_NE(msg.find("sweep run 0"), std::string::npos) << msg;
  EXPECT_NE(msg.find("data.path '" + (root / "missing").string() +
                     "' (data.format: auto) does not exist"),
            std::string::npos)
      << msg;
}

TEST(SweepRunLoop, SkipsDoneRunsGoesOnAfterAFailureStopsOnInterrupt) {
  const fs::path root = scratch("loop");
  test_support::make_finished_run_dir(root / "done", 4);
  // Metrics at the last step are not "done": killed before the final checkpoint and EMA files,
  // it was skipped and never repaired.
  test_support::make_finished_run_dir(root / "metrics_only", 4, /*checkpoint_at=*/2);
  write_file(root / "metrics_only" / "metrics.jsonl", "{\"step\": 4, \"loss\": 1}\n");
  std::vector<SweepRun> runs(5);
  const char* names[] = {"done", "fails", "interrupted", "never", "metrics_only"};
  for (int i = 0; i < 5; ++i) {
    runs[i].name = names[i];
    runs[i].run_dir = (root / names[i]).string();
    runs[i].iterations = 4;
  }
  std::vector<std::string> called;
  const int code = sweep::run_sweep(runs, [&](const SweepRun& r) {
    called.push_back(r.name);
    return r.name == "fails" ? 2 : (r.name == "interrupted" ? 130 : 0);
  });
  EXPECT_EQ(code, 130);
  EXPECT_EQ(called, (std::vector<std::string>{"fails", "interrupted"}));
  called.clear();
  EXPECT_EQ(sweep::run_sweep({runs[0], runs[4]},
                             [&](const SweepRun& r) {
                               called.push_back(r.name);
                               return 0;
                             }),
            0);
  EXPECT_EQ(called, (std::vector<std::string>{"metrics_only"}));
  EXPECT_EQ(sweep::run_sweep({runs[1], runs[3]},
                             [&](const SweepRun& r) { return r.name == "fails" ? 2 : 0; }),
            2);
}

TEST(SweepRunLoop, TinyRealSweepTrainsTwoRunsAndSummarizes) {
  const fs::path root = scratch("real");
  test_support::write_tiny_idx(root / "data");
  auto cfg = test_support::tiny_config(root / "data", root / "runs");
  cfg.train.iterations = 2;
  cfg.sample.count = 1;
  write_file(root / "base.yaml", config::dump_config(cfg));
  SweepSpec spec;
  spec.base_config = (root / "base.yaml").string();
  spec.axes = {sweep::parse_grid("timestep.clts.mu=0.1,0.3")};
  // A path is taken literally: as a YAML value "sw #1" would lose " #1" to a comment, and both
  // runs would train in <root>/sw.
  spec.out_dir = (root / "sw #1").string();
  const auto runs = sweep::expand(spec);
  ASSERT_EQ(runs.size(), 2u);
  ASSERT_EQ(sweep::run_sweep(runs, sweep::in_process_runner(spec)), 0);
  EXPECT_FALSE(fs::exists(root / "sw"));
  for (size_t i = 0; i < 2; ++i) {
    const auto ran = config::load_config((fs::path(runs[i].run_dir) / "config.yaml").string());
    EXPECT_DOUBLE_EQ(ran.timestep.clts.mu, i == 0 ? 0.1 : 0.3);
    EXPECT_EQ(ran.train.run_dir, runs[i].run_dir);
  }
  const auto rows = sweep::summarize(runs);
  for (const auto& r : rows) {
    EXPECT_EQ(r.status, "done");
    EXPECT_EQ(r.final_step, 2);
    EXPECT_TRUE(std::isfinite(r.final_loss) && r.final_loss > 0);
    EXPECT_DOUBLE_EQ(r.tail_loss, r.final_loss);  // 2 records: the tail is the last one
  }
  // Re-launching the finished sweep trains nothing.
  int calls = 0;
  EXPECT_EQ(sweep::run_sweep(runs, [&](const SweepRun&) { return ++calls, 0; }), 0);
  EXPECT_EQ(calls, 0);
}
