// The libOS: one per thread that calls demi_init. Owns its thread's
// registered memory pool, receive queues and CQs, queues and tokens, and the
// progress engine that the wait calls drive; the devices and their PDs are
// the process's (SharedDevices). One method per demi_* call; each returns a
// Status whose errno (rdma::ErrnoOf) is what the C API returns.
//
// Member order is teardown order reversed: the cm event channel, then the
// devices (CQs, SRQs), the pool (MRs), the queues (QPs, cm ids), the tokens.
//
// One file per concern, named in the private part below: the queues
// themselves are in queue.h and queue_table.h, the RC setup path in
// rdma_libos_setup.cc and rdma_libos_cm_events.cc, closing in
// rdma_libos_close.cc, and the progress engine, which only polls and
// dispatches, in rdma_libos_poll.cc (docs/design.md, "Code map").
#ifndef DEMI_DEMI_RDMA_LIBOS_H_
#define DEMI_DEMI_RDMA_LIBOS_H_

#include <demi/types.h>
#include <netinet/in.h>
#include <rdma/rdma_cma.h>
#include <time.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "demi/connection.h"
#include "demi/cq_pool.h"
#include "demi/datagram_socket.h"
#include "demi/idle_sleep.h"
#include "demi/limits.h"
#include "demi/port_share.h"
#include "demi/process_ids.h"
#include "demi/qtoken_table.h"
#include "demi/queue.h"
#include "demi/queue_table.h"
#include "demi/sga_pool.h"
#include "demi/thread_device.h"
#include "rdma/cm_event.h"
#include "rdma/verbs_ptr.h"

namespace demi {

// Not thread-safe: the thread that made it calls it.
class RdmaLibOs {
 public:
  // Uses every RDMA device. ENODEV if there is none.
  static absl::StatusOr<std::unique_ptr<RdmaLibOs>> Create();
  ~RdmaLibOs();
  RdmaLibOs(const RdmaLibOs&) = delete;
  RdmaLibOs& operator=(const RdmaLibOs&) = delete;

  absl::StatusOr<int> Socket(int domain, int type, int protocol);
  absl::Status Bind(int qd, const sockaddr* addr, socklen_t size);
  absl::Status Listen(int qd, int backlog);
  absl::StatusOr<demi_qtoken_t> Accept(int qd);
  absl::StatusOr<demi_qtoken_t> Connect(int qd, const sockaddr* addr,
                                        socklen_t size);
  absl::Status Close(int qd);
  // Push, Pop and SgaFree, called once per message, return a plain errno
  // and write the token only on success: no Status to build and take apart.
  int Push(int qd, const demi_sgarray_t& sga, demi_qtoken_t* qt_out);
  absl::StatusOr<demi_qtoken_t> PushTo(int qd, const demi_sgarray_t& sga,
                                       const sockaddr* addr, socklen_t size);
  int Pop(int qd, demi_qtoken_t* qt_out);
  // The waits return a plain errno (0, EINVAL, ETIMEDOUT) and write each
  // result once, straight into `qr_out`. Inline, a wait of one result that
  // is in already (an inline push not staged is done as it returns) takes it
  // without a clock or a progress pass.
  int Wait(demi_qresult_t* qr_out, demi_qtoken_t qt, const timespec* timeout) {
    if (ValidTimeout(timeout) && tokens_.TakeInRing(qt, qr_out)) return 0;
    return WaitSlow(qr_out, qt, timeout);
  }
  int WaitAny(demi_qresult_t* qr_out, int* ready_offset,
              const demi_qtoken_t* qts, int num_qts, const timespec* timeout);
  int WaitNextN(demi_qresult_t* qr_out, int num_qrs, int* num_qrs_out,
                const timespec* timeout) {
    if (num_qrs == 1 && ValidTimeout(timeout) &&
        tokens_.TakeNextDoneInRing(qr_out)) {
      *num_qrs_out = 1;
      return 0;
    }
    return WaitNextNSlow(qr_out, num_qrs, num_qrs_out, timeout);
  }
  demi_sgarray_t SgaAlloc(size_t size);
  int SgaFree(const demi_sgarray_t& sga);
  // demi_sgafree in a thread without a libOS (a worker handed a popped
  // buffer): the buffer goes back to its owner; ENOSYS if it has none,
  // or if this process is a child of a fork (`forked`: its copy of the
  // pools is its parent's). The end of a stream's array is 0 either way.
  static int SgaFreeWithoutLibOs(const demi_sgarray_t& sga, bool forked);
  absl::Status SetSockOpt(int qd, int level, int optname, const void* optval,
                          socklen_t optlen);
  absl::Status GetSockOpt(int qd, int level, int optname, void* optval,
                          socklen_t* optlen);
  absl::Status GetPeerName(int qd, sockaddr* addr, socklen_t* addrlen);

