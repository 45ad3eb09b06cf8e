#pragma once
// A fake Hugging Face Hub, in-process, on loopback port 0. It speaks the real Hub's download protocol (see
// docs/hub-protocol.md §1-3, §11) closely enough that a client written against huggingface.co works
// unchanged: resolve redirects (307 resolve-cache for git files, 302 to a separate CDN port for LFS files),
// the repo-info / tree / paths-info / refs JSON APIs, the Hub's error headers, and Range on every body.
// On top of that it can inject faults (truncation, resets, stalls, throttling, corrupt bytes, lying 206...)
// and counts every request, so tests can assert how a client behaved.
//
// Used by the unit/integration tests, the benchmarks and `modelmgr serve --demo`.
//
// clang-format off
// Default repos (Options::default_repos; tests rely on these, keep in sync with default_repos.cpp).
// "git" = regular file (ETag = git blob sha1), "LFS" = 302 to the CDN (X-Linked-Etag = sha256).
//
//   test-org/tiny-model (model; also reachable as old-org/tiny-model, which 307-redirects here)
//     files at main:  config.json (git, 186 B)          tokenizer.json (git)       README.md (git)
//                     sub/dir/deep.txt (git)            empty.txt (git, 0 B: served 200 directly)
//                     "name with spaces.txt" (git)      "données/élan.txt" (git, UTF-8 name)
//                     model.safetensors (LFS, 3,145,848 B: valid safetensors header + generated, seed 1)
//                     weights/big.bin (LFS, 314,572,800 B = 300 MiB generated, seed 2)
//     commits[0]: old main = tag v1.0 (config.json "hidden_size": 32, no README.md)
//     commits[1]: main ("hidden_size": 64)
//     commits[2]: branch feature/x (main's files + feature.txt)
//     commits[3]: refs/pr/1 (main's files, config.json "hidden_size": 128)
//   test-org/many-files (model): 1,500 git files dir{00..14}/sub{0..9}/file{0..9}.txt
//     (recursive tree = 1,665 entries with directories: 2 pages of at most 1000)
//   test-org/private-model (model, private): config.json, README.md, model.safetensors (LFS, 1 MiB)
//   test-org/gated-model (model, gated "manual"): config.json, README.md, model.safetensors (LFS, 1 MiB)
//   test-org/tiny-dataset (dataset): README.md, data/train.csv, data/test.csv,
//     data/train.parquet (LFS, 2 MiB generated)
//   gpt2-tiny (model, canonical id without namespace: git files served 200 directly):
//     config.json, vocab.json, merges.txt, model.safetensors (LFS, 1 MiB)
//   test-org/Tiny-Chat-GGUF (model; catalog-like GGUF repo): README.md (git), tiny-chat.Q4_K_M.gguf and
//     tiny-chat.Q8_0.gguf (LFS, real GGUF v3 of a 2-block llama-like model, Q4_K / Q8_0 weights, < 1 MiB)
//   test-org/tiny-embed (model; catalog-like safetensors repo): config.json, tokenizer.json (git),
//     model.safetensors (LFS, real F32 safetensors, about 300 KiB)
//   test-org/Split-Vision-GGUF (model; REPO:QUANT pulls): README.md, Split-Vision-Q4_K_M-0000{1,2,3}-of-00003.gguf
//     (LFS; part 1 a real GGUF, parts 2-3 generated, 200 KiB and 100 KiB), Split-Vision-Q8_0.gguf and
//     mmproj-Split-Vision-F16.gguf (LFS, real GGUF)
// Every commit sha is derived_commit_sha(repo id, index): stable across runs.
// clang-format on
//
// Demo repos (Options::demo_repos): BAAI/bge-m3, BAAI/bge-reranker-v2-m3, google/siglip-base-patch16-224,
// Qdrant/bm42-all-minilm-l6-v2-attentions with config.json, tokenizer.json, tokenizer_config.json,
// README.md and a generated model.safetensors / model.onnx of a few MiB.
//
// Tokens: `Authorization: Bearer <t>`; t in valid_tokens may read private and gated repos, t in
// tokens_without_gated_access is a valid user that may read neither, anything else is "invalid
// credentials" (401 on every Hub route). The CDN rejects any Authorization header with 400 (like S3 with a
// signed URL).

