/* Shared by the example programs: argument parsing and connection setup
 * over the Demikernel API, in plain C11. */
#ifndef DEMI_EXAMPLES_COMMON_H_
#define DEMI_EXAMPLES_COMMON_H_

#include <arpa/inet.h>
#include <demi/libos.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct example_args {
  int server;
  struct sockaddr_in addr;
  size_t size;
  int count;
};

static inline void example_usage(const char *prog) {
  fprintf(stderr, "usage: %s --server|--client IPv4 port [size] [count]\n",
          prog);
  exit(2);
}

static inline struct example_args example_parse(int argc, char *argv[]) {
  struct example_args args;
  memset(&args, 0, sizeof(args));
  args.size = 64;
  args.count = 1000;
  if (argc < 4) example_usage(argv[0]);
  if (strcmp(argv[1], "--server") == 0) {
    args.server = 1;
  } else if (strcmp(argv[1], "--client") != 0) {
    example_usage(argv[0]);
  }
  args.addr.sin_family = AF_INET;
  if (inet_pton(AF_INET, argv[2], &args.addr.sin_addr) != 1) {
    example_usage(argv[0]);
  }
  args.addr.sin_port = htons((uint16_t)atoi(argv[3]));
  if (argc > 4) args.size = (size_t)strtoul(argv[4], NULL, 10);
  if (argc > 5) args.count = atoi(argv[5]);
  if (args.size == 0 || args.count <= 0) example_usage(argv[0]);
  return args;
}

static inline void example_check(int err, const char *what) {
  if (err != 0) {
    fprintf(stderr, "%s: %s\n", what, strerror(err));
    exit(1);
  }
}

static inline demi_qresult_t example_wait(demi_qtoken_t qt) {
  demi_qresult_t qr;
  example_check(demi_wait(&qr, qt, NULL), "demi_wait");
  if (qr.qr_opcode == DEMI_OPC_FAILED) {
    example_check((int)qr.qr_ret, "operation");
  }
  return qr;
}

/* Waits at most `seconds` for `qt`'s result, which may be a failure:
 * datagrams may be lost, and a program that waits on one forever never
 * ends. */
static inline demi_qresult_t example_wait_for(demi_qtoken_t qt, time_t seconds,
                                              const char *what) {
  demi_qresult_t qr;
  struct timespec timeout = {seconds, 0};
  int err = demi_wait(&qr, qt, &timeout);
  if (err == ETIMEDOUT) {
    fprintf(stderr, "%s: nothing in %ld s\n", what, (long)seconds);
    exit(1);
  }
  example_check(err, "demi_wait");
  return qr;
}

/* As example_wait, for at most `seconds`. */
static inline demi_qresult_t example_wait_at_most(demi_qtoken_t qt,
                                                  time_t seconds,
                                                  const char *what) {
  demi_qresult_t qr = example_wait_for(qt, seconds, what);
  if (qr.qr_opcode == DEMI_OPC_FAILED) example_check((int)qr.qr_ret, what);
  return qr;
}

/* Listens on args->addr and returns the first connection accepted. */
static inline int example_accept(const struct example_args *args) {
  int listener = -1;
  demi_qtoken_t qt;
  example_check(demi_socket(&listener, AF_INET, SOCK_STREAM, 0), "socket");
  example_check(demi_bind(listener, (const struct sockaddr *)&args->addr,
                          sizeof(args->addr)),
                "bind");
  example_check(demi_listen(listener, 16), "listen");
  example_check(demi_accept(&qt, listener), "accept");
  return example_wait(qt).qr_value.ares.qd;
}

/* Connects to args->addr, retrying for up to a minute while nobody listens
 * there yet (as when both ends start at once). */
