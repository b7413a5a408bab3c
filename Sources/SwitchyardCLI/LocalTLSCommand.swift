import ArgumentParser
import Foundation
import SwitchyardLocal

/// `switchyard local-tls --dir DIR`: what `up --https` makes for HTTPS, in any directory, for a cluster that
/// `up` does not start (compose.yaml's one-shot `tls` runs it before `switchyard cert add local`).
struct LocalTLSCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "local-tls",
    abstract: "Make a local CA, a cluster key and a certificate for localhost, 127.0.0.1 and ::1 in DIR/pki.",
    discussion: """
      Keeps what exists: run again, it changes nothing. Writes DIR/pki/ca.pem (the CA clients trust), \
      DIR/pki/cluster.key (0600, for the LB nodes' --cluster-key and `switchyard cert add --cluster-key`), and \
      DIR/pki/edge.pem with its key edge-key.pem (0600), which `switchyard cert add NAME --cert … --key …` \
      stores in etcd.
      """,
    shouldDisplay: false
  )

  @Option(name: .customLong("dir"), help: "The directory; pki/ in it is created (0700) if missing.")
  var directory: String
  @Option(name: .customLong("days"), help: "Validity of the certificate (not the CA's), in days.")
  var days = 365

  func validate() throws {
    guard days >= 1 else { throw ValidationError("--days must be at least 1") }
  }

  func run() throws {
    var security = LocalSecurity(home: URL(fileURLWithPath: directory).standardizedFileURL.path)
    security.certificateDays = days
    do {
      try security.prepareHTTPS()
    } catch let error as LocalClusterError {
      FileHandle.standardError.write(Data("error: \(error)\n".utf8))
      throw ExitCode.failure
    }
    print("CA: \(security.caCertificate)")
    print("cluster key: \(security.clusterKeyFile)")
    print("certificate: \(security.edgePair.certificate) (key \(security.edgePair.key))")
  }
}
