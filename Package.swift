// swift-tools-version:6.2
//
// Conveyor: zero-copy numeric pipelines. A C11 core (CKernels: SIMD + OpenMP kernels,
// the shared-memory ring, slot pools and index channels, stage programs) under a typed
// Swift façade (Conveyor).
//
// Dependencies, each justified:
// - swift-argument-parser: the benchmark executable's subcommands and options; the
//   toolchain's own package, so no hand-written flag parsing.
// - swift-atomics: `UnsafeAtomic` over memory we map ourselves. The pipeline's control
//   block (abort flag, per-stage counters) lives in shared memory that forked stage
//   processes update; the standard library's `Atomic` must be a stored property and
//   cannot sit at an address in an mmap'd region.
// - swift-docc-plugin: builds the DocC catalog (scripts/check-docs); a plugin, never linked.
import PackageDescription

/// OpenMP is a trait, on by default. Debian's libomp-dev ships only `libomp.so.5` in the
/// multiarch directory (no `libomp.so`), so the link names that file exactly.
/// `swift build --disable-default-traits` builds a serial library with the same API.
let openMP: Set<String> = ["OpenMP"]

/// MPI is a trait, off by default: runs across the ranks of an MPI job (Open MPI's
/// libopenmpi-dev, found through pkg-config's ompi-c). Off, nothing links MPI.
let mpi: Set<String> = ["MPI"]

let package = Package(
    name: "Conveyor",
    products: [
        .library(name: "Conveyor", targets: ["Conveyor"]),
        .library(name: "CKernels", targets: ["CKernels"]),
        .executable(name: "conveyor-bench", targets: ["ConveyorBench"]),
        // A Swift producer of a named ring for the Python tests' cross-language check
        // (scripts/test-python builds it); not meant for users.
        .executable(name: "conveyor-ring-peer", targets: ["ConveyorRingPeer"]),
        // Stage programs (conveyor.h section 10) that the pipeline tests of every language
        // start as stages, in C and in Swift, and the spawned-mode check; not meant for users.
        .executable(name: "conveyor-kernel-stage", targets: ["ConveyorKernelStage"]),
        .executable(name: "conveyor-swift-stage", targets: ["ConveyorSwiftStage"]),
        .executable(name: "conveyor-spawn-check", targets: ["ConveyorSpawnCheck"]),
        // The Swift side of scripts/test-mpi (runs across MPI ranks; trait MPI); not for users.
        .executable(name: "conveyor-mpi-ranks", targets: ["ConveyorMPIRanks"]),
    ],
    traits: [
        .trait(name: "OpenMP", description: "Parallel kernels through LLVM's libomp (libomp-dev)."),
        .trait(name: "MPI", description: "Pipelines across the ranks of an MPI job (Open MPI, libopenmpi-dev)."),
        .default(enabledTraits: ["OpenMP"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-atomics", from: "1.2.0"),
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
    ],
    targets: [
        .target(
            name: "CKernels",
            path: "CKernels",
            cSettings: [
                .define("_GNU_SOURCE"),
                .define("CONVEYOR_HAVE_OPENMP", .when(traits: openMP)),
                .unsafeFlags(["-fopenmp"], .when(traits: openMP)),
            ],
            linkerSettings: [
                .linkedLibrary(":libomp.so.5", .when(traits: openMP)),
                .linkedLibrary("m"),
            ]
        ),
        // MPI's header and library (trait MPI only): the system's Open MPI through pkg-config.
        .systemLibrary(name: "CMPI", path: "Bridges/mpi/CMPI", pkgConfig: "ompi-c",
                       providers: [.apt(["libopenmpi-dev"])]),
        // The MPI bridge (conveyor_mpi.h): links and ring bridges between ranks, in C.
        .target(
            name: "ConveyorMPI",
            dependencies: ["CKernels", "CMPI"],
            path: "Bridges/mpi",
            exclude: ["CMPI"],
            cSettings: [.define("_GNU_SOURCE")]
        ),
        .target(
            name: "Conveyor",
            dependencies: [
                "CKernels", .product(name: "Atomics", package: "swift-atomics"),
                .target(name: "ConveyorMPI", condition: .when(traits: mpi)),
            ],
            path: "Sources/Conveyor"
        ),
        // Deliberately naive scalar loops (vectorization disabled) so the benchmark can
        // show what the SIMD kernels gain, and the timed C loops of the ring benchmark.
        // Not part of any product.
        .target(
            name: "BenchBaselines",
            dependencies: ["CKernels"],
            path: "Benchmarks/BenchBaselines"
        ),
        // The timed loops of `conveyor-bench mpi` (trait MPI): bare MPI, and the bridge.
        .target(
            name: "MPIBench",
            dependencies: ["ConveyorMPI"],
            path: "Benchmarks/MPIBench",
            cSettings: [.define("_GNU_SOURCE")]
        ),
        .executableTarget(
            name: "ConveyorBench",
            dependencies: [
                "Conveyor", "CKernels", "BenchBaselines",
                .target(name: "MPIBench", condition: .when(traits: mpi)),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Benchmarks/ConveyorBench"
        ),
        // Frames from Swift into a named ring that a Python consumer reads (Tests/python/
        // test_cross_language.py); through the Conveyor ring API only.
        .executableTarget(
            name: "ConveyorRingPeer",
            dependencies: ["Conveyor"],
            path: "Tests/RingPeer"
        ),
        .executableTarget(name: "ConveyorKernelStage", dependencies: ["CKernels"], path: "Tests/StagePrograms"),
        .executableTarget(name: "ConveyorSwiftStage", dependencies: ["Conveyor"], path: "Tests/SwiftStage"),
        .executableTarget(name: "ConveyorSpawnCheck", dependencies: ["Conveyor"], path: "Tests/SpawnCheck"),
        .executableTarget(name: "ConveyorMPIRanks", dependencies: ["Conveyor"], path: "Tests/MPIRanks"),
        .testTarget(
            name: "ConveyorTests",
            // The stage programs are dependencies so that `swift test` builds them beside
            // the tests, which start them.
            dependencies: ["Conveyor", "CKernels", "ConveyorKernelStage", "ConveyorSwiftStage", "ConveyorSpawnCheck"],
            path: "Tests/ConveyorTests"
        ),
    ],
    swiftLanguageModes: [.v6],
    cLanguageStandard: .c11
)
