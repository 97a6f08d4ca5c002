/// Who owns the slot an item sits in at every node, and who hands each slot back.
///
/// The source and closure stages write new items, each into a slot of its own
/// pool (``NodeSlots``); kernel stages transform the item in the slot they received and hand that
/// same slot on; the next closure stage or the sink reads it and returns it to its owner.
/// So an item's data is written once per producing node and read in place everywhere.
struct SlotPlan: Sendable {
    /// For each node, the node whose pool holds its output.
    let owner: [Int]
    /// For each node that owns a pool, the node that reads its slots last and returns them.
    let reader: [Int?]

    /// - Parameter producesSlots: for each node, whether it writes new items (source,
    ///   closure stage); the last node is the sink.
    init(producesSlots: [Bool]) {
        var owner: [Int] = []
        for (n, produces) in producesSlots.enumerated() { owner.append(produces || n == 0 ? n : owner[n - 1]) }
        var reader = [Int?](repeating: nil, count: producesSlots.count)
        for n in 1..<max(1, producesSlots.count) where producesSlots[n] || n == producesSlots.count - 1 {
            reader[owner[n - 1]] = n
        }
        self.owner = owner
        self.reader = reader
    }
}
