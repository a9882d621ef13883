#include "testing/fuzz/api_args.h"

#include <netinet/in.h>

#include <climits>
#include <cstring>
#include <vector>

namespace demi_fuzz {
namespace {

in_addr test_addr;

}  // namespace

void SetTestAddr(in_addr addr) { test_addr = addr; }

// A queue descriptor: one this input has seen (open or closed) most of the
// time, else an edge value.
int PickQd(const Model& model, uint8_t byte) {
  const std::vector<int>& seen = model.seen();
  if (byte < 0xc0 && !seen.empty()) return seen[byte % seen.size()];
  switch (byte % 6) {
    case 0:
      return -1;
    case 1:
      return 0;
    case 2:
      return INT_MAX;
    case 3:
      return INT_MIN;
    case 4:
      return 1 << 20;
    default:
      return byte;
  }
}

// A token: one this input started, one taken already, or an edge value.
demi_qtoken_t PickToken(const Model& model, uint8_t byte, uint8_t extra) {
  const std::vector<demi_qtoken_t>& issued = model.issued();
  const auto& taken = model.taken();
  if (byte < 0xa0 && !issued.empty()) return issued[byte % issued.size()];
  if (byte < 0xd0 && !taken.empty()) return taken[byte % taken.size()];
  switch (byte % 4) {
    case 0:
      return 0;
    case 1:
      return UINT64_MAX;
    case 2:
      return demi_qtoken_t{extra} << 40 | byte;
    default:
      return extra;
  }
}

sockaddr_in Addr(uint16_t port) {
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr = test_addr;
  addr.sin_port = htons(port);
  return addr;
}

// An address argument: `kind` picks a good one (at `port`) or a bad one;
// *size is what to pass with it. nullptr for NULL.
const sockaddr* PickAddr(uint8_t kind, uint16_t port, sockaddr_storage* buf,
                         socklen_t* size) {
  std::memset(buf, 0, sizeof(*buf));
  auto* in = reinterpret_cast<sockaddr_in*>(buf);
  *in = Addr(port);
  *size = sizeof(sockaddr_in);
  switch (kind % 10) {
    case 0:
    case 1:
    case 2:
      break;
    case 3:
      *size = kind & 0x10 ? 0 : sizeof(sockaddr_in) - 1;
      break;
    case 4:
      *size = kind & 0x10 ? sizeof(sockaddr_storage) : sizeof(sockaddr_in) + 1;
      break;
    case 5:
      in->sin_family = kind & 0x10 ? AF_INET6 : AF_UNIX;
      break;
    case 6:
      in->sin_port = 0;
      break;
    case 7:
      in->sin_addr.s_addr = htonl(INADDR_ANY);
      break;
    case 8:
      in->sin_addr.s_addr = htonl(0xcb007105);  // 203.0.113.5: nobody's.
      break;
    default:
      return nullptr;
  }
  return reinterpret_cast<const sockaddr*>(buf);
}

timespec* PickTimeout(uint8_t kind, timespec* buf) {
  switch (kind % 8) {
    case 0:
    case 1:
      *buf = {0, 0};
      break;
    case 2:
    case 3:
      *buf = {0, 1000000};
      break;
    case 4:
      *buf = {0, 100000};
      break;
    case 5:
      *buf = {-1, 0};
      break;
    case 6:
      *buf = {0, 1000000000};
      break;
    default:
      *buf = {0, -1};
  }
  return buf;
}

// Whether the wait with this timeout could block: the valid ones.
bool ValidTimeout(const timespec& t) {
  return t.tv_sec >= 0 && t.tv_nsec >= 0 && t.tv_nsec < 1000000000;
}

// Memory not from the library: small pieces are copied at the push, large
// ones registered for it (so they must live on: static).
char* ForeignBuffer() {
  static char* buffer = new char[kForeignSize]();
  return buffer;
}

// Fills `sga` as `kind` says: library memory, foreign memory, or a bad
// array of one kind or another. `stack` is the caller's small buffer.
void BuildSga(Model& model, uint8_t kind, uint8_t c, char* stack,
              size_t stack_size, demi_sgarray_t* sga) {
  std::memset(sga, 0, sizeof(*sga));
  std::vector<demi_sgarray_t>& held = model.held();
  sga->sga_numsegs = 1;
  sga->sga_segs[0].sgaseg_buf = stack;
  sga->sga_segs[0].sgaseg_len = 1 + c % stack_size;
  switch (kind % 16) {
    case 0:
    case 1:
    case 2:
      if (!held.empty()) *sga = held[c % held.size()];
      break;
    case 3:
      break;  // Stack memory, copied.
    case 4:
      sga->sga_segs[0].sgaseg_buf = ForeignBuffer();
      sga->sga_segs[0].sgaseg_len = kForeignSize - c;
      break;
    case 5: {  // Several segments, each library or stack memory.
      sga->sga_numsegs = 1 + c % DEMI_SGARRAY_MAXSIZE;
      for (uint32_t i = 0; i < sga->sga_numsegs; ++i) {
        demi_sgaseg_t& seg = sga->sga_segs[i];
        if (!held.empty() && (c + i) % 3 != 0) {
          seg = held[(c + i) % held.size()].sga_segs[0];
        } else {
          seg.sgaseg_buf = stack + i;
          seg.sgaseg_len = static_cast<uint32_t>(stack_size - i);
        }
      }
      break;
    }
    case 6:
      sga->sga_numsegs = 0;
      break;
    case 7:
      sga->sga_numsegs = c & 1 ? 1000 : DEMI_SGARRAY_MAXSIZE + 1;
      break;
    case 8:
      sga->sga_segs[0].sgaseg_buf = nullptr;
      break;
    case 9:
      sga->sga_segs[0].sgaseg_len = 0;
      break;
    case 10:
      sga->sga_segs[0].sgaseg_len = UINT32_MAX;
      break;
    case 11:  // Segments summing beyond 2^32.
      sga->sga_numsegs = DEMI_SGARRAY_MAXSIZE;
      for (demi_sgaseg_t& seg : sga->sga_segs) seg = {stack, 1u << 31};
      break;
    case 12:  // A handle nobody lent, over stack or library memory.
      if (!held.empty()) *sga = held[c % held.size()];
      sga->sga_buf = reinterpret_cast<void*>(uintptr_t{0xdead} << 32 | c);
      break;
    case 13:
      if (!model.freed().empty()) {
        *sga = model.freed()[c % model.freed().size()];
      }
      break;
    case 14:  // A large foreign segment and a small one, gathered.
      sga->sga_numsegs = 2;
      sga->sga_segs[0] = {ForeignBuffer(), static_cast<uint32_t>(kForeignSize)};
      sga->sga_segs[1] = {stack, 1};
      break;
    default:
      if (!held.empty()) *sga = held[c % held.size()];
      sga->sga_numsegs = 1;
  }
}

}  // namespace demi_fuzz
