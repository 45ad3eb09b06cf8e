// modelmgr._modelmgr: the Python binding of the modelmgr library (pybind11). The package modelmgr
// (python/modelmgr/__init__.py) re-exports it with the API of the Python model_manager tool it replaces.
//
// Long calls (downloads, syncs) run on a worker thread while the calling thread, with the GIL held only
// briefly, waits for it: every 100 ms or progress event it runs PyErr_CheckSignals() (so Ctrl-C becomes
// KeyboardInterrupt) and hands queued progress events to the Python callback. A Python error (the signal, or
// an exception raised by the callback) sets the library's cancel flag; the download stops cleanly and stays
// resumable (partial bytes only under temporary names), and the Python error is raised once the worker is
// done. Python code therefore never runs on a library thread, and no exception crosses one.

#include "modelmgr/config.hpp"
#include "modelmgr/errors.hpp"
#include "modelmgr/model_manager.hpp"
#include "modelmgr/progress.hpp"
#include "modelmgr/pull.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <exception>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

namespace py = pybind11;
namespace fs = std::filesystem;

namespace {

using namespace modelmgr;

// ---- Exceptions
// ---------------------------------------------------------------------------------------------

// The Python exception classes, created once at import and never destroyed (they must outlive any static
// destructor that could run after the interpreter is gone).
struct ErrorClasses {
  py::object base, config, missing, checksum, download;
};
ErrorClasses* g_errors = nullptr;

py::object class_for(ErrorKind kind)
{
  switch (kind) {
  case ErrorKind::usage:
  case ErrorKind::config: return g_errors->config;
  case ErrorKind::not_found: return g_errors->missing;
  case ErrorKind::checksum: return g_errors->checksum;
  case ErrorKind::auth:
  case ErrorKind::network:
  case ErrorKind::disk:
  case ErrorKind::interrupted:
  case ErrorKind::locked:
  case ErrorKind::bad_response: return g_errors->download;
  case ErrorKind::internal: break;
  }
  return g_errors->base;
}

// Raises the Python class for `kind` with the message and the attributes `kind`, `hint`, `exit_code`.
void set_python_error(ErrorKind kind, const std::string& message, const std::string& hint)
{
  py::object cls = class_for(kind);
  py::object exc = cls(hint.empty() ? message : message + "\n  hint: " + hint);
  exc.attr("kind") = to_string(kind);
  exc.attr("hint") = hint;
  exc.attr("exit_code") = exit_code_for(kind);
  PyErr_SetObject(cls.ptr(), exc.ptr());
}

void translate(std::exception_ptr p)
{
  try {
    if (p) {
      std::rethrow_exception(p);
    }
  } catch (const ModelManagerError& e) {
    set_python_error(e.kind(), e.what(), e.hint());
  } catch (const std::system_error& e) {
    set_python_error(ErrorKind::disk, e.what(), "");
  }
}

// A failed model of a sync, raised as the class of its kind.
[[noreturn]] void raise_failures(const SyncReport& report)
{
  std::string message;
  std::string hint;
  for (const auto& m : report.models) {
    if (m.status == ModelStatus::failed) {
      message += (message.empty() ? "" : "\n") + m.id + ": " + m.reason;
      if (hint.empty()) {
        hint = m.hint;
      }
    }
  }
  const ErrorKind kind = report.worst_error().value_or(ErrorKind::internal);
  throw ModelManagerError(kind, message, hint);
}

// ---- Running long calls
// -------------------------------------------------------------------------------------

// Collects progress events on the library's threads for the calling thread. Never throws.
class EventQueue : public ProgressObserver {
public:
  explicit EventQueue(bool keep) : m_keep(keep) {}

  void on_event(const ProgressEvent& event) override
  {
    try {
      std::lock_guard lock(m_mutex);
      if (m_keep && m_events.size() < 10000) {
        m_events.push_back(event);
        m_cv.notify_one();
      }
    } catch (...) {
      // Out of memory while queueing: the event is dropped; progress is advisory.
    }
  }

