// What the tools say about the path they measured: the device, port, link
// layer, MTUs, GID and addresses of a queue (DEMI_SO_RDMA_PATH), printed
// before the results so that two runs can be compared. The table form is
// one "# path: ..." line; the JSON form is a "path" object beside a schema
// version (docs/probe-json.md, which every change here must follow).
#ifndef DEMI_TOOLS_PATH_REPORT_H_
#define DEMI_TOOLS_PATH_REPORT_H_

#include <demi/libos.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace demi::tools {

// The schemas of the tools' JSON output. The number after the slash goes
// up when a key changes its meaning, unit or type, or goes away; never for
// a new key.
inline constexpr char kLatencyProbeSchema[] = "demi-latency-probe/1";
inline constexpr char kThroughputSchema[] = "demi-throughput/1";

struct PathReport {
  demi_rdma_path_t path = {};
  // The other end, "ADDR:PORT"; empty for a datagram socket without a
  // destination (a server's).
  std::string peer;
};

// The path of `qd` (a connection, or a bound datagram socket) and its peer.
absl::StatusOr<PathReport> QueryPath(int qd);

// "device rxe0 port 1 link Ethernet active_mtu 1024 path_mtu 1024
// gid_index 1 gid_type RoCEv2 gid ::ffff:192.0.2.1 local 192.0.2.1
// peer 192.0.2.1:14000" (one line): name-value pairs, no value with a
// space, so that awk '$2' style parsing works.
std::string PathText(const PathReport& report);
// The table form's line: "# path: " PathText " library VERSION".
std::string PathLine(const PathReport& report);
// The JSON object of docs/probe-json.md: {"device":"rxe0","port":1,...}.
std::string PathJson(const PathReport& report);
// The keys every JSON object of a tool starts with, without braces:
// "schema":"<schema>","version":"<library version>".
std::string JsonHead(const char* schema);

// Whether two queues took the same path: everything but the local port.
bool SamePath(const PathReport& a, const PathReport& b);
// The first of each set of same paths in `reports`, in order.
std::vector<PathReport> DistinctPaths(const std::vector<PathReport>& reports);

// What a client prints before its results, given its queues' paths (all
// of them, or of thread 0's if the others never differ): a PathLine per
// distinct path, or "# path: unavailable: WHY" if none could be read.
std::string PathLines(const std::vector<PathReport>& paths,
                      const std::string& error);
// The JSON keys the same client adds (with a leading comma): "path" (the
// first path; null if none could be read) and, only if its queues took
// more than one, "paths" (each distinct one).
std::string PathJsonKeys(const std::vector<PathReport>& paths);

// A server's report of `qd` (a connection it accepted, or its datagram
// socket) on stdout, one line: PathLine, or with `json` an object with the
// JsonHead of `schema`, "role":"server", "tool":`tool` and "path". A path
// that cannot be read is a warning on stderr: the service goes on.
void PrintServerPath(int qd, const char* tool, const char* schema, bool json);

}  // namespace demi::tools

#endif  // DEMI_TOOLS_PATH_REPORT_H_
