"""The external repositories demi_rdma's BUILD files name, for WORKSPACEs.

A project that uses this library adds, in its WORKSPACE:

    local_repository(name = "demi_rdma", path = "<path to this tree>")
    load("@demi_rdma//:deps.bzl", "demi_rdma_dependencies")
    demi_rdma_dependencies("<the same path>")

Everything is local (Debian's packages under /usr); nothing is downloaded.
"""

def demi_rdma_dependencies(path):
    """Defines rules_cc, rules_java, remote_coverage_tools and system.

    Args:
      path: this source tree, relative to the calling workspace or absolute.
    """

    # Bazel 4.2.3 asks for the first three by name; Debian ships none that
    # fits, so local shims stand in.
    if not native.existing_rule("rules_cc"):
        native.local_repository(
            name = "rules_cc",
            path = path + "/third_party/rules_cc",
        )
    if not native.existing_rule("rules_java"):
        native.local_repository(
            name = "rules_java",
            path = "/usr/share/bazel/rules/java",
        )
    if not native.existing_rule("remote_coverage_tools"):
        native.local_repository(
            name = "remote_coverage_tools",
            path = path + "/third_party/coverage_tools",
        )

    # System libraries from Debian's -dev packages.
    if not native.existing_rule("system"):
        native.new_local_repository(
            name = "system",
            build_file = "@demi_rdma//third_party:system.BUILD",
            path = "/usr",
        )
