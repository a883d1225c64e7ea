import Crypto

/// Function bundles as zip archives: packing a directory deterministically, validating an archive that arrived
/// from the network, unpacking it safely, and naming it by content.
///
/// Every archive given to ``inspect(_:limits:)`` or ``extract(_:to:limits:)`` is treated as hostile: its structure
/// is bounds-checked before it is parsed, every path is checked before anything is written, and sizes are
/// enforced on the bytes actually produced, not only on the sizes the archive declares.
public enum BundleArchive {
    /// Lower-case hex SHA-256 of the bytes: the identity of a bundle version.
    public static func sha256Hex(_ bytes: some Collection<UInt8>) -> String {
        var hasher = SHA256()
        let hashedContiguously: Void? = bytes.withContiguousStorageIfAvailable { buffer in
            hasher.update(bufferPointer: UnsafeRawBufferPointer(buffer))
        }
        if hashedContiguously == nil {
            hasher.update(data: Array(bytes))
        }
        let hexDigits = Array("0123456789abcdef".utf8)
        var hex: [UInt8] = []
        hex.reserveCapacity(64)
        for byte in hasher.finalize() {
            hex.append(hexDigits[Int(byte >> 4)])
            hex.append(hexDigits[Int(byte & 0x0F)])
        }
        return String(decoding: hex, as: UTF8.self)
    }

    /// Directory and file names never packed into a bundle.
    static let skippedNames: Set<String> = [".git", ".build", "__pycache__", ".DS_Store"]

    /// The modification date of every packed entry: 1980-01-01 00:00:00 UTC, the earliest a zip can hold.
    static let packedModificationTime: Double = 315_532_800

    /// Size of the chunks entry data are read and written in.
    static let chunkSize = 64 << 10
}
