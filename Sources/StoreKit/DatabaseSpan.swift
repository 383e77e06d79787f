import Tracing

/// A CLIENT span for one statement, with the database semantic conventions' attributes and never a row value.
public func databaseSpan<T>(system: String, namespace: String, host: String, port: Int, _ operation: String, _ collection: String,
                            batchSize: Int? = nil, _ body: () async throws -> T) async throws -> T {
    try await withSpan("\(operation) \(collection)", ofKind: .client) { span in
        span.attributes["db.system.name"] = system
        span.attributes["db.namespace"] = namespace
        span.attributes["db.collection.name"] = collection
        span.attributes["db.operation.name"] = operation
        span.attributes["server.address"] = host
        span.attributes["server.port"] = Int64(port)
        if let batchSize { span.attributes["db.operation.batch.size"] = Int64(batchSize) }
        do {
            return try await body()
        } catch let error as StoreFailure {
            if let code = error.responseStatusCode {
                span.attributes["db.response.status_code"] = code
                span.attributes["error.type"] = code
            }
            throw error
        }
    }
}
