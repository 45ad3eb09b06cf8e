#include "util/env.hpp"
#include "util/size.hpp"
#include "util/time.hpp"

#include <stdexcept>

#include <gtest/gtest.h>
#include <pwd.h>
#include <unistd.h>

using namespace modelmgr::util;
using namespace std::chrono_literals;

// ---- sizes ----

TEST(UtilSize, ParsesDecimalAndBinaryUnits)
{
  EXPECT_EQ(parse_size("1000"), 1000u);
  EXPECT_EQ(parse_size("0"), 0u);
  EXPECT_EQ(parse_size("512k"), 512'000u);
  EXPECT_EQ(parse_size("512K"), 512'000u);
  EXPECT_EQ(parse_size("50M"), 50'000'000u);
  EXPECT_EQ(parse_size("50MB"), 50'000'000u);
  EXPECT_EQ(parse_size("1.5GB"), 1'500'000'000u);
  EXPECT_EQ(parse_size("1.5 gb"), 1'500'000'000u);
  EXPECT_EQ(parse_size("10MiB"), 10u * 1024 * 1024);
  EXPECT_EQ(parse_size("10mi"), 10u * 1024 * 1024);
  EXPECT_EQ(parse_size("2T"), 2'000'000'000'000u);
  EXPECT_EQ(parse_size("1KiB"), 1024u);
  EXPECT_EQ(parse_size("0.5KiB"), 512u);
  EXPECT_EQ(parse_size("1.0005K"), 1000u); // rounded down to whole bytes
  EXPECT_EQ(parse_size(" 7B "), 7u);
  EXPECT_EQ(parse_size(".5M"), 500'000u);
  EXPECT_EQ(parse_size("2.0"), 2u);
  EXPECT_EQ(parse_size("15EiB"), std::uint64_t{15} << 60);
  EXPECT_THROW(parse_size("16EiB"), std::invalid_argument); // 2^64
}

TEST(UtilSize, RejectsJunkWithClearMessages)
{
  const std::vector<std::pair<std::string, std::string>> bad{
      {"", "invalid size '': empty"},
      {"abc", "invalid size 'abc': expected a number"},
      {"-5M", "invalid size '-5M': expected a number"},
      {"5X", "invalid size '5X': unknown unit 'X'"},
      {"5MBs", "invalid size '5MBs': unknown unit 'MBs'"},
      {"1.5", "invalid size '1.5': a byte count must be a whole number"},
      {"1.2.3M", "invalid size '1.2.3M': unknown unit '.3M'"},
      {"20E", "invalid size '20E': too large"},
      {"99999999999999999999", "invalid size '99999999999999999999': too large"},
  };
  for (const auto& [text, message] : bad) {
    try {
      (void)parse_size(text);
      ADD_FAILURE() << "accepted '" << text << "'";
    } catch (const std::invalid_argument& e) {
      EXPECT_EQ(std::string(e.what()).substr(0, message.size()), message) << e.what();
    }
  }
}

TEST(UtilSize, ParsesRates)
{
  EXPECT_EQ(parse_rate("10M"), 10'000'000u);
  EXPECT_EQ(parse_rate("10MB/s"), 10'000'000u);
  EXPECT_EQ(parse_rate("1.5MiB/s"), 1'572'864u);
  EXPECT_EQ(parse_rate("500k/S"), 500'000u);
  EXPECT_THROW(parse_rate("fast"), std::invalid_argument);
  EXPECT_THROW(parse_rate("10M/h"), std::invalid_argument);
}

TEST(UtilSize, FormatSizeLikePythonScan)
{
  EXPECT_EQ(format_size(0), "0.0");
  EXPECT_EQ(format_size(999), "999.0");
  EXPECT_EQ(format_size(1000), "1.0K");
  EXPECT_EQ(format_size(42'200), "42.2K");
  EXPECT_EQ(format_size(1'500'000), "1.5M");
  EXPECT_EQ(format_size(3'400'000'000), "3.4G");
  EXPECT_EQ(format_size(1'000'000'000'000), "1.0T");
  EXPECT_EQ(format_size(UINT64_MAX), "18.4E");
}

TEST(UtilSize, FormatBytesIec)
{
  EXPECT_EQ(format_bytes_iec(0), "0 B");
  EXPECT_EQ(format_bytes_iec(512), "512 B");
  EXPECT_EQ(format_bytes_iec(1536), "1.5 KiB");
  EXPECT_EQ(format_bytes_iec(10u * 1024 * 1024), "10.0 MiB");
  EXPECT_EQ(format_bytes_iec(3'650'722'201), "3.4 GiB");
}

// ---- time ----

TEST(UtilTime, Iso8601RoundTrip)
{
  const SystemTime t = std::chrono::system_clock::from_time_t(1'700'000'000);
  EXPECT_EQ(format_iso8601_utc(t), "2023-11-14T22:13:20Z");
  EXPECT_EQ(format_iso8601_utc(std::chrono::system_clock::from_time_t(0)), "1970-01-01T00:00:00Z");
  EXPECT_EQ(parse_iso8601_utc("2023-11-14T22:13:20Z"), t);
  EXPECT_EQ(parse_iso8601_utc("2023-11-14T22:13:20+00:00"), t);
  EXPECT_EQ(parse_iso8601_utc("2023-11-14T22:13:20.5Z"), t + 500ms);
  EXPECT_FALSE(parse_iso8601_utc("2023-11-14T22:13:20").has_value());
  EXPECT_FALSE(parse_iso8601_utc("2023-13-14T22:13:20Z").has_value());
  EXPECT_FALSE(parse_iso8601_utc("yesterday").has_value());
}

TEST(UtilTime, TimeAgoLikePython)
{
  const SystemTime now = std::chrono::system_clock::from_time_t(1'700'000'000);
  auto ago = [&](std::chrono::seconds d) { return format_time_ago(now - d, now); };
  EXPECT_EQ(ago(0s), "a few seconds ago");
  EXPECT_EQ(ago(19s), "a few seconds ago");
  EXPECT_EQ(format_time_ago(now + 1h, now), "a few seconds ago");
  EXPECT_EQ(ago(30s), "30 seconds ago");
  EXPECT_EQ(ago(90s), "2 minutes ago");  // round(1.5) == 2 (half to even)
  EXPECT_EQ(ago(150s), "2 minutes ago"); // round(2.5) == 2
  EXPECT_EQ(ago(1h), "60 minutes ago");  // Python switches units only past the max value
  EXPECT_EQ(ago(24h), "24 hours ago");
  EXPECT_EQ(ago(72h), "3 days ago");
  EXPECT_EQ(ago(24h * 7), "1 week ago");
  EXPECT_EQ(ago(24h * 60), "2 months ago");
  EXPECT_EQ(ago(24h * 400), "1 year ago");
  EXPECT_EQ(ago(24h * 365 * 3), "3 years ago");
}

TEST(UtilTime, ParseDuration)
{
  EXPECT_EQ(parse_duration("30d"), 30 * 24h);
  EXPECT_EQ(parse_duration("12h"), 12h);
  EXPECT_EQ(parse_duration("10m"), 10min);
  EXPECT_EQ(parse_duration("45s"), 45s);
  EXPECT_EQ(parse_duration("2W"), 14 * 24h);
  EXPECT_EQ(parse_duration("1h30m"), 90min);
  EXPECT_EQ(parse_duration(" 0 "), 0s);
  for (const char* bad : {"", "10", "10x", "-5m", "d", "1.5h", "h1", "99999999999999999999d"}) {
    EXPECT_THROW(parse_duration(bad), std::invalid_argument) << bad;
  }
  try {
    parse_duration("10");
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()), "invalid duration '10': missing unit after 10 (s, m, h, d or w)");
  }
}

TEST(UtilTime, FormatDurationAndUnixSeconds)
{
  EXPECT_EQ(format_duration(0s), "0s");
  EXPECT_EQ(format_duration(30 * 24h), "30d");
  EXPECT_EQ(format_duration(90min), "1h30m");
  EXPECT_EQ(format_duration(45s), "45s");
  const SystemTime t = from_unix_seconds(1712656091.5);
  EXPECT_DOUBLE_EQ(to_unix_seconds(t), 1712656091.5);
}

// ---- environment ----

TEST(UtilEnv, TruthyValuesAreHfs)
{
  for (const char* yes : {"1", "ON", "on", "Yes", "TRUE", "true", "tRuE"}) {
    EXPECT_TRUE(is_truthy(yes)) << yes;
  }
  for (const char* no : {"", "0", "false", "no", "off", "y", "2", " 1", "1 ", "enabled"}) {
    EXPECT_FALSE(is_truthy(no)) << no;
  }
}

TEST(UtilEnv, MapEnvAndEnvBool)
{
  MapEnv env({{"A", "1"}, {"EMPTY", ""}});
  EXPECT_EQ(env.get("A"), "1");
  EXPECT_EQ(env.get("EMPTY"), "");
  EXPECT_FALSE(env.get_nonempty("EMPTY").has_value());
  EXPECT_FALSE(env.get("B").has_value());
  EXPECT_TRUE(env_bool(env, "A"));
  EXPECT_FALSE(env_bool(env, "EMPTY", true)); // set but not truthy
  EXPECT_TRUE(env_bool(env, "B", true));      // unset: default
  env.set("B", "no");
  EXPECT_FALSE(env_bool(env, "B", true));
  env.unset("A");
  EXPECT_FALSE(env.get("A").has_value());
}

TEST(UtilEnv, ProcessEnvReadsGetenv)
{
  ::setenv("MODELMGR_TEST_ENV_VAR", "value", 1);
  EXPECT_EQ(Env::process().get("MODELMGR_TEST_ENV_VAR"), "value");
  ::unsetenv("MODELMGR_TEST_ENV_VAR");
  EXPECT_FALSE(Env::process().get("MODELMGR_TEST_ENV_VAR").has_value());
}

TEST(UtilEnv, ExpandUserLikePython)
{
  MapEnv env({{"HOME", "/home/u/"}});
  EXPECT_EQ(expand_user("~", env), "/home/u");
  EXPECT_EQ(expand_user("~/x/y", env), "/home/u/x/y");
  EXPECT_EQ(expand_user("a/~/b", env), "a/~/b");
  EXPECT_EQ(expand_user("/abs", env), "/abs");
  EXPECT_EQ(expand_user("~no-such-user-xyz/x", env), "~no-such-user-xyz/x");
  MapEnv root_home({{"HOME", "/"}});
  EXPECT_EQ(expand_user("~", root_home), "/");
  // "~user" uses the passwd database.
  struct passwd* pw = ::getpwuid(::getuid());
  ASSERT_NE(pw, nullptr);
  EXPECT_EQ(expand_user(std::string("~") + pw->pw_name + "/c", env), std::string(pw->pw_dir) + "/c");
}

TEST(UtilEnv, ExpandVarsLikePython)
{
  MapEnv env({{"HOME", "/home/u"}, {"X_1", "v"}, {"1", "one"}});
  EXPECT_EQ(expand_vars("$HOME/.cache", env), "/home/u/.cache");
  EXPECT_EQ(expand_vars("${HOME}/.cache", env), "/home/u/.cache");
  EXPECT_EQ(expand_vars("a$X_1-b", env), "av-b");
  EXPECT_EQ(expand_vars("$X_1x", env), "$X_1x"); // the name is X_1x, unknown: left as is
  EXPECT_EQ(expand_vars("$UNKNOWN/x", env), "$UNKNOWN/x");
  EXPECT_EQ(expand_vars("${UNKNOWN}/x", env), "${UNKNOWN}/x");
  EXPECT_EQ(expand_vars("cost$", env), "cost$");
  EXPECT_EQ(expand_vars("$/x", env), "$/x");
  EXPECT_EQ(expand_vars("${unclosed", env), "${unclosed");
  EXPECT_EQ(expand_vars("${}", env), "${}");
  EXPECT_EQ(expand_vars("$1", env), "one");
  EXPECT_EQ(expand_path("~/$X_1", env), "/home/u/v");
}
