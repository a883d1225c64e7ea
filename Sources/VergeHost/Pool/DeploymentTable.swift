import Synchronization
import VergeCore

/// The function versions this host serves, each with its pool. Replacing a version retires the old pool: its
/// idle workers stop at once and busy ones finish their call first.
final class DeploymentTable: Sendable {
    private let pools = Mutex<[FunctionKey: FunctionPool]>([:])

    func pool(for key: FunctionKey) -> FunctionPool? {
        pools.withLock { $0[key] }
    }

    var all: [FunctionPool] {
        pools.withLock { Array($0.values) }.sorted { $0.deployment.key.description < $1.deployment.key.description }
    }

    var deployments: [Deployment] { all.map(\.deployment) }

    /// Installs `pool`, returning the pool it replaces, if any.
    func install(_ pool: FunctionPool) -> FunctionPool? {
        pools.withLock { $0.updateValue(pool, forKey: pool.deployment.key) }
    }

    func remove(_ key: FunctionKey) -> FunctionPool? {
        pools.withLock { $0.removeValue(forKey: key) }
    }

    func removeAll() -> [FunctionPool] {
        pools.withLock { pools in
            defer { pools.removeAll() }
            return Array(pools.values)
        }
    }
}
