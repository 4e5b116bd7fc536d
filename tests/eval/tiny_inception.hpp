// A tiny "feature network" in TorchScript standing in for the Inception file in the eval tests:
// features tanh(mean_hw(x) W + std_hw(x) C) of dimension d; with_logits also returns logits
// f V * 3 over 4 classes. Weights from a fixed seed, so every test builds the same network.
#pragma once
#include <torch/script.h>

#include <cstdint>
#include <string>

namespace dmtrain::eval::testing {

inline void save_tiny_net(const std::string& path, int64_t d, bool with_logits) {
  torch::jit::Module m("TinyFeatures");
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(7);
  m.register_parameter("w", at::randn({3, d}, g), false);
  m.register_parameter("c", at::randn({3, d}, g), false);
  m.register_parameter("v", at::randn({d, 4}, g), false);
  if (with_logits) {
    m.define(R"(
def forward(self, x):
    f = torch.tanh(torch.matmul(x.mean([2, 3]), self.w) + torch.matmul(x.std([2, 3]), self.c))
    return f, torch.matmul(f, self.v) * 3.0
)");
  } else {
    m.define(R"(
def forward(self, x):
    return torch.tanh(torch.matmul(x.mean([2, 3]), self.w) + torch.matmul(x.std([2, 3]), self.c))
)");
  }
  m.save(path);
}

}  // namespace dmtrain::eval::testing
