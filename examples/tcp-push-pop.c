/* One-way stream over the Demikernel API: the client pushes COUNT messages
 * without waiting in between; the server pops them and checks each one.
 *
 *   tcp-push-pop --server|--client IPv4 port [size] [count]
 */
#define _POSIX_C_SOURCE 200112L
#include "examples/common.h"

static int run_server(const struct example_args *args) {
  int qd = example_accept(args);
  for (int i = 0; i < args->count; ++i) {
    demi_qtoken_t qt;
    example_check(demi_pop(&qt, qd), "pop");
    demi_qresult_t qr = example_wait(qt);
    const demi_sgaseg_t *seg = &qr.qr_value.sga.sga_segs[0];
    const unsigned char *bytes = seg->sgaseg_buf;
    if (seg->sgaseg_len != args->size || bytes[0] != (unsigned char)i ||
        bytes[args->size - 1] != (unsigned char)(i + args->size - 1)) {
      fprintf(stderr, "server: message %d is wrong (%u bytes)\n", i,
              seg->sgaseg_len);
      return 1;
    }
    example_check(demi_sgafree(&qr.qr_value.sga), "sgafree");
  }
  example_check(demi_close(qd), "close");
  printf("server: popped %d messages of %zu bytes\n", args->count, args->size);
  return 0;
}

static int run_client(const struct example_args *args) {
  int qd = example_connect(args);
  demi_qtoken_t *qts = calloc((size_t)args->count, sizeof(*qts));
  double start = example_now_us();
  for (int i = 0; i < args->count; ++i) {
    demi_sgarray_t sga = demi_sgaalloc(args->size);
    if (sga.sga_numsegs != 1) example_check(ENOMEM, "sgaalloc");
    unsigned char *bytes = sga.sga_segs[0].sgaseg_buf;
    for (size_t j = 0; j < args->size; ++j) bytes[j] = (unsigned char)(i + j);
    example_check(demi_push(&qts[i], qd, &sga), "push");
    /* Free-protection: the push holds the buffer until it is sent. */
    example_check(demi_sgafree(&sga), "sgafree");
  }
  for (int i = 0; i < args->count; ++i) example_wait(qts[i]);
  double seconds = (example_now_us() - start) / 1e6;
  /* Wait for the server's EOF, so the last messages are popped first. */
  demi_qtoken_t qt;
  example_check(demi_pop(&qt, qd), "pop");
  example_wait(qt);
  example_check(demi_close(qd), "close");
  free(qts);
  printf("client: pushed %d messages of %zu bytes in %.3f s (%.1f MB/s)\n",
         args->count, args->size, seconds,
         args->count * (double)args->size / seconds / 1e6);
  return 0;
}

int main(int argc, char *argv[]) {
  struct example_args args = example_parse(argc, argv);
  example_check(demi_init(NULL), "demi_init");
  return args.server ? run_server(&args) : run_client(&args);
}
