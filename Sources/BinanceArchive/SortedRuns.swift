#if canImport(Glibc)
import Glibc
#endif

/// Puts a file's lines in key order without holding them: lines gather in memory up to `runBytes`, each full run is
/// sorted and written to disk, and the runs are merged (at most `fanIn` at a time; more runs are merged in passes
/// first). Equal keys keep the order they were added in. Each line carries a mark (the archive client marks the rows
/// its first pass already delivered). Memory: one run, plus a read buffer per merged run.
public final class SortedRuns {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    private let folder: String
    private let runBytes: Int
    private let fanIn: Int
    private var runs: [String] = []
    // The run being gathered: line bytes end to end, and (key, sequence, offset, length, mark) per line.
    private var bytes: [UInt8] = []
    private var index: [(key: Int64, sequence: Int, offset: Int, length: Int, marked: Bool)] = []
    private var sequence = 0
    private var serial = 0

    /// `folder` must exist; the run files made there are removed when merged and when this is released.
    public init(folder: String, runBytes: Int = 8 << 20, fanIn: Int = 64) {
        self.folder = folder
        self.runBytes = max(1 << 10, runBytes)
        self.fanIn = max(2, fanIn)
    }

    deinit { for run in runs { unlink(run) } }

    /// Run files written so far (tests).
    public var runCount: Int { runs.count }

    public func add(key: Int64, marked: Bool, line: UnsafeBufferPointer<UInt8>) throws(Failure) {
        guard line.count <= Int(UInt16.max) else { throw Failure(description: "a line of \(line.count) bytes") }
        index.append((key, sequence, bytes.count, line.count, marked))
        bytes.append(contentsOf: line)
        sequence += 1
        if bytes.count >= runBytes { try spill() }
    }

    /// Every line added, in key order (ties in the order added), read a batch at a time with the merger's `read`.
    /// Runs beyond `fanIn` are merged in passes first.
    public func merger() throws -> Merger {
        if runs.isEmpty {
            // It all fitted in memory: no disk.
            index.sort { ($0.key, $0.sequence) < ($1.key, $1.sequence) }
            return Merger(memory: bytes, index: index.map { ($0.key, $0.marked, $0.offset..<($0.offset + $0.length)) })
        }
        try spill()
        while runs.count > fanIn {
            // A pass: groups of `fanIn` runs become one run each, in order (so ties stay in the order added).
            var next: [String] = []
            for start in stride(from: 0, to: runs.count, by: fanIn) {
                let group = Array(runs[start..<min(start + fanIn, runs.count)])
                let path = newRunPath()
                next.append(path)
                do {
                    let writer = try RunWriter(path: path)
                    let merger = try Merger(runs: group)
                    while try merger.read(upTo: 4096, { (key, marked, line) throws(Failure) in try writer.write(key: key, marked: marked, line: line) }) {}
                    try writer.close()
                } catch {
                    for run in next { unlink(run) }
                    throw error
                }
                for run in group { unlink(run) }
            }
            runs = next
        }
        return try Merger(runs: runs)
    }

    /// A k-way merge of sorted runs with a binary heap on (key, run): the earlier run wins a tie.
    public final class Merger {
        private let readers: [RunReader]
        private var heap: [(key: Int64, run: Int)] = []
        private let memory: [UInt8]
        private let index: [(Int64, Bool, Range<Int>)]
        private var position = 0

        init(memory: [UInt8], index: [(Int64, Bool, Range<Int>)]) {
            readers = []
            self.memory = memory
            self.index = index
        }

        init(runs: [String]) throws(Failure) {
            var readers: [RunReader] = []
            for path in runs { readers.append(try RunReader(path: path)) }
            self.readers = readers
            memory = []
            index = []
            for (i, reader) in readers.enumerated() where try reader.advance() { push((reader.key, i)) }
        }

        /// Hands up to `count` lines to `body` in order; false once every line was handed over (none this time).
        public func read<E: Error>(upTo count: Int, _ body: (Int64, Bool, UnsafeBufferPointer<UInt8>) throws(E) -> Void) throws -> Bool {
            var handed = 0
            if readers.isEmpty {
                try memory.withUnsafeBufferPointer { all throws(E) in
                    while handed < count && position < index.count {
                        let (key, marked, range) = index[position]
                        try body(key, marked, UnsafeBufferPointer(rebasing: all[range]))
                        position += 1
                        handed += 1
                    }
                }
                return handed > 0
            }
            while handed < count && !heap.isEmpty {
                let (_, run) = popFirst()
                let reader = readers[run]
                try reader.withLine { line throws(E) in try body(reader.key, reader.marked, line) }
                if try reader.advance() { push((reader.key, run)) }
                handed += 1
            }
            return handed > 0
        }

        private func less(_ a: (key: Int64, run: Int), _ b: (key: Int64, run: Int)) -> Bool { (a.key, a.run) < (b.key, b.run) }

        private func push(_ item: (key: Int64, run: Int)) {
            heap.append(item)
            var i = heap.count - 1
            while i > 0, less(heap[i], heap[(i - 1) / 2]) {
                heap.swapAt(i, (i - 1) / 2)
                i = (i - 1) / 2
            }
        }

