#include "tools/path_report.h"

#include <arpa/inet.h>

#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "rdma/status_util.h"
#include "tools/demi_tool.h"
#include "tools/version.h"

namespace demi::tools {
namespace {

const char* LinkName(uint32_t link_layer) {
  switch (link_layer) {
    case DEMI_LINK_LAYER_INFINIBAND:
      return "InfiniBand";
    case DEMI_LINK_LAYER_ETHERNET:
      return "Ethernet";
    default:
      return "unspecified";
  }
}

const char* GidTypeName(uint32_t gid_type) {
  switch (gid_type) {
    case DEMI_GID_TYPE_IB:
      return "IB";
    case DEMI_GID_TYPE_ROCE_V1:
      return "RoCEv1";
    case DEMI_GID_TYPE_ROCE_V2:
      return "RoCEv2";
    default:
      return "none";
  }
}

std::string GidString(const uint8_t (&gid)[16]) {
  char text[INET6_ADDRSTRLEN] = {};
  inet_ntop(AF_INET6, gid, text, sizeof(text));
  return text;
}

std::string LocalString(const sockaddr_in& local) {
  char text[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &local.sin_addr, text, sizeof(text));
  return text;
}

// Device names come from the kernel (letters, digits, '_'), yet a JSON
// string must stay one whatever they hold.
std::string JsonString(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char escaped[8];
      std::snprintf(escaped, sizeof(escaped), "\\u%04x", c);
      out += escaped;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

}  // namespace

absl::StatusOr<PathReport> QueryPath(int qd) {
  PathReport report;
  socklen_t len = sizeof(report.path);
  if (int err = demi_getsockopt(qd, SOL_SOCKET, DEMI_SO_RDMA_PATH, &report.path,
                                &len);
      err != 0) {
    return rdma::ErrnoError(err, "demi_getsockopt(DEMI_SO_RDMA_PATH)");
  }
  sockaddr_in peer = {};
  len = sizeof(peer);
  if (demi_getpeername(qd, reinterpret_cast<sockaddr*>(&peer), &len) == 0) {
    report.peer = AddrString(peer);
  }
  return report;
}

std::string PathText(const PathReport& report) {
  const demi_rdma_path_t& p = report.path;
  std::string text =
      absl::StrCat("device ", p.device, " port ", p.port_num, " link ",
                   LinkName(p.link_layer), " active_mtu ", p.active_mtu,
                   " path_mtu ", p.path_mtu, " gid_index ", p.gid_index,
                   " gid_type ", GidTypeName(p.gid_type), " gid ",
                   GidString(p.gid), " local ", LocalString(p.local));
  if (!report.peer.empty()) absl::StrAppend(&text, " peer ", report.peer);
  return text;
}

std::string PathLine(const PathReport& report) {
  return absl::StrCat("# path: ", PathText(report), " library ",
                      kDemiRdmaVersion);
}

std::string PathJson(const PathReport& report) {
  const demi_rdma_path_t& p = report.path;
  std::string json = absl::StrCat(
      "{\"device\":", JsonString(p.device), ",\"port\":", p.port_num,
      ",\"link_layer\":\"", LinkName(p.link_layer),
      "\",\"active_mtu\":", p.active_mtu, ",\"path_mtu\":", p.path_mtu,
      ",\"gid_index\":", p.gid_index, ",\"gid_type\":\"",
      GidTypeName(p.gid_type), "\",\"gid\":\"", GidString(p.gid),
      "\",\"local\":\"", LocalString(p.local), "\"");
  if (!report.peer.empty())
    absl::StrAppend(&json, ",\"peer\":\"", report.peer, "\"");
  return json + "}";
}

std::string JsonHead(const char* schema) {
  return absl::StrCat("\"schema\":", JsonString(schema),
                      ",\"version\":", JsonString(kDemiRdmaVersion));
}

bool SamePath(const PathReport& a, const PathReport& b) {
  demi_rdma_path_t x = a.path, y = b.path;
  x.local.sin_port = y.local.sin_port = 0;
  return std::memcmp(&x, &y, sizeof(x)) == 0 && a.peer == b.peer;
}

std::vector<PathReport> DistinctPaths(const std::vector<PathReport>& reports) {
  std::vector<PathReport> distinct;
  for (const PathReport& report : reports) {
    bool seen = false;
    for (const PathReport& d : distinct) seen = seen || SamePath(d, report);
    if (!seen) distinct.push_back(report);
  }
  return distinct;
}

std::string PathLines(const std::vector<PathReport>& paths,
                      const std::string& error) {
  std::vector<PathReport> distinct = DistinctPaths(paths);
  if (distinct.empty()) {
    return absl::StrCat("# path: unavailable: ", error, " library ",
                        kDemiRdmaVersion);
  }
  std::vector<std::string> lines;
  for (const PathReport& report : distinct) lines.push_back(PathLine(report));
  return absl::StrJoin(lines, "\n");
}

std::string PathJsonKeys(const std::vector<PathReport>& paths) {
  std::vector<PathReport> distinct = DistinctPaths(paths);
  if (distinct.empty()) return ",\"path\":null";
  std::string keys = absl::StrCat(",\"path\":", PathJson(distinct[0]));
  if (distinct.size() > 1) {
    std::vector<std::string> all;
    for (const PathReport& report : distinct) all.push_back(PathJson(report));
    absl::StrAppend(&keys, ",\"paths\":[", absl::StrJoin(all, ","), "]");
  }
  return keys;
}

void PrintServerPath(int qd, const char* tool, const char* schema, bool json) {
  absl::StatusOr<PathReport> report = QueryPath(qd);
  if (!report.ok()) {
    std::fprintf(stderr, "%s: no path for qd %d: %s\n", tool, qd,
                 report.status().ToString().c_str());
    return;
  }
  if (json) {
    std::printf("{%s,\"role\":\"server\",\"tool\":\"%s\",\"path\":%s}\n",
                JsonHead(schema).c_str(), tool, PathJson(*report).c_str());
  } else {
    std::printf("%s\n", PathLine(*report).c_str());
  }
  // A server runs until killed or --exit_after: a reader of its output
  // must see each connection's path when it comes.
  std::fflush(stdout);
}

}  // namespace demi::tools
