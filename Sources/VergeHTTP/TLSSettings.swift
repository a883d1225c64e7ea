import NIOSSL
import VergeCore

/// TLS for a component: the certificate chain and key it serves with, and the CA its clients trust for the
/// cluster's other components. Without a certificate a listener speaks plain HTTP; without a CA file clients
/// trust the system's roots.
public struct TLSSettings: Sendable, Equatable {
    /// PEM certificate chain the listener presents (leaf first).
    public var certificateFile: String?
    /// PEM private key of that certificate.
    public var keyFile: String?
    /// PEM certificates of the CA(s) this component's clients trust (control plane, hosts).
    public var caFile: String?

    public init(certificateFile: String? = nil, keyFile: String? = nil, caFile: String? = nil) {
        self.certificateFile = certificateFile
        self.keyFile = keyFile
        self.caFile = caFile
    }

    /// Whether the listener serves TLS.
    public var serves: Bool { certificateFile != nil }

    /// Checks that the settings make sense together and that every file loads, naming the flag to fix.
    public func validate() throws(VergeError) {
        guard (certificateFile == nil) == (keyFile == nil) else {
            throw VergeError(.badRequest, "TLS needs both a certificate (--tls-cert) and its key (--tls-key)")
        }
        _ = try serverConfiguration()
        _ = try clientConfiguration()
    }

    /// The listener's TLS configuration, or `nil` for plain HTTP.
    public func serverConfiguration() throws(VergeError) -> TLSConfiguration? {
        guard let certificateFile, let keyFile else { return nil }
        do {
            let chain = try NIOSSLCertificate.fromPEMFile(certificateFile)
            guard !chain.isEmpty else {
                throw VergeError(.badRequest, "--tls-cert \(certificateFile) holds no PEM certificate")
            }
            let key = try NIOSSLPrivateKey(file: keyFile, format: .pem)
            var configuration = TLSConfiguration.makeServerConfiguration(
                certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
            configuration.minimumTLSVersion = .tlsv12
            return configuration
        } catch let error as VergeError {
            throw error
        } catch {
            throw VergeError(
                .badRequest, "cannot load the TLS certificate \(certificateFile) or key \(keyFile): \(error)")
        }
    }

    /// The clients' TLS configuration: the CA file's roots, or `nil` for the system's.
    public func clientConfiguration() throws(VergeError) -> TLSConfiguration? {
        guard let caFile else { return nil }
        do {
            let roots = try NIOSSLCertificate.fromPEMFile(caFile)
            guard !roots.isEmpty else { throw VergeError(.badRequest, "--tls-ca \(caFile) holds no PEM certificate") }
            var configuration = TLSConfiguration.makeClientConfiguration()
            configuration.trustRoots = .certificates(roots)
            configuration.minimumTLSVersion = .tlsv12
            return configuration
        } catch let error as VergeError {
            throw error
        } catch {
            throw VergeError(.badRequest, "cannot load the TLS CA file \(caFile): \(error)")
        }
    }
}
