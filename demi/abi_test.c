/* The public structs' layout, checked at compile time in plain C11: the
 * Demikernel field offsets, with DEMI_SGARRAY_MAXSIZE segments. */
#include <demi/libos.h>
#include <stddef.h>

#define SGA_SIZE (8 + 4 + 12 * DEMI_SGARRAY_MAXSIZE + 16)

_Static_assert(sizeof(demi_sgaseg_t) == 12, "segment size");
_Static_assert(offsetof(demi_sgarray_t, sga_numsegs) == 8, "numsegs");
_Static_assert(offsetof(demi_sgarray_t, sga_segs) == 12, "segs");
_Static_assert(offsetof(demi_sgarray_t, sga_addr) ==
                   12 + 12 * DEMI_SGARRAY_MAXSIZE,
               "addr");
_Static_assert(sizeof(demi_sgarray_t) == SGA_SIZE, "sga size");
_Static_assert(sizeof(demi_accept_result_t) == 20, "accept result");
_Static_assert(offsetof(demi_qresult_t, qr_qd) == 4, "qd");
_Static_assert(offsetof(demi_qresult_t, qr_qt) == 8, "qt");
_Static_assert(offsetof(demi_qresult_t, qr_ret) == 16, "ret");
_Static_assert(offsetof(demi_qresult_t, qr_value) == 24, "value");
_Static_assert(sizeof(demi_qresult_t) == 24 + SGA_SIZE, "result size");
_Static_assert(sizeof(struct demi_args) == 20, "args");
_Static_assert(DEMI_OPC_FAILED == 6 && DEMI_OPC_CLOSE == 5, "opcodes");

int main(void) { return 0; }
