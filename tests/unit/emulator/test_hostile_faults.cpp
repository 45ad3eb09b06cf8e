// emulator: the hostile-server faults' JSON form (the admin API of out-of-process emulators).

#include "emulator/hub_emulator.hpp"

#include <gtest/gtest.h>

namespace modelmgr::emulator {
namespace {

TEST(HostileFaults, JsonDefaultsAndRoundTrip)
{
  auto r = fault_from_json(R"({"kind":"redirect","route":"head","location":"file:///etc/passwd"})");
  EXPECT_EQ(r.kind, FaultSpec::Kind::redirect);
  EXPECT_EQ(r.status, 302);
  EXPECT_EQ(r.location, "file:///etc/passwd");
  auto b = fault_from_json(R"({"kind":"body","route":"api","body":"[{\"size\":-1}]"})");
  EXPECT_EQ(b.status, 200);
  EXPECT_EQ(b.body, R"([{"size":-1}])");
  auto s = fault_from_json(R"({"kind":"status","message":"busy \u001b[2J"})");
  EXPECT_EQ(s.status, 503);
  EXPECT_EQ(s.message, "busy \x1b[2J");
  EXPECT_EQ(fault_from_json(R"({"kind":"endless_body"})").kind, FaultSpec::Kind::endless_body);
  EXPECT_EQ(fault_from_json(R"({"kind":"link_loop"})").kind, FaultSpec::Kind::link_loop);
  auto again = fault_from_json(fault_to_json(r));
  EXPECT_EQ(again.location, r.location);
  EXPECT_EQ(to_string(again.kind), "redirect");
  EXPECT_THROW(fault_from_json(R"({"kind":"redirect"})"), std::invalid_argument);
}

} // namespace
} // namespace modelmgr::emulator
