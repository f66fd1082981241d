import ArgumentParser

/// `dealstream send`: a file connector.
struct SendCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "send", abstract: "Send events from files to the daemon.")
    @Argument var files: [String] = []
    func run() async throws {}
}
