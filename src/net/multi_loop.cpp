#include "net/multi_loop.hpp"

#include "net/easy.hpp"

#include <algorithm>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

namespace modelmgr::net::detail {

namespace {

enum class Command { unpause, abort };

constexpr const char* k_shutdown_message = "the HTTP client was shut down";

} // namespace

// One multiplexed request. The caller sets it up, then the loop thread owns `easy`, `transfer` and
// `response` until it sets `done` under `mutex` (which publishes them to the caller); the rest is shared
// under `mutex`.
struct MultiLoop::Job final : BodyRelay {
  CURL* easy = nullptr;
  Transfer transfer;
  EasyResources resources;
  Response response;

  std::mutex mutex;
  std::condition_variable cv;
  std::vector<char> incoming; // body bytes the caller has not taken yet
  Response head;              // status and headers, copied when the first body byte arrives
  bool head_ready = false;
  bool wants_space = false; // the loop paused the transfer because `incoming` was full
  bool abort_requested = false;
  bool done = false;

  ~Job()
  {
    if (easy) {
      curl_easy_cleanup(easy);
    }
  }

  // Loop thread, from the write callback.
  std::size_t accept(std::span<const char> data, const Response& live) noexcept override
  {
    std::lock_guard lock(mutex);
    if (abort_requested) {
      return 0;
    }
    // A write callback brings at most k_multiplex_buffer_size bytes, so an empty buffer always has room
    // and the buffer never grows past its reserved capacity.
    if (!incoming.empty() && incoming.size() + data.size() > k_relay_capacity) {
      wants_space = true;
      transfer.paused = true;
      return CURL_WRITEFUNC_PAUSE;
    }
    try {
      if (!head_ready) {
        head.status = live.status;
        head.headers = live.headers;
        head_ready = true;
      }
      incoming.insert(incoming.end(), data.begin(), data.end());
    } catch (...) {
      return 0; // out of memory: the transfer ends as aborted
    }
    cv.notify_one();
    return data.size();
  }
};

struct MultiLoop::Core {
  std::mutex mutex;
  bool stopping = false; // the client is going away
  bool stopped = false;  // the loop has exited: the multi handle is gone, nothing is taken any more
  std::vector<std::shared_ptr<Job>> incoming;
  std::vector<std::pair<std::shared_ptr<Job>, Command>> commands;
  CURLM* multi = nullptr;

  // Caller threads. False once the loop has stopped.
  bool submit(std::shared_ptr<Job> job)
  {
    std::lock_guard lock(mutex);
    if (stopping || stopped) {
      return false;
    }
    incoming.push_back(std::move(job));
    curl_multi_wakeup(multi);
    return true;
  }
  void command(std::shared_ptr<Job> job, Command c)
  {
    std::lock_guard lock(mutex);
    if (stopped) {
      return;
    }
    commands.emplace_back(std::move(job), c);
    curl_multi_wakeup(multi);
  }

  // Loop thread: the handle has left the multi (or never entered it); publishes the result to the caller.
  static void complete(Job& job, CURLcode code, const char* message = nullptr) noexcept
  {
    try {
      finish_response(job.easy, code, job.transfer, job.resources);
      if (message) {
        job.response.error_message = message;
      }
    } catch (...) {
      job.response.error = TransferError::other; // out of memory while writing the message
    }
    // The handle uses the client's share: clean it up here, where the client is known to be alive.
    curl_easy_cleanup(job.easy);
    job.easy = nullptr;
    std::lock_guard lock(job.mutex);
    job.done = true;
    job.cv.notify_all();
  }

