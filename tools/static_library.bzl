"""cc_static_library: one .a holding a C++ library and all of its in-tree
dependencies, plus the linker flags of its system dependencies, for builds
that do not use Bazel."""

def _cc_static_library_impl(ctx):
    archives = []
    flags = []
    for dep in ctx.attr.deps:
        for linker_input in dep[CcInfo].linking_context.linker_inputs.to_list():
            flags.extend(linker_input.user_link_flags)
            for library in linker_input.libraries:
                archive = library.pic_static_library or library.static_library
                if archive != None and archive not in archives:
                    archives.append(archive)
    out = ctx.actions.declare_file("lib%s.a" % ctx.attr.library_name)
    mri = ["create " + out.path]
    mri += ["addlib " + a.path for a in archives]
    mri += ["save", "end"]
    ctx.actions.run_shell(
        inputs = archives,
        outputs = [out],
        command = "printf '%s\\n' \"$@\" | ar -M",
        arguments = mri,
        mnemonic = "MergeArchives",
    )
    ldflags = ctx.actions.declare_file("lib%s.ldflags" % ctx.attr.library_name)
    unique = []
    for flag in flags:
        if flag not in unique:
            unique.append(flag)
    ctx.actions.write(ldflags, " ".join(unique + ["-lstdc++"]) + "\n")
    return [DefaultInfo(
        files = depset([out, ldflags]),
        runfiles = ctx.runfiles(files = [out, ldflags]),
    )]

cc_static_library = rule(
    implementation = _cc_static_library_impl,
    attrs = {
        "deps": attr.label_list(providers = [CcInfo]),
        "library_name": attr.string(mandatory = True),
    },
    doc = "Merges the static archives of `deps` into lib<library_name>.a " +
          "and writes the system link flags they need to " +
          "lib<library_name>.ldflags.",
)
