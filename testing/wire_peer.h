// A raw-verbs client of the libOS that speaks its wire protocol, or breaks
// it on purpose: for tests of what the library does with a hostile peer.
// Built on RcPeer; blocking and single-threaded (run it beside the libOS on
// another thread or in another process).
#ifndef DEMI_TESTING_WIRE_PEER_H_
#define DEMI_TESTING_WIRE_PEER_H_

#include <netinet/in.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "demi/wire.h"
#include "testing/rc_peer.h"

namespace demi::testing {

// Connects to the libOS listening at `server`, announcing `credits` as
// both its initial and its most credits (RcPeer posts one receive of its
// whole buffer, whatever it announces).
absl::StatusOr<std::unique_ptr<RcPeer>> ConnectAsDemi(const sockaddr_in& server,
                                                      uint16_t credits,
                                                      absl::Duration timeout);

// The same without the RTU (see ConnectRcWithoutRtu).
absl::StatusOr<std::unique_ptr<RcPeer>> ConnectAsDemiWithoutRtu(
    const sockaddr_in& server, uint16_t credits, absl::Duration timeout);

// Sends `header` followed by `body` (at most half of kRcPeerBufferSize) and
// waits for that send's completion; messages received meanwhile are kept
// for ReceiveWire. An error if the send fails (with the completion's errno)
// or never completes.
absl::Status SendWire(RcPeer& peer, const WireHeader& header,
                      const std::string& body, absl::Duration timeout);

// Sends `bytes` as they are, with immediate data `imm` (host order) if
// given, as SendWire does.
absl::Status SendBytes(RcPeer& peer, const std::string& bytes,
                       std::optional<uint32_t> imm, absl::Duration timeout);

// An EAGER message of `payload` returning `credits`.
absl::Status SendEager(RcPeer& peer, const std::string& payload,
                       uint16_t credits, absl::Duration timeout);

// A rendezvous announcement (RNDV) under `cookie` of `length` bytes at
// (`addr`, `rkey`), sent as SendWire does.
absl::Status SendRndv(RcPeer& peer, uint64_t addr, uint32_t rkey,
                      uint32_t length, uint64_t cookie, absl::Duration timeout);

// The next message received (kept earlier, or waited for), parsed; the
// receive is posted again at once.
absl::StatusOr<ParsedMessage> ReceiveWire(RcPeer& peer, absl::Duration timeout);

// RDMA READs `length` bytes from (`addr`, `rkey`) into the upper half of
// the buffer (kRcPeerBufferSize / 2) and waits for it, keeping messages
// received meanwhile; the completion's errno on failure.
absl::Status ReadRemote(RcPeer& peer, uint64_t addr, uint32_t rkey,
                        uint32_t length, absl::Duration timeout);

// Waits for rdma_cm to report the connection's end (DISCONNECTED).
absl::Status WaitDisconnected(RcPeer& peer, absl::Duration timeout);

}  // namespace demi::testing

#endif  // DEMI_TESTING_WIRE_PEER_H_
