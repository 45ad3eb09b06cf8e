// Makes sure every model of a model-set configuration is in the Hugging Face cache, then prints where
// each one is. Usage: ensure_models [CONFIG] (default: modelmgr.yaml).

#include <cstdio>
#include <modelmgr/model_manager.hpp>

int main(int argc, char** argv)
{
  const char* config = argc > 1 ? argv[1] : "modelmgr.yaml";
  try {
    const modelmgr::SyncReport report = modelmgr::ensure_models(config);
    for (const auto& m : report.models) {
      if (m.status == modelmgr::ModelStatus::failed) {
        std::printf("failed %s: %s\n", m.id.c_str(), m.reason.c_str());
      } else {
        std::printf("%s %s %s\n", modelmgr::to_string(m.status), m.id.c_str(), m.path.c_str());
      }
    }
    const auto worst = report.worst_error();
    return worst ? modelmgr::exit_code_for(*worst) : 0;
  } catch (const modelmgr::ModelManagerError& e) {
    std::fprintf(stderr, "ensure_models: %s\n", e.what());
    return modelmgr::exit_code_for(e.kind());
  }
}
