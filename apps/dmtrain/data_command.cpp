// dmtrain data prepare | bench: build a packed cache once; measure the loader alone.
#include <chrono>
#include <iostream>

#include "commands.hpp"
#include "dmtrain/config/load.hpp"
#include "dmtrain/data/bench.hpp"
#include "dmtrain/data/cache.hpp"
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
} prep;

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
  const data::ImageSet set = data::open_dataset(o);
  data::prepare_cache(set, prep.out);
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  std::cout << "wrote " << prep.out << ": " << set.size() << " images of " << set.images.size(1)
            << "x" << set.images.size(2) << "x" << set.images.size(3)
            << (set.has_labels() ? ", " + std::to_string(set.class_names.size()) + " classes"
                                 : std::string(", no labels"))
            << " in " << secs << " s\n";
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
  auto* data = app.add_subcommand("data", "Prepare a packed data cache, or benchmark the loader");
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
  p->callback(run_prepare);
  auto* b = data->add_subcommand("bench", "Images per second of the data loader alone");
  b->add_option("--config", bench.config, "Run configuration")->required();
  b->add_option("--set", bench.sets, "Override a key (repeatable)");
  b->add_option("--batches", bench.batches, "Timed batches");
  b->callback(run_bench);
}

}  // namespace dmtrain::app
