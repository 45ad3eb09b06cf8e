#include "cache/tree.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <stdexcept>

namespace modelmgr::cache {

std::string tree_cache_json(std::vector<TreeFile> files)
{
  // Python sorts str keys by code point; for valid UTF-8 that is byte order.
  std::stable_sort(files.begin(), files.end(),
                   [](const TreeFile& a, const TreeFile& b) { return a.path < b.path; });
  // ordered_json keeps insertion order: Python writes "size", "blob_id", then the optional keys.
  nlohmann::ordered_json by_path = nlohmann::ordered_json::object();
  for (const TreeFile& file : files) {
    nlohmann::ordered_json info = nlohmann::ordered_json::object();
    info["size"] = file.size;
    info["blob_id"] = file.blob_id;
    if (file.lfs_sha256) {
      info["lfs_sha256"] = *file.lfs_sha256;
      // Python writes lfs_size whenever lfs_sha256 is set, null if unknown.
      info["lfs_size"] =
          file.lfs_size ? nlohmann::ordered_json(*file.lfs_size) : nlohmann::ordered_json(nullptr);
    }
    if (file.xet_hash) {
      info["xet_hash"] = *file.xet_hash;
    }
    by_path[file.path] = std::move(info); // a duplicate path replaces the earlier entry, as in a dict
  }
  nlohmann::ordered_json doc = nlohmann::ordered_json::object();
  doc["format_version"] = k_tree_cache_format_version;
  doc["files"] = std::move(by_path);
  try {
    // json.dump(indent=1) with the default ensure_ascii=True: "\u00e9" escapes, ": " and "," separators.
    return doc.dump(1, ' ', true);
  } catch (const nlohmann::json::exception& e) {
    throw std::invalid_argument(std::string("tree cache: ") + e.what());
  }
}

std::optional<std::vector<TreeFile>> parse_tree_cache_json(std::string_view text)
{
  nlohmann::json doc = nlohmann::json::parse(text, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) {
    return std::nullopt;
  }
  auto version = doc.find("format_version");
  if (version == doc.end() || !version->is_number_integer() ||
      version->get<int>() != k_tree_cache_format_version) {
    return std::nullopt;
  }
  auto files = doc.find("files");
  if (files == doc.end() || !files->is_object()) {
    return std::nullopt;
  }
  std::vector<TreeFile> out;
  out.reserve(files->size());
  for (const auto& [path, info] : files->items()) {
    if (!info.is_object()) {
      return std::nullopt;
    }
    auto size = info.find("size");
    auto blob_id = info.find("blob_id");
    if (size == info.end() || !size->is_number_unsigned() || blob_id == info.end() || !blob_id->is_string()) {
      return std::nullopt;
    }
    TreeFile file;
    file.path = path;
    file.size = size->get<std::uint64_t>();
    file.blob_id = blob_id->get<std::string>();
    auto optional_string = [&](const char* key, std::optional<std::string>& out_value) {
      auto it = info.find(key);
      if (it == info.end() || it->is_null()) {
        return true;
      }
      if (!it->is_string()) {
        return false;
      }
      out_value = it->get<std::string>();
      return true;
    };
    if (!optional_string("lfs_sha256", file.lfs_sha256) || !optional_string("xet_hash", file.xet_hash)) {
      return std::nullopt;
    }
    if (auto it = info.find("lfs_size"); it != info.end() && !it->is_null()) {
      if (!it->is_number_unsigned()) {
        return std::nullopt;
      }
      file.lfs_size = it->get<std::uint64_t>();
    }
    out.push_back(std::move(file));
  }
  std::sort(out.begin(), out.end(), [](const TreeFile& a, const TreeFile& b) { return a.path < b.path; });
  return out;
}

} // namespace modelmgr::cache
