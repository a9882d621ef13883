#include "tools/message_server.h"

#include <cerrno>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "rdma/status_util.h"
#include "tools/demi_tool.h"

namespace demi::tools {

absl::StatusOr<int> ListenShared(const sockaddr_in& addr, int backlog) {
  int qd = -1;
  if (int err = demi_socket(&qd, AF_INET, SOCK_STREAM, 0); err != 0) {
    return rdma::ErrnoError(err, "demi_socket");
  }
  int one = 1;
  int err = demi_setsockopt(qd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
  if (err != 0) {
    demi_close(qd);
    return rdma::ErrnoError(err, "demi_setsockopt SO_REUSEPORT");
  }
  const sockaddr* sa = reinterpret_cast<const sockaddr*>(&addr);
  if (err = demi_bind(qd, sa, sizeof(addr)); err != 0) {
    demi_close(qd);
    return rdma::ErrnoError(
        err,
        absl::StrCat("demi_bind ", AddrString(addr),
                     err == EADDRNOTAVAIL ? " (no RDMA device has it)" : "",
                     err == EADDRINUSE ? " (taken by another process?)" : ""));
  }
  if (err = demi_listen(qd, backlog); err != 0) {
    demi_close(qd);
    return rdma::ErrnoError(err, "demi_listen");
  }
  return qd;
}

absl::Status ServeMessages(
    int listener, const ServeOptions& options,
    absl::FunctionRef<bool(int qd, demi_sgarray_t& sga)> on_message,
    absl::FunctionRef<void(int qd, int err)> on_end) {
  demi_qtoken_t qt = 0;
  if (int err = demi_accept(&qt, listener); err != 0) {
    return rdma::ErrnoError(err, "demi_accept");
  }
  absl::flat_hash_set<int> open;
  absl::flat_hash_set<int> held;  // Pops held back by can_read.
  int own_ended = 0;
  auto ended = [&] {
    return options.ended != nullptr ? options.ended->load() : own_ended;
  };
  auto end = [&](int qd, int err) {
    if (open.erase(qd) == 0) return;
    held.erase(qd);
    on_end(qd, err);
    demi_close(qd);
    ++own_ended;
    if (options.ended != nullptr) options.ended->fetch_add(1);
  };
  auto pop = [&](int qd) {
    if (options.can_read && !options.can_read(qd)) {
      held.insert(qd);
      return;
    }
    if (int err = demi_pop(&qt, qd); err != 0) end(qd, err);
  };
  while ((options.exit_after == 0 || ended() < options.exit_after) &&
         (options.stop == nullptr || !*options.stop)) {
    demi_qresult_t qr;
    DEMI_ASSIGN_OR_RETURN(bool got, WaitNext(&qr, kTick));
    if (!got) continue;
    switch (qr.qr_opcode) {
      case DEMI_OPC_ACCEPT:
        open.insert(qr.qr_value.ares.qd);
        if (options.on_accept) options.on_accept(qr.qr_value.ares.qd);
        pop(qr.qr_value.ares.qd);
        if (int err = demi_accept(&qt, listener); err != 0) {
          return rdma::ErrnoError(err, "demi_accept");
        }
        break;
      case DEMI_OPC_POP:
        if (SgaLength(qr.qr_value.sga) == 0) {  // EOF: the client is done.
          end(qr.qr_qd, 0);
        } else if (!on_message(qr.qr_qd, qr.qr_value.sga)) {
          end(qr.qr_qd, EPROTO);
        } else {
          pop(qr.qr_qd);
        }
        break;
      case DEMI_OPC_FAILED:
        if (qr.qr_qd == listener) {
          return rdma::ErrnoError(static_cast<int>(qr.qr_ret), "accept");
        }
        // A client went away, perhaps mid-request: only its queue ends.
        end(qr.qr_qd, static_cast<int>(qr.qr_ret));
        break;
      case DEMI_OPC_PUSH:  // A reply went out.
        if (options.on_push_done) options.on_push_done(qr.qr_qd);
        if (held.contains(qr.qr_qd) && open.contains(qr.qr_qd)) {
          held.erase(qr.qr_qd);
          pop(qr.qr_qd);
        }
        break;
      default:
        break;
    }
  }
  return absl::OkStatus();
}

}  // namespace demi::tools
