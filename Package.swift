// swift-tools-version:6.2
import PackageDescription

let package = Package(
  name: "Switchyard",
  platforms: [.macOS(.v15)],
  products: [
    .library(name: "EtcdClient", targets: ["EtcdClient"]),
    .executable(name: "switchyard", targets: ["switchyard"]),
    .executable(name: "etcd-benchmark", targets: ["EtcdBenchmark"]),
    .executable(name: "controller-benchmark", targets: ["ControllerBenchmark"]),
  ],
  dependencies: [
    .package(url: "https://github.com/grpc/grpc-swift-2.git", from: "2.4.3"),
    .package(url: "https://github.com/grpc/grpc-swift-nio-transport.git", from: "2.9.2"),
    .package(url: "https://github.com/grpc/grpc-swift-protobuf.git", from: "2.4.1"),
    .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0"),
    .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
    .package(url: "https://github.com/apple/swift-nio-http2.git", from: "1.46.0"),
    .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
    .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
    .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
    .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
    // Already resolved for hummingbird; named for the admin server's TLS and the tests' TLS client.
    .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
    .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
    .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
    .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
    // Already resolved for hummingbird's tests; the one HTTP client of health checks and probes.
    .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
    // Already resolved for grpc-swift-nio-transport and swift-nio-extras; named for the PKI.
    .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
    .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
    .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.4"),
  ],
  targets: [
    // IP address literals and `host:port` text: the one parser and formatter, shared by the model, the etcd
    // client and the HAProxy adapter without making them depend on each other. No dependencies.
    .target(name: "AddressText"),
    // The etcd v3 client: a library of its own, usable without the rest of Switchyard.
    .target(
      name: "EtcdClient",
      dependencies: [
        "AddressText",
        .product(name: "GRPCCore", package: "grpc-swift-2"),
        .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
        .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
        .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
        .product(name: "NIOHTTP2", package: "swift-nio-http2"),
        .product(name: "Logging", package: "swift-log"),
      ]
    ),
    // The registration model: keys, values, validation. Pure logic, no I/O.
    .target(name: "SwitchyardModel", dependencies: ["AddressText"]),
    // One HTTP GET on a connection of its own, for health checks, readiness probes and status pages.
    .target(
      name: "SwitchyardHTTP",
      dependencies: [
        "AddressText",
        .product(name: "AsyncHTTPClient", package: "async-http-client"),
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOHTTP1", package: "swift-nio"),
        .product(name: "NIOSSL", package: "swift-nio-ssl"),
      ]
    ),
    // The live dashboard's pure part: what each node reports (recent changes, traffic), the merge of every
    // node's report into one view of the cluster, its warnings, the login check, and the page itself (HTML,
    // script and style as constants). No I/O.
    .target(name: "SwitchyardDashboard", dependencies: ["SwitchyardModel"]),
    // Registration agents: keeping an instance registered, health checks, the sample backend.
    .target(
      name: "SwitchyardAgent",
      dependencies: [
        "SwitchyardHTTP",
        "EtcdClient",
        "SwitchyardModel",
        .product(name: "Logging", package: "swift-log"),
        .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        .product(name: "Hummingbird", package: "hummingbird"),
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
      ]
    ),
    // The reconcile logic of a load-balancer node: desired state, HAProxy config rendering, planning,
    // coalescing. Pure logic, no I/O.
    .target(name: "SwitchyardReconcile", dependencies: ["AddressText", "SwitchyardModel"]),
    // Child processes: starting (posix_spawn), watching and stopping them, running a command to completion,
    // PATH lookup, /proc, free loopback ports. For HAProxy, etcd, backends, the bench and the tests.
    .target(name: "SwitchyardProcess"),
    // HAProxy at the edge: the Runtime API and master CLI, the master-worker process, config installation.
    .target(
      name: "HAProxyKit",
      dependencies: [
        "AddressText",
        "SwitchyardProcess",
        .product(name: "Logging", package: "swift-log"),
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
      ]
    ),
    // The load-balancer node: the controller service that keeps HAProxy in step with etcd, its admin server
    // and metrics.
    .target(
      name: "SwitchyardController",
      dependencies: [
        "AddressText",
        "EtcdClient",
        "HAProxyKit",
        "SwitchyardACME",
        "SwitchyardAgent",
        "SwitchyardCerts",
        "SwitchyardDashboard",
        "SwitchyardProcess",
        "SwitchyardModel",
        "SwitchyardReconcile",
        .product(name: "AsyncHTTPClient", package: "async-http-client"),
        .product(name: "Logging", package: "swift-log"),
        .product(name: "Metrics", package: "swift-metrics"),
        .product(name: "Prometheus", package: "swift-prometheus"),
        .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        .product(name: "Hummingbird", package: "hummingbird"),
        .product(name: "HummingbirdTLS", package: "hummingbird"),
        .product(name: "NIOSSL", package: "swift-nio-ssl"),
      ]
    ),
    // A small certificate authority on swift-certificates and swift-crypto: secure local clusters and TLS tests.
    .target(
      name: "SwitchyardPKI",
      dependencies: [
        "AddressText",
        .product(name: "X509", package: "swift-certificates"),
        .product(name: "Crypto", package: "swift-crypto"),
        .product(name: "SwiftASN1", package: "swift-asn1"),
      ]
    ),
    // ACME (RFC 8555) HTTP-01 once for the whole cluster: JWS, the client, and the coordinator elected through an
    // etcd lease that orders and renews certificates and stores them in etcd.
    .target(
      name: "SwitchyardACME",
      dependencies: [
        "EtcdClient",
        "SwitchyardCerts",
        "SwitchyardModel",
        "SwitchyardReconcile",
        .product(name: "AsyncHTTPClient", package: "async-http-client"),
        .product(name: "Crypto", package: "swift-crypto"),
        .product(name: "Logging", package: "swift-log"),
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOHTTP1", package: "swift-nio"),
        .product(name: "NIOSSL", package: "swift-nio-ssl"),
        .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        .product(name: "SwiftASN1", package: "swift-asn1"),
        .product(name: "X509", package: "swift-certificates"),
      ]
    ),
    // Certificates kept in etcd: names, the cluster key that seals private keys, the record's JSON, and the
    // validation of a chain and its key. Pure logic and crypto, no I/O.
    .target(
      name: "SwitchyardCerts",
      dependencies: [
        "SwitchyardModel",
        .product(name: "X509", package: "swift-certificates"),
        .product(name: "Crypto", package: "swift-crypto"),
        .product(name: "_CryptoExtras", package: "swift-crypto"),
        .product(name: "SwiftASN1", package: "swift-asn1"),
      ]
    ),
    // The whole system on one machine: etcd members, LB nodes and backends as real processes.
    .target(
      name: "SwitchyardLocal",
      dependencies: [
        "EtcdClient",
        "HAProxyKit",
        "SwitchyardProcess",
        "SwitchyardPKI",
        "SwitchyardCerts",
        "SwitchyardAgent",
        "SwitchyardHTTP",
        "SwitchyardModel",
        .product(name: "Logging", package: "swift-log"),
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
      ]
    ),
    // Command-line interface: subcommands and the options they share.
    .target(
      name: "SwitchyardCLI",
      dependencies: [
        "EtcdClient",
        "SwitchyardACME",
        "SwitchyardAgent",
        "SwitchyardCerts",
        "SwitchyardBench",
        "SwitchyardController",
        "SwitchyardHTTP",
        "SwitchyardLocal",
        "SwitchyardModel",
        "SwitchyardProcess",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
        .product(name: "UnixSignals", package: "swift-service-lifecycle"),
        .product(name: "Logging", package: "swift-log"),
        .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
      ],
      // crypt(3), for the stats page's password hash.
      linkerSettings: [.linkedLibrary("crypt", .when(platforms: [.linux]))]
    ),
    .executableTarget(
      name: "switchyard",
      dependencies: ["SwitchyardCLI", .product(name: "ArgumentParser", package: "swift-argument-parser")]
    ),
    // Real etcd members, HTTP backends and an HTTP load client on loopback: what `switchyard bench` and the
    // benchmarks start at run time, and the tests too.
    .target(
      name: "SwitchyardLab",
      dependencies: [
        "AddressText",
        "SwitchyardHTTP",
        "SwitchyardProcess",
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
        .product(name: "NIOHTTP1", package: "swift-nio"),
        // The TLS client of the tests and the bench (TLSClient, TLSHandshakeLoad).
        .product(name: "NIOSSL", package: "swift-nio-ssl"),
        .product(name: "NIOTLS", package: "swift-nio"),
        .product(name: "Crypto", package: "swift-crypto"),
        .product(name: "X509", package: "swift-certificates"),
      ]
    ),
    // Test support on top of the lab: network labs for fault tests, generated TLS files, and a WebDriver
    // client that drives a headless Chromium through chromedriver (its HTTP client is AsyncHTTPClient).
    .target(
      name: "SwitchyardTestSupport",
      dependencies: [
        "EtcdClient",
        "SwitchyardLab",
        "SwitchyardPKI",
        "SwitchyardProcess",
        .product(name: "AsyncHTTPClient", package: "async-http-client"),
        .product(name: "Logging", package: "swift-log"),
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
        .product(name: "NIOHTTP1", package: "swift-nio"),
        .product(name: "NIOSSL", package: "swift-nio-ssl"),
      ]
    ),
    // `switchyard bench`: etcd, controllers, HAProxy and backends started on loopback, and the figures of
    // convergence, churn, bursts, scale and the data plane measured for each update strategy.
    .target(
      name: "SwitchyardBench",
      dependencies: [
        "EtcdClient",
        "HAProxyKit",
        "SwitchyardCerts",
        "SwitchyardPKI",
        "SwitchyardModel",
        "SwitchyardLab",
        "SwitchyardProcess",
        .product(name: "Histogram", package: "hdrhistogram-swift"),
        .product(name: "Logging", package: "swift-log"),
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
        .product(name: "NIOHTTP1", package: "swift-nio"),
      ]
    ),
    .executableTarget(
      name: "EtcdBenchmark",
      dependencies: [
        "EtcdClient",
        "SwitchyardLab",
        "SwitchyardProcess",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
      ]
    ),
    .executableTarget(
      name: "ControllerBenchmark",
      dependencies: [
        "EtcdClient",
        "HAProxyKit",
        "SwitchyardModel",
        "SwitchyardLab",
        "SwitchyardProcess",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
        .product(name: "Logging", package: "swift-log"),
      ]
    ),
    .testTarget(name: "AddressTextTests", dependencies: ["AddressText"]),
    .testTarget(
      name: "SwitchyardHTTPTests",
      dependencies: [
        "SwitchyardHTTP",
        "SwitchyardPKI",
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
        .product(name: "NIOSSL", package: "swift-nio-ssl"),
      ]
    ),
    .testTarget(name: "SwitchyardModelTests", dependencies: ["SwitchyardModel"]),
    .testTarget(name: "SwitchyardDashboardTests", dependencies: ["SwitchyardDashboard", "SwitchyardModel"]),
    .testTarget(
      name: "SwitchyardReconcileTests",
      dependencies: ["SwitchyardReconcile", "SwitchyardModel"],
      exclude: ["Golden"]
    ),
    .testTarget(
      name: "HAProxyKitTests",
      dependencies: [
        "HAProxyKit",
        "SwitchyardLab",
        "SwitchyardPKI",
        "SwitchyardTestSupport",
        .product(name: "Logging", package: "swift-log"),
      ]
    ),
    .testTarget(
      name: "SwitchyardControllerTests",
      dependencies: [
        "EtcdClient",
        "HAProxyKit",
        "SwitchyardCerts",
        "SwitchyardController",
        "SwitchyardDashboard",
        "SwitchyardLab",
        "SwitchyardLocal",
        "SwitchyardModel",
        "SwitchyardPKI",
        "SwitchyardProcess",
        "SwitchyardReconcile",
        "SwitchyardTestSupport",
        .product(name: "Hummingbird", package: "hummingbird"),
        .product(name: "Logging", package: "swift-log"),
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
        .product(name: "NIOSSL", package: "swift-nio-ssl"),
      ]
    ),
    .testTarget(
      name: "SwitchyardCLITests",
      dependencies: [
        "SwitchyardCLI",
        "EtcdClient",
        "SwitchyardCerts",
        "SwitchyardDashboard",
        "SwitchyardLocal",
        "SwitchyardModel",
        "SwitchyardReconcile",
        "SwitchyardTestSupport",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
        // Test certificates for `switchyard cert` (CertCommandTests).
        .product(name: "X509", package: "swift-certificates"),
        .product(name: "Crypto", package: "swift-crypto"),
      ]
    ),
    .testTarget(name: "SwitchyardTestSupportTests", dependencies: ["SwitchyardTestSupport"]),
    .testTarget(
      name: "SwitchyardPKITests",
      dependencies: [
        "SwitchyardPKI",
        "SwitchyardProcess",
        .product(name: "X509", package: "swift-certificates"),
        .product(name: "Crypto", package: "swift-crypto"),
        .product(name: "SwiftASN1", package: "swift-asn1"),
      ]
    ),
    .testTarget(
      name: "SwitchyardCertsTests",
      dependencies: [
        "SwitchyardCerts",
        "SwitchyardModel",
        "SwitchyardPKI",
        "SwitchyardProcess",
        .product(name: "X509", package: "swift-certificates"),
        .product(name: "Crypto", package: "swift-crypto"),
        .product(name: "_CryptoExtras", package: "swift-crypto"),
        .product(name: "SwiftASN1", package: "swift-asn1"),
      ]
    ),
    .testTarget(name: "SwitchyardProcessTests", dependencies: ["SwitchyardProcess"]),
    .testTarget(
      name: "SwitchyardACMETests",
      dependencies: [
        "EtcdClient",
        "SwitchyardACME",
        "SwitchyardCerts",
        "SwitchyardModel",
        "SwitchyardPKI",
        "SwitchyardTestSupport",
        .product(name: "Crypto", package: "swift-crypto"),
        .product(name: "Hummingbird", package: "hummingbird"),
        .product(name: "Logging", package: "swift-log"),
        .product(name: "X509", package: "swift-certificates"),
      ]
    ),
    .testTarget(
      name: "SwitchyardBenchTests",
      dependencies: [
        "SwitchyardBench", "SwitchyardLab", "SwitchyardProcess",
        .product(name: "Histogram", package: "hdrhistogram-swift"),
      ]
    ),
    .testTarget(name: "ContainerTests", dependencies: ["SwitchyardTestSupport"]),
    .testTarget(
      name: "FaultTests",
      dependencies: [
        "EtcdClient",
        "HAProxyKit",
        "SwitchyardCerts",
        "SwitchyardLab",
        "SwitchyardModel",
        "SwitchyardPKI",
        "SwitchyardTestSupport",
        .product(name: "Logging", package: "swift-log"),
      ]
    ),
    .testTarget(
      name: "SwitchyardAgentTests",
      dependencies: [
        "EtcdClient",
        "SwitchyardAgent",
        "SwitchyardHTTP",
        "SwitchyardTestSupport",
        .product(name: "Logging", package: "swift-log"),
      ]
    ),
    .testTarget(
      name: "EtcdClientTests",
      dependencies: [
        "EtcdClient",
        "SwitchyardTestSupport",
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOEmbedded", package: "swift-nio"),
        .product(name: "NIOHTTP2", package: "swift-nio-http2"),
        .product(name: "GRPCCore", package: "grpc-swift-2"),
      ]
    ),
  ],
  swiftLanguageModes: [.v6]
)
