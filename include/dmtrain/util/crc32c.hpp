// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as TFRecord / TensorBoard event files
// frame their records with. Written here because Debian 12 packages no CRC-32C library (and the
// GPU machine's image lists none); a table-driven byte loop is plenty for log records.
// masked_crc32c is TFRecord's ((crc >> 15) | (crc << 17)) + 0xa282ead8.
#pragma once
#include <cstddef>
#include <cstdint>

namespace dmtrain::util {

uint32_t crc32c(const void* data, size_t size);
uint32_t masked_crc32c(const void* data, size_t size);

}  // namespace dmtrain::util
