public import ArgumentParser
import CRMWebhooks
import Logging
import Observability
import PipelineMetrics

// Typed choices, so `--help` and the completion scripts list the values and a wrong one
// is refused (exit 64) naming them.

extension MetricFamily: ExpressibleByArgument {}
extension Logger.Level: @retroactive ExpressibleByArgument {}
extension Vendor: ExpressibleByArgument {}
extension LogFormat: ExpressibleByArgument {}

/// `--log-level` and `--log-format`, shared by every long-running command.
struct LoggingOptions: ParsableArguments {
    @Option(name: .customLong("log-level"), help: "Log level (default info).")
    var level: Logger.Level?

    @Option(
        name: .customLong("log-format"),
        help:
            "Log line format: text (default) or json (one JSON object per line: time, level, label, message, metadata)."
    )
    var format: LogFormat?

    /// A logger for `label` at the chosen level and format (or the given defaults).
    func logger(
        _ label: String,
        level defaultLevel: Logger.Level = .info,
        format defaultFormat: LogFormat = .text
    ) -> Logger {
        ProcessLogging.logger(label, level: level ?? defaultLevel, format: format ?? defaultFormat)
    }
}
