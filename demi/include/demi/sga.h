/**
 * @file sga.h
 * @brief Allocating and releasing scatter-gather arrays in the library's
 * registered memory.
 */
#ifndef DEMI_SGA_H_IS_INCLUDED
#define DEMI_SGA_H_IS_INCLUDED

#include <demi/cc.h>
#include <demi/types.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * @brief Allocates a one-segment scatter-gather array of @p size bytes in
 * memory registered with the RDMA device, so that pushing it is zero-copy.
 *
 * @param size Bytes wanted: 1 up to DEMI_MAX_MESSAGE_SIZE (16 MiB).
 *
 * @return The array, with sga_numsegs 1 and sga_segs[0] of @p size bytes.
 * On failure a null array: sga_buf NULL and sga_numsegs 0. That happens
 * when @p size is 0 or above the maximum, when demi_init has not run, and
 * when the library's memory limit is reached.
 */
ATTR_NODISCARD extern demi_sgarray_t demi_sgaalloc(size_t size);

/**
 * @brief Releases a scatter-gather array obtained from demi_sgaalloc or a
 * completed demi_pop.
 *
 * Free-protection: an array that a push still uses stays valid for that
 * push; its memory is recycled only when the push completes.
 *
 * Any thread may free an array, also one without a libOS: it goes back to
 * the thread whose libOS handed it out, which takes it in at its next
 * pass (or its next demi_sgaalloc), checking it then. So a second free of
 * one array from another thread returns 0 and is dropped there.
 *
 * The zero-length array of a pop at the end of a stream (EOF: sga_buf
 * NULL, one segment of NULL and 0 bytes) holds nothing; freeing it returns
 * 0, in any thread.
 *
 * @param sga The array.
 *
 * @return 0 on success, or a positive error code:
 * - EINVAL: @p sga is NULL, has no segments or more than
 *   DEMI_SGARRAY_MAXSIZE, or its sga_buf is not an array the application
 *   holds (never allocated, or already freed in this thread).
 * - ENOSYS: no thread's libOS handed it out and this thread has none (or
 *   @p sga is NULL there).
 */
extern int demi_sgafree(demi_sgarray_t *sga);

/** Largest message (and demi_sgaalloc size) the library handles. */
#define DEMI_MAX_MESSAGE_SIZE (16u * 1024u * 1024u)

#ifdef __cplusplus
}
#endif

#endif /* DEMI_SGA_H_IS_INCLUDED */
