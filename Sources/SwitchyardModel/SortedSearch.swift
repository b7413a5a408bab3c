extension RandomAccessCollection where Index == Int {
  /// In a collection sorted by `key`, the index of the first element whose key is not below `target`:
  /// where an element with that key is, or would go. A bisection: O(log n) keys looked at.
  public func insertionIndex<Key: Comparable>(of target: Key, by key: (Element) -> Key) -> Int {
    var low = startIndex
    var high = endIndex
    while low < high {
      let middle = low + (high - low) / 2
      if key(self[middle]) < target { low = middle + 1 } else { high = middle }
    }
    return low
  }
}
