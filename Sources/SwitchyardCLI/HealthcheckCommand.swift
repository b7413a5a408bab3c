import ArgumentParser
import Foundation
import SwitchyardHTTP

/// `switchyard healthcheck URL`: one HTTP GET for container health checks, so that the image needs no
/// curl or shell.
struct HealthcheckCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "healthcheck",
    abstract:
      "GET an http:// or https:// URL once; exit 0 on a 2xx answer and 1 otherwise (for container health checks).",
    discussion: """
      Examples: a controller's readiness (http://127.0.0.1:9101/readyz), a backend's health \\
      (http://127.0.0.1:8080/healthz) or an etcd member's (http://127.0.0.1:2379/health). An https:// URL \\
      (a secure cluster's admin endpoints) needs --cacert, the CA its certificate must chain to. \\
      Prints nothing when healthy; otherwise one line on standard error saying why.
      """
  )

  @Argument(help: "The URL to GET: http://host:port/path or https://host:port/path.")
  var url: String

  @Option(help: "PEM CA certificate that an https:// URL's server certificate must chain to.", completion: .file())
  var cacert: String?

  @Option(help: "Seconds to wait for the whole answer.")
  var timeout: Double = 2

  func validate() throws {
    if url.hasPrefix("https://") {
      guard cacert != nil else { throw ValidationError("an https:// URL needs --cacert (the CA to verify it with)") }
    } else if !url.hasPrefix("http://") {
      throw ValidationError("\"\(url)\" is not an http:// or https:// URL")
    }
    guard timeout > 0, timeout <= 300 else { throw ValidationError("--timeout must be more than 0 and at most 300") }
  }

  func run() async throws {
    do {
      let (status, body) = try await HTTPCheck.get(
        url, timeout: .milliseconds(Int64(timeout * 1000)), caCertificate: cacert)
      guard (200..<300).contains(status) else {
        let excerpt = body.prefix(200).split(whereSeparator: \.isNewline).joined(separator: " ")
        printError("unhealthy: \(url) answered \(status)\(excerpt.isEmpty ? "" : ": \(excerpt)")")
        throw ExitCode(1)
      }
    } catch let failure as HTTPCheck.Failure {
      printError("unhealthy: \(url): \(failure)")
      throw ExitCode(1)
    } catch let exit as ExitCode {
      throw exit
    } catch {
      printError("unhealthy: \(url): \(error)")
      throw ExitCode(1)
    }
  }

  private func printError(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
  }
}
