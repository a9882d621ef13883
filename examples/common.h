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

static void example_usage(const char *prog) {
  fprintf(stderr, "usage: %s --server|--client IPv4 port [size] [count]\n",
          prog);
  exit(2);
}

static struct example_args example_parse(int argc, char *argv[]) {
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

static void example_check(int err, const char *what) {
  if (err != 0) {
    fprintf(stderr, "%s: %s\n", what, strerror(err));
    exit(1);
  }
}

static demi_qresult_t example_wait(demi_qtoken_t qt) {
  demi_qresult_t qr;
  example_check(demi_wait(&qr, qt, NULL), "demi_wait");
  if (qr.qr_opcode == DEMI_OPC_FAILED) {
    example_check((int)qr.qr_ret, "operation");
  }
  return qr;
}

/* Listens on args->addr and returns the first connection accepted. */
static int example_accept(const struct example_args *args) {
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
static int example_connect(const struct example_args *args) {
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

static double example_now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

#endif /* DEMI_EXAMPLES_COMMON_H_ */
