// swift-tools-version:6.0
import PackageDescription

/// Kernels are compiled with AVX2/FMA and -Ounchecked even in debug builds, so that
/// `swift test` (which builds in debug) runs numeric code at a usable speed.
let kernelFlags: [SwiftSetting] = [
    .unsafeFlags(["-Ounchecked", "-Xcc", "-mavx2", "-Xcc", "-mfma", "-Xcc", "-mf16c"]),
]
let fastFlags: [SwiftSetting] = [
    .unsafeFlags(["-O", "-Xcc", "-mavx2", "-Xcc", "-mfma"]),
]

let package = Package(
    name: "Loom",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "loom", targets: ["loom"]),
        .library(name: "LoomSupport", targets: ["LoomSupport"]),
        .library(name: "LoomTensor", targets: ["LoomTensor"]),
        .library(name: "LoomNN", targets: ["LoomNN"]),
        .library(name: "LoomTokenizer", targets: ["LoomTokenizer"]),
        .library(name: "LoomData", targets: ["LoomData"]),
        .library(name: "LoomTrain", targets: ["LoomTrain"]),
        .library(name: "LoomDistributed", targets: ["LoomDistributed"]),
        .library(name: "LoomInference", targets: ["LoomInference"]),
        .library(name: "LoomEval", targets: ["LoomEval"]),
        .library(name: "LoomPipeline", targets: ["LoomPipeline"]),
        .library(name: "LoomServe", targets: ["LoomServe"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-numerics", from: "1.1.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", exact: "2.28.1"),
    ],
    targets: [
        // cpuid/xgetbv (CPUFeatures.swift) and OpenBLAS opened at run time (BLAS.swift): OpenBLAS
        // is not linked at build time, so that Loom can choose its kernels before it initialises.
        // -O2 even in debug builds: the batch-invariant matrix products (row_invariant.c) are
        // what the server runs, and what `swift test` checks.
        .target(name: "CLoomCPU", path: "Sources/CLoomCPU", cSettings: [.unsafeFlags(["-O2"])]),
        // Quantized dot-product kernels: AVX2 functions (target attributes) beside portable ones,
        // chosen at run time; optimised even in debug, and without implicit FMA contraction so
        // that the two versions round identically.
        .target(name: "CLoomQuant", path: "Sources/CLoomQuant", cSettings: [.unsafeFlags(["-O3", "-ffp-contract=off"])]),
        // The bottom of the graph, with no dependencies: helpers every layer shares (JSON string
        // literals, atomic file writes, durations, parsing of named cases).
        .target(name: "LoomSupport", swiftSettings: fastFlags),
        .target(name: "COpenBLAS", path: "Sources/COpenBLAS", linkerSettings: [.linkedLibrary("dl")]),
        .target(
            name: "LoomTensor",
            dependencies: ["CLoomCPU", "CLoomQuant", "COpenBLAS", .product(name: "Numerics", package: "swift-numerics")],
            swiftSettings: kernelFlags
        ),
        // Open MPI's headers and library (libopenmpi-dev, installed by scripts/install_dependencies.sh);
        // MPI itself is initialised only when the process was started by mpirun (World.swift).
        .systemLibrary(name: "CMPI", path: "Sources/CMPI", pkgConfig: "ompi-c", providers: [.apt(["libopenmpi-dev"])]),
        .target(name: "LoomDistributed", dependencies: ["CMPI", "LoomTensor"], swiftSettings: fastFlags),
        .target(name: "LoomNN", dependencies: ["LoomSupport", "LoomTensor"], swiftSettings: fastFlags),
        .target(name: "LoomTokenizer", dependencies: ["LoomSupport"], swiftSettings: fastFlags),
        .target(name: "LoomData", dependencies: ["LoomSupport", "LoomTokenizer"], swiftSettings: fastFlags),
        .target(name: "LoomInference", dependencies: ["LoomNN", "LoomTokenizer"], swiftSettings: fastFlags),
        .target(name: "LoomTrain", dependencies: ["LoomSupport", "LoomNN", "LoomData", "LoomTokenizer", "LoomInference", "LoomDistributed"], swiftSettings: fastFlags),
        .target(name: "LoomEval", dependencies: ["LoomSupport", "LoomTensor", "LoomInference", "LoomData"], swiftSettings: fastFlags),
        .target(name: "LoomPipeline", dependencies: ["LoomSupport", "LoomData", "LoomTrain", "LoomInference", "LoomEval", "LoomTokenizer"], swiftSettings: fastFlags),
        // The OpenAI-compatible server (`loom serve`): HTTP on Hummingbird, a continuous-batching
        // scheduler on its own thread.
        .target(
            name: "LoomServe",
            dependencies: ["LoomSupport", "LoomNN", "LoomTokenizer", "LoomInference", .product(name: "Hummingbird", package: "hummingbird")],
            resources: [.copy("Resources")],
            swiftSettings: fastFlags
        ),
        .executableTarget(
            name: "loom",
            dependencies: [
                "LoomSupport", "LoomTensor", "LoomNN", "LoomTokenizer", "LoomData", "LoomTrain", "LoomInference", "LoomEval", "LoomPipeline", "LoomServe",
                "LoomDistributed",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: fastFlags
        ),
        .testTarget(name: "LoomSupportTests", dependencies: ["LoomSupport"]),
        .testTarget(name: "LoomTensorTests", dependencies: ["LoomTensor"]),
        .testTarget(name: "LoomNNTests", dependencies: ["LoomNN"], resources: [.copy("Reference")]),
        .testTarget(name: "LoomTokenizerTests", dependencies: ["LoomTokenizer"], resources: [.copy("Reference")]),
        .testTarget(name: "LoomDataTests", dependencies: ["LoomData"]),
        .testTarget(name: "LoomPipelineTests", dependencies: ["LoomPipeline", "LoomData", "LoomTrain"]),
        .testTarget(name: "LoomInferenceTests", dependencies: ["LoomInference", "LoomNN", "LoomTokenizer"]),
        .testTarget(name: "LoomServeTests", dependencies: ["LoomServe", "LoomInference", "LoomNN", "LoomTokenizer"]),
        .testTarget(name: "LoomDistributedTests", dependencies: ["LoomDistributed", "LoomTensor"]),
        .testTarget(name: "LoomTrainTests", dependencies: ["LoomTrain", "LoomInference", "LoomEval"], exclude: ["Reference"]),
    ],
    swiftLanguageModes: [.v5]
)