#include "emulator/repo_model.hpp"

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace modelmgr::emulator {

// ---- Fault injection ------------------------------------------------------------------------------------

struct FaultSpec {
  // truncate:     declare the full Content-Length, send `after_bytes` body bytes, close the connection.
  // reset:        send `after_bytes`, then abort with a TCP RST (SO_LINGER 0 + disconnect); on head/api
  //               routes the RST comes before any response.
  // flip_byte:    XOR 0xFF into the byte at absolute file offset `after_bytes` (only responses whose range
  //               covers it match, so a chunked client hits exactly the chunk holding it).
  // status:       answer `status` with the Hub's error JSON, plus Retry-After when retry_after_s > 0.
  // stall:        send `after_bytes`, then nothing for `stall_for` (default: until stop()), then the rest;
  //               on head/api routes the wait comes before the response.
  // throttle:     pace this response at `bytes_per_sec`.
  // lying_206:    answer 206 for a range next to the one asked (start shifted by one byte), with a truthful
  //               Content-Range for what is sent; a request without Range gets 206 for bytes 1-end.
  // ignore_range: answer 200 with the whole body to a Range request.
  // Hostile-server faults (a client must refuse these answers cleanly):
  // redirect:     answer `status` (302 unless a 3xx is given) with `Location: <location>`, e.g. file:///…
  // body:         answer `status` with `body` as an application/json body instead of the real answer
  //               (malformed JSON, wrong-typed fields, `size: -1`, names like "../../x").
  // endless_body: answer 200 with a JSON array that never ends (chunked, until the client goes away or
  //               stop()); with after_bytes > 0 the body has exactly that many bytes and says so in
  //               Content-Length.
  // link_loop:    (api routes) the real answer with `Link: <location>; rel="next"`; an empty location
  //               means the request's own URL (a pagination loop).
  // flip_byte, throttle, lying_206 and ignore_range apply to body routes only; truncate not to HEADs;
  // link_loop to api routes only.
  enum class Kind {
    truncate,
    reset,
    flip_byte,
    status,
    stall,
    throttle,
    lying_206,
    ignore_range,
    redirect,
    body,
    endless_body,
    link_loop
  };
  // body: GETs that serve file bytes (CDN, resolve-cache, direct 200 from /resolve/); head: HEAD requests
  // on /resolve/, resolve-cache and the CDN; api: /api/{models,datasets,spaces}/... JSON routes; any: all
  // of them, plus GETs of /resolve/ that answer with a redirect.
  enum class Route { body, head, api, any };

  Kind kind = Kind::status;
  // Substring of the repo file path (body/head routes) or of the decoded request path (api routes);
  // empty = any.
  std::string path_contains;
  Route route = Route::body;
  int times = 1; // -1 = always; each firing consumes one
  // truncate/reset/stall: body bytes sent first; flip_byte: absolute file offset of the byte to corrupt
  // (the fault only matches responses whose range covers it).
  std::uint64_t after_bytes = 0;
  // Only requests with a Range header starting at or beyond this offset match.
  std::optional<std::uint64_t> range_start_at_least;
  int status = 503;                                         // status
  int retry_after_s = 0;                                    // status: Retry-After when > 0
  std::uint64_t bytes_per_sec = 0;                          // throttle
  std::chrono::milliseconds stall_for = forever_duration(); // stall; default until stop()
  std::string location;                                     // redirect: the Location sent
  std::string body;                                         // body: the body sent
  std::string message; // status: X-Error-Message (and the JSON error) instead of the status text

  static constexpr std::chrono::milliseconds forever_duration() { return std::chrono::milliseconds::max(); }
};

std::string to_string(FaultSpec::Kind kind);
std::string to_string(FaultSpec::Route route);
// JSON shape of POST /_emulator/faults: {"kind":"truncate","path_contains":"big.bin","route":"body",
// "times":1,"after_bytes":1000,"range_start_at_least":0,"status":503,"retry_after_s":2,"bytes_per_sec":0,
// "stall_for_ms":500,"location":"file:///etc/passwd","body":"[]","message":"…"}; every key but "kind" is
// optional ("status" defaults to 302 for redirect, 200 for body, 503 otherwise). Throws
// std::invalid_argument on bad input.
FaultSpec fault_from_json(std::string_view json);
// An object or an array of objects.
std::vector<FaultSpec> faults_from_json_list(std::string_view json);
std::string fault_to_json(const FaultSpec& fault);

// ---- Counters -------------------------------------------------------------------------------------------

enum class RouteKind {
  head_resolve,   // HEAD /{repo}/resolve/...
  get_resolve,    // GET /{repo}/resolve/...
  resolve_cache,  // HEAD or GET /api/resolve-cache/...
  cdn_get,        // GET on the CDN port
  cdn_head,       // HEAD on the CDN port
  api_repo_info,  // /api/{type}s/{repo}[/revision/{rev}]
  api_tree,       // /api/{type}s/{repo}/tree/...
  api_paths_info, // POST /api/{type}s/{repo}/paths-info/...
  api_refs,       // /api/{type}s/{repo}/refs
  other,
};
inline constexpr std::size_t k_route_kind_count = static_cast<std::size_t>(RouteKind::other) + 1;
std::string to_string(RouteKind kind);
// The inverse of to_string(RouteKind); nullopt for an unknown name.
std::optional<RouteKind> route_kind_from_string(std::string_view name);

struct RequestRecord {
  std::string method;
  std::string target; // raw request target, still percent-encoded
  int port = 0;       // the port it arrived on (hub or CDN)
  bool cdn = false;
  std::string range; // Range header, empty if none
  bool authorization = false;
  int status = 0;
  RouteKind kind = RouteKind::other;
  std::string file_path; // repo file path served, if any
};

struct Counters {
  std::array<std::uint64_t, k_route_kind_count> requests{};
  std::uint64_t body_bytes_total = 0;                      // file body bytes written to sockets
  std::map<std::string, std::uint64_t> body_bytes_by_path; // keyed by repo file path
  std::map<std::string, std::uint64_t> body_gets_by_path;  // body GETs (any status) per file path
  std::uint64_t cdn_authorization_rejected = 0;            // CDN requests refused for Authorization
  std::uint64_t faults_fired = 0;
  std::uint64_t stalls_active = 0;   // responses currently inside a stall
  std::uint64_t requests_active = 0; // requests being handled now (not admin ones)
  std::uint64_t requests_active_peak = 0;
  std::vector<RequestRecord> log; // completed requests, in completion order

  std::uint64_t count(RouteKind kind) const { return requests[static_cast<std::size_t>(kind)]; }
  std::uint64_t bytes_for(const std::string& path) const;
  std::uint64_t gets_for(const std::string& path) const;
  std::string to_json() const;
};

// ---- The emulator ---------------------------------------------------------------------------------------

class HubEmulator {
public:
  struct Options {
    std::string bind = "127.0.0.1";
    bool default_repos = true;
    bool demo_repos = false;
    std::set<std::string> valid_tokens = {"hf_test_token_with_access"};
    std::set<std::string> tokens_without_gated_access = {"hf_test_token_without_access"};
    int hub_port = 0; // 0 = any free port (tests must keep 0)
    int cdn_port = 0;
    // Per server; each keep-alive connection holds one, so this is how many connections are served at once
    // (a downloader may open 64 to the CDN plus 64 to the Hub).
    std::size_t worker_threads = 256;
    // Network and server delay: every request on one of `latency_routes` (all counted routes when empty)
    // waits this long before its answer (before the first byte of headers or body).
    std::chrono::milliseconds latency{0};
    std::set<RouteKind> latency_routes;
    // Bytes per second of each body response, like a CDN that paces every connection (the throttle fault,
    // without a fault); 0 = unlimited.
    std::uint64_t connection_rate = 0;
    // Bytes per second of all body responses of both servers together (a shared link); 0 = unlimited.
    std::uint64_t total_rate = 0;
  };

  HubEmulator();
  explicit HubEmulator(Options options);
  ~HubEmulator(); // stops
  HubEmulator(const HubEmulator&) = delete;
  HubEmulator& operator=(const HubEmulator&) = delete;

  // Binds both servers and starts serving; returns once both accept connections. Throws
  // std::runtime_error when a port cannot be bound.
  void start();
  // Stops both servers, aborting stalled/throttled responses and idle keep-alive connections; returns
  // promptly. Idempotent.
  void stop();
  bool running() const noexcept;

  std::string endpoint() const;     // http://127.0.0.1:PORT
  std::string cdn_endpoint() const; // http://127.0.0.1:PORT
  int port() const noexcept { return m_hub_port; }
  int cdn_port() const noexcept { return m_cdn_port; }
  // Origins ("https://127.0.0.1:PORT") of a proxy in front of the hub and CDN ports (tests put nginx with
  // TLS and HTTP/2 there): the absolute URLs the emulator hands out (LFS redirects to the CDN, tree
  // pagination links) then point at the proxy. Empty = no proxy. May be called while running.
  void set_public_origins(std::string hub, std::string cdn);

  // Adds or replaces a repo (may be called while running). Throws std::invalid_argument on a bad spec.
  void add_repo(const RepoSpec& spec);
  // Appends a commit; when `branch` is given it is moved there. Returns the new commit's sha.
  std::string add_commit(std::string_view repo_id, CommitSpec commit, std::optional<std::string> branch = {},
                         std::string_view type = "model");
  // Creates or moves a branch. Throws std::invalid_argument for an unknown repo or commit.
  void set_branch(std::string_view repo_id, std::string_view branch, std::string_view sha,
                  std::string_view type = "model");
  std::shared_ptr<const Repo> repo(std::string_view id, std::string_view type = "model") const;
  std::vector<std::shared_ptr<const Repo>> repos() const;
  // Computes every LFS sha256 now (in the calling thread) so the first request does not pay for it.
  void warm_hashes() const;

  // Faults are checked in insertion order; the first matching one fires.
  void add_fault(FaultSpec fault);
  void clear_faults();
  std::size_t pending_faults() const;

  Counters counters() const;
  void reset_counters();
  // Blocks until `predicate(counters)` holds (evaluated under the counters lock after every change) or the
  // timeout passes; returns whether it held. For tests: no sleeping to wait for the server.
  bool wait_for(const std::function<bool(const Counters&)>& predicate,
                std::chrono::milliseconds timeout = std::chrono::seconds(10)) const;

  const Options& options() const noexcept { return m_options; }

  struct Impl;

private:
  Options m_options;
  int m_hub_port = 0;
  int m_cdn_port = 0;
  std::unique_ptr<Impl> m_impl;
};

} // namespace modelmgr::emulator
