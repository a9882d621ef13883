/* Datagram ping-pong over the Demikernel API: the client sends a datagram,
 * the server sends it back to whoever sent it, COUNT times; the client
 * checks every byte.
 *
 *   udp-ping-pong --server|--client LOCAL_IPv4 PORT REMOTE_IPv4 PORT
 *                 [size] [count]
 */
#define _POSIX_C_SOURCE 200112L
#include "examples/common.h"

static int run_server(const struct example_udp_args *args) {
  int qd = example_udp_socket(&args->local);
  for (int i = 0; i < args->count; ++i) {
    demi_qtoken_t qt;
    example_check(demi_pop(&qt, qd), "pop");
    demi_qresult_t qr =
        example_wait_at_most(qt, i == 0 ? 120 : 10, "server: pop");
    /* Echo the very buffer that arrived to its sender: no copy. */
    struct sockaddr_in from = qr.qr_value.sga.sga_addr;
    example_pushto(qd, &qr.qr_value.sga, &from, 0);
    example_check(demi_sgafree(&qr.qr_value.sga), "sgafree");
  }
  example_check(demi_close(qd), "close");
  printf("server: echoed %d datagrams of %zu bytes\n", args->count, args->size);
  return 0;
}

static int run_client(const struct example_udp_args *args) {
  int qd = example_udp_socket(&args->local);
  double total_us = 0;
  for (int i = 0; i < args->count; ++i) {
    demi_sgarray_t sga = demi_sgaalloc(args->size);
    if (sga.sga_numsegs != 1) example_check(ENOMEM, "sgaalloc");
    unsigned char *bytes = sga.sga_segs[0].sgaseg_buf;
    for (size_t j = 0; j < args->size; ++j) bytes[j] = (unsigned char)(i + j);
    double start = example_now_us();
    demi_qtoken_t qt;
    example_check(demi_pop(&qt, qd), "pop");
    example_pushto(qd, &sga, &args->remote, i == 0);
    demi_qresult_t qr =
        example_wait_at_most(qt, i == 0 ? 120 : 10, "client: echo");
    total_us += example_now_us() - start;
    const demi_sgaseg_t *seg = &qr.qr_value.sga.sga_segs[0];
    struct sockaddr_in from = qr.qr_value.sga.sga_addr;
    if (seg->sgaseg_len != args->size ||
        memcmp(seg->sgaseg_buf, bytes, args->size) != 0 ||
        from.sin_addr.s_addr != args->remote.sin_addr.s_addr ||
        from.sin_port != args->remote.sin_port) {
      fprintf(stderr, "client: datagram %d came back wrong\n", i);
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
  struct example_udp_args args = example_parse_udp(argc, argv);
  example_check(demi_init(NULL), "demi_init");
  return args.server ? run_server(&args) : run_client(&args);
}
