/// The release of dealstream; `dealstream --version` prints it with the git commit the
/// binary was built from (`buildGitCommit`, written at build time by Plugins/BuildInfo).
enum DealstreamVersion {
    static let release = "0.12.0"
    static var description: String { "dealstream \(release) (commit \(buildGitCommit))" }
}
