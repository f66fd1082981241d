public import Foundation

/// The package's root folder (the one holding Package.swift): the one walk up from this
/// file that every test uses to find the repository's files and the built binary.
public var packageRoot: URL {
    var url = URL(fileURLWithPath: #filePath)
    while url.path != "/" && !FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) {
        url.deleteLastPathComponent()
    }
    return url
}

/// A fresh, unique folder path under the system's temporary directory for one test
/// (`ds-<name>-<unique>`); not created. Tests remove it when they are done.
public func temporaryDirectory(_ name: String) -> URL {
    FileManager.default.temporaryDirectory.appendingPathComponent("ds-\(name)-\(UUID().uuidString.prefix(8))")
}
