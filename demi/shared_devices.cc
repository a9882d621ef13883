#include "demi/shared_devices.h"

#include <demi/sga.h>
#include <rdma/rdma_cma.h>

#include <algorithm>
#include <cerrno>
#include <mutex>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "demi/limits.h"
#include "rdma/status_util.h"
#include "rdma/verbs_call.h"
#include "rdma/verbs_ptr.h"

namespace demi {
namespace {

// Soft-RoCE's ibv_device_attr::vendor_id (RXE_VENDOR_ID in the kernel).
constexpr uint32_t kSoftRoceVendorId = 0xFFFFFF;

}  // namespace
namespace {

std::mutex devices_mutex;  // std::mutex: see process_ids.cc.
// Guarded by devices_mutex. Reachable to the end: not a leak.
std::vector<SharedDevice>* devices = nullptr;
// Guarded by devices_mutex: kept so that it stays reachable (not a leak);
// volatile, or the store nobody reads back would be optimized away.
ibv_context** volatile device_list = nullptr;

absl::StatusOr<std::vector<SharedDevice>> Open() {
  int count = 0;
  ibv_context** list = rdma_get_devices(&count);
  if (list == nullptr || count == 0) {
    if (list != nullptr) rdma_free_devices(list);
    return rdma::ErrnoError(ENODEV, "no RDMA device");
  }
  // Never freed once opened: freeing the list may close the contexts
  // (librdmacm counts their users), and they serve the process to its end.
  std::vector<ibv_context*> contexts(list, list + count);
  absl::Cleanup free_list = [list] { rdma_free_devices(list); };
  std::vector<SharedDevice> opened;
  std::vector<rdma::PdPtr> pds;
  for (int i = 0; i < count; ++i) {
    SharedDevice device;
    device.context = contexts[i];
    device.index = i;
    ibv_device_attr attr = {};
    DEMI_RETURN_IF_ERROR(rdma::CheckRc(ibv_query_device(device.context, &attr),
                                       "ibv_query_device"));
    device.max_send_sge =
        static_cast<uint32_t>(std::min(attr.max_sge, DEMI_SGARRAY_MAXSIZE + 1));
    device.max_cqe = attr.max_cqe;
    // Once here: a query per connect was two system calls more each.
    device.read_depth = static_cast<uint8_t>(
        std::max(1, std::min({int{kReadDepth}, attr.max_qp_rd_atom,
                              attr.max_qp_init_rd_atom})));
    // rxe reports RXE_VENDOR_ID; its devices are named rxe<N> by default.
    device.binds_after_drain =
        attr.vendor_id == kSoftRoceVendorId ||
        absl::StartsWith(ibv_get_device_name(device.context->device), "rxe");
    DEMI_ASSIGN_OR_RETURN(rdma::PdPtr pd, rdma::AllocPd(device.context));
    device.pd = pd.get();
    pds.push_back(std::move(pd));
    opened.push_back(device);
  }
  for (rdma::PdPtr& pd : pds) pd.release();  // Kept for the process's life.
  std::move(free_list).Cancel();
  device_list = list;
  return opened;
}

}  // namespace

absl::StatusOr<const std::vector<SharedDevice>*> SharedDevices() {
  std::lock_guard<std::mutex> lock(devices_mutex);
  if (devices == nullptr) {
    DEMI_ASSIGN_OR_RETURN(std::vector<SharedDevice> opened, Open());
    devices = new std::vector<SharedDevice>(std::move(opened));
  }
  return devices;
}

}  // namespace demi
