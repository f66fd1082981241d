// swift-tools-version: 6.1
import PackageDescription

/// Settings every target shares: Swift 6 language mode (strict concurrency) and the
/// upcoming features the swift-server codebases turn on.
let sharedSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "dealstream",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "dealstream", targets: ["dealstream"])
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-configuration", from: "1.4.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        // libzmq, as Debian ships it (libzmq3-dev). Only `ZeroMQ` imports it.
        .systemLibrary(name: "CZeroMQ", providers: [.apt(["libzmq3-dev"])]),
        // The few Linux calls Swift cannot make directly (variadic prctl).
        .target(name: "CLinuxShims"),
        .target(name: "ZeroMQ", dependencies: ["CZeroMQ", "CLinuxShims"], swiftSettings: sharedSettings),
        // What an operator sees of a process: JSON log lines, systemd notifications, probe
        // state, the Prometheus registry.
        .target(
            name: "Observability",
            dependencies: [
                "DealModel",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: sharedSettings
        ),
        // /metrics, /health, /live, /ready over Hummingbird (the daemon's listener, connect's routes).
        .target(
            name: "OperatorHTTP",
            dependencies: [
                "Observability",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: sharedSettings
        ),
        // Writes the git commit of the build into the dealstream executable (--version).
        .plugin(name: "BuildInfo", capability: .buildTool()),
        .target(name: "DealModel", swiftSettings: sharedSettings),
        // The append-only, checksummed record file: the daemon's event log, a connector's spool.
        .target(name: "FramedLog", swiftSettings: sharedSettings),
        // Vendor webhook payload + mapping file → dealstream events. Pure: no I/O.
        .target(
            name: "CRMWebhooks",
            dependencies: ["DealModel", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: sharedSettings
        ),
        // The running webhook receiver: HTTP server, auth, durable spool and deal state,
        // forwarding to the daemon, the HubSpot REST fetch.
        .target(
            name: "WebhookReceiver",
            dependencies: [
                "CRMWebhooks", "FramedLog", "Clients", "ZeroMQ", "Wire", "DealModel", "Observability", "OperatorHTTP",
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: sharedSettings
        ),
        // `dealstream web`: a Clone-pattern subscriber serving the live dashboard (HTTP + server-sent events).
        .target(
            name: "Dashboard",
            dependencies: [
                "Clients", "ZeroMQ", "Wire", "DealModel",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            resources: [
                .embedInCode("Assets/index.html"), .embedInCode("Assets/app.js"), .embedInCode("Assets/app.css"),
                .embedInCode("Assets/favicon.svg"),
            ],
            swiftSettings: sharedSettings
        ),
        .target(name: "PipelineMetrics", dependencies: ["DealModel"], swiftSettings: sharedSettings),
        .target(name: "Wire", dependencies: ["DealModel", "PipelineMetrics"], swiftSettings: sharedSettings),
        // The event content types: JSON and protobuf (generated code committed, see
        // scripts/generate-protobuf). Only this target imports SwiftProtobuf.
        .target(
            name: "EventEncoding",
            dependencies: ["DealModel", .product(name: "SwiftProtobuf", package: "swift-protobuf")],
            swiftSettings: sharedSettings
        ),
        .target(
            name: "Clients",
            dependencies: ["ZeroMQ", "Wire", "DealModel"],
            swiftSettings: sharedSettings
        ),
        .target(name: "EventSources", dependencies: ["DealModel"], swiftSettings: sharedSettings),
        .target(
            name: "Worker",
            dependencies: [
                "ZeroMQ", "PipelineMetrics", "Wire", "DealModel", "CLinuxShims",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: sharedSettings
        ),
        .target(
            name: "Daemon",
            dependencies: [
                "ZeroMQ", "Wire", "DealModel", "PipelineMetrics", "EventEncoding", "FramedLog", "CLinuxShims",
                "Observability",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: sharedSettings
        ),
        .executableTarget(
            name: "dealstream",
            dependencies: [
                "Daemon", "Worker", "Wire", "DealModel", "ZeroMQ", "Clients", "EventSources", "PipelineMetrics",
                "EventEncoding",
                "CRMWebhooks", "WebhookReceiver", "FramedLog", "Observability", "OperatorHTTP", "Dashboard",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: sharedSettings,
            plugins: ["BuildInfo"]
        ),
        .target(
            name: "DealstreamTestSupport",
            dependencies: ["DealModel", "PipelineMetrics", "Wire", "ZeroMQ", "CRMWebhooks"],
            path: "Tests/Support",
            swiftSettings: sharedSettings
        ),
        .testTarget(
            name: "DealModelTests",
            dependencies: ["DealModel", "DealstreamTestSupport"],
            swiftSettings: sharedSettings
        ),
        .testTarget(
            name: "PipelineMetricsTests",
            dependencies: ["PipelineMetrics", "DealModel", "Wire", "DealstreamTestSupport"],
            swiftSettings: sharedSettings
        ),
        .testTarget(
            name: "DaemonTests",
            dependencies: [
                "Daemon", "DealModel", "EventEncoding", "FramedLog", "DealstreamTestSupport", "ZeroMQ", "Wire",
                "PipelineMetrics", "Worker",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "InMemoryLogging", package: "swift-log"),
            ],
            swiftSettings: sharedSettings
        ),
        .testTarget(
            name: "WorkerTests",
            dependencies: ["Worker", "Wire", "PipelineMetrics", "DealModel", "DealstreamTestSupport"],
            swiftSettings: sharedSettings
        ),
        .testTarget(
            name: "ClientsTests",
            dependencies: ["Clients", "DealModel", "Wire", "ZeroMQ", "DealstreamTestSupport"],
            swiftSettings: sharedSettings
        ),
        .testTarget(
            name: "EventSourcesTests",
            dependencies: ["EventSources", "DealModel", "DealstreamTestSupport"],
            swiftSettings: sharedSettings
        ),
        .testTarget(name: "FramedLogTests", dependencies: ["FramedLog"], swiftSettings: sharedSettings),
        .testTarget(
            name: "WireTests",
            dependencies: ["Wire", "DealModel", "PipelineMetrics"],
            swiftSettings: sharedSettings
        ),
        .testTarget(
            name: "EventEncodingTests",
            dependencies: ["EventEncoding", "DealModel", "DealstreamTestSupport"],
            swiftSettings: sharedSettings
        ),
        .testTarget(name: "ZeroMQTests", dependencies: ["ZeroMQ"], swiftSettings: sharedSettings),
        .testTarget(
            name: "OperationsTests",
            dependencies: [
                "Observability", "Daemon", "DealModel", "PipelineMetrics", "Wire", "DealstreamTestSupport", "ZeroMQ",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: sharedSettings
        ),
        .testTarget(
            name: "FaultInjectionTests",
            dependencies: ["ZeroMQ", "Wire", "DealModel", "Clients", "DealstreamTestSupport"],
            swiftSettings: sharedSettings
        ),
        .testTarget(
            name: "IntegrationTests",
            dependencies: [
                "ZeroMQ", "Wire", "DealModel", "EventSources", "EventEncoding", "FramedLog", "DealstreamTestSupport",
                "PipelineMetrics",
            ],
            swiftSettings: sharedSettings
        ),
        .testTarget(name: "DashboardTests", dependencies: ["Dashboard", "DealModel"], swiftSettings: sharedSettings),
        .testTarget(
            name: "CRMWebhooksTests",
            dependencies: ["CRMWebhooks", "DealModel", "DealstreamTestSupport"],
            exclude: ["Fixtures"],
            swiftSettings: sharedSettings
        ),
        .testTarget(
            name: "WebhookReceiverTests",
            dependencies: [
                "CRMWebhooks", "WebhookReceiver", "FramedLog", "DealModel", "DealstreamTestSupport",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: sharedSettings
        ),
    ]
)