  // Runs the progress engine until every closed connection has delivered
  // what was pushed before its close, or its linger time ran out. For the
  // end of the process (the C API calls it at exit).
  void FinishCloses();
  // Closes every queue the application still has open (its thread is
  // exiting), as demi_close would; FinishCloses then delivers their pushes.
  void CloseAll();

 private:
  // The life of the libOS and the calls on open queues (rdma_libos.cc).
  RdmaLibOs() = default;
  absl::Status Init();
  ThreadDevice* DeviceOf(ibv_context* context);
  // The shared receive queue of `device` a new connection takes its
  // messages from: the first with room, or a new one of kSmallBufferSize
  // buffers.
  absl::StatusOr<SharedReceive*> ReceiveFor(ThreadDevice& device);
  ConnectionEnv EnvFor(ThreadDevice* device, SharedReceive* receive);
  // Writes the length of a message to push to `total`; EINVAL for a bad
  // sga.
  static int CheckLength(const demi_sgarray_t& sga, uint32_t* total);
  // SgaFree of an array this thread's pool did not lend.
  int SgaFreeOtherThread(const demi_sgarray_t& sga);
  // DEMI_SO_RDMA_PATH: asks the device about the queue's QP and port
  // (rdma_path.h). ENOTCONN before there is one.
  absl::Status GetRdmaPath(const Queue& queue, void* optval, socklen_t* optlen);

  // The RC setup path as the application drives it (rdma_libos_setup.cc).
  // A new cm id for stream socket `qd`, bound to `local`: EADDRINUSE,
  // EADDRNOTAVAIL (no device has the address) or another errno.
  absl::StatusOr<rdma::CmIdPtr> BindStreamId(int qd, sockaddr_in local);
  // Creates the QP and Connection of `queue`, whose id is routed.
  absl::Status SetupConnection(Queue& queue);
  // Hands established connections to waiting accepts.
  void MatchAccepts(ListenerState& listener);
  // Accepts `id`, a request for `listener` carrying `private_data`, or
  // rejects it (backlog full, bad private data).
  void AcceptRequest(Queue& listener, rdma::CmIdPtr id,
                     const std::string& private_data);
  // Stops taking connections from the shared listener of `queue`.
  void LeaveShare(Queue& queue);

  // The RC setup path as rdma_cm drives it (rdma_libos_cm_events.cc).
  // Handles every pending rdma_cm event; returns whether there was one.
  bool PollCmEvents();
  void HandleCmEvent(const rdma::CmEvent& event);
  void HandleConnectRequest(const rdma::CmEvent& event);
  // A request another thread's poll of a shared listener handed us.
  void AcceptArrival(Arrival& arrival);
  void HandleEstablished(Queue& queue, const rdma::CmEvent& event);
  // `conn`, accepted but not yet established, has received data: its
  // peer sent the RTU, which may have been lost (no retry comes until the
  // REP's, seconds later, and no DREQ can go before). rdma_cm is told now.
  void EstablishEarly(Connection& conn);
  // A connect that failed goes back to a plain socket, still bound if it
  // was; an accepted one that failed is closed.
  void HandleConnectFailure(Queue& queue, int err);
  void HandleDisconnect(Queue& queue);
  // Disconnects the connections that aborted since the last time.
  void DisconnectAborted();

