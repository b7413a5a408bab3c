import Foundation

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Where a node writes its access log.
public enum AccessLogDestination: Sendable, Hashable, CustomStringConvertible {
  /// The controller's standard output (its own log goes to standard error).
  case standardOutput
  /// A file, appended to; opened again when it is moved away or removed (logrotate) and on SIGHUP.
  case file(String)

  /// `stdout`, or the file's path.
  public var description: String {
    switch self {
    case .standardOutput: "stdout"
    case .file(let path): path
    }
  }
}

/// The access log's open file: appends whole batches of lines, and opens the path again when the file it
/// has open is no longer the one at the path. Used by one thread at a time.
struct AccessLogOutput {
  let destination: AccessLogDestination
  private(set) var descriptor: Int32
  /// Device and inode of the open file, to notice that the path now names another file (or none).
  private var identity: (device: UInt64, inode: UInt64)?

  /// Opens `destination`: a file is created with mode 0600 when missing and appended to.
  init(_ destination: AccessLogDestination) throws(AccessLogError) {
    self.destination = destination
    switch destination {
    case .standardOutput:
      descriptor = STDOUT_FILENO
      identity = nil
    case .file(let path):
      descriptor = try Self.openFile(path)
      identity = Self.identity(of: descriptor)
    }
  }

  private static func openFile(_ path: String) throws(AccessLogError) -> Int32 {
    let descriptor = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
    guard descriptor >= 0 else { throw AccessLogError("cannot open \(path): \(String(cString: strerror(errno)))") }
    return descriptor
  }

  private static func identity(of descriptor: Int32) -> (device: UInt64, inode: UInt64)? {
    var info = stat()
    guard fstat(descriptor, &info) == 0 else { return nil }
    return (UInt64(info.st_dev), UInt64(info.st_ino))
  }

  /// Opens the file again when `force` is set (SIGHUP) or when its path names another file or none (moved
  /// away by logrotate, removed). Returns what happened, for the log, or nil when nothing did.
  mutating func reopenIfMoved(force: Bool) -> String? {
    guard case .file(let path) = destination else { return nil }
    var info = stat()
    let moved: Bool
    if stat(path, &info) != 0 {
      moved = true
    } else if let identity {
      moved = identity.device != UInt64(info.st_dev) || identity.inode != UInt64(info.st_ino)
    } else {
      moved = true
    }
    guard force || moved else { return nil }
    do {
      let reopened = try Self.openFile(path)
      close(descriptor)
      descriptor = reopened
      identity = Self.identity(of: reopened)
      return force ? "reopened on SIGHUP" : "reopened: the file was moved away or removed"
    } catch {
      return "could not reopen, still writing to the file it had open: \(error)"
    }
  }

  /// Writes `bytes` whole. A full pipe (stdout read slowly) is waited for; any other error gives up on the
  /// rest of the batch and is returned.
  func append(_ bytes: [UInt8]) -> String? {
    var offset = 0
    while offset < bytes.count {
      let written = bytes.withUnsafeBytes { buffer in
        write(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
      }
      if written >= 0 {
        offset += written
        continue
      }
      switch errno {
      case EINTR: continue
      case EAGAIN:
        var ready = pollfd(fd: descriptor, events: Int16(POLLOUT), revents: 0)
        _ = poll(&ready, 1, 1000)
      default: return String(cString: strerror(errno))
      }
    }
    return nil
  }

  /// Closes a file; standard output stays open.
  func closeFile() {
    if case .file = destination { close(descriptor) }
  }
}

/// An access log that cannot be set up.
public struct AccessLogError: Error, CustomStringConvertible {
  /// What went wrong.
  public var description: String

  init(_ description: String) {
    self.description = description
  }
}
