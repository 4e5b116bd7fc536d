// dmtrain data prepare | verify | bench: build a packed cache once; check a cache's pixels
// against their checksums; measure the loader alone.
#include <chrono>
#include <filesystem>
#include <iostream>

#include "commands.hpp"
#include "dmtrain/config/load.hpp"
#include "dmtrain/data/bench.hpp"
#include "dmtrain/data/cache.hpp"
#include "dmtrain/data/cache_build.hpp"
#include "dmtrain/data/dataset.hpp"
#include "dmtrain/data/loader.hpp"
#include "dmtrain/recipe/build.hpp"
#include "dmtrain/util/error.hpp"

namespace dmtrain::app {
namespace {

struct PrepareArgs {
  std::string input, out, format = "auto", labels = "folder", split = "train", on_bad_file = "fail";
  int64_t size = 0, channels = 3;
  int threads = 2;
  bool force = false;
} prep;

std::string verify_path;

struct BenchArgs {
  std::string config;
  std::vector<std::string> sets;
  int64_t batches = 200;
} bench;

using Clock = std::chrono::steady_clock;

void run_prepare() {
  const auto t0 = Clock::now();
  data::DatasetOptions o;
  o.format = prep.format;
  o.path = prep.input;
  o.split = prep.split;
  o.image_size = prep.size;
  o.channels = prep.channels;
  o.labels = prep.labels;
  o.on_bad_file = prep.on_bad_file;
  o.num_threads = prep.threads;
  o.cache = prep.out;
  // A cache already at --out is kept when it was made from this source with these settings
  // (a config naming it as data.cache uses it as it is), replaced only with --force.
  const bool existed = std::filesystem::exists(prep.out);
  if (existed) {
    std::string problem;
    try {
      const data::CacheInfo have = data::read_cache_info(prep.out);
      const std::string diff = data::cache_mismatch(have, data::wanted_identity(o));
      if (!diff.empty()) {
        problem = c10::str("holds a cache made from ", data::describe(have.identity), ", not from ",
                           data::describe(data::wanted_identity(o)), " (differs: ", diff, ")");
      }
    } catch (const Error& e) {
      problem = c10::str("is not a usable cache (", e.what(), ")");
    }
    if (!problem.empty() && !prep.force) {
      throw Error(c10::str("--out '", prep.out, "' ", problem,
                           ": pass --force to replace it, or choose another --out"));
    }
    if (!problem.empty() || prep.force) std::filesystem::remove(prep.out);
  }
  const bool reused = existed && std::filesystem::exists(prep.out);
  const data::ImageSet set = data::open_dataset(o);
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  std::cout << (reused ? "up to date (--force rebuilds it): " : "wrote ") << prep.out << ": "
            << set.size() << " images of " << set.images.size(1) << "x" << set.images.size(2) << "x"
            << set.images.size(3)
            << (set.has_labels() ? ", " + std::to_string(set.class_names.size()) + " classes"
                                 : std::string(", no labels"))
            << " in " << secs << " s";
  if (!reused) std::cout << " (" << static_cast<int64_t>(set.size() / secs) << " images/s)";
  std::cout << "\n";
}

void run_verify() {
  const auto t0 = Clock::now();
  const data::CacheInfo info = data::verify_cache(verify_path);
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  const double mb = static_cast<double>(info.n * info.h * info.w * info.c) / 1e6;
  std::cout << verify_path << ": " << info.n << " images of " << info.h << "x" << info.w << "x"
            << info.c << (info.has_labels ? ", labelled" : ", no labels") << ", made from "
            << data::describe(info.identity) << "\nall " << info.chunks << " chunks of "
            << info.chunk_images << " images pass their checksums (" << secs << " s, "
            << static_cast<int64_t>(mb / std::max(secs, 1e-9)) << " MB/s)\n";
}

void run_bench() {
  const config::RunConfig cfg = config::load_config(bench.config, bench.sets);
  const auto t0 = Clock::now();
  auto set = recipe::open_data(cfg);
  const double open_s = std::chrono::duration<double>(Clock::now() - t0).count();
  data::LoaderOptions lo;
  lo.batch_size = cfg.train.batch_size;
  lo.seed = cfg.train.seed;
  lo.num_workers = static_cast<int>(cfg.data.num_workers);
  lo.random_flip = cfg.data.random_flip;
  data::Loader loader(set, lo);
  const double ips = data::bench_loader(loader, bench.batches);
  std::cout << "data: " << set->size() << " images opened in " << open_s << " s\n"
            << "loader: " << ips << " images/s (batch " << lo.batch_size << ", " << lo.num_workers
            << " workers, flip " << (lo.random_flip ? "on" : "off") << ", " << bench.batches
            << " batches)\n"
            << "Compare with a training run's img/s; its status line shows the share of each "
               "step spent waiting for data ('data').\n";
}

}  // namespace

void add_data_command(CLI::App& app) {
  auto* data = app.add_subcommand(
      "data", "Prepare a packed data cache, verify one, or benchmark the loader");
  data->require_subcommand(1);
  auto* p = data->add_subcommand("prepare", "Decode a data set once into a packed .dmdata cache");
  p->add_option("--input", prep.input,
                "Image folder; IDX folder or file; CIFAR-10/-100 tarball as downloaded "
                "(python or binary .tar.gz) or the folder it unpacks to")
      ->required();
  p->add_option("--out", prep.out, "Cache file to write")->required();
  p->add_option("--size", prep.size, "Image side in pixels (0: keep the stored size)");
  p->add_option("--channels", prep.channels, "1 or 3");
  p->add_option("--format", prep.format, "auto | idx | cifar-bin | folder");
  p->add_option("--labels", prep.labels, "none | folder | prefix");
  p->add_option("--split", prep.split, "train | test (IDX, CIFAR)");
  p->add_option("--on-bad-file", prep.on_bad_file, "fail | skip");
  p->add_option("--threads", prep.threads, "Decoding threads");
  p->add_flag("--force", prep.force, "Replace a cache already at --out");
  p->callback(run_prepare);
  auto* v = data->add_subcommand(
      "verify",
      "Check every image of a packed cache against its checksum (runs check only the "
      "header at start)");
  v->add_option("cache", verify_path, "Cache file")->required();
  v->callback(run_verify);
  auto* b = data->add_subcommand("bench", "Images per second of the data loader alone");
  b->add_option("--config", bench.config, "Run configuration")->required();
  b->add_option("--set", bench.sets, "Override a key (repeatable)");
  b->add_option("--batches", bench.batches, "Timed batches");
  b->callback(run_bench);
}

}  // namespace dmtrain::app
