import SwitchyardReconcile
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

/// SHA-512 crypt(3) hashes (`$6$salt$hash`) of passwords for HAProxy's `userlist`, made with the same
/// libcrypt that HAProxy checks them with, so that only the hash is ever written to a file. Linux only:
/// Darwin's crypt(3) knows no SHA-512.
enum PasswordHash {
  /// crypt(3) returns a pointer to one static buffer.
  private static let lock = Mutex(())

  /// The characters of a crypt salt.
  static let saltAlphabet = Array("./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz".utf8)

  /// A new hash of `password` with a random 16-character salt.
  static func sha512(_ password: String) throws -> String {
    var generator = SystemRandomNumberGenerator()
    let salt = String(decoding: (0..<16).map { _ in saltAlphabet.randomElement(using: &generator)! }, as: UTF8.self)
    return try sha512(password, salt: salt)
  }

  /// The hash of `password` with `salt` (up to 16 characters of ``saltAlphabet``).
  static func sha512(_ password: String, salt: String) throws -> String {
    guard let hash = crypt(password, setting: "$6$\(salt)$"), NodeSettings.StatsAuth.hashProblem(hash) == nil else {
      throw PasswordHashError("this system's crypt(3) cannot make SHA-512 hashes")
    }
    return hash
  }

  /// Whether `hash` is a SHA-crypt hash of `password`: then a controller that restarts can keep the hash of
  /// its last configuration, and HAProxy needs no reload for a new salt.
  static func matches(_ password: String, hash: String) -> Bool {
    guard NodeSettings.StatsAuth.hashProblem(hash) == nil else { return false }
    return crypt(password, setting: hash) == hash
  }

  private static func crypt(_ password: String, setting: String) -> String? {
    guard !password.utf8.contains(0) else { return nil }
    return lock.withLock { _ -> String? in
      #if canImport(Glibc)
        guard let result = Glibc.crypt(password, setting) else { return nil }
        return String(cString: result)
      #else
        return nil
      #endif
    }
  }
}

/// A password that could not be hashed.
struct PasswordHashError: Error, CustomStringConvertible {
  var description: String
  init(_ description: String) { self.description = description }
}
