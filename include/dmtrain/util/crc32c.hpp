// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as TFRecord / TensorBoard event files
// frame their records with. Written here because neither machine ships a packaged CRC-32C
// library (Debian's libcrc32c-dev is not on the GPU machine's image); a table-driven byte loop is
// plenty for log records. masked_crc32c is TFRecord's ((crc >> 15) | (crc << 17)) + 0xa282ead8.
#pragma once
#include <cstddef>
#include <cstdint>

namespace dmtrain::util {

uint32_t crc32c(const void* data, size_t size);
uint32_t masked_crc32c(const void* data, size_t size);

}  // namespace dmtrain::util
