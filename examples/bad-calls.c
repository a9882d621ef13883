/* Every call of the API with arguments that name nothing, as an application
 * with a bug makes them: each must return the errno its header documents,
 * and none may crash or hang. Plain C11 against <demi/libos.h>, as a user
 * builds it.
 *
 * usage: bad-calls IPv4 port (an address on the RDMA device; the port must
 * be free) */
#include <arpa/inet.h>
#include <demi/libos.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* NULL as a bug makes it, at run time: a literal NULL where the headers
 * say nonnull is caught by the compiler already. */
static void *volatile null_pointer = NULL;
#define RUNTIME_NULL ((void *)null_pointer)

static int failures = 0;
static int checks = 0;

static void expect(int got, int want, const char *call, int qd) {
  ++checks;
  if (got == want) return;
  ++failures;
  fprintf(stderr, "%s on qd %d: got %d (%s), want %d (%s)\n", call, qd, got,
          strerror(got), want, strerror(want));
}

static struct sockaddr *sa(struct sockaddr_in *addr) {
  return (struct sockaddr *)addr;
}

/* Every call that takes a qd, on `qd`, which names no open queue. */
static void calls_on_no_queue(int qd, struct sockaddr_in *addr) {
  demi_qtoken_t qt = 0;
  demi_sgarray_t sga = demi_sgaalloc(64);
  struct linger linger = {1, 1};
  socklen_t len = sizeof(linger);
  struct sockaddr_in peer;
  socklen_t peer_len = sizeof(peer);
  if (sga.sga_buf == NULL) {
    fprintf(stderr, "demi_sgaalloc(64) gave the null sga\n");
    exit(1);
  }
  expect(demi_bind(qd, sa(addr), sizeof(*addr)), EBADF, "demi_bind", qd);
  expect(demi_listen(qd, 16), EBADF, "demi_listen", qd);
  expect(demi_accept(&qt, qd), EBADF, "demi_accept", qd);
  expect(demi_connect(&qt, qd, sa(addr), sizeof(*addr)), EBADF, "demi_connect",
         qd);
  expect(demi_push(&qt, qd, &sga), EBADF, "demi_push", qd);
  expect(demi_pushto(&qt, qd, &sga, sa(addr), sizeof(*addr)), EBADF,
         "demi_pushto", qd);
  expect(demi_pop(&qt, qd), EBADF, "demi_pop", qd);
  expect(demi_setsockopt(qd, SOL_SOCKET, SO_LINGER, &linger, sizeof(linger)),
         EBADF, "demi_setsockopt", qd);
  expect(demi_getsockopt(qd, SOL_SOCKET, SO_LINGER, &linger, &len), EBADF,
         "demi_getsockopt", qd);
  expect(demi_getpeername(qd, sa(&peer), &peer_len), EBADF, "demi_getpeername",
         qd);
  expect(demi_close(qd), EBADF, "demi_close", qd);
  expect(demi_sgafree(&sga), 0, "demi_sgafree", qd);
}

