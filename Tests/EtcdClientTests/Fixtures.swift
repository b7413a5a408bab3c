import GRPCCore

/// Errors shaped like the ones grpc-swift-nio-transport raises, for retry classification tests.
enum RPCErrorFixtures {
  static let transientFailure = RPCError(
    code: .unavailable,
    message: "Channel is in a transient failure state and 'wait for ready' isn't enabled."
  )
  static let streamClosed = RPCError(code: .unavailable, message: "Stream unexpectedly closed.")
  static let timeout = RPCError(code: .deadlineExceeded, message: "Timed out")
}
