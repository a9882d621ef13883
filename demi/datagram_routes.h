// Where datagrams go: a bounded cache from IPv4 address and port to the
// address handle, QP number and qkey of the peer's UD QP. A destination not
// in it is resolved with rdma_cm in the UDP port space (address, route,
// then SIDR, which the peer's bound socket answers); the sends to it wait
// meanwhile. When the cache is full the least recently used destination
// with no send in flight makes room.
#ifndef DEMI_DEMI_DATAGRAM_ROUTES_H_
#define DEMI_DEMI_DATAGRAM_ROUTES_H_

#include <netinet/in.h>
#include <rdma/rdma_cma.h>

#include <cstdint>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "demi/limits.h"
#include "rdma/cm_event.h"
#include "rdma/verbs_ptr.h"

namespace demi {

// An IPv4 address and port as one number (both in network byte order).
inline uint64_t RouteKey(uint32_t addr, uint16_t port) {
  return (uint64_t{addr} << 16) | port;
}
inline uint64_t RouteKey(const sockaddr_in& addr) {
  return RouteKey(addr.sin_addr.s_addr, addr.sin_port);
}

struct Route {
  ibv_ah* ah = nullptr;
  uint32_t qpn = 0;
  uint32_t qkey = 0;
  // The destination takes compact datagrams (datagram_wire.h).
  bool compact = false;
  // The largest UD message the destination said it receives (SaysMtu); 0
  // if it said none.
  uint32_t mtu = 0;
};

// Not thread-safe.
class DatagramRoutes {
 public:
  // Resolver ids go on `channel` (borrowed) with `context`; address handles
  // are made in `pd`. `local` is the socket's address (its device).
  DatagramRoutes(rdma_event_channel* channel, void* context, ibv_pd* pd,
                 const sockaddr_in& local, size_t capacity);
  DatagramRoutes(const DatagramRoutes&) = delete;
  DatagramRoutes& operator=(const DatagramRoutes&) = delete;

  // The route to `dest` if it is known (Known). Otherwise starts resolving
  // it (once) and returns null: OnCmEvent reports the outcome later; null
  // too while it waits to be resolved again (Seen). EAGAIN if the
  // cache is full of destinations in use, or the error that stopped the
  // resolution from starting.
  absl::StatusOr<const Route*> Find(const sockaddr_in& dest);
  // The route to `dest` if it is known and resolved; null otherwise, and
  // nothing started. Null too while the destination waits to be resolved
  // again (Seen): its sends drain, and new ones wait for the new route.
  // Inline, as Hold, Release and Lookup's remembered entry: every datagram
  // sent inline takes all three.
  const Route* Known(const sockaddr_in& dest) {
    Entry* known = Lookup(RouteKey(dest));
    if (known == nullptr || !known->Usable()) return nullptr;
    known->last_used = ++clock_;
    return &known->route;
  }
  // A send to `key` is posted / has completed: the route stays meanwhile.
  void Hold(uint64_t key) {
    if (Entry* entry = Lookup(key)) ++entry->in_flight;
  }
  // The route of `key` while a send holds it; null otherwise.
  const Route* Held(uint64_t key) {
    Entry* entry = Lookup(key);
    return entry != nullptr && entry->in_flight > 0 && entry->ah != nullptr
               ? &entry->route
               : nullptr;
  }
  void Release(uint64_t key) {
    Entry* entry = Lookup(key);
    if (entry != nullptr && entry->in_flight > 0) --entry->in_flight;
  }
  // A datagram that claims to come from `from` arrived through QP `qpn`:
  // whether that QP may speak for `from`. Yes if the cache holds no route
  // there (nothing to check against) or one to that very QP: the port
  // space lets only the socket bound at `from` answer its resolution.
  // Another QP is a forgery or the peer's socket made anew: its datagram is
  // dropped, and `from` is resolved again: at once, or if sends to `from`
  // are in flight (their requests name its address handle), as soon as
  // they have all completed (ResolveDrained). What it resolves to then
  // decides; meanwhile only the QP known before speaks for it.
  // Inline for the usual answer: the datagram came from its route's QP.
  bool Seen(const sockaddr_in& from, uint32_t qpn) {
    Entry* entry = Lookup(RouteKey(from));
    if (entry != nullptr && entry->ah != nullptr && entry->route.qpn == qpn) {
      return true;
    }
    return SeenOther(from, qpn, entry);
  }
  // Whether a destination waits for its sends to complete to be resolved
  // again (Seen).
  bool waiting_to_resolve() const { return !drain_waiters_.empty(); }
  // Resolves again those of them whose sends have all completed.
  void ResolveDrained();

