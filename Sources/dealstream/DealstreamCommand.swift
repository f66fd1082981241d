import ArgumentParser

/// The `dealstream` command: the daemon, its workers and the client tools.
@main
struct DealstreamCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dealstream",
        abstract: "Live sales-pipeline metrics across several CRMs, over ZeroMQ.",
        discussion: """
            Run `dealstream daemon` to take deal, spend and account events from CRM connectors \
            (ingest, ROUTER), keep the ten pipeline metrics exact per team, rep, channel, pipeline, \
            source and period in supervised worker processes, and publish every change (updates, \
            XPUB) with snapshots for late joiners (snapshot, ROUTER). `dealstream send` feeds it \
            files; `dealstream tail` watches the metrics.
            """,
        version: DealstreamVersion.description,
        subcommands: [
            DaemonCommand.self, WorkerCommand.self, SendCommand.self, TailCommand.self, GenerateCommand.self,
            BenchCommand.self,
            ConnectCommand.self, KeygenCommand.self, RepairCommand.self, WebCommand.self, WorkersCommand.self,
        ]
    )
}
