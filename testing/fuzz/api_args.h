// Arguments for api_fuzzer's calls, each picked by a byte of the input:
// mostly good ones (the queues and tokens the input holds, addresses of
// its own listeners), often bad ones (closed queues, edge values, NULL,
// wrong sizes and families, malformed scatter-gather arrays).
#ifndef DEMI_TESTING_FUZZ_API_ARGS_H_
#define DEMI_TESTING_FUZZ_API_ARGS_H_

#include <demi/types.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>

#include <cstddef>
#include <cstdint>

#include "testing/fuzz/api_model.h"

namespace demi_fuzz {

inline constexpr uint16_t kBasePort = 47000;  // Ports kBasePort..+15 bound.
inline constexpr uint16_t kDeadPort = 47100;  // Nobody ever listens there.
inline constexpr size_t kForeignSize = 128 * 1024;  // Registered per push.

// The RDMA device's address (DEMI_TEST_ADDR), for Addr and PickAddr.
void SetTestAddr(in_addr addr);
sockaddr_in Addr(uint16_t port);

int PickQd(const Model& model, uint8_t byte);
// `extra` varies the edge values.
demi_qtoken_t PickToken(const Model& model, uint8_t byte, uint8_t extra);
// Writes an address for `kind` (good at `port`, or bad) into `buf` and
// what size to pass with it into `size`; returns nullptr for NULL.
const sockaddr* PickAddr(uint8_t kind, uint16_t port, sockaddr_storage* buf,
                         socklen_t* size);
// {0, 0}, a millisecond or less, or an invalid interval.
timespec* PickTimeout(uint8_t kind, timespec* buf);
bool ValidTimeout(const timespec& t);
// Fills `sga`: library memory (the model's held arrays), foreign memory
// (`stack`, of `stack_size` bytes, or a static buffer), or a bad array.
void BuildSga(Model& model, uint8_t kind, uint8_t c, char* stack,
              size_t stack_size, demi_sgarray_t* sga);

}  // namespace demi_fuzz

#endif  // DEMI_TESTING_FUZZ_API_ARGS_H_