  void finish() noexcept
  {
    std::lock_guard lock(m_mutex);
    m_done = true;
    m_cv.notify_one();
  }

  // Waits up to `timeout` for events or the end; returns the events and whether the work is done.
  std::deque<ProgressEvent> wait(std::chrono::milliseconds timeout, bool& done)
  {
    std::unique_lock lock(m_mutex);
    m_cv.wait_for(lock, timeout, [this] { return m_done || !m_events.empty(); });
    done = m_done;
    return std::exchange(m_events, {});
  }

private:
  const bool m_keep;
  std::mutex m_mutex;
  std::condition_variable m_cv;
  std::deque<ProgressEvent> m_events;
  bool m_done = false;
};

py::dict event_dict(const ProgressEvent& e)
{
  py::dict d;
  d["type"] = to_string(e.type);
  d["repo_id"] = e.repo_id;
  d["path"] = e.path;
  d["total"] = e.total;
  d["current"] = e.current;
  d["attempt"] = e.attempt;
  d["message"] = e.message;
  return d;
}

// Runs `work(observer, cancel)` on a worker thread; see the comment at the top. Called with the GIL held.
template <class Work>
auto run_interruptible(Work work, const py::object& progress) -> decltype(work(nullptr, nullptr))
{
  using Result = decltype(work(nullptr, nullptr));
  std::atomic<bool> cancel{false};
  EventQueue queue(!progress.is_none());
  std::optional<Result> result;
  std::exception_ptr error;
  std::thread worker([&]() noexcept {
    try {
      result.emplace(work(&queue, &cancel));
    } catch (...) {
      error = std::current_exception();
    }
    queue.finish();
  });
  std::optional<py::error_already_set> python_error;
  for (bool done = false; !done;) {
    std::deque<ProgressEvent> events;
    {
      py::gil_scoped_release released;
      events = queue.wait(std::chrono::milliseconds(100), done);
    }
    if (python_error) {
      continue; // cancelled: only waiting for the worker now
    }
    try {
      if (PyErr_CheckSignals() != 0) {
        throw py::error_already_set();
      }
      for (const auto& e : events) {
        progress(event_dict(e));
      }
    } catch (py::error_already_set& e) {
      python_error.emplace(std::move(e));
      cancel.store(true);
    }
  }
  {
    py::gil_scoped_release released;
    worker.join();
  }
  if (python_error) {
    throw std::move(*python_error); // KeyboardInterrupt, or what the callback raised
  }
  if (error) {
    std::rethrow_exception(error);
  }
  return std::move(*result);
}

// ---- Conversions
// --------------------------------------------------------------------------------------------

VerifyLevel verify_level(const std::string& text)
{
  if (auto level = parse_verify_level(text)) {
    return *level;
  }
  throw ConfigurationError("unknown verify level '" + text + "'", "use one of none, size, sha256, load",
                           ErrorKind::usage);
}

fs::path cache_dir_or_default(const std::optional<fs::path>& dir)
{
  // An empty config resolves the cache the way the CLI does (HF_HUB_CACHE, HF_HOME/hub, ~/.cache/...).
  ModelSetConfig c;
  c.path = fs::current_path() / "python";
  if (dir) {
    c.cache_dir = dir->string();
  }
  return ModelManager(c).cache_dir();
}

// A one-model manager for a spec the caller built (download_model with progress and cancellation).
ModelManager manager_for(const ModelSpec& spec, const std::optional<fs::path>& cache_dir)
{
  ModelSetConfig c;
  c.path = fs::current_path() / "python";
  c.cache_dir = cache_dir_or_default(cache_dir).string();
  c.models = {spec};
  return ModelManager(std::move(c));
}

const ModelSpec& spec_or_missing(const ModelManager& mm, const std::string& id)
{
  if (const ModelSpec* spec = mm.config().find(id)) {
    return *spec;
  }
  std::string known;
  for (const auto& m : mm.config().models) {
    known += (known.empty() ? "" : ", ") + m.id;
  }
  throw MissingModelError("no model '" + id + "' in " + mm.config().path.string(),
                          known.empty() ? "the config lists no models" : "known ids: " + known);
}

py::dict paths_of(const SyncReport& report)
{
  py::dict out;
  for (const auto& m : report.models) {
    out[py::str(m.id)] = m.path;
  }
  return out;
}

} // namespace

