import ArgumentParser

/// `dealstream tail`: a subscriber.
struct TailCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tail", abstract: "Watch live metrics.")
    @Argument var prefix: String = ""
    func run() async throws {}
}
