// Every tunable of the library in one place: queue depths, buffer sizes,
// intervals and bounds. Protocol constants (magic numbers, versions, UDP's
// datagram limit) stay with their wire formats.
#ifndef DEMI_DEMI_LIMITS_H_
#define DEMI_DEMI_LIMITS_H_

#include <cstddef>
#include <cstdint>

#include "absl/time/time.h"

namespace demi {

// --- Registered memory (SgaPool) ---

// Pieces are powers of two from 64 B to 16 MiB.
inline constexpr int kMinClassShift = 6;
inline constexpr int kMaxClassShift = 24;
// Slabs of small classes hold many pieces; a large piece is its own slab.
inline constexpr size_t kSlabSize = size_t{2} << 20;
// Registered memory the pool may hold (DEMI_POOL_LIMIT_MB overrides).
inline constexpr size_t kDefaultPoolLimit = size_t{2} << 30;
// Idle slabs the process keeps registered for any thread's pool to take
// (SgaPool's depot); beyond this the oldest are deregistered and unmapped.
// 32 MiB holds what one thread's burst of 1,000 connections registers for
// receive buffers (24 MiB), so that the next burst, on any thread, registers
// nothing; yet after a burst of any size the process keeps at most this
// (1.6% of the default limit) beyond each pool's one spare slab per class.
inline constexpr size_t kDepotBytes = size_t{32} << 20;
// A depot slab no pool has taken for this long is deregistered and
// unmapped: after a burst the memory goes back to what the pools use.
inline constexpr absl::Duration kDepotIdleTime = absl::Seconds(10);
// The largest message: one pool piece.
inline constexpr uint32_t kMaxMessageSize = uint32_t{1} << kMaxClassShift;
static_assert(kMaxMessageSize >= 8 * 1024 * 1024,
              "messages of at least 8 MiB must fit one piece");

// --- Connections (RC queue pairs) ---

// Size of one receive buffer: the largest eager message, header included.
// A device's first kFullBufferConnections connections (per thread) receive
// into buffers of this size.
inline constexpr uint32_t kEagerBufferSize = 8192;
// Connections beyond those take their messages from shared receive queues
// of buffers this small: an idle one costs its 3 base credits' 3 KiB, not
// 24 KiB, so that 10,000 connections fit 64 MiB of registered memory
// (1,024 x 24 KiB + 8,976 x 3 KiB = 50 MiB). Their peers send anything
// larger than this (header included) by rendezvous: one round trip more
// for messages of 1 to 8 KiB, none for the small messages of a server
// with that many clients. Large enough for a rendezvous announcement.
inline constexpr uint32_t kSmallBufferSize = 1024;
// Connections per device that get kEagerBufferSize buffers
// (DEMI_FULL_BUFFER_CONNECTIONS overrides): 24 MiB of base buffers.
inline constexpr uint32_t kFullBufferConnections = 1024;
// Send work requests in flight per connection (data, control and READs).
// rxe builds and maps each QP's send queue in the kernel at connect time,
// of (requests + 1) rounded up to a power of two slots of 512 B (ours: a
// 208 B header and 17 SGEs): 63 requests take 64 slots, where 128 took
// 256: sequential connects 1.17-1.30x faster (0.95-1.00x of rdma_cm by
// hand), 4,096 connections in a third of the memory
// (docs/benchmarks_by_hand.md, stop 39); the 64 B rate on rxe unchanged. At
// least 2 x kMaxRndvSegments (connection.h).
inline constexpr uint32_t kSendDepth = 63;
// The slots of a send ring that holds `depth` requests (SendQueue, a
// connection's header ring): the power of two at or above it, so that a
// slot's index is a mask of its request's sequence number.
constexpr uint32_t SendRingSize(uint32_t depth) {
  uint32_t size = 1;
  while (size < depth) size *= 2;
  return size;
}
// At most this many send work requests in a row go unsignalled; the next
// completion retires them all (RC completes in order).
inline constexpr uint32_t kSignalInterval = SendRingSize(kSendDepth) / 4;
static_assert(kSignalInterval <= kSendDepth, "a full queue holds a signal");
// Inline sends up to this size (a connection's header included; a
// datagram's payload, its header apart) that follow another send of theirs
// in the same progress pass are staged, and up to kDoorbellBatch of them
// go to the device in one post: one doorbell (on soft-RoCE, one system
// call) for a burst of small pushes.
inline constexpr uint32_t kStagedInlineSize = 128;
inline constexpr uint32_t kDoorbellBatch = 16;
// Finished pushes kept for reuse by the next ones, shared by all
// connections (~500 bytes each): a push that is neither inline nor a
// rendezvous allocates nothing once this many are in circulation.
inline constexpr uint32_t kSparePushOps = 64;
// Foreign (unregistered) segments up to this size are copied; larger ones
// are registered for the one push. Another thread's pool pieces are copied
// whatever their size (push_builder.cc).
inline constexpr uint32_t kMaxForeignCopy = 64 * 1024;
// RDMA READs each side may have in flight against the other.
inline constexpr uint8_t kReadDepth = 16;
// Rendezvous messages read before the application pops them: at most this
// many messages past the waiting pops, of at most kReadAheadBytes in all
// (and only while the pool has room to spare), so that a stream of them
// from one pop at a time is not a READ round trip per message.
inline constexpr uint32_t kReadAheadMessages = 4;
inline constexpr size_t kReadAheadBytes = size_t{4} << 20;
// A rendezvous is read in pieces of at most this many bytes: after a lost
// packet, the retry replays the rest of one piece, not of the message (10
// pushes of 4 MiB between two VMs whose links lose 0.1% of packets: 8.3,
// 8.9 and 11.3 s in pieces, 15.8 and 20.6 s whole).
inline constexpr uint32_t kReadPiece = 256 * 1024;

// --- Flow control (credits over the shared receive queue) ---

// Credits every connection starts with. Data keeps one in reserve for
// control messages (see Connection::TrySendPush), and a CREDIT message
// goes only with at least two credits in it, so that two peers never trade
// single credits back and forth; with three, a sender that cannot send
// data (one credit or none) has at least two with its receiver, owed as
// soon as the application pops. A peer left with none at all gets a single
// one back (Connection::CreditReturnDue).
inline constexpr uint32_t kBaseCredits = 3;
// The fewest credits a CREDIT message returns (it costs one itself).
inline constexpr uint32_t kMinCreditReturn = 2;
static_assert(kBaseCredits > kMinCreditReturn, "see kBaseCredits");
// The most credits one connection's peer may hold: as many messages in
// flight as the send queue holds, so that a stream over a long round trip
// is not held back by its credits first (of 8 KiB messages, 504 KiB in
// flight: beyond a 100 Gb/s link's bandwidth-delay product).
inline constexpr uint32_t kMaxConnCredits = kSendDepth;
static_assert(kMaxConnCredits <= kSendDepth, "more would wait for the QP");
// Buffers one SRQ may hold: its connections' base credits plus the growth
// budget must fit, and so must their completions in its CQ. A device's
// connections beyond what one SRQ holds (or beyond kFullBufferConnections)
// go to another SRQ with its own CQ.
inline constexpr uint32_t kSrqCapacity = 16384;
// Credits the connections of one SRQ may hold beyond their base, all
// together (16 MiB of 8 KiB buffers).
inline constexpr uint32_t kGrowthCredits = 2048;
// Buffers the SRQ holds beyond all allotments (256 KiB per device), and
// the fewest it is refilled with at a time while the allotments are backed:
// a message costs no post of its own.
inline constexpr uint32_t kSpareReceives = 32;
inline constexpr uint32_t kRefillBatch = 16;
static_assert(kRefillBatch <= kSpareReceives, "allotments stay backed");
// Receives posted by one ibv_post_srq_recv at most (a chain on the stack).
inline constexpr uint32_t kRefillChain = 64;

// --- Progress engine ---

// Entries of each send completion queue; every connection reserves room
// for all its send work requests in one, so none can overflow.
inline constexpr int kCqDepth = 32768;
// A send CQ beyond a thread's first that no QP has used for this long is
// destroyed (CqPool): after a burst the process gives its queues back.
inline constexpr absl::Duration kIdleCqTime = absl::Seconds(10);
// Work completions taken per poll.
inline constexpr int kPollBatch = 32;
// Progress passes between looks at the rdma_cm channel while connections
// are set up or torn down: each look is a system call, which would
// otherwise dominate a pass. After kCmQuietLooks looks in a row that found
// nothing, each further one doubles the interval, up to
// kCmIdlePollInterval (an established data path; a peer's disconnect, or
// its resolve of a bound datagram socket, is still seen within it); an
// event, a close still draining, or a call that starts setup, teardown or
// a datagram route resets it.
inline constexpr uint32_t kCmPollInterval = 64;
inline constexpr uint32_t kCmQuietLooks = 16;
inline constexpr uint32_t kCmIdlePollInterval = 1024;
// Progress passes between polls of a device's send CQs while no signalled
// send is in flight there (unsignalled ones complete only on failure).
inline constexpr uint32_t kIdleSendPollInterval = 16;
// How long a wait spins (polls) before it sleeps on the completion
// channels (DEMI_SPIN_US overrides; -1 spins forever). Longer than a round
// trip on soft-RoCE under emulation, so that a ping-pong never sleeps.
inline constexpr absl::Duration kDefaultSpin = absl::Microseconds(100);
// While a wait sleeps, the timers (closes draining, datagram reassembly and
// routes, refills waiting for memory) run at least this often.
inline constexpr absl::Duration kSleepTimerInterval = absl::Milliseconds(50);
// How often a side with no credit to spare returns its last one to a peer
// stranded without any (Connection::ReturnLastCredit): were two peers to
// answer each other's single credit that way, a message each per interval.
inline constexpr absl::Duration kStrandedCreditInterval =
    absl::Milliseconds(100);

// Once this many connections have gone since the most the libOS held, the
// heap's free memory goes back to the system (malloc_trim): a burst of
// connections leaves ~50 KiB of heap each in the allocator otherwise.
inline constexpr size_t kTrimAfterConnectionsGone = 128;

// --- Failures and closes ---

// How long a closed connection goes on delivering what was pushed before
// demi_close (SO_LINGER with l_onoff sets another time; l_linger 0 resets
// the connection at once). Past it, what is left fails with ETIMEDOUT.
inline constexpr absl::Duration kDefaultLinger = absl::Seconds(30);
// A connection waiting on a silent peer probes it after this long
// (DEMI_KEEPALIVE_MS overrides; 0 turns probing off). A vanished peer is
// then noticed within about this plus the transport's retries (7 x 268 ms).
inline constexpr absl::Duration kDefaultKeepalive = absl::Seconds(3);
// Keepalive ticks per interval: how finely idleness is measured.
inline constexpr uint32_t kKeepaliveTicks = 4;
// A probe not completed this many intervals after it was posted, and at
// least kMinStallWait, fails its connection (ETIMEDOUT): the send queue
// stopped without an error (seen on rxe under loss). kMinStallWait is
// about twice the transport's own give-up time (rdma/cm_connection.h), so
// that a short DEMI_KEEPALIVE_MS does not cut its retries short.
inline constexpr uint32_t kStallProbeIntervals = 2;
inline constexpr absl::Duration kMinStallWait = absl::Seconds(4);

// --- Datagram sockets (UD queue pairs) ---

// Send work requests in flight per socket (one per fragment).
inline constexpr uint32_t kDatagramSendDepth = 256;
// At most this many sends in a row go unsignalled, plus a stage of
// kDoorbellBatch posted ahead of the next one.
inline constexpr uint32_t kDatagramSignalInterval = kDatagramSendDepth / 4;
// Unsignalled sends are retired by a later signalled one: a socket that
// sent nothing for this long posts one (a mark) behind them.
inline constexpr absl::Duration kDatagramMarkAfter = absl::Milliseconds(100);
// A UD send completes once the device has sent it, lost or not: one that
// has not within this long never will (the device or its CQ is broken),
// and the socket's pushes fail with ETIMEDOUT.
inline constexpr absl::Duration kDatagramSendTimeout = absl::Seconds(10);
// Receive buffers posted per socket: a burst this long can arrive before
// the application pops.
inline constexpr uint32_t kDatagramRecvDepth = 1024;
// Receive buffers are posted again once this many are empty (the timers
// post any fewer): chained posts for many, not one post per datagram.
inline constexpr uint32_t kDatagramRefillBatch = 16;
// Datagrams received and not yet popped; beyond it arrivals are dropped.
inline constexpr uint32_t kMaxQueuedDatagrams = 4096;
// Destinations with a cached route per socket.
inline constexpr size_t kMaxRoutes = 1024;
// How long rdma_cm may take to resolve an address or a route.
inline constexpr int kResolveTimeoutMs = 2000;
// A destination where no socket is bound is asked again, backing off from
// the first to the last delay, for this long before its pushes fail with
// ECONNREFUSED: two programs started together (a client pushing at once,
// a server still binding) must not fail on who was first, as UDP's
// wouldn't.
inline constexpr absl::Duration kRefusedGrace = absl::Seconds(3);
inline constexpr absl::Duration kRefusedFirstRetry = absl::Milliseconds(20);
inline constexpr absl::Duration kRefusedLastRetry = absl::Milliseconds(400);
// Reassembly, per socket: partial datagrams at once, their buffers in
// all, and how long one may wait for its fragments (from the first).
inline constexpr uint32_t kReassemblyEntries = 64;
inline constexpr size_t kReassemblyBytes = size_t{4} << 20;
inline constexpr absl::Duration kReassemblyTimeout = absl::Seconds(1);

}  // namespace demi

#endif  // DEMI_DEMI_LIMITS_H_
