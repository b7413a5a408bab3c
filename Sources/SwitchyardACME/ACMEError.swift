/// An error of the ACME client or coordinator.
///
/// Its description is safe to log and to show in `/state`: it holds URLs, statuses and the CA's words, never
/// key material.
public struct ACMEError: Error, Hashable, CustomStringConvertible {
  /// What went wrong, broadly.
  public struct Code: Hashable, Sendable, CustomStringConvertible {
    private enum Kind: Hashable, Sendable {
      case problem, badResponse, timeout, transport, invalidInput, notLeader
    }
    private let kind: Kind
    /// The CA answered with a problem document; see ``ACMEError/problem``.
    public static let problem = Code(kind: .problem)
    /// The CA answered something this client does not understand.
    public static let badResponse = Code(kind: .badResponse)
    /// An order, authorization or request took longer than allowed.
    public static let timeout = Code(kind: .timeout)
    /// The CA could not be reached.
    public static let transport = Code(kind: .transport)
    /// Something read from etcd or given by the caller is not acceptable.
    public static let invalidInput = Code(kind: .invalidInput)
    /// This node no longer holds the ACME lease.
    public static let notLeader = Code(kind: .notLeader)

    public var description: String { "\(kind)" }
  }

  /// What went wrong, broadly.
  public var code: Code
  /// What went wrong, in words.
  public var message: String
  /// The CA's problem document, for ``Code/problem``.
  public var problem: ACMEProblem?

  /// Creates an error.
  public init(_ code: Code, _ message: String, problem: ACMEProblem? = nil) {
    self.code = code
    self.message = message
    self.problem = problem
  }

  public var description: String {
    problem.map { "\(message): \($0)" } ?? message
  }
}
