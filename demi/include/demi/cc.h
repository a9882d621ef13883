/**
 * @file cc.h
 * @brief Compiler attributes used by the Demikernel C API headers.
 */
#ifndef DEMI_CC_H_IS_INCLUDED
#define DEMI_CC_H_IS_INCLUDED

/* The library's own definitions are compiled with ATTR_NONNULL defined
 * empty, so the compiler keeps their NULL checks. */
#ifndef ATTR_NONNULL
#if defined(__GNUC__) || defined(__clang__)
/** Marks pointer parameters that must not be NULL. The library still checks
 * them and returns EINVAL for NULL. */
#define ATTR_NONNULL(...) __attribute__((nonnull(__VA_ARGS__)))
#else
#define ATTR_NONNULL(...)
#endif
#endif

#ifndef ATTR_NODISCARD
#if defined(__GNUC__) || defined(__clang__)
/** Warns when the result of the function is ignored. */
#define ATTR_NODISCARD __attribute__((warn_unused_result))
#else
#define ATTR_NODISCARD
#endif
#endif

/* Source annotations (SAL) of the reference headers; empty on Linux. */
#ifndef _In_
#define _In_
#endif
#ifndef _Out_
#define _Out_
#endif
#ifndef _Inout_
#define _Inout_
#endif
#ifndef _In_reads_
#define _In_reads_(n)
#endif
#ifndef _Out_writes_to_
#define _Out_writes_to_(n, m)
#endif

#endif /* DEMI_CC_H_IS_INCLUDED */
