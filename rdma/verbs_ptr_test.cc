// The RAII wrappers on a real device: creation, registration and the
// teardown-order rules that the verbs API enforces.
#include "rdma/verbs_ptr.h"

#include <cerrno>
#include <vector>

#include "gtest/gtest.h"
#include "rdma/cm_connection.h"
#include "rdma/status_util.h"
#include "testing/rdma_env.h"
#include "testing/status_matchers.h"

namespace demi::rdma {
namespace {

// A cm id bound to the test device, for its ibv_context.
class VerbsPtrTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(channel_, CreateEventChannel(true));
    ASSERT_OK_AND_ASSIGN(id_, CreateCmId(channel_.get(), nullptr));
    ASSERT_OK_AND_ASSIGN(sockaddr_in addr, demi::testing::TestAddr());
    ASSERT_EQ(rdma_bind_addr(id_.get(), reinterpret_cast<sockaddr*>(&addr)), 0)
        << "rdma_bind_addr: " << errno;
    ASSERT_NE(id_->verbs, nullptr) << "no RDMA device behind the address";
    context_ = id_->verbs;
  }

  EventChannelPtr channel_;
  CmIdPtr id_;
  ibv_context* context_ = nullptr;  // Borrowed from librdmacm.
};

TEST_F(VerbsPtrTest, RegistersAndDeregistersMemory) {
  ASSERT_OK_AND_ASSIGN(PdPtr pd, AllocPd(context_));
  std::vector<std::byte> bytes(1 << 20);
  ASSERT_OK_AND_ASSIGN(
      MrPtr mr, RegisterMr(pd.get(), absl::MakeSpan(bytes),
                           IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_READ));
  EXPECT_EQ(mr->addr, bytes.data());
  EXPECT_EQ(mr->length, bytes.size());
  EXPECT_EQ(mr->pd, pd.get());
  mr.reset();
  EXPECT_EQ(ibv_dealloc_pd(pd.release()), 0);
}

TEST_F(VerbsPtrTest, RemoteWriteWithoutLocalWriteIsEinval) {
  ASSERT_OK_AND_ASSIGN(PdPtr pd, AllocPd(context_));
  std::vector<std::byte> bytes(4096);
  absl::StatusOr<MrPtr> mr =
      RegisterMr(pd.get(), absl::MakeSpan(bytes), IBV_ACCESS_REMOTE_WRITE);
  EXPECT_EQ(ErrnoOf(mr.status()), EINVAL);
}

TEST_F(VerbsPtrTest, DeallocPdWithLiveMrIsEbusy) {
  ASSERT_OK_AND_ASSIGN(PdPtr pd, AllocPd(context_));
  std::vector<std::byte> bytes(4096);
  ASSERT_OK_AND_ASSIGN(MrPtr mr, RegisterMr(pd.get(), absl::MakeSpan(bytes),
                                            IBV_ACCESS_LOCAL_WRITE));
  EXPECT_EQ(ibv_dealloc_pd(pd.get()), EBUSY);
  mr.reset();
  EXPECT_EQ(ibv_dealloc_pd(pd.release()), 0);
}

TEST_F(VerbsPtrTest, DestroyCqWithLiveQpIsEbusy) {
  ASSERT_OK_AND_ASSIGN(PdPtr pd, AllocPd(context_));
  ASSERT_OK_AND_ASSIGN(CqPtr cq, CreateCq(context_, 16, nullptr));
  QpCaps caps;
  caps.max_send_wr = 8;
  caps.max_recv_wr = 8;
  ASSERT_OK_AND_ASSIGN(CmQpPtr qp, CreateRcQp(id_.get(), pd.get(), cq.get(),
                                              cq.get(), nullptr, &caps));
  EXPECT_GE(caps.max_send_wr, 8u);
  EXPECT_EQ(ibv_destroy_cq(cq.get()), EBUSY);
  qp.reset();
  EXPECT_EQ(ibv_destroy_cq(cq.release()), 0);
}

TEST_F(VerbsPtrTest, EmptyCqPollsZero) {
  ASSERT_OK_AND_ASSIGN(CqPtr cq, CreateCq(context_, 4, nullptr));
  ibv_wc wc;
  EXPECT_EQ(ibv_poll_cq(cq.get(), 1, &wc), 0);
}

TEST_F(VerbsPtrTest, SharedReceiveQueueIsCreated) {
  ASSERT_OK_AND_ASSIGN(PdPtr pd, AllocPd(context_));
  ASSERT_OK_AND_ASSIGN(SrqPtr srq, CreateSrq(pd.get(), 64, 1));
  EXPECT_EQ(srq->pd, pd.get());
}

TEST_F(VerbsPtrTest, NonblockingChannelHasNoEvent) {
  rdma_cm_event* event = nullptr;
  EXPECT_EQ(rdma_get_cm_event(channel_.get(), &event), -1);
  EXPECT_EQ(errno, EAGAIN);
}

}  // namespace
}  // namespace demi::rdma