  struct Outcome {
    uint64_t key = 0;
    int error = 0;  // 0: resolved.
  };
  // Handles an rdma_cm event of one of this cache's resolver ids; nullopt if
  // the event is not about one. A destination nobody answers at is asked
  // again (PollTimers) for kRefusedGrace before its outcome is ECONNREFUSED.
  absl::optional<Outcome> OnCmEvent(const rdma::CmEvent& event);
  // Asks again the refused destinations whose time has come (`now`:
  // rdma::MonotonicNow's, as the cache's own times are); appends to
  // `failed` those that could not even start.
  void PollTimers(absl::Time now, std::vector<Outcome>& failed);

  size_t size() const { return entries_.size(); }
  // Whether a destination is being resolved (rdma_cm events will come, or
  // it will be asked again).
  bool resolving() const { return !resolving_.empty() || retrying_ > 0; }

 private:
  struct Entry {
    // Resolved, and not waiting to be resolved again: new sends may take
    // it. A send stream that never pauses would otherwise always hold a
    // route whose peer was made anew, and never let it drain.
    bool Usable() const { return ah != nullptr && !drain_waiting; }

    Route route;
    rdma::AhPtr ah;
    rdma::CmIdPtr resolver;  // While resolving.
    uint32_t in_flight = 0;
    uint64_t last_used = 0;
    // Resolving again because another QP claimed this destination: the QP
    // known before.
    bool verifying = false;
    uint32_t previous_qpn = 0;
    // Claimed by another QP while sends were in flight: in drain_waiters_.
    bool drain_waiting = false;
    // Refused (nobody bound there yet): when first, and when to ask again
    // (InfiniteFuture: not waiting to).
    absl::Time first_refused = absl::InfinitePast();
    absl::Time retry_at = absl::InfiniteFuture();
    absl::Duration retry_delay = kRefusedFirstRetry;
  };

  // The entry of `key`, if any. The last one found is remembered: a
  // datagram's sender is usually the next push's destination, and a push
  // looks its route up three times.
  Entry* Lookup(uint64_t key) {
    if (cached_ != nullptr && cached_key_ == key) return cached_;
    return LookupMiss(key);
  }
  Entry* LookupMiss(uint64_t key);
  // Seen for the rest (`entry` is Lookup's): no route to `from` (null),
  // one being resolved, or one to another QP than `qpn`.
  bool SeenOther(const sockaddr_in& from, uint32_t qpn, Entry* entry);
  // Makes room for one more entry; false if every entry is in use.
  bool MakeRoom();
  absl::Status StartResolve(Entry& entry, const sockaddr_in& dest);
  Outcome Fail(absl::flat_hash_map<uint64_t, Entry>::iterator it, int err);
  // Drops the resolved `entry` of `from` (no send in flight) and resolves
  // `from` again, verifying: only the QP known before speaks for it.
  void ResolveAgain(const sockaddr_in& from, Entry& entry);
  // Nobody answered at the entry's destination: asks again later, or fails
  // it once kRefusedGrace is over.
  absl::optional<Outcome> Refused(
      absl::flat_hash_map<uint64_t, Entry>::iterator it);

  rdma_event_channel* channel_;
  void* context_;
  ibv_pd* pd_;
  sockaddr_in local_;
  size_t capacity_;
  uint64_t clock_ = 0;
  absl::flat_hash_map<uint64_t, Entry> entries_;
  // Lookup's memory; null whenever entries_ changes (entries may move).
  uint64_t cached_key_ = 0;
  Entry* cached_ = nullptr;
  absl::flat_hash_map<rdma_cm_id*, uint64_t> resolving_;
  size_t retrying_ = 0;  // Entries waiting for their retry_at.
  // Destinations Seen found claimed by another QP while sends to them were
  // in flight.
  std::vector<sockaddr_in> drain_waiters_;
};

}  // namespace demi

#endif  // DEMI_DEMI_DATAGRAM_ROUTES_H_
