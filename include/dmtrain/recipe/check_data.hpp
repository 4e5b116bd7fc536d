// check_data_source: a run's data set can be found before anything is built for it.
//
// Passes when cfg.data is synthetic, when data.cache names an existing file (the run reads the
// cache, not the source), or when data.path exists. Otherwise throws dmtrain::Error naming the
// key, the path (and the folder it is relative to) and how to get the data: `--dry-run` and a
// sweep's check of its runs refuse a run that would stop at its first batch.
#pragma once
#include "dmtrain/config/run_config.hpp"

namespace dmtrain::recipe {

void check_data_source(const config::RunConfig& cfg);

}  // namespace dmtrain::recipe
