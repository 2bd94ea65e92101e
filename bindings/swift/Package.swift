// swift-tools-version:5.5
// Swift bindings for libsnapfusion: CSnapFusion is a system-library target over the
// installed C header (module.modulemap), SnapFusion the Swift wrapper.
// Needs libsnapfusion installed where the compiler and linker look (e.g. `cmake --install
// build --prefix /usr/local`), or -Xcc -I<prefix>/include -Xlinker -L<prefix>/lib.
import PackageDescription

let package = Package(
    name: "SnapFusion",
    platforms: [.macOS(.v10_15), .iOS(.v13)],
    products: [
        .library(name: "SnapFusion", targets: ["SnapFusion"]),
    ],
    targets: [
        .systemLibrary(name: "CSnapFusion", path: "Sources/CSnapFusion", pkgConfig: "snapfusion"),
        .target(name: "SnapFusion", dependencies: ["CSnapFusion"], path: "Sources/SnapFusion"),
        .executableTarget(name: "txt2img", dependencies: ["SnapFusion"], path: "Sources/txt2img"),
    ]
)