  // Closing (rdma_libos_close.cc).
  void CloseConnection(Queue& queue);
  // Ends a closed connection's life on the wire: fails what is left with
  // `err`, disconnects; the queue goes once its flushes have drained.
  void EndConnection(Queue& queue, int err);
  // Hides `queue` from the application; Poll destroys it once drained.
  void MarkClosed(Queue& queue);
  // Closed queues: ends finished flushes (or those past their linger time
  // at `now`), destroys drained queues.
  void PollClosed(absl::Time now);
  // Frees the queue `qd` and what it holds of its device (QP, CQ room).
  void Destroy(int qd);

  // The progress engine (rdma_libos_poll.cc): it polls and dispatches.
  // One pass: completions, doorbells, now and then cm events and timers.
  void Poll();
  // The connection of QP number `qpn`; nullptr if it is gone.
  Connection* ConnOf(uint32_t qpn) {
    if (qpn == last_qpn_ && last_conn_ != nullptr) return last_conn_;
    auto it = conn_by_qpn_.find(qpn);
    if (it == conn_by_qpn_.end()) return nullptr;
    last_qpn_ = qpn;
    last_conn_ = it->second;
    return last_conn_;
  }
  // Handles up to kPollBatch completions of each CQ of `device`, then
  // refills its SRQs. Returns whether a CQ may hold more.
  bool PollCompletions(ThreadDevice& device);
  // A poll of one of the CQs of `device` failed: fails its connections.
  void FailCompletionQueue(ThreadDevice& device);
  // Refills the SRQs of `device` (or one of them) and hands the new
  // buffers' credits to the connections waiting for them.
  void RefillReceives(ThreadDevice& device);
  void RefillReceive(ThreadDevice& device, SharedReceive& receive);
  // Calls `f(conn)` for each connection `due` names (a list of queue
  // descriptors, which this empties).
  template <typename F>
  void ForEachDue(std::vector<int>& due, F&& f);
  // Sends the credits of ConnectionEnv::credit_due.
  void FlushDueCredits();
  // Posts the staged sends of ConnectionEnv::doorbell_due.
  void RingDoorbells();
  // Setup or teardown has begun: the rdma_cm channel is looked at every
  // kCmPollInterval passes again.
  void ExpectCmEvents();
  // What Poll does every kCmPollInterval passes only, with one look at the
  // clock: closed queues, receive refills, keepalive ticks. None of it is
  // urgent to the microsecond.
  void PollTimers();

  // The waits' rest, for results not taken at the call (rdma_libos_wait.cc):
  // the slow parts make one pass and take again, the loops the rest.
  int WaitSlow(demi_qresult_t* qr_out, demi_qtoken_t qt,
               const timespec* timeout);
  int WaitLoop(demi_qresult_t* qr_out, demi_qtoken_t qt,
               const timespec* timeout);
  int WaitNextNSlow(demi_qresult_t* qr_out, int num_qrs, int* num_qrs_out,
                    const timespec* timeout);
  int WaitNextNLoop(demi_qresult_t* qr_out, int num_qrs, int* num_qrs_out,
                    const timespec* timeout);
  // Takes the first of `qts` that is done, if any (WaitAny).
  bool TakeAny(demi_qresult_t* qr_out, int* ready_offset,
               const demi_qtoken_t* qts, int num_qts);
  static bool ValidTimeout(const timespec* timeout) {
    return timeout == nullptr ||
           (timeout->tv_sec >= 0 && timeout->tv_nsec >= 0 &&
            timeout->tv_nsec < 1000000000);
  }
  // Sleeping (rdma_libos_sleep.cc). A wait's sleep, once its spin budget is
  // spent: arms every CQ, polls once more, and blocks until a completion,
  // an rdma_cm event, `deadline` or the next timer. Returns at once if
  // `done()` or the engine has work to do now.
  void Sleep(absl::Time deadline, absl::FunctionRef<bool()> done);
  // Work the next pass does at once, so a wait must not sleep on it.
  bool HasUrgentWork() const {
    return !credit_due_.empty() || !doorbell_due_.empty() ||
           !aborted_.empty() || pool_->HasOtherThreadFrees();
  }
  // When the timers want their next run (PollTimers): keepalive ticks, and
  // every kSleepTimerInterval while closes drain, datagram sockets are
  // bound or receive refills wait for memory.
  absl::Time NextTimer(absl::Time now) const;
  // The counts ThreadDevice::armed compares with, as they are now.
  ThreadDevice::ArmedCqs ArmedCqsNow(const ThreadDevice& device) const;

