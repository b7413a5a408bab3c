import SwitchyardModel
import Testing

@Suite struct SortedSearchTests {
  @Test("insertionIndex finds where a key is or would go, against a linear search")
  func againstLinearSearch() {
    let names = ["a", "b", "b", "d", "x"]
    for target in ["", "a", "b", "c", "d", "e", "x", "y"] {
      let linear = names.firstIndex { $0 >= target } ?? names.count
      #expect(names.insertionIndex(of: target, by: { $0 }) == linear, "\(target)")
    }
    #expect([String]().insertionIndex(of: "a", by: { $0 }) == 0)
    let numbers = Array(0..<1000).map { $0 * 2 }
    #expect(numbers.insertionIndex(of: 501, by: { $0 }) == 251)
    #expect(numbers.insertionIndex(of: 500, by: { $0 }) == 250)
  }
}
