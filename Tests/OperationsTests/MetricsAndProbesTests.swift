import DealModel
import DealstreamTestSupport
import Foundation
import Synchronization
import Testing
import Wire

/// `/metrics`, `/ready`, `/live` and `/health` of a real daemon, over real HTTP.
@Suite(.serialized)
struct MetricsAndProbesTests {
    private let created = "2026-01-01T00:00:00Z"

    /// Runs promtool over `exposition` (skipped, saying why, when it is not installed).
    private func expectPromtoolPasses(_ exposition: String) {
        do {
            let problems = try HTTPScrape.promtoolProblems(exposition)
            #expect(problems == nil, "promtool check metrics: \(problems ?? "")")
        } catch {
            print("SKIPPED promtool check metrics: \(error)")
        }
    }

    @Test func countersUnderLoadAddUpToWhatWasSentAndPromtoolAcceptsThem() async throws {
        let daemon = try DaemonProcess(
            shards: 2,
            modelJSON: harnessModelJSON,
            configJSON: #"{"checkpoint": {"every_records": 1000}}"#
        )
        defer { _ = daemon.terminate() }
        let base = try daemon.httpURL()
        #expect(await HTTPScrape.waitFor(base + "/ready", status: 200, timeout: 60), "never ready: \(daemon.log)")

        // What is sent, request by request: new deals, resends, older versions, and
        // events rejected for each reason class.
        var requests: [[String]] = []
        for chunk in stride(from: 0, to: 3000, by: 250) {
            requests.append(
                (chunk..<chunk + 250).map { deal("m-\($0)", v: 2, amount: Double($0 % 97 + 1), created: created) }
            )
        }
        requests.append((0..<400).map { deal("m-\($0)", v: 2, amount: Double($0 % 97 + 1), created: created) })
        requests.append((0..<300).map { deal("m-\($0)", v: 1, created: created) })
        requests.append(
            (0..<50).map { _ in "{not json" } + (0..<60).map { deal("bad-\($0)", pipeline: "nope", created: created) }
                + (0..<70).map { deal("odd-\($0)", status: "weird", created: created) }
        )

        // Scrapes keep coming while the load runs (the listener under load).
        // A thread of its own, so the blocking sends below cannot starve it.
        let scraping = ScrapeLoop(url: base + "/metrics")
        var sent = (events: 0, applied: 0, duplicate: 0, stale: 0, rejected: 0)
        var lastLogSeq: UInt64 = 0
        for request in requests {
            let ack = try daemon.send(request)
            sent.events += request.count
            sent.applied += ack.applied
            sent.duplicate += ack.duplicate
            sent.stale += ack.stale
            sent.rejected += ack.rejected.count
            lastLogSeq = ack.logSeq
        }
        #expect(scraping.stop() > 0, "no scrape answered 200 while the load ran")
        #expect(sent.applied == 3000 && sent.duplicate == 400 && sent.stale == 300 && sent.rejected == 180)
        _ = try daemon.waitUntilPublished(lastLogSeq)

        // The published position reaches the log within a round or two.
        var samples: [String: Double] = [:]
        var exposition = ""
        let deadline = Date().addingTimeInterval(10)
        repeat {
            exposition = try await HTTPScrape.get(base + "/metrics").body
            samples = HTTPScrape.samples(exposition)
            if samples["dealstream_publish_lag_records"] == 0
                && samples["dealstream_checkpoint_duration_seconds_count"] ?? 0 > 0
            {
                break
            }
            try await Task.sleep(for: .milliseconds(50))
        } while Date() < deadline

        let received = samples["dealstream_events_received_total"] ?? -1
        let applied = samples["dealstream_events_applied_total"] ?? -1
        let duplicate = samples["dealstream_events_duplicate_total"] ?? -1
        let stale = samples["dealstream_events_stale_total"] ?? -1
        let rejectedByClass = ["malformed", "model", "invalid"].map {
            samples["dealstream_events_rejected_total{reason=\"\($0)\"}"] ?? -1
        }
        #expect(received == Double(sent.events))
        #expect(received == applied + duplicate + stale + rejectedByClass.reduce(0, +))
        #expect(applied == Double(sent.applied) && duplicate == Double(sent.duplicate) && stale == Double(sent.stale))
        #expect(rejectedByClass == [50, 60, 70], "\(rejectedByClass)")
        #expect(samples["dealstream_ingest_requests_total{type=\"events\"}"] == Double(requests.count))
        #expect(samples["dealstream_ingest_ack_latency_seconds_count"] == Double(requests.count))
        #expect(samples["dealstream_log_sync_duration_seconds_count"] ?? 0 >= 1)
        #expect(samples["dealstream_log_seq"] == Double(lastLogSeq))
        #expect(samples["dealstream_published_log_seq"] == Double(lastLogSeq))
        #expect(samples["dealstream_publish_lag_records"] == 0)
        #expect(samples["dealstream_publish_rounds_total"] ?? 0 > 0)
        // The output budget: within publish.interval_ms … publish.max_interval_ms (defaults).
        #expect((0.002...1.0).contains(samples["dealstream_publish_round_gap_seconds"] ?? -1))
        #expect(samples["dealstream_publish_round_output_seconds"] ?? 0 > 0)
        #expect(samples["dealstream_published_series_total"] ?? 0 > 0)
        #expect(samples["dealstream_checkpoint_duration_seconds_count"] ?? 0 >= 1)
        #expect((0..<60).contains(samples["dealstream_checkpoint_age_seconds"] ?? -1))
        for family in MetricFamilyNames.all {
            #expect(samples["dealstream_worker_sessions{family=\"\(family)\"}"] == 2, "\(family)")
        }
        #expect(samples["dealstream_ready"] == 1)
        #expect(try HTTPScrape.undocumented(exposition) == [], "metrics missing from docs/operations.md")
        expectPromtoolPasses(exposition)
    }

