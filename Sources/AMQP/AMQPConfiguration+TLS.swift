import Foundation

extension AMQPConfiguration {
    /// Whether and how the connection to the broker is encrypted, in the
    /// style of postgres-nio's `PostgresConnection.Configuration.TLS`: a
    /// value built from static members.
    ///
    /// ```swift
    /// var configuration = try AMQPConfiguration(url: "amqps://app:secret@rabbit.example:5671/%2F")
    /// configuration.tls = .require(caFile: "/etc/qtasks/ca.pem")               // server verified
    /// configuration.tls = .require(caFile: "/etc/qtasks/ca.pem",
    ///                              certificateFile: "/etc/qtasks/client.pem",
    ///                              keyFile: "/etc/qtasks/client.key")          // mutual TLS
    /// ```
    ///
    /// With TLS on, rabbitmq-c's OpenSSL socket checks the broker's
    /// certificate chain against ``caFile`` (else the system's bundle, see
    /// ``systemCAFile``) and the host name of the URL against the
    /// certificate's names; both checks are on unless the configuration is
    /// the explicit, logged ``insecureNoVerification(certificateFile:keyFile:)``.
    /// Files are PEM. A private key must not be encrypted (rabbitmq-c 0.11
    /// could take a passphrase, but a passphrase in a configuration is no
    /// safer than an unencrypted key file with mode 0600).
    public struct TLS: Sendable, Hashable, CustomStringConvertible {
        enum Mode: Sendable, Hashable { case disabled, verified, unverified }
        let mode: Mode
        /// PEM file of the certificate authorities that may sign the
        /// broker's certificate; nil: the system's bundle.
        public var caFile: String?
        /// PEM file of this client's certificate (and its chain), for
        /// mutual TLS; needs ``keyFile``.
        public var certificateFile: String?
        /// PEM file of the private key of ``certificateFile``.
        public var keyFile: String?

        init(mode: Mode, caFile: String?, certificateFile: String?, keyFile: String?) {
            self.mode = mode
            self.caFile = caFile
            self.certificateFile = certificateFile
            self.keyFile = keyFile
        }

        /// Plain TCP (`amqp://`), the default for an `amqp://` URL.
        public static let disable = TLS(mode: .disabled, caFile: nil, certificateFile: nil, keyFile: nil)

        /// TLS with the broker's certificate chain and host name verified.
        /// - Parameters:
        ///   - caFile: PEM file of the trusted CAs; nil: ``systemCAFile``.
        ///   - certificateFile: this client's certificate, for mutual TLS.
        ///   - keyFile: the private key of `certificateFile`; both or neither.
        public static func require(caFile: String? = nil, certificateFile: String? = nil, keyFile: String? = nil) -> TLS {
            TLS(mode: .verified, caFile: caFile, certificateFile: certificateFile, keyFile: keyFile)
        }

        /// TLS that accepts ANY certificate for ANY host: encrypted, but open
        /// to whoever sits between this process and the broker. For a test
        /// broker with a throwaway certificate only; every connect logs a
        /// warning that says so.
        public static func insecureNoVerification(certificateFile: String? = nil, keyFile: String? = nil) -> TLS {
            TLS(mode: .unverified, caFile: nil, certificateFile: certificateFile, keyFile: keyFile)
        }

        /// True unless ``disable``.
        public var isEnabled: Bool { mode != .disabled }
        /// False only for ``insecureNoVerification(certificateFile:keyFile:)``.
        public var verifiesPeer: Bool { mode != .unverified }
        /// True when a client certificate is configured (mutual TLS).
        public var hasClientCertificate: Bool { certificateFile != nil }

        /// The system's CA bundle, used when ``caFile`` is nil. rabbitmq-c
        /// 0.11 loads no default verify paths itself (it never calls
        /// `SSL_CTX_set_default_verify_paths`), so the bundle is named
        /// explicitly: Debian/Ubuntu's, then Fedora/RHEL's, then Alpine's
        /// and openSUSE's. nil when none exists.
        public static var systemCAFile: String? {
            let candidates = [
                "/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt",
                "/etc/ssl/cert.pem", "/etc/ssl/ca-bundle.pem",
            ]
            return candidates.first { FileManager.default.isReadableFile(atPath: $0) }
        }

        public var description: String {
            switch mode {
            case .disabled: return "TLS disabled"
            case .verified, .unverified:
                var parts = [verifiesPeer ? "TLS (verified)" : "TLS (INSECURE: no verification)"]
                if let caFile { parts.append("ca \(caFile)") }
                if let certificateFile { parts.append("certificate \(certificateFile)") }
                return parts.joined(separator: ", ")
            }
        }

        /// Refuses what rabbitmq-c would only report as a generic failure.
        /// - Throws: `AMQPError` `.invalidArgument` for a certificate
        ///   without a key (or the reverse) or a file that cannot be read.
        func validate() throws {
            guard isEnabled else { return }
            if (certificateFile == nil) != (keyFile == nil) {
                throw AMQPError(
                    .invalidArgument,
                    "TLS client certificate and key go together: \(certificateFile == nil ? "a key file without a certificate file" : "a certificate file without a key file")")
            }
            for case (let path?, let what) in [(caFile, "CA file"), (certificateFile, "certificate file"), (keyFile, "key file")] {
                guard FileManager.default.isReadableFile(atPath: path) else {
                    throw AMQPError(.invalidArgument, "TLS \(what) \(path) does not exist or is not readable")
                }
            }
            if verifiesPeer, caFile == nil, Self.systemCAFile == nil {
                throw AMQPError(
                    .invalidArgument,
                    "TLS needs a CA file: none given and no system CA bundle found (install ca-certificates or pass caFile)")
            }
        }
    }

    /// The default port of a scheme: 5672 for `amqp`, 5671 for `amqps`
    /// (IANA's registrations, also the AMQP URI specification's defaults).
    public static func defaultPort(tls: Bool) -> Int { tls ? 5671 : 5672 }
}
