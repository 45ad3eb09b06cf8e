// Output that can fail: stdout or stderr may be a pipe whose reader went away (`| head -1`, a CI log
// collector that stopped), a file on a full disk, a closed descriptor. Such a failure ends the command
// cleanly (downloads stopped and resumable) instead of aborting it.

#include "cli/cli.hpp"

#include <cerrno>
#include <cstdio>
#include <mutex>
#include <system_error>

#include <poll.h>
#include <unistd.h>

namespace modelmgr::cli {

namespace {

std::mutex g_failure_mutex;
std::exception_ptr g_failure;

// A pipe whose read end is closed reports POLLERR to its writer (a socket whose peer left: POLLHUP).
bool reader_gone(int fd) noexcept
{
  pollfd p{fd, POLLOUT, 0};
  return ::poll(&p, 1, 0) == 1 && (p.revents & (POLLERR | POLLHUP)) != 0;
}

} // namespace

bool is_closed_output(std::exception_ptr error) noexcept
{
  if (!error) {
    return false;
  }
  try {
    std::rethrow_exception(error);
  } catch (const std::system_error& e) {
    return e.code() == std::errc::broken_pipe;
  } catch (...) {
  }
  return false;
}

void output_failed(std::exception_ptr error) noexcept
{
  {
    std::lock_guard lock(g_failure_mutex);
    if (!g_failure) {
      g_failure = error;
    }
  }
  cancel_flag().store(true);
}

std::exception_ptr output_failure() noexcept
{
  std::lock_guard lock(g_failure_mutex);
  return g_failure;
}

void flush_stdout()
{
  errno = 0;
  if (std::fflush(stdout) == 0 && !std::ferror(stdout)) {
    return;
  }
  // glibc drops the buffer after a failed write and a later fflush succeeds with only the error flag set,
  // so errno may no longer say why: ask the descriptor.
  int err = errno;
  if (err == 0) {
    err = reader_gone(STDOUT_FILENO) ? EPIPE : EIO;
  }
  throw std::system_error(err, std::generic_category(), "cannot write to standard output");
}

void print_stderr_noexcept(const std::string& text) noexcept
{
  std::fwrite(text.data(), 1, text.size(), stderr);
  std::fflush(stderr);
}

} // namespace modelmgr::cli
