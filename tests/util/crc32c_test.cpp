// CRC-32C against published check values (RFC 3720 appendix B.4 and the usual "123456789").
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "dmtrain/util/crc32c.hpp"

using dmtrain::util::crc32c;

TEST(Crc32c, KnownCheckValues) {
  const std::string digits = "123456789";
  EXPECT_EQ(crc32c(digits.data(), digits.size()), 0xE3069283u);
  EXPECT_EQ(crc32c("", 0), 0u);
  const std::vector<unsigned char> zeros(32, 0x00), ones(32, 0xFF);
  EXPECT_EQ(crc32c(zeros.data(), zeros.size()), 0x8A9136AAu);  // RFC 3720 B.4: 32 bytes of 0
  EXPECT_EQ(crc32c(ones.data(), ones.size()), 0x62A8AB43u);    // 32 bytes of 0xFF
  std::vector<unsigned char> inc(32);
  for (int i = 0; i < 32; ++i) inc[i] = static_cast<unsigned char>(i);
  EXPECT_EQ(crc32c(inc.data(), inc.size()), 0x46DD794Eu);  // 0x00, 0x01, ..., 0x1F
}

// Expected values from TensorBoard's own implementation
// (tensorboard.compat.tensorflow_stub.pywrap_tensorflow.masked_crc32c, tensorboard 2.21).
TEST(Crc32c, MaskedAsTensorBoardComputesIt) {
  const std::string digits = "123456789";
  EXPECT_EQ(dmtrain::util::masked_crc32c(digits.data(), digits.size()), 0xC78AB0E5u);
  const uint64_t length = 24;  // a record header: the little-endian length
  EXPECT_EQ(dmtrain::util::masked_crc32c(&length, sizeof(length)), 0x224B7FA3u);
}
