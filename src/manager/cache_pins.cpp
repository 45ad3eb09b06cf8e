#include "manager/cache_pins.hpp"

#include "modelmgr/errors.hpp"

namespace modelmgr::manager {

std::vector<cache::Pin> pins_from_config(const ModelSetConfig& config)
{
  std::vector<cache::Pin> pins;
  for (const auto& m : config.models) {
    const auto type = cache::parse_repo_type(m.repo_type);
    if (!type) {
      throw ConfigurationError("model '" + m.id + "' in " + config.path.string() + " has repo_type '" +
                               m.repo_type + "'; expected model, dataset or space");
    }
    pins.push_back({*type, m.repo_id, m.revision});
  }
  return pins;
}

} // namespace modelmgr::manager
