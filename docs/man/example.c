#include <arpa/inet.h>
#include <demi/libos.h>
#include <string.h>

int echo_once(const char *server_ip, uint16_t port) {
  int qd, err;
  demi_qtoken_t qt;
  demi_qresult_t qr;
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
  inet_pton(AF_INET, server_ip, &addr.sin_addr);
  if ((err = demi_init(NULL)) != 0) return err;
  if ((err = demi_socket(&qd, AF_INET, SOCK_STREAM, 0)) != 0) return err;
  demi_connect(&qt, qd, (struct sockaddr *)&addr, sizeof(addr));
  if ((err = demi_wait(&qr, qt, NULL)) != 0) return err;
  if (qr.qr_opcode == DEMI_OPC_FAILED) return (int)qr.qr_ret;

  demi_sgarray_t sga = demi_sgaalloc(64); /* registered memory */
  memset(sga.sga_segs[0].sgaseg_buf, 'x', 64);
  demi_push(&qt, qd, &sga);
  demi_sgafree(&sga);       /* safe: the push holds it */
  demi_wait(&qr, qt, NULL); /* DEMI_OPC_PUSH or FAILED */

  demi_pop(&qt, qd);
  demi_wait(&qr, qt, NULL); /* one whole message */
  if (qr.qr_opcode == DEMI_OPC_POP) demi_sgafree(&qr.qr_value.sga);
  return demi_close(qd);
}
