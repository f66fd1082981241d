import ArgumentParser
import DealModel
import EventSources
import Foundation

/// `dealstream generate`: synthetic events for load tests.
struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Print a reproducible stream of synthetic events (NDJSON) for load and chaos tests.",
        discussion: """
            Deals of the model's pipelines are updated --updates times each (moving stages, closing \
            won or lost, some deleted), with spend and account events mixed in. The same --seed \
            prints the same bytes. Pipe it into `dealstream send -`.
            """
    )

    @Option(help: "The model file the events must fit (pipelines, stages, currencies).")
    var model: String

    @Option(help: "Number of deals.")
    var deals = 10_000

    @Option(help: "Events per deal.")
    var updates = 5

    @Option(help: "Seed of the stream.")
    var seed: UInt64 = 1

    func validate() throws {
        guard deals >= 1, updates >= 1 else { throw ValidationError("--deals and --updates must be at least 1") }
    }

    func run() throws {
        guard let data = FileManager.default.contents(atPath: model) else {
            throw ValidationError("--model: cannot read \(model)")
        }
        var options = SyntheticEvents.Options()
        options.deals = deals
        options.updatesPerDeal = updates
        options.seed = seed
        var out: [UInt8] = []
        out.reserveCapacity(1 << 20)
        for event in SyntheticEvents(model: try Model.parse(Array(data)), options: options) {
            out.append(contentsOf: event)
            out.append(UInt8(ascii: "\n"))
            if out.count >= 1 << 20 {
                FileHandle.standardOutput.write(Data(out))
                out.removeAll(keepingCapacity: true)
            }
        }
        FileHandle.standardOutput.write(Data(out))
    }
}