  // Datagram sockets (rdma_libos_datagram.cc; the per-datagram calls are
  // inline, below).
  absl::Status BindDatagram(Queue& queue, const sockaddr_in& local);
  absl::StatusOr<demi_qtoken_t> ConnectDatagram(Queue& queue,
                                                const sockaddr_in& remote);
  // `dest` null: the socket's default destination (demi_push).
  // Plain errnos, as Push and Pop: no Status on the per-datagram path.
  int PushDatagram(Queue& queue, const demi_sgarray_t& sga, uint32_t length,
                   const sockaddr_in* dest, demi_qtoken_t* qt_out);
  int PopDatagram(Queue& queue, demi_qtoken_t* qt_out);
  absl::Status GetDatagramStats(Queue& queue, void* optval, socklen_t* optlen);

  // Declared in teardown order reversed (see the file comment).
  rdma::EventChannelPtr cm_channel_;
  std::unique_ptr<ArrivalInbox> inbox_;  // Its ids are on cm_channel_.
  std::unique_ptr<IdleSleep> sleep_;     // Its channels outlive every CQ.
  std::vector<std::unique_ptr<ThreadDevice>> devices_;
  std::unique_ptr<SgaPool> pool_;
  QueueTable queues_;
  // Each QP's connection, for completions: one lookup per completion,
  // none for a completion of the QP the one before came from.
  absl::flat_hash_map<uint32_t, Connection*> conn_by_qpn_;
  // The most connections held since the heap was last trimmed.
  size_t connections_high_ = 0;
  uint32_t last_qpn_ = 0;
  Connection* last_conn_ = nullptr;  // Null: nothing cached.
  absl::flat_hash_set<int> closed_;  // Closed queues still draining.
  std::vector<int> credit_due_;      // See ConnectionEnv::credit_due.
  std::vector<int> stranded_;        // See ConnectionEnv::stranded.
  // When the timers next call the connections in stranded_.
  absl::Time next_stranded_ = absl::InfinitePast();
  std::vector<int> doorbell_due_;  // See ConnectionEnv::doorbell_due.
  // What ForEachDue and RefillReceives walk: kept, so that swapping
  // lists back and forth allocates nothing per pass.
  std::vector<int> due_scratch_;
  std::vector<int> waiting_scratch_;
  absl::flat_hash_set<int> aborted_;  // See ConnectionEnv::aborted.
  // The shared listeners this thread listens on, polled with the rdma_cm
  // channel.
  std::vector<SharedListener*> shares_;
  // The bound datagram sockets, polled on every pass.
  std::vector<DatagramSocket*> datagrams_;
  uint64_t datagrams_made_ = 0;  // See ThreadDevice::ArmedCqs.
  uint32_t poll_passes_ = 0;
  PushOpCache push_ops_;  // See ConnectionEnv::push_ops.
  // Passes until the next look at the rdma_cm channel, the interval after
  // that one, and the looks in a row that found nothing (see
  // ExpectCmEvents and Poll).
  uint32_t cm_countdown_ = kCmPollInterval;
  uint32_t cm_interval_ = kCmPollInterval;
  uint32_t cm_quiet_looks_ = 0;
  absl::Duration keepalive_ = kDefaultKeepalive;
  // Keepalive ticks a probe may stay out (see Connection::KeepaliveTick).
  uint32_t stall_ticks_ = kStallProbeIntervals * kKeepaliveTicks;
  absl::Duration spin_ = kDefaultSpin;  // DEMI_SPIN_US.
  // Set while a pass follows a sleep: every send CQ is polled then (the
  // event may be a failed unsignalled send, which idle passes look for
  // only now and then).
  bool poll_all_sends_ = false;
  // The last pass took a full batch from some CQ: it may hold more, which
  // came before the CQ was armed and so will raise no event.
  bool polled_full_batch_ = false;
  absl::Time next_tick_ = absl::InfinitePast();
  const uint64_t token_range_ = TakeTokenRange();  // Given back at the end.
  QTokenTable tokens_{token_range_};
};

// Inline: once per message, and the C API's calls are thin.
inline int RdmaLibOs::CheckLength(const demi_sgarray_t& sga, uint32_t* total) {
  // EINVAL: no segments or too many, an empty one, or more than a piece.
  if (sga.sga_numsegs == 0 || sga.sga_numsegs > DEMI_SGARRAY_MAXSIZE) {
    return EINVAL;
  }
  uint64_t sum = 0;
  for (uint32_t i = 0; i < sga.sga_numsegs; ++i) {
    if (sga.sga_segs[i].sgaseg_buf == nullptr ||
        sga.sga_segs[i].sgaseg_len == 0) {
      return EINVAL;
    }
    sum += sga.sga_segs[i].sgaseg_len;
  }
  if (sum > kMaxMessageSize) return EINVAL;
  *total = static_cast<uint32_t>(sum);
  return 0;
}

inline int RdmaLibOs::Push(int qd, const demi_sgarray_t& sga,
                           demi_qtoken_t* qt_out) {
  uint32_t total = 0;
  if (int err = CheckLength(sga, &total); err != 0) return err;
  Queue* queue = queues_.Open(qd);
  if (queue == nullptr) return EBADF;
  ConnectionState* connection = queue->connected();
  if (connection == nullptr) {
    if (queue->datagram() == nullptr) return ENOTCONN;
    return PushDatagram(*queue, sga, total, nullptr, qt_out);
  }
  int err = connection->conn->Push(sga, total, qt_out);
  return err == ENOMEM ? EAGAIN : err;
}

inline int RdmaLibOs::Pop(int qd, demi_qtoken_t* qt_out) {
  Queue* queue = queues_.Open(qd);
  if (queue == nullptr) return EBADF;
  ConnectionState* connection = queue->connected();
  if (connection == nullptr) {
    if (queue->datagram() == nullptr) return ENOTCONN;
    return PopDatagram(*queue, qt_out);
  }
  demi_qtoken_t qt = tokens_.Add(qd, DEMI_OPC_POP);
  connection->conn->Pop(qt);
  *qt_out = qt;
  return 0;
}

inline int RdmaLibOs::PushDatagram(Queue& queue, const demi_sgarray_t& sga,
                                   uint32_t length, const sockaddr_in* dest,
                                   demi_qtoken_t* qt_out) {
  DatagramSocket* socket = queue.dgram();
  if (socket == nullptr) return EDESTADDRREQ;  // Not bound.
  if (dest == nullptr) {
    if (!socket->has_peer) return EDESTADDRREQ;  // No demi_connect.
    dest = &socket->peer;
  }
  if (length > kMaxDatagram) return EMSGSIZE;  // Longer than UDP allows.
  if (int err = socket->PushTo(sga, length, *dest, qt_out); err != 0) {
    return err;
  }
  // A new destination is resolved through rdma_cm; a known one costs
  // nothing here.
  if (socket->Resolving()) ExpectCmEvents();
  return 0;
}

inline int RdmaLibOs::PopDatagram(Queue& queue, demi_qtoken_t* qt_out) {
  DatagramSocket* socket = queue.dgram();
  if (socket == nullptr) return EDESTADDRREQ;  // Not bound.
  demi_qtoken_t qt = tokens_.Add(queue.qd, DEMI_OPC_POP);
  socket->Pop(qt);
  *qt_out = qt;
  return 0;
}

inline int RdmaLibOs::SgaFree(const demi_sgarray_t& sga) {
  if (sga.sga_numsegs == 0 || sga.sga_numsegs > DEMI_SGARRAY_MAXSIZE) {
    return EINVAL;
  }
  if (Buffer* buffer = pool_->Reclaim(sga.sga_buf)) {
    pool_->Unref(buffer);
    return 0;
  }
  return SgaFreeOtherThread(sga);
}

}  // namespace demi

#endif  // DEMI_DEMI_RDMA_LIBOS_H_
