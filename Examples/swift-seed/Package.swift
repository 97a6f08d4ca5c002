// swift-tools-version:6.2
//
// The question's pipeline as a package of its own, depending on Conveyor by path (this
// checkout's root). In your own package, depend on it by git URL instead: see README.md.
import PackageDescription

let package = Package(
    name: "swift-seed",
    dependencies: [
        .package(name: "Conveyor", path: "../.."),
    ],
    targets: [
        .executableTarget(
            name: "swift-seed",
            dependencies: [.product(name: "Conveyor", package: "Conveyor")],
            path: "Sources/swift-seed"
        ),
    ],
    swiftLanguageModes: [.v6]
)
