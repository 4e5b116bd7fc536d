#include "dmtrain/util/device_peak.hpp"

namespace dmtrain::util {

double bf16_dense_peak_tflops(const std::string& name) {
  const auto has = [&name](const char* part) { return name.find(part) != std::string::npos; };
  if (has("H100") || has("H200")) return has("PCIe") ? 756.0 : 989.4;
  if (has("A100")) return 312.0;
  return 0.0;
}

}  // namespace dmtrain::util