static inline int example_connect(const struct example_args *args) {
  int qd = -1;
  example_check(demi_socket(&qd, AF_INET, SOCK_STREAM, 0), "socket");
  for (int attempt = 0;; ++attempt) {
    demi_qtoken_t qt;
    demi_qresult_t qr;
    example_check(demi_connect(&qt, qd, (const struct sockaddr *)&args->addr,
                               sizeof(args->addr)),
                  "connect");
    example_check(demi_wait(&qr, qt, NULL), "demi_wait");
    if (qr.qr_opcode == DEMI_OPC_CONNECT) return qd;
    if (qr.qr_ret != ECONNREFUSED || attempt >= 600) {
      example_check((int)qr.qr_ret, "connect");
    }
    struct timespec pause = {0, 100 * 1000 * 1000};
    nanosleep(&pause, NULL);
  }
}

/* The datagram examples' arguments:
 *   --server|--client LOCAL_IPv4 PORT REMOTE_IPv4 PORT [size] [count] */
struct example_udp_args {
  int server;
  struct sockaddr_in local;
  struct sockaddr_in remote;
  size_t size;
  int count;
};

static inline void example_udp_usage(const char *prog) {
  fprintf(stderr,
          "usage: %s --server|--client LOCAL_IPv4 PORT REMOTE_IPv4 PORT "
          "[size] [count]\n",
          prog);
  exit(2);
}

static inline struct sockaddr_in example_addr(const char *prog, const char *ip,
                                              const char *port) {
  struct sockaddr_in addr;
  memset(&addr, 0, sizeof(addr));
  addr.sin_family = AF_INET;
  if (inet_pton(AF_INET, ip, &addr.sin_addr) != 1) example_udp_usage(prog);
  addr.sin_port = htons((uint16_t)atoi(port));
  return addr;
}

static inline struct example_udp_args example_parse_udp(int argc,
                                                        char *argv[]) {
  struct example_udp_args args;
  memset(&args, 0, sizeof(args));
  args.size = 64;
  args.count = 1000;
  if (argc < 6) example_udp_usage(argv[0]);
  if (strcmp(argv[1], "--server") == 0) {
    args.server = 1;
  } else if (strcmp(argv[1], "--client") != 0) {
    example_udp_usage(argv[0]);
  }
  args.local = example_addr(argv[0], argv[2], argv[3]);
  args.remote = example_addr(argv[0], argv[4], argv[5]);
  if (argc > 6) args.size = (size_t)strtoul(argv[6], NULL, 10);
  if (argc > 7) args.count = atoi(argv[7]);
  if (args.size == 0 || args.count <= 0) example_udp_usage(argv[0]);
  return args;
}

/* A datagram socket bound to `local`. */
static inline int example_udp_socket(const struct sockaddr_in *local) {
  int qd = -1;
  example_check(demi_socket(&qd, AF_INET, SOCK_DGRAM, 0), "socket");
  example_check(demi_bind(qd, (const struct sockaddr *)local, sizeof(*local)),
                "bind");
  return qd;
}

/* Sends `sga` to `dest` and waits for the send. The first datagram may find
 * nobody bound there yet (both ends started at once): ECONNREFUSED is
 * retried for up to a minute when `patient` is set. */
static inline void example_pushto(int qd, const demi_sgarray_t *sga,
                                  const struct sockaddr_in *dest, int patient) {
  for (int attempt = 0;; ++attempt) {
    demi_qtoken_t qt;
    example_check(
        demi_pushto(&qt, qd, sga, (const struct sockaddr *)dest, sizeof(*dest)),
        "pushto");
    /* A datagram's send completes on this host: bounded all the same. */
    demi_qresult_t qr = example_wait_for(qt, 60, "pushto");
    if (qr.qr_opcode == DEMI_OPC_PUSH) return;
    if (!patient || qr.qr_ret != ECONNREFUSED || attempt >= 600) {
      example_check((int)qr.qr_ret, "pushto");
    }
    struct timespec pause = {0, 100 * 1000 * 1000};
    nanosleep(&pause, NULL);
  }
}

static inline double example_now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

#endif /* DEMI_EXAMPLES_COMMON_H_ */
