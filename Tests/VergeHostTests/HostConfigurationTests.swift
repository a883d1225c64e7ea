import Foundation
import Testing
import VergeCore

@testable import VergeHost

@Suite struct HostConfigurationTests {
    static func configuration() -> HostConfiguration {
        HostConfiguration(name: "fra", location: GeoPoint(50.11, 8.68), dataDirectory: "/tmp/x", runtimeDirectory: "/r")
    }

    @Test func capacityDefaultsComeFromTheMachine() throws {
        let configuration = Self.configuration()
        #expect(configuration.maxWorkers == 16 * ProcessInfo.processInfo.activeProcessorCount)
        let physicalMB = Int(ProcessInfo.processInfo.physicalMemory / 1_048_576)
        #expect(configuration.maxMemoryMB == max(256, physicalMB * 3 / 4))
        #expect(configuration.maxMemoryMB <= max(256, physicalMB))
        #expect(configuration.maxQueuedCalls == 64)
        try configuration.validateCapacity()
    }

    @Test(arguments: [
        ("max_workers", 0, "max_workers must be between 1 and 100000, got 0"),
        ("max_workers", 100_001, "max_workers must be between 1 and 100000, got 100001"),
        ("max_memory_mb", 15, "max_memory_mb must be between 16 and 16777216, got 15"),
        ("max_queued_calls", -1, "max_queued_calls must be between 0 and 100000, got -1"),
    ])
    func capacityOutOfRangeIsRefusedNamingTheSetting(key: String, value: Int, message: String) {
        var configuration = Self.configuration()
        switch key {
        case "max_workers": configuration.maxWorkers = value
        case "max_memory_mb": configuration.maxMemoryMB = value
        default: configuration.maxQueuedCalls = value
        }
        #expect {
            try configuration.validateCapacity()
        } throws: { error in
            (error as? VergeError)?.message == message
        }
    }

    @Test func aQueueBoundOfZeroIsAllowed() throws {
        var configuration = Self.configuration()
        configuration.maxQueuedCalls = 0
        try configuration.validateCapacity()
    }
}
