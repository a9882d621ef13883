"""rdma_cc_test: a C++ test that runs on a real RDMA device.

The test binary runs through //testing:run_on_rdma.sh: directly on this
machine's RDMA device if it has one, otherwise inside the soft-RoCE VM(s).
It never skips: with no device to be had, it fails.
"""

_SUITE_TAG = "rdma_suite="

def rdma_cc_test(
        name,
        srcs,
        deps = [],
        hosts = 1,
        args = [],
        data = [],
        tags = [],
        timeout = "long",
        suite = "",
        **kwargs):
    """Defines NAME (the test) and NAME_bin (its binary).

    Args:
      name: the test's name.
      srcs: C++ sources of the test binary.
      deps: its dependencies.
      hosts: 1 (one VM, client and server side by side) or 2 (two VMs; the
        binary runs in both, DEMI_TEST_HOST tells which it is).
      args: arguments for the test binary.
      data: runtime files of the test binary.
      tags: extra tags; "rdma" and "cpu:2" (a VM uses both cores) are added.
      timeout: Bazel's test timeout.
      suite: the rdma_test_suite of this package that runs the binary in
        its one VM boot: NAME is then tagged manual (`bazel test //...`
        runs the suite, `bazel test :NAME` still runs NAME alone). Only for
        one host and no args.
      **kwargs: passed to the cc_binary.
    """
    if suite and (hosts != 1 or args):
        fail("%s: a suite member runs on one host, without args" % name)
    binary = name + "_bin"
    native.cc_binary(
        name = binary,
        srcs = srcs,
        deps = deps,
        data = data,
        testonly = True,
        tags = ["manual"],
        **kwargs
    )
    native.sh_test(
        name = name,
        srcs = [Label("//testing:run_on_rdma.sh")],
        args = ["--hosts", str(hosts), "--", "$(rootpath :%s)" % binary] + args,
        # `data` too, so that `args` may name it with $(rootpath).
        data = [
            ":" + binary,
            Label("//testing/vm:vm_files"),
        ] + data,
        tags = ["rdma", "cpu:2"] + tags +
               (["manual", _SUITE_TAG + suite] if suite else []),
        timeout = timeout,
    )

def rdma_test_suite(name, tags = [], timeout = "eternal"):
    """One test that runs the binaries of this package's rdma_cc_tests with
    `suite = NAME` one after another in a single VM boot (a boot costs
    15-50 s, more than most of these tests). A failing binary fails the
    suite; the log names it, and `bazel test :ITS_TEST` reruns it alone.
    Call it after its members.

    Args:
      name: the suite's name.
      tags: extra tags; "rdma" and "cpu:2" are added.
      timeout: Bazel's test timeout, for all the members together.
    """
    members = [
        rule
        for rule in native.existing_rules().values()
        if _SUITE_TAG + name in rule["tags"]
    ]
    if not members:
        fail("rdma_test_suite %s: no rdma_cc_test has suite = %r" % (name, name))
    binaries = [":%s_bin" % rule["name"] for rule in members]
    data = {}
    for rule in members:
        for label in rule["data"]:
            data[label] = True
    native.sh_test(
        name = name,
        srcs = [Label("//testing:run_on_rdma.sh")],
        args = ["--", "$(rootpath %s)" % Label("//testing:run_suite.sh")] +
               ["$(rootpath %s)" % b for b in binaries],
        data = [Label("//testing:run_suite.sh")] + data.keys(),
        tags = ["rdma", "cpu:2"] + tags,
        timeout = timeout,
    )

def rdma_sh_test(name, script, data = [], hosts = 1, args = [], tags = [],
                 timeout = "long", vm_only = False):
    """A shell test whose `script` runs on a real RDMA device.

    Args:
      name: the test's name.
      script: the shell script, run like rdma_cc_test's binary.
      data: its runtime files.
      hosts: 1 or 2, as for rdma_cc_test.
      args: arguments for the script.
      tags: extra tags; "rdma" and "cpu:2" are added.
      timeout: Bazel's test timeout.
      vm_only: run in the soft-RoCE VM(s) even on a machine with a device
        (DEMI_FORCE_VM=1), for a script that changes the VMs' network.
    """
    native.sh_test(
        name = name,
        srcs = [Label("//testing:run_on_rdma.sh")],
        args = ["--hosts", str(hosts), "--", "$(rootpath %s)" % script] + args,
        data = [script, Label("//testing/vm:vm_files")] + data,
        env = {"DEMI_FORCE_VM": "1"} if vm_only else {},
        tags = ["rdma", "cpu:2"] + tags,
        timeout = timeout,
    )
