import Foundation
import Observability
import Testing

struct MemoryRollupTests {
    @Test func parsesTheKernelsFormat() {
        let text = """
            55c7c3190000-7ffe854b6000 ---p 00000000 00:00 0                          [rollup]
            Rss:                1616 kB
            Pss:                 201 kB
            Pss_Dirty:           112 kB
            Pss_Anon:            112 kB
            Pss_File:             89 kB
            Pss_Shmem:             0 kB
            Shared_Clean:       1464 kB
            """
        #expect(
            MemoryRollup(parsing: text)
                == MemoryRollup(rss: 1616 * 1024, pss: 201 * 1024, pssAnonymous: 112 * 1024, pssFile: 89 * 1024)
        )
        #expect(MemoryRollup(parsing: "Rss: 12 kB\n") == nil)
        #expect(MemoryRollup(parsing: "Rss: 12 kB\nPss: 7 kB\n") == MemoryRollup(rss: 12 * 1024, pss: 7 * 1024))
    }

    /// The test process itself: its PSS is positive and at most its RSS (it shares libc and
    /// the Swift runtime with other processes), and 64 MiB it writes to are counted in full
    /// (private pages belong to it alone).
    @Test func readsARealProcess() throws {
        let before = try #require(MemoryRollup.read(pid: getpid()))
        #expect(before.pss > 0)
        #expect(before.pss <= before.rss)
        let size = 64 << 20
        let block = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 4096)
        defer { block.deallocate() }
        for page in stride(from: 0, to: size, by: 4096) { block.storeBytes(of: 1, toByteOffset: page, as: UInt8.self) }
        let after = try #require(MemoryRollup.read(pid: getpid()))
        #expect(after.pss - before.pss >= size * 9 / 10, "PSS \(before.pss) → \(after.pss)")
        #expect(after.pss <= after.rss)
        if let anonymous = after.pssAnonymous { #expect(anonymous >= size * 9 / 10) }
        #expect(MemoryRollup.read(pid: Int32.max) == nil)
    }
}
