#include "client.h"

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "rdma/status_util.h"
#include "tools/demi_tool.h"

namespace kv {
namespace {

absl::Status CodeStatus(Code code) {
  switch (code) {
    case Code::kOk:
      return absl::OkStatus();
    case Code::kNotFound:
      return absl::NotFoundError("no such key");
    case Code::kBadRequest:
      return absl::InvalidArgumentError("server rejected the request");
    case Code::kOutOfSpace:
      return absl::ResourceExhaustedError("the server's table is full");
  }
  return absl::DataLossError("unknown code");
}

}  // namespace

absl::StatusOr<std::unique_ptr<Client>> Client::Connect(
    const sockaddr_in& server, absl::Duration timeout) {
  DEMI_ASSIGN_OR_RETURN(int qd, demi::tools::Connect(server, timeout));
  return std::unique_ptr<Client>(new Client(qd, timeout));
}

Client::~Client() { demi_close(qd_); }

absl::StatusOr<uint64_t> Client::Start(Op op, absl::string_view key,
                                       absl::string_view value) {
  if (!ValidKey(key) || !ValidValue(value)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "key of ", key.size(), " bytes (1 to ", kMaxKeySize, "), value of ",
        value.size(), " (at most ", kMaxValueSize, ")"));
  }
  size_t size = RequestSize(key, value);
  demi_sgarray_t sga = demi_sgaalloc(size);
  if (sga.sga_numsegs == 0) return absl::ResourceExhaustedError("sgaalloc");
  uint64_t id = next_id_++;
  WriteRequest(op, id, key, value,
               static_cast<char*>(sga.sga_segs[0].sgaseg_buf));
  int err = demi_push(&push_qt_, qd_, &sga);
  demi_sgafree(&sga);  // The push keeps what it needs.
  if (err != 0) return demi::rdma::ErrnoError(err, "demi_push");
  if (err = demi_pop(&pop_qt_, qd_); err != 0) {
    return demi::rdma::ErrnoError(err, "demi_pop");
  }
  return id;
}

absl::StatusOr<Response> Client::ParseReply(const demi_sgarray_t& sga,
                                            std::string* value) {
  demi_sgarray_t copy = sga;
  if (copy.sga_numsegs != 1 || copy.sga_segs[0].sgaseg_len == 0) {
    if (copy.sga_numsegs > 0) demi_sgafree(&copy);
    return absl::UnavailableError("server closed the connection");
  }
  absl::string_view message(
      static_cast<const char*>(sga.sga_segs[0].sgaseg_buf),
      sga.sga_segs[0].sgaseg_len);
  absl::StatusOr<Response> response = ParseResponse(message);
  if (response.ok() && value != nullptr)
    value->assign(response->value.data(), response->value.size());
  if (response.ok()) response->value = {};  // The sga goes away now.
  demi_sgafree(&copy);
  return response;
}

absl::StatusOr<Response> Client::Call(Op op, absl::string_view key,
                                      absl::string_view value,
                                      std::string* out) {
  DEMI_ASSIGN_OR_RETURN(uint64_t id, Start(op, key, value));
  DEMI_RETURN_IF_ERROR(
      demi::tools::Wait(push_qt_, timeout_, "push request").status());
  DEMI_ASSIGN_OR_RETURN(demi_qresult_t qr,
                        demi::tools::Wait(pop_qt_, timeout_, "pop reply"));
  DEMI_ASSIGN_OR_RETURN(Response response, ParseReply(qr.qr_value.sga, out));
  if (response.id != id) {
    return absl::DataLossError(
        absl::StrCat("reply to request ", response.id, ", expected ", id));
  }
  return response;
}

absl::StatusOr<std::string> Client::Get(absl::string_view key) {
  std::string value;
  DEMI_ASSIGN_OR_RETURN(Response response, Call(Op::kGet, key, {}, &value));
  DEMI_RETURN_IF_ERROR(CodeStatus(response.code));
  return value;
}

absl::Status Client::Put(absl::string_view key, absl::string_view value) {
  DEMI_ASSIGN_OR_RETURN(Response response, Call(Op::kPut, key, value, nullptr));
  return CodeStatus(response.code);
}

absl::Status Client::Delete(absl::string_view key) {
  DEMI_ASSIGN_OR_RETURN(Response response, Call(Op::kDelete, key, {}, nullptr));
  return CodeStatus(response.code);
}

}  // namespace kv
