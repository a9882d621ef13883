#include "demi/datagram_routes.h"

#include <algorithm>
#include <cerrno>
#include <utility>

#include "demi/datagram_wire.h"
#include "rdma/clock.h"
#include "rdma/log.h"
#include "rdma/status_util.h"
#include "rdma/verbs_call.h"

namespace demi {

DatagramRoutes::DatagramRoutes(rdma_event_channel* channel, void* context,
                               ibv_pd* pd, const sockaddr_in& local,
                               size_t capacity)
    : channel_(channel),
      context_(context),
      pd_(pd),
      local_(local),
      capacity_(capacity) {
  local_.sin_port = 0;  // Resolvers take any port on the same device.
}

absl::StatusOr<const Route*> DatagramRoutes::Find(const sockaddr_in& dest) {
  uint64_t key = RouteKey(dest);
  if (Entry* known = Lookup(key)) {
    known->last_used = ++clock_;
    return known->Usable() ? &known->route : nullptr;
  }
  if (!MakeRoom()) {
    return rdma::ErrnoError(EAGAIN, "every cached destination is in use");
  }
  cached_ = nullptr;  // Inserting may move every entry.
  Entry& entry = entries_[key];
  entry.last_used = ++clock_;
  absl::Status status = StartResolve(entry, dest);
  if (!status.ok()) {
    cached_ = nullptr;
    entries_.erase(key);
    return status;
  }
  resolving_[entry.resolver.get()] = key;
  return nullptr;
}

absl::Status DatagramRoutes::StartResolve(Entry& entry,
                                          const sockaddr_in& dest) {
  DEMI_ASSIGN_OR_RETURN(entry.resolver,
                        rdma::CreateCmId(channel_, context_, RDMA_PS_UDP));
  sockaddr_in src = local_;
  sockaddr_in dst = dest;
  if (rdma_resolve_addr(entry.resolver.get(), reinterpret_cast<sockaddr*>(&src),
                        reinterpret_cast<sockaddr*>(&dst),
                        kResolveTimeoutMs) != 0) {
    return rdma::ErrnoError(EHOSTUNREACH, "rdma_resolve_addr");
  }
  return absl::OkStatus();
}

bool DatagramRoutes::MakeRoom() {
  if (entries_.size() < capacity_) return true;
  auto victim = entries_.end();
  for (auto it = entries_.begin(); it != entries_.end(); ++it) {
    const Entry& e = it->second;
    if (e.in_flight > 0 || e.resolver != nullptr ||
        e.retry_at != absl::InfiniteFuture()) {
      continue;
    }
    if (victim == entries_.end() || e.last_used < victim->second.last_used) {
      victim = it;
    }
  }
  if (victim == entries_.end()) return false;
  cached_ = nullptr;
  entries_.erase(victim);
  return true;
}

DatagramRoutes::Entry* DatagramRoutes::LookupMiss(uint64_t key) {
  auto it = entries_.find(key);
  if (it == entries_.end()) return nullptr;
  cached_key_ = key;
  cached_ = &it->second;
  return cached_;
}

bool DatagramRoutes::SeenOther(const sockaddr_in& from, uint32_t qpn,
                               Entry* entry) {
  if (entry == nullptr) return true;
  if (entry->ah == nullptr) {
    return !entry->verifying || entry->previous_qpn == qpn;
  }
  // Resolved, to another QP (Seen answered for its own). The route's copy in a
  // posted send needs its address handle.
  if (entry->in_flight > 0) {
    if (!entry->drain_waiting) {
      entry->drain_waiting = true;
      drain_waiters_.push_back(from);
    }
    return false;
  }
  ResolveAgain(from, *entry);
  return false;
}

void DatagramRoutes::ResolveDrained() {
  for (size_t i = 0; i < drain_waiters_.size();) {
    const sockaddr_in from = drain_waiters_[i];
    Entry* entry = Lookup(RouteKey(from));
    // Gone meanwhile (evicted, or failed and made anew): nothing to do.
    bool waiting = entry != nullptr && entry->drain_waiting;
    if (waiting && entry->in_flight > 0) {
      ++i;
      continue;
    }
    drain_waiters_[i] = drain_waiters_.back();
    drain_waiters_.pop_back();
    if (waiting) ResolveAgain(from, *entry);
  }
}

void DatagramRoutes::ResolveAgain(const sockaddr_in& from, Entry& entry) {
  uint64_t key = RouteKey(from);
  uint32_t known = entry.route.qpn;
  cached_ = nullptr;
  entries_.erase(key);
  absl::StatusOr<const Route*> route = Find(from);
  if (route.ok() && *route == nullptr) {
    Entry* fresh = Lookup(key);
    fresh->verifying = true;
    fresh->previous_qpn = known;
  }
}

DatagramRoutes::Outcome DatagramRoutes::Fail(
    absl::flat_hash_map<uint64_t, Entry>::iterator it, int err) {
  Outcome outcome{it->first, err};
  resolving_.erase(it->second.resolver.get());
  if (it->second.retry_at != absl::InfiniteFuture()) --retrying_;
  // Not cached: the next send tries again, as the peer may bind by then.
  cached_ = nullptr;
  entries_.erase(it);
  return outcome;
}

absl::optional<DatagramRoutes::Outcome> DatagramRoutes::OnCmEvent(
    const rdma::CmEvent& event) {
  auto r = resolving_.find(event.id);
  if (r == resolving_.end()) return absl::nullopt;
  auto it = entries_.find(r->second);
  if (it == entries_.end()) {
    resolving_.erase(r);
    return absl::nullopt;
  }
  Entry& entry = it->second;
  switch (event.type) {
    case RDMA_CM_EVENT_ADDR_RESOLVED:
      if (rdma_resolve_route(entry.resolver.get(), kResolveTimeoutMs) != 0) {
        return Fail(it, EHOSTUNREACH);
      }
      return absl::nullopt;
    case RDMA_CM_EVENT_ROUTE_RESOLVED: {
      rdma_conn_param param = {};
      if (rdma_connect(entry.resolver.get(), &param) != 0) {
        return Fail(it, errno != 0 ? errno : EHOSTUNREACH);
      }
      return absl::nullopt;
    }
    case RDMA_CM_EVENT_ESTABLISHED: {
      ibv_ah_attr attr = event.ah_attr;
      absl::StatusOr<rdma::AhPtr> ah = rdma::CreateAh(pd_, &attr);
      if (!ah.ok()) return Fail(it, rdma::ErrnoOf(ah.status()));
      entry.ah = std::move(ah).value();
      auto reply = absl::MakeConstSpan(
          reinterpret_cast<const std::byte*>(event.private_data.data()),
          event.private_data.size());
      entry.route = {entry.ah.get(), event.remote_qpn, event.remote_qkey,
                     SaysCompact(reply), SaysMtu(reply)};
      resolving_.erase(r);
      entry.resolver.reset();
      return Outcome{it->first, 0};
    }
    case RDMA_CM_EVENT_ADDR_ERROR:
    case RDMA_CM_EVENT_ROUTE_ERROR:
      return Fail(it, EHOSTUNREACH);
    case RDMA_CM_EVENT_UNREACHABLE:
      // A SIDR reply saying nobody is bound there comes as UNREACHABLE
      // too; a timeout means nobody answered at all (and each try would
      // take the whole resolve timeout).
      if (event.status == -ETIMEDOUT) return Fail(it, ECONNREFUSED);
      [[fallthrough]];
    case RDMA_CM_EVENT_REJECTED:
      // Nobody bound at that port: what ICMP port-unreachable tells UDP,
      // once the peer had its time to bind.
      return Refused(it);
    case RDMA_CM_EVENT_CONNECT_ERROR:
      return Fail(it, ECONNREFUSED);
    default:
      // The device went, the address changed, or anything else a resolver
      // is not told while it works: no answer will come for this one, and
      // its pushes would wait for it until the socket closed.
      return Fail(it, EHOSTUNREACH);
  }
}

absl::optional<DatagramRoutes::Outcome> DatagramRoutes::Refused(
    absl::flat_hash_map<uint64_t, Entry>::iterator it) {
  Entry& entry = it->second;
  absl::Time now = rdma::MonotonicNow();
  if (entry.first_refused == absl::InfinitePast()) entry.first_refused = now;
  if (now - entry.first_refused >= kRefusedGrace) {
    return Fail(it, ECONNREFUSED);
  }
  resolving_.erase(entry.resolver.get());
  entry.resolver.reset();
  entry.retry_at = now + entry.retry_delay;
  entry.retry_delay = std::min(2 * entry.retry_delay, kRefusedLastRetry);
  ++retrying_;
  return absl::nullopt;
}

void DatagramRoutes::PollTimers(absl::Time now, std::vector<Outcome>& failed) {
  if (retrying_ == 0) return;
  std::vector<uint64_t> failed_keys;
  for (auto& [key, entry] : entries_) {
    if (entry.retry_at > now) continue;
    entry.retry_at = absl::InfiniteFuture();
    --retrying_;
    sockaddr_in dest = {};
    dest.sin_family = AF_INET;
    dest.sin_addr.s_addr = static_cast<uint32_t>(key >> 16);
    dest.sin_port = static_cast<uint16_t>(key);
    if (StartResolve(entry, dest).ok()) {
      resolving_[entry.resolver.get()] = key;
    } else {
      failed_keys.push_back(key);
    }
  }
  for (uint64_t key : failed_keys) {
    failed.push_back(Fail(entries_.find(key), EHOSTUNREACH));
  }
}

}  // namespace demi
