// The forms scripts and people read: the "# path:" line and the JSON
// "path" object of docs/probe-json.md, from a path made up here (no
// device needed).
#include "tools/path_report.h"

#include <arpa/inet.h>

#include <cstring>
#include <string>

#include "gtest/gtest.h"
#include "tools/version.h"

namespace demi::tools {
namespace {

PathReport RoceV2Path() {
  PathReport report;
  demi_rdma_path_t& p = report.path;
  std::strcpy(p.device, "rxe0");
  p.port_num = 1;
  p.link_layer = DEMI_LINK_LAYER_ETHERNET;
  p.active_mtu = 1024;
  p.path_mtu = 1024;
  p.gid_index = 1;
  p.gid_type = DEMI_GID_TYPE_ROCE_V2;
  p.gid[10] = p.gid[11] = 0xff;
  p.gid[12] = 192, p.gid[13] = 0, p.gid[14] = 2, p.gid[15] = 1;
  p.local.sin_family = AF_INET;
  inet_pton(AF_INET, "192.0.2.1", &p.local.sin_addr);
  p.local.sin_port = htons(40000);
  report.peer = "192.0.2.2:14000";
  return report;
}

TEST(PathReportTest, LineNamesEveryFieldAndTheLibrary) {
  EXPECT_EQ(PathLine(RoceV2Path()),
            std::string("# path: device rxe0 port 1 link Ethernet active_mtu "
                        "1024 path_mtu 1024 gid_index 1 gid_type RoCEv2 gid "
                        "::ffff:192.0.2.1 local 192.0.2.1 peer 192.0.2.2:14000 "
                        "library ") +
                kDemiRdmaVersion);
}

TEST(PathReportTest, JsonHasTheDocumentedKeys) {
  EXPECT_EQ(PathJson(RoceV2Path()),
            "{\"device\":\"rxe0\",\"port\":1,\"link_layer\":\"Ethernet\","
            "\"active_mtu\":1024,\"path_mtu\":1024,\"gid_index\":1,"
            "\"gid_type\":\"RoCEv2\",\"gid\":\"::ffff:192.0.2.1\","
            "\"local\":\"192.0.2.1\",\"peer\":\"192.0.2.2:14000\"}");
  EXPECT_EQ(JsonHead(kLatencyProbeSchema),
            std::string("\"schema\":\"demi-latency-probe/1\",\"version\":\"") +
                kDemiRdmaVersion + "\"");
}

TEST(PathReportTest, DatagramSocketWithoutPeerHasNoGidIndex) {
  PathReport report = RoceV2Path();
  report.path.gid_index = -1;
  report.path.gid_type = DEMI_GID_TYPE_UNKNOWN;
  report.peer.clear();
  std::string json = PathJson(report);
  EXPECT_NE(json.find("\"gid_index\":-1,\"gid_type\":\"none\""),
            std::string::npos);
  EXPECT_EQ(json.find("peer"), std::string::npos);
  EXPECT_EQ(PathText(report).find("peer"), std::string::npos);
}

TEST(PathReportTest, DeviceNamesStayValidJson) {
  PathReport report = RoceV2Path();
  std::strcpy(report.path.device, "a\"b\\c\n");
  EXPECT_NE(PathJson(report).find("\"device\":\"a\\\"b\\\\c\\u000a\""),
            std::string::npos);
}

TEST(PathReportTest, ConnectionsDifferingOnlyInLocalPortShareAPath) {
  PathReport a = RoceV2Path(), b = RoceV2Path(), c = RoceV2Path();
  b.path.local.sin_port = htons(40001);
  c.path.gid_index = 3;
  EXPECT_TRUE(SamePath(a, b));
  EXPECT_FALSE(SamePath(a, c));
  EXPECT_EQ(DistinctPaths({a, b, c, b}).size(), 2u);
  EXPECT_EQ(PathJsonKeys({a, b}), ",\"path\":" + PathJson(a));
  EXPECT_EQ(PathJsonKeys({a, c}), ",\"path\":" + PathJson(a) + ",\"paths\":[" +
                                      PathJson(a) + "," + PathJson(c) + "]");
  EXPECT_EQ(PathLines({a, b}, ""), PathLine(a));
  EXPECT_EQ(PathLines({a, c}, ""), PathLine(a) + "\n" + PathLine(c));
}

TEST(PathReportTest, NoPathIsSaidSo) {
  EXPECT_EQ(PathJsonKeys({}), ",\"path\":null");
  EXPECT_EQ(PathLines({}, "no device"),
            std::string("# path: unavailable: no device library ") +
                kDemiRdmaVersion);
}

}  // namespace
}  // namespace demi::tools
