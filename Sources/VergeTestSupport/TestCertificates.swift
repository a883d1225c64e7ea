import Crypto
import Foundation
import SwiftASN1
import X509

/// A certificate authority of a test's own, made with swift-certificates: it issues server certificates for
/// 127.0.0.1 and localhost, and writes PEM files a component can be started with.
public struct TestCertificateAuthority {
    private let key: P256.Signing.PrivateKey
    private let certificate: Certificate
    public let name: String

    public init(name: String) throws {
        self.name = name
        key = P256.Signing.PrivateKey()
        let subject = try DistinguishedName {
            OrganizationName("Verge tests")
            CommonName(name)
        }
        let now = Date()
        certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(key.publicKey),
            notValidBefore: now - 3600, notValidAfter: now + 86_400, issuer: subject, subject: subject,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
            },
            issuerPrivateKey: .init(key))
    }

    /// The CA's certificate, PEM.
    public func certificatePEM() throws -> String { try certificate.serializeAsPEM().pemString }

    /// A server certificate for 127.0.0.1 and localhost: (certificate PEM, private key PEM).
    public func issueServerCertificate() throws -> (certificate: String, key: String) {
        let serverKey = P256.Signing.PrivateKey()
        let now = Date()
        let server = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(serverKey.publicKey),
            notValidBefore: now - 3600, notValidAfter: now + 86_400, issuer: certificate.subject,
            subject: try DistinguishedName { CommonName("localhost") },
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([.serverAuth])
                SubjectAlternativeNames([
                    .ipAddress(ASN1OctetString(contentBytes: [127, 0, 0, 1])), .dnsName("localhost"),
                ])
            },
            issuerPrivateKey: .init(key))
        return (try server.serializeAsPEM().pemString, serverKey.pemRepresentation)
    }

    /// Writes `ca.pem`, `server.pem` and `server-key.pem` under `directory`; returns their paths.
    public func writeFiles(to directory: String) throws -> (ca: String, certificate: String, key: String) {
        let (certificatePEM, keyPEM) = try issueServerCertificate()
        let paths = (
            directory + "/\(name)-ca.pem", directory + "/\(name)-server.pem", directory + "/\(name)-server-key.pem"
        )
        try Data(try self.certificatePEM().utf8).write(to: URL(fileURLWithPath: paths.0))
        try Data(certificatePEM.utf8).write(to: URL(fileURLWithPath: paths.1))
        FileManager.default.createFile(
            atPath: paths.2, contents: Data(keyPEM.utf8), attributes: [.posixPermissions: 0o600])
        return paths
    }
}
