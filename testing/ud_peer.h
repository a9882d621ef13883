// A raw UD sender built from verbs and rdma_cm, for tests that break the
// datagram protocol on purpose: it resolves a datagram socket as the
// library does (SIDR in the UDP port space) and then sends whatever bytes
// a test gives it, headers included.
#ifndef DEMI_TESTING_UD_PEER_H_
#define DEMI_TESTING_UD_PEER_H_

#include <netinet/in.h>

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "absl/types/span.h"
#include "rdma/verbs_ptr.h"

namespace demi::testing {

// Declared parents first: the QP goes before the MR, CQ and AH, those
// before the PD, the PD before the id.
struct UdPeer {
  rdma::EventChannelPtr channel;
  rdma::CmIdPtr id;
  rdma::PdPtr pd;
  rdma::CqPtr cq;
  rdma::AhPtr ah;
  std::vector<std::byte> buffer;  // What SendUd sends from.
  rdma::MrPtr mr;
  // ListenUd: kUdPeerReceives slots of kUdPeerBufferSize, each posted as a
  // receive (wr_id: its index), so that back-to-back messages (a
  // datagram's fragments) are all taken.
  std::vector<std::byte> receive_buffer;
  rdma::MrPtr receive_mr;
  rdma::CmQpPtr qp;
  uint32_t remote_qpn = 0;
  uint32_t remote_qkey = 0;
  sockaddr_in local = {};  // Where it sends from (its port is its own).
  // ResolveUd: the private data of the socket's SIDR reply (padded by the
  // transport). ListenUd: what its own replies carry.
  std::string reply_data;
};

inline constexpr size_t kUdPeerBufferSize = 8192;
inline constexpr size_t kUdPeerReceives = 16;

// Resolves the datagram socket bound at `dest` from `local` (port 0).
absl::StatusOr<std::unique_ptr<UdPeer>> ResolveUd(const sockaddr_in& local,
                                                  const sockaddr_in& dest,
                                                  absl::Duration timeout);

// A raw UD socket bound at `local` (its port) that peers resolve as they
// would a library socket: AnswerUd answers each resolve with its QP and
// `reply_data` as private data (kCompactCapability for a socket that takes
// compact datagrams, nothing for one of an older library).
absl::StatusOr<std::unique_ptr<UdPeer>> ListenUd(const sockaddr_in& local,
                                                 std::string reply_data);
// Answers the next resolve of a ListenUd peer, waiting up to `timeout`.
absl::Status AnswerUd(UdPeer& peer, absl::Duration timeout);
// The next message a ListenUd peer receives within `timeout`: its
// completion, and its bytes (after the GRH) in `bytes`.
absl::StatusOr<ibv_wc> ReceiveUd(UdPeer& peer, absl::Duration timeout,
                                 std::vector<std::byte>* bytes);

// Sends `bytes` (at most kUdPeerBufferSize) as one UD message, with
// immediate data `imm` (host order) if given, and waits for its
// completion.
absl::Status SendUd(UdPeer& peer, absl::Span<const std::byte> bytes,
                    absl::optional<uint32_t> imm = absl::nullopt);

}  // namespace demi::testing

#endif  // DEMI_TESTING_UD_PEER_H_
