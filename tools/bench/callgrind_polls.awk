# Prints "TOTAL_IR POLLS FN": the run's instructions and the calls to the
# most-called function of the RDMA provider library (its poll_cq).
function id_of(s,   m) { return substr(s, index(s, "(") + 1, index(s, ")") - index(s, "(") - 1) }
function def(s, table,   id, rest) {
  id = id_of(s); rest = substr(s, index(s, ")") + 2)
  if (rest != "") table[id] = rest
  return id
}
/^ob=/ { ob = def(substr($0, 4), obj); cob = ob; next }
/^cob=/ { cob = def(substr($0, 5), obj); next }
/^fn=/ { def(substr($0, 4), fname); cob = ob; next }
/^cfn=/ { cfn = def(substr($0, 5), fname); next }
/^calls=/ { split(substr($0, 7), c, " "); calls[cob SUBSEP cfn] += c[1]; cob = ob; next }
/^(summary|totals):/ { total = $2 }
END {
  best = 0
  for (k in calls) {
    split(k, p, SUBSEP)
    if (obj[p[1]] ~ provider && calls[k] > best) { best = calls[k]; bestfn = fname[p[2]] }
  }
  print total, best, bestfn
}
