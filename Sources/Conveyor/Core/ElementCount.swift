/// The one shape and overflow rule of the package: the byte size of a rows × cols array of
/// elements `stride` bytes apart, or nil when a dimension is negative or the size does not
/// fit in `Int`.
///
/// `Int.max` is also the C core's limit (`PTRDIFF_MAX`, `CONVEYOR_E_OVERFLOW`), so a size
/// this accepts is one every kernel accepts. Matrices, their storage, ring configurations,
/// the producer's loans and the pipeline's slot sizes all ask here. Cost: two multiplies.
func elementByteCount(rows: Int, cols: Int, stride: Int) -> Int? {
    guard rows >= 0, cols >= 0, stride >= 0 else { return nil }
    let (count, countOverflow) = rows.multipliedReportingOverflow(by: cols)
    let (bytes, bytesOverflow) = count.multipliedReportingOverflow(by: stride)
    return countOverflow || bytesOverflow ? nil : bytes
}
