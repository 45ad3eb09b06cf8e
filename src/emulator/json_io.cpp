// JSON forms of faults and counters (the admin API of out-of-process emulators) and the enum names.

#include "emulator/hub_emulator.hpp"

#include <nlohmann/json.hpp>
#include <stdexcept>

namespace modelmgr::emulator {

namespace {

using Json = nlohmann::ordered_json;

const std::pair<FaultSpec::Kind, const char*> k_kind_names[] = {
    {FaultSpec::Kind::truncate, "truncate"},
    {FaultSpec::Kind::reset, "reset"},
    {FaultSpec::Kind::flip_byte, "flip_byte"},
    {FaultSpec::Kind::status, "status"},
    {FaultSpec::Kind::stall, "stall"},
    {FaultSpec::Kind::throttle, "throttle"},
    {FaultSpec::Kind::lying_206, "lying_206"},
    {FaultSpec::Kind::ignore_range, "ignore_range"},
    {FaultSpec::Kind::redirect, "redirect"},
    {FaultSpec::Kind::body, "body"},
    {FaultSpec::Kind::endless_body, "endless_body"},
    {FaultSpec::Kind::link_loop, "link_loop"},
};

const std::pair<FaultSpec::Route, const char*> k_route_names[] = {
    {FaultSpec::Route::body, "body"},
    {FaultSpec::Route::head, "head"},
    {FaultSpec::Route::api, "api"},
    {FaultSpec::Route::any, "any"},
};

const char* const k_route_kind_names[k_route_kind_count] = {
    "head_resolve",  "get_resolve", "resolve_cache",  "cdn_get",  "cdn_head",
    "api_repo_info", "api_tree",    "api_paths_info", "api_refs", "other",
};

FaultSpec fault_from(const Json& j)
{
  if (!j.is_object() || !j.contains("kind")) {
    throw std::invalid_argument("fault: expected an object with a \"kind\"");
  }
  FaultSpec fault;
  auto kind = j.at("kind").get<std::string>();
  bool found = false;
  for (const auto& [value, name] : k_kind_names) {
    if (kind == name) {
      fault.kind = value;
      found = true;
    }
  }
  if (!found) {
    throw std::invalid_argument("fault: unknown kind '" + kind + "'");
  }
  if (j.contains("route")) {
    auto route = j.at("route").get<std::string>();
    found = false;
    for (const auto& [value, name] : k_route_names) {
      if (route == name) {
        fault.route = value;
        found = true;
      }
    }
    if (!found) {
      throw std::invalid_argument("fault: unknown route '" + route + "'");
    }
  }
  fault.path_contains = j.value("path_contains", std::string());
  fault.times = j.value("times", 1);
  fault.after_bytes = j.value("after_bytes", std::uint64_t{0});
  if (j.contains("range_start_at_least") && !j.at("range_start_at_least").is_null()) {
    fault.range_start_at_least = j.at("range_start_at_least").get<std::uint64_t>();
  }
  const int default_status = fault.kind == FaultSpec::Kind::redirect ? 302
                             : fault.kind == FaultSpec::Kind::body   ? 200
                                                                     : 503;
  fault.status = j.value("status", default_status);
  fault.location = j.value("location", std::string());
  fault.body = j.value("body", std::string());
  fault.message = j.value("message", std::string());
  fault.retry_after_s = j.value("retry_after_s", 0);
  fault.bytes_per_sec = j.value("bytes_per_sec", std::uint64_t{0});
  if (j.contains("stall_for_ms") && !j.at("stall_for_ms").is_null()) {
    fault.stall_for = std::chrono::milliseconds(j.at("stall_for_ms").get<std::int64_t>());
  }
  if (fault.times == 0 || fault.times < -1) {
    throw std::invalid_argument("fault: times must be -1 or positive");
  }
  if (fault.kind == FaultSpec::Kind::redirect && fault.location.empty()) {
    throw std::invalid_argument("fault: redirect needs a location");
  }
  if (fault.kind == FaultSpec::Kind::throttle && fault.bytes_per_sec == 0) {
    throw std::invalid_argument("fault: throttle needs bytes_per_sec > 0");
  }
  return fault;
}

} // namespace

std::string to_string(FaultSpec::Kind kind)
{
  for (const auto& [value, name] : k_kind_names) {
    if (value == kind) {
      return name;
    }
  }
  return "?";
}

std::string to_string(FaultSpec::Route route)
{
  for (const auto& [value, name] : k_route_names) {
    if (value == route) {
      return name;
    }
  }
  return "?";
}

std::string to_string(RouteKind kind)
{
  return k_route_kind_names[static_cast<std::size_t>(kind)];
}

std::optional<RouteKind> route_kind_from_string(std::string_view name)
{
  for (std::size_t i = 0; i < k_route_kind_count; ++i) {
    if (name == k_route_kind_names[i]) {
      return static_cast<RouteKind>(i);
    }
  }
  return std::nullopt;
}

FaultSpec fault_from_json(std::string_view text)
{
  Json j;
  try {
    j = Json::parse(text);
    return fault_from(j);
  } catch (const nlohmann::json::exception& e) {
    // Also covers type errors inside fault_from (e.g. "times": "x").
    throw std::invalid_argument(std::string("fault: bad JSON: ") + e.what());
  }
}

std::string fault_to_json(const FaultSpec& fault)
{
  Json j;
  j["kind"] = to_string(fault.kind);
  j["path_contains"] = fault.path_contains;
  j["route"] = to_string(fault.route);
  j["times"] = fault.times;
  j["after_bytes"] = fault.after_bytes;
  j["range_start_at_least"] = fault.range_start_at_least ? Json(*fault.range_start_at_least) : Json(nullptr);
  j["status"] = fault.status;
  j["retry_after_s"] = fault.retry_after_s;
  j["bytes_per_sec"] = fault.bytes_per_sec;
  j["stall_for_ms"] =
      fault.stall_for == FaultSpec::forever_duration() ? Json(nullptr) : Json(fault.stall_for.count());
  j["location"] = fault.location;
  j["body"] = fault.body;
  j["message"] = fault.message;
  return j.dump();
}

std::uint64_t Counters::bytes_for(const std::string& path) const
{
  auto it = body_bytes_by_path.find(path);
  return it == body_bytes_by_path.end() ? 0 : it->second;
}

std::uint64_t Counters::gets_for(const std::string& path) const
{
  auto it = body_gets_by_path.find(path);
  return it == body_gets_by_path.end() ? 0 : it->second;
}

std::string Counters::to_json() const
{
  Json j;
  Json requests_json = Json::object();
  for (std::size_t i = 0; i < k_route_kind_count; ++i) {
    requests_json[k_route_kind_names[i]] = requests[i];
  }
  j["requests"] = requests_json;
  j["body_bytes_total"] = body_bytes_total;
  j["body_bytes_by_path"] = body_bytes_by_path;
  j["body_gets_by_path"] = body_gets_by_path;
  j["cdn_authorization_rejected"] = cdn_authorization_rejected;
  j["faults_fired"] = faults_fired;
  j["stalls_active"] = stalls_active;
  j["requests_active"] = requests_active;
  j["requests_active_peak"] = requests_active_peak;
  Json log_json = Json::array();
  for (const auto& r : log) {
    log_json.push_back({{"method", r.method},
                        {"target", r.target},
                        {"port", r.port},
                        {"cdn", r.cdn},
                        {"range", r.range},
                        {"authorization", r.authorization},
                        {"status", r.status},
                        {"kind", to_string(r.kind)},
                        {"file_path", r.file_path}});
  }
  j["log"] = log_json;
  return j.dump();
}

// Exposed for the admin API (several faults in one POST).
std::vector<FaultSpec> faults_from_json_list(std::string_view text)
{
  Json j;
  try {
    j = Json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw std::invalid_argument(std::string("fault: bad JSON: ") + e.what());
  }
  std::vector<FaultSpec> out;
  try {
    if (j.is_array()) {
      for (const auto& item : j) {
        out.push_back(fault_from(item));
      }
    } else {
      out.push_back(fault_from(j));
    }
  } catch (const nlohmann::json::exception& e) {
    throw std::invalid_argument(std::string("fault: ") + e.what());
  }
  return out;
}

} // namespace modelmgr::emulator
