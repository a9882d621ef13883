/**
 * @file types.h
 * @brief Types of the Demikernel C API: scatter-gather arrays, queue tokens
 * and operation results.
 *
 * Source-compatible with Demikernel's headers (October 2024). One deliberate
 * difference: DEMI_SGARRAY_MAXSIZE is 16, not 1, so that one push can gather
 * several segments into one RDMA send. This changes sizeof(demi_sgarray_t)
 * and sizeof(demi_qresult_t): programs must be compiled against these
 * headers (source-, not binary-compatible).
 */
#ifndef DEMI_TYPES_H_IS_INCLUDED
#define DEMI_TYPES_H_IS_INCLUDED

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Most segments one scatter-gather array holds. */
#define DEMI_SGARRAY_MAXSIZE 16

/** Identifies one asynchronous operation until a wait consumes it. */
typedef uint64_t demi_qtoken_t;

/** One segment: a pointer and a length in bytes. */
typedef struct __attribute__((__packed__)) demi_sgaseg {
  void *sgaseg_buf;    /**< The segment's bytes. */
  uint32_t sgaseg_len; /**< Its length in bytes. */
} demi_sgaseg_t;

/** A scatter-gather array: one message of up to DEMI_SGARRAY_MAXSIZE
 * segments. */
typedef struct __attribute__((__packed__)) demi_sgarray {
  void *sga_buf;        /**< Reserved for the library: its buffer handle. */
  uint32_t sga_numsegs; /**< How many of sga_segs are used (1 or more). */
  demi_sgaseg_t sga_segs[DEMI_SGARRAY_MAXSIZE]; /**< The segments. */
  struct sockaddr_in sga_addr; /**< Source address (datagram pops). */
} demi_sgarray_t;

/** The kind of operation a result reports. */
typedef enum demi_opcode {
  DEMI_OPC_INVALID = 0, /**< Not an operation. */
  DEMI_OPC_PUSH = 1,    /**< demi_push or demi_pushto completed. */
  DEMI_OPC_POP = 2,     /**< demi_pop completed: qr_value.sga is valid. */
  DEMI_OPC_ACCEPT = 3,  /**< demi_accept completed: qr_value.ares is valid. */
  DEMI_OPC_CONNECT = 4, /**< demi_connect completed. */
  DEMI_OPC_CLOSE = 5,   /**< A close completed. */
  DEMI_OPC_FAILED = 6,  /**< The operation failed: qr_ret is the errno. */
} demi_opcode_t;

/** What a completed accept returns. */
typedef struct __attribute__((__packed__)) demi_accept_result {
  int32_t qd;              /**< The new connection's queue descriptor. */
  struct sockaddr_in addr; /**< The peer's address. */
} demi_accept_result_t;

/** The result of one operation, filled in by the wait calls. */
typedef struct __attribute__((__packed__)) demi_qresult {
  enum demi_opcode qr_opcode; /**< What completed (or DEMI_OPC_FAILED). */
  int32_t qr_qd;              /**< The queue the operation was on. */
  demi_qtoken_t qr_qt;        /**< The operation's token. */
  int64_t qr_ret;             /**< 0, or the errno of a failed operation. */
  union {
    demi_sgarray_t sga;        /**< DEMI_OPC_POP: the message. */
    demi_accept_result_t ares; /**< DEMI_OPC_ACCEPT: the new connection. */
  } qr_value;
} demi_qresult_t;

/** What a datagram socket counted, read with demi_getsockopt(qd,
 * SOL_SOCKET, DEMI_SO_DATAGRAM_STATS, ...). Drops are counted once per
 * datagram; loss on the wire or at a peer is not seen here. */
typedef struct demi_datagram_stats {
  uint64_t sent;                       /**< Datagrams whose pushes succeeded. */
  uint64_t received;                   /**< Whole datagrams received. */
  uint64_t dropped_malformed;          /**< Bad header or spoofed source. */
  uint64_t dropped_queue_full;         /**< Too many received and not popped. */
  uint64_t dropped_no_buffer;          /**< No memory for the datagram. */
  uint64_t dropped_reassembly_timeout; /**< Fragments missing in time. */
  uint64_t dropped_reassembly_evicted; /**< Made room for newer ones. */
  uint64_t dropped_reassembly_invalid; /**< Fragments that disagree. */
} demi_datagram_stats_t;

/** demi_rdma_path_t.link_layer: the port's link layer (the values of
 * IBV_LINK_LAYER_*). */
#define DEMI_LINK_LAYER_UNSPECIFIED 0
#define DEMI_LINK_LAYER_INFINIBAND 1
#define DEMI_LINK_LAYER_ETHERNET 2

/** demi_rdma_path_t.gid_type: the kind of the source GID. */
#define DEMI_GID_TYPE_UNKNOWN 0 /**< No GID index is fixed (datagrams). */
#define DEMI_GID_TYPE_IB 1      /**< InfiniBand. */
#define DEMI_GID_TYPE_ROCE_V1 2 /**< RoCE v1 (Ethernet frames). */
#define DEMI_GID_TYPE_ROCE_V2 3 /**< RoCE v2 (UDP/IP, routable). */

/** The RDMA path of a queue, read with demi_getsockopt(qd, SOL_SOCKET,
 * DEMI_SO_RDMA_PATH, ...): what its queue pair uses, as the device reports
 * it at the time of the call. Fixed size; strings are NUL-terminated. */
typedef struct demi_rdma_path {
  char device[64];     /**< The RDMA device (ibv_get_device_name). */
  uint32_t port_num;   /**< Its port, from 1. */
  uint32_t link_layer; /**< DEMI_LINK_LAYER_*. */
  uint32_t active_mtu; /**< The port's active MTU, in bytes. */
  /** The MTU the queue pair sends with, in bytes: a connection's path MTU
   * (set up by rdma_cm, at most active_mtu); a datagram socket's is
   * active_mtu, the most one fragment carries with its header. */
  uint32_t path_mtu;
  /** The source GID's index in the port's GID table; -1 where none is
   * fixed: a datagram socket (its sends take it from each destination's
   * route) or a connection without a GRH (InfiniBand within a subnet). */
  int32_t gid_index;
  uint32_t gid_type; /**< DEMI_GID_TYPE_* of that GID. */
  /** The source GID, in network byte order; on RoCE the local IPv4
   * address mapped into IPv6 (::ffff:a.b.c.d). */
  uint8_t gid[16];
  struct sockaddr_in local; /**< The local IPv4 address and port. */
} demi_rdma_path_t;

/** Optional callback of demi_args (accepted, never called). */
typedef void (*demi_callback_t)(const char *, uint32_t, uint64_t);

/** Arguments of demi_init. */
struct __attribute__((__packed__)) demi_args {
  int argc;                 /**< Argument count (ignored). */
  char *const *argv;        /**< Arguments (ignored). */
  demi_callback_t callback; /**< Optional callback (ignored). */
};

#ifdef __cplusplus
}
#endif

#endif /* DEMI_TYPES_H_IS_INCLUDED */
