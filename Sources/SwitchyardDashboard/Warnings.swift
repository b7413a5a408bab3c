import SwitchyardModel

/// The warnings of one view, gathered while it is merged and listed most urgent first.
struct Warnings {
  private var list: [ClusterView.Warning] = []

  /// The order warnings are listed in: what stops a node first, then what it got wrong, then what was read.
  static let rank = [
    "etcd", "not-answering", "not-ready", "pass-failed", "lagging", "key-missing", "conflict",
    "invalid-node-record", "invalid-entry",
  ]

  var sorted: [ClusterView.Warning] {
    list.enumerated().sorted { left, right in
      let leftRank = Self.rank.firstIndex(of: left.element.kind) ?? Self.rank.count
      let rightRank = Self.rank.firstIndex(of: right.element.kind) ?? Self.rank.count
      return (leftRank, left.offset) < (rightRank, right.offset)
    }.map(\.element)
  }

  private mutating func add(_ kind: String, node: String? = nil, _ text: String) {
    list.append(ClusterView.Warning(kind: kind, node: node, text: ClusterMemory.shortened(text)))
  }

  mutating func add(etcd: ClusterView.Etcd, invalidRecords: [RegistrationError]) {
    if let error = etcd.error {
      add("etcd", "etcd did not answer the listing of \(NodeRecord.root): \(error); the nodes are as last listed")
    }
    for record in invalidRecords {
      add("invalid-node-record", "invalid node record \(record.description)")
    }
  }

  mutating func add(node: ClusterView.Node, feed: NodeFeed?, selfID: String, now: Int64) {
    let id = node.id
    switch node.status {
    case "not-answering":
      add(
        "not-answering", node: id,
        "\(id) does not answer at \(node.adminURL ?? "an unknown address"): \(node.problem ?? "no answer")")
    case "not-ready":
      add("not-ready", node: id, "\(id) is not ready: \(node.notReadyReasons.joined(separator: "; "))")
    default:
      break
    }
    guard let feed else { return }
    if let error = feed.state.lastError { add("pass-failed", node: id, "\(id)'s last reconcile pass failed: \(error)") }
    if let since = node.pendingSince, now - since > ClusterMemory.lagThreshold {
      add(
        "lagging", node: id,
        "\(id) has not applied \(node.pending) change\(node.pending == 1 ? "" : "s") seen \(Self.seconds(now - since)) s "
          + "ago or more (it applied revision \(node.appliedRevision ?? 0))")
    }
    if !node.registered {
      add(
        "key-missing", node: id,
        "\(id) answers\(node.adminURL.map { " at \($0)" } ?? ""), but etcd has no key \(NodeRecord.root)\(id)")
    }
    if feed.state.node != id {
      add(
        "conflict", node: id,
        "\(NodeRecord.root)\(id) names \(node.adminURL ?? "an admin URL") where node \(RegistrationError.escape(feed.state.node)) answers"
      )
    }
  }

  mutating func addConflicts(records: [NodeRecord]) {
    let byURL = Dictionary(grouping: records, by: \.adminURL)
    for url in byURL.keys.sorted() {
      guard let records = byURL[url], records.count > 1 else { continue }
      add(
        "conflict",
        "nodes \(records.map(\.node.rawValue).sorted().joined(separator: ", ")) all name the admin URL \(url)")
    }
  }

  /// Problems the nodes report themselves: route conflicts and invalid entries, each once, with the
  /// nodes that report it.
  mutating func addReported(ids: [String], answered: [NodeFeed?]) {
    var routeProblems: [String: [String]] = [:]
    var routeOrder: [String] = []
    var invalid: [String: (text: String, nodes: [String])] = [:]
    var invalidOrder: [String] = []
    var invalidCount = 0
    for (index, feed) in answered.enumerated() {
      guard let state = feed?.state else { continue }
      for problem in state.routeProblems ?? [] {
        if routeProblems[problem] == nil { routeOrder.append(problem) }
        routeProblems[problem, default: []].append(ids[index])
      }
      for entry in state.invalidEntries {
        if invalid[entry.key] == nil {
          invalidOrder.append(entry.key)
          invalid[entry.key] = (entry.reason, [])
        }
        invalid[entry.key]?.nodes.append(ids[index])
      }
      invalidCount = max(invalidCount, state.invalidEntryCount ?? state.invalidEntries.count)
    }
    for problem in routeOrder {
      add("conflict", "route problem on \(routeProblems[problem]?.joined(separator: ", ") ?? ""): \(problem)")
    }
    for key in invalidOrder.prefix(ClusterMemory.invalidEntriesListed) {
      guard let entry = invalid[key] else { continue }
      add("invalid-entry", "skipped by \(entry.nodes.joined(separator: ", ")): \(entry.text)")
    }
    let listed = min(invalidOrder.count, ClusterMemory.invalidEntriesListed)
    if invalidCount > listed {
      add("invalid-entry", "\(invalidCount - listed) more invalid entries (each node's /state lists the first 100)")
    }
  }

  static func seconds(_ milliseconds: Int64) -> String {
    let tenths = milliseconds / 100
    return "\(tenths / 10).\(tenths % 10)"
  }
}
