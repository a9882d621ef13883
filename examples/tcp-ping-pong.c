/* Ping-pong over the Demikernel API: the client pushes a message, the
 * server pushes it back, COUNT times; the client checks every byte.
 *
 *   tcp-ping-pong --server|--client IPv4 port [size] [count]
 */
#define _POSIX_C_SOURCE 200112L
#include "examples/common.h"

static int run_server(const struct example_args *args) {
  int qd = example_accept(args);
  for (int i = 0; i < args->count; ++i) {
    demi_qtoken_t qt;
    example_check(demi_pop(&qt, qd), "pop");
    demi_qresult_t qr = example_wait(qt);
    if (qr.qr_value.sga.sga_segs[0].sgaseg_len == 0) break; /* EOF */
    /* Echo the very buffer that arrived: no copy. */
    example_check(demi_push(&qt, qd, &qr.qr_value.sga), "push");
    example_check(demi_sgafree(&qr.qr_value.sga), "sgafree");
    example_wait(qt);
  }
  example_check(demi_close(qd), "close");
  printf("server: echoed %d messages of %zu bytes\n", args->count, args->size);
  return 0;
}

static int run_client(const struct example_args *args) {
  int qd = example_connect(args);
  double total_us = 0;
  for (int i = 0; i < args->count; ++i) {
    demi_sgarray_t sga = demi_sgaalloc(args->size);
    if (sga.sga_numsegs != 1) example_check(ENOMEM, "sgaalloc");
    unsigned char *bytes = sga.sga_segs[0].sgaseg_buf;
    for (size_t j = 0; j < args->size; ++j) bytes[j] = (unsigned char)(i + j);
    double start = example_now_us();
    demi_qtoken_t qts[2];
    example_check(demi_push(&qts[0], qd, &sga), "push");
    example_check(demi_pop(&qts[1], qd), "pop");
    example_wait(qts[0]);
    demi_qresult_t qr = example_wait(qts[1]);
    total_us += example_now_us() - start;
    const demi_sgaseg_t *seg = &qr.qr_value.sga.sga_segs[0];
    if (seg->sgaseg_len != args->size ||
        memcmp(seg->sgaseg_buf, bytes, args->size) != 0) {
      fprintf(stderr, "client: message %d came back wrong\n", i);
      return 1;
    }
    example_check(demi_sgafree(&qr.qr_value.sga), "sgafree");
    example_check(demi_sgafree(&sga), "sgafree");
  }
  example_check(demi_close(qd), "close");
  printf("client: %d round trips of %zu bytes, %.1f us each on average\n",
         args->count, args->size, total_us / args->count);
  return 0;
}

int main(int argc, char *argv[]) {
  struct example_args args = example_parse(argc, argv);
  example_check(demi_init(NULL), "demi_init");
  return args.server ? run_server(&args) : run_client(&args);
}
