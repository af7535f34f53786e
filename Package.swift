// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "swift-qtasks",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "QTasks", targets: ["QTasks"]),
        .library(name: "QTasksRabbitMQ", targets: ["QTasksRabbitMQ"]),
        .library(name: "QTasksTesting", targets: ["QTasksTesting"]),
        // State: the protocol and the memory backend need no C library; each
        // other backend is a product of its own, so that only its users need
        // its library (libhiredis-dev; GRDB and libsqlite3-dev);
        // QTasksStateStores opens any of them by URL and so needs them all.
        .library(name: "QTasksState", targets: ["QTasksState"]),
        .library(name: "QTasksStateSQLite", targets: ["QTasksStateSQLite"]),
        .library(name: "QTasksStateRedis", targets: ["QTasksStateRedis"]),
        .library(name: "QTasksStateStores", targets: ["QTasksStateStores"]),
        // Result stores (docs/results.md): the protocol and the memory
        // backend are in QTasks; each durable backend is a product of its
        // own, and QTasksResultStores opens any of them by URL.
        .library(name: "QTasksResultsSQLite", targets: ["QTasksResultsSQLite"]),
        .library(name: "QTasksResultsRedis", targets: ["QTasksResultsRedis"]),
        .library(name: "QTasksResultStores", targets: ["QTasksResultStores"]),
        .library(name: "QTasksScheduler", targets: ["QTasksScheduler"]),
        // The web dashboard (docs/dashboard.md): `qtasks dashboard`, or
        // mounted in a Hummingbird server of one's own.
        .library(name: "QTasksDashboard", targets: ["QTasksDashboard"]),
        .library(name: "QTasksObservability", targets: ["QTasksObservability"]),
        .library(name: "AMQP", targets: ["AMQP"]),
        .executable(name: "qtasks", targets: ["qtasks"]),
        .executable(name: "qtasks-example", targets: ["qtasks-example"]),
        .executable(name: "qtasks-benchmark", targets: ["qtasks-benchmark"]),
        .executable(name: "qtasks-scheduler", targets: ["qtasks-scheduler"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.6.0"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.0.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.5.0"),
        // Deque for the worker's event buffers (already in the graph through
        // swift-service-lifecycle's swift-async-algorithms).
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.1.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.0.0"),
        .package(url: "https://github.com/swhitty/FlyingFox.git", from: "0.27.0"),
        // The dashboard's HTTP server (docs/dashboard.md, "Why Hummingbird").
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.20.0"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.0.0"),
        .package(url: "https://github.com/apple/swift-distributed-tracing.git", from: "1.3.0"),
        // W3C ids and headers for the example's tracer. Not swift-otel:
        // without its exporter traits it does not compile on Linux (1.6.0),
        // and with them it adds AsyncHTTPClient or gRPC, NIO, BoringSSL and
        // protobuf to every build (docs/operations.md, "Tracing").
        .package(url: "https://github.com/swift-otel/swift-w3c-trace-context.git", from: "1.0.0"),
        // `swift package generate-documentation` for the Documentation.docc
        // catalogs. A command plugin: `swift build` neither builds nor runs it.
        .package(url: "https://github.com/swiftlang/swift-docc-plugin.git", from: "1.4.0"),
    ],
    targets: [
        // The C client, rabbitmq-c (Debian: librabbitmq-dev). Shims only for
        // what Swift cannot call directly.
        .systemLibrary(
            name: "CRabbitMQ",
            pkgConfig: "librabbitmq",
            providers: [.apt(["librabbitmq-dev"])]
        ),
        // The only module that imports CRabbitMQ.
        .target(
            name: "AMQP",
            dependencies: [
                "CRabbitMQ",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The core: no C, no AMQP.
        .target(
            name: "QTasks",
            dependencies: [
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "DequeModule", package: "swift-collections"),
            ]
        ),
        .target(
            name: "QTasksRabbitMQ",
            dependencies: [
                "QTasks",
                "AMQP",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .target(
            name: "QTasksTesting",
            dependencies: ["QTasks"]
        ),
        // A small tracer with W3C Trace Context ids and headers and no
        // export, for the example worker and the tests; production apps
        // bootstrap swift-otel instead (docs/operations.md, "Tracing").
        .target(
            name: "QTasksW3CTracing",
            dependencies: [
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "W3CTraceContext", package: "swift-w3c-trace-context"),
            ]
        ),
        // The C client of Redis, hiredis (Debian: libhiredis-dev). No shims:
        // only non-variadic functions are called (redisCommandArgv & co).
        .systemLibrary(
            name: "CHiredis",
            // No pkgConfig: hiredis.pc adds -D_FILE_OFFSET_BITS=64, which
            // SwiftPM refuses with a warning on every build; the header is
            // found as <hiredis/hiredis.h> in the default include path and
            // the modulemap links the library.
            providers: [.apt(["libhiredis-dev"])]
        ),
        // State: the key-value store shared by the steps of a workflow. The
        // core is the protocol, the handles, the memory backend and the
        // injection helpers, with no C library and no GRDB, so that a program
        // using memory State alone builds without libhiredis-dev,
        // libsqlite3-dev or GRDB (DeployManifestTests checks these
        // dependencies).
        .target(
            name: "QTasksState",
            dependencies: ["QTasks"]
        ),
        // The SQLite backend, through GRDB (which links the system SQLite,
        // Debian: libsqlite3-dev).
        .target(
            name: "QTasksStateSQLite",
            dependencies: [
                "QTasks",
                "QTasksState",
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
        // The Redis backend. The only module that imports CHiredis.
        .target(
            name: "QTasksStateRedis",
            dependencies: ["QTasks", "QTasksState", "CHiredis"]
        ),
        // Opening a backend by URL (memory://, sqlite://, redis://), the
        // worker's --state / QTASKS_STATE_URL defaults and
        // `.stateStore(url:)`: the one module that sees every backend. Plain
        // dependencies rather than a registry of backends: three backends,
        // all in this package, and a missing one is a build error rather
        // than an "unknown scheme" at run time.
        .target(
            name: "QTasksStateStores",
            dependencies: ["QTasks", "QTasksState", "QTasksStateSQLite", "QTasksStateRedis"]
        ),
        // Result stores: SQLite through GRDB; Redis in Python QTasks'
        // layout through hiredis; opening either by URL.
        .target(
            name: "QTasksResultsSQLite",
            dependencies: [
                "QTasks",
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
        // Reuses QTasksStateRedis' hiredis connection (package access) and
        // its URL parsing (which throws QTasksState's StateError).
        .target(
            name: "QTasksResultsRedis",
            dependencies: ["QTasks", "QTasksState", "QTasksStateRedis"]
        ),
        .target(
            name: "QTasksResultStores",
            dependencies: ["QTasks", "QTasksState", "QTasksStateSQLite", "QTasksStateRedis", "QTasksResultsSQLite", "QTasksResultsRedis"]
        ),
        // Periodic tasks: interval and cron schedules, each tick claimed
        // once in a shared State backend (docs/scheduling.md).
        .target(
            name: "QTasksScheduler",
            dependencies: [
                "QTasks",
                "QTasksState",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // RabbitMQ's management HTTP API (the rabbitmq_management plugin):
        // queue counts and rates for `qtasks inspect` and the dashboard.
        // Apart from QTasksRabbitMQ so that a worker does not link
        // FoundationNetworking (libcurl).
        .target(
            name: "RabbitMQManagement",
            dependencies: []
        ),
        // The dashboard: JSON API, live updates, pages embedded in the
        // binary (no CDN, no Node toolchain: plain files compiled in by
        // SwiftPM's embedInCode).
        .target(
            name: "QTasksDashboard",
            dependencies: [
                "QTasks",
                "QTasksRabbitMQ",
                "QTasksState",
                "QTasksScheduler",
                "RabbitMQManagement",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            resources: [
                .embedInCode("Assets/index.html"),
                .embedInCode("Assets/app.js"),
                .embedInCode("Assets/app.css"),
            ]
        ),
        .executableTarget(
            name: "qtasks-scheduler",
            dependencies: [
                "QTasks",
                "QTasksRabbitMQ",
                "QTasksState",
                "QTasksStateStores",
                "QTasksScheduler",
                "CommandSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "qtasks",
            dependencies: [
                "QTasks",
                "QTasksRabbitMQ",
                "QTasksState",
                "QTasksStateStores",
                "QTasksDashboard",
                "RabbitMQManagement",
                "CommandSupport",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "qtasks-example",
            dependencies: [
                "QTasks",
                "QTasksRabbitMQ",
                "QTasksState",
                "QTasksStateStores",
                "CommandSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                "QTasksW3CTracing",
            ]
        ),
        // What a worker or scheduler process of one's own needs for
        // operations: JSON log lines, the Prometheus metrics endpoint.
        .target(
            name: "QTasksObservability",
            dependencies: [
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "FlyingFox", package: "FlyingFox"),
                .product(name: "FlyingSocks", package: "FlyingFox"),
            ]
        ),
        // The options the executables share (logs, metrics, queue types);
        // not a product.
        .target(
            name: "CommandSupport",
            dependencies: [
                "QTasks",
                "QTasksObservability",
                "QTasksRabbitMQ",
                "QTasksResultStores",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The benchmark: the worker against a bare rabbitmq-c loop, side by
        // side (docs/performance.md). Its baseline is the only code outside
        // AMQP that calls rabbitmq-c, on purpose.
        .executableTarget(
            name: "qtasks-benchmark",
            dependencies: [
                "CRabbitMQ",
                "AMQP",
                "QTasks",
                "QTasksRabbitMQ",
                "QTasksState",
                "QTasksStateStores",
                "QTasksResultStores",
                "CommandSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // What the test targets share: probing ports, private RabbitMQ
        // nodes for fault tests.
        .target(
            name: "TestSupport",
            dependencies: ["AMQP"],
            path: "Tests/TestSupport"
        ),
        // Fast tests: no server needed.
        .testTarget(
            name: "QTasksTests",
            dependencies: [
                "QTasks", "QTasksTesting", "QTasksW3CTracing",
                .product(name: "InMemoryTracing", package: "swift-distributed-tracing"),
            ]
        ),
        // The typed API, written only against it: typed tasks, results and
        // failures, batches, middleware; on the in-memory broker, and on a
        // real RabbitMQ when one answers at QTASKS_URL.
        .testTarget(
            name: "TypedAPITests",
            dependencies: [
                "QTasks", "QTasksTesting", "QTasksRabbitMQ", "TestSupport", "AMQP", "QTasksResultStores",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "QTasksSchedulerTests",
            dependencies: ["QTasksScheduler", "QTasksState", "QTasksStateStores", "QTasks", "QTasksTesting"]
        ),
        // The AMQP layer's protocol logic as values (publisher confirms,
        // basic.return pairing, content frames, ack coalescing): no server.
        .testTarget(
            name: "AMQPStateMachineTests",
            dependencies: ["AMQP"]
        ),
        // AMQP layer against a real RabbitMQ (skipped with a message when none
        // is reachable; the test script starts one).
        .testTarget(
            name: "AMQPTests",
            dependencies: ["AMQP", "TestSupport"]
        ),
        // State: one contract suite over memory, an SQLite file and a real
        // Redis (QTASKS_REDIS_URL; deploy/test.sh starts one), plus servers
        // of its own for restart tests.
        .testTarget(
            name: "QTasksStateTests",
            dependencies: [
                "TestSupport",
                "QTasksState",
                "QTasksStateSQLite",
                "QTasksStateRedis",
                "QTasksStateStores",
                "QTasksStateStress",
                "QTasksTesting",
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
        // Test helper, not a product: a process that increments one State
        // counter N times (QTasksStateTests runs two for lost updates).
        .executableTarget(
            name: "QTasksStateStress",
            dependencies: ["QTasksState", "QTasksStateStores"],
            path: "Tests/QTasksStateStress"
        ),
        // Result stores: one contract suite over memory, an SQLite file and
        // a real Redis (QTASKS_REDIS_URL), plus the worker's recording of
        // task events and heartbeats on the in-memory broker.
        .testTarget(
            name: "QTasksResultsTests",
            dependencies: [
                "QTasks", "QTasksTesting", "QTasksResultsSQLite", "QTasksResultsRedis", "QTasksResultStores", "TestSupport",
                "QTasksW3CTracing", "QTasksRabbitMQ", "AMQP",
                .product(name: "MetricsTestKit", package: "swift-metrics"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The dashboard's logic without a server: credentials, the
        // same-origin check, the live counts, the attempts of a record.
        .testTarget(
            name: "QTasksDashboardTests",
            dependencies: [
                "QTasksDashboard", "QTasks", "QTasksTesting",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ]
        ),
        // End to end: real broker, real worker processes, foreign producers.
        .testTarget(
            name: "IntegrationTests",
            dependencies: [
                "QTasks", "QTasksRabbitMQ", "QTasksState", "QTasksStateStores", "AMQP", "TestSupport", "CommandSupport",
                "QTasksResultsRedis", "QTasksResultStores", "RabbitMQManagement",
                "QTasksScheduler",
                "qtasks", "qtasks-example",
                "qtasks-benchmark", "qtasks-scheduler",
                "QTasksW3CTracing",
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ]
        ),
    ]
)
