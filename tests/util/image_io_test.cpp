// PNG round trips, the reference's float->uint8 conversion and make_grid's layout, checked
// against hand-worked values.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "dmtrain/util/error.hpp"
#include "dmtrain/util/image_io.hpp"
#include "support/scratch_dir.hpp"

namespace fs = std::filesystem;
using dmtrain::util::make_grid;
using dmtrain::util::read_png;
using dmtrain::util::to_uint8_nhwc;
using dmtrain::util::write_png;

namespace {
fs::path temp_dir() {
  return dmtrain::test_support::scratch_dir(
      std::string("util_") + ::testing::UnitTest::GetInstance()->current_test_info()->name());
}
}  // namespace

TEST(ImageIo, PngRoundTripRgbIsExact) {
  const fs::path dir = temp_dir();
  at::Tensor img = at::randint(0, 256, {7, 5, 3}, at::kByte);
  write_png((dir / "rgb.png").string(), img);
  at::Tensor back = read_png((dir / "rgb.png").string());
  ASSERT_EQ(back.sizes(), img.sizes());
  EXPECT_TRUE(back.equal(img));
  fs::remove_all(dir);
}

TEST(ImageIo, PngRoundTripGrayIsExact) {
  const fs::path dir = temp_dir();
  at::Tensor img = at::arange(0, 12 * 9, at::kInt).remainder(256).to(at::kByte).view({12, 9, 1});
  write_png((dir / "g.png").string(), img.permute({1, 0, 2}));  // non-contiguous input is fine
  at::Tensor back = read_png((dir / "g.png").string());
  ASSERT_EQ(back.sizes(), (std::vector<int64_t>{9, 12, 1}));
  EXPECT_TRUE(back.equal(img.permute({1, 0, 2})));
  fs::remove_all(dir);
}

TEST(ImageIo, PngErrorsNameTheFile) {
  const fs::path dir = temp_dir();
  const std::string bad = (dir / "not_a.png").string();
  std::ofstream(bad) << "this is not a png";
  try {
    read_png(bad);
    FAIL() << "expected dmtrain::Error";
  } catch (const dmtrain::Error& e) {
    EXPECT_NE(std::string(e.what()).find(bad), std::string::npos) << e.what();
  }
  EXPECT_THROW(read_png((dir / "missing.png").string()), dmtrain::Error);
  EXPECT_THROW(write_png((dir / "no/such/dir/x.png").string(), at::zeros({2, 2, 3}, at::kByte)),
               dmtrain::Error);
  fs::remove_all(dir);
}

TEST(ImageIo, ToUint8TruncatesLikeImageSample) {
  // ((x+1)*127.5).clamp(0,255).to(uint8): 0 -> 127.5 -> 127 (truncation), 0.5 -> 191.25 -> 191,
  // -0.999 -> 0.1275 -> 0, out-of-range values clamp.
  at::Tensor x = at::tensor({-2.f, -1.f, -0.999f, 0.f, 0.5f, 0.999f, 1.f, 3.f}).view({1, 1, 1, 8});
  at::Tensor u = to_uint8_nhwc(x);
  ASSERT_EQ(u.sizes(), (std::vector<int64_t>{1, 1, 8, 1}));
  const std::vector<int> want = {0, 0, 0, 127, 191, 254, 255, 255};
  for (int i = 0; i < 8; ++i) EXPECT_EQ(u[0][0][i][0].item<int>(), want[i]) << i;
}

TEST(ImageIo, MakeGridLayout) {
  // 3 gray 2x2 tiles, 2 per row, padding 1 -> (2*(2+1)+1) x (2*(2+1)+1) = 7x7; tile i is filled
  // with value v_i; the 4th slot and the padding stay 0.
  at::Tensor batch = at::empty({3, 1, 2, 2});
  batch[0].fill_(1.f);    // 255
  batch[1].fill_(0.f);    // 127
  batch[2].fill_(-0.5f);  // 63.75 -> 63
  at::Tensor g = make_grid(batch, 2, 1);
  ASSERT_EQ(g.sizes(), (std::vector<int64_t>{7, 7, 1}));
  at::Tensor want = at::zeros({7, 7}, at::kByte);
  want.slice(0, 1, 3).slice(1, 1, 3).fill_(255);
  want.slice(0, 1, 3).slice(1, 4, 6).fill_(127);
  want.slice(0, 4, 6).slice(1, 1, 3).fill_(63);
  EXPECT_TRUE(g.squeeze(2).equal(want)) << g.squeeze(2);
  // RGB and nrow larger than the batch: one row, width = n*(w+p)+p.
  at::Tensor rgb = make_grid(at::zeros({2, 3, 4, 5}), 8, 2);
  EXPECT_EQ(rgb.sizes(), (std::vector<int64_t>{4 + 4, 2 * 7 + 2, 3}));
}
