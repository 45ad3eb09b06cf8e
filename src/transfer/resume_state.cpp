#include "transfer/resume_state.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <vector>

namespace modelmgr::transfer {

std::string serialize_resume_state(const ResumeState& state)
{
  nlohmann::json j;
  j["format"] = "modelmgr-resume";
  j["version"] = k_resume_state_version;
  j["etag"] = state.etag;
  j["size"] = state.size;
  j["chunk_size"] = state.chunk_size;
  auto chunks = nlohmann::json::array();
  for (const auto& [a, b] : state.present.list()) {
    chunks.push_back({a, b, b - a});
  }
  j["chunks"] = std::move(chunks);
  return j.dump();
}

std::optional<ResumeState> parse_resume_state(std::string_view text, std::string_view etag,
                                              std::uint64_t size, std::uint64_t temp_size, std::string* why)
{
  auto reject = [&](const char* reason) -> std::optional<ResumeState> {
    if (why) {
      *why = reason;
    }
    return std::nullopt;
  };
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return reject("not a JSON object");
  }
  if (!j.contains("format") || !j["format"].is_string() || j["format"] != "modelmgr-resume") {
    return reject("not a modelmgr resume state");
  }
  if (!j.contains("version") || !j["version"].is_number_integer() || j["version"] != k_resume_state_version) {
    return reject("unknown version");
  }
  if (!j.contains("etag") || !j["etag"].is_string() || j["etag"].get<std::string>() != etag) {
    return reject("another etag");
  }
  if (!j.contains("size") || !j["size"].is_number_unsigned() || j["size"].get<std::uint64_t>() != size) {
    return reject("another size");
  }
  if (!j.contains("chunks") || !j["chunks"].is_array()) {
    return reject("no chunk list");
  }
  ResumeState state;
  state.etag = std::string(etag);
  state.size = size;
  if (j.contains("chunk_size") && j["chunk_size"].is_number_unsigned()) {
    state.chunk_size = j["chunk_size"].get<std::uint64_t>();
  }
  std::vector<std::pair<std::uint64_t, std::uint64_t>> layout;
  for (const auto& c : j["chunks"]) {
    if (!c.is_array() || c.size() != 3 || !c[0].is_number_unsigned() || !c[1].is_number_unsigned() ||
        !c[2].is_number_unsigned()) {
      return reject("malformed chunk");
    }
    const auto a = c[0].get<std::uint64_t>();
    const auto b = c[1].get<std::uint64_t>();
    const auto w = c[2].get<std::uint64_t>();
    if (a > b || b > size) {
      return reject("chunk outside the file");
    }
    if (w > b - a) {
      return reject("chunk claims more bytes than it holds");
    }
    if (a + w > temp_size) {
      return reject("chunk claims bytes beyond the end of the temp file");
    }
    layout.emplace_back(a, b);
    state.present.add(a, a + w);
  }
  std::sort(layout.begin(), layout.end());
  for (std::size_t i = 1; i < layout.size(); ++i) {
    if (layout[i].first < layout[i - 1].second) {
      return reject("overlapping chunks");
    }
  }
  return state;
}

} // namespace modelmgr::transfer
