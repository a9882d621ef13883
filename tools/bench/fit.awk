# Reads "N IR POLLS ..." lines (round trips, instructions, polls of one
# run); prints "PER_ROUND_TRIP PER_POLL POLLS_PER_ROUND_TRIP", fitted by
# least squares on IR = a + b*N + c*(POLLS - need*N): a round trip's
# figure b keeps the `need` polls it cannot do without, every further poll
# priced at c (an empty one).
{ n[NR] = $1; y[NR] = $2; p[NR] = $3 }
END {
  for (i = 1; i <= NR; i++) {
    x[1] = 1; x[2] = n[i]; x[3] = p[i] - need * n[i]
    for (r = 1; r <= 3; r++) {
      v[r] += x[r] * y[i]
      for (c = 1; c <= 3; c++) m[r, c] += x[r] * x[c]
    }
  }
  d = det(m)
  for (k = 2; k <= 3; k++) {
    for (r = 1; r <= 3; r++) for (c = 1; c <= 3; c++)
      t[r, c] = (c == k) ? v[r] : m[r, c]
    s[k] = det(t) / d
  }
  polls = 0; trips = 0
  for (i = 1; i <= NR; i++) { polls += p[i]; trips += n[i] }
  printf "%.0f %.1f %.2f\n", s[2], s[3], polls / trips
}
function det(a) {
  return a[1,1] * (a[2,2] * a[3,3] - a[2,3] * a[3,2]) \
       - a[1,2] * (a[2,1] * a[3,3] - a[2,3] * a[3,1]) \
       + a[1,3] * (a[2,1] * a[3,2] - a[2,2] * a[3,1])
}
