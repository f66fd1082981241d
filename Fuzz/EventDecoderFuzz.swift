// libFuzzer entry point for the event decoder: any bytes as one event frame, through the
// one-pass fast path and the reference path, which must agree. Built by scripts/fuzz
// together with the DealModel sources into one module (no imports).

let fuzzModel = try! Model.parse(
    Array(
        #"""
        {"reporting_currency":"USD","fx":{"USD":1.0,"EUR":1.08,"JPY":0.0067},
         "pipelines":{"default":{"stages":["lead","qualified","proposal","negotiation"],"qualified_stage":"qualified"},
                      "Enterprise Sales":{"stages":["discovery","demo/trial","proposal:sent"],"qualified_stage":"demo/trial"}}}
        """#.utf8
    )
)
let fuzzDecoder = EventDecoder(model: fuzzModel)
nonisolated(unsafe) var fuzzStore = RecordStore(model: fuzzModel)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzEventDecoder(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    // The one-pass fast path may only ever accept, and only what the reference path
    // accepts as the very same event (digest included).
    let reference = fuzzDecoder.decodeThroughValue(json: bytes)
    if let direct = fuzzDecoder.decodeDirect(json: bytes) {
        guard case .success(let expected) = reference, expected == direct else {
            fatalError("fast path disagrees with the reference: \(direct) vs \(reference)")
        }
    }
    if case .success(let event) = reference {
        // Whatever validates must also resolve and survive a checkpoint round trip.
        _ = fuzzStore.apply(event)
        if fuzzStore.recordCount > 10_000 { fuzzStore = RecordStore(model: fuzzModel) }
    }
    return 0
}
