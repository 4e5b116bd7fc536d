// read_png gives what PIL's Image.open(f).convert("RGB") gives: PNGs written here with libpng
// (16-bit RGB; 8-bit with gAMA 1.0; 8-bit with gAMA 0.45455 + sRGB) against the rules PIL
// follows (stored 8-bit values unchanged, 16-bit -> high byte), and every colour type / depth of
// tests/fixtures/util/png_pil.npz against Pillow's own decode of the same bytes.
#include <png.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>

#include "dmtrain/util/error.hpp"
#include "dmtrain/util/image_io.hpp"
#include "dmtrain/util/npy.hpp"
#include "support/error_of.hpp"
#include "support/scratch_dir.hpp"

namespace fs = std::filesystem;
using dmtrain::util::read_png;

namespace {

struct PngSpec {
  int depth = 8;
  int color_type = PNG_COLOR_TYPE_RGB;
  double gamma = 0;  // 0: no gAMA chunk
  bool srgb = false;
};

// Writes a one-row PNG of `samples` (depth 8 or 16; 16-bit samples are written big-endian, as
// PNG stores them) with libpng's own writer and the colour-space chunks asked for.
void write_test_png(const std::string& path, const PngSpec& spec,
                    const std::vector<unsigned>& samples) {
  const int channels = spec.color_type == PNG_COLOR_TYPE_RGB ? 3 : 4;
  const png_uint_32 width = static_cast<png_uint_32>(samples.size() / channels);
  std::vector<png_byte> row;
  for (unsigned s : samples) {
    if (spec.depth == 16) row.push_back(static_cast<png_byte>(s >> 8));
    row.push_back(static_cast<png_byte>(s & 0xFF));
  }
  std::FILE* fp = std::fopen(path.c_str(), "wb");
  ASSERT_NE(fp, nullptr);
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  ASSERT_EQ(setjmp(png_jmpbuf(png)), 0);
  png_init_io(png, fp);
  png_set_IHDR(png, info, width, 1, spec.depth, spec.color_type, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  if (spec.gamma > 0) png_set_gAMA(png, info, spec.gamma);
  if (spec.srgb) png_set_sRGB(png, info, PNG_sRGB_INTENT_PERCEPTUAL);
  png_write_info(png, info);
  png_write_row(png, row.data());
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  std::fclose(fp);
}

std::vector<int> pixels(const at::Tensor& hwc) {
  const at::Tensor c = hwc.contiguous();
  return std::vector<int>(c.data_ptr<uint8_t>(), c.data_ptr<uint8_t>() + c.numel());
}

fs::path temp_dir() {
  return dmtrain::test_support::scratch_dir(
      std::string("util_") + ::testing::UnitTest::GetInstance()->current_test_info()->name());
}

}  // namespace

TEST(PngRead, SixteenBitKeepsTheHighByte) {
  const fs::path dir = temp_dir();
  const std::string path = (dir / "rgb16.png").string();
  PngSpec spec;
  spec.depth = 16;
  write_test_png(path, spec, {0x8012, 0x40FF, 0xC001, 0x00FF, 0xFF00, 0x7F80});
  const at::Tensor img = read_png(path);
  ASSERT_EQ(img.sizes(), (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(pixels(img), (std::vector<int>{128, 64, 192, 0, 255, 127}));  // v >> 8
  fs::remove_all(dir);
}

TEST(PngRead, GammaAndSrgbChunksDoNotChangeEightBitValues) {
  const fs::path dir = temp_dir();
  const std::vector<unsigned> rgb = {128, 64, 192, 10, 250, 3};
  PngSpec linear;
  linear.gamma = 1.0;
  PngSpec srgb;
  srgb.gamma = 0.45455;
  srgb.srgb = true;
  for (const auto& [name, spec] : {std::pair{"gamma1", linear}, std::pair{"srgb", srgb}}) {
    const std::string path = (dir / (std::string(name) + ".png")).string();
    write_test_png(path, spec, rgb);
    EXPECT_EQ(pixels(read_png(path)), (std::vector<int>{128, 64, 192, 10, 250, 3})) << name;
  }
  // RGBA with gAMA 1.0: alpha dropped, not composited, and the colour left as stored.
  PngSpec rgba = linear;
  rgba.color_type = PNG_COLOR_TYPE_RGBA;
  write_test_png((dir / "rgba.png").string(), rgba, {128, 64, 192, 10, 1, 2, 3, 255});
  EXPECT_EQ(pixels(read_png((dir / "rgba.png").string())),
            (std::vector<int>{128, 64, 192, 1, 2, 3}));
  fs::remove_all(dir);
}

TEST(PngRead, EveryColourTypeAsPillowReadsIt) {
  const fs::path dir = temp_dir();
  std::map<std::string, at::Tensor> f;
  for (auto& [k, v] : dmtrain::util::read_npz(DMTRAIN_FIXTURES_DIR "/util/png_pil.npz")) f[k] = v;
  int cases = 0;
  for (const auto& [key, bytes] : f) {
    if (key.size() < 4 || key.compare(key.size() - 4, 4, "_png") != 0) continue;
    const std::string name = key.substr(0, key.size() - 4);
    const std::string path = (dir / (name + ".png")).string();
    std::ofstream(path, std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data_ptr<uint8_t>()), bytes.numel());
    at::Tensor img = read_png(path);
    if (img.size(2) == 1) img = img.expand({-1, -1, 3});  // gray: the caller replicates
    const at::Tensor pil = f.at(name + "_pil");
    ASSERT_EQ(img.sizes(), pil.sizes()) << name;
    EXPECT_EQ(pixels(img), pixels(pil)) << name;
    ++cases;
  }
  EXPECT_EQ(cases, 19);
  fs::remove_all(dir);
}

TEST(PngRead, ErrorsNameTheFileAndCause) {
  const fs::path dir = temp_dir();
  fs::create_directories(dir / "folder.png");
  const std::string e =
      dmtrain::test_support::error_of([&] { read_png((dir / "folder.png").string()); });
  EXPECT_NE(e.find("folder.png"), std::string::npos) << e;
  EXPECT_NE(e.find("Is a directory"), std::string::npos) << e;
  // A PNG cut inside its image data.
  const std::string whole = (dir / "whole.png").string();
  dmtrain::util::write_png(whole, at::randint(0, 256, {64, 64, 3}, at::kByte));
  std::ifstream in(whole, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string cut = (dir / "cut.png").string();
  std::ofstream(cut, std::ios::binary).write(bytes.data(), bytes.size() / 2);
  const std::string e2 = dmtrain::test_support::error_of([&] { read_png(cut); });
  EXPECT_NE(e2.find("cut.png"), std::string::npos) << e2;
  EXPECT_EQ(e2.find("<no error>"), std::string::npos) << e2;
  fs::remove_all(dir);
}