int main(int argc, char *argv[]) {
  struct sockaddr_in addr;
  memset(&addr, 0, sizeof(addr));
  addr.sin_family = AF_INET;
  if (argc != 3 || inet_pton(AF_INET, argv[1], &addr.sin_addr) != 1) {
    fprintf(stderr, "usage: %s IPv4 port\n", argv[0]);
    return 2;
  }
  addr.sin_port = htons((uint16_t)atoi(argv[2]));

  /* Before demi_init: every call is ENOSYS. */
  int qd = -1;
  expect(demi_socket(&qd, AF_INET, SOCK_STREAM, 0), ENOSYS, "demi_socket", -1);
  expect(demi_close(0), ENOSYS, "demi_close", 0);
  if (demi_init(NULL) != 0) {
    fprintf(stderr, "demi_init failed: no RDMA device?\n");
    return 1;
  }
  expect(demi_init(NULL), EEXIST, "demi_init", -1);

  /* Sockets that cannot be made. */
  expect(demi_socket(RUNTIME_NULL, AF_INET, SOCK_STREAM, 0), EINVAL,
         "demi_socket", -1);
  expect(demi_socket(&qd, AF_UNIX, SOCK_STREAM, 0), ENOTSUP, "demi_socket", -1);
  expect(demi_socket(&qd, AF_INET, SOCK_RAW, 0), ENOTSUP, "demi_socket", -1);

  /* qds that name nothing: edge values, one never handed out, a closed one. */
  int closed = -1;
  expect(demi_socket(&closed, AF_INET, SOCK_STREAM, 0), 0, "demi_socket", -1);
  expect(demi_close(closed), 0, "demi_close", closed);
  const int no_queue[] = {-1, -2, INT_MIN, INT_MAX, 0, 1 << 30, closed};
  for (size_t i = 0; i < sizeof(no_queue) / sizeof(no_queue[0]); ++i) {
    calls_on_no_queue(no_queue[i], &addr);
  }

  /* A socket that exists, with arguments that do not. */
  int sock = -1;
  demi_qtoken_t qt = 0;
  expect(demi_socket(&sock, AF_INET, SOCK_STREAM, 0), 0, "demi_socket", -1);
  expect(demi_bind(sock, RUNTIME_NULL, sizeof(addr)), EINVAL, "demi_bind",
         sock);
  expect(demi_bind(sock, sa(&addr), 3), EINVAL, "demi_bind", sock);
  expect(demi_listen(sock, 16), EDESTADDRREQ, "demi_listen", sock);
  expect(demi_accept(&qt, sock), EINVAL, "demi_accept", sock);
  expect(demi_accept(RUNTIME_NULL, sock), EINVAL, "demi_accept", sock);
  expect(demi_pop(&qt, sock), ENOTCONN, "demi_pop", sock);
  expect(demi_connect(RUNTIME_NULL, sock, sa(&addr), sizeof(addr)), EINVAL,
         "demi_connect", sock);
  expect(demi_bind(sock, sa(&addr), sizeof(addr)), 0, "demi_bind", sock);
  expect(demi_listen(sock, -1), EINVAL, "demi_listen", sock);
  expect(demi_listen(sock, 16), 0, "demi_listen", sock);
  expect(demi_connect(&qt, sock, sa(&addr), sizeof(addr)), EOPNOTSUPP,
         "demi_connect", sock);

  /* Tokens that name no operation, and waits with bad arguments. */
  demi_qresult_t qr;
  int offset = -1, count = -1;
  struct timespec zero = {0, 0}, negative = {-1, 0},
                  too_many_ns = {0, 1000000000};
  const demi_qtoken_t bad_tokens[] = {0, (demi_qtoken_t)-1, UINT64_MAX / 2};
  for (size_t i = 0; i < sizeof(bad_tokens) / sizeof(bad_tokens[0]); ++i) {
    demi_qtoken_t bad = bad_tokens[i];
    expect(demi_wait(&qr, bad, &zero), EINVAL, "demi_wait", -1);
    expect(demi_wait(&qr, bad, NULL), EINVAL, "demi_wait", -1);
    expect(demi_wait_any(&qr, &offset, &bad, 1, NULL), EINVAL, "demi_wait_any",
           -1);
  }
  expect(demi_accept(&qt, sock), 0, "demi_accept", sock);
  expect(demi_wait(RUNTIME_NULL, qt, &zero), EINVAL, "demi_wait", sock);
  expect(demi_wait(&qr, qt, &negative), EINVAL, "demi_wait", sock);
  expect(demi_wait(&qr, qt, &too_many_ns), EINVAL, "demi_wait", sock);
  expect(demi_wait_any(&qr, RUNTIME_NULL, &qt, 1, &zero), EINVAL,
         "demi_wait_any", sock);
  expect(demi_wait_any(&qr, &offset, &qt, -1, &zero), EINVAL, "demi_wait_any",
         sock);
  expect(demi_wait_next_n(&qr, 0, &count, &zero), EINVAL, "demi_wait_next_n",
         -1);
  expect(demi_wait_next_n(&qr, 1, RUNTIME_NULL, &zero), EINVAL,
         "demi_wait_next_n", -1);
  expect(demi_wait(&qr, qt, &zero), ETIMEDOUT, "demi_wait", sock);
  /* The accept still pending fails with EBADF when its listener closes,
   * and its token is then gone. */
  expect(demi_close(sock), 0, "demi_close", sock);
  expect(demi_wait(&qr, qt, NULL), 0, "demi_wait", sock);
  if (qr.qr_opcode != DEMI_OPC_FAILED || qr.qr_ret != EBADF) {
    ++failures;
    fprintf(stderr, "the pending accept ended with opcode %d, ret %ld\n",
            (int)qr.qr_opcode, (long)qr.qr_ret);
  }
  expect(demi_wait(&qr, qt, &zero), EINVAL, "demi_wait (taken twice)", sock);

  /* Arrays the application does not hold. */
  demi_sgarray_t zeroed;
  memset(&zeroed, 0, sizeof(zeroed));
  expect(demi_sgafree(RUNTIME_NULL), EINVAL, "demi_sgafree", -1);
  expect(demi_sgafree(&zeroed), EINVAL, "demi_sgafree", -1);
  demi_sgarray_t sga = demi_sgaalloc(64);
  demi_sgarray_t copy = sga;
  expect(demi_sgafree(&sga), 0, "demi_sgafree", -1);
  expect(demi_sgafree(&copy), EINVAL, "demi_sgafree (twice)", -1);
  demi_sgarray_t none = demi_sgaalloc(0);
  if (none.sga_buf != NULL || none.sga_numsegs != 0) {
    ++failures;
    fprintf(stderr, "demi_sgaalloc(0) gave a non-null sga\n");
  }
  none = demi_sgaalloc((size_t)DEMI_MAX_MESSAGE_SIZE + 1);
  if (none.sga_buf != NULL || none.sga_numsegs != 0) {
    ++failures;
    fprintf(stderr, "demi_sgaalloc(max + 1) gave a non-null sga\n");
  }

  printf("bad-calls: %d checks, %d failed\n", checks, failures);
  return failures == 0 ? 0 : 1;
}
