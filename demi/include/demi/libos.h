/**
 * @file libos.h
 * @brief The Demikernel C API over RDMA verbs: queues, connections and
 * asynchronous push and pop of whole messages.
 *
 * Every call returns 0 or a positive errno, never -1. Calls before
 * demi_init return ENOSYS. demi_accept, demi_connect, demi_push and
 * demi_pop start an operation and return its token; demi_wait* report how
 * it ended.
 *
 * Threads: a libOS per thread, as in Demikernel. Each thread that calls
 * demi_init gets its own (a second call in that thread is EEXIST); calls
 * from a thread that never called it are ENOSYS, except demi_sgafree. A
 * thread's queues and tokens are its own: another thread's qd is EBADF
 * there, its token EINVAL. demi_sgafree works from any thread, with or
 * without a libOS: the buffer goes back to the thread it came from. With
 * SO_REUSEPORT set before demi_bind, threads of one process bind and listen
 * on one address and port, and each incoming connection goes to one of
 * them (round-robin among those with room in their backlog); another
 * process on the port, or a socket without the option, is EADDRINUSE.
 * When a thread ends (or calls exit()), its libOS closes what is still
 * open, delivers what was pushed (bounded by the linger time) and is torn
 * down; buffers the application still holds stay valid until freed.
 *
 * No argument crashes a call: a qd that names no open queue (negative, 0,
 * never returned, closed) is EBADF; a NULL pointer is EINVAL, also where
 * the prototype says nonnull (the library is built without the attribute;
 * define ATTR_NONNULL empty before including this header to pass NULL
 * without a warning). Queue descriptors are positive and never name two
 * queues; a closed one is handed out again only after 2^31 - 1 others.
 *
 * The process: a child of fork() after demi_init inherits no libOS (its
 * calls are ENOSYS, demi_init ENOTSUP: the verbs state it inherited is its
 * parent's) and never touches its parent's queues; fork before demi_init,
 * or exec, to run libOS processes side by side.
 *
 * At exit(), the calling thread's libOS closes and delivers as at a
 * thread's end, the main thread's after the atexit handlers registered
 * after its demi_init (their closes are delivered too); the libOSes of
 * threads still running are left as they are (they may be inside the
 * library).
 *
 * Transport: SOCK_STREAM queues are reliable-connected RDMA queue pairs set
 * up with librdmacm. Unlike TCP, they carry messages: one demi_pop returns
 * exactly one whole pushed message, of up to DEMI_MAX_MESSAGE_SIZE bytes.
 */
#ifndef DEMI_LIBOS_H_IS_INCLUDED
#define DEMI_LIBOS_H_IS_INCLUDED

#include <demi/cc.h>
#include <demi/sga.h>
#include <demi/types.h>
#include <demi/wait.h>
#include <sys/socket.h>

/** demi_getsockopt option (level SOL_SOCKET) of a datagram socket: its
 * demi_datagram_stats_t. */
#define DEMI_SO_DATAGRAM_STATS 0x4d01

/** demi_getsockopt option (level SOL_SOCKET) of a connection or a bound
 * datagram socket: the RDMA path its queue pair uses, a demi_rdma_path_t
 * (device, port, link layer, MTUs, source GID, local address). */
#define DEMI_SO_RDMA_PATH 0x4d02

