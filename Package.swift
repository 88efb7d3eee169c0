// swift-tools-version:6.0
// HessianDist: Hessian-guided mixed-precision quantization of LLMs on an MPI cluster.
// Arrows point one way: Wire -> CZstd; HessianDist -> CBLAS; Node -> HessianDist, Wire, CMPI;
// Coordinator -> HessianDist, Wire, Node; hessdist (CLI) -> all.
import PackageDescription

// Numeric targets are optimised even in debug builds: the tests run real models, and unoptimised
// Swift loops are ~50x slower. -Ounchecked in release drops overflow traps in hot loops (kernels
// are bounds-checked by their callers).
let numericSettings: [SwiftSetting] = [
    .unsafeFlags(["-O"], .when(configuration: .debug)),
    .unsafeFlags(["-Ounchecked", "-wmo"], .when(configuration: .release)),
]

let package = Package(
    name: "HessianDist",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "hessdist", targets: ["hessdist"]),
        .library(name: "HessianDist", targets: ["HessianDist"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // C shims over Debian's system libraries, found through pkg-config.
        .systemLibrary(name: "CMPI", pkgConfig: "ompi",
                       providers: [.apt(["libopenmpi-dev", "openmpi-bin"])]),
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "CBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev", "liblapacke-dev"])]),

        .target(name: "HessianDist", dependencies: ["CBLAS"], swiftSettings: numericSettings),
        .target(name: "Wire", dependencies: ["CZstd"], swiftSettings: numericSettings),
        .target(name: "Node", dependencies: ["HessianDist", "Wire", "CMPI"], swiftSettings: numericSettings),
        .target(name: "Coordinator", dependencies: ["HessianDist", "Wire", "Node"], swiftSettings: numericSettings),
        .executableTarget(name: "hessdist", dependencies: [
            "HessianDist", "Wire", "Node", "Coordinator",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        // Shared helpers for tests: locating ../shared/data, running the Python cross-checks.
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "HessianDistTests", dependencies: ["HessianDist", "TestSupport"]),
        // Optimised like the numeric targets: the tests build and compress 1536x1536 Hessians.
        .testTarget(name: "WireTests", dependencies: ["Wire", "TestSupport"], swiftSettings: numericSettings),
        .testTarget(name: "NodeTests", dependencies: ["Node", "HessianDist", "TestSupport"]),
        .testTarget(name: "CoordinatorTests", dependencies: ["Coordinator", "Node", "Wire", "TestSupport"]),
        // Runs the built `hessdist` binary as a user would (and, with the cluster milestone, under mpirun).
        .testTarget(name: "IntegrationTests", dependencies: ["TestSupport", "Node", "HessianDist"]),
    ]
)
