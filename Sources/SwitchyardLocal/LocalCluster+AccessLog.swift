extension LocalCluster {
  /// The access logs of the load-balancer node `name`, or of every one when `name` is nil, as
  /// `(node, path)`. A node started before the local cluster wrote access logs has none.
  public func accessLogFiles(_ name: String?) throws -> [(name: String, path: String)] {
    let state = try requireState()
    let nodes = state.parts(.lb)
    let chosen: [PartRecord]
    if let name {
      guard let node = nodes.first(where: { $0.spec.name == name }) else {
        throw LocalClusterError(
          "\(name) is not a load-balancer node; the nodes: \(nodes.map(\.spec.name).joined(separator: ", "))")
      }
      chosen = [node]
    } else {
      chosen = nodes
    }
    let files = chosen.compactMap { part in part.spec.accessLogPath.map { (part.spec.name, $0) } }
    guard !files.isEmpty else {
      throw LocalClusterError("no access log: the cluster was started without one; start it again with `switchyard up`")
    }
    return files
  }
}
