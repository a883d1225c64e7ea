import HummingbirdCore
import Logging
import NIOCore

/// A server child channel whose connection handler runs with its channel's event loop as the preferred task executor
/// (see ``EventLoopTaskExecutor``): the handler's code, and the actors and continuations it awaits, run on the
/// thread that reads and writes the connection.
struct EventLoopAffineChannel<Base: ServerChildChannel>: ServerChildChannel {
    typealias Value = Base.Value
    let base: Base

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        base.setup(channel: channel, logger: logger)
    }

    func handle(value: Value, logger: Logger) async {
        await withTaskExecutorPreference(EventLoopTaskExecutor(value.channel.eventLoop)) {
            await base.handle(value: value, logger: logger)
        }
    }
}
