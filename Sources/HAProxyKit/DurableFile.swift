import Foundation

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Files that must survive a crash whole: the config HAProxy loads and every file that must agree with it.
///
/// ``replace(_:at:)`` is the one write path for them: a temporary file in the same directory is written
/// and synced, renamed over the target, and the directory is synced, so that after a crash the target
/// holds either the old text or the new one, never a part of either.
public enum DurableFile {
  /// Replaces the file at `path` with `text` atomically and durably; the file gets mode 0600.
  ///
  /// - Throws: ``HAProxyError/Code/fileSystem`` naming the step that failed; the existing file is then
  ///   untouched.
  public static func replace(_ text: String, at path: String) throws {
    let directory = (path as NSString).deletingLastPathComponent
    let temporary = (directory as NSString).appendingPathComponent(
      ".\((path as NSString).lastPathComponent).\(UUID().uuidString.prefix(8)).tmp")
    do {
      try create(text, at: temporary, sync: true)
      guard rename(temporary, path) == 0 else {
        throw HAProxyError(.fileSystem, "cannot rename \(temporary) to \(path): \(errnoDescription())")
      }
    } catch {
      unlink(temporary)
      throw error
    }
    let directoryFD = open(directory.isEmpty ? "." : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    guard directoryFD >= 0 else {
      throw HAProxyError(.fileSystem, "cannot open \(directory) to sync it: \(errnoDescription())")
    }
    defer { close(directoryFD) }
    guard fsync(directoryFD) == 0 else {
      throw HAProxyError(.fileSystem, "cannot sync directory \(directory): \(errnoDescription())")
    }
  }

  /// Writes a new file with mode 0600 (it must not exist); with `sync`, flushes it to disk before closing.
  static func create(_ text: String, at path: String, sync: Bool) throws {
    let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
    guard fd >= 0 else { throw HAProxyError(.fileSystem, "cannot create \(path): \(errnoDescription())") }
    defer { close(fd) }
    let bytes = Array(text.utf8)
    var written = 0
    while written < bytes.count {
      let result = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + written, $0.count - written) }
      if result < 0 {
        if errno == EINTR { continue }
        throw HAProxyError(.fileSystem, "cannot write \(path): \(errnoDescription())")
      }
      written += result
    }
    if sync && fsync(fd) != 0 {
      throw HAProxyError(.fileSystem, "cannot sync \(path): \(errnoDescription())")
    }
  }
}