    @Test func readyAndLiveTurnFalseWhenTheLoopIsFrozenWhileTheListenerStillAnswers() async throws {
        // The loop counts as stuck after heartbeat × liveness = 100 ms × 10 = 1 s of silence.
        let daemon = try DaemonProcess(
            shards: 1,
            modelJSON: harnessModelJSON,
            configJSON: #"{"workers": {"heartbeat_ms": 100, "liveness": 10}}"#,
            extraArguments: ["--debug-freeze-signal", "\(SIGUSR1)"]
        )
        defer { _ = daemon.terminate() }
        let base = try daemon.httpURL()
        #expect(await HTTPScrape.waitFor(base + "/ready", status: 200, timeout: 60), "never ready: \(daemon.log)")
        #expect(try await HTTPScrape.get(base + "/live").status == 200)

        kill(daemon.process.processIdentifier, SIGUSR1)  // the loop stops answering
        #expect(await HTTPScrape.waitFor(base + "/ready", status: 503, timeout: 10))
        let live = try await HTTPScrape.get(base + "/live")
        #expect(live.status == 503, "\(live.body)")
        let health = try await HTTPScrape.get(base + "/health")
        #expect(health.status == 200 && health.body.contains("\"ready\":false"), "\(health.body)")
        let metrics = HTTPScrape.samples(try await HTTPScrape.get(base + "/metrics").body)
        #expect(metrics["dealstream_ready"] == 0)
        #expect(metrics["dealstream_loop_silence_seconds"] ?? 0 >= 1)

        kill(daemon.process.processIdentifier, SIGUSR1)  // and answers again
        #expect(await HTTPScrape.waitFor(base + "/ready", status: 200, timeout: 10))
        #expect(try daemon.send([deal("after-thaw", created: created)]).applied == 1)
        #expect(daemon.terminate() == 0)
    }

    @Test func readyWaitsForAWorkerInEverySlot() async throws {
        let daemon = try DaemonProcess(shards: 1, modelJSON: harnessModelJSON, extraArguments: ["--no-spawn"])
        defer { _ = daemon.terminate() }
        let base = try daemon.httpURL()
        // Restored and listening, but no worker: not ready, though alive.
        #expect(await HTTPScrape.waitFor(base + "/live", status: 200, timeout: 30))
        try await Task.sleep(for: .milliseconds(700))
        let ready = try await HTTPScrape.get(base + "/ready")
        #expect(ready.status == 503 && ready.body.contains("\"workers_caught_up\":false"), "\(ready.body)")
    }

    @Test func aKilledWorkerCountsAsARestartAndItsPartitionsAsMoved() async throws {
        let daemon = try DaemonProcess(shards: 1, modelJSON: harnessModelJSON)
        defer { _ = daemon.terminate() }
        let base = try daemon.httpURL()
        #expect(await HTTPScrape.waitFor(base + "/ready", status: 200, timeout: 60), "never ready: \(daemon.log)")
        let victim = try #require(daemon.workerPIDs.first)
        let family = try #require(
            MetricFamilyNames.all.first { name in
                (try? String(contentsOfFile: "/proc/\(victim)/cmdline", encoding: .utf8))?.contains(name) == true
            }
        )
        kill(victim, SIGKILL)
        var samples: [String: Double] = [:]
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            samples = HTTPScrape.samples(try await HTTPScrape.get(base + "/metrics").body)
            // Its 64 partitions (the default count) move to its replacement; the first
            // owners after the start are no move.
            if samples["dealstream_worker_partition_moves_total{family=\"\(family)\"}"] == 64
                && samples["dealstream_ready"] == 1
            {
                break
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(samples["dealstream_worker_restarts_total{family=\"\(family)\"}"] == 1)
        #expect(samples["dealstream_worker_partition_moves_total{family=\"\(family)\"}"] == 64)
        let others = MetricFamilyNames.all.filter { $0 != family }
        #expect(others.allSatisfy { samples["dealstream_worker_restarts_total{family=\"\($0)\"}"] == 0 })
        #expect(samples["dealstream_ready"] == 1)
    }
}

/// Scrapes `url` every 20 ms on a thread of its own until `stop()`, counting 200 answers.
final class ScrapeLoop: Sendable {
    private let answered = Atomic<Int>(0)
    private let stopped = Atomic<Bool>(false)
    private let finished = DispatchSemaphore(value: 0)

    init(url: String) {
        Thread { [self] in
            while !stopped.load(ordering: .relaxed) {
                if HTTPScrape.getBlocking(url) == 200 { answered.add(1, ordering: .relaxed) }
                usleep(20_000)
            }
            finished.signal()
        }.start()
    }

    /// Stops the thread (after one last scrape) and returns the scrapes answered 200.
    func stop() -> Int {
        stopped.store(true, ordering: .relaxed)
        finished.wait()
        return answered.load(ordering: .relaxed)
    }
}

/// The ten family names, as the metric labels carry them.
enum MetricFamilyNames {
    static let all = [
        "new_opportunities", "qualified_leads", "win_rate", "stage_conversion", "revenue", "average_order_value",
        "sales_cycle_length", "sales_velocity", "roi", "customer_retention_rate",
    ]
}
