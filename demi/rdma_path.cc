#include "demi/rdma_path.h"

#include <infiniband/verbs.h>

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>

#include "rdma/status_util.h"
#include "rdma/verbs_call.h"

namespace demi {
namespace {

// The public values are the verbs' own, so that a caller who knows verbs
// reads them as such.
static_assert(DEMI_LINK_LAYER_UNSPECIFIED == IBV_LINK_LAYER_UNSPECIFIED);
static_assert(DEMI_LINK_LAYER_INFINIBAND == IBV_LINK_LAYER_INFINIBAND);
static_assert(DEMI_LINK_LAYER_ETHERNET == IBV_LINK_LAYER_ETHERNET);
// The ABI: fixed-size fields only, no padding a compiler could change.
static_assert(sizeof(demi_rdma_path_t) == 120);
static_assert(offsetof(demi_rdma_path_t, gid) == 88);
static_assert(sizeof(demi_rdma_path_t::gid) == sizeof(ibv_gid));

// Bytes of an ibv_mtu; 0 for a value the verbs do not define.
uint32_t MtuBytes(int mtu) {
  if (mtu < IBV_MTU_256 || mtu > IBV_MTU_4096) return 0;
  return 128u << mtu;  // IBV_MTU_256 is 1.
}

uint32_t GidTypeOf(uint32_t type) {
  switch (type) {
    case IBV_GID_TYPE_IB:
      return DEMI_GID_TYPE_IB;
    case IBV_GID_TYPE_ROCE_V1:
      return DEMI_GID_TYPE_ROCE_V1;
    case IBV_GID_TYPE_ROCE_V2:
      return DEMI_GID_TYPE_ROCE_V2;
    default:
      return DEMI_GID_TYPE_UNKNOWN;
  }
}

// What the port of `id` says, and the local address.
absl::StatusOr<demi_rdma_path_t> PortPath(rdma_cm_id* id) {
  if (id == nullptr || id->verbs == nullptr) {
    return rdma::ErrnoError(ENOTCONN, "no device yet");
  }
  demi_rdma_path_t path;
  std::memset(&path, 0, sizeof(path));
  std::snprintf(path.device, sizeof(path.device), "%s",
                ibv_get_device_name(id->verbs->device));
  ibv_port_attr port;
  DEMI_RETURN_IF_ERROR(rdma::CheckRc(
      ibv_query_port(id->verbs, id->port_num, &port), "ibv_query_port"));
  path.port_num = id->port_num;
  path.link_layer = port.link_layer;
  path.active_mtu = MtuBytes(port.active_mtu);
  path.gid_index = -1;
  path.gid_type = DEMI_GID_TYPE_UNKNOWN;
  const sockaddr* local = rdma_get_local_addr(id);
  if (local != nullptr && local->sa_family == AF_INET) {
    std::memcpy(&path.local, local, sizeof(path.local));
  }
  return path;
}

}  // namespace

absl::StatusOr<demi_rdma_path_t> QueryConnectionPath(rdma_cm_id* id) {
  DEMI_ASSIGN_OR_RETURN(demi_rdma_path_t path, PortPath(id));
  if (id->qp == nullptr) return rdma::ErrnoError(ENOTCONN, "no queue pair");
  ibv_qp_attr attr;
  ibv_qp_init_attr init;
  DEMI_RETURN_IF_ERROR(rdma::CheckRc(
      ibv_query_qp(id->qp, &attr, IBV_QP_AV | IBV_QP_PATH_MTU, &init),
      "ibv_query_qp"));
  path.path_mtu = MtuBytes(attr.path_mtu);
  if (!attr.ah_attr.is_global) {
    // InfiniBand within a subnet: packets carry no GRH, so no GID index is
    // in use; the GID is the one the address resolved to.
    std::memcpy(path.gid, id->route.addr.addr.ibaddr.sgid.raw,
                sizeof(path.gid));
    return path;
  }
  path.gid_index = attr.ah_attr.grh.sgid_index;
  // The GID of that index, as the device's table holds it now: the one the
  // QP's packets carry.
  ibv_gid_entry entry;
  DEMI_RETURN_IF_ERROR(rdma::CheckRc(
      ibv_query_gid_ex(id->verbs, id->port_num, path.gid_index, &entry, 0),
      "ibv_query_gid_ex"));
  path.gid_type = GidTypeOf(entry.gid_type);
  std::memcpy(path.gid, entry.gid.raw, sizeof(path.gid));
  return path;
}

absl::StatusOr<demi_rdma_path_t> QueryDatagramPath(rdma_cm_id* id) {
  DEMI_ASSIGN_OR_RETURN(demi_rdma_path_t path, PortPath(id));
  path.path_mtu = path.active_mtu;
  // librdmacm read the bound address's GID from the kernel at the bind.
  std::memcpy(path.gid, id->route.addr.addr.ibaddr.sgid.raw, sizeof(path.gid));
  return path;
}

}  // namespace demi
