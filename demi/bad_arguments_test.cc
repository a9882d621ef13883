// The C API's arguments one at a time on an RDMA device: tokens that name
// no pending operation, waits' counts and timeouts, scatter-gather arrays,
// sizes, families, backlogs, options and NULL pointers. Each answers with the
// errno its header documents, and a witness connection the calls do not
// name still carries a message afterwards. (Queue states are in
// bad_input_test.cc.)
#include <demi/libos.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "testing/demi_helpers.h"
#include "testing/rdma_env.h"

namespace {

using demi::testing::AddrOrDie;
using demi::testing::ClosePair;
using demi::testing::DemiPair;
using demi::testing::MakePair;
using demi::testing::Ms;
using demi::testing::NextPort;
using demi::testing::PopString;
using demi::testing::PushString;
using demi::testing::Sa;
using demi::testing::WaitOrFail;

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnonnull"

TEST(BadInputTest, TokensThatNameNoPendingOperationAreEinval) {
  demi::testing::WitnessPair witness;
  DemiPair pair;
  ASSERT_TRUE(MakePair(&pair));
  demi_qtoken_t taken = PushString(pair.client, "x");
  ASSERT_EQ(WaitOrFail(taken).qr_opcode, DEMI_OPC_PUSH);
  EXPECT_EQ(PopString(pair.server), "x");
  const demi_qtoken_t bad[] = {0, static_cast<demi_qtoken_t>(-1), taken,
                               taken + 1000000, UINT64_MAX / 2};
  timespec zero = {0, 0};
  for (demi_qtoken_t qt : bad) {
    SCOPED_TRACE("token " + std::to_string(qt));
    demi_qresult_t qr;
    int offset = -1;
    EXPECT_EQ(demi_wait(&qr, qt, &zero), EINVAL);
    EXPECT_EQ(demi_wait(&qr, qt, nullptr), EINVAL);  // Never hangs.
    EXPECT_EQ(demi_wait_any(&qr, &offset, &qt, 1, nullptr), EINVAL);
    // One bad token spoils the list, wherever it is.
    demi_qtoken_t pop_qt = 0;
    ASSERT_EQ(demi_pop(&pop_qt, pair.server), 0);
    demi_qtoken_t list[] = {pop_qt, qt};
    EXPECT_EQ(demi_wait_any(&qr, &offset, list, 2, &zero), EINVAL);
    EXPECT_EQ(offset, -1);
    demi_qtoken_t push_qt = PushString(pair.client, "y");
    EXPECT_EQ(WaitOrFail(pop_qt).qr_opcode, DEMI_OPC_POP);
    EXPECT_EQ(WaitOrFail(push_qt).qr_opcode, DEMI_OPC_PUSH);
  }
  // The same token twice in one list: it completes once, at its first
  // place, and is then gone.
  demi_qtoken_t pop_qt = 0;
  ASSERT_EQ(demi_pop(&pop_qt, pair.server), 0);
  demi_qtoken_t push_qt = PushString(pair.client, "twice");
  demi_qtoken_t twice[] = {pop_qt, pop_qt};
  demi_qresult_t qr;
  int offset = -1;
  timespec ts = Ms(20000);
  ASSERT_EQ(demi_wait_any(&qr, &offset, twice, 2, &ts), 0);
  EXPECT_EQ(offset, 0);
  EXPECT_EQ(qr.qr_opcode, DEMI_OPC_POP);
  EXPECT_EQ(demi_sgafree(&qr.qr_value.sga), 0);
  EXPECT_EQ(demi_wait_any(&qr, &offset, twice, 2, &zero), EINVAL);
  EXPECT_EQ(WaitOrFail(push_qt).qr_opcode, DEMI_OPC_PUSH);
  ClosePair(pair);
  witness.ExpectUntouched();
}

// Waits for connects and accepts alone (which spin, then sleep, as every
// wait does): each still ends with its result, whatever ends the operation, and
// a token taken is EINVAL after.
TEST(BadInputTest, SetupTokensEndInEveryStateAndOnlyOnce) {
  timespec ten = {10, 0};
  demi_qresult_t qr;
  int offset = -1;
  // A connect nobody answers: refused.
  sockaddr_in nobody = AddrOrDie(NextPort());
  int refused = -1;
  ASSERT_EQ(demi_socket(&refused, AF_INET, SOCK_STREAM, 0), 0);
  demi_qtoken_t refused_qt = 0;
  ASSERT_EQ(demi_connect(&refused_qt, refused, Sa(nobody), sizeof(nobody)), 0);
  ASSERT_EQ(demi_wait(&qr, refused_qt, &ten), 0);
  EXPECT_EQ(qr.qr_opcode, DEMI_OPC_FAILED);
  EXPECT_EQ(qr.qr_ret, ECONNREFUSED);
  EXPECT_EQ(demi_wait(&qr, refused_qt, &ten), EINVAL);
  EXPECT_EQ(demi_close(refused), 0);
  // An accept whose listener closes.
  sockaddr_in addr = AddrOrDie(NextPort());
  int listener = -1;
  ASSERT_EQ(demi_socket(&listener, AF_INET, SOCK_STREAM, 0), 0);
  ASSERT_EQ(demi_bind(listener, Sa(addr), sizeof(addr)), 0);
  ASSERT_EQ(demi_listen(listener, 4), 0);
  demi_qtoken_t orphan_qt = 0;
  ASSERT_EQ(demi_accept(&orphan_qt, listener), 0);
  ASSERT_EQ(demi_close(listener), 0);
  ASSERT_EQ(demi_wait_any(&qr, &offset, &orphan_qt, 1, &ten), 0);
  EXPECT_EQ(qr.qr_opcode, DEMI_OPC_FAILED);
  EXPECT_EQ(demi_wait_any(&qr, &offset, &orphan_qt, 1, &ten), EINVAL);
  // A connect and its accept, waited together, then each again.
  ASSERT_EQ(demi_socket(&listener, AF_INET, SOCK_STREAM, 0), 0);
  ASSERT_EQ(demi_bind(listener, Sa(addr), sizeof(addr)), 0);
  ASSERT_EQ(demi_listen(listener, 4), 0);
  int client = -1;
  ASSERT_EQ(demi_socket(&client, AF_INET, SOCK_STREAM, 0), 0);
  demi_qtoken_t qts[2] = {0, 0};
  ASSERT_EQ(demi_accept(&qts[0], listener), 0);
  ASSERT_EQ(demi_connect(&qts[1], client, Sa(addr), sizeof(addr)), 0);
  ASSERT_EQ(demi_wait_any(&qr, &offset, qts, 2, &ten), 0);
  ASSERT_TRUE(offset == 0 || offset == 1);
  EXPECT_EQ(qr.qr_qt, qts[offset]);
  EXPECT_EQ(qr.qr_opcode, offset == 0 ? DEMI_OPC_ACCEPT : DEMI_OPC_CONNECT);
  demi_qresult_t other;
  ASSERT_EQ(demi_wait(&other, qts[1 - offset], &ten), 0);
  EXPECT_EQ(other.qr_opcode, offset == 0 ? DEMI_OPC_CONNECT : DEMI_OPC_ACCEPT);
  int server = offset == 0 ? qr.qr_value.ares.qd : other.qr_value.ares.qd;
  EXPECT_EQ(demi_wait(&qr, qts[0], &ten), EINVAL);
  EXPECT_EQ(demi_wait_any(&qr, &offset, qts, 2, &ten), EINVAL);
  EXPECT_EQ(WaitOrFail(PushString(client, "after")).qr_opcode, DEMI_OPC_PUSH);
  EXPECT_EQ(PopString(server), "after");
  EXPECT_EQ(demi_close(client), 0);
  EXPECT_EQ(demi_close(server), 0);
  EXPECT_EQ(demi_close(listener), 0);
}

TEST(BadInputTest, WaitArgumentsOutOfRangeAreEinval) {
  demi::testing::WitnessPair witness;
  DemiPair pair;
  ASSERT_TRUE(MakePair(&pair));
  demi_qtoken_t pop_qt = 0;
  ASSERT_EQ(demi_pop(&pop_qt, pair.server), 0);
  demi_qresult_t qr[4];
  int count = -1;
  int offset = -1;
  const timespec bad_timeouts[] = {
      {-1, 0}, {0, -1}, {0, 1000000000}, {LONG_MIN, 0}, {0, LONG_MAX}};
  for (const timespec& timeout : bad_timeouts) {
    SCOPED_TRACE(std::to_string(timeout.tv_sec) + " s " +
                 std::to_string(timeout.tv_nsec) + " ns");
    EXPECT_EQ(demi_wait(qr, pop_qt, &timeout), EINVAL);
    EXPECT_EQ(demi_wait_any(qr, &offset, &pop_qt, 1, &timeout), EINVAL);
    EXPECT_EQ(demi_wait_next_n(qr, 4, &count, &timeout), EINVAL);
  }
  timespec zero = {0, 0};
  EXPECT_EQ(demi_wait(nullptr, pop_qt, &zero), EINVAL);
  EXPECT_EQ(demi_wait_any(nullptr, &offset, &pop_qt, 1, &zero), EINVAL);
  EXPECT_EQ(demi_wait_any(qr, nullptr, &pop_qt, 1, &zero), EINVAL);
  EXPECT_EQ(demi_wait_any(qr, &offset, nullptr, 1, &zero), EINVAL);
  EXPECT_EQ(demi_wait_any(qr, &offset, &pop_qt, -1, &zero), EINVAL);
  EXPECT_EQ(demi_wait_any(qr, &offset, &pop_qt, INT_MIN, &zero), EINVAL);
  EXPECT_EQ(demi_wait_any(qr, &offset, nullptr, 0, &zero), ETIMEDOUT);
  EXPECT_EQ(demi_wait_next_n(nullptr, 4, &count, &zero), EINVAL);
  EXPECT_EQ(demi_wait_next_n(qr, 4, nullptr, &zero), EINVAL);
  EXPECT_EQ(demi_wait_next_n(qr, 0, &count, &zero), EINVAL);
  EXPECT_EQ(demi_wait_next_n(qr, -1, &count, &zero), EINVAL);
  EXPECT_EQ(demi_wait_next_n(qr, INT_MIN, &count, &zero), EINVAL);
  // A result already in makes no bad timeout good, and is not lost to the
  // refusal: the waits take such a result without a pass, after the check.
  // (Pushed the other way: the server's pop stays pending, and its short
  // wait runs the passes that complete the push, staged or not inline.)
  demi_qtoken_t done_qt = PushString(pair.server, "done");
  timespec short_wait = {0, 50 * 1000 * 1000};
  EXPECT_EQ(demi_wait(qr, pop_qt, &short_wait), ETIMEDOUT);
  for (const timespec& timeout : bad_timeouts) {
    EXPECT_EQ(demi_wait(qr, done_qt, &timeout), EINVAL);
    EXPECT_EQ(demi_wait_next_n(qr, 1, &count, &timeout), EINVAL);
  }
  timespec ten = {10, 0};
  ASSERT_EQ(demi_wait(qr, done_qt, &ten), 0);
  EXPECT_EQ(qr[0].qr_opcode, DEMI_OPC_PUSH);
  EXPECT_EQ(qr[0].qr_qt, done_qt);
  EXPECT_EQ(PopString(pair.client), "done");
  // The pop is still pending, and a huge timeout is a long wait, not an
  // overflow into the past.
  EXPECT_EQ(demi_wait(qr, pop_qt, &zero), ETIMEDOUT);
  demi_qtoken_t push_qt = PushString(pair.client, "z");
  timespec huge = {LONG_MAX, 999999999};
  ASSERT_EQ(demi_wait(qr, pop_qt, &huge), 0);
  EXPECT_EQ(qr[0].qr_opcode, DEMI_OPC_POP);
  EXPECT_EQ(demi_sgafree(&qr[0].qr_value.sga), 0);
  EXPECT_EQ(WaitOrFail(push_qt).qr_opcode, DEMI_OPC_PUSH);
  ClosePair(pair);
  witness.ExpectUntouched();
}

// Bad scatter-gather arrays: demi_push and demi_pushto refuse them with
// EINVAL before anything starts; demi_sgafree refuses what the
// application does not hold.
TEST(BadInputTest, BadScatterGatherArraysAreEinval) {
  demi::testing::WitnessPair witness;
  DemiPair pair;
  ASSERT_TRUE(MakePair(&pair));
  int dgram = -1;
  ASSERT_EQ(demi_socket(&dgram, AF_INET, SOCK_DGRAM, 0), 0);
  sockaddr_in dgram_addr = AddrOrDie(NextPort());
  ASSERT_EQ(demi_bind(dgram, Sa(dgram_addr), sizeof(dgram_addr)), 0);
  char stack[16] = "on the stack";
  std::vector<std::pair<std::string, demi_sgarray_t>> bad;
  demi_sgarray_t sga;
  std::memset(&sga, 0, sizeof(sga));
  bad.emplace_back("zeroed", sga);
  sga.sga_numsegs = 1;  // A NULL segment.
  sga.sga_segs[0].sgaseg_len = 8;
  bad.emplace_back("a NULL segment", sga);
  sga.sga_segs[0].sgaseg_buf = stack;
  sga.sga_segs[0].sgaseg_len = 0;
  bad.emplace_back("a segment of length 0", sga);
  sga.sga_segs[0].sgaseg_len = UINT32_MAX;
  bad.emplace_back("a segment of 2^32-1 bytes", sga);
  sga.sga_segs[0].sgaseg_len = DEMI_MAX_MESSAGE_SIZE + 1;
  bad.emplace_back("beyond DEMI_MAX_MESSAGE_SIZE", sga);
  sga.sga_segs[0].sgaseg_len = sizeof(stack);
  for (uint32_t numsegs : {0u, 17u, 1000u, UINT32_MAX}) {
    sga.sga_numsegs = numsegs;
    bad.emplace_back("sga_numsegs " + std::to_string(numsegs), sga);
  }
  // Sixteen segments of 1 MiB each: more than a message may hold.
  demi_sgarray_t big;
  std::memset(&big, 0, sizeof(big));
  big.sga_numsegs = DEMI_SGARRAY_MAXSIZE;
  for (auto& seg : big.sga_segs) {
    seg.sgaseg_buf = stack;
    seg.sgaseg_len = (DEMI_MAX_MESSAGE_SIZE / DEMI_SGARRAY_MAXSIZE) + 1;
  }
  bad.emplace_back("segments summing past DEMI_MAX_MESSAGE_SIZE", big);
  for (const auto& [what, sga] : bad) {
    SCOPED_TRACE(what);
    demi_qtoken_t qt = 0;
    EXPECT_EQ(demi_push(&qt, pair.client, &sga), EINVAL);
    EXPECT_EQ(demi_pushto(&qt, dgram, &sga, Sa(dgram_addr), sizeof(dgram_addr)),
              EINVAL);
    demi_sgarray_t copy = sga;
    EXPECT_EQ(demi_sgafree(&copy), EINVAL);
  }
  demi_qtoken_t qt = 0;
  EXPECT_EQ(demi_push(nullptr, pair.client, &bad[0].second), EINVAL);
  EXPECT_EQ(demi_push(&qt, pair.client, nullptr), EINVAL);
  EXPECT_EQ(demi_sgafree(nullptr), EINVAL);

  // What the application does not hold: freed, freed twice, a forged or
  // stack handle. demi_sgafree refuses each; a push of the memory copies
  // it (it is not the application's buffer any more) and the peer gets
  // the bytes the call saw.
  demi_sgarray_t freed = demi_sgaalloc(16);
  ASSERT_EQ(freed.sga_numsegs, 1u);
  std::memcpy(freed.sga_segs[0].sgaseg_buf, "freed", 6);
  demi_sgarray_t freed_copy = freed;
  EXPECT_EQ(demi_sgafree(&freed), 0);
  EXPECT_EQ(demi_sgafree(&freed_copy), EINVAL);  // Twice.
  demi_sgarray_t forged = demi_sgaalloc(16);
  ASSERT_EQ(forged.sga_numsegs, 1u);
  demi_sgarray_t forged_copy = forged;
  forged_copy.sga_buf = reinterpret_cast<void*>(
      reinterpret_cast<uintptr_t>(forged.sga_buf) ^ 0x5a5a5a5a);
  EXPECT_EQ(demi_sgafree(&forged_copy), EINVAL);
  forged_copy.sga_buf = stack;
  EXPECT_EQ(demi_sgafree(&forged_copy), EINVAL);
  forged_copy.sga_buf = reinterpret_cast<void*>(UINTPTR_MAX);
  EXPECT_EQ(demi_sgafree(&forged_copy), EINVAL);
  std::memcpy(forged.sga_segs[0].sgaseg_buf, "forged", 7);
  forged_copy.sga_buf = stack;  // A push of it still sends its bytes.
  demi_sgarray_t on_stack;
  std::memset(&on_stack, 0, sizeof(on_stack));
  on_stack.sga_numsegs = 1;
  on_stack.sga_segs[0].sgaseg_buf = stack;
  on_stack.sga_segs[0].sgaseg_len = 13;
  on_stack.sga_buf = stack;
  // Popped one by one: a push waits for the peer's credits, which come
  // back as it pops. The peer gets what the memory held at the push (the
  // freed piece may be forged's by now).
  for (demi_sgarray_t* sga : {&freed_copy, &forged_copy, &on_stack}) {
    std::string at_push(static_cast<const char*>(sga->sga_segs[0].sgaseg_buf),
                        sga->sga_segs[0].sgaseg_len);
    demi_qtoken_t push_qt = 0;
    ASSERT_EQ(demi_push(&push_qt, pair.client, sga), 0);
    EXPECT_EQ(PopString(pair.server), at_push);
    EXPECT_EQ(WaitOrFail(push_qt).qr_opcode, DEMI_OPC_PUSH);
  }
  EXPECT_EQ(demi_sgafree(&forged), 0);

  // demi_sgaalloc: sizes it cannot serve give the null sga.
  for (size_t size :
       {size_t{0}, size_t{DEMI_MAX_MESSAGE_SIZE} + 1, SIZE_MAX / 2, SIZE_MAX}) {
    demi_sgarray_t none = demi_sgaalloc(size);
    EXPECT_EQ(none.sga_numsegs, 0u) << size;
    EXPECT_EQ(none.sga_buf, nullptr) << size;
    EXPECT_EQ(demi_sgafree(&none), EINVAL);
  }
  EXPECT_EQ(demi_close(dgram), 0);
  ClosePair(pair);
  witness.ExpectUntouched();
}

// Sizes, families, backlogs, options and NULL pointers, one bad argument
// at a time on a queue where the call is otherwise good.
TEST(BadInputTest, BadSizesOptionsAndPointersGetTheDocumentedErrno) {
  demi::testing::WitnessPair witness;
  DemiPair pair;
  ASSERT_TRUE(MakePair(&pair));
  int qd = -1;
  ASSERT_EQ(demi_socket(&qd, AF_INET, SOCK_STREAM, 0), 0);
  sockaddr_in addr = AddrOrDie(NextPort());
  const sockaddr* sa = Sa(addr);
  demi_qtoken_t qt = 0;
  for (socklen_t size :
       {socklen_t{0}, socklen_t{3}, socklen_t{sizeof(sockaddr_in) - 1},
        socklen_t{sizeof(sockaddr_in) + 1}, socklen_t{sizeof(sockaddr_storage)},
        socklen_t{1} << 30, static_cast<socklen_t>(-1)}) {
    SCOPED_TRACE("socklen_t " + std::to_string(size));
    EXPECT_EQ(demi_bind(qd, sa, size), EINVAL);
    EXPECT_EQ(demi_connect(&qt, qd, sa, size), EINVAL);
    sockaddr_in peer;
    socklen_t len = size;
    EXPECT_EQ(
        demi_getpeername(pair.client, reinterpret_cast<sockaddr*>(&peer), &len),
        EINVAL);
    struct linger linger = {1, 1};
    EXPECT_EQ(demi_setsockopt(qd, SOL_SOCKET, SO_LINGER, &linger, size),
              EINVAL);
    if (size < sizeof(linger)) {
      len = size;
      EXPECT_EQ(demi_getsockopt(qd, SOL_SOCKET, SO_LINGER, &linger, &len),
                EINVAL);
    }
  }
  EXPECT_EQ(demi_bind(qd, nullptr, sizeof(addr)), EINVAL);
  EXPECT_EQ(demi_connect(nullptr, qd, sa, sizeof(addr)), EINVAL);
  EXPECT_EQ(demi_connect(&qt, qd, nullptr, sizeof(addr)), EINVAL);
  EXPECT_EQ(demi_accept(nullptr, pair.listener), EINVAL);
  EXPECT_EQ(demi_pop(nullptr, pair.client), EINVAL);
  EXPECT_EQ(demi_socket(nullptr, AF_INET, SOCK_STREAM, 0), EINVAL);
  socklen_t len = sizeof(addr);
  EXPECT_EQ(demi_getpeername(pair.client, nullptr, &len), EINVAL);
  EXPECT_EQ(demi_getpeername(pair.client, reinterpret_cast<sockaddr*>(&addr),
                             nullptr),
            EINVAL);
  for (int domain : {AF_INET6, AF_UNIX, -1, INT_MAX}) {
    int out = -1;
    EXPECT_EQ(demi_socket(&out, domain, SOCK_STREAM, 0), ENOTSUP) << domain;
  }
  for (int type : {int{SOCK_RAW}, int{SOCK_SEQPACKET}, 0, -1, INT_MAX}) {
    int out = -1;
    EXPECT_EQ(demi_socket(&out, AF_INET, type, 0), ENOTSUP) << type;
  }
  for (sa_family_t family : {AF_UNSPEC, AF_INET6, AF_UNIX}) {
    sockaddr_in wrong = addr;
    wrong.sin_family = family;
    EXPECT_EQ(demi_bind(qd, Sa(wrong), sizeof(wrong)), ENOTSUP) << family;
    EXPECT_EQ(demi_connect(&qt, qd, Sa(wrong), sizeof(wrong)), ENOTSUP)
        << family;
  }
  ASSERT_EQ(demi_bind(qd, sa, sizeof(addr)), 0);
  for (int backlog : {0, -1, INT_MIN, SOMAXCONN + 1, INT_MAX}) {
    EXPECT_EQ(demi_listen(qd, backlog), EINVAL) << backlog;
  }
  // Options: levels, names and buffers.
  struct linger linger = {1, 1};
  for (int level : {int{SOL_IP}, int{IPPROTO_TCP}, -1, INT_MAX}) {
    EXPECT_EQ(demi_setsockopt(qd, level, SO_LINGER, &linger, sizeof(linger)),
              ENOTSUP)
        << level;
    socklen_t optlen = sizeof(linger);
    EXPECT_EQ(demi_getsockopt(qd, level, SO_LINGER, &linger, &optlen), ENOTSUP)
        << level;
  }
  for (int name :
       {SO_RCVBUF, SO_KEEPALIVE, DEMI_SO_DATAGRAM_STATS, -1, INT_MAX}) {
    EXPECT_EQ(demi_setsockopt(qd, SOL_SOCKET, name, &linger, sizeof(linger)),
              ENOPROTOOPT)
        << name;
    socklen_t optlen = sizeof(linger);
    EXPECT_EQ(demi_getsockopt(qd, SOL_SOCKET, name, &linger, &optlen),
              ENOPROTOOPT)
        << name;
  }
  EXPECT_EQ(demi_setsockopt(qd, SOL_SOCKET, SO_LINGER, nullptr, sizeof(linger)),
            EINVAL);
  socklen_t optlen = sizeof(linger);
  EXPECT_EQ(demi_getsockopt(qd, SOL_SOCKET, SO_LINGER, nullptr, &optlen),
            EINVAL);
  EXPECT_EQ(demi_getsockopt(qd, SOL_SOCKET, SO_LINGER, &linger, nullptr),
            EINVAL);
  // A negative linger time with l_onoff set: refused, and the option keeps
  // its value. With l_onoff clear the time is not used.
  struct linger kept = {1, 5};
  ASSERT_EQ(demi_setsockopt(qd, SOL_SOCKET, SO_LINGER, &kept, sizeof(kept)), 0);
  for (int seconds : {-1, INT_MIN}) {
    struct linger negative = {1, seconds};
    EXPECT_EQ(
        demi_setsockopt(qd, SOL_SOCKET, SO_LINGER, &negative, sizeof(negative)),
        EINVAL)
        << seconds;
  }
  struct linger got = {};
  optlen = sizeof(got);
  EXPECT_EQ(demi_getsockopt(qd, SOL_SOCKET, SO_LINGER, &got, &optlen), 0);
  EXPECT_EQ(got.l_onoff, 1);
  EXPECT_EQ(got.l_linger, 5);
  struct linger off = {0, -1};
  EXPECT_EQ(demi_setsockopt(qd, SOL_SOCKET, SO_LINGER, &off, sizeof(off)), 0);
  // A datagram socket's statistics, with a buffer too small or missing.
  int dgram = -1;
  ASSERT_EQ(demi_socket(&dgram, AF_INET, SOCK_DGRAM, 0), 0);
  demi_datagram_stats_t stats;
  optlen = sizeof(stats) - 1;
  EXPECT_EQ(demi_getsockopt(dgram, SOL_SOCKET, DEMI_SO_DATAGRAM_STATS, &stats,
                            &optlen),
            EINVAL);
  EXPECT_EQ(demi_getsockopt(dgram, SOL_SOCKET, DEMI_SO_DATAGRAM_STATS, nullptr,
                            &optlen),
            EINVAL);
  EXPECT_EQ(demi_getsockopt(dgram, SOL_SOCKET, DEMI_SO_DATAGRAM_STATS, &stats,
                            nullptr),
            EINVAL);
  // demi_pushto's own arguments.
  sockaddr_in dgram_addr = AddrOrDie(NextPort());
  ASSERT_EQ(demi_bind(dgram, Sa(dgram_addr), sizeof(dgram_addr)), 0);
  demi_sgarray_t sga = demi_sgaalloc(8);
  EXPECT_EQ(demi_pushto(nullptr, dgram, &sga, Sa(dgram_addr), sizeof(addr)),
            EINVAL);
  EXPECT_EQ(demi_pushto(&qt, dgram, nullptr, Sa(dgram_addr), sizeof(addr)),
            EINVAL);
  EXPECT_EQ(demi_pushto(&qt, dgram, &sga, nullptr, sizeof(addr)), EINVAL);
  EXPECT_EQ(demi_pushto(&qt, dgram, &sga, Sa(dgram_addr), 3), EINVAL);
  sockaddr_in any = dgram_addr;
  any.sin_addr.s_addr = htonl(INADDR_ANY);
  EXPECT_EQ(demi_pushto(&qt, dgram, &sga, Sa(any), sizeof(any)), EINVAL);
  sockaddr_in port_zero = dgram_addr;
  port_zero.sin_port = 0;
  EXPECT_EQ(demi_pushto(&qt, dgram, &sga, Sa(port_zero), sizeof(port_zero)),
            EINVAL);
  sockaddr_in six = dgram_addr;
  six.sin_family = AF_INET6;
  EXPECT_EQ(demi_pushto(&qt, dgram, &sga, Sa(six), sizeof(six)), ENOTSUP);
  EXPECT_EQ(demi_sgafree(&sga), 0);
  EXPECT_EQ(demi_close(dgram), 0);
  EXPECT_EQ(demi_close(qd), 0);
  ClosePair(pair);
  witness.ExpectUntouched();
}

#pragma GCC diagnostic pop

}  // namespace
