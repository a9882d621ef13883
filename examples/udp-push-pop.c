/* One-way datagrams over the Demikernel API: the client sends COUNT
 * datagrams, each once the previous one is sent; the server pops them and
 * checks each one. UDP may lose datagrams; this library must not lose any
 * on its own account, so the server fails if one is missing after 10 s.
 *
 *   udp-push-pop --server|--client LOCAL_IPv4 PORT REMOTE_IPv4 PORT
 *                [size] [count]
 */
#define _POSIX_C_SOURCE 200112L
#include "examples/common.h"

static int run_server(const struct example_udp_args *args) {
  int qd = example_udp_socket(&args->local);
  for (int i = 0; i < args->count; ++i) {
    demi_qtoken_t qt;
    demi_qresult_t qr;
    example_check(demi_pop(&qt, qd), "pop");
    struct timespec timeout = {i == 0 ? 120 : 10, 0};
    int err = demi_wait(&qr, qt, &timeout);
    if (err == ETIMEDOUT) {
      fprintf(stderr, "server: datagram %d of %d never came\n", i, args->count);
      return 1;
    }
    example_check(err, "demi_wait");
    if (qr.qr_opcode != DEMI_OPC_POP) example_check((int)qr.qr_ret, "pop");
    const demi_sgaseg_t *seg = &qr.qr_value.sga.sga_segs[0];
    const unsigned char *bytes = seg->sgaseg_buf;
    if (seg->sgaseg_len != args->size || bytes[0] != (unsigned char)i ||
        bytes[args->size - 1] != (unsigned char)(i + args->size - 1)) {
      fprintf(stderr, "server: datagram %d is wrong or out of order\n", i);
      return 1;
    }
    example_check(demi_sgafree(&qr.qr_value.sga), "sgafree");
  }
  example_check(demi_close(qd), "close");
  printf("server: popped %d datagrams of %zu bytes\n", args->count, args->size);
  return 0;
}

static int run_client(const struct example_udp_args *args) {
  int qd = example_udp_socket(&args->local);
  double start = example_now_us();
  for (int i = 0; i < args->count; ++i) {
    demi_sgarray_t sga = demi_sgaalloc(args->size);
    if (sga.sga_numsegs != 1) example_check(ENOMEM, "sgaalloc");
    unsigned char *bytes = sga.sga_segs[0].sgaseg_buf;
    for (size_t j = 0; j < args->size; ++j) bytes[j] = (unsigned char)(i + j);
    example_pushto(qd, &sga, &args->remote, i == 0);
    example_check(demi_sgafree(&sga), "sgafree");
  }
  double seconds = (example_now_us() - start) / 1e6;
  example_check(demi_close(qd), "close");
  printf("client: pushed %d datagrams of %zu bytes in %.3f s\n", args->count,
         args->size, seconds);
  return 0;
}

int main(int argc, char *argv[]) {
  struct example_udp_args args = example_parse_udp(argc, argv);
  example_check(demi_init(NULL), "demi_init");
  return args.server ? run_server(&args) : run_client(&args);
}
