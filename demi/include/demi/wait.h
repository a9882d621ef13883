/**
 * @file wait.h
 * @brief Waiting for asynchronous operations to complete.
 *
 * The wait calls also drive the library: they poll the RDMA completion
 * queues and connection events. Completions of other operations found while
 * waiting are kept for later waits. A successful wait consumes the token it
 * returns; waiting on it again is EINVAL. Timeouts are intervals: NULL
 * waits forever, {0, 0} polls once.
 *
 * A wait spins (polls) for up to 100 us, then sleeps until a completion, a
 * connection event or its timeout wakes it, so an idle wait costs almost no
 * CPU: it arms the completion queues' notification, polls once more, and
 * blocks in epoll_wait on their completion channels and the rdma_cm
 * channel. The library's own work (keepalive probes, closes that drain,
 * datagram reassembly) goes on while it sleeps. DEMI_SPIN_US sets the spin
 * budget in microseconds: 0 sleeps at once, -1 spins forever (lowest
 * latency, a core per waiting thread).
 *
 * With -std=c99, define _POSIX_C_SOURCE 199309L or higher for struct
 * timespec.
 */
#ifndef DEMI_WAIT_H_IS_INCLUDED
#define DEMI_WAIT_H_IS_INCLUDED

#include <demi/cc.h>
#include <demi/types.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * @brief Waits for the operation of token @p qt.
 *
 * @param qr_out Receives the operation's result. A failed operation still
 *        makes the wait return 0: its qr_opcode is DEMI_OPC_FAILED and
 *        qr_ret its errno.
 * @param qt The operation's token.
 * @param timeout How long to wait; NULL forever.
 *
 * @return 0 when the operation completed (the token is consumed), or:
 * - EINVAL: @p qr_out is NULL, @p qt is not a token of an operation that
 *   has not been waited for yet, or @p timeout is negative or its tv_nsec
 *   is not below 1,000,000,000.
 * - ETIMEDOUT: the operation did not complete in time (the token stays
 *   valid).
 * - ENOSYS: demi_init has not run.
 */
ATTR_NONNULL(1)
extern int demi_wait(demi_qresult_t *qr_out, demi_qtoken_t qt,
                     const struct timespec *timeout);

/**
 * @brief Waits for the first of several operations.
 *
 * Tokens that have already completed are returned first, in array order.
 *
 * @param qr_out Receives the result of the completed operation.
 * @param ready_offset Receives its index in @p qts.
 * @param qts The tokens.
 * @param num_qts How many tokens @p qts holds (0 waits for the timeout).
 * @param timeout How long to wait; NULL forever.
 *
 * @return 0 when one operation completed (its token is consumed), or:
 * - EINVAL: @p qr_out or @p ready_offset is NULL, @p qts is NULL while
 *   @p num_qts > 0, @p num_qts < 0, any token is invalid, or @p timeout is
 *   negative or its tv_nsec is not below 1,000,000,000.
 * - ETIMEDOUT: none completed in time.
 * - ENOSYS: demi_init has not run.
 */
ATTR_NONNULL(1, 2)
extern int demi_wait_any(demi_qresult_t *qr_out, int *ready_offset,
                         const demi_qtoken_t qts[], int num_qts,
                         const struct timespec *timeout);

/**
 * @brief Returns the results of any completed operations, up to
 * @p num_qrs, in completion order, without naming tokens.
 *
 * Returns as soon as @p num_qrs results are in; otherwise waits until the
 * timeout, and then the results gathered so far are valid too.
 *
 * @param qr_out Array of @p num_qrs results.
 * @param num_qrs Its size (at least 1).
 * @param num_qrs_out Receives how many results were written.
 * @param timeout How long to wait; NULL forever.
 *
 * @return 0 when @p num_qrs results were written, or:
 * - EINVAL: @p qr_out or @p num_qrs_out is NULL, @p num_qrs <= 0, or
 *   @p timeout is negative or its tv_nsec is not below 1,000,000,000.
 * - ETIMEDOUT: the time ran out with fewer results (*num_qrs_out says how
 *   many, possibly some).
 * - ENOSYS: demi_init has not run.
 */
ATTR_NONNULL(1, 3)
extern int demi_wait_next_n(demi_qresult_t *qr_out, int num_qrs,
                            int *num_qrs_out, const struct timespec *timeout);

#ifdef __cplusplus
}
#endif

#endif /* DEMI_WAIT_H_IS_INCLUDED */