        private func popFirst() -> (key: Int64, run: Int) {
            let top = heap[0]
            heap[0] = heap[heap.count - 1]
            heap.removeLast()
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < heap.count, less(heap[l], heap[m]) { m = l }
                if r < heap.count, less(heap[r], heap[m]) { m = r }
                if m == i { break }
                heap.swapAt(i, m)
                i = m
            }
            return top
        }
    }

    private func newRunPath() -> String {
        serial += 1
        return folder + "/run-\(getpid())-\(UInt(bitPattern: ObjectIdentifier(self).hashValue))-\(serial)"
    }

    private func spill() throws(Failure) {
        guard !index.isEmpty else { return }
        index.sort { ($0.key, $0.sequence) < ($1.key, $1.sequence) }
        let path = newRunPath()
        runs.append(path)
        let writer = try RunWriter(path: path)
        try bytes.withUnsafeBufferPointer { (all: UnsafeBufferPointer<UInt8>) throws(Failure) in
            for entry in index {
                try writer.write(key: entry.key, marked: entry.marked, line: UnsafeBufferPointer(rebasing: all[entry.offset..<(entry.offset + entry.length)]))
            }
        }
        try writer.close()
        bytes.removeAll(keepingCapacity: true)
        index.removeAll(keepingCapacity: true)
    }

}

/// Records `key (8 bytes) | mark (1) | length (2) | line`, written through a 256 KiB buffer.
final class RunWriter {
    private let fd: Int32
    private var buffer: [UInt8] = []

    init(path: String) throws(SortedRuns.Failure) {
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw SortedRuns.Failure(description: "cannot create \(path): errno \(errno)") }
        buffer.reserveCapacity(256 << 10)
    }

    deinit { if fd >= 0 { Glibc.close(fd) } }

    func write(key: Int64, marked: Bool, line: UnsafeBufferPointer<UInt8>) throws(SortedRuns.Failure) {
        withUnsafeBytes(of: key.littleEndian) { buffer.append(contentsOf: $0) }
        buffer.append(marked ? 1 : 0)
        buffer.append(UInt8(line.count & 0xff))
        buffer.append(UInt8(line.count >> 8))
        buffer.append(contentsOf: line)
        if buffer.count >= 256 << 10 { try flush() }
    }

    func flush() throws(SortedRuns.Failure) {
        var done = 0
        while done < buffer.count {
            let n = buffer.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + done, $0.count - done) }
            guard n > 0 else { throw SortedRuns.Failure(description: "cannot write a sorted run: errno \(errno) (is the spool folder's disk full?)") }
            done += n
        }
        buffer.removeAll(keepingCapacity: true)
    }

    func close() throws(SortedRuns.Failure) { try flush() }
}

/// Reads a run's records back through a 64 KiB buffer.
final class RunReader {
    private let fd: Int32
    private var buffer = [UInt8](repeating: 0, count: 64 << 10)
    private var start = 0
    private var end = 0
    private(set) var key: Int64 = 0
    private(set) var marked = false
    private var line = 0..<0

    init(path: String) throws(SortedRuns.Failure) {
        fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SortedRuns.Failure(description: "cannot open \(path): errno \(errno)") }
    }

    deinit { if fd >= 0 { Glibc.close(fd) } }

    /// Has `count` bytes from `start` in the buffer, reading more; false at the end of the run.
    private func fill(_ count: Int) throws(SortedRuns.Failure) -> Bool {
        if end - start >= count { return true }
        if start > 0 {
            buffer.withUnsafeMutableBufferPointer { b in
                let kept = end - start
                if kept > 0 { memmove(b.baseAddress!, b.baseAddress! + start, kept) }
            }
            end -= start
            start = 0
        }
        while end - start < count {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress! + end, $0.count - end) }
            guard n >= 0 else { throw SortedRuns.Failure(description: "cannot read a sorted run: errno \(errno)") }
            if n == 0 {
                guard end == start else { throw SortedRuns.Failure(description: "a sorted run ends mid-record") }
                return false
            }
            end += n
        }
        return true
    }

    /// The next record; false at the end.
    func advance() throws(SortedRuns.Failure) -> Bool {
        start = line.upperBound > start ? line.upperBound : start
        line = start..<start
        guard try fill(11) else { return false }
        var k: Int64 = 0
        withUnsafeMutableBytes(of: &k) { $0.copyBytes(from: buffer[start..<(start + 8)]) }
        key = Int64(littleEndian: k)
        marked = buffer[start + 8] == 1
        let length = Int(buffer[start + 9]) | Int(buffer[start + 10]) << 8
        start += 11
        guard try fill(length) else { throw SortedRuns.Failure(description: "a sorted run ends mid-record") }
        line = start..<(start + length)
        return true
    }

    func withLine<E: Error>(_ body: (UnsafeBufferPointer<UInt8>) throws(E) -> Void) throws(E) {
        try buffer.withUnsafeBufferPointer { (b: UnsafeBufferPointer<UInt8>) throws(E) in try body(UnsafeBufferPointer(rebasing: b[line])) }
    }
}
