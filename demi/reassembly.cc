#include "demi/reassembly.h"

#include <cstring>
#include <utility>
#include <vector>

namespace demi {

void Reassembly::Drop(absl::flat_hash_map<Key, Entry>::iterator it) {
  bytes_ -= it->second.total_length;
  entries_.erase(it);
}

bool Reassembly::MakeRoom(uint32_t length) {
  if (length > limits_.max_bytes || limits_.max_entries == 0) return false;
  while (entries_.size() >= limits_.max_entries ||
         bytes_ + length > limits_.max_bytes) {
    auto oldest = entries_.begin();
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
      if (it->second.started < oldest->second.started) oldest = it;
    }
    Drop(oldest);
    ++drops_.evicted;
  }
  return true;
}

absl::optional<Reassembled> Reassembly::Add(const Fragment& fragment,
                                            uint32_t source_qpn,
                                            absl::Time now) {
  const DatagramHeader& h = fragment.header;
  Key key{h.src_addr, h.src_port, h.id, source_qpn};
  auto it = entries_.find(key);
  if (it == entries_.end()) {
    if (!MakeRoom(h.total_length)) {
      ++drops_.no_memory;
      return absl::nullopt;
    }
    absl::StatusOr<Buffer*> buffer = pool_->Allocate(h.total_length);
    if (!buffer.ok()) {
      ++drops_.no_memory;
      return absl::nullopt;
    }
    Entry entry;
    entry.buffer.reset(*buffer);
    entry.total_length = h.total_length;
    entry.fragment_count = h.fragment_count;
    entry.fragment_size = fragment.fragment_size;
    entry.started = now;
    bytes_ += h.total_length;
    it = entries_.emplace(key, std::move(entry)).first;
  }
  Entry& entry = it->second;
  if (entry.total_length != h.total_length ||
      entry.fragment_count != h.fragment_count ||
      entry.fragment_size != fragment.fragment_size) {
    // A sender that reuses a datagram number for another shape breaks the
    // protocol: neither version can be trusted.
    Drop(it);
    ++drops_.inconsistent;
    return absl::nullopt;
  }
  if (entry.have.test(h.fragment_index)) {
    ++drops_.duplicates;
    return absl::nullopt;
  }
  entry.have.set(h.fragment_index);
  std::memcpy(entry.buffer->data + h.offset, fragment.payload.data(),
              fragment.payload.size());
  if (++entry.received < entry.fragment_count) return absl::nullopt;
  Reassembled done{std::move(entry.buffer), entry.total_length};
  bytes_ -= entry.total_length;
  entries_.erase(it);
  return done;
}

void Reassembly::Expire(absl::Time now) {
  std::vector<Key> expired;
  for (const auto& entry : entries_) {
    if (now - entry.second.started >= limits_.timeout) {
      expired.push_back(entry.first);
    }
  }
  for (const Key& key : expired) {
    Drop(entries_.find(key));
    ++drops_.timed_out;
  }
}

}  // namespace demi
