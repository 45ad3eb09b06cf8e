#pragma once
// The revisions a model-set config needs, as cache pins for `cache prune` (the manager layer knows
// configs and may use the cache layer; the cache layer only sees plain Pin values).

#include "modelmgr/config.hpp"

#include "cache/delete.hpp"

#include <vector>

namespace modelmgr::manager {

// Returns one pin per model: its repo type, repo id and revision. Throws ConfigurationError for a model
// whose repo_type is not model, dataset or space (load_config already rejects those).
std::vector<cache::Pin> pins_from_config(const ModelSetConfig& config);

} // namespace modelmgr::manager
