import Foundation
import PackagePlugin

/// Writes `BuildInfo.swift` (the git commit the build is made from) before every build of
/// the `dealstream` executable, for `dealstream --version`.
///
/// A prebuild command, so the constant is fresh after every commit and in a fresh clone;
/// the file is rewritten only when the commit changes, so an unchanged tree recompiles
/// nothing. Without git or a `.git` folder (a source tarball, a `docker build` that copies
/// only the sources) the commit is `$DEALSTREAM_GIT_COMMIT`, or `unknown`.
@main
struct BuildInfo: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: any Target) throws -> [Command] {
        let output = context.pluginWorkDirectoryURL.appending(path: "BuildInfo.swift")
        let fallback = ProcessInfo.processInfo.environment["DEALSTREAM_GIT_COMMIT"] ?? "unknown"
        let script = #"""
            commit=$(git -C "$1" rev-parse HEAD 2>/dev/null) || commit="$2"
            git -C "$1" diff --quiet HEAD 2>/dev/null || { [ "$commit" = "$2" ] || commit="$commit-dirty"; }
            text="/// The git commit this binary was built from (Plugins/BuildInfo).
            let buildGitCommit = \"$commit\""
            [ "$(cat "$3" 2>/dev/null)" = "$text" ] || printf '%s\n' "$text" > "$3"
            """#
        return [
            .prebuildCommand(
                displayName: "Recording the git commit",
                executable: URL(fileURLWithPath: "/bin/sh"),
                arguments: ["-c", script, "sh", context.package.directoryURL.path, fallback, output.path],
                outputFilesDirectory: context.pluginWorkDirectoryURL
            )
        ]
    }
}
