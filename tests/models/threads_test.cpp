// The models suite runs its tiny networks on one intra-op thread: on the shared 2-core CI
// machines LibTorch's default pool oversubscribes the cores and a 100 ms forward takes seconds.
#include <gtest/gtest.h>
#include <torch/torch.h>

namespace {

class OneThread : public ::testing::Environment {
 public:
  void SetUp() override { torch::set_num_threads(1); }
};

// gtest's documented way to register an environment before RUN_ALL_TESTS in gtest_main.
[[maybe_unused]] ::testing::Environment* const kOneThread =
    ::testing::AddGlobalTestEnvironment(new OneThread);

}  // namespace