  void run() noexcept
  {
    std::unordered_map<Job*, std::shared_ptr<Job>> active;
    std::vector<std::shared_ptr<Job>> added; // taken from `incoming`, not yet in `active`
    const char* failure = k_shutdown_message;
    try {
      for (;;) {
        std::vector<std::pair<std::shared_ptr<Job>, Command>> todo;
        {
          std::lock_guard lock(mutex);
          if (stopping) {
            break;
          }
          added.swap(incoming);
          todo.swap(commands);
        }
        std::reverse(added.begin(), added.end()); // taken from the back: first come, first added
        while (!added.empty()) {
          auto it = active.emplace(added.back().get(), added.back()).first;
          added.pop_back();
          if (curl_multi_add_handle(multi, it->second->easy) != CURLM_OK) {
            auto job = std::move(it->second);
            active.erase(it);
            complete(*job, CURLE_FAILED_INIT, "cannot add the transfer to the HTTP event loop");
          }
        }
        for (auto& [job, c] : todo) {
          if (!active.contains(job.get())) {
            continue; // finished meanwhile
          }
          if (c == Command::unpause) {
            // The idle time while paused was the caller's: the stall clock starts again now.
            job->transfer.paused = false;
            job->transfer.last_progress = std::chrono::steady_clock::now();
            curl_easy_pause(job->easy, CURLPAUSE_CONT); // may call the write callback right away
          } else {
            curl_multi_remove_handle(multi, job->easy);
            active.erase(job.get());
            complete(*job, CURLE_WRITE_ERROR);
          }
        }
        int running = 0;
        if (curl_multi_perform(multi, &running) != CURLM_OK) {
          failure = "the HTTP event loop failed";
          break;
        }
        int left = 0;
        while (CURLMsg* msg = curl_multi_info_read(multi, &left)) {
          if (msg->msg != CURLMSG_DONE) {
            continue;
          }
          CURL* easy = msg->easy_handle;
          const CURLcode result = msg->data.result; // msg is invalid once the handle is removed
          Job* raw = nullptr;
          curl_easy_getinfo(easy, CURLINFO_PRIVATE, &raw);
          curl_multi_remove_handle(multi, easy);
          auto it = active.find(raw);
          if (it != active.end()) {
            auto job = std::move(it->second);
            active.erase(it);
            complete(*job, result);
          }
        }
        // Sleeps until a socket is ready, curl's next timeout (stall checks run at least once a second) or
        // a wakeup from a caller.
        if (curl_multi_poll(multi, nullptr, 0, 1000, nullptr) != CURLM_OK) {
          failure = "the HTTP event loop failed";
          break;
        }
      }
    } catch (...) {
      failure = "the HTTP event loop failed";
    }
    {
      std::lock_guard lock(mutex);
      stopped = true;
      added.insert(added.end(), incoming.begin(), incoming.end());
      incoming.clear();
      commands.clear();
    }
    for (auto& [raw, job] : active) {
      curl_multi_remove_handle(multi, job->easy);
      complete(*job, CURLE_ABORTED_BY_CALLBACK, failure);
    }
    for (auto& job : added) {
      complete(*job, CURLE_ABORTED_BY_CALLBACK, failure);
    }
    curl_multi_cleanup(multi);
    multi = nullptr;
  }
};

MultiLoop::MultiLoop(const ClientOptions& options, CURLSH* share)
    : m_options(options), m_share(share), m_core(std::make_shared<Core>())
{
  m_core->multi = curl_multi_init();
  curl_multi_setopt(m_core->multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
  m_thread = std::thread([core = m_core] { core->run(); });
}

MultiLoop::~MultiLoop()
{
  {
    std::lock_guard lock(m_core->mutex);
    m_core->stopping = true;
    if (!m_core->stopped) { // else the loop failed and the multi handle is gone
      curl_multi_wakeup(m_core->multi);
    }
  }
  m_thread.join();
}

Response MultiLoop::perform(const Request& request, const Sink& sink, const std::atomic<bool>* cancel)
{
  auto job = std::make_shared<Job>();
  job->easy = curl_easy_init();
  if (!job->easy) {
    Response r;
    r.error = TransferError::other;
    r.error_message = "curl_easy_init failed";
    return r;
  }
  Transfer& t = job->transfer;
  t.request = &request;
  t.sink = &sink;
  t.cancel = cancel;
  t.easy = job->easy;
  t.response = &job->response;
  t.last_progress = std::chrono::steady_clock::now();
  t.relay = job.get();
  configure_easy(job->easy, request, m_options, m_share, t, job->resources);
  // Wait for a connection that can multiplex rather than opening one more per request.
  curl_easy_setopt(job->easy, CURLOPT_PIPEWAIT, 1L);
  curl_easy_setopt(job->easy, CURLOPT_BUFFERSIZE, k_multiplex_buffer_size);
  curl_easy_setopt(job->easy, CURLOPT_PRIVATE, job.get());
  job->incoming.reserve(k_relay_capacity);

  // From here on only `core` and `job` are used: the loop may be destroyed while this thread waits.
  std::shared_ptr<Core> core = m_core;
  if (!core->submit(job)) {
    Response r;
    r.error = TransferError::aborted;
    r.error_message = k_shutdown_message;
    return r;
  }

  std::vector<char> draining;
  draining.reserve(k_relay_capacity);
  Response head;
  std::uint64_t delivered = 0;
  bool aborting = false;
  bool refused = false;
  std::exception_ptr thrown;
  for (;;) {
    bool resume = false;
    {
      std::unique_lock lock(job->mutex);
      job->cv.wait(lock, [&] { return !job->incoming.empty() || job->done; });
      if (job->incoming.empty()) {
        break; // done, and every byte has been handed over
      }
      if (delivered == 0) {
        head.status = job->head.status;
        head.headers = job->head.headers;
      }
      draining.swap(job->incoming);
      resume = std::exchange(job->wants_space, false);
    }
    if (aborting) {
      draining.clear();
      continue;
    }
    if (resume) {
      core->command(job, Command::unpause);
    }
    delivered += draining.size();
    head.body_bytes = delivered;
    bool ok = false;
    try {
      ok = sink(std::span<const char>(draining.data(), draining.size()), head);
    } catch (...) {
      thrown = std::current_exception();
    }
    draining.clear();
    if (!ok) {
      refused = !thrown;
      aborting = true;
      {
        std::lock_guard lock(job->mutex);
        job->abort_requested = true;
      }
      core->command(job, Command::abort);
    }
  }
  // `done` was read under the job's mutex: the loop's writes to the response are visible.
  Response response = std::move(job->response);
  if (t.deliver_to_sink) {
    // Like the blocking path: the bytes handed to the sink, including a refused last piece.
    response.body_bytes = delivered;
  }
  if (thrown) {
    std::rethrow_exception(thrown);
  }
  if (t.exception) {
    // A callback on the loop thread threw (stored there, never unwound through curl).
    std::rethrow_exception(t.exception);
  }
  if (refused) {
    // The transfer may have completed on the loop before the abort arrived: refused is refused.
    response.sink_refused = true;
    response.error = TransferError::aborted;
    response.error_message = k_refused_message;
  }
  return response;
}

} // namespace modelmgr::net::detail
