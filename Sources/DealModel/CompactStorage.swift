#if canImport(Glibc)
import Glibc
#endif

/// An array stored as fixed-size chunks of 4,096 elements.
///
/// Why it exists: the record store holds a million records or more. One contiguous Swift
/// array grows by doubling (up to half of it unused, and a full copy at each growth), and
/// a checkpoint's copy of the store (a value, copied on write) would copy all of it at
/// the first change after the snapshot. In chunks, growth adds one chunk, and a change
/// after a snapshot copies only the chunk it touches.
struct ChunkedArray<Element>: Sendable where Element: Sendable {
    static var chunkShift: Int { 12 }
    static var chunkSize: Int { 1 << chunkShift }
    static var chunkMask: Int { chunkSize - 1 }

    private var chunks: [[Element]] = []
    private(set) var count = 0

    init() {}

    subscript(index: Int) -> Element {
        get { chunks[index >> Self.chunkShift][index & Self.chunkMask] }
        set { chunks[index >> Self.chunkShift][index & Self.chunkMask] = newValue }
    }

    mutating func append(_ element: Element) {
        if count & Self.chunkMask == 0 {
            var chunk: [Element] = []
            chunk.reserveCapacity(Self.chunkSize)
            chunks.append(chunk)
        }
        chunks[count >> Self.chunkShift].append(element)
        count += 1
    }

    /// Bytes the elements' storage takes (whole chunks), for figures.
    var allocatedBytes: Int { chunks.count * Self.chunkSize * MemoryLayout<Element>.stride }
}

/// A hash index from a record key, `(source, id)`, to the record's dense index, with the
/// ids' bytes in one arena.
///
/// Why it exists: a `Dictionary` keyed by two `String`s costs each record two string
/// headers (32 bytes, plus a heap object for ids over 15 bytes), a SipHash of both per
/// lookup, and the dictionary's own slots sized for the value. Here a record's key is 12
/// bytes (the source as a `StringTable` id, where its id's bytes start, their count), the
/// id's bytes sit in 64 KiB arena chunks, and the index is open addressing with linear
/// probing over 8-byte slots (32 bits of hash to compare before the bytes, the record
/// index + 1). The hash is seeded per index, so ids chosen to collide cannot be planned.
/// Records are never removed (a deletion is a tombstone), so indexes stay dense.
struct RecordIndex: Sendable {
    struct Key: Sendable {
        var source: UInt32
        var offset: UInt32
        var length: UInt8
    }

    static let arenaChunk = 1 << 16

    private(set) var keys = ChunkedArray<Key>()
    private var arena: [[UInt8]] = []
    private var slots: [UInt64] = [UInt64](repeating: 0, count: 16)
    private let seed = UInt64.random(in: 1...UInt64.max)

    init() {}

    var count: Int { keys.count }

    @inline(__always)
    private func hash(source: UInt32, _ id: UnsafeRawBufferPointer) -> UInt64 {
        StableHash.hash64(id, seed: seed ^ (UInt64(source) &* 0x9E37_79B9_7F4A_7C15))
    }

    /// The bytes of record `index`'s id.
    func id(of index: Int) -> ArraySlice<UInt8> {
        let key = keys[index]
        let chunk = Int(key.offset) >> 16
        let start = Int(key.offset) & (RecordIndex.arenaChunk - 1)
        return arena[chunk][start..<start + Int(key.length)]
    }

    func source(of index: Int) -> UInt32 { keys[index].source }

    private func idEquals(_ index: Int, _ id: UnsafeRawBufferPointer) -> Bool {
        let key = keys[index]
        guard Int(key.length) == id.count else { return false }
        let chunk = Int(key.offset) >> 16
        let start = Int(key.offset) & (RecordIndex.arenaChunk - 1)
        return arena[chunk].withUnsafeBytes { stored in
            memcmp(stored.baseAddress! + start, id.baseAddress!, id.count) == 0
        }
    }

    /// The index of the record `(source, id)`, or nil.
    func find(source: UInt32, id: String) -> Int? {
        var id = id
        return id.withUTF8 { find(source: source, UnsafeRawBufferPointer($0)) }
    }

    func find(source: UInt32, _ id: UnsafeRawBufferPointer) -> Int? {
        let h = hash(source: source, id)
        let tag = h >> 32
        let mask = slots.count - 1
        var i = Int(truncatingIfNeeded: h) & mask
        while true {
            let s = slots[i]
            if s == 0 { return nil }
            if s >> 32 == tag {
                let index = Int(s & 0xFFFF_FFFF) - 1
                if keys[index].source == source && idEquals(index, id) { return index }
            }
            i = (i + 1) & mask
        }
    }

    /// Adds the key `(source, id)`, which must not be present, as the next index.
    /// Ids are at most `EventDecoder.maximumIdentifierBytes` long.
    mutating func insert(source: UInt32, id: String) -> Int {
        var id = id
        return id.withUTF8 { insert(source: source, UnsafeRawBufferPointer($0)) }
    }

    mutating func insert(source: UInt32, _ id: UnsafeRawBufferPointer) -> Int {
        precondition(id.count <= Int(UInt8.max), "record ids are at most 255 bytes")
        if (keys.count + 1) * 4 > slots.count * 3 { grow() }
        if arena.isEmpty || arena[arena.count - 1].count + id.count > RecordIndex.arenaChunk {
            var chunk: [UInt8] = []
            chunk.reserveCapacity(RecordIndex.arenaChunk)
            arena.append(chunk)
        }
        let last = arena.count - 1
        let offset = UInt32(last << 16 | arena[last].count)
        arena[last].append(contentsOf: id)
        let index = keys.count
        keys.append(Key(source: source, offset: offset, length: UInt8(id.count)))
        place(hash: hash(source: source, id), index: index)
        return index
    }

    private mutating func place(hash h: UInt64, index: Int) {
        let mask = slots.count - 1
        var i = Int(truncatingIfNeeded: h) & mask
        while slots[i] != 0 { i = (i + 1) & mask }
        slots[i] = (h >> 32) << 32 | UInt64(index + 1)
    }

    private mutating func grow() {
        slots = [UInt64](repeating: 0, count: slots.count * 2)
        for index in 0..<keys.count {
            let bytes = id(of: index)
            let h = bytes.withUnsafeBytes { hash(source: keys[index].source, $0) }
            place(hash: h, index: index)
        }
    }

    /// Bytes the index takes (slots, keys, arena chunks), for figures.
    var allocatedBytes: Int { slots.count * 8 + keys.allocatedBytes + arena.count * RecordIndex.arenaChunk }
}