PYBIND11_MODULE(_modelmgr, m)
{
  m.doc() = "modelmgr: a fast, verifying Hugging Face Hub download manager (C++ core)";

  g_errors = new ErrorClasses;
  g_errors->base = py::reinterpret_steal<py::object>(PyErr_NewExceptionWithDoc(
      "modelmgr.ModelManagerError", "Base class of every modelmgr error.", PyExc_RuntimeError, nullptr));
  auto sub = [&](const char* name, const char* doc) {
    return py::reinterpret_steal<py::object>(
        PyErr_NewExceptionWithDoc(name, doc, g_errors->base.ptr(), nullptr));
  };
  g_errors->config = sub("modelmgr.ConfigurationError", "The configuration (file, arguments) is invalid.");
  g_errors->missing = sub("modelmgr.MissingModelError", "A model, repo, revision or file does not exist.");
  g_errors->checksum = sub("modelmgr.BadChecksumError", "Bytes do not match the Hub's hash or size.");
  g_errors->download = sub("modelmgr.DownloadError", "A transfer failed (network, auth, disk, lock).");
  m.attr("ModelManagerError") = g_errors->base;
  m.attr("ConfigurationError") = g_errors->config;
  m.attr("MissingModelError") = g_errors->missing;
  m.attr("BadChecksumError") = g_errors->checksum;
  m.attr("DownloadError") = g_errors->download;
  py::register_exception_translator(translate);

  py::class_<ModelSpec>(m, "ModelSpec", "One model of a model set: a repo, a revision and the files to take.")
      .def(py::init([](std::string id, std::string repo_id, std::string revision,
                       std::optional<std::vector<std::string>> files, std::optional<std::string> local_dir,
                       std::string repo_type, std::optional<std::vector<std::string>> exclude) {
             ModelSpec s;
             s.id = std::move(id);
             s.repo_id = std::move(repo_id);
             s.revision = std::move(revision);
             s.files = files.value_or(std::vector<std::string>{});
             s.local_dir = std::move(local_dir);
             s.repo_type = std::move(repo_type);
             s.exclude = exclude.value_or(std::vector<std::string>{});
             return s;
           }),
           py::arg("id"), py::arg("repo_id"), py::arg("revision") = "main", py::arg("files") = py::none(),
           py::arg("local_dir") = py::none(), py::arg("repo_type") = "model", py::arg("exclude") = py::none())
      .def_readwrite("id", &ModelSpec::id)
      .def_readwrite("repo_id", &ModelSpec::repo_id)
      .def_readwrite("revision", &ModelSpec::revision)
      .def_readwrite("local_dir", &ModelSpec::local_dir)
      .def_readwrite("files", &ModelSpec::files)
      .def_readwrite("repo_type", &ModelSpec::repo_type)
      .def_readwrite("exclude", &ModelSpec::exclude)
      .def_readwrite("sha256", &ModelSpec::sha256)
      .def_readwrite("description", &ModelSpec::description)
      .def("__eq__", [](const ModelSpec& a, const ModelSpec& b) { return a == b; })
      .def("__repr__", [](const ModelSpec& s) {
        return "ModelSpec(id='" + s.id + "', repo_id='" + s.repo_id + "', revision='" + s.revision + "')";
      });

  py::class_<ModelSetConfig>(m, "ModelsConfig", "A model-set configuration file, as read.")
      .def_property_readonly("models", [](const ModelSetConfig& c) { return c.models; })
      .def_property_readonly("cache_dir", [](const ModelSetConfig& c) { return c.cache_dir; })
      .def_property_readonly("verify",
                             [](const ModelSetConfig& c) { return std::string(to_string(c.verify)); })
      .def_property_readonly("manifest", [](const ModelSetConfig& c) { return c.manifest; })
      .def_property_readonly("path", [](const ModelSetConfig& c) { return c.path; })
      .def("__repr__", [](const ModelSetConfig& c) {
        return "ModelsConfig(path='" + c.path.string() + "', models=" + std::to_string(c.models.size()) + ")";
      });

  py::class_<ModelManager>(m, "ModelManager", "Makes the cache match a model-set configuration file.")
      .def_static("from_config", &ModelManager::from_config, py::arg("path"),
                  "Reads and validates a model-set file (YAML or TOML).")
      .def_property_readonly("config", &ModelManager::config, py::return_value_policy::copy)
      .def_property_readonly("cache_dir", &ModelManager::cache_dir)
      .def(
          "get_model_spec",
          [](const ModelManager& mm, const std::string& id) { return spec_or_missing(mm, id); },
          py::arg("id"))
      .def(
          "ensure_model",
          [](const ModelManager& mm, const std::string& id, const py::object& progress) {
            spec_or_missing(mm, id);
            return run_interruptible(
                [&](ProgressObserver* observer, const std::atomic<bool>* cancel) {
                  EnsureOptions o;
                  o.observer = observer;
                  o.cancel = cancel;
                  return mm.ensure_model(id, o).path;
                },
                progress);
          },
          py::arg("id"), py::arg("progress") = py::none(),
          "Pulls and verifies one model; returns its folder.")
      .def(
          "ensure_all",
          [](const ModelManager& mm, const py::object& progress) {
            const SyncReport report = run_interruptible(
                [&](ProgressObserver* observer, const std::atomic<bool>* cancel) {
                  EnsureOptions o;
                  o.observer = observer;
                  o.cancel = cancel;
                  return mm.ensure_all(o);
                },
                progress);
            if (!report.ok()) {
              raise_failures(report);
            }
            return paths_of(report);
          },
          py::arg("progress") = py::none(), "Pulls and verifies every model; returns {id: folder}.");

  m.def(
      "ensure_models",
      [](const fs::path& config_path, const std::optional<fs::path>& cache_dir, const py::object& progress) {
        ModelSetConfig config = ModelManager::from_config(config_path).config();
        if (cache_dir) {
          config.cache_dir = fs::absolute(*cache_dir).string();
        }
        const ModelManager mm(std::move(config));
        const SyncReport report = run_interruptible(
            [&](ProgressObserver* observer, const std::atomic<bool>* cancel) {
              EnsureOptions o;
              o.observer = observer;
              o.cancel = cancel;
              SyncReport r = mm.ensure_all(o);
              mm.write_manifest(r, mm.default_manifest_path());
              return r;
            },
            progress);
        if (!report.ok()) {
          raise_failures(report);
        }
        return paths_of(report);
      },
      py::arg("config_path"), py::arg("cache_dir") = py::none(), py::arg("progress") = py::none(),
      "Makes the cache match the model-set file (and writes its manifest); returns {id: folder}.");

  m.def(
      "is_cached",
      [](const ModelSpec& spec, const std::optional<fs::path>& cache_dir) {
        const fs::path dir = cache_dir_or_default(cache_dir);
        py::gil_scoped_release released;
        return is_cached(spec, dir);
      },
      py::arg("spec"), py::arg("cache_dir") = py::none(),
      "Whether every file of the spec is cached (offline).");
  m.def(
      "get_model_path",
      [](const ModelSpec& spec, const std::optional<fs::path>& cache_dir) {
        const fs::path dir = cache_dir_or_default(cache_dir);
        py::gil_scoped_release released;
        return get_model_path(spec, dir);
      },
      py::arg("spec"), py::arg("cache_dir") = py::none(),
      "The folder of a cached model (offline); MissingModelError when it is not complete.");
  m.def(
      "download_model",
      [](const ModelSpec& spec, const std::optional<fs::path>& cache_dir, const py::object& progress) {
        const ModelManager mm = manager_for(spec, cache_dir);
        return run_interruptible(
            [&](ProgressObserver* observer, const std::atomic<bool>* cancel) {
              EnsureOptions o;
              o.observer = observer;
              o.cancel = cancel;
              return mm.ensure_model(spec.id, o).path;
            },
            progress);
      },
      py::arg("spec"), py::arg("cache_dir") = py::none(), py::arg("progress") = py::none(),
      "Pulls the model (every file verified) and returns its folder.");
  m.def(
      "verify_model",
      [](const fs::path& path, const std::string& level) {
        const VerifyLevel lv = verify_level(level);
        std::vector<FileProblem> problems;
        {
          py::gil_scoped_release released;
          problems = verify_model(path, lv);
        }
        if (problems.empty()) {
          return true;
        }
        bool only_missing = true;
        std::string message = "model at " + path.string() + " failed verification (" + level + "):";
        for (const auto& p : problems) {
          only_missing = only_missing && (p.kind == FileProblem::Kind::missing_link ||
                                          p.kind == FileProblem::Kind::missing_blob);
          message += "\n  " + p.message; // names the file
        }
        const std::string hint = "re-download the model (`modelmgr verify --repair` for a model set)";
        if (only_missing) {
          throw MissingModelError(message, hint);
        }
        throw BadChecksumError(message, hint);
      },
      py::arg("path"), py::arg("verify_level") = "sha256",
      "Re-checks a snapshot or local_dir folder offline; True, or BadChecksumError / MissingModelError.");
  m.def(
      "pull",
      [](const std::string& repo_id, const std::optional<std::vector<std::string>>& files,
         const std::string& revision, const std::string& repo_type,
         const std::optional<std::vector<std::string>>& include,
         const std::optional<std::vector<std::string>>& exclude, const std::optional<fs::path>& cache_dir,
         const std::optional<fs::path>& local_dir, const std::optional<std::string>& endpoint,
         const std::optional<std::string>& token, const std::optional<bool>& offline,
         const std::optional<std::string>& quant, const py::object& progress) {
        PullOptions o;
        o.repo_id = repo_id;
        // "org/name:Q4_K_M": the GGUF file(s) of that quantization, as on the command line.
        if (const auto colon = repo_id.rfind(':'); colon != std::string::npos) {
          o.repo_id = repo_id.substr(0, colon);
          o.gguf_quant = repo_id.substr(colon + 1);
        }
        if (quant) {
          o.gguf_quant = *quant;
        }
        o.files = files.value_or(std::vector<std::string>{});
        o.revision = revision;
        o.repo_type = repo_type;
        o.include = include.value_or(std::vector<std::string>{});
        o.exclude = exclude.value_or(std::vector<std::string>{});
        o.cache_dir = cache_dir;
        o.local_dir = local_dir;
        o.endpoint = endpoint;
        o.token = token;
        o.offline = offline;
        const PullResult r = run_interruptible(
            [&](ProgressObserver* observer, const std::atomic<bool>* cancel) {
              PullOptions with = o;
              with.observer = observer;
              with.cancel = cancel;
              return pull(with);
            },
            progress);
        std::vector<fs::path> paths;
        for (const auto& f : r.files) {
          paths.push_back(f.local_path);
        }
        return paths;
      },
      py::arg("repo_id"), py::arg("files") = py::none(), py::arg("revision") = "main",
      py::arg("repo_type") = "model", py::arg("include") = py::none(), py::arg("exclude") = py::none(),
      py::arg("cache_dir") = py::none(), py::arg("local_dir") = py::none(), py::arg("endpoint") = py::none(),
      py::arg("token") = py::none(), py::arg("offline") = py::none(), py::arg("quant") = py::none(),
      py::arg("progress") = py::none(),
      "Downloads files (or the whole snapshot) of a repo into the HF cache, verified; returns their paths. "
      "'org/name:QUANT' (or quant=) picks the GGUF file(s) of one quantization, the file to load first.");
}
