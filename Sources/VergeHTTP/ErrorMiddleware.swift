import Hummingbird
import Logging
import VergeCore

/// Turns every error a route throws into the one JSON error shape, so no client ever sees a framework's own format.
public struct VergeErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    public init() {}

    public func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as VergeError {
            return .error(error)
        } catch let error as HTTPError {
            let code: VergeError.Code =
                switch error.status.code {
                case 404: .notFound
                case 405: .methodNotAllowed
                case 413: .payloadTooLarge
                case 401: .unauthorized
                case 400..<500: .badRequest
                default: .internalError
                }
            return .error(VergeError(code, error.body ?? error.status.reasonPhrase))
        } catch {
            context.logger.error("unhandled error", metadata: ["error": "\(error)"])
            return .error(VergeError(.internalError, "internal error"))
        }
    }
}
