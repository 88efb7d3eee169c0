#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The process's peak resident memory so far (the kernel's high-water mark, `getrusage` ru_maxrss), in bytes.
public func peakResidentBytes() -> Int {
    var u = rusage()
    guard getrusage(RUSAGE_SELF.rawValue, &u) == 0 else { return 0 }
    #if canImport(Darwin)
    return Int(u.ru_maxrss) // bytes on Darwin
    #else
    return Int(u.ru_maxrss) * 1024 // KiB on Linux
    #endif
}
