import CRabbitMQ
import Logging

// Socket creation for `ConnectionCore.open`, on the owner thread.
//
// OpenSSL initialisation: rabbitmq-c 0.11's header says `amqp_ssl_socket_new`
// "may result in the underlying SSL library being initialized" (once per
// program, under rabbitmq-c's own mutex, unless
// `amqp_set_initialize_ssl_library(0)`), and that `amqp_initialize_ssl_library`
// is thread-safe and may be called more than once. With OpenSSL 3 the
// library also initialises itself on first use. So nothing is done here
// beyond creating the socket; each socket has its own `SSL_CTX`, used only by
// the connection's owner thread like the rest of the connection.

func tcpSocket(_ state: amqp_connection_state_t) throws -> OpaquePointer {
    guard let socket = amqp_tcp_socket_new(state) else {
        throw AMQPError(.connectionFailed, "amqp_tcp_socket_new failed")
    }
    return socket
}

/// An SSL socket set up from `tls`: CA (else the system bundle), client
/// certificate, peer and host-name verification.
func openSSLSocket(
    _ state: amqp_connection_state_t, _ tls: AMQPConfiguration.TLS, logger: Logger, address: String
) throws -> OpaquePointer {
    guard let socket = amqp_ssl_socket_new(state) else {
        throw AMQPError(.connectionFailed, "amqp_ssl_socket_new failed (OpenSSL could not create a context)")
    }
    crabbitmq_ssl_socket_record_verify_errors(socket)
    if tls.verifiesPeer {
        // validate() made sure one of them exists.
        let caFile = tls.caFile ?? AMQPConfiguration.TLS.systemCAFile ?? ""
        let status = amqp_ssl_socket_set_cacert(socket, caFile)
        guard status == AMQP_STATUS_OK.rawValue else {
            throw AMQPError(
                .invalidArgument, "TLS CA file \(caFile) could not be loaded (not PEM certificates?): \(libraryErrorText(status))",
                libraryStatus: status)
        }
    } else {
        logger.warning(
            "TLS certificate verification is OFF (insecureNoVerification): the connection is encrypted but anyone between here and the broker can read and change it",
            metadata: ["broker": "\(address)"])
    }
    amqp_ssl_socket_set_verify_peer(socket, tls.verifiesPeer ? 1 : 0)
    amqp_ssl_socket_set_verify_hostname(socket, tls.verifiesPeer ? 1 : 0)
    if let certificate = tls.certificateFile, let key = tls.keyFile {
        let status = amqp_ssl_socket_set_key(socket, certificate, key)
        guard status == AMQP_STATUS_OK.rawValue else {
            throw AMQPError(
                .invalidArgument,
                "TLS client certificate \(certificate) or key \(key) could not be loaded (not PEM, an encrypted key, or a key that does not match the certificate): \(libraryErrorText(status))",
                libraryStatus: status)
        }
    }
    // TLS 1.2 at least: what RabbitMQ 3.10+ offers by default.
    _ = amqp_ssl_socket_set_ssl_versions(socket, AMQP_TLSv1_2, AMQP_TLSvLATEST)
    return socket
}

/// The error for a failed TLS connect, naming which check failed; nil for
/// failures that are not TLS's (refused port, timeout, unknown host).
func tlsOpenError(
    _ status: Int32, socket: OpaquePointer, address: String, configuration: AMQPConfiguration
) -> AMQPError? {
    var text: UnsafePointer<CChar>?
    let verifyError = crabbitmq_ssl_socket_verify_error(socket, &text)
    let reason = text.map { String(cString: $0) } ?? "X509 error \(verifyError)"
    switch status {
    case AMQP_STATUS_SSL_PEER_VERIFY_FAILED.rawValue:
        let caSource = configuration.tls.caFile.map { "CA file \($0)" } ?? "the system's CA bundle"
        // X509_V_ERR_CERT_NOT_YET_VALID 9, X509_V_ERR_CERT_HAS_EXPIRED 10.
        if verifyError == 9 || verifyError == 10 {
            return AMQPError(
                .tlsCertificateExpired,
                "TLS to \(address): the broker's certificate is outside its validity period (\(reason))",
                libraryStatus: status)
        }
        let detail = verifyError != 0 ? reason : "no certificate, or a chain that does not verify"
        return AMQPError(
            .tlsCertificateUntrusted,
            "TLS to \(address): the broker's certificate is not trusted by \(caSource) (\(detail))",
            libraryStatus: status)
    case AMQP_STATUS_SSL_HOSTNAME_VERIFY_FAILED.rawValue:
        return AMQPError(
            .tlsHostnameMismatch,
            "TLS to \(address): the broker's certificate is not valid for host name '\(configuration.host)' (none of its subject alternative names or its common name match)",
            libraryStatus: status)
    case AMQP_STATUS_SSL_CONNECTION_FAILED.rawValue, AMQP_STATUS_SSL_ERROR.rawValue:
        return AMQPError(
            .tlsHandshakeFailed,
            "TLS handshake with \(address) failed: \(libraryErrorText(status)) (is it a plain AMQP port? The TLS port is usually 5671; plain amqp:// is 5672. Or the broker refused this client's certificate)",
            libraryStatus: status)
    case AMQP_STATUS_CONNECTION_CLOSED.rawValue, AMQP_STATUS_SOCKET_CLOSED.rawValue:
        // A plain AMQP listener answers a ClientHello with its own protocol
        // header and closes; OpenSSL may see either the bytes or the close.
        return AMQPError(
            .tlsHandshakeFailed,
            "TLS handshake with \(address) failed: the server closed the connection (is it a plain AMQP port? Use amqp:// or the TLS port, usually 5671)",
            libraryStatus: status)
    default:
        return nil
    }
}
