import Logging
import NIOCore
import NIOSSL
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

extension AdminTLS {
  /// How often, at most, a handshake looks whether the certificate or key file changed.
  public static let reloadCheckInterval: Duration = .seconds(2)

  /// A server configuration that presents the newest good pair from ``certificatePath`` and ``keyPath`` to
  /// each new connection: NIOSSL asks ``CertificateReloader`` for the pair at every handshake, which looks
  /// at the files' modification times (at most every ``reloadCheckInterval``) and reads them again when
  /// either changed. New files that cannot be loaded, or whose key does not belong to the certificate
  /// (a renewal halfway through replacing the two), are logged and the last good pair is kept; they are
  /// tried again when the files change again. Open connections keep the pair they started with.
  public func reloadingConfiguration(
    logger: Logger, checkInterval: Duration = Self.reloadCheckInterval
  ) -> TLSConfiguration {
    let reloader = CertificateReloader(
      certificatePath: certificatePath, keyPath: keyPath, initial: initial, checkInterval: checkInterval,
      logger: logger)
    var configuration = Self.serverConfiguration(chain: initial.chain, key: initial.key)
    configuration.sslContextCallback = { _, promise in promise.succeed(reloader.currentPair()) }
    return configuration
  }
}

/// What identifies one version of the certificate and key files: each file's inode, size and modification
/// time (to the nanosecond). A renewal that replaces a file by rename changes its inode even within one
/// clock tick; a file that cannot be read has no stamp.
struct FileStamps: Sendable, Hashable {
  /// One file's identity.
  struct Stamp: Sendable, Hashable {
    var inode: UInt64
    var size: Int64
    var seconds: Int
    var nanoseconds: Int
  }

  var certificate: Stamp?
  var key: Stamp?

  init(certificatePath: String, keyPath: String) {
    certificate = Self.stamp(certificatePath)
    key = Self.stamp(keyPath)
  }

  private static func stamp(_ path: String) -> Stamp? {
    var info = stat()
    guard stat(path, &info) == 0 else { return nil }
    return Stamp(
      inode: UInt64(info.st_ino), size: Int64(info.st_size), seconds: info.st_mtim.tv_sec,
      nanoseconds: info.st_mtim.tv_nsec)
  }
}

/// The admin server's current certificate and key, read again from their files when they change.
final class CertificateReloader: Sendable {
  private struct State {
    /// The pair every new connection gets.
    var current: NIOSSLContextConfigurationOverride
    /// The stamps of the files the current pair, or the last refused one, was read from.
    var seen: FileStamps
    /// When the files were last looked at.
    var lastCheck: ContinuousClock.Instant
  }

  let certificatePath: String
  let keyPath: String
  let checkInterval: Duration
  let logger: Logger
  private let state: Mutex<State>

  init(
    certificatePath: String, keyPath: String, initial: AdminTLS.LoadedPair, checkInterval: Duration,
    logger: Logger
  ) {
    self.certificatePath = certificatePath
    self.keyPath = keyPath
    self.checkInterval = checkInterval
    self.logger = logger
    state = Mutex(State(current: Self.makeOverride(initial), seen: initial.stamps, lastCheck: .now))
  }

  private static func makeOverride(_ pair: AdminTLS.LoadedPair) -> NIOSSLContextConfigurationOverride {
    var override = NIOSSLContextConfigurationOverride()
    override.certificateChain = pair.chain.map { .certificate($0) }
    override.privateKey = .privateKey(pair.key)
    return override
  }

  /// The pair for a new handshake: the current one, after looking at the files when the last look is more
  /// than ``checkInterval`` ago. Runs on the event loop; a look is one `stat` per file, and the files (two
  /// small PEM files) are read only when they changed.
  func currentPair() -> NIOSSLContextConfigurationOverride {
    state.withLock { state in
      let now = ContinuousClock.now
      guard now - state.lastCheck >= checkInterval else { return state.current }
      state.lastCheck = now
      let stamps = FileStamps(certificatePath: certificatePath, keyPath: keyPath)
      guard stamps != state.seen else { return state.current }
      state.seen = stamps
      do {
        let pair = try AdminTLS.load(certificatePath: certificatePath, keyPath: keyPath)
        state.seen = pair.stamps
        state.current = Self.makeOverride(pair)
        logger.info(
          "admin TLS: serving the new certificate to new connections",
          metadata: ["certificate": "\(certificatePath)", "key": "\(keyPath)"])
      } catch {
        logger.warning(
          "admin TLS: the changed certificate or key cannot be used; still serving the previous one",
          metadata: ["error": "\(error)"])
      }
      return state.current
    }
  }
}
