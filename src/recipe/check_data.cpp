// Implementation of dmtrain/recipe/check_data.hpp.
#include "dmtrain/recipe/check_data.hpp"

#include <filesystem>

#include "dmtrain/util/error.hpp"

namespace dmtrain::recipe {

void check_data_source(const config::RunConfig& cfg) {
  namespace fs = std::filesystem;
  const auto& d = cfg.data;
  if (d.format == "synthetic") return;
  if (!d.cache.empty() && fs::exists(d.cache)) return;
  if (d.path.empty()) {
    throw Error(
        "data.path is not set: give the data set (an image folder, a CIFAR-10/100 "
        "tarball or folder, an IDX folder or a .dmdata cache), e.g. --set "
        "data.path=PATH; README \"Getting data\" says how to get one");
  }
  std::error_code ec;
  if (fs::exists(d.path, ec)) return;
  const std::string where = fs::path(d.path).is_absolute()
                                ? std::string()
                                : " (relative to " + fs::current_path().string() + ")";
  throw Error("data.path '" + d.path + "' (data.format: " + d.format + ") does not exist" + where +
              ": download and prepare the data set first (README \"Getting data\": e.g. dmtrain "
              "data prepare --input cifar-10-python.tar.gz --out data/cifar10.dmdata), then set "
              "data.path (--set data.path=PATH) to it; data.format: synthetic trains on random "
              "pixels instead");
}

}  // namespace dmtrain::recipe