#ifdef __cplusplus
extern "C" {
#endif

/**
 * @brief Initialises the calling thread's libOS: its completion queues,
 * receive queues and registered memory pool (the first call in the process
 * also opens the RDMA devices and allocates their protection domains).
 *
 * @param args Arguments; may be NULL. argc, argv and callback are ignored.
 *
 * @return 0 on success, or:
 * - EEXIST: this thread's libOS is initialised already.
 * - ENOTSUP: a child of fork() of a process that had called demi_init
 *   (even one that failed: the verbs state it may have opened is the
 *   parent's).
 * - ENODEV: this machine has no RDMA device.
 * - ENOMEM, or another errno of the verbs library: a device could not be
 *   set up.
 */
extern int demi_init(const struct demi_args *args);

/**
 * @brief Creates a socket queue.
 *
 * @param sockqd_out Receives the new queue descriptor.
 * @param domain AF_INET.
 * @param type SOCK_STREAM (connections over RC queue pairs) or SOCK_DGRAM
 *        (datagrams over UD queue pairs: UDP's semantics, up to 65,507
 *        bytes each).
 * @param protocol Ignored.
 *
 * @return 0 on success, or:
 * - EINVAL: @p sockqd_out is NULL.
 * - ENOTSUP: @p domain is not AF_INET, or @p type neither SOCK_STREAM nor
 *   SOCK_DGRAM.
 * - ENOSYS: demi_init has not run.
 */
ATTR_NONNULL(1)
extern int demi_socket(int *sockqd_out, int domain, int type, int protocol);

/**
 * @brief Marks a bound socket as listening for connections.
 *
 * @param sockqd The socket.
 * @param backlog Most connections waiting for demi_accept: 1..SOMAXCONN.
 *
 * @return 0 on success, or:
 * - EBADF: @p sockqd is not an open queue.
 * - EINVAL: @p backlog is out of range.
 * - EDESTADDRREQ: the socket is not bound.
 * - EADDRINUSE: already listening, or connecting.
 * - EISCONN: the socket is connected.
 * - EOPNOTSUPP: a datagram socket.
 * - ENOSYS: demi_init has not run.
 */
extern int demi_listen(int sockqd, int backlog);

/**
 * @brief Binds a socket to a local address.
 *
 * @param sockqd The socket.
 * A datagram socket must be bound before it sends or receives: its address
 * picks the RDMA device its UD queue pair lives on, and peers resolve its
 * port (rdma_cm's UDP port space) to that queue pair.
 *
 * @param addr A struct sockaddr_in. Stream sockets: an address of an RDMA
 *        device (or INADDR_ANY: all devices) and a port other than 0.
 *        Datagram sockets: an address of an RDMA device (not INADDR_ANY)
 *        and any port (0: one is picked).
 * @param size sizeof(struct sockaddr_in).
 *
 * @return 0 on success, or:
 * - EBADF: @p sockqd is not an open queue.
 * - EINVAL: @p addr is NULL, @p size is wrong, the socket is already
 *   bound, or the queue is a connection.
 * - ENOTSUP: the address family is not AF_INET; a stream socket's port is
 *   0; a datagram socket's address is INADDR_ANY.
 * - EADDRINUSE: another socket is bound to the address (and not both
 *   with SO_REUSEPORT, or the other is another process's).
 * - EADDRNOTAVAIL: no RDMA device has the address.
 * - ENOBUFS: no memory for any of a datagram socket's receive buffers
 *   (with some it binds, and posts the rest as memory comes back).
 * - ENOSYS: demi_init has not run.
 */
ATTR_NONNULL(2)
extern int demi_bind(int sockqd, const struct sockaddr *addr, socklen_t size);

/**
 * @brief Starts accepting a connection on a listening socket.
 *
 * Completes with DEMI_OPC_ACCEPT: qr_value.ares.qd is the new connection,
 * qr_value.ares.addr the peer. Several accepts may be outstanding. If the
 * socket is closed first, completes DEMI_OPC_FAILED with qr_ret EBADF. The
 * connection starts with the listener's SO_LINGER and SO_REUSEPORT, as on
 * Linux.
 *
 * @param qt_out Receives the operation's token.
 * @param sockqd The listening socket.
 *
 * @return 0 on success, or:
 * - EINVAL: @p qt_out is NULL, or the socket is not listening (a
 *   datagram socket never is).
 * - EBADF: @p sockqd is not an open queue.
 * - ENOSYS: demi_init has not run.
 */
ATTR_NONNULL(1)
extern int demi_accept(demi_qtoken_t *qt_out, int sockqd);

/**
 * @brief Starts connecting a socket to a remote address.
 *
 * Completes with DEMI_OPC_CONNECT, or DEMI_OPC_FAILED with qr_ret
 * ECONNREFUSED (nobody listens there, or its backlog is full), ETIMEDOUT
 * (no answer), EHOSTUNREACH (no RDMA route to the address), ENOBUFS (this
 * host's shared receive queue holds all the connections it can), ENOMEM
 * (no registered memory for receive buffers), EPROTO or EIO (the
 * connection failed in its setup: a peer that broke the protocol at once,
 * a completion queue that failed), or EBADF if the socket is closed first.
 *
 * On a (bound) datagram socket it only sets the destination of demi_push
 * and completes DEMI_OPC_CONNECT at once; another demi_connect replaces it.
 *
 * @param qt_out Receives the operation's token.
 * @param sockqd The socket.
 * @param addr A struct sockaddr_in.
 * @param size sizeof(struct sockaddr_in).
 *
 * @return 0 on success, or:
 * - EINVAL: @p qt_out or @p addr is NULL, or @p size is wrong; on a
 *   datagram socket also the address's port is 0 or its address
 *   INADDR_ANY (as for demi_pushto).
 * - ENOTSUP: the address family is not AF_INET.
 * - EBADF: @p sockqd is not an open queue.
 * - EOPNOTSUPP: the socket is listening.
 * - EINPROGRESS: the socket is already connecting.
 * - EISCONN: the socket is already connected.
 * - EADDRINUSE: the socket is bound with SO_REUSEPORT.
 * - EDESTADDRREQ: a datagram socket that is not bound.
 * - ENOSYS: demi_init has not run.
 */
ATTR_NONNULL(1, 3)
extern int demi_connect(demi_qtoken_t *qt_out, int sockqd,
                        const struct sockaddr *addr, socklen_t size);

/**
 * @brief Closes a queue. Returns at once; the queue is gone for the
 * application.
 *
 * A connection goes on, in the background, delivering every message pushed
 * before the close (large ones included), then tells its peer, who pops an
 * empty message (EOF) after all of them, then disconnects. The background
 * work runs whenever the process waits (demi_wait, ...) and at exit(),
 * for at most the linger time: 30 s, or SO_LINGER's l_linger seconds. Push
 * tokens pending at the close stay valid: each completes DEMI_OPC_PUSH once
 * the peer has the message, or DEMI_OPC_FAILED with qr_ret ETIMEDOUT (linger
 * time over), ECONNRESET (the peer reset or had closed), or ECONNABORTED
 * (SO_LINGER with l_linger 0: the connection is reset at once). Pops
 * pending at the close complete DEMI_OPC_FAILED with qr_ret EBADF. Closing
 * with messages received but not popped resets the connection (the peer's
 * pending pushes fail with ECONNRESET), as TCP does. On a datagram socket,
 * pending pops and pushes whose destination is still being resolved
 * complete DEMI_OPC_FAILED with qr_ret EBADF; every other pending push is
 * still sent and completes DEMI_OPC_PUSH (in the background, at exit too,
 * within the linger time); datagrams not popped are dropped.
 *
 * @param qd The queue.
 *
 * @return 0 on success, or:
 * - EBADF: @p qd is not an open queue (never opened, or closed).
 * - ENOSYS: demi_init has not run.
 */
extern int demi_close(int qd);

/**
 * @brief Starts sending one message: the concatenation of the segments of
 * @p sga.
 *
 * Segments in memory from this thread's demi_sgaalloc or demi_pop are
 * sent without a copy; another thread's are copied (so that freeing them
 * at once stays safe); others are copied (small) or registered for this
 * push (large; copied too if they cannot be: read-only memory).
 * Do not modify pushed memory before the push completes. The array may be
 * released with demi_sgafree right away: the push keeps its memory alive.
 * Pushes beyond what the connection can send at once wait inside the
 * library, in order.
 *
 * Completes with DEMI_OPC_PUSH once the peer's device has the message (a
 * small message, up to 128 bytes on soft-RoCE: once it is posted, its
 * bytes copied; small pushes made in a burst, between two waits, are
 * posted together by the next wait), or DEMI_OPC_FAILED with qr_ret
 * ECONNRESET (connection aborted, also for a push on a connection that
 * had already failed), ETIMEDOUT (peer stopped answering), EPROTO (the
 * peer broke the protocol), EIO (the device's completion queue failed:
 * every connection on it fails) or, for pushes pending
 * at demi_close, as that call says.
 *
 * On a datagram socket it sends one datagram to the destination set by
 * demi_connect, as demi_pushto does.
 *
 * @param qt_out Receives the operation's token.
 * @param qd The connection.
 * @param sga The message: 1 to DEMI_SGARRAY_MAXSIZE segments.
 *
 * @return 0 on success, or:
 * - EINVAL: @p qt_out or @p sga is NULL, sga_numsegs is 0 or above
 *   DEMI_SGARRAY_MAXSIZE, a segment pointer is NULL or its length 0, or
 *   the message exceeds DEMI_MAX_MESSAGE_SIZE.
 * - EBADF: @p qd is not an open queue.
 * - ENOTCONN: the queue is not a connected socket, or is still
 *   connecting (wait for demi_connect's token first).
 * - EAGAIN: no memory for the operation (the pool limit is reached).
 * - EDESTADDRREQ: a datagram socket that is not bound or has no
 *   destination (demi_connect).
 * - EMSGSIZE: a datagram longer than 65,507 bytes.
 * - ENOSYS: demi_init has not run.
 */
ATTR_NONNULL(1, 3)
extern int demi_push(demi_qtoken_t *qt_out, int qd, const demi_sgarray_t *sga);

/**
 * @brief Starts sending one datagram, the concatenation of the segments of
 * @p sga, to @p dest_addr from a bound datagram socket.
 *
 * Memory is treated as by demi_push (library memory without a copy, other
 * memory copied at the call). A datagram larger than the UD MTU goes as
 * several fragments; the receiver delivers it whole or not at all. The
 * first datagram to a destination resolves it (rdma_cm, then cached).
 * Completes with DEMI_OPC_PUSH once the datagram has left this host (UDP
 * semantics: it may still be lost), or, for one small enough to go inline
 * (a few dozen bytes) to a destination already resolved, once the device
 * has copied it, at the call (small datagrams pushed in a burst, between
 * two waits, are posted together by the next wait, and complete then): as
 * with UDP's sendto, later failures of the socket are not that push's. Or it
 * completes with DEMI_OPC_FAILED with qr_ret ECONNREFUSED (no datagram socket
 * bound at that address and port within 3 s: a peer still starting has that
 * long to bind), EHOSTUNREACH (no RDMA route to the address), EBADF (the socket
 * was closed first), ETIMEDOUT (a send the device never completed, within 10 s)
 * or EIO (the socket's completion queue failed); after either of the last two
 * every push on the socket fails with it.
 *
 * @param qt_out Receives the operation's token.
 * @param sockqd The datagram socket.
 * @param sga The datagram: 1 to DEMI_SGARRAY_MAXSIZE segments, 65,507
 *        bytes at most.
 * @param dest_addr A struct sockaddr_in: the destination's IPv4 address
 *        and port.
 * @param size sizeof(struct sockaddr_in).
 *
 * @return 0 on success, or:
 * - EINVAL: @p qt_out, @p sga or @p dest_addr is NULL, @p size is wrong,
 *   the destination's port is 0 or its address INADDR_ANY, or the sga is
 *   bad (as for demi_push).
 * - EBADF: @p sockqd is not an open queue.
 * - ENOTSUP: the queue is a stream socket, or the destination's family is
 *   not AF_INET.
 * - EDESTADDRREQ: the socket is not bound.
 * - EMSGSIZE: the datagram is longer than 65,507 bytes.
 * - EAGAIN: no memory to copy the datagram, or every cached destination
 *   has datagrams in flight.
 * - ENOSYS: demi_init has not run.
 */
ATTR_NONNULL(1, 3, 4)
extern int demi_pushto(demi_qtoken_t *qt_out, int sockqd,
                       const demi_sgarray_t *sga,
                       const struct sockaddr *dest_addr, socklen_t size);

/**
 * @brief Starts receiving one message.
 *
 * Completes with DEMI_OPC_POP and the whole message as qr_value.sga (one
 * segment; release it with demi_sgafree). A zero-length sga is EOF: the peer
 * closed after every earlier message was popped. Pops complete in order.
 * If the connection is aborted, completes DEMI_OPC_FAILED with qr_ret
 * ECONNRESET, ETIMEDOUT (the peer stopped answering: a connection waiting
 * on its peer probes it after 3 s of silence, DEMI_KEEPALIVE_MS, so a
 * vanished host is noticed within about 5 s) or EPROTO (the peer broke the
 * protocol: sent without credit, after CLOSE, an empty message, a
 * malformed one) or EIO (the device's completion queue failed; on a
 * datagram socket, its own); if the queue is closed first, with EBADF. A
 * message that needs memory the pool does not have right now (one sent by
 * rendezvous, above 8 KiB, is read into a buffer of its own) waits for it:
 * the pop completes once the application frees enough. One larger than the pool
 * can ever hold (DEMI_POOL_LIMIT_MB) stays unread: every pop that reaches
 * it, once the messages before it are popped, fails with ENOBUFS.
 *
 * On a datagram socket it completes with one whole datagram, its sender's
 * address and port in qr_value.sga.sga_addr. Datagrams that cannot be
 * delivered whole are dropped and counted (DEMI_SO_DATAGRAM_STATS).
 *
 * @param qt_out Receives the operation's token.
 * @param qd The connection.
 *
 * @return 0 on success, or:
 * - EINVAL: @p qt_out is NULL.
 * - EBADF: @p qd is not an open queue.
 * - ENOTCONN: the queue is not a connected socket, or is still
 *   connecting.
 * - EDESTADDRREQ: a datagram socket that is not bound.
 * - ENOSYS: demi_init has not run.
 */
ATTR_NONNULL(1)
extern int demi_pop(demi_qtoken_t *qt_out, int qd);

/**
 * @brief Sets a socket option, of SOL_SOCKET: SO_LINGER (with l_onoff
 * set, l_linger bounds how long a closed connection goes on delivering; 0:
 * reset at once; see demi_close, which never blocks), or SO_REUSEPORT on a
 * stream socket (an int; nonzero before demi_bind: threads of this process
 * may bind and listen on the same address and port, and each incoming
 * connection goes to one of the listening threads; such a socket cannot
 * connect: EADDRINUSE).
 *
 * @return 0 on success, or:
 * - EBADF: @p qd is not an open queue.
 * - ENOTSUP: @p level is not SOL_SOCKET.
 * - ENOPROTOOPT: @p optname is neither of the above (SO_REUSEPORT on a
 *   datagram socket).
 * - EINVAL: @p optval is NULL or @p optlen is not sizeof(struct linger)
 *   (SO_LINGER) or less than sizeof(int) (SO_REUSEPORT), or SO_LINGER has
 *   l_onoff set and a negative l_linger.
 * - ENOSYS: demi_init has not run.
 */
ATTR_NONNULL(4)
extern int demi_setsockopt(int qd, int level, int optname, const void *optval,
                           socklen_t optlen);

/**
 * @brief Reads a socket option: SOL_SOCKET/SO_LINGER, SO_REUSEPORT on a
 * stream socket, on a datagram socket SOL_SOCKET/DEMI_SO_DATAGRAM_STATS (a
 * demi_datagram_stats_t: what it sent, received and dropped, by cause), or
 * SOL_SOCKET/DEMI_SO_RDMA_PATH on a connection or a bound datagram socket.
 *
 * DEMI_SO_RDMA_PATH fills a demi_rdma_path_t (its fields are described in
 * <demi/types.h>) with the path the queue's own queue pair uses: its device
 * and port, the port's link layer and active MTU, the source GID and local
 * address, and for a connection the path MTU and source GID index read back
 * from the queue pair (ibv_query_qp), so that a measurement can say what it
 * measured. It asks the device each time (a few system calls): read it
 * once, not per message.
 *
 * @param qd The queue.
 * @param level SOL_SOCKET.
 * @param optname SO_LINGER, SO_REUSEPORT, DEMI_SO_DATAGRAM_STATS or
 *        DEMI_SO_RDMA_PATH.
 * @param optval Receives the option's value.
 * @param optlen In: the size of @p optval; out: the option's size.
 *
 * @return 0 on success, or:
 * - EBADF: @p qd is not an open queue.
 * - ENOTSUP: @p level is not SOL_SOCKET.
 * - ENOPROTOOPT: @p optname is none of the above (or one of them on a
 *   queue without it: DEMI_SO_DATAGRAM_STATS on a stream socket,
 *   SO_REUSEPORT on a datagram socket).
 * - EINVAL: @p optval or @p optlen is NULL, or *optlen is smaller than
 *   the option.
 * - ENOTCONN: DEMI_SO_RDMA_PATH on a stream socket that is not a
 *   connection yet (unbound, bound, listening, or still connecting), or on
 *   a datagram socket that is not bound.
 * - EIO, or another errno of the verbs library: DEMI_SO_RDMA_PATH could
 *   not query the queue pair or its port (the device went away).
 * - ENOSYS: demi_init has not run.
 */
ATTR_NONNULL(4)
extern int demi_getsockopt(int qd, int level, int optname, void *optval,
                           socklen_t *optlen);

/**
 * @brief Returns the peer address of a connection (of a datagram socket:
 * the destination set by demi_connect).
 *
 * @param addr Receives a struct sockaddr_in.
 * @param addrlen In: must be sizeof(struct sockaddr_in); out: the same.
 *
 * @return 0 on success, or:
 * - EINVAL: @p addr or @p addrlen is NULL, or *addrlen is wrong.
 * - EBADF: @p qd is not an open queue.
 * - ENOTCONN: the queue is not a connected socket (or still connecting),
 *   or a datagram socket without a destination.
 * - ENOSYS: demi_init has not run.
 */
ATTR_NONNULL(2)
extern int demi_getpeername(int qd, struct sockaddr *addr, socklen_t *addrlen);

#ifdef __cplusplus
}
#endif

#endif /* DEMI_LIBOS_H_IS_INCLUDED */
