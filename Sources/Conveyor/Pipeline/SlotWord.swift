/// What a channel word says: item `item` sits in slot `slot` of its owner's pool.
///
/// The item number fills the high 40 bits and the slot the low 24 (a pool has at most
/// 65,536 slots; 2^40 items is 35 years at 1,000 items a second), so every word decodes to
/// some item and slot. Words come from shared memory that another process writes: a
/// receiver checks the decoded pair against what it expects (``RunTransport/verify``)
/// before it touches a slot.
struct SlotWord: Equatable, CustomStringConvertible {
    var item: Int
    var slot: Int

    /// Bits of the slot number.
    static var slotBits: Int { 24 }
    /// The slot number of a source's job word, which has no input slot
    /// (`CONVEYOR_STAGE_NO_SLOT`); never a slot of a pool (at most 65,536 slots).
    static var noSlot: Int { (1 << slotBits) - 1 }
    /// The largest item number a word carries.
    static var maxItem: Int { (1 << (64 - slotBits)) - 1 }

    init(item: Int, slot: Int) {
        precondition(item >= 0 && item <= Self.maxItem && slot >= 0 && slot < 1 << Self.slotBits,
                     "item \(item) or slot \(slot) does not fit a channel word")
        self.item = item
        self.slot = slot
    }

    /// Decodes a received word; any 64-bit value is some (item, slot) pair.
    init(_ word: UInt64) {
        item = Int(word >> UInt64(Self.slotBits))
        slot = Int(word & (1 << UInt64(Self.slotBits) - 1))
    }

    /// The word to send.
    var word: UInt64 { UInt64(item) << UInt64(Self.slotBits) | UInt64(slot) }

    /// "item 7 in slot 2".
    var description: String { "item \(item) in slot \(slot)" }
}
