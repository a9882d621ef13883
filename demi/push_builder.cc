#include "demi/push_builder.h"

#include <sys/uio.h>
#include <unistd.h>

#include <cstring>
#include <utility>

#include "rdma/status_util.h"

namespace demi {

absl::Status PrepareBytes(const PushMemory& memory, const demi_sgarray_t& sga,
                          uint32_t length, PushSges& sges, PushHolds& holds) {
  uint32_t n = sga.sga_numsegs;
  Buffer* owners[DEMI_SGARRAY_MAXSIZE];
  uint32_t foreign_bytes = 0;
  for (uint32_t i = 0; i < n; ++i) {
    owners[i] = memory.pool->Find(sga.sga_buf, sga.sga_segs[i].sgaseg_buf,
                                  sga.sga_segs[i].sgaseg_len);
    // Another thread's pieces miss too, and are copied: a free right after
    // the push goes to that thread, which this push's reference would not
    // stop from handing the piece out again.
    if (owners[i] == nullptr) foreign_bytes += sga.sga_segs[i].sgaseg_len;
  }
  // One SGE per segment after the header, unless the device gathers fewer:
  // then everything is copied into one piece.
  bool copy_all = n + 1 > memory.max_send_sge;
  if (copy_all) foreign_bytes = length;
  Buffer* staging = nullptr;
  if (foreign_bytes > 0) {
    DEMI_ASSIGN_OR_RETURN(staging, memory.pool->Allocate(foreign_bytes));
    holds.emplace_back(staging);
  }
  uint32_t staged = 0;
  uint32_t staging_lkey =
      staging != nullptr ? SgaPool::Lkey(staging, memory.device) : 0;
  for (uint32_t i = 0; i < n; ++i) {
    const void* addr = sga.sga_segs[i].sgaseg_buf;
    uint32_t len = sga.sga_segs[i].sgaseg_len;
    if (owners[i] != nullptr && !copy_all) {
      holds.push_back(BufferRef::Share(owners[i]));
      sges.push_back({reinterpret_cast<uintptr_t>(addr), len,
                      SgaPool::Lkey(owners[i], memory.device)});
      continue;
    }
    // Copied now, so the application may reuse its memory at once.
    std::memcpy(staging->data + staged, addr, len);
    if (copy_all && i > 0) {
      sges.back().length += len;
    } else {
      sges.push_back({reinterpret_cast<uintptr_t>(staging->data + staged), len,
                      staging_lkey});
    }
    staged += len;
  }
  return absl::OkStatus();
}

namespace {

// Copies `length` bytes at `from`, in this process, to `to`; false, with
// nothing faulted, if they are not all readable (or the kernel forbids the
// call: a container's seccomp profile may).
bool ReadOwnMemory(void* to, const void* from, size_t length) {
  iovec local = {to, length};
  iovec remote = {const_cast<void*>(from), length};
  return process_vm_readv(getpid(), &local, 1, &remote, 1, 0) ==
         static_cast<ssize_t>(length);
}

}  // namespace

absl::Status PrepareRndv(const PushMemory& memory, PushOp& op,
                         const demi_sgarray_t& sga) {
  op.is_rndv = true;
  op.rndv.num_segments = sga.sga_numsegs;
  for (uint32_t i = 0; i < sga.sga_numsegs; ++i) {
    std::byte* addr = static_cast<std::byte*>(sga.sga_segs[i].sgaseg_buf);
    uint32_t len = sga.sga_segs[i].sgaseg_len;
    Buffer* owner = memory.pool->Find(sga.sga_buf, addr, len);
    // Copied now into a pool piece, which the push holds.
    auto copy = [&]() -> absl::Status {
      DEMI_ASSIGN_OR_RETURN(owner, memory.pool->Allocate(len));
      op.holds.emplace_back(owner);
      std::memcpy(owner->data, addr, len);
      addr = owner->data;
      return absl::OkStatus();
    };
    // Small foreign memory is copied. So is a pool's piece that is not
    // this push's to hold (another thread's, or a free one of this pool's),
    // at any size: its references are counted elsewhere, so a
    // demi_sgafree right after the push would let its pool hand it out
    // again while the peer still reads it in place. Found by address,
    // whatever sga_buf names.
    if (owner == nullptr &&
        (len <= kMaxForeignCopy || SgaPool::InAnySlab(addr, len))) {
      DEMI_RETURN_IF_ERROR(copy());
    } else if (owner != nullptr) {
      op.holds.push_back(BufferRef::Share(owner));
    }
    // The peer may read exactly this range, through this QP only, and only
    // until the push ends. Pool pieces are registered for binding already;
    // large foreign memory (not a pool's: the application's to keep until
    // the push completes) is registered for this push (no remote access of
    // its own either).
    ibv_mr* mr =
        owner != nullptr ? owner->slab->mrs[memory.device].get() : nullptr;
    if (mr == nullptr) {
      absl::StatusOr<rdma::MrPtr> foreign = rdma::RegisterMr(
          memory.pd, absl::MakeSpan(addr, len), IBV_ACCESS_MW_BIND);
      if (foreign.ok()) {
        mr = foreign->get();
        op.read_mrs.push_back(std::move(foreign).value());
      } else {
        // Memory the application may only read (a constant, a file mapped
        // PROT_READ): the kernel pins a registration that binds windows
        // as if for writing, and refuses. Or the pinning limit. Either way
        // a copy goes, read through the kernel: memory that cannot be
        // read at all fails the push with the registration's errno, as
        // before, rather than fault here.
        absl::StatusOr<Buffer*> piece = memory.pool->Allocate(len);
        if (!piece.ok()) return foreign.status();
        BufferRef held(*piece);
        if (!ReadOwnMemory((*piece)->data, addr, len)) return foreign.status();
        op.holds.push_back(std::move(held));
        owner = *piece;
        addr = owner->data;
        mr = owner->slab->mrs[memory.device].get();
      }
    }
    DEMI_ASSIGN_OR_RETURN(rdma::MwPtr window,
                          rdma::AllocMw(memory.pd, IBV_MW_TYPE_2));
    ibv_mw_bind_info bind = {};
    bind.mr = mr;
    bind.addr = reinterpret_cast<uintptr_t>(addr);
    bind.length = len;
    // Addressed by virtual address, not zero-based: rxe (Linux 6.1) checks
    // a retried READ's address against the window's own start, so through
    // a zero-based window every retry is dropped and one lost packet ends
    // the connection.
    bind.mw_access_flags = IBV_ACCESS_REMOTE_READ;
    op.binds.push_back(bind);
    op.windows.push_back(std::move(window));
    op.rndv.segments[i] = {bind.addr, 0, len};
  }
  return absl::OkStatus();
}

void ReleasePush(PushOp& op) {
  // Revoke the peer's access before the memory can be reused: a window
  // deallocated is invalid at once, whatever the peer still tries.
  op.windows.clear();
  op.read_mrs.clear();
  op.holds.clear();
}

}  // namespace demi
