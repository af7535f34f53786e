import Foundation

/// The pages' files, compiled into the binary by SwiftPM's `embedInCode`
/// (Package.swift): nothing is read from disk or fetched at run time.
enum Assets {
    /// index.html with `{{BASE}}` replaced by the mount path.
    static func index(base: String) -> [UInt8] {
        let escaped = base.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "\"", with: "&quot;")
            .replacingOccurrences(of: "<", with: "&lt;")
        return Array(String(decoding: PackageResources.index_html, as: UTF8.self)
            .replacingOccurrences(of: "{{BASE}}", with: escaped).utf8)
    }

    static var script: [UInt8] { PackageResources.app_js }
    static var styles: [UInt8] { PackageResources.app_css }
}
